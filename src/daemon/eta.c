/*
 * eta.c - the cost model and the replay behind queue ETAs (see eta.h).
 */
#include "eta.h"

#include <math.h>
#include <stdlib.h>

/* Weight of a new forward in the averages: about the last 32 count. */
#define ALPHA (1.0 / 32)

void eta_model_init(struct eta_model *m)
{
    m->r = m->t = m->rr = m->rt = 0;
    m->decode_ns = 0;
    m->forwards = 0;
}

static void blend(double *avg, double x, bool first)
{
    *avg = first ? x : *avg + ALPHA * (x - *avg);
}

void eta_model_forward(struct eta_model *m, int rows, int64_t ns)
{
    bool first = m->forwards == 0;

    blend(&m->r, rows, first);
    blend(&m->t, (double)ns, first);
    blend(&m->rr, (double)rows * rows, first);
    blend(&m->rt, (double)rows * (double)ns, first);
    m->forwards++;
}

void eta_model_decode(struct eta_model *m, int images, int64_t ns)
{
    if (images > 0)
        blend(&m->decode_ns, (double)ns / images, m->decode_ns == 0);
}

double eta_forward_ns(const struct eta_model *m, int rows)
{
    double var = m->rr - m->r * m->r;
    double row = m->r > 0 ? m->t / m->r : 0;
    double fixed = 0;

    if (m->forwards == 0)
        return 0;
    /* The least-squares line when the batch sizes seen vary; through the
     * origin otherwise (or when the fit comes out negative). */
    if (var > 0.25) {
        double b = (m->rt - m->r * m->t) / var;
        double a = m->t - b * m->r;

        if (a >= 0 && b >= 0) {
            fixed = a;
            row = b;
        }
    }
    return fixed + row * rows;
}

/* Step worker w's images, in admission order while rows fit, up to the
 * next completion; returns the time that took. Completed images are
 * removed and their jobs' counts updated; *finished_jobs counts the queued
 * jobs whose last image that was. */
static double advance(const struct eta_model *m, int max_rows, struct eta_image *run, int *n,
                      int *left_images, int64_t *done_ns, double now, int *finished_jobs)
{
    int rows = 0, k = -1, finished = 0, o = 0;
    double took;
    bool in[*n > 0 ? *n : 1];

    for (int i = 0; i < *n; i++) {
        in[i] = rows + run[i].rows <= max_rows;
        if (in[i]) {
            rows += run[i].rows;
            if (k < 0 || run[i].left < k)
                k = run[i].left;
        }
    }
    if (k < 0)
        k = 0;
    took = k * eta_forward_ns(m, rows);
    for (int i = 0; i < *n; i++)
        if (in[i] && (run[i].left -= k) <= 0)
            finished++;
    took += finished * m->decode_ns;
    for (int i = 0; i < *n; i++) {
        if (in[i] && run[i].left <= 0) {
            if (run[i].job >= 0 && --left_images[run[i].job] == 0) {
                done_ns[run[i].job] = (int64_t)(now + took);
                (*finished_jobs)++;
            }
            continue;
        }
        run[o++] = run[i];
    }
    *n = o;
    return took;
}

int eta_replay(const struct eta_model *m, int max_rows, int nworkers, struct eta_image **run,
               int *nrun, const struct eta_job *q, int nq, int64_t *start_ns, int64_t *done_ns)
{
    double clock[nworkers > 0 ? nworkers : 1];
    int *left_images;
    int head = 0, head_admitted = 0, pending = 0;

    if (m->forwards == 0)
        return -1;
    /* On the heap: the queue may be long (max_queue). */
    left_images = malloc(sizeof(*left_images) * (size_t)(nq > 0 ? nq : 1));
    if (!left_images)
        return -1;
    for (int w = 0; w < nworkers; w++)
        clock[w] = 0;
    for (int k = 0; k < nq; k++) {
        start_ns[k] = done_ns[k] = -1;
        left_images[k] = q[k].images;
        pending += q[k].images > 0;
        if (q[k].images <= 0)
            start_ns[k] = done_ns[k] = 0;
    }
    while (pending > 0) {
        int w = -1;
        int rows = 0, finished;

        /* The worker whose next step boundary comes first. */
        for (int i = 0; i < nworkers; i++)
            if ((nrun[i] > 0 || head < nq) && (w < 0 || clock[i] < clock[w]))
                w = i;
        if (w < 0 || isinf(clock[w]))
            break;      /* a queued job no worker can hold (not submitted) */
        for (int i = 0; i < nrun[w]; i++)
            rows += run[w][i].rows;
        while (head < nq && rows + q[head].rows <= max_rows && nrun[w] < 2 * max_rows) {
            if (q[head].images > 0) {
                run[w][nrun[w]++] = (struct eta_image){ q[head].rows, q[head].steps, head };
                rows += q[head].rows;
                if (start_ns[head] < 0)
                    start_ns[head] = (int64_t)clock[w];
            }
            if (q[head].images <= 0 || ++head_admitted == q[head].images) {
                head++;
                head_admitted = 0;
            }
        }
        if (nrun[w] == 0) {
            clock[w] = INFINITY;    /* nothing left for it */
            continue;
        }
        finished = 0;
        clock[w] += advance(m, max_rows, run[w], &nrun[w], left_images, done_ns, clock[w],
                            &finished);
        pending -= finished;
    }
    free(left_images);
    return 0;
}
