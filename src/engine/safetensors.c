/*
 * safetensors.c - map and validate .safetensors files.
 *
 * A file is an 8-byte little-endian header length N, N bytes of JSON, then
 * the data buffer. Nothing is handed out until every rule of docs/models.md
 * ("safetensors validation") holds, so the rest of the engine can trust
 * shapes, offsets and sizes without checking them again. This file knows
 * nothing about models: which tensors must exist and their shapes are the
 * loader's business.
 *
 * The input is hostile by assumption: every length is bounded before use,
 * all arithmetic on sizes is checked u64 arithmetic, JSON types are checked
 * before a number is read, and no multi-byte value is read through a
 * misaligned pointer (the header length N need not be a multiple of 8).
 */
#include "safetensors.h"
#include "ditd.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* F32 tensors are used in place and F16 is decoded byte by byte as little
 * endian; a big-endian host would need byte swapping that nobody tests. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c assumes a little-endian host"
#endif

struct dtype_info {
    const char *name;
    unsigned bits;
};

static const struct dtype_info dtypes[ST_DTYPE_COUNT] = {
    [ST_BOOL] = {"BOOL", 8},         [ST_U8] = {"U8", 8},
    [ST_I8] = {"I8", 8},             [ST_I16] = {"I16", 16},
    [ST_U16] = {"U16", 16},          [ST_F16] = {"F16", 16},
    [ST_BF16] = {"BF16", 16},        [ST_I32] = {"I32", 32},
    [ST_U32] = {"U32", 32},          [ST_F32] = {"F32", 32},
    [ST_F64] = {"F64", 64},          [ST_I64] = {"I64", 64},
    [ST_U64] = {"U64", 64},          [ST_F8_E4M3] = {"F8_E4M3", 8},
    [ST_F8_E5M2] = {"F8_E5M2", 8},   [ST_F8_E8M0] = {"F8_E8M0", 8},
    [ST_F4] = {"F4", 4},             [ST_F6_E2M3] = {"F6_E2M3", 6},
    [ST_F6_E3M2] = {"F6_E3M2", 6},   [ST_C64] = {"C64", 64},
};

static const char *const fault_names[ST_FAULT_COUNT] = {
    [ST_OK] = "ok",
    [ST_FAULT_IO] = "io",
    [ST_FAULT_SHORT_FILE] = "short_file",
    [ST_FAULT_HEADER_TOO_LARGE] = "header_too_large",
    [ST_FAULT_HEADER_PAST_EOF] = "header_past_eof",
    [ST_FAULT_HEADER_START] = "header_start",
    [ST_FAULT_HEADER_UTF8] = "header_utf8",
    [ST_FAULT_TOO_MANY_ITEMS] = "too_many_items",
    [ST_FAULT_HEADER_JSON] = "header_json",
    [ST_FAULT_DUPLICATE_NAME] = "duplicate_name",
    [ST_FAULT_METADATA] = "metadata",
    [ST_FAULT_ENTRY] = "entry",
    [ST_FAULT_DTYPE] = "dtype",
    [ST_FAULT_SHAPE] = "shape",
    [ST_FAULT_SIZE_OVERFLOW] = "size_overflow",
    [ST_FAULT_NOT_BYTE_ALIGNED] = "not_byte_aligned",
    [ST_FAULT_OFFSETS] = "offsets",
    [ST_FAULT_OFFSETS_ORDER] = "offsets_order",
    [ST_FAULT_PAST_EOF] = "past_eof",
    [ST_FAULT_SIZE_MISMATCH] = "size_mismatch",
    [ST_FAULT_HOLE] = "hole",
    [ST_FAULT_OVERLAP] = "overlap",
    [ST_FAULT_TRAILING] = "trailing",
    [ST_FAULT_NOMEM] = "nomem",
};

/* Where messages go and what they call the file. */
struct report {
    const char *file;
    char *err;
    size_t errlen;
    enum st_fault fault;
};

/* Copy a tensor name for a message: at most 64 bytes, cut on a UTF-8
 * boundary, control characters and quotes replaced, so that a hostile name
 * can neither forge log lines nor fill the message. */
