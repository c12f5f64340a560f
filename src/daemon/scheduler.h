/*
 * scheduler.h - continuous batching over the engine. Jobs wait in one FIFO
 * shared by all workers; each worker keeps its own set of resident images
 * and, at every step boundary, admits queued images while their rows fit
 * its row budget (an image with guidance takes 2 rows; policy.h lets a much
 * smaller job in beyond it), drops the images of cancelled or late jobs,
 * runs one ditd_step() over the images the fairness policy picks, then
 * decodes and encodes the images that finished. An image's result depends
 * only on its own parameters (seed, index), never on its batch-mates or on
 * the steps it sat out.
 *
 * Threads: sched_submit/sched_cancel/... are called from the loop thread,
 * sched_worker_run from each worker thread. Lock order: sched lock, then a
 * job's mu; never the other way round.
 */
#ifndef DITD_DAEMON_SCHED_H
#define DITD_DAEMON_SCHED_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "eta.h"
#include "job.h"

struct ditd_model;
struct ditd_worker;
struct sched_worker;

#define SCHED_MAX_WORKERS 256

struct sched {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct job *qhead, *qtail;  /* jobs with images still to admit */
    int waiting;                /* queued jobs with no image admitted yet */
    int max_queue;
    int running_jobs;           /* jobs with live images */
    bool closing;               /* workers exit once idle */
    _Atomic int abort_reason;   /* -1, or the reason every running job is cancelled with */
    const struct ditd_model *model;
    int max_rows;
    const char *preview_method; /* "decode" or "linear" (ditd_model_info) */
    /* Called from any thread after a job changed (new events, new state). */
    void (*notify)(struct job *j, void *arg);
    void *notify_arg;
    struct eta_model eta;       /* forward and decode costs, learnt by the workers */
    struct sched_worker *workers[SCHED_MAX_WORKERS];  /* running, for the estimates */
    int nworkers;
    _Atomic int64_t beat[SCHED_MAX_WORKERS];  /* monotonic ns of each worker's last sign of life */
    _Atomic bool busy[SCHED_MAX_WORKERS];
    /* Test hook: every forward sleeps this long (ms), 0 = off. */
    int slow_step_ms;
    /* Test hook: a forward holding an image of a job with this seed fails,
     * as the engine would, once that image has taken 2 steps; -1 = off. */
    int64_t fail_seed;
};

int sched_init(struct sched *s, const struct ditd_model *m, int max_rows, int max_queue,
               void (*notify)(struct job *j, void *arg), void *notify_arg);
void sched_destroy(struct sched *s);
void sched_set_max_queue(struct sched *s, int max_queue);

/* Queue a job (takes a reference). 0, -EAGAIN when `max_queue` jobs are
 * already waiting, -ESHUTDOWN once closing. Emits the first "queued" event. */
int sched_submit(struct sched *s, struct job *j);
/* Cancel a job that is queued or running. A job that never started is
 * finished here (the caller wakes its waiters); a running one is dropped by
 * its worker before its next step. Returns 0, or -EALREADY if terminal. */
int sched_cancel(struct sched *s, struct job *j, int reason);
/* Cancel every job (drain timeout). */
void sched_cancel_all(struct sched *s, int reason);
/* Finish queued jobs whose deadline passed (the loop calls this often). */
void sched_expire_queued(struct sched *s, int64_t now_ns);
/* Estimated ns from now until queued job j starts and until it is done
 * (eta.h); -1 when j is not waiting or nothing has been measured yet. */
int sched_estimate(struct sched *s, struct job *j, int64_t *start_ns, int64_t *done_ns);
/* Estimated ns until a job shaped like j would start if it were queued now,
 * behind all the work there is; -1 before anything has been measured. */
int sched_estimate_tail(struct sched *s, const struct job *j, int64_t *start_ns);
/* 0-based position among the jobs that have not started, or -1. */
int sched_position(struct sched *s, struct job *j);
/* The same as last announced to the job (its `queued` events): O(1), for
 * listing many jobs. */
int sched_announced_position(struct sched *s, struct job *j);
/* Jobs queued or running. */
int sched_pending(struct sched *s);
/* Let the workers leave sched_worker_run once no work is left. */
void sched_close(struct sched *s);
/* True when every worker with work showed a sign of life within
 * `stall_ns` (the watchdog's health test). */
bool sched_healthy(struct sched *s, int nworkers, int64_t stall_ns);

/* Per-worker slots and decode buffers, sized for max_rows; NULL when out
 * of memory. Made before the thread starts so that failure stops start-up. */
struct sched_worker *sched_worker_new(struct sched *s);
void sched_worker_free(struct sched_worker *ws);
/* The body of worker thread `idx`; returns after sched_close() once idle. */
void sched_worker_run(struct sched *s, struct ditd_worker *w, struct sched_worker *ws, int idx);

#endif /* DITD_DAEMON_SCHED_H */
