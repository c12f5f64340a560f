/*
 * log.c - one-line log records on stderr (see log.h). Each record is built
 * whole and written with a single write(2), so lines from the loop thread
 * and the workers never interleave.
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

#include "buf.h"

static _Atomic int current_level = LOG_LEVEL_INFO;
static _Atomic int current_format = LOG_FORMAT_TEXT;
static bool journald;

static const char *const level_names[] = { "error", "warn", "info", "debug" };
static const char *const format_names[] = { "text", "json" };
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

int log_format_parse(const char *name, enum log_format *out)
{
    for (int i = 0; i < 2; i++) {
        if (strcasecmp(name, format_names[i]) == 0) {
            *out = (enum log_format)i;
            return 0;
        }
    }
    return -EINVAL;
}

void log_set_format(enum log_format format)
{
    atomic_store(&current_format, (int)format);
}

/* A text value as key=value wants it: bare when it is one plain word,
 * else quoted with \" and \\ escaped; control bytes become \xNN either
 * way, so a value cannot end the line. */
static void text_value(struct buf *b, const char *v)
{
    bool quote = !*v || strpbrk(v, " \"=\\") != NULL;

    if (quote)
        buf_append(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
        if (*p < 0x20 || *p == 0x7f)
            buf_printf(b, "\\x%02x", *p);
        else if (quote && (*p == '"' || *p == '\\'))
            buf_printf(b, "\\%c", *p);
        else
            buf_append(b, p, 1);
    }
    if (quote)
        buf_append(b, "\"", 1);
}

static void emit(enum log_level level, const char *message, const struct log_field *f,
                 size_t n)
{
    bool json = atomic_load(&current_format) == LOG_FORMAT_JSON;
    char stamp[64];
    struct timespec ts;
    struct tm tm;
    struct buf b;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    snprintf(stamp, sizeof(stamp), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             ts.tv_nsec / 1000000);
    buf_init(&b, 1 << 16);
    if (journald)
        buf_printf(&b, "<%d>", level_prio[level]);
    if (json) {
        buf_printf(&b, "{\"time\":\"%s\",\"level\":\"%s\",\"message\":", stamp, level_names[level]);
        buf_json_string(&b, message);
        for (size_t i = 0; i < n; i++) {
            buf_append(&b, ",", 1);
            buf_json_string(&b, f[i].key);
            buf_append(&b, ":", 1);
            if (f[i].str)
                buf_json_string(&b, f[i].str);
            else
                buf_printf(&b, "%.10g", f[i].num);
        }
        buf_append(&b, "}", 1);
    } else {
        if (!journald)
            buf_printf(&b, "%s %-5s ", stamp, level_names[level]);
        buf_puts(&b, message);
        for (size_t i = 0; i < n; i++) {
            buf_printf(&b, " %s=", f[i].key);
            if (f[i].str)
                text_value(&b, f[i].str);
            else
                buf_printf(&b, "%.10g", f[i].num);
        }
    }
    buf_append(&b, "\n", 1);
    /* A failed log write has nowhere to be reported; ignore it. */
    if (!b.err)
        while (write(STDERR_FILENO, b.data, b.len) < 0 && errno == EINTR)
            ;
    buf_free(&b);
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    char line[2048];
    va_list ap;

    if (!log_enabled(level))
        return;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    emit(level, line, NULL, 0);
}

void log_fields(enum log_level level, const char *message, const struct log_field *f,
                size_t n)
{
    if (log_enabled(level))
        emit(level, message, f, n);
}
