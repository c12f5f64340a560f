/*
 * test_npy.c - .npy read and write: round trips of every dtype and rank
 * through a file, the exact bytes NumPy writes (uint8 images too), the
 * header on its own, version 2.0 and 3.0 headers, and a table of malformed
 * files that must each be refused with a message saying why.
 */
#include "npy.h"
#include "ditd.h"
#include "test.h"

#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

static char tmpdir_path[256];

static const char *temp_path(const char *name)
{
    static char path[512];

    snprintf(path, sizeof path, "%s/%s", tmpdir_path, name);
    return path;
}

static void test_round_trip(void)
{
    static const int64_t shapes[][3] = {{2, 3, 0}, {5, 0, 0}, {0, 3, 0}, {1, 1, 1}};
    static const int ranks[] = {2, 1, 2, 0};
    uint8_t data[64];
    char err[DITD_ERR_LEN];

    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (uint8_t)(i * 13 + 1);
    for (int dt = NPY_F32; dt <= NPY_U8; dt++) {
        for (size_t s = 0; s < sizeof ranks / sizeof ranks[0]; s++) {
            struct npy_array a;
            const char *path = temp_path("rt.npy");
            int64_t numel = 1;

            for (int d = 0; d < ranks[s]; d++)
                numel *= shapes[s][d];
            CHECK_EQ_INT(npy_write(path, (enum npy_dtype)dt, ranks[s], shapes[s], data, err,
                                   sizeof err), 0);
            CHECK_EQ_INT(npy_read(path, &a, err, sizeof err), 0);
            CHECK_EQ_INT(a.dtype, dt);
            CHECK_EQ_INT(a.ndim, ranks[s]);
            for (int d = 0; d < ranks[s]; d++)
                CHECK_EQ_INT(a.shape[d], shapes[s][d]);
            CHECK_EQ_INT(a.numel, numel);
            CHECK(a.data != NULL);
            if (a.data)
                CHECK(memcmp(a.data, data, (size_t)numel * npy_dtype_size(a.dtype)) == 0);
            npy_free(&a);
            npy_free(&a);
            unlink(path);
        }
    }
}

static uint8_t *slurp(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    uint8_t *buf = malloc(1 << 16);

    *len = fp && buf ? fread(buf, 1, 1 << 16, fp) : 0;
    if (fp)
        fclose(fp);
    return buf;
}

/* What np.save writes for np.zeros((2, 3), '<f4') and np.zeros(5, '<i8'). */
static void test_exact_bytes(void)
{
    static const char h23[] =
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
    static const char h5[] = "{'descr': '<i8', 'fortran_order': False, 'shape': (5,), }";
    static const float zeros[6];
    static const int64_t zeros64[5];
    const int64_t s23[] = {2, 3}, s5[] = {5};
    const char *path = temp_path("exact.npy");
    size_t len;
    uint8_t *buf;

    CHECK_EQ_INT(npy_write(path, NPY_F32, 2, s23, zeros, NULL, 0), 0);
    buf = slurp(path, &len);
    CHECK_EQ_INT(len, 128 + 24);
    CHECK(memcmp(buf, "\x93NUMPY\x01\x00\x76\x00", 10) == 0);   /* header 118 */
    CHECK(memcmp(buf + 10, h23, sizeof h23 - 1) == 0);
    CHECK_EQ_INT(buf[127], '\n');
    CHECK_EQ_INT(buf[126], ' ');
    free(buf);
    CHECK_EQ_INT(npy_write(path, NPY_I64, 1, s5, zeros64, NULL, 0), 0);
    buf = slurp(path, &len);
    CHECK_EQ_INT(len, 128 + 40);
    CHECK(memcmp(buf + 10, h5, sizeof h5 - 1) == 0);
    free(buf);
    unlink(path);
}

/* An image batch as dit generate stores it: uint8 (N, H, W, 3), every byte
 * value present; the bytes NumPy writes and back. */
