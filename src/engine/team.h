/*
 * team.h - a fixed group of threads that runs one parallel loop at a time
 * (fork-join). A worker uses its team for the parts of a forward pass that
 * BLAS does not cover: attention heads, norms, activations.
 */
#ifndef DITD_TEAM_H
#define DITD_TEAM_H

struct team;

/* fn(arg, task, thread) is called once for every task in 0..ntasks-1,
 * spread over the team; thread (0 = the caller) lets a task pick its own
 * scratch memory. team_run returns when all tasks have finished. */
typedef void (*team_fn)(void *arg, int task, int thread);

/* threads >= 1 counts the calling thread. */
int team_new(struct team **out, int threads);
void team_free(struct team *t);
int team_size(const struct team *t);
void team_run(struct team *t, team_fn fn, void *arg, int ntasks);

/* Split [0, n) into team-sized contiguous chunks: the range of `task`. */
void team_chunk(long n, int ntasks, int task, long *begin, long *end);

#endif /* DITD_TEAM_H */
