/*
 * auth.c - API keys with a constant-time compare, and the CORS allow-list.
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

static int add_key(const char *item, size_t len, void *arg)
{
    struct auth *a = arg;
    char *k;

    if (len > AUTH_KEY_MAX || a->nkeys == AUTH_MAX_KEYS)
        return -E2BIG;
    k = calloc(1, AUTH_KEY_MAX + 1);    /* zero padding: the compare reads AUTH_KEY_MAX bytes */
    if (!k)
        return -ENOMEM;
    memcpy(k, item, len);
    a->keys[a->nkeys] = k;
    a->key_len[a->nkeys++] = len;
    return 0;
}

int auth_load(struct auth *a, const struct config *cfg, char *err, size_t errlen)
{
    int rc;

    auth_free(a);
    rc = config_list_foreach(cfg->api_keys, add_key, a);
    if (rc == 0 && cfg->api_key_file[0]) {
        FILE *f = fopen(cfg->api_key_file, "r");
        char line[AUTH_KEY_MAX + 4];

        if (!f) {
            rc = -errno;
            snprintf(err, errlen, "cannot read api_key_file %s: %s", cfg->api_key_file,
                     strerror(errno));
            auth_free(a);
            return rc;
        }
        while (rc == 0 && fgets(line, sizeof(line), f)) {
            size_t n = strcspn(line, "\r\n");

            line[n] = '\0';
            if (n && line[0] != '#')
                rc = add_key(line, n, a);
        }
        fclose(f);
    }
    if (rc < 0) {
        snprintf(err, errlen, "API keys: at most %d keys of at most %d bytes each", AUTH_MAX_KEYS,
                 AUTH_KEY_MAX);
        auth_free(a);
        return rc;
    }
    return 0;
}

bool auth_key_ok(const struct auth *a, const char *key, size_t len)
{
    unsigned ok = 0;

    if (len == 0 || len > AUTH_KEY_MAX)
        return false;
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
    }
    return ok != 0;
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
