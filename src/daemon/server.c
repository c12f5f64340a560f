/*
 * server.c - the daemon's lifecycle on the loop thread: bind and serve
 * health at once, load the model on a pool thread (readiness 503 until
 * then), start the workers, send READY=1; WATCHDOG=1 while the loop and the
 * workers are healthy; SIGHUP reloads the configuration; SIGTERM drains
 * (readiness 503 and new work refused with 503 while the listener stays
 * open, in-flight work finishes within drain_timeout or is cancelled, then
 * the listener closes) and exits 0. A second SIGTERM or SIGINT cancels
 * everything at once.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ditd.h"
#include "ditd-build.h"
#include "log.h"
#include "notify.h"
#include "server.h"

#define HOUSE_MS 100
#define FLUSH_NS (2 * (int64_t)1000000000)   /* answers may take this long to leave */
/* After a second stop signal the cancelled jobs' answers (503, `cancelled`
 * events) still get this long to leave, counted from when the last job
 * ended: without it the exit could beat the answer to the socket. */
#define ABORT_FLUSH_NS ((int64_t)250000000)

static void finish(struct server *s);

static void load_work(uv_work_t *req)
{
    struct server *s = req->data;
    int64_t t0 = job_now_ns();

    enum ditd_precision precision = DITD_PRECISION_AUTO;

    (void)ditd_precision_parse(s->cfg.precision, &precision); /* checked by config_validate */
    s->load_rc = ditd_model_load_precision(&s->model, s->model_dir, precision, s->load_err,
                                           sizeof(s->load_err));
    s->load_ns = job_now_ns() - t0;
}

static void load_done(uv_work_t *req, int status)
{
    struct server *s = req->data;
    char err[512];
    int rc;

    if (status < 0 || s->load_rc < 0) {
        log_msg(LOG_LEVEL_ERROR, "cannot load the model from %s: %s", s->model_dir,
                status < 0 ? uv_strerror(status) : s->load_err);
        notify_sendf("STATUS=model load failed: %.200s", s->load_err);
        s->exit_code = 1;
        finish(s);
        return;
    }
    s->info = ditd_model_info(s->model);
    s->max_batch = s->cfg.max_batch > 0 ? s->cfg.max_batch : s->info->default_rows;
    log_msg(LOG_LEVEL_INFO, "%s; %d rows per forward%s", s->info->precision_note, s->max_batch,
            s->cfg.max_batch > 0 ? " (max_batch)" : " (chosen for the precision)");
    if (s->state != SERVER_LOADING) {   /* SIGTERM arrived while loading */
        finish(s);
        return;
    }
    rc = sched_init(&s->sched, s->model, s->max_batch, s->cfg.max_queue, pool_notify, &s->pool);
    if (rc == 0) {
        const char *delay = getenv("DITD_TEST_STEP_DELAY_MS");
        const char *fault = getenv("DITD_TEST_FAIL_SEED");

        s->sched_ready = true;
        /* Test hook: slow every step down so tests can watch jobs run. */
        if (delay && atoi(delay) > 0) {
            s->sched.slow_step_ms = atoi(delay);
            log_msg(LOG_LEVEL_WARN, "DITD_TEST_STEP_DELAY_MS=%d: every step sleeps (tests only)",
                    s->sched.slow_step_ms);
        }
        /* Test hook: the forward passes of one seed fail, as an engine fault would. */
        if (fault && *fault) {
            s->sched.fail_seed = strtoll(fault, NULL, 10);
            log_msg(LOG_LEVEL_WARN, "DITD_TEST_FAIL_SEED=%lld: steps of that seed fail (tests only)",
                    (long long)s->sched.fail_seed);
        }
        rc = pool_start(&s->pool, &s->sched, s->model, s->workers, s->max_batch, s->threads,
                        err, sizeof(err));
        if (rc < 0)
            log_msg(LOG_LEVEL_ERROR, "cannot start the workers: %s", err);
    }
    if (rc == 0)
        rc = api_model_ready(s);
    if (rc < 0) {
        s->exit_code = 1;
        finish(s);
        return;
    }
    snprintf(metrics.model_name, sizeof(metrics.model_name), "%s", s->info->name);
    metrics.image_size = s->info->image_size;
    metrics.num_classes = s->info->num_classes;
    metrics.weight_bytes = s->info->weight_bytes;
    metrics.model_load_seconds = (double)s->load_ns / 1e9;
    metrics_gauge_set(&metrics.max_batch_rows, s->max_batch);
    snprintf(metrics.precision, sizeof(metrics.precision), "%s", s->info->precision);
    snprintf(metrics.isa, sizeof(metrics.isa), "%s", s->info->isa);
    metrics_gauge_set(&metrics.ready, 1);
    s->state = SERVER_READY;
    log_msg(LOG_LEVEL_INFO, "model %s (id %s) loaded in %.2f s: %dx%d px, %d classes, %.2f GMACs per image-step; "
            "%d worker(s) x %d thread(s), %d rows per forward; ready",
            s->info->name, s->info->id, (double)s->load_ns / 1e9, s->info->image_size, s->info->image_size,
            s->info->num_classes, s->info->dit_gmacs, s->workers, s->threads, s->max_batch);
    notify_sendf("READY=1\nSTATUS=serving %s on port %d", s->info->name, s->port);
}

