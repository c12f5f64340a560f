/*
 * pool.c - worker threads and the worker -> loop hand-off (see pool.h).
 */
#include "pool.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ditd.h"
#include "log.h"
#include "metrics.h"

struct thread_arg {
    struct pool *pool;
    int idx;
};

static void drain(uv_async_t *h)
{
    struct pool *p = h->data;
    struct job **box;
    size_t n;

    /* Swap the list out under the lock, then handle it without the lock
     * so workers can keep posting. */
    pthread_mutex_lock(&p->mu);
    box = p->box;
    n = p->nbox;
    p->box = NULL;
    p->nbox = p->capbox = 0;
    pthread_mutex_unlock(&p->mu);
    for (size_t i = 0; i < n; i++) {
        /* Clear first: a post from now on queues the job again. */
        atomic_store(&box[i]->posted, false);
        p->on_job(box[i], p->arg);
        job_unref(box[i]);
    }
    free(box);
}

int pool_init(struct pool *p, uv_loop_t *loop, void (*on_job)(struct job *j, void *arg), void *arg)
{
    int rc;

    memset(p, 0, sizeof(*p));
    p->on_job = on_job;
    p->arg = arg;
    if (pthread_mutex_init(&p->mu, NULL) != 0)
        return -ENOMEM;
    rc = uv_async_init(loop, &p->async, drain);
    if (rc < 0) {
        pthread_mutex_destroy(&p->mu);
        return rc;
    }
    p->async.data = p;
    p->async_open = true;
    return 0;
}

void pool_post(struct pool *p, struct job *j)
{
    bool queued = false;

    if (atomic_exchange(&j->posted, true))
        return;     /* already waiting in the box */
    pthread_mutex_lock(&p->mu);
    if (p->nbox == p->capbox) {
        size_t cap = p->capbox ? p->capbox * 2 : 64;
        struct job **b = realloc(p->box, cap * sizeof(*b));

        if (b) {
            p->box = b;
            p->capbox = cap;
        }
    }
    if (p->nbox < p->capbox) {
        p->box[p->nbox++] = job_ref(j);
        queued = true;
    }
    pthread_mutex_unlock(&p->mu);
    if (!queued) {
        /* Out of memory: the job is not lost, the loop's housekeeping
         * timer looks at every waiting job about ten times a second. */
        atomic_store(&j->posted, false);
        return;
    }
    uv_async_send(&p->async);
}

void pool_notify(struct job *j, void *arg)
{
    pool_post(arg, j);
}

static void *thread_main(void *arg)
{
    struct thread_arg ta = *(struct thread_arg *)arg;

    free(arg);
    sched_worker_run(ta.pool->sched, ta.pool->workers[ta.idx], ta.pool->states[ta.idx], ta.idx);
    return NULL;
}

int pool_start(struct pool *p, struct sched *sched, const struct ditd_model *m, int nworkers,
               int max_rows, int threads, char *err, size_t errlen)
{
    char msg[DITD_ERR_LEN];
    int rc;

    if (nworkers < 1 || nworkers > SCHED_MAX_WORKERS) {
        snprintf(err, errlen, "workers must be 1..%d", SCHED_MAX_WORKERS);
        return -EINVAL;
    }
    p->sched = sched;
    p->workers = calloc((size_t)nworkers, sizeof(*p->workers));
    p->threads = calloc((size_t)nworkers, sizeof(*p->threads));
    p->states = calloc((size_t)nworkers, sizeof(*p->states));
    if (!p->workers || !p->threads || !p->states) {
        snprintf(err, errlen, "out of memory for %d workers", nworkers);
        return -ENOMEM;
    }
    p->nworkers = nworkers;
    for (int i = 0; i < nworkers; i++) {
        rc = ditd_worker_new(&p->workers[i], m, max_rows, threads, msg, sizeof(msg));
        if (rc < 0) {
            snprintf(err, errlen, "worker %d: %s", i, msg);
            return rc;
        }
        p->states[i] = sched_worker_new(sched);
        if (!p->states[i]) {
            snprintf(err, errlen, "worker %d: out of memory for %d rows of images", i, max_rows);
            return -ENOMEM;
        }
    }
    for (int i = 0; i < nworkers; i++) {
        struct thread_arg *ta = malloc(sizeof(*ta));

        if (!ta) {
            snprintf(err, errlen, "out of memory starting worker %d", i);
            return -ENOMEM;
        }
        ta->pool = p;
        ta->idx = i;
        rc = pthread_create(&p->threads[i], NULL, thread_main, ta);
        if (rc != 0) {
            free(ta);
            snprintf(err, errlen, "cannot start worker thread %d: %s", i, strerror(rc));
            return -rc;
        }
        p->started++;
    }
    metrics_gauge_set(&metrics.workers, nworkers);
    return 0;
}

void pool_join(struct pool *p)
{
    for (int i = 0; i < p->started; i++)
        pthread_join(p->threads[i], NULL);
    p->started = 0;
    for (int i = 0; i < p->nworkers; i++) {
        if (p->workers[i])
            ditd_worker_free(p->workers[i]);
        if (p->states)
            sched_worker_free(p->states[i]);
    }
    free(p->workers);
    free(p->states);
    p->states = NULL;
    free(p->threads);
    p->workers = NULL;
    p->threads = NULL;
    p->nworkers = 0;
}

void pool_close(struct pool *p)
{
    if (p->async_open) {
        /* Deliver what is left, then close; the handle is embedded in p,
         * which outlives the loop run that closes it. */
        drain(&p->async);
        uv_close((uv_handle_t *)&p->async, NULL);
        p->async_open = false;
    }
    pthread_mutex_destroy(&p->mu);
}
