/*
 * test_image.c - ditd_png_encode(): what it writes is decoded again with
 * libpng's reading API and compared pixel by pixel and chunk by chunk;
 * bad arguments are refused before any pixel is read.
 */
#include "ditd.h"
#include "test.h"

#include <png.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>

/* What the decoder found. */
struct decoded {
    uint32_t width, height;
    int color_type, bit_depth;
    uint8_t *pixels;           /* rows packed, malloc'd */
    int ntext;
    char keys[8][80];
    char values[8][256];
    int compression[8];
};

struct mem_reader {
    const uint8_t *p;
    size_t len, pos;
};

static void mem_read(png_structp png, png_bytep out, size_t n)
{
    struct mem_reader *r = png_get_io_ptr(png);

    if (n > r->len - r->pos)
        png_error(png, "read past the end");
    memcpy(out, r->p + r->pos, n);
    r->pos += n;
}

/* Caller-owned state lives in d and r, outside this frame's setjmp. */
static int decode_into(struct mem_reader *r, struct decoded *d)
{
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    png_textp text;
    int n;

    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        return -1;
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, NULL);
        return -1;
    }
    png_set_read_fn(png, r, mem_read);
    png_read_info(png, info);
    d->width = png_get_image_width(png, info);
    d->height = png_get_image_height(png, info);
    d->color_type = png_get_color_type(png, info);
    d->bit_depth = png_get_bit_depth(png, info);
    d->pixels = malloc(png_get_rowbytes(png, info) * d->height);
    if (!d->pixels)
        png_error(png, "out of memory");
    for (uint32_t y = 0; y < d->height; y++)
        png_read_row(png, d->pixels + y * png_get_rowbytes(png, info), NULL);
    png_read_end(png, info);
    n = png_get_text(png, info, &text, NULL);
    for (int i = 0; i < n && i < 8; i++) {
        snprintf(d->keys[i], sizeof d->keys[i], "%s", text[i].key);
        snprintf(d->values[i], sizeof d->values[i], "%s", text[i].text);
        d->compression[i] = text[i].compression;
    }
    d->ntext = n;
    png_destroy_read_struct(&png, &info, NULL);
    return 0;
}

static int decode(const uint8_t *png, size_t len, struct decoded *d)
{
    struct mem_reader r = {png, len, 0};

    memset(d, 0, sizeof *d);
    return decode_into(&r, d);
}

static void fill(uint8_t *p, size_t n, uint32_t seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        p[i] = (uint8_t)(seed >> 24);
    }
}

static void test_rgb_with_text(void)
{
    enum { W = 37, H = 23 };
    static uint8_t rgb[W * H * 3];
    static const struct ditd_png_text text[] = {
        {"ditd:seed", "42"},
        {"Comment", "cfg=4.0 steps=250\nsampler=ddpm"},
        {"class", "\xc3\x84rmel \xe2\x9c\x93"},   /* UTF-8: written as iTXt */
        {"empty", ""},
    };
    uint8_t *png = NULL;
    size_t len = 0;
    struct decoded d;

    fill(rgb, sizeof rgb, 1);
    CHECK_EQ_INT(ditd_png_encode(rgb, W, H, 3, text, 4, &png, &len), 0);
    CHECK(png != NULL && len > 8 && memcmp(png, "\x89PNG\r\n\x1a\n", 8) == 0);
    CHECK_EQ_INT(decode(png, len, &d), 0);
    CHECK_EQ_INT(d.width, W);
    CHECK_EQ_INT(d.height, H);
    CHECK_EQ_INT(d.color_type, PNG_COLOR_TYPE_RGB);
    CHECK_EQ_INT(d.bit_depth, 8);
    CHECK(d.pixels && memcmp(d.pixels, rgb, sizeof rgb) == 0);
    CHECK_EQ_INT(d.ntext, 4);
    for (int i = 0; i < 4 && i < d.ntext; i++) {
        CHECK(strcmp(d.keys[i], text[i].key) == 0);
        CHECK(strcmp(d.values[i], text[i].value) == 0);
        CHECK_EQ_INT(d.compression[i], i == 2 ? PNG_ITXT_COMPRESSION_NONE
                                              : PNG_TEXT_COMPRESSION_NONE);
    }
    free(d.pixels);
    free(png);
}

static void test_grey_and_sizes(void)
{
    static const int sizes[][3] = {{1, 1, 1}, {1, 1, 3}, {5, 4, 1}, {256, 3, 1}, {3, 256, 3}};
    uint8_t *pix = malloc(256 * 256 * 3);

    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        int w = sizes[s][0], h = sizes[s][1], c = sizes[s][2];
        uint8_t *png = NULL;
        size_t len = 0;
        struct decoded d;

        fill(pix, (size_t)w * h * c, (uint32_t)s + 7);
        CHECK_EQ_INT(ditd_png_encode(pix, w, h, c, NULL, 0, &png, &len), 0);
        CHECK_EQ_INT(decode(png, len, &d), 0);
        CHECK_EQ_INT(d.width, w);
        CHECK_EQ_INT(d.height, h);
        CHECK_EQ_INT(d.color_type, c == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB);
        CHECK_EQ_INT(d.ntext, 0);
        CHECK(d.pixels && memcmp(d.pixels, pix, (size_t)w * h * c) == 0);
        free(d.pixels);
        free(png);
    }
    free(pix);
}

