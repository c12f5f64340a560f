/*
 * test_config.c - defaults, the INI file, flags over the file, range and
 * section errors, reload rules and the list splitter.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "test.h"

static char tmpdir[] = "/tmp/ditd-test-config-XXXXXX";

static const char *write_file(const char *name, const char *text)
{
    static char path[512];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    f = fopen(path, "w");
    if (!f)
        return NULL;
    fputs(text, f);
    fclose(f);
    return path;
}

static int count_item(const char *item, size_t len, void *arg)
{
    (void)item;
    (void)len;
    (*(int *)arg)++;
    return 0;
}

static void report_cb(const char *key, bool applied, void *arg)
{
    char *out = arg;

    strcat(out, key);
    strcat(out, applied ? "+ " : "- ");
}

int main(int argc, char **argv)
{
    struct config c, next;
    char err[CONFIG_ERR_LEN];
    char report[512] = "";
    const char *path;
    const char *used;
    int n = 0;
    int rc;

    if (!mkdtemp(tmpdir))
        return 1;
    unsetenv("DITD_CONFIG");

    config_defaults(&c);
    CHECK(strcmp(c.listen, "127.0.0.1:8080") == 0);
    CHECK_EQ_INT(c.max_body, 65536);
    CHECK_EQ_INT(c.max_batch, 0); /* chosen for the precision once the model is loaded */
    CHECK(strcmp(c.precision, "auto") == 0);
    CHECK_EQ_INT(c.max_queue, 64);
    CHECK_NEAR(c.default_cfg, 4.0, 0);
    CHECK(c.public_health && c.public_metrics);
    CHECK_EQ_INT(config_validate(&c, err, sizeof(err)), 0);

    /* A file, then flags over it whatever their order. */
    path = write_file("a.conf",
                      "# comment\n[server]\nlisten = 0.0.0.0:9000\nmax_body = 1m\n"
                      "[compute]\nworkers = 2 ; inline comment\n[queue]\nmax_queue = 5\n");
    {
        char *argv[] = { "ditd", "--max-queue", "7", "-c", (char *)path, "-w", "3", NULL };

        config_defaults(&c);
        rc = config_parse_args(&c, 7, argv, stdout, &used, err, sizeof(err));
        CHECK_EQ_INT(rc, 0);
        CHECK(strcmp(c.listen, "0.0.0.0:9000") == 0);
        CHECK_EQ_INT(c.max_body, 1 << 20);
        CHECK_EQ_INT(c.workers, 3);
        CHECK_EQ_INT(c.max_queue, 7);
        CHECK(used == path);
    }

    /* Errors name the file, the line and the key. */
    path = write_file("b.conf", "[server]\n\nlisten = x:1\nbogus = 1\n");
    config_defaults(&c);
    rc = config_load_file(&c, path, err, sizeof(err));
    CHECK_EQ_INT(rc, -EINVAL);
    CHECK_STR_CONTAINS(err, ":4:");
    CHECK_STR_CONTAINS(err, "unknown key 'bogus'");

    path = write_file("c.conf", "[server]\nworkers = 2\n");
    config_defaults(&c);
    rc = config_load_file(&c, path, err, sizeof(err));
    CHECK_EQ_INT(rc, -EINVAL);
    CHECK_STR_CONTAINS(err, "belongs in section [compute]");

    path = write_file("d.conf", "[compute]\nmax_batch = 5000\n");
    config_defaults(&c);
    CHECK_EQ_INT(config_load_file(&c, path, err, sizeof(err)), -EINVAL);
    CHECK_STR_CONTAINS(err, "max_batch: 5000 is outside 0..4096");

    path = write_file("d2.conf", "[compute]\nprecision = bf8\n");
    config_defaults(&c);
    CHECK_EQ_INT(config_load_file(&c, path, err, sizeof(err)), 0);
    CHECK_EQ_INT(config_validate(&c, err, sizeof(err)), -EINVAL);
    CHECK_STR_CONTAINS(err, "precision: 'bf8' is not one of auto, fp32, bf16");

    path = write_file("e.conf", "[request]\ndefault_cfg = nan\n");
    config_defaults(&c);
    CHECK_EQ_INT(config_load_file(&c, path, err, sizeof(err)), -EINVAL);
    CHECK_STR_CONTAINS(err, "not a finite number");

    /* A suffix that would overflow the product (found by fuzz_config; was signed overflow). */
    path = write_file("f.conf", "[server]\nmax_body = 99999999999999999m\n");
    config_defaults(&c);
    CHECK_EQ_INT(config_load_file(&c, path, err, sizeof(err)), -EINVAL);
    CHECK_STR_CONTAINS(err, "max_body: '99999999999999999m' is outside");
    path = write_file("g.conf", "[server]\nmax_body = -9999999999999999k\n");
    config_defaults(&c);
    CHECK_EQ_INT(config_load_file(&c, path, err, sizeof(err)), -EINVAL);

    config_defaults(&c);
    CHECK_EQ_INT(config_load_file(&c, "/nonexistent/ditd.conf", err, sizeof(err)), -ENOENT);
    CHECK_STR_CONTAINS(err, "cannot open config file");

    {
        char *argv[] = { "ditd", "--workers", "two", NULL };

        config_defaults(&c);
        CHECK_EQ_INT(config_parse_args(&c, 3, argv, stdout, NULL, err, sizeof(err)), -EINVAL);
        CHECK_STR_CONTAINS(err, "workers: 'two' is not an integer");
    }
    {
        char *argv[] = { "ditd", "--no-such-flag", NULL };

        config_defaults(&c);
        CHECK_EQ_INT(config_parse_args(&c, 2, argv, stdout, NULL, err, sizeof(err)), -EINVAL);
        CHECK_STR_CONTAINS(err, "--no-such-flag");
    }
    {
        char *argv[] = { "ditd", "--default-steps", "500", "--max-steps", "100", NULL };

        config_defaults(&c);
        CHECK_EQ_INT(config_parse_args(&c, 5, argv, stdout, NULL, err, sizeof(err)), -EINVAL);
        CHECK_STR_CONTAINS(err, "default_steps");
    }
    {
        char *argv[] = { "ditd", "--listen", "8080", NULL };

        config_defaults(&c);
        CHECK_EQ_INT(config_parse_args(&c, 3, argv, stdout, NULL, err, sizeof(err)), -EINVAL);
        CHECK_STR_CONTAINS(err, "has no port");
    }
    {
        FILE *devnull = fopen("/dev/null", "w");
        char *argv[] = { "ditd", "--help", NULL };

        config_defaults(&c);
        CHECK_EQ_INT(config_parse_args(&c, 2, argv, devnull, NULL, err, sizeof(err)), 1);
        fclose(devnull);
    }

    /* Reload: reloadable keys are applied, the others reported. */
    config_defaults(&c);
    next = c;
    next.max_queue = 3;
    strcpy(next.listen, "127.0.0.1:1");
    CHECK_EQ_INT(config_apply_reload(&c, &next, report_cb, report), 1);
    CHECK_EQ_INT(c.max_queue, 3);
    CHECK(strcmp(c.listen, "127.0.0.1:8080") == 0);
    CHECK_STR_CONTAINS(report, "listen- ");
    CHECK_STR_CONTAINS(report, "max_queue+ ");

    config_list_foreach(" a, b ,,c ", count_item, &n);
    CHECK_EQ_INT(n, 3);

    /* conf/ditd.conf documents every key with its default. */
    if (argc > 1) {
        struct config def;

        config_defaults(&def);
        config_defaults(&c);
        rc = config_load_file(&c, argv[1], err, sizeof(err));
        CHECK_EQ_INT(rc, 0);
        if (rc)
            fprintf(stderr, "%s\n", err);
        CHECK(memcmp(&c, &def, sizeof(c)) == 0);
    }

    unlink(write_file("a.conf", ""));
    unlink(write_file("b.conf", ""));
    unlink(write_file("c.conf", ""));
    unlink(write_file("d.conf", ""));
    unlink(write_file("d2.conf", ""));
    unlink(write_file("e.conf", ""));
    rmdir(tmpdir);
    return test_status();
}
