/*
 * rng.h - counter-based normal noise (Philox4x32-10 + Box-Muller).
 *
 * Every value is a pure function of (seed, stream, index, element), so an
 * image's noise does not depend on batching or threads (docs/sampling.md).
 */
#ifndef DITD_RNG_H
#define DITD_RNG_H

#include <stdint.h>

/* One Philox4x32-10 block: out = philox(ctr, key). */
void rng_philox(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);

/* Fill out[0..n-1] with N(0,1) values for the given coordinates:
 * step 0 = starting noise, step j+1 = the noise of respaced step j. */
void rng_normal(float *out, int64_t n, uint64_t seed, uint32_t step, uint32_t index);

#endif /* DITD_RNG_H */
