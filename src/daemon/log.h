/*
 * log.h - leveled logging for the daemon: one line per record on stderr,
 * in one of two formats (log_format). text: a UTC timestamp, a level word,
 * the message, then key=value fields. json: one object per line,
 * {"time", "level", "message", fields...}. Under systemd (JOURNAL_STREAM
 * set) the line starts with a "<N>" syslog priority so journald files it
 * at the right level (and text lines drop the timestamp, which the journal
 * adds).
 */
#ifndef DITD_DAEMON_LOG_H
#define DITD_DAEMON_LOG_H

#include <stdbool.h>
#include <stddef.h>

enum log_level {
    LOG_LEVEL_ERROR,
    LOG_LEVEL_WARN,
    LOG_LEVEL_INFO,
    LOG_LEVEL_DEBUG
};

/* Detect journald; safe to call again (e.g. after a config reload). */
void log_init(enum log_level level);
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
bool log_enabled(enum log_level level);
/* "error", "warn", "info", "debug" -> level; 0 or -EINVAL. */
int log_level_parse(const char *name, enum log_level *out);
const char *log_level_name(enum log_level level);

enum log_format {
    LOG_FORMAT_TEXT,
    LOG_FORMAT_JSON
};

/* "text" or "json" -> format; 0 or -EINVAL. */
int log_format_parse(const char *name, enum log_format *out);
void log_set_format(enum log_format format);

/* One field of a structured record: a string, or (str NULL) a number. */
struct log_field {
    const char *key;
    const char *str;
    double num;
};

/* Thread-safe: the whole line goes out in one write(2). */
void log_msg(enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* A record with fields (the access log): "message k=v ..." in text, the
 * fields as members of the object in json. */
void log_fields(enum log_level level, const char *message, const struct log_field *f,
                size_t n);

#endif /* DITD_DAEMON_LOG_H */
