/*
 * blas.h - engine-internal BLAS controls (the public part is in ditd.h).
 */
#ifndef DITD_BLAS_H
#define DITD_BLAS_H

/* Threads OpenBLAS uses for the next calls of this process. */
void blas_set_threads(int n);

/* The strongest OpenBLAS kernel this CPU can run, or NULL when the CPU has
 * nothing better than the generic SSE kernels. */
const char *blas_best_core(void);

#endif /* DITD_BLAS_H */
