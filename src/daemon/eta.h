/*
 * eta.h - when will a queued job start and finish? (docs/api.md, "ETA and
 * Retry-After"). Two parts:
 *
 * The cost model, learnt from the forwards the workers run: a forward of r
 * rows takes fixed + row x r nanoseconds (a least-squares line through
 * exponentially weighted averages of r, t, r^2 and r t), and a decoded
 * image decode nanoseconds.
 *
 * The estimate: a replay of continuous batching on that model, from the
 * workers' resident images (rows, steps left) and the queue: each worker
 * steps its images in admission order while rows fit, in jumps from one
 * image's completion to the next; at each completion it decodes what
 * finished and admits queued images in order while their rows fit. The
 * replay ignores the fairness policy's turns (policy.h), so it is exact for
 * jobs of one size and an estimate otherwise.
 *
 * Pure functions: tests/daemon/test_eta.c.
 */
#ifndef DITD_DAEMON_ETA_H
#define DITD_DAEMON_ETA_H

#include <stdbool.h>
#include <stdint.h>

struct eta_model {
    /* Weighted averages of forward rows and time (ns), and of decode time. */
    double r, t, rr, rt;
    double decode_ns;
    int64_t forwards;           /* forwards seen; 0 = no estimate yet */
};

/* A resident image: rows per step and steps left; job = the index of its
 * queued job in the replay, or -1 for a job already running. */
struct eta_image {
    int rows;
    int left;
    int job;
};

/* A queued job: images not admitted yet, each of `steps` steps and `rows`. */
struct eta_job {
    int rows;
    int steps;
    int images;
};

void eta_model_init(struct eta_model *m);
/* Learn from one forward of `rows` rows that took `ns`. */
void eta_model_forward(struct eta_model *m, int rows, int64_t ns);
/* Learn from a decode of `images` images that took `ns`. */
void eta_model_decode(struct eta_model *m, int images, int64_t ns);
/* The model's cost of a forward of `rows` rows, ns. */
double eta_forward_ns(const struct eta_model *m, int rows);

/* Replay from now on `nworkers` workers of `max_rows` rows each: run[w]
 * holds nrun[w] resident images of worker w (scratch: the replay changes
 * them; each array must have room for 2 x max_rows images, the most a
 * worker holds).
 * For each of the nq queued jobs, start_ns[k] and done_ns[k] receive the
 * estimated time from now to its first step and to its last image. Returns
 * 0, or -1 when the model has seen no forward yet. */
int eta_replay(const struct eta_model *m, int max_rows, int nworkers, struct eta_image **run,
               int *nrun, const struct eta_job *q, int nq, int64_t *start_ns, int64_t *done_ns);

#endif /* DITD_DAEMON_ETA_H */
