/*
 * test_safetensors.c - the safetensors validator against a table of
 * handmade corruptions (reliability.md §5.I), each of which must be refused
 * with its own fault code and a message naming the file and the tensor;
 * valid files with every dtype, at aligned and misaligned data offsets;
 * exact F16/BF16 conversion; the many-entries memory bound; st_open on real
 * files (truncated, empty, missing); st_find and st_release.
 *
 * Every file is built in memory by this test; temp files go to $TMPDIR.
 */
#include "safetensors.h"
#include "ditd.h"
#include "test.h"

#include <stdint.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

static void put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* 8-byte N, the JSON plus `pad` spaces (N = strlen + pad), then data_len
 * bytes of a known pattern. */
static uint8_t *build(const char *json, size_t pad, size_t data_len, size_t *len)
{
    size_t jl = strlen(json), n = jl + pad;
    uint8_t *p = malloc(8 + n + data_len + 1);

    if (!p)
        return NULL;
    put_le64(p, n);
    memcpy(p + 8, json, jl);
    memset(p + 8 + jl, ' ', pad);
    for (size_t i = 0; i < data_len; i++)
        p[8 + n + i] = (uint8_t)(i * 7 + 3);
    *len = 8 + n + data_len;
    return p;
}

struct bad_case {
    const char *what;
    const char *json;
    size_t data_len;
    enum st_fault fault;
    const char *in_msg;        /* must appear in the message (tensor name or rule) */
};

#define E(dtype, shape, offs) "{\"dtype\":\"" dtype "\",\"shape\":" shape ",\"data_offsets\":" offs "}"