static void printable_name(char *dst, size_t dstlen, const char *name)
{
    size_t n = strlen(name), max = dstlen - 4, i;

    if (n > max) {
        n = max;
        while (n > 0 && ((unsigned char)name[n] & 0xc0) == 0x80)
            n--;
    }
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        dst[i] = (c < 0x20 || c == 0x7f || c == '"' || c == '\\') ? '?' : (char)c;
    }
    if (n < strlen(name))
        memcpy(dst + i, "...", 3), i += 3;
    dst[i] = '\0';
}

/* Record fault and write "<file>: tensor "<name>": <text>". Returns the
 * DITD_E* code that goes with the fault. */
static int fail(struct report *r, enum st_fault fault, const char *tensor,
                const char *fmt, ...)
{
    char name[72], text[DITD_ERR_LEN];
    va_list ap;

    r->fault = fault;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    if (r->err && r->errlen) {
        if (tensor) {
            printable_name(name, sizeof name, tensor);
            snprintf(r->err, r->errlen, "%s: tensor \"%s\": %s", r->file, name, text);
        } else {
            snprintf(r->err, r->errlen, "%s: %s", r->file, text);
        }
        /* jansson quotes header bytes in its messages; keep them on one line. */
        for (char *p = r->err; *p; p++)
            if ((unsigned char)*p < 0x20 || *p == 0x7f)
                *p = '?';
    }
    if (fault == ST_FAULT_NOMEM)
        return DITD_ENOMEM;
    return fault == ST_FAULT_IO ? DITD_EIO : DITD_EINVAL;
}

static uint64_t read_le64(const uint8_t *p)
{
    uint64_t v = 0;

    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* Offset of the first byte that is not part of a well-formed UTF-8
 * sequence (no overlongs, no surrogates, nothing above U+10FFFF), or n. */
static size_t utf8_check(const uint8_t *s, size_t n)
{
    size_t i = 0;

    while (i < n) {
        uint8_t c = s[i];
        size_t len;
        uint8_t lo = 0x80, hi = 0xbf;

        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf)
            len = 2;
        else if (c >= 0xe0 && c <= 0xef)
            len = 3;
        else if (c >= 0xf0 && c <= 0xf4)
            len = 4;
        else
            return i;
        /* The second byte carries the overlong, surrogate and range rules. */
        if (c == 0xe0)
            lo = 0xa0;
        else if (c == 0xed)
            hi = 0x9f;
        else if (c == 0xf0)
            lo = 0x90;
        else if (c == 0xf4)
            hi = 0x8f;
        if (n - i < len || s[i + 1] < lo || s[i + 1] > hi)
            return i;
        for (size_t k = 2; k < len; k++)
            if ((s[i + k] & 0xc0) != 0x80)
                return i;
        i += len;
    }
    return n;
}

/* Upper bound on the keys and values jansson would build: each one but the
 * root follows a '{', '[', ',' or ':' outside strings. One pass, no
 * allocation, valid or not as JSON. */
static uint64_t count_items(const uint8_t *s, size_t n)
{
    uint64_t items = 1;
    bool in_string = false;

    for (size_t i = 0; i < n; i++) {
        uint8_t c = s[i];

        if (in_string) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == '{' || c == '[' || c == ',' || c == ':') {
            items++;
        }
    }
    return items;
}

static int find_dtype(const char *name, enum st_dtype *out)
{
    for (int i = 0; i < ST_DTYPE_COUNT; i++) {
        if (strcmp(dtypes[i].name, name) == 0) {
            *out = (enum st_dtype)i;
            return 0;
        }
    }
    return -1;
}

/* "[2, 3]" into buf, for size messages. */
static void format_shape(char *buf, size_t len, const struct st_tensor *t)
{
    size_t used = 0;

    used += (size_t)snprintf(buf, len, "[");
    for (int i = 0; i < t->ndim && used < len; i++)
        used += (size_t)snprintf(buf + used, len - used, "%s%lld", i ? ", " : "",
                                 (long long)t->shape[i]);
    if (used < len)
        snprintf(buf + used, len - used, "]");
}

