/*
 * buf.h - a growable byte buffer with a hard maximum, for response bodies,
 * event-stream frames and the metrics page. Appends past the maximum (or a
 * failed allocation) set a sticky error instead of growing, so a caller can
 * append freely and check once at the end.
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

#endif /* DITD_DAEMON_BUF_H */
