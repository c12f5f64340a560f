/*
 * npz.c - stream a NumPy .npz archive (a ZIP of stored .npy members) to disk.
 *
 * dit generate puts tens of thousands of images into one (50,000 at 256x256x3
 * are 9.8 GB), so nothing is held back: a member's size follows from its
 * shape when it begins, its bytes go to the file as they arrive, the CRC-32
 * is computed on the way and patched into the local header when it ends (the
 * file is seekable: no data descriptors), and the central directory is
 * written at close. Every member is Zip64, as numpy.savez writes them
 * (force_zip64), so sizes and offsets past 4 GiB are no special case; the
 * classic end record, after the Zip64 one and its locator, caps what does not
 * fit at 0xFFFF / 0xFFFFFFFF, as zipfile does. Dates are 1980-01-01 00:00 so
 * that the same arrays give the same bytes.
 */
#include "npz.h"
#include "ditd.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

_Static_assert(sizeof(off_t) == 8, "npz.c needs 64-bit file offsets (_FILE_OFFSET_BITS=64)");

#define VERSION     45                  /* needed to extract: Zip64 */
#define MADE_BY     (3 << 8 | VERSION)  /* Unix, as zipfile on Linux */
#define DOS_TIME    0                   /* 00:00:00 */
#define DOS_DATE    (1 << 5 | 1)        /* 1980-01-01: year - 1980, month, day */
#define FILE_ATTR   (0100644u << 16)    /* a regular file, rw-r--r-- */
#define LOCAL_LEN   30                  /* local header before the name */
#define LOCAL_EXTRA 20                  /* Zip64 extra: both sizes */
#define CRC_AT      14                  /* offset of the CRC in a local header */
#define CENTRAL_LEN 46                  /* central entry before the name */
#define CENTRAL_EXTRA 28                /* Zip64 extra: both sizes and the offset */
#define CAP(v, max) ((v) < (max) ? (v) : (max))

struct member {
    char name[NPZ_MAX_NAME + 5];        /* "<name>.npy" */
    uint64_t offset, size;              /* of its local header; of the npy header and data */
    uint32_t crc;
};

struct npz {
    FILE *fp;
    char *path;
    struct member *members;             /* members[n] is the open one */
    size_t n, cap;
    bool open;
    int failed;                         /* the first failure's code, or 0 */
    uint64_t pos;                       /* bytes written: the file offset */
    uint64_t data, need;                /* the open member's data bytes; still to come */
};

struct report {
    const char *file;
    char *err;
    size_t errlen;
    int *failed;                        /* marks the archive failed; NULL before it exists */
};

static int fail(const struct report *r, int rc, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    npy_verror(r->err, r->errlen, r->file, fmt, ap);
    va_end(ap);
    if (r->failed && !*r->failed)
        *r->failed = rc;
    return rc;
}

/* The values v little-endian at p, each as many bytes as its digit in
 * widths says; returns the byte after them. */
static uint8_t *pack(uint8_t *p, const char *widths, const uint64_t *v)
{
    for (; *widths; widths++, v++)
        for (int i = 0; i < *widths - '0'; i++)
            *p++ = (uint8_t)(*v >> 8 * i);
    return p;
}

static int put(struct npz *z, const struct report *r, const void *p, size_t n)
{
    if (n && fwrite(p, 1, n, z->fp) != n)
        return fail(r, DITD_EIO, "write error: %s", strerror(errno));
    z->pos += n;
    return 0;
}

/* Refuses every call on an archive that failed, or without (with) a member open. */
static int usable(struct npz *z, const struct report *r, bool want_open)
{
    if (z->failed)
        return fail(r, z->failed, "an earlier error left the archive incomplete");
    if (want_open && !z->open)
        return fail(r, DITD_EINVAL, "no member is open (npz_begin)");
    if (!want_open && z->open)
        return fail(r, DITD_EINVAL, "member %s was not finished (npz_end)",
                    z->members[z->n].name);
    return 0;
}

