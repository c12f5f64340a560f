/*
 * idem.c - Idempotency-Key bookkeeping for POST /jobs (see idem.h). Runs
 * on the loop thread, which owns the job table.
 */
#include "idem.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "job.h"

/* 64-bit FNV-1a. A fingerprint, not a defence: a client that forges a
 * collision only gets back its own job, since keys are scoped. */
static uint64_t fnv1a(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;

    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

#define FNV_BASIS 0xcbf29ce484222325ull

int idem_key_parse(const char *value, char *out, char *err, size_t errlen)
{
    size_t n = strlen(value);

    if (n >= 2 && value[0] == '"' && value[n - 1] == '"') {
        value++;
        n -= 2;
    }
    if (n == 0 || n > IDEM_KEY_MAX) {
        snprintf(err, errlen, "Idempotency-Key must be 1 to %d characters (got %zu); "
                 "a UUID is a good key", IDEM_KEY_MAX, n);
        return -EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)value[i];

        if (c < 0x21 || c > 0x7e || c == '"' || c == '\\') {
            snprintf(err, errlen, "Idempotency-Key may hold visible ASCII characters only "
                     "(no spaces, quotes or backslashes); character %zu is 0x%02x", i + 1, c);
            return -EINVAL;
        }
    }
    memcpy(out, value, n);
    out[n] = '\0';
    return 0;
}

uint64_t idem_scope(bool keys_configured, const char *api_key)
{
    if (!keys_configured || !api_key)
        return 0;
    /* Never 0, so that a keyed scope differs from the open one. */
    return fnv1a(FNV_BASIS, api_key, strlen(api_key)) | 1;
}

int idem_bind(struct idem *m, const char *key, uint64_t scope, const void *body, size_t len)
{
    m->key = strdup(key);
    if (!m->key)
        return -ENOMEM;
    m->scope = scope;
    m->body_hash = fnv1a(FNV_BASIS, body, len);
    m->body_len = len;
    return 0;
}

void idem_free(struct idem *m)
{
    free(m->key);
    m->key = NULL;
}

struct job *idem_find(struct job *table, const char *key, uint64_t scope)
{
    for (struct job *j = table; j; j = j->tnext) {
        bool expired;

        if (!j->idem.key || j->idem.scope != scope || strcmp(j->idem.key, key) != 0)
            continue;
        pthread_mutex_lock(&j->mu);
        expired = j->expired;
        pthread_mutex_unlock(&j->mu);
        /* The table is newest first: an expired match means the key was
         * released, and any older one is expired too. */
        return expired ? NULL : j;
    }
    return NULL;
}

bool idem_same_body(const struct idem *m, const void *body, size_t len)
{
    return m->body_len == len && m->body_hash == fnv1a(FNV_BASIS, body, len);
}