static const struct bad_case table[] = {
    {"header is an array", "[1]", 0, ST_FAULT_HEADER_START, "'{'"},
    {"header starts with a space", " {}", 0, ST_FAULT_HEADER_START, "'{'"},
    {"invalid UTF-8 byte", "{\"a\xff\":1}", 0, ST_FAULT_HEADER_UTF8, "UTF-8"},
    {"overlong UTF-8", "{\"\xc0\xaf\":1}", 0, ST_FAULT_HEADER_UTF8, "byte 2"},
    {"UTF-8 surrogate", "{\"\xed\xa0\x80\":1}", 0, ST_FAULT_HEADER_UTF8, "UTF-8"},
    {"UTF-8 cut short", "{\"\xe2\x82", 0, ST_FAULT_HEADER_UTF8, "UTF-8"},
    {"unterminated JSON", "{\"a\":", 0, ST_FAULT_HEADER_JSON, "not valid JSON"},
    {"garbage after JSON", "{} x", 0, ST_FAULT_HEADER_JSON, "not valid JSON"},
    {"integer beyond 64 bits", "{\"a\":" E("U8", "[99999999999999999999]", "[0,0]") "}", 0,
     ST_FAULT_HEADER_JSON, "not valid JSON"},
    {"duplicate tensor name",
     "{\"w\":" E("U8", "[1]", "[0,1]") ",\"w\":" E("U8", "[1]", "[1,2]") "}", 2,
     ST_FAULT_DUPLICATE_NAME, "\"w\""},
    {"duplicate field in an entry",
     "{\"w\":{\"dtype\":\"U8\",\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1,
     ST_FAULT_DUPLICATE_NAME, "dtype"},
    {"__metadata__ value not a string", "{\"__metadata__\":{\"format\":1}}", 0,
     ST_FAULT_METADATA, "\"format\""},
    {"__metadata__ not an object", "{\"__metadata__\":\"pt\"}", 0, ST_FAULT_METADATA,
     "not an object"},
    {"entry not an object", "{\"w\":1}", 0, ST_FAULT_ENTRY, "tensor \"w\""},
    {"entry without dtype", "{\"w\":{\"shape\":[1],\"data_offsets\":[0,1]}}", 1,
     ST_FAULT_ENTRY, "lacks \"dtype\""},
    {"entry with an extra key",
     "{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1],\"x\":0}}", 1,
     ST_FAULT_ENTRY, "other than"},
    {"unknown dtype", "{\"w\":" E("F17", "[1]", "[0,1]") "}", 1, ST_FAULT_DTYPE, "\"F17\""},
    {"dtype not a string", "{\"w\":{\"dtype\":9,\"shape\":[1],\"data_offsets\":[0,1]}}", 1,
     ST_FAULT_DTYPE, "not a string"},
    {"negative dim", "{\"w\":" E("U8", "[-1]", "[0,0]") "}", 0, ST_FAULT_SHAPE, "negative"},
    {"real dim", "{\"w\":" E("U8", "[2.0]", "[0,2]") "}", 2, ST_FAULT_SHAPE, "not an integer"},
    {"string dim", "{\"w\":" E("U8", "[\"2\"]", "[0,2]") "}", 2, ST_FAULT_SHAPE,
     "not an integer"},
    {"dim above 2^31", "{\"w\":" E("U8", "[2147483649]", "[0,0]") "}", 0, ST_FAULT_SHAPE,
     "2^31"},
    {"dims 2^32 x 2^32", "{\"w\":" E("U8", "[4294967296,4294967296]", "[0,0]") "}", 0,
     ST_FAULT_SHAPE, "2^31"},
    {"nine dims", "{\"w\":" E("U8", "[1,1,1,1,1,1,1,1,1]", "[0,1]") "}", 1, ST_FAULT_SHAPE,
     "9 dims"},
    {"shape not an array", "{\"w\":" E("U8", "1", "[0,1]") "}", 1, ST_FAULT_SHAPE,
     "not an array"},
    {"element count wraps to 0",
     "{\"w\":" E("F32", "[2147483648,2147483648,4]", "[0,0]") "}", 0,
     ST_FAULT_SIZE_OVERFLOW, "overflows"},
    {"bit count overflows", "{\"w\":" E("F32", "[2147483648,2147483648,2]", "[0,0]") "}", 0,
     ST_FAULT_SIZE_OVERFLOW, "bits"},
    {"sub-byte dtype not byte aligned", "{\"w\":" E("F4", "[3]", "[0,2]") "}", 2,
     ST_FAULT_NOT_BYTE_ALIGNED, "12 bits"},
    {"one offset", "{\"w\":" E("U8", "[1]", "[1]") "}", 1, ST_FAULT_OFFSETS, "two"},
    {"three offsets", "{\"w\":" E("U8", "[1]", "[0,1,1]") "}", 1, ST_FAULT_OFFSETS, "two"},
    {"negative offset", "{\"w\":" E("U8", "[1]", "[-1,0]") "}", 1, ST_FAULT_OFFSETS,
     "non-negative"},
    {"real offset", "{\"w\":" E("U8", "[1]", "[0,1.0]") "}", 1, ST_FAULT_OFFSETS,
     "non-negative integers"},
    {"offsets not an array", "{\"w\":" E("U8", "[1]", "\"0-1\"") "}", 1, ST_FAULT_OFFSETS,
     "two"},
    {"begin after end", "{\"w\":" E("U8", "[0]", "[1,0]") "}", 1, ST_FAULT_OFFSETS_ORDER,
     "after end"},
    {"end past the file", "{\"w\":" E("U8", "[8]", "[0,8]") "}", 4, ST_FAULT_PAST_EOF,
     "truncated"},
    {"offsets span more than the shape (mlx#3363)", "{\"w\":" E("F32", "[1]", "[0,8]") "}", 8,
     ST_FAULT_SIZE_MISMATCH, "span 8 bytes but shape [1] of F32 needs 4"},
    {"offsets span less than the shape (fastllm#712)", "{\"w\":" E("F32", "[2]", "[0,4]") "}",
     4, ST_FAULT_SIZE_MISMATCH, "needs 8"},
    {"hole between tensors",
     "{\"a\":" E("F32", "[1]", "[0,4]") ",\"b\":" E("F32", "[1]", "[8,12]") "}", 12,
     ST_FAULT_HOLE, "tensor \"b\": 4 unused bytes"},
    {"hole before the first tensor", "{\"a\":" E("F32", "[1]", "[4,8]") "}", 8, ST_FAULT_HOLE,
     "after the header"},
    {"two tensors on the same bytes",
     "{\"a\":" E("F32", "[1]", "[0,4]") ",\"b\":" E("F32", "[1]", "[0,4]") "}", 4,
     ST_FAULT_OVERLAP, "overlap"},
    {"partial overlap",
     "{\"a\":" E("F32", "[2]", "[0,8]") ",\"b\":" E("F32", "[1]", "[4,8]") "}", 8,
     ST_FAULT_OVERLAP, "\"a\""},
    {"trailing byte", "{\"a\":" E("F32", "[1]", "[0,4]") "}", 5, ST_FAULT_TRAILING,
     "1 bytes follow"},
    {"data but no tensor", "{}", 3, ST_FAULT_TRAILING, "3 bytes follow"},
};

