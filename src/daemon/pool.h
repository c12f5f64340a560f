/*
 * pool.h - the compute threads and the road back to the loop thread. Each
 * worker thread owns one engine worker (its buffers, its BLAS threads) and
 * runs the scheduler's worker loop. Workers report changed jobs with
 * pool_post(): a mutex-protected list plus one uv_async_t; since libuv
 * coalesces async wake-ups, the loop drains the whole list on every wake.
 */
#ifndef DITD_DAEMON_POOL_H
#define DITD_DAEMON_POOL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "scheduler.h"

struct ditd_model;

struct pool {
    uv_async_t async;
    pthread_mutex_t mu;
    struct job **box;           /* jobs posted since the last drain */
    size_t nbox, capbox;
    void (*on_job)(struct job *j, void *arg);   /* on the loop thread */
    void *arg;
    struct sched *sched;
    int nworkers;
    struct ditd_worker **workers;
    struct sched_worker **states;
    pthread_t *threads;
    int started;
    bool async_open;
};

/* Set up the outbox on `loop`; on_job runs on the loop thread for each
 * job posted. 0 or -errno. */
int pool_init(struct pool *p, uv_loop_t *loop, void (*on_job)(struct job *j, void *arg),
              void *arg);
/* Create `nworkers` engine workers (max_rows rows, `threads` threads each)
 * and start their threads on `sched`. err says what failed. */
int pool_start(struct pool *p, struct sched *sched, const struct ditd_model *m, int nworkers,
               int max_rows, int threads, char *err, size_t errlen);
/* Any thread: queue `j` for on_job (once until drained). */
void pool_post(struct pool *p, struct job *j);
/* The sched notify callback: arg is the pool. */
void pool_notify(struct job *j, void *arg);
/* Join the threads (after sched_close) and free the engine workers. */
void pool_join(struct pool *p);
/* Close the async handle (loop thread) and free the outbox. */
void pool_close(struct pool *p);

#endif /* DITD_DAEMON_POOL_H */