static int check_metadata(struct report *r, json_t *meta)
{
    const char *key;
    json_t *val;

    if (!json_is_object(meta))
        return fail(r, ST_FAULT_METADATA, NULL,
                    "__metadata__ is not an object; it must map strings to strings "
                    "(rewrite it, or drop it: it is optional)");
    json_object_foreach(meta, key, val) {
        if (!json_is_string(val)) {
            char name[72];

            printable_name(name, sizeof name, key);
            return fail(r, ST_FAULT_METADATA, NULL,
                        "__metadata__ value of \"%s\" is not a string; the format allows "
                        "string values only (store numbers as text)", name);
        }
    }
    return 0;
}

static int check_shape(struct report *r, const char *name, json_t *shape,
                       struct st_tensor *t)
{
    size_t i;
    json_t *dim;

    if (!json_is_array(shape))
        return fail(r, ST_FAULT_SHAPE, name, "shape is not an array of integers");
    if (json_array_size(shape) > ST_MAX_DIMS)
        return fail(r, ST_FAULT_SHAPE, name, "shape has %zu dims, more than the %d supported",
                    json_array_size(shape), ST_MAX_DIMS);
    json_array_foreach(shape, i, dim) {
        json_int_t v;

        if (!json_is_integer(dim))
            return fail(r, ST_FAULT_SHAPE, name,
                        "shape dim %zu is not an integer (write dims as whole numbers)", i);
        v = json_integer_value(dim);
        if (v < 0)
            return fail(r, ST_FAULT_SHAPE, name, "shape dim %zu is negative (%lld); dims must be >= 0",
                        i, (long long)v);
        if (v > ST_MAX_DIM)
            return fail(r, ST_FAULT_SHAPE, name,
                        "shape dim %zu is %lld, above the limit 2^31", i, (long long)v);
        t->shape[i] = (int64_t)v;
    }
    t->ndim = (int)json_array_size(shape);
    return 0;
}

/* Element count and byte size in checked u64 arithmetic. A product can be 0
 * only through a literal 0 dim: a wrapped product would otherwise pass for
 * an empty tensor and skip the bounds checks (LiteRT#9255). */
static int check_size(struct report *r, const char *name, struct st_tensor *t)
{
    uint64_t numel = 1, bits;
    bool zero_dim = false;

    for (int i = 0; i < t->ndim; i++) {
        zero_dim |= t->shape[i] == 0;
        if (__builtin_mul_overflow(numel, (uint64_t)t->shape[i], &numel))
            return fail(r, ST_FAULT_SIZE_OVERFLOW, name,
                        "the element count of the shape overflows 64 bits");
    }
    if (numel == 0 && !zero_dim)
        return fail(r, ST_FAULT_SIZE_OVERFLOW, name,
                    "the element count wraps to 0 without a 0 dim");
    if (__builtin_mul_overflow(numel, (uint64_t)dtypes[t->dtype].bits, &bits))
        return fail(r, ST_FAULT_SIZE_OVERFLOW, name,
                    "the size in bits of %llu %s elements overflows 64 bits",
                    (unsigned long long)numel, dtypes[t->dtype].name);
    if (bits % 8)
        return fail(r, ST_FAULT_NOT_BYTE_ALIGNED, name,
                    "%llu %s elements are %llu bits, not a whole number of bytes",
                    (unsigned long long)numel, dtypes[t->dtype].name,
                    (unsigned long long)bits);
    t->numel = (int64_t)numel;   /* <= 2^62: bits >= 4 per element */
    t->nbytes = (size_t)(bits / 8);
    return 0;
}