static void expect_fault(const char *what, const uint8_t *buf, size_t len,
                         enum st_fault want, const char *in_msg)
{
    struct st_file f;
    char err[DITD_ERR_LEN] = "";
    int rc = st_parse(&f, buf, len, err, sizeof err);

    if (rc != DITD_EINVAL || f.fault != want || !strstr(err, in_msg) ||
        strncmp(err, "<buffer>: ", 10) != 0) {
        fprintf(stderr, "case \"%s\": rc %d fault %s (want %s), message: %s\n", what, rc,
                st_fault_name(f.fault), st_fault_name(want), err);
        test_failures++;
    }
    CHECK(f.tensors == NULL && f.count == 0);
    st_close(&f);
}

static void test_table(void)
{
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        size_t len;
        uint8_t *buf = build(table[i].json, 0, table[i].data_len, &len);

        expect_fault(table[i].what, buf, len, table[i].fault, table[i].in_msg);
        free(buf);
    }
}

/* The cases that need a hand-set N. */
static void test_header_length(void)
{
    uint8_t buf[64] = {0};

    expect_fault("empty file", buf, 0, ST_FAULT_SHORT_FILE, "0 bytes");
    expect_fault("7-byte file", buf, 7, ST_FAULT_SHORT_FILE, "too short");
    put_le64(buf, 100000001);
    expect_fault("N above 100,000,000", buf, sizeof buf, ST_FAULT_HEADER_TOO_LARGE, "limit");
    /* The bound comes first, so 8 + N is never formed from this N. */
    put_le64(buf, UINT64_MAX);
    expect_fault("N = 2^64-1", buf, sizeof buf, ST_FAULT_HEADER_TOO_LARGE,
                 "18446744073709551615");
    put_le64(buf, UINT64_MAX - 7);
    expect_fault("N = 2^64-8", buf, sizeof buf, ST_FAULT_HEADER_TOO_LARGE, "limit");
    put_le64(buf, 57);
    memcpy(buf + 8, "{}", 2);
    expect_fault("N past the end of the file", buf, sizeof buf, ST_FAULT_HEADER_PAST_EOF,
                 "truncated");
    put_le64(buf, 0);
    expect_fault("N = 0", buf, 8, ST_FAULT_HEADER_START, "'{'");
}

static const char *const dtype_names[] = {
    "BOOL", "U8", "I8", "I16", "U16", "F16", "BF16", "I32", "U32", "F32", "F64", "I64",
    "U64", "F8_E4M3", "F8_E5M2", "F8_E8M0", "F4", "F6_E2M3", "F6_E3M2", "C64",
};

/* Every dtype as an [2, 4] tensor, listed in reverse so that name order,
 * file order and offset order all differ, plus a scalar, two empty tensors
 * sharing an offset, and metadata. pad spaces go after the JSON. */