static void test_uint8(void)
{
    static const char h[] =
        "{'descr': '|u1', 'fortran_order': False, 'shape': (3, 5, 7, 3), }";
    const int64_t shape[] = {3, 5, 7, 3};
    const char *path = temp_path("u8.npy");
    uint8_t img[3 * 5 * 7 * 3], *buf;
    struct npy_array a;
    char err[DITD_ERR_LEN];
    size_t len;

    for (size_t i = 0; i < sizeof img; i++)
        img[i] = (uint8_t)(i * 7 + 3);
    CHECK_EQ_INT(npy_dtype_size(NPY_U8), 1);
    CHECK_EQ_INT(npy_write(path, NPY_U8, 4, shape, img, err, sizeof err), 0);
    buf = slurp(path, &len);
    CHECK_EQ_INT(len, 128 + sizeof img);
    CHECK(memcmp(buf + 10, h, sizeof h - 1) == 0);
    CHECK(memcmp(buf + 128, img, sizeof img) == 0);
    free(buf);
    CHECK_EQ_INT(npy_read(path, &a, err, sizeof err), 0);
    CHECK_EQ_INT(a.dtype, NPY_U8);
    CHECK_EQ_INT(a.ndim, 4);
    CHECK_EQ_INT(a.shape[3], 3);
    CHECK_EQ_INT(a.numel, (int64_t)sizeof img);
    CHECK(a.data && memcmp(a.data, img, sizeof img) == 0);
    npy_free(&a);
    unlink(path);
}

/* npy_header alone: what npy_write writes before the data, and its errors
 * name no file. */
static void test_header(void)
{
    const int64_t shape[] = {50000, 256, 256, 3}, bad[] = {2, -3};
    uint8_t buf[NPY_HEADER_BUF];
    char err[DITD_ERR_LEN];
    uint64_t nbytes = 0;
    size_t len = 0;

    CHECK_EQ_INT(npy_header(buf, sizeof buf, NPY_U8, 4, shape, &len, &nbytes, err,
                            sizeof err), 0);
    CHECK_EQ_INT(len, 128);
    CHECK_EQ_INT(nbytes, INT64_C(50000) * 256 * 256 * 3);
    CHECK(memcmp(buf, "\x93NUMPY\x01\x00\x76\x00", 10) == 0);
    CHECK_EQ_INT(buf[len - 1], '\n');
    CHECK_EQ_INT(npy_header(buf, sizeof buf, NPY_F32, 0, NULL, &len, &nbytes, err,
                            sizeof err), 0);
    CHECK_EQ_INT(len, 128);
    CHECK_EQ_INT(nbytes, 4);
    CHECK_EQ_INT(npy_header(buf, sizeof buf, NPY_F32, 2, bad, &len, &nbytes, err,
                            sizeof err), DITD_EINVAL);
    CHECK_EQ_INT(strcmp(err, "shape dim 1 is negative"), 0);
    CHECK_EQ_INT(npy_header(buf, 100, NPY_F32, 0, NULL, &len, &nbytes, err, sizeof err),
                 DITD_EINVAL);
    CHECK_STR_CONTAINS(err, "too small");
}

/* A file image: prelude of the given version, header text, data bytes. */
static uint8_t *make(int major, int minor, const char *header, size_t data_len, size_t *len)
{
    size_t hl = strlen(header), pre = major == 1 ? 10 : 12;
    uint8_t *p = calloc(1, pre + hl + data_len + 1);

    memcpy(p, "\x93NUMPY", 6);
    p[6] = (uint8_t)major;
    p[7] = (uint8_t)minor;
    for (size_t i = 0; i < pre - 8; i++)
        p[8 + i] = (uint8_t)(hl >> (8 * i));
    memcpy(p + pre, header, hl);
    for (size_t i = 0; i < data_len; i++)
        p[pre + hl + i] = (uint8_t)i;
    *len = pre + hl + data_len;
    return p;
}

static void test_versions(void)
{
    static const char *const headers[] = {
        "{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }   \n",
        "{\"shape\": (3,), \"descr\": \"<f8\", \"fortran_order\": False}\n",
        "{'shape':(3L,),'fortran_order':False,'descr':'<f8'}",
    };
    for (int major = 1; major <= 3; major++) {
        for (size_t h = 0; h < sizeof headers / sizeof headers[0]; h++) {
            size_t len;
            uint8_t *buf = make(major, 0, headers[h], 24, &len);
            struct npy_array a;
            char err[DITD_ERR_LEN] = "";

            CHECK_EQ_INT(npy_parse(buf, len, &a, err, sizeof err), 0);
            if (err[0])
                fprintf(stderr, "version %d header %zu: %s\n", major, h, err);
            CHECK_EQ_INT(a.dtype, NPY_F64);
            CHECK_EQ_INT(a.ndim, 1);
            CHECK_EQ_INT(a.shape[0], 3);
            CHECK(a.data && ((uint8_t *)a.data)[23] == 23);
            npy_free(&a);
            free(buf);
        }
    }
}

