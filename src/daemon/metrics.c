/*
 * metrics.c - the one metrics registry and its Prometheus text rendering
 * (exposition format 0.0.4: one HELP and one TYPE line per family, counters
 * end in _total, durations in seconds, cumulative buckets ending at +Inf).
 * Updates are relaxed atomics: a page may mix values a few microseconds
 * apart, which scrapers tolerate; nothing takes a lock.
 */
#include "metrics.h"

#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "ditd-build.h"

struct metrics metrics;

static const unsigned http_codes[METRICS_CODES - 1] = {
    200, 202, 204, 400, 401, 403, 404, 405, 409, 410,
    413, 414, 415, 422, 429, 431, 500, 501, 503, 504
};

static const char *const endpoint_names[EP_COUNT] = {
    "generate", "jobs", "job", "job_events", "job_image",
    "info", "classes", "health", "metrics", "web", "openai_images", "openai_models", "other"
};
static const char *const outcome_names[OUTCOME_COUNT] = {
    "completed", "failed", "cancelled", "rejected"
};
static const char *const reject_names[REJECT_COUNT] = {
    "queue_full", "too_large", "unauthorized", "draining", "loading", "invalid"
};
static const char *const cancel_names[CANCEL_COUNT] = {
    "client", "disconnect", "deadline", "shutdown"
};

/* Seconds: 1 ms .. 10 min, roughly x2.5 apart, for steps of a tiny model up
 * to whole jobs of DiT-XL on a CPU. */
static const double seconds_bounds[] = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1, 2.5, 5, 10, 25, 50, 100, 250, 600
};
static const double size_bounds[] = { 1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 128, 256 };

#define NB(a) ((int)(sizeof(a) / sizeof((a)[0])))

static void hist_setup(struct metrics_hist *h, const double *bounds, int n, double unit)
{
    h->bounds = bounds;
    h->nbounds = n;
    h->unit = unit;
}

