/*
 * rng.c - Philox4x32-10 (Salmon, Moraes, Dror, Shaw: "Parallel random
 * numbers: as easy as 1, 2, 3", SC 2011) and the Box-Muller transform that
 * turns it into the engine's normal noise. The exact recipe is part of the
 * reproducibility contract in docs/sampling.md: change it and every seed
 * gives different images. Also the draw of seeds nobody chose.
 */
#include "rng.h"

#include <math.h>
#include <sys/random.h>
#include <time.h>

#include "ditd.h"

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

void rng_philox(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4])
{
    uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
    uint32_t k0 = key[0], k1 = key[1];

    for (int round = 0; round < 10; round++) {
        uint64_t p0 = (uint64_t)PHILOX_M0 * c0;
        uint64_t p1 = (uint64_t)PHILOX_M1 * c2;
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0;
        uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        c1 = (uint32_t)p1;
        c3 = (uint32_t)p0;
        c0 = n0;
        c2 = n2;
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
}

void rng_normal(float *out, int64_t n, uint64_t seed, uint32_t step, uint32_t index)
{
    const uint32_t key[2] = { (uint32_t)seed, (uint32_t)(seed >> 32) };
    const double two_pi = 6.283185307179586476925286766559;

    for (int64_t pair = 0; 2 * pair < n; pair++) {
        uint32_t ctr[4] = { (uint32_t)pair, step, index, 0 };
        uint32_t w[4];
        rng_philox(ctr, key, w);
        /* The +0.5 keeps u1 away from 0, so the log is always finite. */
        double u1 = ((double)w[0] + 0.5) * (1.0 / 4294967296.0);
        double u2 = ((double)w[1] + 0.5) * (1.0 / 4294967296.0);
        double r = sqrt(-2.0 * log(u1));
        double theta = two_pi * u2;
        out[2 * pair] = (float)(r * cos(theta));
        if (2 * pair + 1 < n)
            out[2 * pair + 1] = (float)(r * sin(theta));
    }
}

uint64_t ditd_seed_random(void)
{
    uint64_t v = 0;

    /* 8 bytes never come short once the kernel's pool is ready; before
     * that (or on EINTR) any value will do, as the seed is reported. */
    if (getrandom(&v, sizeof(v), GRND_NONBLOCK) != (ssize_t)sizeof(v)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        v ^= ((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec) * 0x9E3779B97F4A7C15ull;
    }
    return v & ((UINT64_C(1) << 53) - 1);
}