static uint8_t *build_all_dtypes(size_t pad, size_t *len, uint64_t *begins)
{
    char json[4096];
    size_t used = 0, off = 0;
    int nd = (int)(sizeof dtype_names / sizeof dtype_names[0]);

    for (int i = 0; i < nd; i++) {
        begins[i] = off;
        off += 8 * st_dtype_bits((enum st_dtype)i) / 8;
    }
    used += (size_t)snprintf(json + used, sizeof json - used,
                             "{\"__metadata__\":{\"format\":\"pt\"},\"scalar\":"
                             E("F32", "[]", "[%llu,%llu]") ",",
                             (unsigned long long)off, (unsigned long long)off + 4);
    begins[nd] = off;
    off += 4;
    used += (size_t)snprintf(json + used, sizeof json - used,
                             "\"empty\":" E("F32", "[0,5]", "[%llu,%llu]") ","
                             "\"empty_too\":" E("U8", "[0]", "[%llu,%llu]") ",",
                             (unsigned long long)off, (unsigned long long)off,
                             (unsigned long long)off, (unsigned long long)off);
    for (int i = nd - 1; i >= 0; i--)
        used += (size_t)snprintf(json + used, sizeof json - used,
                                 "\"t_%s\":" E("%s", "[2,4]", "[%llu,%llu]") "%s",
                                 dtype_names[i], dtype_names[i],
                                 (unsigned long long)begins[i],
                                 (unsigned long long)(begins[i] + 8 * st_dtype_bits(
                                     (enum st_dtype)i) / 8), i ? "," : "}");
    return build(json, pad, off, len);
}

static void check_all_dtypes(size_t pad)
{
    uint64_t begins[32];
    size_t len;
    uint8_t *buf = build_all_dtypes(pad, &len, begins);
    uint64_t n;
    const uint8_t *data;
    struct st_file f;
    char err[DITD_ERR_LEN] = "";
    int nd = (int)(sizeof dtype_names / sizeof dtype_names[0]);

    n = 0;
    for (int i = 7; i >= 0; i--)
        n = n << 8 | buf[i];
    data = buf + 8 + n;
    CHECK_EQ_INT(st_parse(&f, buf, len, err, sizeof err), 0);
    if (err[0])
        fprintf(stderr, "unexpected: %s\n", err);
    CHECK_EQ_INT(f.count, nd + 3);
    CHECK_EQ_INT(f.mapped, 0);
    for (int i = 0; i < nd; i++) {
        char name[32];
        const struct st_tensor *t;

        snprintf(name, sizeof name, "t_%s", dtype_names[i]);
        t = st_find(&f, name);
        CHECK(t != NULL);
        if (!t)
            continue;
        CHECK_EQ_INT(t->dtype, i);
        CHECK(strcmp(st_dtype_name(t->dtype), dtype_names[i]) == 0);
        CHECK_EQ_INT(t->ndim, 2);
        CHECK_EQ_INT(t->shape[0], 2);
        CHECK_EQ_INT(t->shape[1], 4);
        CHECK_EQ_INT(t->numel, 8);
        CHECK_EQ_INT(t->nbytes, st_dtype_bits(t->dtype));
        CHECK(t->data == data + begins[i]);
        for (size_t k = 0; k < t->nbytes; k++)
            CHECK_EQ_INT(t->data[k], (uint8_t)((begins[i] + k) * 7 + 3));
    }
    {
        const struct st_tensor *s = st_find(&f, "scalar"), *e = st_find(&f, "empty");
        const struct st_tensor *f32 = st_find(&f, "t_F32"), *e2 = st_find(&f, "empty_too");
        float a[8], b[8];

        CHECK(s && s->ndim == 0 && s->numel == 1 && s->nbytes == 4);
        CHECK(e && e->ndim == 2 && e->numel == 0 && e->nbytes == 0);
        CHECK(e2 && e2->numel == 0 && e2->data == e->data);
        CHECK(f32 != NULL);
        if (f32) {
            /* In place only when aligned; the copy never needs alignment. */
            const float *in_place = st_f32_data(f32);

            CHECK_EQ_INT(in_place != NULL, (uintptr_t)f32->data % 4 == 0);
            CHECK_EQ_INT(st_to_f32(f32, a), 0);
            memcpy(b, f32->data, sizeof b);
            CHECK(memcmp(a, b, sizeof a) == 0);
            if (in_place)
                CHECK(memcmp(in_place, b, sizeof b) == 0);
        }
        CHECK_EQ_INT(st_to_f32(st_find(&f, "t_I32"), a), DITD_EINVAL);
        CHECK(st_f32_data(st_find(&f, "t_I32")) == NULL);
    }
    /* The table is sorted by name, which st_find relies on. */
    for (int i = 1; i < f.count; i++)
        CHECK(strcmp(f.tensors[i - 1].name, f.tensors[i].name) < 0);
    st_close(&f);
    free(buf);
}

