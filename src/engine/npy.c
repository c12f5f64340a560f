/*
 * npy.c - read and write NumPy .npy arrays.
 *
 * A file is the magic "\x93NUMPY", a version (1.0: 2-byte header length;
 * 2.0 and 3.0: 4-byte), a Python dict literal such as
 * "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }" padded with
 * spaces and a newline, then the raw elements. Only what the CLI and tests
 * exchange is accepted: little-endian f4/f8/i4/i8 and u1 in C order. Anything else,
 * and every size that does not add up, is refused with a message; the
 * parser reads a hostile file without trusting any length in it.
 */
#include "npy.h"
#include "ditd.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAGIC "\x93NUMPY"
#define MAGIC_LEN 6
#define PRELUDE_MAX 12          /* magic, version, 4-byte header length */

static const struct {
    const char *descr;
    size_t size;
} dtypes[] = {
    [NPY_F32] = {"<f4", 4},
    [NPY_F64] = {"<f8", 8},
    [NPY_I32] = {"<i4", 4},
    [NPY_I64] = {"<i8", 8},
    [NPY_U8] = {"|u1", 1},
};
#define NDTYPES (sizeof dtypes / sizeof dtypes[0])

struct report {
    const char *file;           /* prefixes the message; NULL for none */
    char *err;
    size_t errlen;
};

void npy_verror(char *err, size_t errlen, const char *file, const char *fmt, va_list ap)
{
    char text[DITD_ERR_LEN];

    if (!err || !errlen)
        return;
    vsnprintf(text, sizeof text, fmt, ap);
    if (file)
        snprintf(err, errlen, "%s: %s", file, text);
    else
        snprintf(err, errlen, "%s", text);
}

static int fail(const struct report *r, int rc, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    npy_verror(r->err, r->errlen, r->file, fmt, ap);
    va_end(ap);
    return rc;
}

size_t npy_dtype_size(enum npy_dtype dtype)
{
    return (unsigned)dtype < NDTYPES ? dtypes[dtype].size : 0;
}

/* "(2, 3)", "(3,)" or "()": the Python tuple NumPy writes. */
static void format_shape(char *buf, size_t len, int ndim, const int64_t *shape)
{
    size_t used = (size_t)snprintf(buf, len, "(");

    for (int i = 0; i < ndim && used < len; i++)
        used += (size_t)snprintf(buf + used, len - used, "%s%lld", i ? ", " : "",
                                 (long long)shape[i]);
    if (used < len)
        snprintf(buf + used, len - used, ndim == 1 ? ",)" : ")");
}

/* Magic and version; the header text starts at *hoff and is *hlen bytes.
 * Needs 10 bytes for version 1 and 12 for versions 2 and 3. */
static int parse_prelude(const struct report *r, const uint8_t *b, size_t len,
                         size_t *hoff, size_t *hlen)
{
    if (len < MAGIC_LEN || memcmp(b, MAGIC, MAGIC_LEN) != 0)
        return fail(r, DITD_EINVAL, "not a .npy file (no \\x93NUMPY magic)");
    if (len < 10)
        return fail(r, DITD_EINVAL, "file truncated inside the .npy prelude");
    if (b[7] != 0 || b[6] < 1 || b[6] > 3)
        return fail(r, DITD_EINVAL, ".npy format version %u.%u is not supported "
                    "(1.0, 2.0 and 3.0 are)", b[6], b[7]);
    if (b[6] == 1) {
        *hlen = (size_t)b[8] | (size_t)b[9] << 8;
        *hoff = 10;
    } else {
        if (len < 12)
            return fail(r, DITD_EINVAL, "file truncated inside the .npy prelude");
        *hlen = (size_t)b[8] | (size_t)b[9] << 8 | (size_t)b[10] << 16 |
                (size_t)b[11] << 24;
        *hoff = 12;
    }
    if (*hlen > NPY_MAX_HEADER)
        return fail(r, DITD_EINVAL, "header of %zu bytes exceeds the limit of %u",
                    *hlen, NPY_MAX_HEADER);
    return 0;
}

/* A cursor over the header text. */
struct cursor {
    const char *s;
    size_t n, i;
};

static void skip_ws(struct cursor *c)
{
    while (c->i < c->n && (c->s[c->i] == ' ' || c->s[c->i] == '\t' ||
                           c->s[c->i] == '\n' || c->s[c->i] == '\r'))
        c->i++;
}

static bool eat(struct cursor *c, char ch)
{
    skip_ws(c);
    if (c->i < c->n && c->s[c->i] == ch) {
        c->i++;
        return true;
    }
    return false;
}

/* A quoted Python string without escapes into out (truncated to outlen-1,
 * which only makes an unknown value look different in the message). */