/* Noise does not compress: the output outgrows the raw bytes, which the
 * buffer's growth and its hard maximum must both allow. A flat image
 * compresses to a small fraction. */
static void test_large(void)
{
    enum { W = 512, H = 512 };
    uint8_t *rgb = malloc(W * H * 3);
    uint8_t *png = NULL;
    size_t len = 0;
    struct decoded d;

    fill(rgb, W * H * 3, 99);
    CHECK_EQ_INT(ditd_png_encode(rgb, W, H, 3, NULL, 0, &png, &len), 0);
    CHECK(len > (size_t)W * H * 3);
    CHECK_EQ_INT(decode(png, len, &d), 0);
    CHECK(d.pixels && memcmp(d.pixels, rgb, W * H * 3) == 0);
    free(d.pixels);
    free(png);

    memset(rgb, 128, W * H * 3);
    CHECK_EQ_INT(ditd_png_encode(rgb, W, H, 3, NULL, 0, &png, &len), 0);
    CHECK(len < (size_t)W * H * 3 / 50);
    free(png);
    free(rgb);
}

static void test_bad_arguments(void)
{
    uint8_t pix[12] = {0};
    uint8_t *png = (uint8_t *)1;
    size_t len = 1;
    struct ditd_png_text t = {"ok", "v"};
    char long_key[81];

    CHECK_EQ_INT(ditd_png_encode(NULL, 2, 2, 3, NULL, 0, &png, &len), DITD_EINVAL);
    CHECK(png == NULL && len == 0);
    CHECK_EQ_INT(ditd_png_encode(pix, 0, 2, 3, NULL, 0, &png, &len), DITD_EINVAL);
    CHECK_EQ_INT(ditd_png_encode(pix, 2, -1, 3, NULL, 0, &png, &len), DITD_EINVAL);
    CHECK_EQ_INT(ditd_png_encode(pix, 2, 2, 2, NULL, 0, &png, &len), DITD_EINVAL);
    CHECK_EQ_INT(ditd_png_encode(pix, 2, 2, 4, NULL, 0, &png, &len), DITD_EINVAL);
    CHECK_EQ_INT(ditd_png_encode(pix, 2, 2, 3, NULL, 1, &png, &len), DITD_EINVAL);
    CHECK_EQ_INT(ditd_png_encode(pix, 2, 2, 3, &t, -1, &png, &len), DITD_EINVAL);
    CHECK_EQ_INT(ditd_png_encode(pix, 2, 2, 3, &t, 1, NULL, &len), DITD_EINVAL);
    CHECK_EQ_INT(ditd_png_encode(pix, 2, 2, 3, &t, 1, &png, NULL), DITD_EINVAL);
    /* Limits: no pixel is read, so a tiny buffer is safe to pass. */
    CHECK_EQ_INT(ditd_png_encode(pix, 1000001, 1, 1, NULL, 0, &png, &len), DITD_ERANGE);
    CHECK_EQ_INT(ditd_png_encode(pix, 100000, 100000, 3, NULL, 0, &png, &len), DITD_ERANGE);
    CHECK_EQ_INT(ditd_png_encode(pix, 2, 2, 3, &t, 65, &png, &len), DITD_ERANGE);

    /* PNG keyword rules. */
    memset(long_key, 'k', 80);
    long_key[80] = '\0';
    {
        const char *bad_keys[] = {"", " lead", "trail ", "two  spaces", "new\nline",
                                  long_key};

        for (size_t i = 0; i < sizeof bad_keys / sizeof bad_keys[0]; i++) {
            struct ditd_png_text bt = {bad_keys[i], "v"};

            CHECK_EQ_INT(ditd_png_encode(pix, 2, 2, 3, &bt, 1, &png, &len), DITD_EINVAL);
            CHECK(png == NULL);
        }
    }
    t.value = NULL;
    CHECK_EQ_INT(ditd_png_encode(pix, 2, 2, 3, &t, 1, &png, &len), DITD_EINVAL);
    t.key = NULL;
    t.value = "v";
    CHECK_EQ_INT(ditd_png_encode(pix, 2, 2, 3, &t, 1, &png, &len), DITD_EINVAL);
    long_key[79] = '\0';    /* 79 bytes: the longest legal keyword */
    t.key = long_key;
    CHECK_EQ_INT(ditd_png_encode(pix, 2, 2, 3, &t, 1, &png, &len), 0);
    free(png);
}

int main(void)
{
    test_rgb_with_text();
    test_grey_and_sizes();
    test_large();
    test_bad_arguments();
    return test_status();
}
