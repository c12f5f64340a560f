/*
 * metrics.h - process-wide counters, gauges and fixed-bucket histograms,
 * updated with atomics from any thread and rendered in the Prometheus text
 * format 0.0.4 by metrics_render(). Names follow docs/operations.md.
 */
#ifndef DITD_DAEMON_METRICS_H
#define DITD_DAEMON_METRICS_H

#include <stdatomic.h>
#include <stdint.h>

#include "buf.h"

enum metrics_endpoint {
    EP_GENERATE,
    EP_JOBS,          /* POST /jobs */
    EP_JOB,           /* GET/DELETE /jobs/{id} */
    EP_JOB_EVENTS,
    EP_JOB_IMAGE,
    EP_INFO,
    EP_CLASSES,
    EP_HEALTH,
    EP_METRICS,
    EP_WEB,           /* GET / and /ui/... (web.c) */
    EP_OPENAI_IMAGES, /* POST /v1/images/generations */
    EP_OPENAI_MODELS, /* GET /v1/models[/{id}] */
    EP_OTHER,
    EP_COUNT
};

enum metrics_outcome {
    OUTCOME_COMPLETED,
    OUTCOME_FAILED,
    OUTCOME_CANCELLED,
    OUTCOME_REJECTED,
    OUTCOME_COUNT
};

enum metrics_reject {
    REJECT_QUEUE_FULL,
    REJECT_TOO_LARGE,
    REJECT_UNAUTHORIZED,
    REJECT_DRAINING,
    REJECT_LOADING,
    REJECT_INVALID,
    REJECT_COUNT
};

enum metrics_cancel {
    CANCEL_CLIENT,      /* DELETE /jobs/{id} */
    CANCEL_DISCONNECT,
    CANCEL_DEADLINE,
    CANCEL_SHUTDOWN,
    CANCEL_COUNT
};

#define METRICS_MAX_BUCKETS 24
#define METRICS_CODES 21

struct metrics_hist {
    const double *bounds;           /* upper bounds, increasing; +Inf implied */
    int nbounds;
    double unit;                    /* one stored unit in the rendered unit */
    _Atomic uint64_t buckets[METRICS_MAX_BUCKETS + 1]; /* not cumulative */
    _Atomic uint64_t sum;           /* in units */
    _Atomic uint64_t count;
};

struct metrics {
    _Atomic uint64_t http[EP_COUNT][METRICS_CODES];
    _Atomic uint64_t jobs_received;
    _Atomic uint64_t jobs[OUTCOME_COUNT];
    _Atomic uint64_t rejected[REJECT_COUNT];
    _Atomic uint64_t cancelled[CANCEL_COUNT];
    _Atomic uint64_t images;
    _Atomic uint64_t steps;          /* image-steps */
    _Atomic uint64_t forwards;       /* DiT forward passes */
    _Atomic uint64_t previews;
    _Atomic uint64_t conn_timeouts;
    _Atomic int64_t queue_depth;
    _Atomic int64_t queue_capacity;
    _Atomic int64_t jobs_running;
    _Atomic int64_t images_running;
    _Atomic int64_t workers;
    _Atomic int64_t workers_busy;
    _Atomic int64_t stream_clients;
    _Atomic int64_t connections;
    _Atomic int64_t ready;
    _Atomic int64_t draining;
    _Atomic int64_t max_batch_rows;
    struct metrics_hist request_duration[EP_COUNT];
    struct metrics_hist queue_wait;
    struct metrics_hist first_image;
    struct metrics_hist sampling;
    struct metrics_hist forward;
    struct metrics_hist decode;
    struct metrics_hist encode;
    struct metrics_hist batch_size;  /* images per forward */
    struct metrics_hist batch_rows;  /* rows per forward */
    /* Set once, before the page is first rendered. */
    double model_load_seconds;
    int64_t weight_bytes;
    char model_name[128];
    int image_size;
    int num_classes;
    char blas_core[64];
    char precision[8];          /* "fp32", "bf16"; "" until the model has loaded */
    char isa[16];               /* ditd_model_info.isa; "" until then */
    double start_time;               /* unix seconds */
};

extern struct metrics metrics;

void metrics_init(void);
const char *metrics_endpoint_name(enum metrics_endpoint ep);
void metrics_http(enum metrics_endpoint ep, unsigned code, uint64_t duration_ns);
void metrics_observe_ns(struct metrics_hist *h, uint64_t ns);
void metrics_observe(struct metrics_hist *h, uint64_t units);
void metrics_reject(enum metrics_reject why);
/* Render the whole page; 0 or b->err. */
int metrics_render(struct buf *b);

static inline void metrics_add(_Atomic uint64_t *c, uint64_t v)
{
    atomic_fetch_add_explicit(c, v, memory_order_relaxed);
}

static inline void metrics_gauge_add(_Atomic int64_t *g, int64_t v)
{
    atomic_fetch_add_explicit(g, v, memory_order_relaxed);
}

static inline void metrics_gauge_set(_Atomic int64_t *g, int64_t v)
{
    atomic_store_explicit(g, v, memory_order_relaxed);
}

#endif /* DITD_DAEMON_METRICS_H */
