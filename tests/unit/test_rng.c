/*
 * test_rng.c - Philox4x32-10 against the known-answer vectors published
 * with Random123, and the normal generator's statistics and independence.
 */
#include <stdint.h>
#include <stdlib.h>

#include "../test.h"
#include "rng.h"

static void kat(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, uint32_t k0, uint32_t k1,
                uint32_t e0, uint32_t e1, uint32_t e2, uint32_t e3)
{
    const uint32_t ctr[4] = { c0, c1, c2, c3 }, key[2] = { k0, k1 };
    uint32_t out[4];
    rng_philox(ctr, key, out);
    CHECK(out[0] == e0 && out[1] == e1 && out[2] == e2 && out[3] == e3);
}

int main(void)
{
    kat(0, 0, 0, 0, 0, 0, 0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8);
    kat(0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff,
        0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd);
    kat(0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0,
        0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1);

    enum { N = 200001 }; /* odd: the last pair is half used */
    float *a = malloc(sizeof(float) * N), *b = malloc(sizeof(float) * N);
    rng_normal(a, N, 42, 0, 0);
    double mean = 0, var = 0;
    for (int i = 0; i < N; i++)
        mean += a[i];
    mean /= N;
    for (int i = 0; i < N; i++)
        var += (a[i] - mean) * (a[i] - mean);
    var /= N;
    CHECK_NEAR(mean, 0.0, 0.01);
    CHECK_NEAR(var, 1.0, 0.01);

    /* A value depends only on its coordinates, not on how many are drawn. */
    rng_normal(b, 7, 42, 0, 0);
    CHECK(memcmp(a, b, sizeof(float) * 7) == 0);
    /* Different step, index or seed: a different stream. */
    const struct { uint64_t seed; uint32_t step, index; } other[] = { { 43, 0, 0 }, { 42, 1, 0 }, { 42, 0, 1 },
                                                                       { 42ULL | (1ULL << 40), 0, 0 } };
    for (size_t k = 0; k < sizeof(other) / sizeof(other[0]); k++) {
        rng_normal(b, 64, other[k].seed, other[k].step, other[k].index);
        int same = 0;
        for (int i = 0; i < 64; i++)
            same += a[i] == b[i];
        CHECK(same == 0);
    }
    free(a);
    free(b);
    return test_status();
}
