/*
 * config.h - the daemon's configuration: defaults, the INI file
 * (conf/ditd.conf, read with libinih) and command-line flags that override
 * it. Every key is described once, in a table in config.c, which drives the
 * defaults, the parser, the getopt_long flags, `ditd --help` and the reload
 * rules; conf/ditd.conf documents the same keys for operators.
 */
#ifndef DITD_DAEMON_CONFIG_H
#define DITD_DAEMON_CONFIG_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#define CONFIG_ERR_LEN 512
#define CONFIG_LIST_LEN 2048

struct config {
    /* [server] */
    char listen[256];           /* host:port; port 0 = any free port */
    char port_file[PATH_MAX];   /* write the bound port here ("" = off) */
    int connection_limit;       /* open connections */
    int per_ip_limit;           /* open connections per client address */
    int connection_timeout;     /* s of inactivity before a connection is closed */
    int max_body;               /* request body bytes */
    int sse_ping;               /* s between ": ping" comments on idle streams */
    int http_memory;            /* request line + headers bytes (431 above) */
    bool web_ui;                /* GET / serves the web page */
    /* [model] */
    char model[PATH_MAX];       /* model directory ("" = the bundled one) */
    /* [compute] */
    int workers;                /* worker threads, 0 = auto */
    int threads;                /* BLAS threads per worker, 0 = auto */
    int max_batch;              /* DiT rows per forward (guidance rows count), 0 = chosen
                                 * for the precision (ditd_model_info.default_rows) */
    char precision[16];         /* auto, fp32 or bf16 */
    /* [queue] */
    int max_queue;              /* jobs waiting to start before 429 */
    int request_timeout;        /* s from arrival to done before 504, 0 = off */
    int job_ttl;                /* s a finished /jobs result is kept */
    int max_jobs;               /* finished /jobs results kept at most */
    int drain_timeout;          /* s SIGTERM waits for in-flight work */
    /* [request] */
    int max_images;             /* n per request */
    int max_steps;
    int default_steps;
    double default_cfg;
    double max_cfg;
    char default_sampler[32];
    /* [auth] */
    char api_keys[CONFIG_LIST_LEN];  /* comma-separated Bearer keys */
    char api_key_file[PATH_MAX];     /* one key per line */
    char admin_api_keys[CONFIG_LIST_LEN];   /* keys that see every client's jobs */
    char admin_api_key_file[PATH_MAX];
    bool public_health;         /* /health/ without a key */
    bool public_metrics;        /* /metrics without a key */
    char cors_origins[CONFIG_LIST_LEN]; /* comma-separated; "*" = any */
    /* [log] */
    char log_level[16];
    char log_format[16];        /* text or json */
    bool access_log;
};

/* Fill every field with its default. */
void config_defaults(struct config *c);

/* Read the INI file at `path` over the current values. 0, or -EINVAL / -ENOENT
 * with err naming the file, line and key. */
int config_load_file(struct config *c, const char *path, char *err, size_t errlen);

/* Parse argv into the config. The config file (--config) is read first,
 * then the flags are applied over it, so flags win whatever their order.
 * Returns 0 to run, 1 when --help or --version was handled (printed to
 * `out`), or -EINVAL with err set. *config_path receives the file used
 * (a pointer into argv or the environment, or NULL). */
int config_parse_args(struct config *c, int argc, char **argv, FILE *out,
                      const char **config_path, char *err, size_t errlen);

/* Check cross-field rules (e.g. default_steps <= max_steps). */
int config_validate(const struct config *c, char *err, size_t errlen);

/* Apply the keys of `next` that can change while running onto `cur`, and
 * report (through `report`, one call per key) the keys that changed but need
 * a restart. Returns the number of keys applied. */
int config_apply_reload(struct config *cur, const struct config *next,
                        void (*report)(const char *key, bool applied, void *arg),
                        void *arg);

/* Split a comma-separated list: calls `fn` for each trimmed, non-empty item.
 * Stops and returns fn's value when it is not 0. */
int config_list_foreach(const char *list, int (*fn)(const char *item, size_t len, void *arg),
                        void *arg);

/* Print the flag summary of `ditd --help`. */
void config_print_help(FILE *out, const char *prog);

#endif /* DITD_DAEMON_CONFIG_H */