/* Validate one entry and fill t; data/data_len is the data buffer. */
static int check_entry(struct report *r, const char *name, json_t *entry,
                       const uint8_t *data, uint64_t data_len, struct st_tensor *t)
{
    json_t *dtype, *shape, *offsets, *b, *e;
    uint64_t begin, end;
    int rc;

    if (!json_is_object(entry))
        return fail(r, ST_FAULT_ENTRY, name,
                    "entry is not an object with dtype, shape and data_offsets");
    dtype = json_object_get(entry, "dtype");
    shape = json_object_get(entry, "shape");
    offsets = json_object_get(entry, "data_offsets");
    if (!dtype || !shape || !offsets)
        return fail(r, ST_FAULT_ENTRY, name, "entry lacks \"%s\"",
                    !dtype ? "dtype" : !shape ? "shape" : "data_offsets");
    if (json_object_size(entry) != 3)
        return fail(r, ST_FAULT_ENTRY, name,
                    "entry has keys other than dtype, shape and data_offsets "
                    "(put extra information in __metadata__)");

    if (!json_is_string(dtype))
        return fail(r, ST_FAULT_DTYPE, name, "dtype is not a string");
    if (find_dtype(json_string_value(dtype), &t->dtype)) {
        char dname[72];

        printable_name(dname, sizeof dname, json_string_value(dtype));
        return fail(r, ST_FAULT_DTYPE, name,
                    "unknown dtype \"%s\" (known: BOOL, U8, I8, I16, U16, F16, BF16, I32, "
                    "U32, F32, F64, I64, U64, F8_E4M3, F8_E5M2, F8_E8M0, F4, F6_E2M3, "
                    "F6_E3M2, C64)", dname);
    }
    rc = check_shape(r, name, shape, t);
    if (rc)
        return rc;
    rc = check_size(r, name, t);
    if (rc)
        return rc;

    if (!json_is_array(offsets) || json_array_size(offsets) != 2)
        return fail(r, ST_FAULT_OFFSETS, name,
                    "data_offsets is not an array of two integers [begin, end]");
    b = json_array_get(offsets, 0);
    e = json_array_get(offsets, 1);
    if (!json_is_integer(b) || !json_is_integer(e) ||
        json_integer_value(b) < 0 || json_integer_value(e) < 0)
        return fail(r, ST_FAULT_OFFSETS, name,
                    "data_offsets must be two non-negative integers");
    begin = (uint64_t)json_integer_value(b);
    end = (uint64_t)json_integer_value(e);
    if (begin > end)
        return fail(r, ST_FAULT_OFFSETS_ORDER, name,
                    "data_offsets begin %llu is after end %llu",
                    (unsigned long long)begin, (unsigned long long)end);
    if (end > data_len)
        return fail(r, ST_FAULT_PAST_EOF, name,
                    "data ends at byte %llu of a %llu-byte data buffer; the file is "
                    "truncated (download it again)",
                    (unsigned long long)end, (unsigned long long)data_len);
    if (end - begin != (uint64_t)t->nbytes) {
        char dims[160];

        format_shape(dims, sizeof dims, t);
        return fail(r, ST_FAULT_SIZE_MISMATCH, name,
                    "data_offsets span %llu bytes but shape %s of %s needs %zu; "
                    "the header and data disagree (re-export the file)",
                    (unsigned long long)(end - begin), dims, dtypes[t->dtype].name,
                    t->nbytes);
    }
    t->data = data + begin;
    return 0;
}

static int cmp_offset(const void *a, const void *b)
{
    const struct st_tensor *x = *(const struct st_tensor *const *)a;
    const struct st_tensor *y = *(const struct st_tensor *const *)b;

    if (x->data != y->data)
        return x->data < y->data ? -1 : 1;
    if (x->nbytes != y->nbytes)
        return x->nbytes < y->nbytes ? -1 : 1;
    return strcmp(x->name, y->name);
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(((const struct st_tensor *)a)->name, ((const struct st_tensor *)b)->name);
}

/* Sorted by offset, each tensor must begin where the previous one ended,
 * the first at 0 and the last end at the end of the file: no hole, no
 * overlap, no trailing byte (nothing else can hide in the file). */
