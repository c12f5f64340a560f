/*
 * idem.h - Idempotency-Key on POST /jobs (docs/api.md, "Idempotent job
 * creation"). A job created with a key remembers the key, the API key it
 * came with (as a hash: its scope) and a fingerprint of the body. A repeat
 * with the same key in the same scope finds the job in the job table and
 * gets it back instead of a second job; a repeat with another body is
 * refused. Nothing is stored besides the job: the key lives and dies with
 * its job, so the job table's bounds (max_queue waiting, max_jobs finished,
 * job_ttl) bound the keys too.
 */
#ifndef DITD_DAEMON_IDEM_H
#define DITD_DAEMON_IDEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define IDEM_KEY_MAX 255    /* characters of a key, quotes excluded */

struct job;

/* What a job keeps of the key that created it (key NULL: none). */
struct idem {
    char *key;
    uint64_t scope;         /* hash of the API key used; 0 without keys */
    uint64_t body_hash;
    size_t body_len;
};

/* The key of an Idempotency-Key header value: the value itself or, written
 * as a quoted string ("abc", the structured-field form), its inside.
 * 1..IDEM_KEY_MAX visible ASCII characters. Copies it into out[IDEM_KEY_MAX
 * + 1]; -EINVAL with err saying what is accepted. */
int idem_key_parse(const char *value, char *out, char *err, size_t errlen);

/* The scope of a request: 0 when no API keys are configured, else a hash
 * of the key presented (which the http layer has already accepted). */
uint64_t idem_scope(bool keys_configured, const char *api_key);

/* Bind a job to its key; -ENOMEM leaves the job without one. */
int idem_bind(struct idem *m, const char *key, uint64_t scope, const void *body, size_t len);
void idem_free(struct idem *m);

/* The newest job of the table (linked by tnext) created with `key` in
 * `scope` whose results are still kept (not expired), or NULL. */
struct job *idem_find(struct job *table, const char *key, uint64_t scope);

/* True when `body` is the body the job was created with. */
bool idem_same_body(const struct idem *m, const void *body, size_t len);

#endif /* DITD_DAEMON_IDEM_H */
