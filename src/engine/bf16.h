/*
 * bf16.h - the bfloat16 number format: the upper 16 bits of a float32
 * (sign, 8 exponent bits, 7 mantissa bits), stored as uint16_t.
 *
 * Conversion rounds to nearest, ties to even, as the AVX512-BF16 and AMX
 * instructions do (VCVTNEPS2BF16); NaN stays NaN. Widening is exact. Two
 * bf16 values multiply exactly in float32 (8 + 8 significant bits fit in
 * 24), so a float32 fused multiply-add of bf16 operands and a plain
 * multiply then add give the same bits: a reference in plain C and a
 * vectorised kernel that add the products in the same order agree exactly.
 */
#ifndef DITD_BF16_H
#define DITD_BF16_H

#include <stdint.h>
#include <string.h>

static inline uint16_t bf16_from_f32(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof(u));
    /* NaN: keep the sign and make it quiet; rounding could carry it into inf. */
    const uint32_t nan = (u & 0x7fffffffu) > 0x7f800000u;
    const uint32_t rounded = u + 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)((nan ? (u | 0x00400000u) : rounded) >> 16);
}

static inline float bf16_to_f32(uint16_t h)
{
    const uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof(f));
    return f;
}

/* f rounded to the nearest bf16 value, kept as a float. */
static inline float bf16_round(float f)
{
    return bf16_to_f32(bf16_from_f32(f));
}

#endif /* DITD_BF16_H */