void metrics_init(void)
{
    struct timespec ts;

    memset(&metrics, 0, sizeof(metrics));
    for (int i = 0; i < EP_COUNT; i++)
        hist_setup(&metrics.request_duration[i], seconds_bounds, NB(seconds_bounds), 1e-9);
    hist_setup(&metrics.queue_wait, seconds_bounds, NB(seconds_bounds), 1e-9);
    hist_setup(&metrics.first_image, seconds_bounds, NB(seconds_bounds), 1e-9);
    hist_setup(&metrics.sampling, seconds_bounds, NB(seconds_bounds), 1e-9);
    hist_setup(&metrics.forward, seconds_bounds, NB(seconds_bounds), 1e-9);
    hist_setup(&metrics.decode, seconds_bounds, NB(seconds_bounds), 1e-9);
    hist_setup(&metrics.encode, seconds_bounds, NB(seconds_bounds), 1e-9);
    hist_setup(&metrics.batch_size, size_bounds, NB(size_bounds), 1);
    hist_setup(&metrics.batch_rows, size_bounds, NB(size_bounds), 1);
    clock_gettime(CLOCK_REALTIME, &ts);
    metrics.start_time = (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

const char *metrics_endpoint_name(enum metrics_endpoint ep)
{
    return endpoint_names[ep];
}

static int code_index(unsigned code)
{
    for (int i = 0; i < METRICS_CODES - 1; i++)
        if (http_codes[i] == code)
            return i;
    return METRICS_CODES - 1;   /* "other" */
}

void metrics_http(enum metrics_endpoint ep, unsigned code, uint64_t duration_ns)
{
    metrics_add(&metrics.http[ep][code_index(code)], 1);
    metrics_observe_ns(&metrics.request_duration[ep], duration_ns);
}

void metrics_observe(struct metrics_hist *h, uint64_t units)
{
    double v = (double)units * h->unit;
    int i = 0;

    while (i < h->nbounds && v > h->bounds[i])
        i++;
    metrics_add(&h->buckets[i], 1);
    metrics_add(&h->sum, units);
    metrics_add(&h->count, 1);
}

void metrics_observe_ns(struct metrics_hist *h, uint64_t ns)
{
    metrics_observe(h, ns);
}

void metrics_reject(enum metrics_reject why)
{
    metrics_add(&metrics.rejected[why], 1);
    metrics_add(&metrics.jobs[OUTCOME_REJECTED], 1);
}

static uint64_t ld(_Atomic uint64_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

static int64_t ldg(_Atomic int64_t *g)
{
    return atomic_load_explicit(g, memory_order_relaxed);
}

static void family(struct buf *b, const char *name, const char *type, const char *help)
{
    buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void label_escaped(struct buf *b, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            buf_printf(b, "\\%c", *s);
        else if (*s == '\n')
            buf_puts(b, "\\n");
        else
            buf_append(b, s, 1);
    }
}

static void counter(struct buf *b, const char *name, const char *help, _Atomic uint64_t *c)
{
    family(b, name, "counter", help);
    buf_printf(b, "%s %llu\n", name, (unsigned long long)ld(c));
}

static void gauge(struct buf *b, const char *name, const char *help, double v)
{
    family(b, name, "gauge", help);
    buf_printf(b, "%s %.17g\n", name, v);
}

/* Buckets of one histogram series; `labels` is "" or `key="v",`. */
static void hist_series(struct buf *b, const char *name, const char *labels,
                        struct metrics_hist *h)
{
    uint64_t cum = 0;
    uint64_t count;
    size_t ll = strlen(labels);
    /* labels without the trailing comma, for _sum and _count */
    int bare = ll ? (int)ll - 1 : 0;

    for (int i = 0; i < h->nbounds; i++) {
        cum += ld(&h->buckets[i]);
        buf_printf(b, "%s_bucket{%sle=\"%g\"} %llu\n", name, labels, h->bounds[i],
                   (unsigned long long)cum);
    }
    cum += ld(&h->buckets[h->nbounds]);
    /* _count is read after the buckets and may be ahead of them by a few
     * concurrent observations; +Inf must equal _count, so use the larger. */
    count = ld(&h->count);
    if (count < cum)
        count = cum;
    buf_printf(b, "%s_bucket{%sle=\"+Inf\"} %llu\n", name, labels, (unsigned long long)count);
    if (bare)
        buf_printf(b, "%s_sum{%.*s} %.9g\n%s_count{%.*s} %llu\n", name, bare, labels,
                   (double)ld(&h->sum) * h->unit, name, bare, labels, (unsigned long long)count);
    else
        buf_printf(b, "%s_sum %.9g\n%s_count %llu\n", name, (double)ld(&h->sum) * h->unit,
                   name, (unsigned long long)count);
}

static void hist(struct buf *b, const char *name, const char *help, struct metrics_hist *h)
{
    family(b, name, "histogram", help);
    hist_series(b, name, "", h);
}

/* process_* from /proc/self: CPU time, memory, open descriptors. */
static void process_metrics(struct buf *b)
{
    unsigned long long utime = 0, stime = 0, vsize = 0;
    long long rss = 0;
    long tck = sysconf(_SC_CLK_TCK);
    long page = sysconf(_SC_PAGESIZE);
    struct rlimit rl;
    char line[1024];
    FILE *f = fopen("/proc/self/stat", "r");
    int fds = 0;
    DIR *d;

    if (f) {
        if (fgets(line, sizeof(line), f)) {
            /* Fields after the ")" that ends the command name. */
            char *p = strrchr(line, ')');

            if (p)
                sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu "
                       "%*d %*d %*d %*d %*d %*d %*u %llu %lld", &utime, &stime, &vsize, &rss);
        }
        fclose(f);
    }
    d = opendir("/proc/self/fd");
    if (d) {
        struct dirent *e;

        while ((e = readdir(d)))
            if (e->d_name[0] != '.')
                fds++;
        closedir(d);
        fds--;  /* the directory stream's own descriptor */
    }
    family(b, "process_cpu_seconds_total", "counter", "User and system CPU time spent in seconds.");
    buf_printf(b, "process_cpu_seconds_total %.2f\n",
               tck > 0 ? (double)(utime + stime) / (double)tck : 0.0);
    gauge(b, "process_resident_memory_bytes", "Resident memory size in bytes.",
          (double)rss * (double)page);
    gauge(b, "process_virtual_memory_bytes", "Virtual memory size in bytes.", (double)vsize);
    gauge(b, "process_start_time_seconds", "Start time of the process since unix epoch in seconds.",
          metrics.start_time);
    gauge(b, "process_open_fds", "Number of open file descriptors.", fds);
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
        gauge(b, "process_max_fds", "Maximum number of open file descriptors.",
              rl.rlim_cur == RLIM_INFINITY ? -1.0 : (double)rl.rlim_cur);
}

int metrics_render(struct buf *b)
{
    char labels[128];

    family(b, "ditd_build_info", "gauge", "Build of the daemon (value 1).");
    buf_printf(b, "ditd_build_info{version=\"%s\",blas=\"", DITD_VERSION);
    label_escaped(b, metrics.blas_core);
    buf_puts(b, "\",precision=\"");
    label_escaped(b, metrics.precision);
    buf_puts(b, "\",isa=\"");
    label_escaped(b, metrics.isa);
    buf_puts(b, "\"} 1\n");
    family(b, "ditd_model_info", "gauge", "Model being served (value 1).");
    buf_puts(b, "ditd_model_info{model=\"");
    label_escaped(b, metrics.model_name);
    buf_printf(b, "\",image_size=\"%d\",num_classes=\"%d\",dtype=\"%s\"} 1\n",
               metrics.image_size, metrics.num_classes,
               strcmp(metrics.precision, "bf16") == 0 ? "bf16" : "f32");
    gauge(b, "ditd_ready", "1 when the daemon accepts generation requests.", (double)ldg(&metrics.ready));
    gauge(b, "ditd_draining", "1 while a SIGTERM drain is in progress.", (double)ldg(&metrics.draining));

    family(b, "ditd_http_requests_total", "counter", "HTTP requests answered, by endpoint and status code.");
    for (int e = 0; e < EP_COUNT; e++) {
        for (int c = 0; c < METRICS_CODES; c++) {
            uint64_t v = ld(&metrics.http[e][c]);

            if (!v)
                continue;
            if (c < METRICS_CODES - 1)
                buf_printf(b, "ditd_http_requests_total{endpoint=\"%s\",code=\"%u\"} %llu\n",
                           endpoint_names[e], http_codes[c], (unsigned long long)v);
            else
                buf_printf(b, "ditd_http_requests_total{endpoint=\"%s\",code=\"other\"} %llu\n",
                           endpoint_names[e], (unsigned long long)v);
        }
    }
    counter(b, "ditd_jobs_received_total",
            "Generation requests received (POST /generate and POST /jobs); each ends in one outcome.",
            &metrics.jobs_received);
    family(b, "ditd_jobs_total", "counter", "Generation requests finished, by outcome.");
    for (int i = 0; i < OUTCOME_COUNT; i++)
        buf_printf(b, "ditd_jobs_total{outcome=\"%s\"} %llu\n", outcome_names[i],
                   (unsigned long long)ld(&metrics.jobs[i]));
    family(b, "ditd_jobs_rejected_total", "counter", "Generation requests refused before running, by reason.");
    for (int i = 0; i < REJECT_COUNT; i++)
        buf_printf(b, "ditd_jobs_rejected_total{reason=\"%s\"} %llu\n", reject_names[i],
                   (unsigned long long)ld(&metrics.rejected[i]));
    family(b, "ditd_jobs_cancelled_total", "counter", "Jobs cancelled after acceptance, by reason.");
    for (int i = 0; i < CANCEL_COUNT; i++)
        buf_printf(b, "ditd_jobs_cancelled_total{reason=\"%s\"} %llu\n", cancel_names[i],
                   (unsigned long long)ld(&metrics.cancelled[i]));
    counter(b, "ditd_images_generated_total", "Images decoded and encoded.", &metrics.images);
    counter(b, "ditd_denoise_steps_total", "Denoising steps taken, summed over images.", &metrics.steps);
    counter(b, "ditd_forward_passes_total", "DiT forward passes (one per batched step).", &metrics.forwards);
    counter(b, "ditd_previews_total", "Preview images sent.", &metrics.previews);
    counter(b, "ditd_connection_timeouts_total", "Connections closed for inactivity.", &metrics.conn_timeouts);

    gauge(b, "ditd_queue_depth", "Jobs waiting to start.", (double)ldg(&metrics.queue_depth));
    gauge(b, "ditd_queue_capacity", "Jobs that may wait before 429.", (double)ldg(&metrics.queue_capacity));
    gauge(b, "ditd_jobs_running", "Jobs with at least one image being denoised.", (double)ldg(&metrics.jobs_running));
    gauge(b, "ditd_images_running", "Images being denoised.", (double)ldg(&metrics.images_running));
    gauge(b, "ditd_workers", "Compute worker threads.", (double)ldg(&metrics.workers));
    gauge(b, "ditd_workers_busy", "Worker threads with images in flight.", (double)ldg(&metrics.workers_busy));
    gauge(b, "ditd_batch_max_rows", "Row budget of one forward pass.", (double)ldg(&metrics.max_batch_rows));
    gauge(b, "ditd_stream_clients", "Open event streams.", (double)ldg(&metrics.stream_clients));
    gauge(b, "ditd_http_connections", "Open HTTP connections.", (double)ldg(&metrics.connections));
    gauge(b, "ditd_model_load_duration_seconds", "Time the model took to load.", metrics.model_load_seconds);
    gauge(b, "ditd_weights_bytes", "Bytes of weights in use.", (double)metrics.weight_bytes);

    family(b, "ditd_request_duration_seconds", "histogram", "HTTP request duration, by endpoint.");
    for (int e = 0; e < EP_COUNT; e++) {
        if (!ld(&metrics.request_duration[e].count))
            continue;
        snprintf(labels, sizeof(labels), "endpoint=\"%s\",", endpoint_names[e]);
        hist_series(b, "ditd_request_duration_seconds", labels, &metrics.request_duration[e]);
    }
    hist(b, "ditd_queue_wait_seconds", "Time from arrival to the first step.", &metrics.queue_wait);
    hist(b, "ditd_time_to_first_image_seconds", "Time from arrival to the first encoded image.",
         &metrics.first_image);
    hist(b, "ditd_sampling_duration_seconds", "Time from the first step to the last, per job.",
         &metrics.sampling);
    hist(b, "ditd_forward_duration_seconds", "Duration of one batched DiT step.", &metrics.forward);
    hist(b, "ditd_vae_decode_duration_seconds", "Duration of one batched VAE decode.", &metrics.decode);
    hist(b, "ditd_png_encode_duration_seconds", "Duration of one PNG encode.", &metrics.encode);
    hist(b, "ditd_batch_size", "Images per DiT forward pass.", &metrics.batch_size);
    hist(b, "ditd_batch_rows", "DiT rows per forward pass (guidance counts 2).", &metrics.batch_rows);
    process_metrics(b);
    return b->err;
}