static void test_valid(void)
{
    size_t jl, len;
    uint64_t begins[32];
    uint8_t *probe = build_all_dtypes(0, &len, begins);

    jl = (size_t)probe[0] | (size_t)probe[1] << 8 | (size_t)probe[2] << 16;
    free(probe);
    /* N % 8 == 0, as writers pad; then N % 8 == 3 and 5, which a reader
     * must accept with misaligned data and no misaligned access. */
    check_all_dtypes((8 - jl % 8) % 8);
    check_all_dtypes((8 - jl % 8 + 3) % 8);
    check_all_dtypes((8 - jl % 8 + 5) % 8);

    {   /* The smallest file: empty header object, no data. */
        struct st_file f;
        static const uint8_t tiny[10] = {2, 0, 0, 0, 0, 0, 0, 0, '{', '}'};

        CHECK_EQ_INT(st_parse(&f, tiny, sizeof tiny, NULL, 0), 0);
        CHECK_EQ_INT(f.count, 0);
        CHECK(st_find(&f, "x") == NULL);
        st_close(&f);
        st_close(&f);
    }
}

/* Reference F16 value computed with doubles, for the exhaustive check. */
static double f16_ref(uint16_t h)
{
    int exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    double v = exp ? ldexp(1024 + man, exp - 25) : ldexp(man, -24);

    return (h & 0x8000) ? -v : v;
}

static void test_f16_bf16(void)
{
    static uint8_t bytes[2 * 65536];
    static float out[65536];
    struct st_tensor t = {.dtype = ST_F16, .ndim = 1, .shape = {65536}, .numel = 65536,
                          .data = bytes, .nbytes = sizeof bytes};

    for (uint32_t i = 0; i < 65536; i++) {
        bytes[2 * i] = (uint8_t)i;
        bytes[2 * i + 1] = (uint8_t)(i >> 8);
    }
    CHECK_EQ_INT(st_to_f32(&t, out), 0);
    for (uint32_t i = 0; i < 65536; i++) {
        uint32_t bits;
        int exp = (i >> 10) & 0x1f;

        memcpy(&bits, &out[i], 4);
        if (exp == 0x1f) {
            /* inf or NaN, sign and payload kept in the top mantissa bits */
            CHECK_EQ_INT(bits, (i & 0x8000) << 16 | 0x7f800000u | (i & 0x3ff) << 13);
        } else if ((double)out[i] != f16_ref((uint16_t)i)) {
            fprintf(stderr, "f16 0x%04x -> %.9g, expected %.9g\n", i, (double)out[i],
                    f16_ref((uint16_t)i));
            test_failures++;
        }
    }
    CHECK(out[0x0000] == 0.0f && !signbit(out[0x0000]));
    CHECK(out[0x8000] == 0.0f && signbit(out[0x8000]));
    CHECK(out[0x3c00] == 1.0f);
    CHECK(out[0xc000] == -2.0f);
    CHECK(out[0x7bff] == 65504.0f);
    CHECK(out[0x3555] == 0.333251953125f);
    CHECK(out[0x0001] == 0x1p-24f);           /* smallest subnormal */
    CHECK(out[0x03ff] == 1023 * 0x1p-24f);     /* largest subnormal */
    CHECK(out[0x0400] == 0x1p-14f);           /* smallest normal */
    CHECK(isinf(out[0x7c00]) && out[0x7c00] > 0);
    CHECK(isinf(out[0xfc00]) && out[0xfc00] < 0);
    CHECK(isnan(out[0x7e00]) && isnan(out[0x7c01]) && isnan(out[0xfe00]));

    t.dtype = ST_BF16;
    CHECK_EQ_INT(st_to_f32(&t, out), 0);
    for (uint32_t i = 0; i < 65536; i++) {
        uint32_t bits;

        memcpy(&bits, &out[i], 4);
        CHECK_EQ_INT(bits, i << 16);
    }
    CHECK(out[0x3f80] == 1.0f && out[0xc000] == -2.0f);
    CHECK(out[0x0001] == 0x1p-133f);
    CHECK(isinf(out[0x7f80]) && isnan(out[0x7fc0]) && isnan(out[0x7f81]));

    /* Odd start address: conversion reads bytes, never a misaligned u16. */
    t.dtype = ST_F16;
    t.data = bytes + 1;
    t.numel = 4;
    t.nbytes = 8;
    CHECK_EQ_INT(st_to_f32(&t, out), 0);
}

