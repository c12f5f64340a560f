/*
 * sched_internal.h - what scheduler.c and sched_eta.c share: a worker's
 * resident images and the estimate helpers. Private to the scheduler.
 */
#ifndef DITD_DAEMON_SCHED_INTERNAL_H
#define DITD_DAEMON_SCHED_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "eta.h"
#include "policy.h"
#include "scheduler.h"

struct slot {
    struct job *job;            /* a reference */
    int index;                  /* image number within the job */
    struct ditd_image *img;
    bool fresh;                 /* admitted, image not created yet */
    bool first;                 /* the job's first admitted image */
    bool in;                    /* in this step's forward */
};

struct sched_worker {
    struct slot *slots;         /* resident images, in admission order (2 x max_rows) */
    int n;
    int rows;
    int nb;                     /* images in this step's forward */
    struct policy policy;
    struct policy_image *pimg;  /* scratch for policy_select */
    bool *sel;
    /* Measured, folded into sched.eta at the next admission (sched lock). */
    int64_t forward_ns, decode_ns;
    int forward_rows, decoded;
    /* What the estimates see of this worker (sched lock): its resident images. */
    struct eta_image *snap;
    int nsnap;
    struct ditd_image **imgs;
    uint8_t *rgb;               /* max_rows decoded images */
    uint8_t *preview;           /* one preview, image-sized */
    int image_size;
};

/* A job's whole work in row-steps: what the fairness policy compares. */
static inline int64_t job_size(const struct job *j)
{
    return (int64_t)j->req.n * j->req.steps * j->rows;
}

/* Replay the queue on the learnt costs (eta.h): start[k] and done[k] for
 * the k-th job of the queue, then for `tail` (if given) as if queued last.
 * sched lock held. Returns the number of jobs estimated, or -1 (nothing
 * measured yet, or out of memory); the caller frees *start and *done. */
int sched_replay(struct sched *s, const struct job *tail, int64_t **start, int64_t **done);
/* Emit a "queued" event: the place, `created` on the first one, and the
 * estimates of entry k when there are some (start may be NULL). */
void sched_emit_queued(struct job *j, int pos, const int64_t *start, const int64_t *done, int k,
                       bool first);
/* Fold a worker's measurements into the cost model and show the estimates
 * its resident images; sched lock held. */
void sched_publish(struct sched *s, struct sched_worker *ws);

#endif /* DITD_DAEMON_SCHED_INTERNAL_H */
