/*
 * auth.c - API keys (user and admin) with a constant-time compare, and the
 * CORS allow-list.
 */
#include "auth.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void auth_free(struct auth *a)
{
    for (int i = 0; i < a->nkeys; i++)
        free(a->keys[i]);
    a->nkeys = 0;
}

/* The keys being added are admin keys (add_key's list callback has one argument). */
struct adding {
    struct auth *a;
    unsigned char admin;
};

static int add_key(const char *item, size_t len, void *arg)
{
    struct adding *ad = arg;
    struct auth *a = ad->a;
    char *k;

    if (len > AUTH_KEY_MAX || a->nkeys == AUTH_MAX_KEYS)
        return -E2BIG;
    k = calloc(1, AUTH_KEY_MAX + 1);    /* zero padding: the compare reads AUTH_KEY_MAX bytes */
    if (!k)
        return -ENOMEM;
    memcpy(k, item, len);
    a->keys[a->nkeys] = k;
    a->admin[a->nkeys] = ad->admin;
    a->key_len[a->nkeys++] = len;
    return 0;
}

/* One key per line, '#' lines and empty lines skipped; 0, -errno with err
 * set when the file cannot be read, or add_key's error. */
static int add_file(struct adding *ad, const char *key, const char *path, char *err,
                    size_t errlen)
{
    FILE *f = fopen(path, "r");
    char line[AUTH_KEY_MAX + 4];
    int rc = 0;

    if (!f) {
        rc = -errno;
        snprintf(err, errlen, "cannot read %s %s: %s", key, path, strerror(errno));
        return rc;
    }
    while (rc == 0 && fgets(line, sizeof(line), f)) {
        size_t n = strcspn(line, "\r\n");

        line[n] = '\0';
        if (n && line[0] != '#')
            rc = add_key(line, n, ad);
    }
    fclose(f);
    return rc;
}

int auth_load(struct auth *a, const struct config *cfg, char *err, size_t errlen)
{
    struct adding user = { a, 0 }, admin = { a, 1 };
    int rc;

    auth_free(a);
    err[0] = '\0';
    rc = config_list_foreach(cfg->api_keys, add_key, &user);
    if (rc == 0 && cfg->api_key_file[0])
        rc = add_file(&user, "api_key_file", cfg->api_key_file, err, errlen);
    if (rc == 0)
        rc = config_list_foreach(cfg->admin_api_keys, add_key, &admin);
    if (rc == 0 && cfg->admin_api_key_file[0])
        rc = add_file(&admin, "admin_api_key_file", cfg->admin_api_key_file, err, errlen);
    if (rc < 0 && err[0]) {
        auth_free(a);
        return rc;
    }
    if (rc < 0) {
        snprintf(err, errlen, "API keys: at most %d keys of at most %d bytes each", AUTH_MAX_KEYS,
                 AUTH_KEY_MAX);
        auth_free(a);
        return rc;
    }
    return 0;
}

int auth_key_ok(const struct auth *a, const char *key, size_t len)
{
    unsigned ok = 0, admin = 0;

    if (len == 0 || len > AUTH_KEY_MAX)
        return AUTH_NONE;
    for (int k = 0; k < a->nkeys; k++) {
        unsigned diff = (unsigned)(len ^ a->key_len[k]);

        for (size_t i = 0; i < AUTH_KEY_MAX; i++) {
            /* The presented byte, or 0 past its end, selected with a mask
             * rather than a condition: a conditional index let the
             * compiler split the loop at `len`, and the work then
             * depended on the length (seen with callgrind). */
            size_t mask = (size_t)0 - (size_t)(i < len);
            unsigned g = (unsigned char)key[i & mask] & (unsigned)mask;

            diff |= g ^ (unsigned char)a->keys[k][i];
        }
        ok |= diff == 0;
        admin |= (unsigned)(diff == 0) & a->admin[k];
    }
    return ok ? (admin ? AUTH_ADMIN : AUTH_USER) : AUTH_NONE;
}

static int origin_cb(const char *item, size_t len, void *arg)
{
    const char *origin = arg;

    return (len == 1 && item[0] == '*') ||
           (strlen(origin) == len && strncmp(item, origin, len) == 0);
}

bool auth_origin_ok(const char *allow_list, const char *origin)
{
    return origin && allow_list[0] && config_list_foreach(allow_list, origin_cb, (void *)origin);
}