int npz_create(struct npz **out, const char *path, bool exclusive, char *err, size_t errlen)
{
    struct report r = {path, err, errlen, NULL};
    struct npz *z = calloc(1, sizeof *z);

    *out = NULL;
    if (!z || !(z->path = strdup(path))) {
        free(z);
        return fail(&r, DITD_ENOMEM, "out of memory");
    }
    /* C11's "x": O_EXCL; glibc's "e": O_CLOEXEC. */
    z->fp = fopen(path, exclusive ? "wbxe" : "wbe");
    if (!z->fp) {
        int rc = errno == EEXIST ? fail(&r, DITD_EIO, "already exists; remove it or pass "
                                        "--force to overwrite it")
                 : fail(&r, errno == ENOENT ? DITD_ENOENT : DITD_EIO, "cannot create: %s",
                        strerror(errno));

        free(z->path);
        free(z);
        return rc;
    }
    *out = z;
    return 0;
}

int npz_begin(struct npz *z, const char *name, enum npy_dtype dtype, int ndim,
              const int64_t *shape, char *err, size_t errlen)
{
    struct report r = {z->path, err, errlen, &z->failed};
    uint8_t head[NPY_HEADER_BUF], local[LOCAL_LEN + NPZ_MAX_NAME + 4 + LOCAL_EXTRA], *p;
    char why[DITD_ERR_LEN];
    size_t namelen, hlen = 0;
    struct member *m;
    int rc = usable(z, &r, false);

    if (rc)
        return rc;
    namelen = name ? strlen(name) : 0;
    if (!namelen || namelen > NPZ_MAX_NAME || strchr(name, '/'))
        return fail(&r, DITD_EINVAL, "bad member name '%s' (1 to %d bytes, no '/')",
                    name ? name : "(null)", NPZ_MAX_NAME);
    for (size_t i = 0; i < z->n; i++)
        if (strncmp(z->members[i].name, name, namelen) == 0 &&
            strcmp(z->members[i].name + namelen, ".npy") == 0)
            return fail(&r, DITD_EINVAL, "member %s.npy is already there", name);
    rc = npy_header(head, sizeof head, dtype, ndim, shape, &hlen, &z->data, why, sizeof why);
    if (rc)
        return fail(&r, rc, "member %s.npy: %s", name, why);
    if (z->n == z->cap) {
        size_t cap = z->cap ? 2 * z->cap : 4;
        struct member *grown = realloc(z->members, cap * sizeof *grown);

        if (!grown)
            return fail(&r, DITD_ENOMEM, "out of memory");
        z->members = grown;
        z->cap = cap;
    }
    m = &z->members[z->n];
    snprintf(m->name, sizeof m->name, "%s.npy", name);
    namelen += 4;
    m->offset = z->pos;
    m->size = hlen + z->data;
    m->crc = (uint32_t)crc32_z(0, head, hlen);
    /* Signature, version needed, flags, stored, time, date, CRC-32 (patched by
     * npz_end), sizes (0xFFFFFFFF: they are in the Zip64 extra), name and
     * extra lengths; the name; the extra: tag, length, both sizes. */
    p = pack(local, "42222244422", (uint64_t[]){0x04034b50, VERSION, 0, 0, DOS_TIME,
             DOS_DATE, 0, 0xffffffff, 0xffffffff, namelen, LOCAL_EXTRA});
    memcpy(p, m->name, namelen);
    p = pack(p + namelen, "2288", (uint64_t[]){1, LOCAL_EXTRA - 4, m->size, m->size});
    z->need = z->data;
    z->open = true;
    rc = put(z, &r, local, (size_t)(p - local));
    return rc ? rc : put(z, &r, head, hlen);
}

int npz_append(struct npz *z, const void *data, size_t len, char *err, size_t errlen)
{
    struct report r = {z->path, err, errlen, &z->failed};
    struct member *m;
    int rc = usable(z, &r, true);

    if (rc)
        return rc;
    m = &z->members[z->n];
    if (len > z->need)
        return fail(&r, DITD_EINVAL, "member %s: %zu bytes appended after %llu run past "
                    "the %llu data bytes its shape needs", m->name, len,
                    (unsigned long long)(z->data - z->need), (unsigned long long)z->data);
    if (!len)
        return 0;   /* crc32_z(crc, NULL, 0) would return 0, not crc */
    if (!data)
        return fail(&r, DITD_EINVAL, "member %s: no data given", m->name);
    m->crc = (uint32_t)crc32_z(m->crc, data, len);   /* zlib >= 1.2.9 */
    z->need -= len;
    return put(z, &r, data, len);
}