static bool read_string(struct cursor *c, char *out, size_t outlen)
{
    char q;
    size_t k = 0;

    skip_ws(c);
    if (c->i >= c->n || (c->s[c->i] != '\'' && c->s[c->i] != '"'))
        return false;
    q = c->s[c->i++];
    while (c->i < c->n && c->s[c->i] != q) {
        char ch = c->s[c->i++];

        if (ch == '\\' || ch < 0x20)
            return false;
        if (k + 1 < outlen)
            out[k++] = ch;
    }
    out[k] = '\0';
    return c->i++ < c->n;
}

static bool read_word(struct cursor *c, const char *word)
{
    size_t len = strlen(word);

    skip_ws(c);
    if (c->n - c->i < len || memcmp(c->s + c->i, word, len) != 0)
        return false;
    c->i += len;
    return true;
}

static int parse_descr(const struct report *r, struct cursor *c, struct npy_array *out)
{
    char d[32];

    if (!read_string(c, d, sizeof d))
        return fail(r, DITD_EINVAL, "'descr' is not a simple dtype string (structured "
                    "arrays are not supported)");
    for (size_t k = 0; k < NDTYPES; k++) {
        if (strcmp(d, dtypes[k].descr) == 0) {
            out->dtype = (enum npy_dtype)k;
            return 0;
        }
    }
    if (d[0] == '>')
        return fail(r, DITD_EINVAL, "dtype '%s' is big-endian; save the array as "
                    "little-endian (arr.astype('<%s'))", d, d + 1);
    return fail(r, DITD_EINVAL, "dtype '%s' is not supported; use '<f4', '<f8', "
                "'<i4', '<i8' or '|u1'", d);
}

static int parse_shape(const struct report *r, struct cursor *c, struct npy_array *out)
{
    int ndim = 0;

    if (!eat(c, '('))
        return fail(r, DITD_EINVAL, "'shape' is not a tuple");
    while (!eat(c, ')')) {
        int64_t v = 0;
        bool digits = false;

        if (ndim == NPY_MAX_DIMS)
            return fail(r, DITD_EINVAL, "shape has more than %d dims", NPY_MAX_DIMS);
        skip_ws(c);
        if (c->i < c->n && c->s[c->i] == '-')
            return fail(r, DITD_EINVAL, "shape dim %d is negative", ndim);
        while (c->i < c->n && c->s[c->i] >= '0' && c->s[c->i] <= '9') {
            /* 2^62 and beyond cannot describe data in a file anyway. */
            if (v > (INT64_C(1) << 62) / 10)
                return fail(r, DITD_EINVAL, "shape dim %d is absurdly large", ndim);
            v = v * 10 + (c->s[c->i++] - '0');
            digits = true;
        }
        if (!digits)
            return fail(r, DITD_EINVAL, "shape dim %d is not a non-negative integer", ndim);
        if (c->i < c->n && c->s[c->i] == 'L')   /* Python 2 long suffix */
            c->i++;
        out->shape[ndim++] = v;
        if (!eat(c, ',')) {
            if (!eat(c, ')'))
                return fail(r, DITD_EINVAL, "shape tuple is malformed");
            break;
        }
    }
    out->ndim = ndim;
    return 0;
}

/* The header dict: exactly the keys descr, fortran_order and shape, in any
 * order, then only padding. */
static int parse_dict(const struct report *r, const char *text, size_t n,
                      struct npy_array *out)
{
    struct cursor c = {text, n, 0};
    unsigned seen = 0;
    int rc;

    if (!eat(&c, '{'))
        return fail(r, DITD_EINVAL, "header is not a Python dict literal");
    while (!eat(&c, '}')) {
        char key[32];
        unsigned bit;

        if (!read_string(&c, key, sizeof key) || !eat(&c, ':'))
            return fail(r, DITD_EINVAL, "header dict is malformed at byte %zu", c.i);
        if (strcmp(key, "descr") == 0) {
            bit = 1;
            rc = seen & bit ? 1 : parse_descr(r, &c, out);
        } else if (strcmp(key, "fortran_order") == 0) {
            bit = 2;
            rc = seen & bit ? 1 : 0;
            if (!rc && read_word(&c, "True"))
                return fail(r, DITD_EINVAL, "fortran_order is True (column-major); save "
                            "a C-ordered array (np.ascontiguousarray)");
            if (!rc && !read_word(&c, "False"))
                return fail(r, DITD_EINVAL, "fortran_order is not True or False");
        } else if (strcmp(key, "shape") == 0) {
            bit = 4;
            rc = seen & bit ? 1 : parse_shape(r, &c, out);
        } else {
            return fail(r, DITD_EINVAL, "unexpected header key '%s'", key);
        }
        if (rc == 1)
            return fail(r, DITD_EINVAL, "header key '%s' repeats", key);
        if (rc)
            return rc;
        seen |= bit;
        if (!eat(&c, ',')) {
            if (!eat(&c, '}'))
                return fail(r, DITD_EINVAL, "header dict is malformed at byte %zu", c.i);
            break;
        }
    }
    if (seen != 7)
        return fail(r, DITD_EINVAL, "header lacks '%s'", !(seen & 1) ? "descr" :
                    !(seen & 2) ? "fortran_order" : "shape");
    skip_ws(&c);
    if (c.i != c.n)
        return fail(r, DITD_EINVAL, "unexpected bytes after the header dict");
    return 0;
}

