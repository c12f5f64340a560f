/*
 * auth.h - API keys and CORS origins. Keys come from the api_keys list and
 * the api_key_file; admin keys (admin_api_keys, admin_api_key_file) are
 * keys too, and may also see every client's jobs. A presented key is
 * compared with every configured key in constant time (the work does not
 * depend on where or whether they differ, nor on whether the match is an
 * admin key), so response timing does not leak key bytes.
 */
#ifndef DITD_DAEMON_AUTH_H
#define DITD_DAEMON_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

#define AUTH_MAX_KEYS 64
#define AUTH_KEY_MAX 256    /* bytes compared for every key, whatever its length */

struct auth {
    int nkeys;
    char *keys[AUTH_MAX_KEYS];      /* zero-padded to AUTH_KEY_MAX bytes */
    size_t key_len[AUTH_MAX_KEYS];
    unsigned char admin[AUTH_MAX_KEYS];     /* 1 for admin keys */
};

/* (Re)load the keys of `cfg`; on error no key is kept and err says why. */
int auth_load(struct auth *a, const struct config *cfg, char *err, size_t errlen);
void auth_free(struct auth *a);
static inline bool auth_enabled(const struct auth *a)
{
    return a->nkeys > 0;
}
enum { AUTH_NONE = 0, AUTH_USER = 1, AUTH_ADMIN = 2 };
/* AUTH_USER or AUTH_ADMIN when `key` (len bytes) is one of the configured
 * keys, else AUTH_NONE (0, so the result reads as a truth value). */
int auth_key_ok(const struct auth *a, const char *key, size_t len);
/* True when `origin` is in the comma-separated allow-list (or it has "*"). */
bool auth_origin_ok(const char *allow_list, const char *origin);

#endif /* DITD_DAEMON_AUTH_H */
