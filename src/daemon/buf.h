/*
 * buf.h - a growable byte buffer with a hard maximum, for response bodies,
 * event-stream frames and the metrics page. Appends past the maximum (or a
 * failed allocation) set a sticky error instead of growing, so a caller can
 * append freely and check once at the end. Also the UTF-8 helpers that
 * keep client bytes fit for JSON.
 */
#ifndef DITD_DAEMON_BUF_H
#define DITD_DAEMON_BUF_H

#include <stdbool.h>
#include <stddef.h>

struct buf {
    char *data;     /* NUL-terminated when len > 0 */
    size_t len;
    size_t cap;
    size_t max;     /* 0 = SIZE_MAX */
    int err;        /* 0 or -ENOMEM / -E2BIG, sticky */
};

void buf_init(struct buf *b, size_t max);
void buf_free(struct buf *b);
/* Give up the data: returns it (malloc'd, the caller frees) and resets b. */
char *buf_steal(struct buf *b, size_t *len);
int buf_append(struct buf *b, const void *p, size_t n);
int buf_puts(struct buf *b, const char *s);
int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Append the standard base64 encoding of p[0..n). */
int buf_base64(struct buf *b, const unsigned char *p, size_t n);
/* Append s as a JSON string literal: quotes, escapes, and '?' for every
 * byte that is not part of well-formed UTF-8 (s may hold client bytes). */
int buf_json_string(struct buf *b, const char *s);

/* Length of the well-formed UTF-8 sequence at p (1 to 4), or 0 when the
 * bytes there are not one. */
size_t utf8_len(const unsigned char *p);
/* Replace every byte that is not part of well-formed UTF-8 with '?'
 * (jansson refuses to build a string that is not UTF-8). */
void utf8_scrub(char *s);

#endif /* DITD_DAEMON_BUF_H */