static void house_cb(uv_timer_t *t)
{
    struct server *s = t->data;

    s->ticks++;
    api_housekeeping(s, s->ticks % 10 == 0);
}

static void watchdog_cb(uv_timer_t *t)
{
    struct server *s = t->data;
    bool ok = !s->sched_ready ||
              sched_healthy(&s->sched, s->workers, (int64_t)s->watchdog_usec * 1000);

    /* A stuck worker stops the pings, and systemd restarts us. */
    if (!ok) {
        log_msg(LOG_LEVEL_ERROR, "a worker has not progressed for %.1f s; withholding the watchdog ping",
                (double)s->watchdog_usec / 1e6);
        return;
    }
    if (s->state == SERVER_READY)
        notify_sendf("WATCHDOG=1\nSTATUS=serving: %lld queued, %lld running, %llu images done",
                     (long long)atomic_load(&metrics.queue_depth),
                     (long long)atomic_load(&metrics.jobs_running),
                     (unsigned long long)atomic_load(&metrics.images));
    else
        notify_send("WATCHDOG=1");
}

static void drain_cb(uv_timer_t *t)
{
    struct server *s = t->data;
    int64_t now = job_now_ns();
    int pending = s->sched_ready ? sched_pending(&s->sched) : 0;
    int unfetched;

    if (s->state == SERVER_LOADING || s->state == SERVER_STOPPED)
        return;
    if (pending > 0 && now > s->drain_deadline_ns && !s->drain_cancelled_ns && !s->aborting) {
        log_msg(LOG_LEVEL_WARN, "drain timeout: cancelling %d job(s)", pending);
        sched_cancel_all(&s->sched, CANCEL_SHUTDOWN);
        s->drain_cancelled_ns = now;
    }
    if (pending > 0) {
        notify_sendf("STATUS=draining: %d job(s) left", pending);
        return;
    }
    /* Finished POST /jobs results that no client has fetched yet would die
     * with the process: keep serving them until drain_timeout. */
    unfetched = s->aborting ? 0 : api_jobs_undelivered(s);
    if (unfetched > 0 && now <= s->drain_deadline_ns) {
        notify_sendf("STATUS=draining: %d result(s) not fetched yet", unfetched);
        return;
    }
    if (unfetched > 0 && !s->drain_cancelled_ns)
        log_msg(LOG_LEVEL_WARN, "drain timeout: %d finished job result(s) were never fetched",
                unfetched);
    /* Jobs are done: stop accepting connections (until now the listener
     * stayed open so that load balancers could see readiness 503 and new
     * work got a 503 with Retry-After rather than a refused connection),
     * then give the answers time to leave. */
    http_quiesce(s->http);
    if (!s->drain_cancelled_ns)
        s->drain_cancelled_ns = now;
    if (http_active(s->http) > 0 &&
        now - s->drain_cancelled_ns < (s->aborting ? ABORT_FLUSH_NS : FLUSH_NS))
        return;
    finish(s);
}

