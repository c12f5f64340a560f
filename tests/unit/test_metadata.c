/*
 * test_metadata.c - the PNG metadata that makes images reproducible: XXH64
 * against xxhsum's answers, the writer and the reader round trip on every
 * parameter (floats exactly), refusals of PNGs that lack or garble a key,
 * truncated and damaged files read without harm, and the seed draw's range.
 */
#include <stdlib.h>

#include "ditd-build.h"
#include "ditd.h"
#include "hash.h"
#include "test.h"

static uint64_t xxh64_of(const void *p, size_t n, size_t chunk)
{
    struct xxh64 h;
    xxh64_init(&h, 0);
    for (size_t i = 0; i < n; i += chunk)
        xxh64_update(&h, (const uint8_t *)p + i, n - i < chunk ? n - i : chunk);
    return xxh64_digest(&h);
}

static void test_xxh64(void)
{
    static uint8_t zeros[1000], pattern[100];
    static const size_t chunks[] = { 1, 3, 7, 31, 32, 33, 1000 };

    for (int i = 0; i < 100; i++)
        pattern[i] = (uint8_t)(i * 7 + 3);
    /* printf ... | xxhsum -H1 */
    CHECK(xxh64_of("", 0, 1) == UINT64_C(0xef46db3751d8e999));
    CHECK(xxh64_of("a", 1, 1) == UINT64_C(0xd24ec4f1a98c6e5b));
    CHECK(xxh64_of("abc", 3, 3) == UINT64_C(0x44bc2cf5ad770999));
    for (size_t c = 0; c < sizeof(chunks) / sizeof(chunks[0]); c++) {
        CHECK(xxh64_of(zeros, sizeof(zeros), chunks[c]) == UINT64_C(0x0e2b1ef27944075a));
        CHECK(xxh64_of(pattern, sizeof(pattern), chunks[c]) == UINT64_C(0xa61f8d4c170fe531));
    }
}

/* A 4x4 RGB PNG carrying text. */
static uint8_t *png_with(const struct ditd_png_text *text, int n, size_t *len)
{
    uint8_t rgb[4 * 4 * 3], *png = NULL;
    for (size_t i = 0; i < sizeof(rgb); i++)
        rgb[i] = (uint8_t)(i * 13);
    CHECK_EQ_INT(ditd_png_encode(rgb, 4, 4, 3, text, n, &png, len), 0);
    return png;
}

static int same_params(const struct ditd_params *a, const struct ditd_params *b)
{
    return a->class_id == b->class_id && a->cfg == b->cfg && a->steps == b->steps &&
           a->ddim_spacing == b->ddim_spacing && a->sampler == b->sampler && a->eta == b->eta &&
           a->seed == b->seed && a->index == b->index;
}

static void test_round_trip(const struct ditd_model *m)
{
    const struct ditd_params cases[] = {
        { 7, 4.0f, 50, false, DITD_SAMPLER_DDPM, 0.0f, 3, 0 },
        { 0, 0.1f, 1, true, DITD_SAMPLER_DDIM, 1.0f / 3.0f, INT64_MAX, 5 },
        { 9, 7.25f, 1000, false, DITD_SAMPLER_DPMPP_2M, 1.0f, (UINT64_C(1) << 53) - 1, 4000000000u },
        { 3, 1.0000001f, 25, true, DITD_SAMPLER_DDIM, 1e-7f, 0, 123 },
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        for (int count = 1; count <= 8; count += 7) {
            struct ditd_png_meta meta;
            struct ditd_png_origin o;
            char err[DITD_ERR_LEN] = "";
            size_t len;

            ditd_png_metadata(m, &cases[c], count, &meta);
            uint8_t *png = png_with(meta.text, meta.n, &len);
            CHECK_EQ_INT(ditd_png_metadata_read(png, len, &o, err, sizeof(err)), 0);
            if (err[0])
                fprintf(stderr, "case %zu: %s\n", c, err);
            CHECK(same_params(&o.params, &cases[c]));
            CHECK_EQ_INT(o.count, count);
            CHECK(strcmp(o.model_id, ditd_model_info(m)->id) == 0);
            CHECK(strcmp(o.model, ditd_model_info(m)->name) == 0);
            CHECK(strcmp(o.precision, "fp32") == 0);
            CHECK_STR_CONTAINS(o.software, DITD_VERSION);
            free(png);
        }
    }
}

