/*
 * hash.c - XXH64 from its specification: 32-byte stripes feed four
 * accumulators, which are merged, the tail is folded in 8, 4 and 1 byte
 * pieces, and a final avalanche mixes the bits. Known answers (from xxhsum)
 * are in tests/unit/test_hash.c.
 */
#include "hash.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ditd.h"

#define P1 UINT64_C(0x9E3779B185EBCA87)
#define P2 UINT64_C(0xC2B2AE3D27D4EB4F)
#define P3 UINT64_C(0x165667B19E3779F9)
#define P4 UINT64_C(0x85EBCA77C2B2AE63)
#define P5 UINT64_C(0x27D4EB2F165667C5)

static uint64_t rotl(uint64_t x, int r)
{
    return (x << r) | (x >> (64 - r));
}

/* Little-endian loads, whatever the host (one move on x86). */
static uint64_t load64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof(v));
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}

static uint32_t load32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof(v));
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap32(v);
#endif
    return v;
}

static uint64_t round64(uint64_t acc, uint64_t lane)
{
    acc += lane * P2;
    return rotl(acc, 31) * P1;
}

static void stripe(uint64_t acc[4], const uint8_t *p)
{
    for (int i = 0; i < 4; i++)
        acc[i] = round64(acc[i], load64(p + 8 * i));
}

void xxh64_init(struct xxh64 *h, uint64_t seed)
{
    memset(h, 0, sizeof(*h));
    h->seed = seed;
    h->acc[0] = seed + P1 + P2;
    h->acc[1] = seed + P2;
    h->acc[2] = seed;
    h->acc[3] = seed - P1;
}

void xxh64_update(struct xxh64 *h, const void *data, size_t len)
{
    const uint8_t *p = data;

    h->total += len;
    if (h->nbuf) {
        size_t take = 32 - h->nbuf < len ? 32 - h->nbuf : len;
        memcpy(h->buf + h->nbuf, p, take);
        h->nbuf += take;
        p += take;
        len -= take;
        if (h->nbuf < 32)
            return;
        stripe(h->acc, h->buf);
        h->nbuf = 0;
    }
    for (; len >= 32; p += 32, len -= 32)
        stripe(h->acc, p);
    memcpy(h->buf, p, len);
    h->nbuf = len;
}

uint64_t xxh64_digest(const struct xxh64 *h)
{
    const uint8_t *p = h->buf, *end = h->buf + h->nbuf;
    uint64_t v;

    if (h->total >= 32) {
        v = rotl(h->acc[0], 1) + rotl(h->acc[1], 7) + rotl(h->acc[2], 12) + rotl(h->acc[3], 18);
        for (int i = 0; i < 4; i++)
            v = (v ^ round64(0, h->acc[i])) * P1 + P4;
    } else {
        v = h->seed + P5;
    }
    v += h->total;
    for (; end - p >= 8; p += 8)
        v = rotl(v ^ round64(0, load64(p)), 27) * P1 + P4;
    if (end - p >= 4) {
        v = rotl(v ^ (uint64_t)load32(p) * P1, 23) * P2 + P3;
        p += 4;
    }
    for (; p < end; p++)
        v = rotl(v ^ *p * P5, 11) * P1;
    v ^= v >> 33;
    v *= P2;
    v ^= v >> 29;
    v *= P3;
    return v ^ (v >> 32);
}

int xxh64_file(struct xxh64 *h, const char *path, char *err, size_t errlen)
{
    enum { CHUNK = 1 << 20 };
    uint8_t *buf = malloc(CHUNK);
    int fd, rc = 0;

    if (!buf) {
        snprintf(err, errlen, "out of memory hashing %s", path);
        return DITD_ENOMEM;
    }
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        free(buf);
        return errno == ENOENT ? DITD_ENOENT : DITD_EIO;
    }
    for (;;) {
        ssize_t n = read(fd, buf, CHUNK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
            rc = DITD_EIO;
            break;
        }
        if (n == 0)
            break;
        xxh64_update(h, buf, (size_t)n);
    }
    close(fd);
    free(buf);
    return rc;
}