static void start_drain(struct server *s)
{
    s->drain_deadline_ns = job_now_ns() + (int64_t)s->cfg.drain_timeout * 1000000000;
    metrics_gauge_set(&metrics.ready, 0);
    metrics_gauge_set(&metrics.draining, 1);
    notify_send("STOPPING=1\nSTATUS=draining");
    if (s->state == SERVER_LOADING) {
        /* The load cannot be interrupted; load_done finishes. */
        s->state = SERVER_DRAINING;
        log_msg(LOG_LEVEL_INFO, "stopping once the model load ends");
        return;
    }
    s->state = SERVER_DRAINING;
    log_msg(LOG_LEVEL_INFO, "draining: %d job(s) in flight, up to %d s",
            s->sched_ready ? sched_pending(&s->sched) : 0, s->cfg.drain_timeout);
    uv_timer_start(&s->drain, drain_cb, 0, HOUSE_MS);
}

static void on_stop_signal(uv_signal_t *h, int signum)
{
    struct server *s = h->data;

    if (s->state == SERVER_DRAINING || s->state == SERVER_STOPPED) {
        log_msg(LOG_LEVEL_WARN, "second %s: cancelling everything now", strsignal(signum));
        s->exit_code = 1;
        s->aborting = true;
        if (s->sched_ready)
            sched_cancel_all(&s->sched, CANCEL_SHUTDOWN);
        s->drain_deadline_ns = 0;
        s->drain_cancelled_ns = 0; /* the flush window starts when the last job ends */
        return;
    }
    log_msg(LOG_LEVEL_INFO, "%s received", strsignal(signum));
    start_drain(s);
}

static void report_key(const char *key, bool applied, void *arg)
{
    (void)arg;
    if (applied)
        log_msg(LOG_LEVEL_INFO, "reload: %s changed", key);
    else
        log_msg(LOG_LEVEL_WARN, "reload: %s changed but needs a restart to take effect", key);
}

static void on_hup(uv_signal_t *h, int signum)
{
    struct server *s = h->data;
    struct config next;
    char err[CONFIG_ERR_LEN];
    enum log_level lvl;
    enum log_format fmt;
    int rc;

    (void)signum;
    notify_send("RELOADING=1");
    config_defaults(&next);
    rc = config_parse_args(&next, s->argc, s->argv, stdout, NULL, err, sizeof(err));
    if (rc != 0) {
        log_msg(LOG_LEVEL_ERROR, "reload refused, keeping the running configuration: %s", err);
    } else {
        config_apply_reload(&s->cfg, &next, report_key, s);
        if (log_level_parse(s->cfg.log_level, &lvl) == 0)
            log_set_level(lvl);
        if (log_format_parse(s->cfg.log_format, &fmt) == 0)
            log_set_format(fmt);
        if (s->sched_ready)
            sched_set_max_queue(&s->sched, s->cfg.max_queue);
        if (http_reload(s->http, err, sizeof(err)) < 0)
            log_msg(LOG_LEVEL_ERROR, "reload: %s (API keys are now off: fix and reload)", err);
        log_msg(LOG_LEVEL_INFO, "configuration reloaded from %s",
                s->config_path ? s->config_path : "flags");
    }
    notify_send(s->state == SERVER_READY ? "READY=1" : "STATUS=reloaded");
}

static void close_cb(uv_handle_t *h)
{
    (void)h;
}

/* Stop everything; uv_run returns once the handles are closed. */
static void finish(struct server *s)
{
    if (s->state == SERVER_STOPPED)
        return;
    s->state = SERVER_STOPPED;
    metrics_gauge_set(&metrics.ready, 0);
    uv_timer_stop(&s->house);
    uv_timer_stop(&s->watchdog);
    uv_timer_stop(&s->drain);
    uv_close((uv_handle_t *)&s->house, close_cb);
    uv_close((uv_handle_t *)&s->watchdog, close_cb);
    uv_close((uv_handle_t *)&s->drain, close_cb);
    uv_close((uv_handle_t *)&s->sigterm, close_cb);
    uv_close((uv_handle_t *)&s->sigint, close_cb);
    uv_close((uv_handle_t *)&s->sighup, close_cb);
    http_stop(s->http);
    s->http = NULL;
    if (s->sched_ready) {
        sched_cancel_all(&s->sched, CANCEL_SHUTDOWN);
        sched_close(&s->sched);
        pool_join(&s->pool);
    }
    pool_close(&s->pool);
    log_msg(LOG_LEVEL_INFO, "stopped");
}

/* The model key or flag, else the engine's default (a missing default
 * leaves its path here, for the load error to name). */
