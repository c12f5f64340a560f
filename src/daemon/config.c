/*
 * config.c - one table of keys drives everything about configuration:
 * defaults, the INI file (libinih), getopt_long flags, --help and which keys
 * a SIGHUP may change. Adding a key is one table line plus its field.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <getopt.h>
#include <ini.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ditd-build.h"
#include "ditd.h"

enum opt_type {
    OPT_STR,
    OPT_INT,
    OPT_BYTES,   /* integer with an optional k / m suffix (KiB / MiB) */
    OPT_DOUBLE,
    OPT_BOOL
};

struct opt {
    const char *section;
    const char *key;
    enum opt_type type;
    size_t offset;
    size_t size;
    double min, max;
    bool reload;        /* SIGHUP may change it */
    char short_flag;    /* 0 when none */
    const char *def;
    const char *help;
};

#define STR_(x) #x
#define STR(x) STR_(x)
#define FIELD(k) offsetof(struct config, k), sizeof(((struct config *)0)->k)
#define O_STR(s, k, r, f, d, h)       { s, #k, OPT_STR, FIELD(k), 0, 0, r, f, d, h }
#define O_INT(s, k, lo, hi, r, f, d, h) { s, #k, OPT_INT, FIELD(k), lo, hi, r, f, d, h }
#define O_BYTES(s, k, lo, hi, r, d, h) { s, #k, OPT_BYTES, FIELD(k), lo, hi, r, 0, d, h }
#define O_DBL(s, k, lo, hi, r, d, h)  { s, #k, OPT_DOUBLE, FIELD(k), lo, hi, r, 0, d, h }
#define O_BOOL(s, k, r, d, h)         { s, #k, OPT_BOOL, FIELD(k), 0, 1, r, 0, d, h }

static const struct opt opts[] = {
    O_STR("server", listen, false, 'l', "127.0.0.1:8080", "address:port to listen on (port 0 = any free port)"),
    O_STR("server", port_file, false, 0, "", "write the bound port number to this file"),
    O_INT("server", connection_limit, 4, 65536, false, 0, "1024", "open connections at most"),
    O_INT("server", per_ip_limit, 0, 65536, false, 0, "32", "open connections per client address (0 = no limit)"),
    O_INT("server", connection_timeout, 0, 86400, false, 0, "10", "seconds of inactivity before a connection is closed (0 = never)"),
    O_BYTES("server", max_body, 256, 16 << 20, true, "64k", "request body bytes at most (413 above)"),
    O_INT("server", sse_ping, 1, 3600, true, 0, "15", "seconds between keep-alive comments on a quiet event stream"),
    O_BYTES("server", http_memory, 8192, 1 << 20, false, "16k", "largest request line + headers (431 above); libmicrohttpd's buffer is 4 times this"),
    O_BOOL("server", web_ui, true, "yes", "serve the web page at GET / (no = 404, for headless deployments)"),
    O_STR("model", model, false, 'm', "", "model directory (empty = $DITD_MODEL or the bundled model)"),
    O_INT("compute", workers, 0, 256, false, 'w', "0", "worker threads (0 = 1)"),
    O_INT("compute", threads, 0, 1024, false, 't', "0", "compute threads per worker (0 = the cores divided among the workers)"),
    O_INT("compute", max_batch, 0, 4096, false, 'b', "0", "DiT rows per forward pass; an image with guidance takes 2 (0 = chosen for the precision: 16 rows, 32 with native bf16)"),
    O_STR("compute", precision, false, 0, "auto", "arithmetic of the DiT: auto (bf16 where the CPU has AVX512-BF16/AMX, else fp32), fp32 or bf16 (emulated, not faster, elsewhere)"),
    O_INT("queue", max_queue, 0, 1000000, true, 'q', "64", "jobs waiting to start before new ones get 429"),
    O_INT("queue", request_timeout, 0, 86400, true, 0, "600", "seconds a job may take from arrival to done (504 after; 0 = none)"),
    O_INT("queue", job_ttl, 1, 604800, true, 0, "600", "seconds a finished /jobs result is kept (410 after)"),
    O_INT("queue", max_jobs, 1, 1000000, true, 0, "1024", "finished /jobs results kept at most (oldest dropped first)"),
    O_INT("queue", drain_timeout, 0, 86400, true, 0, "30", "seconds SIGTERM waits for in-flight work before cancelling it"),
    O_INT("request", max_images, 1, 1024, true, 0, "8", "images per request (n) at most"),
    O_INT("request", max_steps, 1, 1000, true, 0, "1000", "sampling steps per image at most"),
    /* The request defaults are the dit tool's too (include/ditd.h). */
    O_INT("request", default_steps, 1, 1000, true, 0, STR(DITD_DEFAULT_STEPS), "steps when a request gives none"),
    O_DBL("request", default_cfg, 0, 1000, true, STR(DITD_DEFAULT_CFG), "guidance scale when a request gives none"),
    O_DBL("request", max_cfg, 0, 1000, true, "20.0", "guidance scale at most"),
    O_STR("request", default_sampler, true, 0, DITD_DEFAULT_SAMPLER, "sampler when a request gives none: ddpm, ddim or dpm++2m"),
    O_STR("auth", api_keys, true, 0, "", "comma-separated API keys; empty = no authentication"),
    O_STR("auth", api_key_file, true, 0, "", "file with one API key per line (added to api_keys)"),
    O_STR("auth", admin_api_keys, true, 0, "", "comma-separated admin API keys: valid keys that also see every client's jobs"),
    O_STR("auth", admin_api_key_file, true, 0, "", "file with one admin API key per line (added to admin_api_keys)"),
    O_BOOL("auth", public_health, true, "yes", "/health/live and /health/ready need no key"),
    O_BOOL("auth", public_metrics, true, "yes", "/metrics needs no key"),
    O_STR("auth", cors_origins, true, 0, "", "comma-separated origins allowed by CORS; * = any; empty = no CORS headers"),
    O_STR("log", log_level, true, 0, "info", "error, warn, info or debug"),
    O_STR("log", log_format, true, 0, "text", "text (key=value fields) or json (one object per line)"),
    O_BOOL("log", access_log, true, "no", "log one line per HTTP request, with its request id and timings"),
};

