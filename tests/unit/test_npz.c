/*
 * test_npz.c - the streaming .npz writer: an archive of a uint8 image batch
 * appended in odd-sized pieces, int64 labels and a float32 array, read back
 * by a small ZIP reader here (local headers, Zip64 extras, CRC-32, the npy
 * headers through npy_parse, the central directory, the Zip64 end record,
 * its locator and the classic end record); byte-identical runs; and the
 * refusals: a short member, a long append, an existing file under exclusive
 * create, a member left open, discarding.
 *
 * `test_npz --write PATH` writes the same archive to PATH and exits, for
 * tests/parity/test_npz.py to read with NumPy.
 */
#include "npz.h"
#include "ditd.h"
#include "test.h"

#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>
#include <zlib.h>

static char tmpdir_path[256];

static const char *temp_path(const char *name)
{
    static char path[4][512];
    static int next;
    char *p = path[next++ % 4];

    snprintf(p, sizeof path[0], "%s/%s", tmpdir_path, name);
    return p;
}

/* What an archive should hold: members in order. */
struct member {
    const char *name;
    enum npy_dtype dtype;
    int ndim;
    int64_t shape[4];
    const void *data;
    size_t nbytes;
};

/* The archive tests/parity/test_npz.py checks: as samples.npz, images then
 * labels, plus a float32 array. */
static uint8_t images[3 * 5 * 7 * 3];
static const int64_t labels[3] = {7, 0, 999};
static const float values[6] = {-1.0f, -0.5f, 0.0f, 0.5f, 1.0f, 1.5f};
static const struct member archive[] = {
    {"arr_0", NPY_U8, 4, {3, 5, 7, 3}, images, sizeof images},
    {"arr_1", NPY_I64, 1, {3}, labels, sizeof labels},
    {"arr_2", NPY_F32, 2, {2, 3}, values, sizeof values},
};
#define NMEMBERS (sizeof archive / sizeof archive[0])

static int write_archive(const char *path, char *err, size_t errlen)
{
    static const size_t pieces[] = {1, 7, 13, 64, 3, 128};
    struct npz *z;
    size_t off = 0;
    int rc;

    for (size_t i = 0; i < sizeof images; i++)
        images[i] = (uint8_t)(i * 7 + 3);
    rc = npz_create(&z, path, false, err, errlen);
    if (rc)
        return rc;
    rc = npz_begin(z, "arr_0", NPY_U8, 4, archive[0].shape, err, errlen);
    for (size_t k = 0; !rc && off < sizeof images; k++) {
        size_t n = pieces[k % 6] < sizeof images - off ? pieces[k % 6] : sizeof images - off;

        rc = npz_append(z, images + off, n, err, errlen);
        off += n;
    }
    for (size_t i = 0; i < NMEMBERS; i++) {
        if (!rc && i)
            rc = npz_begin(z, archive[i].name, archive[i].dtype, archive[i].ndim,
                           archive[i].shape, err, errlen);
        if (!rc && i)
            rc = npz_append(z, archive[i].data, archive[i].nbytes, err, errlen);
        if (!rc)
            rc = npz_end(z, err, errlen);
    }
    if (rc) {
        npz_discard(z);
        return rc;
    }
    return npz_close(z, err, errlen);
}

static uint8_t *slurp(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    uint8_t *buf = NULL;
    long n;

    *len = 0;
    if (!fp)
        return NULL;
    if (fseek(fp, 0, SEEK_END) == 0 && (n = ftell(fp)) >= 0 && fseek(fp, 0, SEEK_SET) == 0 &&
        (buf = malloc((size_t)n + 1)) != NULL)
        *len = fread(buf, 1, (size_t)n, fp);
    fclose(fp);
    return buf;
}

