/*
 * main.c - ditd, the serving daemon: fix the BLAS kernel, read the
 * configuration, then hand over to the server (server.c) or, with
 * --probe, ask a running daemon whether it is ready.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "ditd.h"
#include "log.h"
#include "metrics.h"
#include "probe.h"
#include "server.h"

/* --blas MODE / --blas=MODE, looked up before anything else runs. */
static const char *blas_mode(int argc, char **argv)
{
    const char *env = getenv("DITD_BLAS");

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--blas") == 0 && i + 1 < argc)
            return argv[i + 1];
        if (strncmp(argv[i], "--blas=", 7) == 0)
            return argv[i] + 7;
    }
    return env && *env ? env : "auto";
}

/* Whether the command line sets the listen address (--probe prefers it
 * to the port file). */
static bool listen_given(int argc, char **argv)
{
    for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
        if (strcmp(argv[i], "--listen") == 0 || strncmp(argv[i], "--listen=", 9) == 0 ||
            strncmp(argv[i], "-l", 2) == 0)
            return true;
    return false;
}

int main(int argc, char **argv)
{
    static struct server s;
    char msg[DITD_ERR_LEN] = "";
    char err[CONFIG_ERR_LEN];
    enum log_level level;
    enum log_format format;
    int blas_rc;
    int rc;

    /* First: it may re-execute the program with a better OpenBLAS kernel. */
    blas_rc = ditd_blas_prepare(argv, blas_mode(argc, argv), msg, sizeof(msg));

    config_defaults(&s.cfg);
    rc = config_parse_args(&s.cfg, argc, argv, stdout, &s.config_path, err, sizeof(err));
    if (rc < 0) {
        fprintf(stderr, "ditd: %s\n", err);
        return 2;
    }
    if (rc == 1)
        return 0;
    if (rc == 2)
        return probe_run(&s.cfg, listen_given(argc, argv));

    log_level_parse(s.cfg.log_level, &level);
    log_format_parse(s.cfg.log_format, &format);
    log_init(level);
    log_set_format(format);
    if (msg[0])
        log_msg(blas_rc < 0 ? LOG_LEVEL_WARN : LOG_LEVEL_INFO, "blas: %s", msg);
    /* A client closing its socket must not kill the process. */
    signal(SIGPIPE, SIG_IGN);
    metrics_init();
    s.argc = argc;
    s.argv = argv;
    return server_run(&s);
}