/* What the writer puts in, and nothing that changes between runs. */
static void test_keys(const struct ditd_model *m)
{
    static const char *const keys[] = {
        "Software", "model", "model_id", "class", "class_name", "cfg", "steps", "sampler",
        "spacing", "eta", "seed", "index", "precision",
    };
    struct ditd_params p;
    struct ditd_png_meta a, b;

    ditd_params_default(&p);
    p.class_id = 7;
    p.seed = 42;
    ditd_png_metadata(m, &p, 1, &a);
    ditd_png_metadata(m, &p, 1, &b);
    CHECK_EQ_INT(a.n, (int)(sizeof(keys) / sizeof(keys[0])));
    for (int i = 0; i < a.n && i < (int)(sizeof(keys) / sizeof(keys[0])); i++) {
        CHECK(strcmp(a.text[i].key, keys[i]) == 0);
        CHECK(strcmp(a.text[i].value, b.text[i].value) == 0);
    }
    CHECK(strcmp(a.text[4].value, "sneaker") == 0);
    CHECK(strcmp(a.text[5].value, "4") == 0);
    CHECK(strcmp(a.text[6].value, "50") == 0);
    CHECK(strcmp(a.text[11].value, "0") == 0);
    ditd_png_metadata(m, &p, 3, &a);
    CHECK(strcmp(a.text[11].value, "0-2") == 0);
}

static void expect_refusal(const struct ditd_png_text *text, int n, const char *why)
{
    struct ditd_png_origin o;
    char err[DITD_ERR_LEN] = "";
    size_t len;
    uint8_t *png = png_with(text, n, &len);

    CHECK_EQ_INT(ditd_png_metadata_read(png, len, &o, err, sizeof(err)), DITD_EINVAL);
    CHECK_STR_CONTAINS(err, why);
    free(png);
}

static void test_refusals(void)
{
    struct ditd_png_text t[] = {
        { "class", "7" }, { "cfg", "4" }, { "steps", "50" }, { "sampler", "ddpm" },
        { "spacing", "uniform" }, { "eta", "0" }, { "seed", "1" }, { "index", "0" },
    };
    const int n = (int)(sizeof(t) / sizeof(t[0]));
    struct ditd_png_origin o;
    char err[DITD_ERR_LEN];

    /* Each key left out in turn. */
    for (int i = 0; i < n; i++) {
        struct ditd_png_text u[8];
        int k = 0;
        for (int j = 0; j < n; j++)
            if (j != i)
                u[k++] = t[j];
        char quoted[32];
        snprintf(quoted, sizeof(quoted), "\"%s\"", t[i].key);
        expect_refusal(u, k, quoted);
    }
    /* Each value garbled in turn. */
    static const char *const bad[][2] = {
        { "class", "-1" }, { "cfg", "4x" }, { "steps", "0" }, { "steps", "1001" },
        { "sampler", "euler" }, { "spacing", "log" }, { "eta", "2" }, { "seed", "1e3" },
        { "seed", "18446744073709551616" }, { "index", "3-1" }, { "index", "-" },
        { "cfg", "nan" }, { "index", "0-100000" },
    };
    for (size_t b = 0; b < sizeof(bad) / sizeof(bad[0]); b++) {
        struct ditd_png_text u[8];
        memcpy(u, t, sizeof(u));
        for (int j = 0; j < n; j++)
            if (strcmp(u[j].key, bad[b][0]) == 0)
                u[j].value = bad[b][1];
        expect_refusal(u, n, bad[b][0]);
    }
    /* Not a PNG at all. */
    CHECK_EQ_INT(ditd_png_metadata_read((const uint8_t *)"GIF89a..", 8, &o, err, sizeof(err)),
                 DITD_EINVAL);
    CHECK_STR_CONTAINS(err, "not a PNG");
}