static int check_tiling(struct report *r, struct st_tensor *ts, int count,
                        const uint8_t *data, uint64_t data_len)
{
    struct st_tensor **order;
    const uint8_t *pos = data;
    const char *prev = NULL;
    int rc = 0;

    order = malloc((size_t)(count ? count : 1) * sizeof *order);
    if (!order)
        return fail(r, ST_FAULT_NOMEM, NULL, "out of memory sorting %d tensors", count);
    for (int i = 0; i < count; i++)
        order[i] = &ts[i];
    qsort(order, (size_t)count, sizeof *order, cmp_offset);
    for (int i = 0; i < count && !rc; i++) {
        const struct st_tensor *t = order[i];

        if (t->data > pos)
            rc = fail(r, ST_FAULT_HOLE, t->name,
                      "%zu unused bytes lie before it (after %s%s%s); tensors must "
                      "fill the data buffer back to back", (size_t)(t->data - pos),
                      prev ? "\"" : "the header", prev ? prev : "", prev ? "\"" : "");
        else if (t->data < pos)
            rc = fail(r, ST_FAULT_OVERLAP, t->name,
                      "its bytes overlap those of \"%s\"; each byte belongs to one tensor",
                      prev);
        pos = t->data + t->nbytes;
        prev = t->name;
    }
    free(order);
    if (!rc && (uint64_t)(pos - data) != data_len)
        rc = fail(r, ST_FAULT_TRAILING, NULL,
                  "%llu bytes follow the last tensor; the file has trailing data "
                  "(re-save it)", (unsigned long long)(data_len - (uint64_t)(pos - data)));
    return rc;
}

/* Parse the JSON header, reporting jansson failures by their kind. */
static int load_json(struct report *r, const uint8_t *hdr, size_t n, json_t **out)
{
    json_error_t jerr;

    *out = json_loadb((const char *)hdr, n, JSON_REJECT_DUPLICATES, &jerr);
    if (*out && json_is_object(*out))
        return 0;
    if (*out) {
        json_decref(*out);
        *out = NULL;
        return fail(r, ST_FAULT_HEADER_JSON, NULL, "the header is not a JSON object");
    }
    switch (json_error_code(&jerr)) {
    case json_error_duplicate_key:
        return fail(r, ST_FAULT_DUPLICATE_NAME, NULL,
                    "the header repeats a key (%s at byte %d); tensor names and the "
                    "fields of an entry must be unique", jerr.text, jerr.position);
    case json_error_out_of_memory:
        return fail(r, ST_FAULT_NOMEM, NULL, "out of memory parsing the header");
    default:
        return fail(r, ST_FAULT_HEADER_JSON, NULL,
                    "the header is not valid JSON (%s at byte %d)", jerr.text, jerr.position);
    }
}

/* The checks of every rule on an in-memory image. On success f owns the
 * tensor table and names; on failure f is untouched. */
