/*
 * image.c - encode 8-bit grey or RGB pixels as a PNG in memory (libpng).
 *
 * The daemon answers with these bytes, so nothing here touches files or
 * prints: libpng writes through a callback into a growable buffer with a
 * hard maximum, its errors come back as return codes through a setjmp whose
 * path frees everything, and its warnings are dropped. Text chunks carry the
 * generation parameters: tEXt for ASCII values, iTXt (UTF-8) otherwise,
 * since tEXt is Latin-1 and would garble a UTF-8 class name.
 */
#include "ditd.h"

#include <png.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* libpng refuses larger dimensions by default (PNG_USER_WIDTH_MAX). */
#define IMAGE_MAX_SIDE 1000000u
/* Largest raw image accepted: far above any DiT output, far below memory. */
#define IMAGE_MAX_RAW ((size_t)1 << 30)
#define IMAGE_MAX_TEXT 64

/* The output under construction, shared with libpng's write callback. */
struct png_out {
    uint8_t *data;
    size_t len, cap, max;
    bool oom, too_big;
};

static void out_write(png_structp png, png_bytep bytes, size_t n)
{
    struct png_out *o = png_get_io_ptr(png);

    if (n > o->max - o->len) {
        o->too_big = true;
        png_error(png, "output above its maximum");
    }
    if (n > o->cap - o->len) {
        size_t cap = o->cap ? o->cap : 4096;
        uint8_t *p;

        while (cap - o->len < n)
            cap = cap > o->max / 2 ? o->max : cap * 2;
        p = realloc(o->data, cap);
        if (!p) {
            o->oom = true;
            png_error(png, "out of memory");
        }
        o->data = p;
        o->cap = cap;
    }
    memcpy(o->data + o->len, bytes, n);
    o->len += n;
}

static void out_flush(png_structp png)
{
    (void)png;
}

/* Replaces libpng's default, which prints to stderr before jumping. */
static void on_error(png_structp png, png_const_charp msg)
{
    (void)msg;
    png_longjmp(png, 1);
}

static void on_warning(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg;
}

/* PNG keyword rules: 1-79 Latin-1 printable bytes, no leading, trailing or
 * doubled spaces. Checked here because libpng would fail the whole image. */
static bool key_ok(const char *key)
{
    size_t n = strlen(key);

    if (n < 1 || n > 79 || key[0] == ' ' || key[n - 1] == ' ')
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)key[i];

        if (c < 0x20 || (c > 0x7e && c < 0xa1) || (c == ' ' && key[i + 1] == ' '))
            return false;
    }
    return true;
}

static bool is_ascii(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s > 0x7e || (unsigned char)*s < 0x20)
            if (*s != '\n' && *s != '\t')
                return false;
    return true;
}

/* Everything that talks to libpng. In its own function so that the locals
 * of the caller, which libpng changes through pointers, are not locals of
 * the function that calls setjmp (C11 7.13.2.1). */
static int encode(struct png_out *o, const uint8_t *pixels, uint32_t width, uint32_t height,
                  int channels, size_t stride, png_textp chunks, int nchunks)
{
    png_structp png;
    png_infop info;

    png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, on_error, on_warning);
    if (!png)
        return DITD_ENOMEM;
    info = png_create_info_struct(png);
    if (!info) {
        png_destroy_write_struct(&png, NULL);
        return DITD_ENOMEM;
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        return o->oom ? DITD_ENOMEM : o->too_big ? DITD_ERANGE : DITD_EINVAL;
    }
    png_set_write_fn(png, o, out_write, out_flush);
    png_set_IHDR(png, info, width, height, 8,
                 channels == 3 ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_GRAY,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_set_compression_level(png, 6);
    if (nchunks)
        png_set_text(png, info, chunks, nchunks);
    png_write_info(png, info);
    for (uint32_t y = 0; y < height; y++)
        png_write_row(png, pixels + (size_t)y * stride);
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    return 0;
}

int ditd_png_encode(const uint8_t *rgb, int width, int height, int channels,
                    const struct ditd_png_text *text, int ntext,
                    uint8_t **out, size_t *outlen)
{
    struct png_out o = {0};
    png_textp chunks = NULL;
    size_t stride, raw, extra = 0;
    int rc;

    if (!out || !outlen)
        return DITD_EINVAL;
    *out = NULL;
    *outlen = 0;
    if (!rgb || width < 1 || height < 1 || (channels != 1 && channels != 3) ||
        ntext < 0 || (ntext && !text))
        return DITD_EINVAL;
    if ((unsigned)width > IMAGE_MAX_SIDE || (unsigned)height > IMAGE_MAX_SIDE ||
        ntext > IMAGE_MAX_TEXT)
        return DITD_ERANGE;
    if (__builtin_mul_overflow((size_t)width, (size_t)channels, &stride) ||
        __builtin_mul_overflow(stride, (size_t)height, &raw) || raw > IMAGE_MAX_RAW)
        return DITD_ERANGE;
    for (int i = 0; i < ntext; i++) {
        if (!text[i].key || !text[i].value || !key_ok(text[i].key))
            return DITD_EINVAL;
        extra += strlen(text[i].value) + 128;   /* chunk, keyword, iTXt fields */
        if (extra > IMAGE_MAX_RAW)
            return DITD_ERANGE;
    }
    /* Deflate stores incompressible data with a few bytes per 64 KiB block,
     * and each 8 KiB IDAT adds 12: raw/64 covers both with room to spare. */
    o.max = raw + height + raw / 64 + extra + 4096;

    if (ntext) {
        chunks = calloc((size_t)ntext, sizeof *chunks);
        if (!chunks)
            return DITD_ENOMEM;
        for (int i = 0; i < ntext; i++) {
            bool ascii = is_ascii(text[i].value);

            chunks[i].compression = ascii ? PNG_TEXT_COMPRESSION_NONE
                                          : PNG_ITXT_COMPRESSION_NONE;
            /* libpng copies the strings; it only lacks const in its API. */
            chunks[i].key = (png_charp)(uintptr_t)text[i].key;
            chunks[i].text = (png_charp)(uintptr_t)text[i].value;
            chunks[i].text_length = ascii ? strlen(text[i].value) : 0;
            chunks[i].itxt_length = ascii ? 0 : strlen(text[i].value);
        }
    }
    rc = encode(&o, rgb, (uint32_t)width, (uint32_t)height, channels, stride, chunks, ntext);
    free(chunks);
    if (rc) {
        free(o.data);
        return rc;
    }
    *out = o.data;
    *outlen = o.len;
    return 0;
}