/* numel and byte size of out's shape in checked arithmetic. */
static int array_size(const struct report *r, struct npy_array *out, uint64_t *nbytes)
{
    uint64_t numel = 1;

    for (int i = 0; i < out->ndim; i++)
        if (__builtin_mul_overflow(numel, (uint64_t)out->shape[i], &numel))
            return fail(r, DITD_EINVAL, "the element count of the shape overflows");
    if (__builtin_mul_overflow(numel, (uint64_t)dtypes[out->dtype].size, nbytes) ||
        *nbytes > (uint64_t)SIZE_MAX / 2)
        return fail(r, DITD_EINVAL, "the shape describes an absurd amount of data");
    out->numel = (int64_t)numel;
    return 0;
}

static int size_mismatch(const struct report *r, const struct npy_array *a,
                         uint64_t have, uint64_t need)
{
    char dims[200];

    format_shape(dims, sizeof dims, a->ndim, a->shape);
    return fail(r, DITD_EINVAL, "holds %llu data bytes, but shape %s of '%s' needs %llu; "
                "the file is truncated or has trailing bytes", (unsigned long long)have,
                dims, dtypes[a->dtype].descr, (unsigned long long)need);
}

int npy_parse(const void *buf, size_t len, struct npy_array *out, char *err, size_t errlen)
{
    const struct report r = {"<buffer>", err, errlen};
    const uint8_t *b = buf;
    size_t hoff = 0, hlen = 0;
    uint64_t nbytes = 0;
    int rc;

    memset(out, 0, sizeof *out);
    if (!buf)
        return fail(&r, DITD_EINVAL, "no buffer given");
    rc = parse_prelude(&r, b, len, &hoff, &hlen);
    if (rc)
        return rc;
    if (hlen > len - hoff)
        return fail(&r, DITD_EINVAL, "the header runs past the end of the file");
    rc = parse_dict(&r, (const char *)b + hoff, hlen, out);
    if (!rc)
        rc = array_size(&r, out, &nbytes);
    if (!rc && nbytes != len - hoff - hlen)
        rc = size_mismatch(&r, out, len - hoff - hlen, nbytes);
    if (rc)
        goto clear;
    out->data = malloc(nbytes ? (size_t)nbytes : 1);
    if (!out->data) {
        rc = fail(&r, DITD_ENOMEM, "out of memory for %llu bytes",
                  (unsigned long long)nbytes);
        goto clear;
    }
    if (nbytes)
        memcpy(out->data, b + hoff + hlen, (size_t)nbytes);
    return 0;

clear:
    memset(out, 0, sizeof *out);
    return rc;
}

/* pread exactly n bytes at off; a short read means the file shrank. */
static int read_full(int fd, void *buf, size_t n, off_t off)
{
    uint8_t *p = buf;

    while (n) {
        ssize_t got = pread(fd, p, n, off);

        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            return -1;
        p += got;
        n -= (size_t)got;
        off += got;
    }
    return 0;
}