#define N_OPTS (sizeof(opts) / sizeof(opts[0]))

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (!err || !errlen)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static bool parse_bool(const char *v, bool *out)
{
    static const char *const yes[] = { "yes", "true", "on", "1" };
    static const char *const no[] = { "no", "false", "off", "0" };

    for (int i = 0; i < 4; i++) {
        if (strcasecmp(v, yes[i]) == 0) {
            *out = true;
            return true;
        }
        if (strcasecmp(v, no[i]) == 0) {
            *out = false;
            return true;
        }
    }
    return false;
}

/* Store `value` into the field of `o`; err says what is wrong and the
 * accepted range. */
static int opt_set(struct config *c, const struct opt *o, const char *value,
                   char *err, size_t errlen)
{
    char *field = (char *)c + o->offset;
    char *end;

    switch (o->type) {
    case OPT_STR:
        if (strlen(value) >= o->size) {
            set_err(err, errlen, "%s: value is longer than %zu characters", o->key, o->size - 1);
            return -EINVAL;
        }
        strcpy(field, value);
        return 0;
    case OPT_INT:
    case OPT_BYTES: {
        long long unit = 1;
        long long v;

        errno = 0;
        v = strtoll(value, &end, 10);
        if (end == value || errno) {
            set_err(err, errlen, "%s: '%s' is not an integer", o->key, value);
            return -EINVAL;
        }
        if (o->type == OPT_BYTES && (*end == 'k' || *end == 'K'))
            unit = 1024;
        else if (o->type == OPT_BYTES && (*end == 'm' || *end == 'M'))
            unit = 1024 * 1024;
        if (unit > 1) {
            /* Range-check before scaling: the product could overflow. */
            if (v > LLONG_MAX / unit || v < LLONG_MIN / unit) {
                set_err(err, errlen, "%s: '%s' is outside %.0f..%.0f", o->key, value, o->min,
                        o->max);
                return -EINVAL;
            }
            v *= unit;
            end++;
        }
        if (*end) {
            set_err(err, errlen, "%s: '%s' is not an integer%s", o->key, value,
                    o->type == OPT_BYTES ? " (a k or m suffix is allowed)" : "");
            return -EINVAL;
        }
        if ((double)v < o->min || (double)v > o->max) {
            set_err(err, errlen, "%s: %lld is outside %.0f..%.0f", o->key, v, o->min, o->max);
            return -EINVAL;
        }
        *(int *)field = (int)v;
        return 0;
    }
    case OPT_DOUBLE: {
        double v;

        errno = 0;
        v = strtod(value, &end);
        if (end == value || *end || errno || !isfinite(v)) {
            set_err(err, errlen, "%s: '%s' is not a finite number", o->key, value);
            return -EINVAL;
        }
        if (v < o->min || v > o->max) {
            set_err(err, errlen, "%s: %g is outside %g..%g", o->key, v, o->min, o->max);
            return -EINVAL;
        }
        *(double *)field = v;
        return 0;
    }
    case OPT_BOOL:
        if (!parse_bool(value, (bool *)field)) {
            set_err(err, errlen, "%s: '%s' is not yes or no", o->key, value);
            return -EINVAL;
        }
        return 0;
    }
    return -EINVAL;
}