/* A UTF-8 value travels in iTXt; the reader takes it from there. */
static void test_itxt(void)
{
    struct ditd_png_text t[] = {
        { "model", "mod\xc3\xa8le" }, { "class", "1" }, { "cfg", "2.5" }, { "steps", "10" },
        { "sampler", "ddim" }, { "spacing", "ddim" }, { "eta", "0.5" }, { "seed", "9" },
        { "index", "2-4" },
    };
    struct ditd_png_origin o;
    char err[DITD_ERR_LEN];
    size_t len;
    uint8_t *png = png_with(t, 9, &len);

    CHECK_EQ_INT(ditd_png_metadata_read(png, len, &o, err, sizeof(err)), 0);
    CHECK(strcmp(o.model, "mod\xc3\xa8le") == 0);
    CHECK(o.params.cfg == 2.5f && o.params.eta == 0.5f && o.params.ddim_spacing);
    CHECK_EQ_INT(o.params.index, 2);
    CHECK_EQ_INT(o.count, 3);
    free(png);
}

/* Every prefix and many damaged copies: an answer, never a crash (the
 * sanitizer build runs this too). */
static void test_damage(const struct ditd_model *m)
{
    struct ditd_params p;
    struct ditd_png_meta meta;
    struct ditd_png_origin o;
    char err[DITD_ERR_LEN];
    size_t len;

    ditd_params_default(&p);
    p.seed = 77;
    ditd_png_metadata(m, &p, 1, &meta);
    uint8_t *png = png_with(meta.text, meta.n, &len);
    for (size_t cut = 0; cut < len; cut++) {
        uint8_t *copy = malloc(cut ? cut : 1);
        memcpy(copy, png, cut);
        int rc = ditd_png_metadata_read(copy, cut, &o, err, sizeof(err));
        CHECK(rc == DITD_EINVAL || (rc == 0 && same_params(&o.params, &p)));
        free(copy);
    }
    uint8_t *copy = malloc(len);
    uint32_t x = 12345;
    for (int trial = 0; trial < 20000; trial++) {
        memcpy(copy, png, len);
        for (int flips = 0; flips < 1 + trial % 4; flips++) {
            x = x * 1664525u + 1013904223u;
            copy[(x >> 8) % len] ^= (uint8_t)(1u << (x >> 29));
        }
        int rc = ditd_png_metadata_read(copy, len, &o, err, sizeof(err));
        CHECK(rc == 0 || rc == DITD_EINVAL);
    }
    free(copy);
    free(png);
}

static void test_seed_random(void)
{
    uint64_t first = ditd_seed_random(), differs = 0;
    for (int i = 0; i < 64; i++) {
        uint64_t s = ditd_seed_random();
        CHECK(s < (UINT64_C(1) << 53));
        differs |= s ^ first;
    }
    CHECK(differs != 0);
}

int main(void)
{
    struct ditd_model *m = NULL;
    char err[DITD_ERR_LEN];

    test_xxh64();
    test_refusals();
    test_itxt();
    test_seed_random();
    if (ditd_model_load(&m, DITD_SOURCE_MODEL_DIR, err, sizeof(err)) != 0) {
        fprintf(stderr, "cannot load the bundled model: %s\n", err);
        return 1;
    }
    CHECK_EQ_INT(strlen(ditd_model_info(m)->id), 16);
    test_keys(m);
    test_round_trip(m);
    test_damage(m);
    ditd_model_free(m);
    return test_status();
}
