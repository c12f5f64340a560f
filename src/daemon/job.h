/*
 * job.h - one generation request from acceptance to expiry: its parameters,
 * its state, its images, and the log of events that event streams replay
 * (each with an id, so a client can resume with Last-Event-ID).
 *
 * Threads: a job is reachable from the loop thread (HTTP, job table) and
 * from one or more workers (its images), so it is reference-counted and
 * the fields workers touch are guarded by `mu` (marked "mu" below). Fields
 * marked "loop" belong to the loop thread; "sched" to the scheduler lock.
 */
#ifndef DITD_DAEMON_JOB_H
#define DITD_DAEMON_JOB_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "buf.h"
#include "idem.h"
#include "metrics.h"
#include "request.h"

struct ditd_image;
struct json_t;

enum job_state {
    JOB_QUEUED,
    JOB_RUNNING,
    JOB_COMPLETED,
    JOB_FAILED,
    JOB_CANCELLED
};

enum job_kind {
    JOB_KIND_SYNC,      /* POST /generate: one response at the end */
    JOB_KIND_STREAM,    /* POST /generate as an event stream */
    JOB_KIND_ASYNC      /* POST /jobs: kept until job_ttl after the end */
};

#define JOB_ID_LEN 17   /* 16 hex digits + NUL */
#define JOB_REQUEST_ID_LEN 65   /* HTTP_REQUEST_ID_MAX + NUL */

struct job_event {
    uint64_t id;
    char *frame;        /* a whole SSE frame: "id: ..\nevent: ..\ndata: ..\n\n" */
    size_t len;
};

struct job_image {
    struct ditd_image *img;     /* owned by the worker denoising it */
    unsigned char *png;         /* mu; set once the image is encoded */
    size_t png_len;
    bool fetched;               /* loop; served by GET /jobs/{id}/images/k.png */
};

struct api_waiter;              /* an HTTP connection waiting on the job (api.c) */

struct job {
    _Atomic int refs;
    char id[JOB_ID_LEN];
    char request_id[JOB_REQUEST_ID_LEN];  /* the creating request's X-Request-Id (http.h) */
    enum job_kind kind;
    struct gen_request req;
    uint64_t seed;              /* resolved: the request's or a random one */
    int rows;                   /* DiT rows per image step */
    int64_t created_ns;         /* monotonic */
    double created_unix;
    int64_t deadline_ns;        /* monotonic, 0 = none */

    pthread_mutex_t mu;
    enum job_state state;       /* mu */
    int cancel_reason;          /* mu; enum metrics_cancel once cancelled */
    _Atomic bool cancel;        /* set once; workers drop the job's images */
    struct job_image *images;   /* n entries */
    int images_done;            /* mu */
    long steps_done;            /* mu; image-steps */
    int64_t started_ns;         /* mu */
    int64_t sampled_ns;         /* mu; last image denoised */
    int64_t finished_ns;        /* mu */
    double started_unix, finished_unix; /* mu */
    uint64_t decode_ns;         /* mu */
    uint64_t encode_ns;         /* mu */
    int batch_sum;              /* mu; images in the forwards this job's images took */
    int batch_count;            /* mu */
    char error_type[32];        /* mu */
    char error_msg[512];        /* mu */
    struct job_event *events;   /* mu */
    size_t nevents, events_cap; /* mu */
    uint64_t last_event_id;     /* mu */
    bool expired;               /* mu; heavy data freed, answers 410 */

    /* sched */
    struct job *qprev, *qnext;
    bool queued;
    int next_image;             /* next image index to admit */
    int images_live;            /* admitted and neither done nor dropped */
    int position;               /* last queue position announced */

    /* loop */
    uint64_t owner;             /* hash of the API key that created it; 0 without keys */
    uint64_t seq;               /* creation order in the job table (GET /jobs cursors) */
    struct idem idem;           /* the Idempotency-Key that created it, if any */
    bool delivered;             /* a client has had its outcome (a drain waits for it) */
    struct api_waiter *waiters;
    struct job *tnext;          /* job table */
    _Atomic bool posted;        /* in the pool's outbox */
};

/* A new job with one reference; NULL when out of memory. */
struct job *job_new(enum job_kind kind, const struct gen_request *req, uint64_t seed,
                    int64_t timeout_ns);
struct job *job_ref(struct job *j);
void job_unref(struct job *j);

/* Random 64-bit value from the kernel (job ids). */
uint64_t job_random_u64(void);

/* The number of a job's k-th image (0 .. n-1) as its PNG records it and the
 * API reports it: the request's index + k, its noise stream. */
static inline int64_t job_image_index(const struct job *j, int k)
{
    return (int64_t)j->req.index + k;
}

/* Append an event. `data` is a JSON object (stolen); "type" is set to
 * `name`. Takes mu. Sync jobs keep no log, so this is a no-op for them. */
void job_emit(struct job *j, const char *name, struct json_t *data);
/* The same with mu already held. */
void job_emit_locked(struct job *j, const char *name, struct json_t *data);

/* Move to a terminal state once (later calls return false): sets times,
 * error, outcome metrics and the terminal event (done / error /
 * cancelled). Call with mu held. */
bool job_finish_locked(struct job *j, enum job_state state, const char *error_type,
                       const char *error_msg);

/* Copy SSE bytes after event `after_id` into out[0..max), continuing a
 * partly sent frame at `*offset`. Returns bytes copied; *after_id and
 * *offset advance. *ended is true when the job is terminal and all events
 * were copied. Takes mu. */
size_t job_read_events(struct job *j, uint64_t *after_id, size_t *offset, char *out,
                       size_t max, bool *ended);

/* The job object of GET /jobs/{id} (new reference). Takes mu. */
struct json_t *job_to_json(struct job *j, int queue_position);
/* {"queue_ms":..,...} from the job's times (new reference); mu held. */
struct json_t *job_timings_locked(struct job *j);
/* Drop images and events of a finished job, keeping its id and outcome. */
void job_expire(struct job *j);

const char *job_state_name(enum job_state s);
bool job_state_terminal(enum job_state s);

static inline int64_t job_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline double job_unix_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

#endif /* DITD_DAEMON_JOB_H */
