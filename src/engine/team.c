/*
 * team.c - fork-join thread team. Helpers sleep on a condition variable
 * between loops; tasks are handed out through an atomic counter so uneven
 * tasks balance themselves. The caller works too, so a team of 1 runs
 * everything inline with no synchronisation at all.
 */
#include "team.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>

struct team {
    int size;                 /* threads including the caller */
    pthread_t *helpers;       /* size - 1 */
    struct helper_arg *args;  /* size - 1 */
    pthread_mutex_t lock;
    pthread_cond_t wake;      /* helpers wait here for a new loop */
    pthread_cond_t idle;      /* the caller waits here for helpers to finish */
    unsigned long generation; /* bumped per loop; guarded by lock */
    bool quit;
    team_fn fn;
    void *arg;
    int ntasks;
    atomic_int next;          /* next task to take */
    int busy;                 /* helpers still inside the loop; guarded by lock */
};

static void run_tasks(struct team *t, int thread)
{
    for (;;) {
        int task = atomic_fetch_add_explicit(&t->next, 1, memory_order_relaxed);
        if (task >= t->ntasks)
            return;
        t->fn(t->arg, task, thread);
    }
}

struct helper_arg {
    struct team *team;
    int thread;
};

static void *helper_main(void *p)
{
    struct team *t = ((struct helper_arg *)p)->team;
    const int thread = ((struct helper_arg *)p)->thread;
    unsigned long seen = 0;

    pthread_mutex_lock(&t->lock);
    for (;;) {
        while (!t->quit && t->generation == seen)
            pthread_cond_wait(&t->wake, &t->lock);
        if (t->quit)
            break;
        seen = t->generation;
        pthread_mutex_unlock(&t->lock);
        run_tasks(t, thread);
        pthread_mutex_lock(&t->lock);
        if (--t->busy == 0)
            pthread_cond_signal(&t->idle);
    }
    pthread_mutex_unlock(&t->lock);
    return NULL;
}

int team_new(struct team **out, int threads)
{
    struct team *t = calloc(1, sizeof(*t));
    int started = 0;

    if (!t)
        return -ENOMEM;
    if (threads < 1)
        threads = 1;
    t->size = threads;
    pthread_mutex_init(&t->lock, NULL);
    pthread_cond_init(&t->wake, NULL);
    pthread_cond_init(&t->idle, NULL);
    atomic_init(&t->next, 0);
    if (threads > 1) {
        t->helpers = calloc((size_t)threads - 1, sizeof(*t->helpers));
        t->args = calloc((size_t)threads - 1, sizeof(*t->args));
        if (!t->helpers || !t->args)
            goto fail;
        for (; started < threads - 1; started++) {
            t->args[started].team = t;
            t->args[started].thread = started + 1;
            if (pthread_create(&t->helpers[started], NULL, helper_main, &t->args[started]) != 0)
                goto fail;
        }
    }
    *out = t;
    return 0;

fail:
    t->size = started + 1;
    team_free(t);
    return -ENOMEM;
}

void team_free(struct team *t)
{
    if (!t)
        return;
    pthread_mutex_lock(&t->lock);
    t->quit = true;
    pthread_cond_broadcast(&t->wake);
    pthread_mutex_unlock(&t->lock);
    for (int i = 0; i < t->size - 1; i++)
        pthread_join(t->helpers[i], NULL);
    pthread_cond_destroy(&t->idle);
    pthread_cond_destroy(&t->wake);
    pthread_mutex_destroy(&t->lock);
    free(t->helpers);
    free(t->args);
    free(t);
}

int team_size(const struct team *t)
{
    return t->size;
}

void team_run(struct team *t, team_fn fn, void *arg, int ntasks)
{
    if (t->size == 1 || ntasks <= 1) {
        for (int i = 0; i < ntasks; i++)
            fn(arg, i, 0);
        return;
    }
    pthread_mutex_lock(&t->lock);
    t->fn = fn;
    t->arg = arg;
    t->ntasks = ntasks;
    atomic_store_explicit(&t->next, 0, memory_order_relaxed);
    t->busy = t->size - 1;
    t->generation++;
    pthread_cond_broadcast(&t->wake);
    pthread_mutex_unlock(&t->lock);

    run_tasks(t, 0);

    pthread_mutex_lock(&t->lock);
    while (t->busy > 0)
        pthread_cond_wait(&t->idle, &t->lock);
    pthread_mutex_unlock(&t->lock);
}

void team_chunk(long n, int ntasks, int task, long *begin, long *end)
{
    long base = n / ntasks, extra = n % ntasks;
    *begin = task * base + (task < extra ? task : extra);
    *end = *begin + base + (task < extra ? 1 : 0);
}