void config_defaults(struct config *c)
{
    memset(c, 0, sizeof(*c));
    for (size_t i = 0; i < N_OPTS; i++) {
        /* The defaults are in the table and always valid. */
        (void)opt_set(c, &opts[i], opts[i].def, NULL, 0);
    }
}

struct ini_ctx {
    struct config *c;
    char *err;
    size_t errlen;
    int failed;
};

static int ini_cb(void *user, const char *section, const char *name, const char *value)
{
    struct ini_ctx *ctx = user;
    char msg[CONFIG_ERR_LEN];

    for (size_t i = 0; i < N_OPTS; i++) {
        if (strcmp(opts[i].key, name) != 0)
            continue;
        if (strcmp(opts[i].section, section) != 0) {
            if (!ctx->failed)
                set_err(ctx->err, ctx->errlen, "key '%s' belongs in section [%s], not [%s]",
                        name, opts[i].section, section);
            ctx->failed = 1;
            return 0;
        }
        if (opt_set(ctx->c, &opts[i], value, msg, sizeof(msg)) < 0) {
            if (!ctx->failed)
                set_err(ctx->err, ctx->errlen, "%s", msg);
            ctx->failed = 1;
            return 0;
        }
        return 1;
    }
    if (!ctx->failed)
        set_err(ctx->err, ctx->errlen, "unknown key '%s' in section [%s] (see conf/ditd.conf for the keys)",
                name, section);
    ctx->failed = 1;
    return 0;
}

int config_load_file(struct config *c, const char *path, char *err, size_t errlen)
{
    struct ini_ctx ctx = { c, NULL, 0, 0 };
    char msg[CONFIG_ERR_LEN] = "";
    int line;

    ctx.err = msg;
    ctx.errlen = sizeof(msg);
    line = ini_parse(path, ini_cb, &ctx);
    if (line == -1) {
        set_err(err, errlen, "cannot open config file %s: %s", path, strerror(errno));
        return -ENOENT;
    }
    if (line == -2) {
        set_err(err, errlen, "out of memory reading %s", path);
        return -ENOMEM;
    }
    if (line > 0) {
        set_err(err, errlen, "%s:%d: %s", path, line,
                msg[0] ? msg : "syntax error (expected key = value or [section])");
        return -EINVAL;
    }
    return 0;
}

static void flag_name(const struct opt *o, char *buf, size_t len)
{
    size_t i;

    for (i = 0; o->key[i] && i + 1 < len; i++)
        buf[i] = o->key[i] == '_' ? '-' : o->key[i];
    buf[i] = '\0';
}

enum {
    FLAG_BASE = 1000,
    FLAG_HELP = 'h',
    FLAG_VERSION = 'V',
    FLAG_CONFIG = 'c',
    FLAG_BLAS = 900,
    FLAG_PROBE = 901
};