static long max_rss_kb(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

/* Many zero-size entries cost jansson ~1 KB each whatever the header
 * length, so the item bound refuses 1,000,000 of them before parsing, in a
 * header just under the 100 MB limit; a large but legitimate count loads. */
static void test_many_entries(void)
{
    static const char entry[] = "\"%07x\":" E("F32", "[0]", "[0,0]") ",";
    size_t n = 99999000, used = 1, len;
    uint8_t *buf = malloc(8 + n);
    long before;

    if (!buf) {
        CHECK(buf != NULL);
        return;
    }
    put_le64(buf, n);
    buf[8] = '{';
    for (unsigned i = 0; i < 1000000; i++)
        used += (size_t)sprintf((char *)buf + 8 + used, entry, i);
    buf[8 + used - 1] = '}';
    memset(buf + 8 + used, ' ', n - used);
    before = max_rss_kb();
    expect_fault("1,000,000 zero-size entries", buf, 8 + n, ST_FAULT_TOO_MANY_ITEMS,
                 "split the file");
    /* Refused without parsing: no growth beyond a quarter of the header. */
    CHECK((max_rss_kb() - before) * 1024 < (long)n / 4);

    /* 80,000 entries (~880,000 items) stay under the bound and load. */
    used = 1;
    for (unsigned i = 0; i < 80000; i++)
        used += (size_t)sprintf((char *)buf + 8 + used, entry, i);
    buf[8 + used - 1] = '}';
    put_le64(buf, used);
    len = 8 + used;
    {
        struct st_file f;
        char err[DITD_ERR_LEN] = "";

        CHECK_EQ_INT(st_parse(&f, buf, len, err, sizeof err), 0);
        CHECK_EQ_INT(f.count, 80000);
        CHECK(st_find(&f, "0001388") != NULL);   /* 5000 in hex */
        st_close(&f);
    }
    free(buf);
}

static void test_find(void)
{
    char json[16384];
    size_t used = 0, len;
    uint8_t *buf;
    struct st_file f;
    char name[16];

    /* 200 names in a scrambled order, one byte each. */
    used += (size_t)snprintf(json, sizeof json, "{");
    for (int i = 0; i < 200; i++) {
        int k = (i * 73) % 200;

        used += (size_t)snprintf(json + used, sizeof json - used,
                                 "%s\"n%d\":" E("U8", "[1]", "[%d,%d]"), i ? "," : "", k,
                                 k, k + 1);
    }
    snprintf(json + used, sizeof json - used, "}");
    buf = build(json, 0, 200, &len);
    CHECK_EQ_INT(st_parse(&f, buf, len, NULL, 0), 0);
    for (int k = 0; k < 200; k++) {
        const struct st_tensor *t;

        snprintf(name, sizeof name, "n%d", k);
        t = st_find(&f, name);
        CHECK(t != NULL && strcmp(t->name, name) == 0 && t->data[0] == (uint8_t)(k * 7 + 3));
    }
    CHECK(st_find(&f, "n") == NULL);
    CHECK(st_find(&f, "") == NULL);
    CHECK(st_find(&f, "n200") == NULL);
    CHECK(st_find(&f, "n19x") == NULL);
    CHECK(st_find(&f, NULL) == NULL);
    st_close(&f);
    CHECK(st_find(&f, "n1") == NULL);
    free(buf);
}

static int write_temp(char *path, const uint8_t *buf, size_t len)
{
    const char *dir = getenv("TMPDIR");
    int fd;

    snprintf(path, 256, "%s/test_st_XXXXXX", dir && *dir ? dir : "/tmp");
    fd = mkstemp(path);
    if (fd < 0)
        return -1;
    if (len && write(fd, buf, len) != (ssize_t)len) {
        close(fd);
        return -1;
    }
    return close(fd);
}

static void test_open(void)
{
    char path[256], err[DITD_ERR_LEN];
    char json[256];
    size_t len, data = 3 * 4096 + 100;
    uint8_t *buf;
    struct st_file f;
    const struct st_tensor *t;

    snprintf(json, sizeof json, "{\"big\":" E("U8", "[%zu]", "[0,%zu]") "}", data, data);
    buf = build(json, 0, data, &len);
    CHECK_EQ_INT(write_temp(path, buf, len), 0);
    CHECK_EQ_INT(st_open(&f, path, err, sizeof err), 0);
    CHECK_EQ_INT(f.mapped, 1);
    t = st_find(&f, "big");
    CHECK(t != NULL && t->nbytes == data);
    if (t) {
        CHECK(memcmp(t->data, buf + len - data, data) == 0);
        /* Dropped pages fault back in from the file with the same bytes. */
        st_release(&f, t);
        CHECK(memcmp(t->data, buf + len - data, data) == 0);
    }
    st_close(&f);
    unlink(path);

    /* Last byte removed: refused, naming the path and the tensor. */
    CHECK_EQ_INT(write_temp(path, buf, len - 1), 0);
    CHECK_EQ_INT(st_open(&f, path, err, sizeof err), DITD_EINVAL);
    CHECK_EQ_INT(f.fault, ST_FAULT_PAST_EOF);
    CHECK_STR_CONTAINS(err, path);
    CHECK_STR_CONTAINS(err, "tensor \"big\"");
    CHECK(f.base == NULL && f.tensors == NULL);
    st_close(&f);
    unlink(path);

    CHECK_EQ_INT(write_temp(path, buf, 0), 0);
    CHECK_EQ_INT(st_open(&f, path, err, sizeof err), DITD_EINVAL);
    CHECK_EQ_INT(f.fault, ST_FAULT_SHORT_FILE);
    unlink(path);
    CHECK_EQ_INT(write_temp(path, buf, 5), 0);
    CHECK_EQ_INT(st_open(&f, path, err, sizeof err), DITD_EINVAL);
    CHECK_EQ_INT(f.fault, ST_FAULT_SHORT_FILE);
    CHECK_STR_CONTAINS(err, "5 bytes");
    unlink(path);

    CHECK_EQ_INT(st_open(&f, path, err, sizeof err), DITD_ENOENT);
    CHECK_EQ_INT(f.fault, ST_FAULT_IO);
    CHECK_STR_CONTAINS(err, path);
    CHECK_EQ_INT(st_open(&f, "/", err, sizeof err), DITD_EIO);
    CHECK_EQ_INT(f.fault, ST_FAULT_IO);
    CHECK_STR_CONTAINS(err, "regular file");
    free(buf);
}

static void test_names(void)
{
    for (int i = 0; i < ST_FAULT_COUNT; i++) {
        CHECK(strcmp(st_fault_name((enum st_fault)i), "?") != 0);
        for (int k = 0; k < i; k++)
            CHECK(strcmp(st_fault_name((enum st_fault)i), st_fault_name((enum st_fault)k)));
    }
    CHECK(strcmp(st_fault_name(ST_FAULT_COUNT), "?") == 0);
    CHECK(strcmp(st_dtype_name(ST_DTYPE_COUNT), "?") == 0);
    CHECK_EQ_INT(st_dtype_bits(ST_F4), 4);
    CHECK_EQ_INT(st_dtype_bits(ST_C64), 64);
}

int main(void)
{
    test_table();
    test_header_length();
    test_valid();
    test_f16_bf16();
    test_many_entries();
    test_find();
    test_open();
    test_names();
    return test_status();
}