static int validate(struct st_file *f, const uint8_t *buf, size_t len, struct report *r)
{
    uint64_t n, hdr_end, items, data_len;
    const uint8_t *hdr, *data;
    struct st_tensor *ts = NULL;
    char *strings = NULL, *sp;
    size_t names_len = 0, bad;
    const char *key;
    json_t *root, *val;
    int count = 0, i = 0, rc;

    if (len < 8)
        return fail(r, ST_FAULT_SHORT_FILE, NULL,
                    "the file is %zu bytes, too short for the 8-byte header length; "
                    "it is truncated or not a safetensors file", len);
    n = read_le64(buf);
    /* Bound N before any use, so 8 + N below cannot wrap. */
    if (n > ST_MAX_HEADER)
        return fail(r, ST_FAULT_HEADER_TOO_LARGE, NULL,
                    "header length %llu exceeds the limit of %u bytes; the file is "
                    "corrupt or not a safetensors file", (unsigned long long)n,
                    ST_MAX_HEADER);
    if (__builtin_add_overflow(n, 8, &hdr_end) || hdr_end > (uint64_t)len)
        return fail(r, ST_FAULT_HEADER_PAST_EOF, NULL,
                    "the %llu-byte header ends past the end of the %zu-byte file; "
                    "the file is truncated (download it again)", (unsigned long long)n, len);
    hdr = buf + 8;
    if (n == 0 || hdr[0] != '{')
        return fail(r, ST_FAULT_HEADER_START, NULL,
                    "the header does not start with '{'; not a safetensors file");
    bad = utf8_check(hdr, (size_t)n);
    if (bad != n)
        return fail(r, ST_FAULT_HEADER_UTF8, NULL,
                    "header byte %zu (0x%02x) is not valid UTF-8; the header must be "
                    "UTF-8 JSON", bad, hdr[bad]);
    items = count_items(hdr, (size_t)n);
    if (items > ST_MAX_ITEMS)
        return fail(r, ST_FAULT_TOO_MANY_ITEMS, NULL,
                    "the header holds about %llu JSON keys and values, more than the "
                    "%u this loader accepts (about 90,000 tensors); split the file",
                    (unsigned long long)items, ST_MAX_ITEMS);
    rc = load_json(r, hdr, (size_t)n, &root);
    if (rc)
        return rc;

    data = hdr + n;
    data_len = (uint64_t)len - hdr_end;
    json_object_foreach(root, key, val) {
        if (strcmp(key, "__metadata__") == 0)
            continue;
        count++;
        names_len += strlen(key) + 1;
    }
    ts = calloc((size_t)(count ? count : 1), sizeof *ts);
    strings = malloc(names_len ? names_len : 1);
    if (!ts || !strings) {
        rc = fail(r, ST_FAULT_NOMEM, NULL, "out of memory for %d tensors", count);
        goto free_tables;
    }
    sp = strings;
    json_object_foreach(root, key, val) {
        if (strcmp(key, "__metadata__") == 0) {
            rc = check_metadata(r, val);
            if (rc)
                goto free_tables;
            continue;
        }
        rc = check_entry(r, key, val, data, data_len, &ts[i]);
        if (rc)
            goto free_tables;
        ts[i].name = sp;
        sp = stpcpy(sp, key) + 1;
        i++;
    }
    rc = check_tiling(r, ts, count, data, data_len);
    if (rc)
        goto free_tables;
    qsort(ts, (size_t)count, sizeof *ts, cmp_name);
    json_decref(root);
    f->base = buf;
    f->size = len;
    f->tensors = ts;
    f->count = count;
    f->strings = strings;
    return 0;

free_tables:
    free(strings);
    free(ts);
    json_decref(root);
    return rc;
}

int st_parse(struct st_file *f, const void *buf, size_t len, char *err, size_t errlen)
{
    struct report r = {"<buffer>", err, errlen, ST_OK};
    int rc;

    memset(f, 0, sizeof *f);
    if (err && errlen)
        err[0] = '\0';
    if (!buf && len)
        return fail(&r, ST_FAULT_IO, NULL, "no buffer given");
    rc = validate(f, buf, len, &r);
    f->fault = r.fault;
    return rc;
}

int st_open(struct st_file *f, const char *path, char *err, size_t errlen)
{
    struct report r = {path, err, errlen, ST_OK};
    struct stat sb;
    void *map;
    int fd, rc;

    memset(f, 0, sizeof *f);
    if (err && errlen)
        err[0] = '\0';
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;

        rc = fail(&r, ST_FAULT_IO, NULL, "cannot open: %s; check the path and permissions",
                  strerror(e));
        f->fault = r.fault;
        return e == ENOENT ? DITD_ENOENT : rc;
    }
    if (fstat(fd, &sb)) {
        rc = fail(&r, ST_FAULT_IO, NULL, "cannot stat: %s", strerror(errno));
        goto close_fd;
    }
    if (!S_ISREG(sb.st_mode)) {
        rc = fail(&r, ST_FAULT_IO, NULL, "not a regular file; give the path of a "
                  ".safetensors file");
        goto close_fd;
    }
    if ((uint64_t)sb.st_size < 8) {
        /* Nothing to map (mmap of 0 bytes fails); the size alone decides. */
        static const uint8_t none[8];

        rc = validate(f, none, (size_t)sb.st_size, &r);
        goto close_fd;
    }
    if ((uint64_t)sb.st_size > SIZE_MAX) {
        rc = fail(&r, ST_FAULT_IO, NULL, "file too large to map");
        goto close_fd;
    }
    map = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map == MAP_FAILED) {
        rc = fail(&r, ST_FAULT_IO, NULL, "cannot map %lld bytes: %s",
                  (long long)sb.st_size, strerror(errno));
        goto close_fd;
    }
    rc = validate(f, map, (size_t)sb.st_size, &r);
    if (rc)
        goto unmap;
    f->mapped = 1;
    close(fd);
    return 0;