static const char *find_config_arg(int argc, char **argv)
{
    const char *path = NULL;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            break;
        if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) && i + 1 < argc)
            path = argv[++i];
        else if (strncmp(argv[i], "--config=", 9) == 0)
            path = argv[i] + 9;
    }
    return path;
}

int config_parse_args(struct config *c, int argc, char **argv, FILE *out,
                      const char **config_path, char *err, size_t errlen)
{
    static char names[N_OPTS][64];
    struct option longopts[N_OPTS + 6];
    char shortopts[64] = "hVc:";
    size_t ns = strlen(shortopts);
    const char *path;
    int n = 0;
    int ch;
    int rc;

    path = find_config_arg(argc, argv);
    if (!path) {
        path = getenv("DITD_CONFIG");
        if (path && !*path)
            path = NULL;
    }
    if (config_path)
        *config_path = path;
    if (path) {
        rc = config_load_file(c, path, err, errlen);
        if (rc < 0)
            return rc;
    }

    for (size_t i = 0; i < N_OPTS; i++) {
        flag_name(&opts[i], names[i], sizeof(names[i]));
        longopts[n++] = (struct option){ names[i], required_argument, NULL, (int)(FLAG_BASE + i) };
        if (opts[i].short_flag) {
            shortopts[ns++] = opts[i].short_flag;
            shortopts[ns++] = ':';
            shortopts[ns] = '\0';
        }
    }
    longopts[n++] = (struct option){ "help", no_argument, NULL, FLAG_HELP };
    longopts[n++] = (struct option){ "version", no_argument, NULL, FLAG_VERSION };
    longopts[n++] = (struct option){ "config", required_argument, NULL, FLAG_CONFIG };
    longopts[n++] = (struct option){ "blas", required_argument, NULL, FLAG_BLAS };
    longopts[n++] = (struct option){ "probe", no_argument, NULL, FLAG_PROBE };
    longopts[n] = (struct option){ NULL, 0, NULL, 0 };

    optind = 0;     /* full re-initialisation: this runs again on SIGHUP */
    opterr = 0;
    rc = 0;
    while ((ch = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
        const struct opt *o = NULL;

        if (ch == FLAG_HELP) {
            config_print_help(out, argv[0]);
            return 1;
        }
        if (ch == FLAG_VERSION) {
            fprintf(out, "ditd %s\n", DITD_VERSION);
            return 1;
        }
        if (ch == FLAG_CONFIG || ch == FLAG_BLAS)
            continue;   /* read before (config) or by main() (blas) */
        if (ch == FLAG_PROBE) {
            rc = 2;
            continue;
        }
        if (ch == '?' || ch == ':') {
            set_err(err, errlen, "unknown option or missing value: %s (see --help)",
                    argv[optind - 1]);
            return -EINVAL;
        }
        if (ch >= FLAG_BASE && ch < FLAG_BASE + (int)N_OPTS) {
            o = &opts[ch - FLAG_BASE];
        } else {
            for (size_t i = 0; i < N_OPTS; i++)
                if (opts[i].short_flag == ch)
                    o = &opts[i];
        }
        if (!o) {
            set_err(err, errlen, "unhandled option -%c", ch);
            return -EINVAL;
        }
        if (opt_set(c, o, optarg, err, errlen) < 0)
            return -EINVAL;
    }
    if (optind < argc) {
        set_err(err, errlen, "unexpected argument '%s' (options start with --; see --help)",
                argv[optind]);
        return -EINVAL;
    }
    rc = rc ? rc : config_validate(c, err, errlen);
    return rc;
}

int config_validate(const struct config *c, char *err, size_t errlen)
{
    if (c->default_steps > c->max_steps) {
        set_err(err, errlen, "default_steps (%d) is above max_steps (%d)",
                c->default_steps, c->max_steps);
        return -EINVAL;
    }
    if (c->default_cfg > c->max_cfg) {
        set_err(err, errlen, "default_cfg (%g) is above max_cfg (%g)", c->default_cfg, c->max_cfg);
        return -EINVAL;
    }
    if (strcasecmp(c->default_sampler, "ddpm") && strcasecmp(c->default_sampler, "ddim") &&
        strcasecmp(c->default_sampler, "dpm++2m")) {
        set_err(err, errlen, "default_sampler: '%s' is not one of ddpm, ddim, dpm++2m",
                c->default_sampler);
        return -EINVAL;
    }
    if (strcasecmp(c->precision, "auto") && strcasecmp(c->precision, "fp32") &&
        strcasecmp(c->precision, "bf16")) {
        set_err(err, errlen, "precision: '%s' is not one of auto, fp32, bf16", c->precision);
        return -EINVAL;
    }
    if (!strchr(c->listen, ':')) {
        set_err(err, errlen, "listen: '%s' has no port; write host:port, e.g. 127.0.0.1:8080",
                c->listen);
        return -EINVAL;
    }
    if (strcmp(c->log_format, "text") && strcmp(c->log_format, "json")) {
        set_err(err, errlen, "log_format: '%s' is not text or json", c->log_format);
        return -EINVAL;
    }
    if (strcmp(c->log_level, "error") && strcmp(c->log_level, "warn") &&
        strcmp(c->log_level, "info") && strcmp(c->log_level, "debug")) {
        set_err(err, errlen, "log_level: '%s' is not one of error, warn, info, debug",
                c->log_level);
        return -EINVAL;
    }
    return 0;
}

int config_apply_reload(struct config *cur, const struct config *next,
                        void (*report)(const char *key, bool applied, void *arg), void *arg)
{
    int applied = 0;

    for (size_t i = 0; i < N_OPTS; i++) {
        const struct opt *o = &opts[i];
        char *a = (char *)cur + o->offset;
        const char *b = (const char *)next + o->offset;
        bool same = o->type == OPT_STR ? strcmp(a, b) == 0 : memcmp(a, b, o->size) == 0;

        if (same)
            continue;
        if (o->reload) {
            memcpy(a, b, o->size);
            applied++;
        }
        if (report)
            report(o->key, o->reload, arg);
    }
    return applied;
}

int config_list_foreach(const char *list, int (*fn)(const char *item, size_t len, void *arg),
                        void *arg)
{
    const char *p = list;

    while (p && *p) {
        const char *end = strchr(p, ',');
        const char *e = end ? end : p + strlen(p);
        const char *s = p;
        int rc;

        while (s < e && (*s == ' ' || *s == '\t'))
            s++;
        while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        if (e > s) {
            rc = fn(s, (size_t)(e - s), arg);
            if (rc)
                return rc;
        }
        p = end ? end + 1 : NULL;
    }
    return 0;
}

void config_print_help(FILE *out, const char *prog)
{
    char name[64];
    const char *section = "";

    fprintf(out,
            "Usage: %s [options]\n"
            "Serve class-conditional DiT images over HTTP (see docs/api.md).\n\n"
            "  -c, --config FILE      read this INI file first (default: $DITD_CONFIG)\n"
            "      --blas MODE        OpenBLAS kernel: auto, keep or a name (default: $DITD_BLAS or auto)\n"
            "      --probe            GET /health/ready on the configured address; exit 0 if ready\n"
            "  -h, --help             show this help\n"
            "  -V, --version          show the version\n",
            prog);
    for (size_t i = 0; i < N_OPTS; i++) {
        const struct opt *o = &opts[i];
        char left[96];

        if (strcmp(section, o->section) != 0) {
            section = o->section;
            fprintf(out, "\n[%s]\n", section);
        }
        flag_name(o, name, sizeof(name));
        if (o->short_flag)
            snprintf(left, sizeof(left), "-%c, --%s", o->short_flag, name);
        else
            snprintf(left, sizeof(left), "    --%s", name);
        fprintf(out, "  %-26s %s (default: %s)%s\n", left, o->help,
                o->def[0] ? o->def : "\"\"", o->reload ? "" : " [restart]");
    }
    fprintf(out, "\nFlags override the file. SIGHUP re-reads the file; keys marked [restart]\n"
                 "take effect only after a restart.\n");
}