static uint64_t rd(const uint8_t *p, int n)
{
    uint64_t v = 0;

    for (int i = n - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* Check the file at path against the n members m, walking it as an unzip
 * would, without trusting a length before checking it fits. */
static void check_archive(const char *path, const struct member *m, size_t n)
{
    uint64_t offsets[8] = {0}, sizes[8] = {0}, crcs[8] = {0}, cd_start, cd_end, off = 0;
    size_t len, i;
    uint8_t *b = slurp(path, &len);

#define FITS(o, k) ((o) <= len && (k) <= len - (o))
    CHECK(b != NULL);
    if (!b)
        return;
    for (i = 0; FITS(off, 4) && rd(b + off, 4) == 0x04034b50; i++) {
        uint64_t nlen, xlen, size = 0, data;
        struct npy_array a;
        char err[DITD_ERR_LEN], want[64];

        CHECK(i < n && FITS(off, 30));
        if (i >= n || !FITS(off, 30))
            break;
        offsets[i] = off;
        crcs[i] = rd(b + off + 14, 4);
        CHECK_EQ_INT(rd(b + off + 4, 2), 45);            /* version needed */
        CHECK_EQ_INT(rd(b + off + 6, 2), 0);             /* flags: no data descriptor */
        CHECK_EQ_INT(rd(b + off + 8, 2), 0);             /* stored */
        CHECK_EQ_INT(rd(b + off + 10, 4), 0x00210000);   /* 1980-01-01 00:00 */
        CHECK_EQ_INT(rd(b + off + 18, 4), 0xffffffff);
        CHECK_EQ_INT(rd(b + off + 22, 4), 0xffffffff);
        nlen = rd(b + off + 26, 2);
        xlen = rd(b + off + 28, 2);
        snprintf(want, sizeof want, "%s.npy", m[i].name);
        CHECK(FITS(off + 30, nlen + xlen));
        if (!FITS(off + 30, nlen + xlen))
            break;
        CHECK(nlen == strlen(want) && memcmp(b + off + 30, want, nlen) == 0);
        for (uint64_t x = off + 30 + nlen; x + 4 <= off + 30 + nlen + xlen;
             x += 4 + rd(b + x + 2, 2)) {
            if (rd(b + x, 2) == 1 && rd(b + x + 2, 2) == 16) {
                size = rd(b + x + 4, 8);
                CHECK_EQ_INT(rd(b + x + 12, 8), size);   /* compressed = uncompressed */
            }
        }
        data = off + 30 + nlen + xlen;
        sizes[i] = size;
        CHECK(size > 0 && FITS(data, size));
        if (!size || !FITS(data, size))
            break;
        CHECK_EQ_INT(crc32(0, b + data, (uInt)size), crcs[i]);
        CHECK_EQ_INT(npy_parse(b + data, (size_t)size, &a, err, sizeof err), 0);
        CHECK_EQ_INT(a.dtype, m[i].dtype);
        CHECK_EQ_INT(a.ndim, m[i].ndim);
        for (int d = 0; d < a.ndim && d < m[i].ndim; d++)
            CHECK_EQ_INT(a.shape[d], m[i].shape[d]);
        CHECK_EQ_INT(a.numel * (int64_t)npy_dtype_size(a.dtype), m[i].nbytes);
        CHECK(a.data && (!m[i].nbytes || memcmp(a.data, m[i].data, m[i].nbytes) == 0));
        npy_free(&a);
        off = data + size;
    }
    CHECK_EQ_INT(i, n);
    /* The central directory: one entry a member, sizes and offset in the extra. */
    cd_start = off;
    for (i = 0; i < n && FITS(off, 46) && rd(b + off, 4) == 0x02014b50; i++) {
        uint64_t nlen = rd(b + off + 28, 2), xlen = rd(b + off + 30, 2);

        CHECK_EQ_INT(rd(b + off + 6, 2), 45);
        CHECK_EQ_INT(rd(b + off + 16, 4), crcs[i]);
        CHECK_EQ_INT(rd(b + off + 20, 4), 0xffffffff);
        CHECK_EQ_INT(rd(b + off + 42, 4), 0xffffffff);
        CHECK_EQ_INT(xlen, 28);
        CHECK(FITS(off + 46, nlen + xlen));
        if (!FITS(off + 46, nlen + xlen) || xlen != 28)
            break;
        CHECK(memcmp(b + off + 46, b + offsets[i] + 30, nlen) == 0);
        CHECK_EQ_INT(rd(b + off + 46 + nlen, 2), 1);
        CHECK_EQ_INT(rd(b + off + 48 + nlen, 2), 24);
        CHECK_EQ_INT(rd(b + off + 50 + nlen, 8), sizes[i]);
        CHECK_EQ_INT(rd(b + off + 58 + nlen, 8), sizes[i]);
        CHECK_EQ_INT(rd(b + off + 66 + nlen, 8), offsets[i]);
        off += 46 + nlen + xlen;
    }
    CHECK_EQ_INT(i, n);
    cd_end = off;
    /* Zip64 end record, its locator, the classic end record, then nothing. */
    CHECK_EQ_INT(len, cd_end + 56 + 20 + 22);
    if (len == cd_end + 98) {
        const uint8_t *e64 = b + cd_end, *loc = e64 + 56, *e = loc + 20;

        CHECK_EQ_INT(rd(e64, 4), 0x06064b50);
        CHECK_EQ_INT(rd(e64 + 4, 8), 44);
        CHECK_EQ_INT(rd(e64 + 14, 2), 45);
        CHECK_EQ_INT(rd(e64 + 16, 8), 0);                /* disks */
        CHECK_EQ_INT(rd(e64 + 24, 8), n);
        CHECK_EQ_INT(rd(e64 + 32, 8), n);
        CHECK_EQ_INT(rd(e64 + 40, 8), cd_end - cd_start);
        CHECK_EQ_INT(rd(e64 + 48, 8), cd_start);
        CHECK_EQ_INT(rd(loc, 4), 0x07064b50);
        CHECK_EQ_INT(rd(loc + 4, 4), 0);
        CHECK_EQ_INT(rd(loc + 8, 8), cd_end);
        CHECK_EQ_INT(rd(loc + 16, 4), 1);
        CHECK_EQ_INT(rd(e, 4), 0x06054b50);
        CHECK_EQ_INT(rd(e + 8, 2), n);
        CHECK_EQ_INT(rd(e + 10, 2), n);
        CHECK_EQ_INT(rd(e + 12, 4), cd_end - cd_start);
        CHECK_EQ_INT(rd(e + 16, 4), cd_start);
        CHECK_EQ_INT(rd(e + 20, 2), 0);                  /* comment */
    }
#undef FITS
    free(b);
}

static void test_archive(void)
{
    const char *one = temp_path("one.npz"), *two = temp_path("two.npz");
    char err[DITD_ERR_LEN] = "";
    size_t len1, len2;
    uint8_t *b1, *b2;

    CHECK_EQ_INT(write_archive(one, err, sizeof err), 0);
    if (err[0])
        fprintf(stderr, "%s\n", err);
    check_archive(one, archive, NMEMBERS);
    /* The same arrays give the same bytes. */
    CHECK_EQ_INT(write_archive(two, err, sizeof err), 0);
    b1 = slurp(one, &len1);
    b2 = slurp(two, &len2);
    CHECK(b1 && b2 && len1 == len2 && memcmp(b1, b2, len1) == 0);
    free(b1);
    free(b2);
    unlink(one);
    unlink(two);
}

/* No members, and a member of no elements: still valid archives. */
static void test_empty(void)
{
    static const struct member none = {"empty", NPY_U8, 4, {0, 8, 8, 3}, NULL, 0};
    const char *path = temp_path("empty.npz");
    char err[DITD_ERR_LEN];
    struct npz *z;

    CHECK_EQ_INT(npz_create(&z, path, true, err, sizeof err), 0);
    CHECK_EQ_INT(npz_close(z, err, sizeof err), 0);
    check_archive(path, NULL, 0);
    CHECK_EQ_INT(npz_create(&z, path, false, err, sizeof err), 0);
    CHECK_EQ_INT(npz_begin(z, none.name, none.dtype, none.ndim, none.shape, err, sizeof err),
                 0);
    CHECK_EQ_INT(npz_append(z, NULL, 0, err, sizeof err), 0);
    CHECK_EQ_INT(npz_end(z, err, sizeof err), 0);
    CHECK_EQ_INT(npz_close(z, err, sizeof err), 0);
    check_archive(path, &none, 1);
    unlink(path);
}

static void test_refusals(void)
{
    const char *path = temp_path("bad.npz");
    const int64_t four[] = {4}, ten[] = {10}, negative[] = {-1};
    const uint8_t bytes[16] = {0};
    char err[DITD_ERR_LEN];
    struct npz *z;
    size_t len;
    uint8_t *b;

    /* A short member: refused at npz_end; the archive is then unusable and
     * npz_close removes it. */
    CHECK_EQ_INT(npz_create(&z, path, true, err, sizeof err), 0);
    CHECK_EQ_INT(npz_begin(z, "arr_0", NPY_F32, 1, four, err, sizeof err), 0);
    CHECK_EQ_INT(npz_append(z, bytes, 8, err, sizeof err), 0);
    CHECK_EQ_INT(npz_end(z, err, sizeof err), DITD_EINVAL);
    CHECK_STR_CONTAINS(err, path);
    CHECK_STR_CONTAINS(err, "arr_0.npy holds 8 data bytes, but its shape needs 16");
    CHECK_EQ_INT(npz_append(z, bytes, 8, err, sizeof err), DITD_EINVAL);
    CHECK_STR_CONTAINS(err, "earlier error");
    CHECK(npz_close(z, err, sizeof err) != 0);
    CHECK(access(path, F_OK) != 0);

    /* A long append: refused before anything is written. */
    CHECK_EQ_INT(npz_create(&z, path, true, err, sizeof err), 0);
    CHECK_EQ_INT(npz_begin(z, "arr_0", NPY_U8, 1, ten, err, sizeof err), 0);
    CHECK_EQ_INT(npz_append(z, bytes, 7, err, sizeof err), 0);
    CHECK_EQ_INT(npz_append(z, bytes, 4, err, sizeof err), DITD_EINVAL);
    CHECK_STR_CONTAINS(err, "4 bytes appended after 7 run past the 10 data bytes");
    npz_discard(z);
    CHECK(access(path, F_OK) != 0);
    npz_discard(NULL);

    /* Bad names, shapes and call orders. */
    CHECK_EQ_INT(npz_create(&z, path, true, err, sizeof err), 0);
    CHECK_EQ_INT(npz_append(z, bytes, 1, err, sizeof err), DITD_EINVAL);
    CHECK_STR_CONTAINS(err, "no member is open");
    npz_discard(z);
    CHECK_EQ_INT(npz_create(&z, path, true, err, sizeof err), 0);
    CHECK_EQ_INT(npz_begin(z, "a/b", NPY_U8, 1, ten, err, sizeof err), DITD_EINVAL);
    CHECK_STR_CONTAINS(err, "bad member name");
    npz_discard(z);
    CHECK_EQ_INT(npz_create(&z, path, true, err, sizeof err), 0);
    CHECK_EQ_INT(npz_begin(z, "arr_0", NPY_U8, 1, negative, err, sizeof err), DITD_EINVAL);
    CHECK_STR_CONTAINS(err, "arr_0.npy: shape dim 0 is negative");
    npz_discard(z);
    CHECK_EQ_INT(npz_create(&z, path, true, err, sizeof err), 0);
    CHECK_EQ_INT(npz_begin(z, "arr_0", NPY_U8, 1, four, err, sizeof err), 0);
    CHECK_EQ_INT(npz_append(z, bytes, 4, err, sizeof err), 0);
    CHECK_EQ_INT(npz_end(z, err, sizeof err), 0);
    CHECK_EQ_INT(npz_begin(z, "arr_0", NPY_U8, 1, four, err, sizeof err), DITD_EINVAL);
    CHECK_STR_CONTAINS(err, "already there");
    npz_discard(z);
    /* A member left open: npz_close fails and removes the file. */
    CHECK_EQ_INT(npz_create(&z, path, true, err, sizeof err), 0);
    CHECK_EQ_INT(npz_begin(z, "arr_0", NPY_U8, 1, four, err, sizeof err), 0);
    CHECK_EQ_INT(npz_close(z, err, sizeof err), DITD_EINVAL);
    CHECK_STR_CONTAINS(err, "arr_0.npy was not finished");
    CHECK(access(path, F_OK) != 0);

    /* Exclusive create leaves an existing file alone; otherwise it is truncated. */
    CHECK_EQ_INT(write_archive(path, err, sizeof err), 0);
    CHECK_EQ_INT(npz_create(&z, path, true, err, sizeof err), DITD_EIO);
    CHECK(z == NULL);
    CHECK_STR_CONTAINS(err, path);
    CHECK_STR_CONTAINS(err, "already exists");
    CHECK_STR_CONTAINS(err, "--force");
    check_archive(path, archive, NMEMBERS);
    CHECK_EQ_INT(npz_create(&z, path, false, err, sizeof err), 0);
    b = slurp(path, &len);
    CHECK_EQ_INT(len, 0);
    free(b);
    npz_discard(z);
    CHECK(access(path, F_OK) != 0);

    CHECK_EQ_INT(npz_create(&z, temp_path("no/such/dir.npz"), true, err, sizeof err),
                 DITD_ENOENT);
    CHECK_STR_CONTAINS(err, "cannot create");
}

int main(int argc, char **argv)
{
    const char *dir = getenv("TMPDIR");

    if (argc == 3 && strcmp(argv[1], "--write") == 0) {
        char err[DITD_ERR_LEN];

        if (write_archive(argv[2], err, sizeof err)) {
            fprintf(stderr, "test_npz: %s\n", err);
            return 1;
        }
        return 0;
    }
    if (argc != 1) {
        fprintf(stderr, "usage: test_npz [--write PATH]\n");
        return 2;
    }
    snprintf(tmpdir_path, sizeof tmpdir_path, "%s/test_npz_XXXXXX",
             dir && *dir ? dir : "/tmp");
    if (!mkdtemp(tmpdir_path)) {
        perror("mkdtemp");
        return 1;
    }
    test_archive();
    test_empty();
    test_refusals();
    rmdir(tmpdir_path);
    return test_status();
}