unmap:
    munmap(map, (size_t)sb.st_size);
close_fd:
    close(fd);
    f->fault = r.fault;
    return rc;
}

void st_close(struct st_file *f)
{
    if (!f)
        return;
    if (f->mapped && f->base)
        munmap((void *)(uintptr_t)f->base, f->size);
    free(f->tensors);
    free(f->strings);
    memset(f, 0, sizeof *f);
}

static int cmp_key(const void *key, const void *elem)
{
    return strcmp(key, ((const struct st_tensor *)elem)->name);
}

const struct st_tensor *st_find(const struct st_file *f, const char *name)
{
    if (!f || !f->tensors || !name)
        return NULL;
    return bsearch(name, f->tensors, (size_t)f->count, sizeof *f->tensors, cmp_key);
}

const char *st_dtype_name(enum st_dtype t)
{
    return (unsigned)t < ST_DTYPE_COUNT ? dtypes[t].name : "?";
}

unsigned st_dtype_bits(enum st_dtype t)
{
    return (unsigned)t < ST_DTYPE_COUNT ? dtypes[t].bits : 0;
}

const char *st_fault_name(enum st_fault fault)
{
    return (unsigned)fault < ST_FAULT_COUNT ? fault_names[fault] : "?";
}

const float *st_f32_data(const struct st_tensor *t)
{
    if (t->dtype != ST_F32 || (uintptr_t)t->data % _Alignof(float))
        return NULL;
    return (const float *)(const void *)t->data;
}

/* IEEE binary16 to binary32, exactly. Every half value is a float value,
 * so no rounding happens: subnormal halves become normal floats. */
static float f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    uint32_t bits;
    float out;

    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | man << 13;   /* inf, or NaN with its payload */
    } else if (exp) {
        bits = sign | (exp + 112) << 23 | man << 13;   /* rebias 15 -> 127 */
    } else if (!man) {
        bits = sign;
    } else {
        /* man * 2^-24: shift the leading 1 up to the implicit bit. */
        uint32_t e = 113;

        while (!(man & 0x400u)) {
            man <<= 1;
            e--;
        }
        bits = sign | e << 23 | (man & 0x3ffu) << 13;
    }
    memcpy(&out, &bits, sizeof out);
    return out;
}

int st_to_f32(const struct st_tensor *t, float *out)
{
    const uint8_t *p = t->data;
    size_t n = (size_t)t->numel;

    switch (t->dtype) {
    case ST_F32:
        if (n)
            memcpy(out, p, n * sizeof *out);
        return 0;
    case ST_F16:
        for (size_t i = 0; i < n; i++)
            out[i] = f16_to_f32((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
        return 0;
    case ST_BF16:
        for (size_t i = 0; i < n; i++) {
            uint32_t bits = (uint32_t)p[2 * i] << 16 | (uint32_t)p[2 * i + 1] << 24;

            memcpy(&out[i], &bits, sizeof bits);
        }
        return 0;
    default:
        return DITD_EINVAL;
    }
}

void st_release(const struct st_file *f, const struct st_tensor *t)
{
    if (t)
        st_release_bytes(f, t->data, t->nbytes);
}

void st_release_bytes(const struct st_file *f, const void *p, size_t nbytes)
{
    const uint8_t *data = p;
    uintptr_t page, lo, hi;
    long ps;

    if (!f || !data || !f->mapped || data < f->base ||
        nbytes > f->size - (size_t)(data - f->base))
        return;
    ps = sysconf(_SC_PAGESIZE);
    if (ps <= 0)
        return;
    page = (uintptr_t)ps;
    /* Only pages wholly inside the range: the neighbours may still be wanted. */
    lo = ((uintptr_t)data + page - 1) / page * page;
    hi = ((uintptr_t)data + nbytes) / page * page;
    if (hi > lo)
        madvise((void *)lo, hi - lo, MADV_DONTNEED);
}