static void resolve_model(struct server *s)
{
    if (s->cfg.model[0])
        snprintf(s->model_dir, sizeof(s->model_dir), "%s", s->cfg.model);
    else
        (void)ditd_model_default_path(s->model_dir, sizeof(s->model_dir));
}

static void size_pool(struct server *s)
{
    const long cores = ditd_cpu_count();

    s->workers = s->cfg.workers > 0 ? s->cfg.workers : 1;
    /* By default the workers share the cores. */
    s->threads = s->cfg.threads > 0 ? s->cfg.threads : (int)(cores / s->workers);
    if (s->threads < 1)
        s->threads = 1;
    if ((long)s->workers * s->threads > cores)
        log_msg(LOG_LEVEL_WARN, "%d workers x %d threads exceed the %ld cores; they will "
                "compete for them", s->workers, s->threads, cores);
}

static int write_port_file(const char *path, int port)
{
    char tmp[4200];
    FILE *f;

    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    f = fopen(tmp, "w");
    if (!f)
        return -errno;
    fprintf(f, "%d\n", port);
    if (fclose(f) != 0 || rename(tmp, path) != 0)
        return -errno;
    return 0;
}

int server_run(struct server *s)
{
    struct http_handlers h = { api_classify, api_dispatch, s };
    char err[512];
    int rc;

    s->loop = uv_default_loop();
    s->state = SERVER_LOADING;
    resolve_model(s);
    size_pool(s);
    snprintf(metrics.blas_core, sizeof(metrics.blas_core), "%s", ditd_blas_core());
    metrics_gauge_set(&metrics.queue_capacity, s->cfg.max_queue);
    if (api_init(s) < 0 || pool_init(&s->pool, s->loop, api_job_changed, s) < 0) {
        log_msg(LOG_LEVEL_ERROR, "out of memory at start");
        return 1;
    }
    rc = http_start(&s->http, s->loop, &s->cfg, &h, &s->port, err, sizeof(err));
    if (rc < 0) {
        log_msg(LOG_LEVEL_ERROR, "%s", err);
        pool_close(&s->pool);
        uv_run(s->loop, UV_RUN_NOWAIT);
        api_free(s);
        return 1;
    }
    log_msg(LOG_LEVEL_INFO, "ditd %s listening on %s (port %d); loading %s", DITD_VERSION,
            s->cfg.listen, s->port, s->model_dir);
    if (s->cfg.port_file[0] && (rc = write_port_file(s->cfg.port_file, s->port)) < 0)
        log_msg(LOG_LEVEL_WARN, "cannot write port_file %s: %s", s->cfg.port_file, strerror(-rc));
    notify_sendf("STATUS=loading %s", s->model_dir);

    uv_timer_init(s->loop, &s->house);
    uv_timer_init(s->loop, &s->watchdog);
    uv_timer_init(s->loop, &s->drain);
    s->house.data = s->watchdog.data = s->drain.data = s;
    uv_timer_start(&s->house, house_cb, HOUSE_MS, HOUSE_MS);
    s->watchdog_usec = notify_watchdog_usec();
    if (s->watchdog_usec) {
        /* A third of the interval (systemd asks for at least half), so a
         * late loop iteration does not make a ping late. */
        uint64_t ms = s->watchdog_usec / 3000;

        uv_timer_start(&s->watchdog, watchdog_cb, 0, ms ? ms : 1);
    }
    uv_signal_init(s->loop, &s->sigterm);
    uv_signal_init(s->loop, &s->sigint);
    uv_signal_init(s->loop, &s->sighup);
    s->sigterm.data = s->sigint.data = s->sighup.data = s;
    uv_signal_start(&s->sigterm, on_stop_signal, SIGTERM);
    uv_signal_start(&s->sigint, on_stop_signal, SIGINT);
    uv_signal_start(&s->sighup, on_hup, SIGHUP);

    s->load_req.data = s;
    rc = uv_queue_work(s->loop, &s->load_req, load_work, load_done);
    if (rc < 0) {
        log_msg(LOG_LEVEL_ERROR, "cannot start loading the model: %s", uv_strerror(rc));
        s->exit_code = 1;
        finish(s);
    }
    uv_run(s->loop, UV_RUN_DEFAULT);

    api_free(s);
    if (s->sched_ready)
        sched_destroy(&s->sched);
    ditd_model_free(s->model);
    uv_loop_close(s->loop);
    return s->exit_code;
}