int npz_end(struct npz *z, char *err, size_t errlen)
{
    struct report r = {z->path, err, errlen, &z->failed};
    struct member *m;
    uint8_t crc[4];
    int rc = usable(z, &r, true);

    if (rc)
        return rc;
    m = &z->members[z->n];
    if (z->need)
        return fail(&r, DITD_EINVAL, "member %s holds %llu data bytes, but its shape needs "
                    "%llu", m->name, (unsigned long long)(z->data - z->need),
                    (unsigned long long)z->data);
    pack(crc, "4", (uint64_t[]){m->crc});
    if (fseeko(z->fp, (off_t)(m->offset + CRC_AT), SEEK_SET) ||
        fwrite(crc, 1, sizeof crc, z->fp) != sizeof crc ||
        fseeko(z->fp, (off_t)z->pos, SEEK_SET))
        return fail(&r, DITD_EIO, "cannot patch the CRC of %s: %s", m->name, strerror(errno));
    z->n++;
    z->open = false;
    return 0;
}

/* The central directory and the end records. */
static int write_directory(struct npz *z, const struct report *r)
{
    uint8_t b[CENTRAL_LEN + NPZ_MAX_NAME + 4 + CENTRAL_EXTRA], *p;
    uint64_t start = z->pos, size;
    int rc = 0;

    for (size_t i = 0; i < z->n && !rc; i++) {
        const struct member *m = &z->members[i];
        size_t namelen = strlen(m->name);

        /* Signature, made by, needed, flags, stored, time, date, CRC-32, sizes,
         * name, extra and comment lengths, disk, attributes, offset (0xFFFFFFFF
         * are in the extra); the name; the extra: tag, length, sizes, offset. */
        p = pack(b, "42222224442222244", (uint64_t[]){0x02014b50, MADE_BY, VERSION, 0, 0,
                 DOS_TIME, DOS_DATE, m->crc, 0xffffffff, 0xffffffff, namelen, CENTRAL_EXTRA,
                 0, 0, 0, FILE_ATTR, 0xffffffff});
        memcpy(p, m->name, namelen);
        p = pack(p + namelen, "22888", (uint64_t[]){1, CENTRAL_EXTRA - 4, m->size, m->size,
                 m->offset});
        rc = put(z, r, b, (size_t)(p - b));
    }
    if (rc)
        return rc;
    size = z->pos - start;
    /* Zip64 end record: signature, its size, made by, needed, disks, entries
     * on this disk and in all, directory size and offset. */
    p = pack(b, "4822448888", (uint64_t[]){0x06064b50, 56 - 12, MADE_BY, VERSION, 0, 0,
             z->n, z->n, size, start});
    /* Its locator: signature, disk, offset, disks. */
    p = pack(p, "4484", (uint64_t[]){0x07064b50, 0, z->pos, 1});
    /* The classic end record: signature, disks, entries, directory size and
     * offset (capped: the Zip64 record has them), comment length. */
    p = pack(p, "42222442", (uint64_t[]){0x06054b50, 0, 0, CAP(z->n, 0xffff),
             CAP(z->n, 0xffff), CAP(size, 0xffffffff), CAP(start, 0xffffffff), 0});
    return put(z, r, b, (size_t)(p - b));
}

int npz_close(struct npz *z, char *err, size_t errlen)
{
    struct report r = {z->path, err, errlen, &z->failed};
    int rc = usable(z, &r, false);

    if (!rc)
        rc = write_directory(z, &r);
    if (fclose(z->fp) && !rc)
        rc = fail(&r, DITD_EIO, "write error: %s", strerror(errno));
    if (rc)
        unlink(z->path);
    free(z->members);
    free(z->path);
    free(z);
    return rc;
}

void npz_discard(struct npz *z)
{
    if (!z)
        return;
    z->failed = DITD_ECANCELED;
    npz_close(z, NULL, 0);
}
