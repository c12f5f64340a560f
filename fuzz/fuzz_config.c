/*
 * fuzz_config.c - libFuzzer target for the configuration parser (config.c):
 * the INI file and the command-line flags. The first byte picks the input:
 *
 *   even: the rest is a configuration file, read by config_load_file()
 *         through a memfd (the real path-based reader, libinih included),
 *         then config_validate() and config_apply_reload();
 *   odd:  the rest is argv, one argument per line, for config_parse_args().
 *
 * Beyond crashes it traps on broken promises: a refusal without a message,
 * or an accepted configuration whose numbers are outside their ranges.
 * --config/-c arguments are dropped: they would read arbitrary paths.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_ARGS 64

static int count_item(const char *item, size_t len, void *arg)
{
    (void)item;
    *(size_t *)arg += len;
    return 0;
}

/* The ranges of conf/ditd.conf that every accepted configuration keeps. */
static void check_ranges(const struct config *c)
{
    size_t n = 0;

    if (c->connection_limit < 4 || c->per_ip_limit < 0 || c->connection_timeout < 0 ||
        c->max_body < 256 || c->max_body > (16 << 20) || c->http_memory < 8192 ||
        c->workers < 0 || c->workers > 256 || c->max_batch < 0 || c->max_queue < 0 ||
        c->max_images < 1 || c->max_steps < 1 || c->max_steps > 1000 ||
        !(c->max_cfg >= 0 && c->max_cfg <= 1000) ||
        memchr(c->listen, '\0', sizeof(c->listen)) == NULL ||
        memchr(c->api_keys, '\0', sizeof(c->api_keys)) == NULL)
        __builtin_trap();
    config_list_foreach(c->api_keys, count_item, &n);
    config_list_foreach(c->cors_origins, count_item, &n);
    if (n > sizeof(c->api_keys) + sizeof(c->cors_origins))
        __builtin_trap();
}

static void fuzz_file(const uint8_t *data, size_t size)
{
    static int fd = -1;
    static char path[64];
    static struct config c, next;
    char err[CONFIG_ERR_LEN];

    if (fd < 0) {
        fd = memfd_create("fuzz-config", 0);
        if (fd < 0)
            abort();
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    }
    if (ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) != (ssize_t)size)
        abort();
    config_defaults(&c);
    err[0] = '\0';
    if (config_load_file(&c, path, err, sizeof(err)) < 0) {
        if (!err[0])
            __builtin_trap();
        return;
    }
    check_ranges(&c);
    err[0] = '\0';
    if (config_validate(&c, err, sizeof(err)) < 0 && !err[0])
        __builtin_trap();
    config_defaults(&next);
    config_apply_reload(&next, &c, NULL, NULL);
}

static void fuzz_args(const uint8_t *data, size_t size)
{
    static struct config c;
    char *text = malloc(size + 1);
    char *argv[MAX_ARGS + 2];
    char err[CONFIG_ERR_LEN];
    int argc = 0;
    FILE *out;
    int rc;

    if (!text)
        return;
    memcpy(text, data, size);
    text[size] = '\0';
    argv[argc++] = "ditd";
    for (char *p = text, *nl; p && argc < MAX_ARGS; p = nl ? nl + 1 : NULL) {
        nl = strchr(p, '\n');
        if (nl)
            *nl = '\0';
        if (strncmp(p, "-c", 2) == 0 || strncmp(p, "--c", 3) == 0)
            continue;
        argv[argc++] = p;
    }
    argv[argc] = NULL;
    out = fopen("/dev/null", "w");
    config_defaults(&c);
    err[0] = '\0';
    rc = config_parse_args(&c, argc, argv, out ? out : stdout, NULL, err, sizeof(err));
    if (rc < 0 && !err[0])
        __builtin_trap();
    if (rc == 0)
        check_ranges(&c);
    if (out)
        fclose(out);
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    if (data[0] % 2 == 0)
        fuzz_file(data + 1, size - 1);
    else
        fuzz_args(data + 1, size - 1);
    return 0;
}