struct bad_case {
    const char *what;
    int major, minor;
    const char *header;
    size_t data_len;
    const char *in_msg;
};

#define H(descr, fortran, shape) \
    "{'descr': '" descr "', 'fortran_order': " fortran ", 'shape': " shape ", }\n"

static const struct bad_case table[] = {
    {"fortran order", 1, 0, H("<f4", "True", "(2, 2)"), 16, "fortran_order is True"},
    {"big-endian", 1, 0, H(">f4", "False", "(2,)"), 8, "big-endian"},
    {"int8 dtype", 1, 0, H("|i1", "False", "(2,)"), 2, "'|i1' is not supported"},
    {"unsigned int16 dtype", 1, 0, H("<u2", "False", "(2,)"), 4, "'<u2' is not supported"},
    {"half dtype", 1, 0, H("<f2", "False", "(2,)"), 4, "'<f2' is not supported"},
    {"structured dtype", 1, 0,
     "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }", 4, "structured"},
    {"version 4.0", 4, 0, H("<f4", "False", "(1,)"), 4, "version 4.0"},
    {"version 1.1", 1, 1, H("<f4", "False", "(1,)"), 4, "version 1.1"},
    {"data short by one byte", 1, 0, H("<f4", "False", "(2, 3)"), 23,
     "holds 23 data bytes, but shape (2, 3) of '<f4' needs 24"},
    {"trailing data byte", 1, 0, H("<i4", "False", "(2,)"), 9, "needs 8"},
    {"nine dims", 1, 0, H("<f4", "False", "(1, 1, 1, 1, 1, 1, 1, 1, 1)"), 4, "more than 8"},
    {"negative dim", 1, 0, H("<f4", "False", "(-1,)"), 0, "negative"},
    {"dim too large", 1, 0, H("<f4", "False", "(99999999999999999999,)"), 0, "absurd"},
    {"element count overflow", 1, 0, H("<f4", "False", "(4294967296, 4294967296)"), 0,
     "overflows"},
    {"byte count overflow", 1, 0, H("<f8", "False", "(4611686018427387904,)"), 0, "absurd"},
    {"huge dim, little data", 1, 0, H("<f4", "False", "(1099511627776,)"), 8, "needs"},
    {"shape not a tuple", 1, 0, H("<f4", "False", "[2]"), 8, "not a tuple"},
    {"dim not a number", 1, 0, H("<f4", "False", "(a,)"), 8, "not a non-negative integer"},
    {"missing shape", 1, 0, "{'descr': '<f4', 'fortran_order': False, }", 4, "lacks 'shape'"},
    {"repeated key", 1, 0,
     "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", 4,
     "repeats"},
    {"unknown key", 1, 0,
     "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 1}", 4, "unexpected"},
    {"fortran_order not a bool", 1, 0, H("<f4", "0", "(1,)"), 4, "not True or False"},
    {"not a dict", 1, 0, "('<f4', False, (1,))", 4, "not a Python dict"},
    {"unterminated dict", 1, 0, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,)", 4,
     "malformed"},
    {"bytes after the dict", 1, 0, H("<f4", "False", "(1,)") "x", 4, "after the header"},
    {"escape in a string", 1, 0, H("<f\\4", "False", "(1,)"), 4, "descr"},
};

static void test_table(void)
{
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        size_t len;
        uint8_t *buf = make(table[i].major, table[i].minor, table[i].header,
                            table[i].data_len, &len);
        struct npy_array a;
        char err[DITD_ERR_LEN] = "";
        int rc = npy_parse(buf, len, &a, err, sizeof err);

        if (rc != DITD_EINVAL || !strstr(err, table[i].in_msg) ||
            strncmp(err, "<buffer>: ", 10) != 0) {
            fprintf(stderr, "case \"%s\": rc %d, message: %s\n", table[i].what, rc, err);
            test_failures++;
        }
        CHECK(a.data == NULL && a.ndim == 0);
        free(buf);
    }
}

