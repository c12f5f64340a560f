/*
 * sched_eta.c - the scheduler's side of the estimates (eta.h): the cost
 * model fed by the workers, the replay of the queue behind "queued" events,
 * GET /jobs/{id} of a waiting job and Retry-After.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "ditd.h"
#include "sched_internal.h"

int sched_replay(struct sched *s, const struct job *tail, int64_t **start, int64_t **done)
{
    int per = 2 * s->max_rows, nq = 0, k = 0, rc = -1;
    struct eta_image **run = calloc((size_t)s->nworkers + 1, sizeof(*run));
    struct eta_image *store = calloc((size_t)(s->nworkers + 1) * (size_t)per, sizeof(*store));
    int *nrun = calloc((size_t)s->nworkers + 1, sizeof(*nrun));
    struct eta_job *q;

    for (struct job *j = s->qhead; j; j = j->qnext)
        nq++;
    q = calloc((size_t)nq + 1, sizeof(*q));
    *start = calloc((size_t)nq + 1, sizeof(**start));
    *done = calloc((size_t)nq + 1, sizeof(**done));
    if (!run || !store || !nrun || !q || !*start || !*done)
        goto out;
    for (int w = 0; w < s->nworkers; w++) {
        run[w] = store + (size_t)w * (size_t)per;
        if (s->workers[w]) {
            nrun[w] = s->workers[w]->nsnap;
            memcpy(run[w], s->workers[w]->snap, (size_t)nrun[w] * sizeof(*store));
        }
    }
    for (struct job *j = s->qhead; j; j = j->qnext)
        q[k++] = (struct eta_job){ j->rows, j->req.steps, j->req.n - j->next_image };
    if (tail)
        q[k++] = (struct eta_job){ tail->rows, tail->req.steps, tail->req.n };
    if (eta_replay(&s->eta, s->max_rows, s->nworkers, run, nrun, q, k, *start, *done) == 0)
        rc = k;
out:
    free(run);
    free(store);
    free(nrun);
    free(q);
    if (rc < 0) {
        free(*start);
        free(*done);
        *start = *done = NULL;
    }
    return rc;
}

void sched_emit_queued(struct job *j, int pos, const int64_t *start, const int64_t *done, int k,
                       bool first)
{
    json_t *ev = json_pack("{s:s,s:i}", "id", j->id, "queue_position", pos);

    if (first)
        json_object_set_new(ev, "created", json_real(j->created_unix));
    if (start && start[k] >= 0 && done[k] >= 0) {
        json_object_set_new(ev, "starts_in_ms", json_real((double)start[k] / 1e6));
        json_object_set_new(ev, "eta_ms", json_real((double)done[k] / 1e6));
    }
    job_emit(j, "queued", ev);
}

void sched_publish(struct sched *s, struct sched_worker *ws)
{
    if (ws->forward_ns > 0)
        eta_model_forward(&s->eta, ws->forward_rows, ws->forward_ns);
    if (ws->decoded > 0)
        eta_model_decode(&s->eta, ws->decoded, ws->decode_ns);
    ws->forward_ns = ws->decode_ns = 0;
    ws->decoded = 0;
    ws->nsnap = ws->n;
    for (int i = 0; i < ws->n; i++) {
        const struct slot *sl = &ws->slots[i];

        ws->snap[i] = (struct eta_image){ sl->job->rows,
            sl->job->req.steps - (sl->img ? ditd_image_steps_done(sl->img) : 0), -1 };
    }
}


int sched_estimate(struct sched *s, struct job *j, int64_t *start_ns, int64_t *done_ns)
{
    int64_t *start = NULL, *done = NULL;
    int k = 0, rc = -1;

    pthread_mutex_lock(&s->mu);
    if (j->queued && j->next_image == 0 && sched_replay(s, NULL, &start, &done) > 0) {
        for (struct job *q = s->qhead; q && q != j; q = q->qnext)
            k++;
        *start_ns = start[k];
        *done_ns = done[k];
        rc = start[k] >= 0 && done[k] >= 0 ? 0 : -1;
    }
    pthread_mutex_unlock(&s->mu);
    free(start);
    free(done);
    return rc;
}

int sched_estimate_tail(struct sched *s, const struct job *j, int64_t *start_ns)
{
    int64_t *start = NULL, *done = NULL;
    int n, rc = -1;

    pthread_mutex_lock(&s->mu);
    n = sched_replay(s, j, &start, &done);
    if (n > 0 && start[n - 1] >= 0) {
        *start_ns = start[n - 1];
        rc = 0;
    }
    pthread_mutex_unlock(&s->mu);
    free(start);
    free(done);
    return rc;
}
