/*
 * buf.c - growable buffer (see buf.h). Growth doubles, capped by `max`.
 * Also the UTF-8 checks that keep client bytes fit for JSON.
 */
#include "buf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void buf_init(struct buf *b, size_t max)
{
    memset(b, 0, sizeof(*b));
    b->max = max ? max : SIZE_MAX;
}

void buf_free(struct buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

char *buf_steal(struct buf *b, size_t *len)
{
    char *p = b->data;

    if (len)
        *len = b->len;
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}

/* Make room for n more bytes plus a NUL. */
static int buf_reserve(struct buf *b, size_t n)
{
    size_t want;
    size_t cap;
    char *p;

    if (b->err)
        return b->err;
    if (n > b->max - b->len) {
        b->err = -E2BIG;
        return b->err;
    }
    want = b->len + n + 1;
    if (want <= b->cap)
        return 0;
    cap = b->cap ? b->cap : 256;
    while (cap < want)
        cap = cap > SIZE_MAX / 2 ? want : cap * 2;
    p = realloc(b->data, cap);
    if (!p) {
        b->err = -ENOMEM;
        return b->err;
    }
    b->data = p;
    b->cap = cap;
    return 0;
}

int buf_append(struct buf *b, const void *p, size_t n)
{
    int rc = buf_reserve(b, n);

    if (rc)
        return rc;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int buf_puts(struct buf *b, const char *s)
{
    return buf_append(b, s, strlen(s));
}

int buf_printf(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;
    int rc;

    if (b->err)
        return b->err;
    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return -EINVAL;
    rc = buf_reserve(b, (size_t)n);
    if (rc)
        return rc;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

int buf_base64(struct buf *b, const unsigned char *p, size_t n)
{
    static const char tab[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t out = (n + 2) / 3 * 4;
    char *d;
    size_t i;
    int rc = buf_reserve(b, out);

    if (rc)
        return rc;
    d = b->data + b->len;
    for (i = 0; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];

        *d++ = tab[v >> 18];
        *d++ = tab[(v >> 12) & 63];
        *d++ = tab[(v >> 6) & 63];
        *d++ = tab[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0);

        *d++ = tab[v >> 18];
        *d++ = tab[(v >> 12) & 63];
        *d++ = i + 1 < n ? tab[(v >> 6) & 63] : '=';
        *d++ = '=';
    }
    b->len += out;
    b->data[b->len] = '\0';
    return 0;
}

/* Length of the well-formed UTF-8 sequence at p (1 to 4), or 0 when the
 * bytes there are not one (stray continuation, overlong form, surrogate,
 * beyond U+10FFFF, or cut short). */
size_t utf8_len(const unsigned char *p)
{
    unsigned cp;
    size_t n;

    if (p[0] < 0x80)
        return 1;
    if (p[0] >= 0xc2 && p[0] <= 0xdf) {
        n = 2;
        cp = p[0] & 0x1fu;
    } else if (p[0] >= 0xe0 && p[0] <= 0xef) {
        n = 3;
        cp = p[0] & 0x0fu;
    } else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
        n = 4;
        cp = p[0] & 0x07u;
    } else {
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;   /* also stops at the terminating NUL */
        cp = cp << 6 | (p[i] & 0x3fu);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

/* Replace every byte that is not part of well-formed UTF-8 with '?'.
 * Messages quote client bytes (a URL, a header, a name cut to a length),
 * and jansson refuses to build a string that is not UTF-8. */
void utf8_scrub(char *s)
{
    unsigned char *p = (unsigned char *)s;

    while (*p) {
        size_t n = utf8_len(p);

        if (n == 0)
            *p++ = '?';
        else
            p += n;
    }
}

int buf_json_string(struct buf *b, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;

    buf_append(b, "\"", 1);
    while (*p) {
        size_t n = utf8_len(p);

        if (n == 0) {
            buf_append(b, "?", 1);
            p++;
        } else if (*p == '"' || *p == '\\') {
            buf_printf(b, "\\%c", *p++);
        } else if (*p < 0x20 || *p == 0x7f) {
            buf_printf(b, "\\u%04x", *p++);
        } else {
            buf_append(b, p, n);
            p += n;
        }
    }
    return buf_append(b, "\"", 1);
}
