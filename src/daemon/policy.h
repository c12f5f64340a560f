/*
 * policy.h - which images share the next forward pass, and which queued
 * images a worker may take in (docs/architecture.md, "Fairness").
 *
 * A forward costs about a + b x rows on a CPU (the GEMMs are already wide
 * at one image), so a small request batched with a large one steps as
 * slowly as the large one. The policy therefore separates jobs by size:
 *
 *   size  = a job's whole work in row-steps (images x steps x rows)
 *   m     = the smallest size among the worker's resident jobs
 *   fore  = jobs with size <= POLICY_RATIO x m; back = the others
 *
 * With no background every forward takes the resident images in admission
 * order while rows fit (plain continuous batching). With a background,
 * forwards hold only foreground images, except that the background is owed
 * 1 / POLICY_SHARE of the time: when its credit is positive the next
 * forward takes all images in admission order (the oldest, i.e. the
 * background, first). Admission: a queued image joins while the worker's
 * rows fit max_rows; a job POLICY_RATIO times smaller than the largest
 * resident one may also join up to 2 x max_rows (it will be foreground), so
 * a small request never waits for a large one to finish. Nothing here
 * changes what an image computes, only when.
 *
 * Pure functions: no locks, no engine; tests/daemon/test_policy.c.
 */
#ifndef DITD_DAEMON_POLICY_H
#define DITD_DAEMON_POLICY_H

#include <stdbool.h>
#include <stdint.h>

#define POLICY_RATIO 4  /* size ratio that separates foreground from background */
#define POLICY_SHARE 8  /* the background gets at least 1 / POLICY_SHARE of the time */

enum policy_kind {
    POLICY_ALL,         /* no background: everything, in admission order */
    POLICY_FORE,        /* foreground images only */
    POLICY_BACK         /* the background's due turn: everything, oldest first */
};

/* One resident image, in admission order. */
struct policy_image {
    int rows;           /* rows per step: 2 with guidance, 1 without */
    int64_t size;       /* its job's size in row-steps */
};

struct policy {
    int max_rows;
    int64_t credit_ns;  /* time owed to the background; a turn is due when > 0 */
};

void policy_init(struct policy *p, int max_rows);
/* Choose the images of the next forward: sel[i] for each of the n images.
 * Returns the rows chosen; *kind says which kind of forward it is. */
int policy_select(const struct policy *p, const struct policy_image *img, int n, bool *sel,
                  enum policy_kind *kind);
/* Account a forward of `kind` that took `ns`. */
void policy_account(struct policy *p, enum policy_kind kind, int64_t ns);
/* May a queued image (rows, its job's size) join a worker holding
 * `resident_rows` rows whose largest resident job has size `max_size`? */
bool policy_admit(int max_rows, int resident_rows, int64_t max_size, int rows, int64_t size);

#endif /* DITD_DAEMON_POLICY_H */