int npy_read(const char *path, struct npy_array *out, char *err, size_t errlen)
{
    const struct report r = {path, err, errlen};
    uint8_t prelude[PRELUDE_MAX];
    char *text;
    size_t hoff = 0, hlen = 0, plen;
    uint64_t nbytes = 0, have;
    struct stat sb;
    int fd, rc;

    memset(out, 0, sizeof *out);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return fail(&r, errno == ENOENT ? DITD_ENOENT : DITD_EIO, "cannot open: %s",
                    strerror(errno));
    if (fstat(fd, &sb) || !S_ISREG(sb.st_mode)) {
        rc = fail(&r, DITD_EIO, "not a readable regular file");
        goto close_fd;
    }
    plen = (uint64_t)sb.st_size < PRELUDE_MAX ? (size_t)sb.st_size : PRELUDE_MAX;
    if (read_full(fd, prelude, plen, 0)) {
        rc = fail(&r, DITD_EIO, "read error");
        goto close_fd;
    }
    rc = parse_prelude(&r, prelude, plen, &hoff, &hlen);
    if (rc)
        goto close_fd;
    if ((uint64_t)sb.st_size - hoff < hlen) {
        rc = fail(&r, DITD_EINVAL, "the header runs past the end of the file");
        goto close_fd;
    }
    text = malloc(hlen ? hlen : 1);
    if (!text) {
        rc = fail(&r, DITD_ENOMEM, "out of memory");
        goto close_fd;
    }
    rc = read_full(fd, text, hlen, (off_t)hoff) ? fail(&r, DITD_EIO, "read error")
                                                : parse_dict(&r, text, hlen, out);
    free(text);
    if (!rc)
        rc = array_size(&r, out, &nbytes);
    have = (uint64_t)sb.st_size - hoff - hlen;
    if (!rc && nbytes != have)
        rc = size_mismatch(&r, out, have, nbytes);
    if (rc)
        goto clear;
    out->data = malloc(nbytes ? (size_t)nbytes : 1);
    if (!out->data) {
        rc = fail(&r, DITD_ENOMEM, "out of memory for %llu bytes",
                  (unsigned long long)nbytes);
        goto clear;
    }
    if (read_full(fd, out->data, (size_t)nbytes, (off_t)(hoff + hlen))) {
        rc = fail(&r, DITD_EIO, "read error in the data (did the file change?)");
        goto free_data;
    }
    close(fd);
    return 0;

free_data:
    free(out->data);
clear:
    memset(out, 0, sizeof *out);
close_fd:
    close(fd);
    return rc;
}

int npy_header(uint8_t *buf, size_t buflen, enum npy_dtype dtype, int ndim,
               const int64_t *shape, size_t *len, uint64_t *data_bytes, char *err,
               size_t errlen)
{
    const struct report r = {NULL, err, errlen};
    struct npy_array a = {.dtype = dtype, .ndim = ndim};
    char dims[256];
    size_t hlen;
    int rc;

    if ((unsigned)dtype >= NDTYPES || ndim < 0 || ndim > NPY_MAX_DIMS || (ndim && !shape))
        return fail(&r, DITD_EINVAL, "bad dtype or rank");
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0)
            return fail(&r, DITD_EINVAL, "shape dim %d is negative", i);
        a.shape[i] = shape[i];
    }
    rc = array_size(&r, &a, data_bytes);
    if (rc)
        return rc;
    if (!buf || buflen < NPY_HEADER_BUF)
        return fail(&r, DITD_EINVAL, "header buffer of %zu bytes is too small", buflen);
    format_shape(dims, sizeof dims, ndim, shape);
    memcpy(buf, MAGIC "\x01\x00", MAGIC_LEN + 2);
    hlen = 10 + (size_t)snprintf((char *)buf + 10, buflen - 10,
                                 "{'descr': '%s', 'fortran_order': False, 'shape': %s, }",
                                 dtypes[dtype].descr, dims);
    /* Spaces then '\n' so that the data starts on a 64-byte boundary. */
    while ((hlen + 1) % 64)
        buf[hlen++] = ' ';
    buf[hlen++] = '\n';
    buf[8] = (uint8_t)((hlen - 10) & 0xff);
    buf[9] = (uint8_t)((hlen - 10) >> 8);
    *len = hlen;
    return 0;
}

int npy_write(const char *path, enum npy_dtype dtype, int ndim, const int64_t *shape,
              const void *data, char *err, size_t errlen)
{
    const struct report r = {path, err, errlen};
    uint8_t header[NPY_HEADER_BUF];
    char why[DITD_ERR_LEN];
    uint64_t nbytes = 0;
    size_t hlen = 0;
    FILE *fp;
    int rc;

    rc = npy_header(header, sizeof header, dtype, ndim, shape, &hlen, &nbytes, why,
                    sizeof why);
    if (rc)
        return fail(&r, rc, "%s", why);
    if (nbytes && !data)
        return fail(&r, DITD_EINVAL, "no data given");
    fp = fopen(path, "wb");
    if (!fp)
        return fail(&r, errno == ENOENT ? DITD_ENOENT : DITD_EIO, "cannot create: %s",
                    strerror(errno));
    if (fwrite(header, 1, hlen, fp) != hlen ||
        (nbytes && fwrite(data, 1, (size_t)nbytes, fp) != (size_t)nbytes)) {
        rc = fail(&r, DITD_EIO, "write error: %s", strerror(errno));
        fclose(fp);
        goto remove_file;
    }
    if (fclose(fp)) {
        rc = fail(&r, DITD_EIO, "write error: %s", strerror(errno));
        goto remove_file;
    }
    return 0;

remove_file:
    unlink(path);
    return rc;
}

void npy_free(struct npy_array *a)
{
    if (!a)
        return;
    free(a->data);
    memset(a, 0, sizeof *a);
}
