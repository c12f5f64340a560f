/*
 * test_auth.c - API keys (list and file, limits, the compare) and the CORS
 * allow-list.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth.h"
#include "test.h"

int main(void)
{
    struct config c;
    struct auth a;
    char err[256];
    char path[] = "/tmp/ditd-test-keys-XXXXXX";
    char big[AUTH_KEY_MAX + 2];
    int fd;

    memset(&a, 0, sizeof(a));
    config_defaults(&c);
    CHECK_EQ_INT(auth_load(&a, &c, err, sizeof(err)), 0);
    CHECK(!auth_enabled(&a));

    strcpy(c.api_keys, "alpha, beta-key");
    fd = mkstemp(path);
    CHECK(fd >= 0);
    CHECK(write(fd, "# comment\ngamma\n\n", 17) == 17);
    close(fd);
    strcpy(c.api_key_file, path);
    CHECK_EQ_INT(auth_load(&a, &c, err, sizeof(err)), 0);
    CHECK_EQ_INT(a.nkeys, 3);
    CHECK(auth_key_ok(&a, "alpha", 5));
    CHECK(auth_key_ok(&a, "beta-key", 8));
    CHECK(auth_key_ok(&a, "gamma", 5));
    CHECK(!auth_key_ok(&a, "alph", 4));         /* prefix */
    CHECK(!auth_key_ok(&a, "alphaa", 6));       /* longer */
    CHECK(!auth_key_ok(&a, "Alpha", 5));        /* case */
    CHECK(!auth_key_ok(&a, "", 0));
    memset(big, 'a', sizeof(big));
    CHECK(!auth_key_ok(&a, big, sizeof(big)));  /* over the maximum */
    CHECK_EQ_INT(auth_key_ok(&a, "alpha", 5), AUTH_USER);

    /* Admin keys, from the list and a file: valid keys that say so. */
    strcpy(c.admin_api_keys, "root");
    strcpy(c.admin_api_key_file, path);     /* gamma is then both a user and an admin key */
    CHECK_EQ_INT(auth_load(&a, &c, err, sizeof(err)), 0);
    CHECK_EQ_INT(a.nkeys, 5);
    CHECK_EQ_INT(auth_key_ok(&a, "root", 4), AUTH_ADMIN);
    CHECK_EQ_INT(auth_key_ok(&a, "gamma", 5), AUTH_ADMIN);
    CHECK_EQ_INT(auth_key_ok(&a, "beta-key", 8), AUTH_USER);
    CHECK_EQ_INT(auth_key_ok(&a, "roo", 3), AUTH_NONE);
    c.api_keys[0] = c.api_key_file[0] = '\0';
    CHECK_EQ_INT(auth_load(&a, &c, err, sizeof(err)), 0);
    CHECK(auth_enabled(&a));                    /* admin keys alone turn keys on */
    strcpy(c.admin_api_key_file, "/nonexistent/admin-keys");
    CHECK(auth_load(&a, &c, err, sizeof(err)) < 0);
    CHECK_STR_CONTAINS(err, "admin_api_key_file /nonexistent/admin-keys");
    CHECK(!auth_enabled(&a));
    c.admin_api_keys[0] = c.admin_api_key_file[0] = '\0';
    unlink(path);

    strcpy(c.api_key_file, "/nonexistent/keys");
    CHECK(auth_load(&a, &c, err, sizeof(err)) < 0);
    CHECK_STR_CONTAINS(err, "api_key_file");
    CHECK(!auth_enabled(&a));                   /* nothing half-loaded */

    CHECK(auth_origin_ok("https://a.example, https://b.example", "https://b.example"));
    CHECK(!auth_origin_ok("https://a.example", "https://a.example.evil"));
    CHECK(!auth_origin_ok("", "https://a.example"));
    CHECK(auth_origin_ok("*", "http://anything"));
    CHECK(!auth_origin_ok("*", NULL));
    auth_free(&a);
    return test_status();
}
