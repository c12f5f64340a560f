/*
 * log.h - leveled logging for the daemon: one printf-like entry point that
 * writes one line per call to stderr. Under systemd (JOURNAL_STREAM set) the
 * line carries a "<N>" syslog priority prefix so journald files it at the
 * right level; otherwise it carries a UTC timestamp and a level word.
 */
#ifndef DITD_DAEMON_LOG_H
#define DITD_DAEMON_LOG_H

#include <stdbool.h>

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

/* Thread-safe: the whole line goes out in one write(2). */
void log_msg(enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif /* DITD_DAEMON_LOG_H */
