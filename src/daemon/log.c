/*
 * log.c - one-line log records on stderr. Each record is formatted into a
 * stack buffer and written with a single write(2), so lines from the loop
 * thread and the workers never interleave.
 */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static _Atomic int current_level = LOG_LEVEL_INFO;
static bool journald;

static const char *const level_names[] = { "error", "warn", "info", "debug" };
/* syslog priorities: err, warning, info, debug */
static const int level_prio[] = { 3, 4, 6, 7 };

void log_init(enum log_level level)
{
    atomic_store(&current_level, (int)level);
    /* systemd sets JOURNAL_STREAM when stderr is connected to the journal;
     * the journal adds its own timestamps. */
    journald = getenv("JOURNAL_STREAM") != NULL;
}

void log_set_level(enum log_level level)
{
    atomic_store(&current_level, (int)level);
}

enum log_level log_get_level(void)
{
    return (enum log_level)atomic_load(&current_level);
}

bool log_enabled(enum log_level level)
{
    return (int)level <= atomic_load(&current_level);
}

int log_level_parse(const char *name, enum log_level *out)
{
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(name, level_names[i]) == 0) {
            *out = (enum log_level)i;
            return 0;
        }
    }
    if (strcasecmp(name, "warning") == 0) {
        *out = LOG_LEVEL_WARN;
        return 0;
    }
    return -EINVAL;
}

const char *log_level_name(enum log_level level)
{
    if ((int)level < 0 || (int)level > 3)
        return "?";
    return level_names[level];
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    char line[2048];
    size_t len = 0;
    va_list ap;
    int n;

    if (!log_enabled(level))
        return;
    if (journald) {
        n = snprintf(line, sizeof(line), "<%d>", level_prio[level]);
    } else {
        struct timespec ts;
        struct tm tm;

        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        n = snprintf(line, sizeof(line),
                     "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                     tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
                     level_names[level]);
    }
    if (n > 0)
        len = (size_t)n;
    va_start(ap, fmt);
    n = vsnprintf(line + len, sizeof(line) - len - 1, fmt, ap);
    va_end(ap);
    if (n > 0)
        len += (size_t)n < sizeof(line) - len - 1 ? (size_t)n : sizeof(line) - len - 2;
    line[len++] = '\n';
    /* A failed log write has nowhere to be reported; ignore it. */
    while (write(STDERR_FILENO, line, len) < 0 && errno == EINTR)
        ;
}
