/*
 * hash.h - XXH64 (Yann Collet's 64-bit xxHash), streaming: a fast,
 * well-known checksum that names a model's files cheaply at load (the same
 * value `xxhsum -H1` prints), not a cryptographic digest.
 */
#ifndef DITD_HASH_H
#define DITD_HASH_H

#include <stddef.h>
#include <stdint.h>

struct xxh64 {
    uint64_t acc[4];     /* the four lane accumulators */
    uint64_t total;      /* bytes seen */
    uint64_t seed;
    uint8_t buf[32];     /* a partial stripe */
    size_t nbuf;
};

void xxh64_init(struct xxh64 *h, uint64_t seed);
void xxh64_update(struct xxh64 *h, const void *data, size_t len);
uint64_t xxh64_digest(const struct xxh64 *h);

/* Feed the whole file at path; 0 or DITD_EIO/DITD_ENOENT with a message. */
int xxh64_file(struct xxh64 *h, const char *path, char *err, size_t errlen);

#endif /* DITD_HASH_H */