/* Cuts inside the prelude and the header. */
static void test_truncation(void)
{
    size_t len;
    uint8_t *buf = make(2, 0, H("<f4", "False", "(1,)"), 4, &len);
    struct npy_array a;
    char err[DITD_ERR_LEN];

    for (size_t cut = 0; cut < len; cut++)
        CHECK_EQ_INT(npy_parse(buf, cut, &a, err, sizeof err), DITD_EINVAL);
    CHECK_EQ_INT(npy_parse(buf, len, &a, err, sizeof err), 0);
    npy_free(&a);
    CHECK_EQ_INT(npy_parse(buf, 11, &a, err, sizeof err), DITD_EINVAL);
    CHECK_STR_CONTAINS(err, "prelude");
    CHECK_EQ_INT(npy_parse(buf, 20, &a, err, sizeof err), DITD_EINVAL);
    CHECK_STR_CONTAINS(err, "past the end");
    CHECK_EQ_INT(npy_parse(buf, 3, &a, err, sizeof err), DITD_EINVAL);
    CHECK_STR_CONTAINS(err, "magic");
    /* A v2 header length of 4 GiB - 1 is refused by the bound, not trusted. */
    buf[8] = buf[9] = buf[10] = buf[11] = 0xff;
    CHECK_EQ_INT(npy_parse(buf, len, &a, err, sizeof err), DITD_EINVAL);
    CHECK_STR_CONTAINS(err, "exceeds the limit");
    free(buf);
}

static void test_files(void)
{
    const char *path = temp_path("file.npy");
    const int64_t shape[] = {4}, bad[] = {-1};
    const float v[4] = {1, 2, 3, 4};
    struct npy_array a;
    char err[DITD_ERR_LEN];

    CHECK_EQ_INT(npy_read(temp_path("missing.npy"), &a, err, sizeof err), DITD_ENOENT);
    CHECK_STR_CONTAINS(err, "missing.npy");
    CHECK_EQ_INT(npy_read(tmpdir_path, &a, err, sizeof err), DITD_EIO);

    CHECK_EQ_INT(npy_write(path, NPY_F32, 1, shape, v, err, sizeof err), 0);
    CHECK_EQ_INT(truncate(path, 128 + 15), 0);
    CHECK_EQ_INT(npy_read(path, &a, err, sizeof err), DITD_EINVAL);
    CHECK_STR_CONTAINS(err, path);
    CHECK_STR_CONTAINS(err, "truncated");
    CHECK_EQ_INT(truncate(path, 60), 0);
    CHECK_EQ_INT(npy_read(path, &a, err, sizeof err), DITD_EINVAL);
    CHECK_STR_CONTAINS(err, "past the end");
    CHECK_EQ_INT(truncate(path, 4), 0);
    CHECK_EQ_INT(npy_read(path, &a, err, sizeof err), DITD_EINVAL);
    unlink(path);

    CHECK_EQ_INT(npy_write(path, NPY_F32, 1, bad, v, err, sizeof err), DITD_EINVAL);
    CHECK_STR_CONTAINS(err, "negative");
    CHECK_EQ_INT(npy_write(path, NPY_F32, 9, shape, v, err, sizeof err), DITD_EINVAL);
    CHECK_EQ_INT(npy_write(path, NPY_F32, 1, shape, NULL, err, sizeof err), DITD_EINVAL);
    CHECK_EQ_INT(npy_write(path, (enum npy_dtype)7, 1, shape, v, err, sizeof err), DITD_EINVAL);
    CHECK(access(path, F_OK) != 0);
    CHECK_EQ_INT(npy_write(temp_path("no/such/dir.npy"), NPY_F32, 1, shape, v, err,
                           sizeof err), DITD_ENOENT);
}

int main(void)
{
    const char *dir = getenv("TMPDIR");

    snprintf(tmpdir_path, sizeof tmpdir_path, "%s/test_npy_XXXXXX",
             dir && *dir ? dir : "/tmp");
    if (!mkdtemp(tmpdir_path)) {
        perror("mkdtemp");
        return 1;
    }
    test_round_trip();
    test_exact_bytes();
    test_uint8();
    test_header();
    test_versions();
    test_table();
    test_truncation();
    test_files();
    rmdir(tmpdir_path);
    return test_status();
}
