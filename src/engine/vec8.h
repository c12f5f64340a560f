/*
 * vec8.h - eight floats as one GCC vector, for the VAE kernels (conv3.c,
 * gnorm.c): loads and stores of a partial vector at channel tails, a clamp,
 * exp, SiLU and bf16 rounding. Everything is static inline and is meant to be
 * inlined into functions cloned per instruction set (target_clones), where
 * it becomes AVX2 / AVX-512 code, or SSE pairs on the default clone.
 */
#ifndef DITD_VEC8_H
#define DITD_VEC8_H

#include <stdint.h>
#include <string.h>

#include "ops_internal.h"

#define VEC8 8

typedef float v8 __attribute__((vector_size(32)));
typedef float v8u __attribute__((vector_size(32), aligned(4)));
typedef int32_t v8i __attribute__((vector_size(32)));
typedef uint32_t v8w __attribute__((vector_size(32)));

/* No helper here takes or returns a vector by value: they read and write
 * through pointers. A by-value v8 between a clone compiled for AVX and a
 * helper compiled for the default target would be passed in registers on one
 * side and in memory on the other (the -O0 build crashed in conv3.c when it
 * did), and clang refuses such calls outright inside target_clones because it
 * checks the call's ABI before it inlines. They are always_inline so that the
 * -O0 build is not slowed by a call per vector either. */
#define V8_INLINE static inline __attribute__((always_inline))

/* *v = the first n (1..8) floats at p; the other lanes zero. */
V8_INLINE void v8_load(v8 *v, const float *p, int n)
{
    if (n == VEC8) {
        *v = *(const v8u *)p;
        return;
    }
    *v = (v8){ 0 };
    for (int k = 0; k < n; k++)
        (*v)[k] = p[k];
}

/* The first n (1..8) lanes of *v to p. */
V8_INLINE void v8_store(float *p, const v8 *v, int n)
{
    if (n == VEC8) {
        *(v8u *)p = *v;
        return;
    }
    for (int k = 0; k < n; k++)
        p[k] = (*v)[k];
}

/* *x limited to [lo, hi] lane by lane; NaN stays NaN. */
V8_INLINE void v8_clamp(v8 *x, float lo, float hi)
{
    const v8 vlo = (v8){ 0 } + lo, vhi = (v8){ 0 } + hi;
    v8i xi, loi, hii;
    memcpy(&xi, x, sizeof(xi));
    memcpy(&loi, &vlo, sizeof(loi));
    memcpy(&hii, &vhi, sizeof(hii));
    const v8i below = *x < lo, above = *x > hi;
    xi = (xi & ~below) | (loi & below);
    xi = (xi & ~above) | (hii & above);
    memcpy(x, &xi, sizeof(xi));
}

/* *x = exp(*x) to about one ulp, the same steps as ops.c's exp_approx: x
 * clamped to [-87, 88], round(x/ln2) by the 1.5*2^23 trick, a degree-6
 * polynomial on the remainder, the power of two built from its bits. */
V8_INLINE void v8_exp(v8 *x)
{
    v8 v = *x;
    v8_clamp(&v, -87.0f, 88.0f);
    const v8 k = (v * 1.44269504089f + 12582912.0f) - 12582912.0f;
    const v8 r = v - k * 0.693145751953125f - k * 1.42860682030941723212e-6f;
    const v8 p = 1.0f + r * (1.0f + r * (0.5f + r * (0.16666667f + r * (0.041666668f +
                 r * (0.0083333333f + r * 0.0013888889f)))));
    const v8i bits = (__builtin_convertvector(k, v8i) + 127) << 23;
    v8 scale;
    memcpy(&scale, &bits, sizeof(scale));
    *x = p * scale;
}

/* *x = SiLU(*x) = x / (1 + exp(-x)). */
V8_INLINE void v8_silu(v8 *x)
{
    v8 e = -*x;
    v8_exp(&e);
    *x = *x / (1.0f + e);
}

/* *x rounded to the nearest bf16 value (ties to even), as bf16.h's
 * bf16_round: NaN stays NaN. */
V8_INLINE void v8_bf16_round(v8 *x)
{
    v8w u;
    memcpy(&u, x, sizeof(u));
    const v8w nan = (v8w)((u & 0x7fffffffu) > 0x7f800000u);
    const v8w rounded = u + 0x7fffu + ((u >> 16) & 1u);
    u = ((nan & (u | 0x00400000u)) | (~nan & rounded)) & 0xffff0000u;
    memcpy(x, &u, sizeof(u));
}

/* *x = eight bf16 values at p widened to float32 (exact). */
V8_INLINE void v8_from_bf16(v8 *x, const uint16_t *p)
{
    typedef uint16_t v8h __attribute__((vector_size(16), aligned(2)));
    const v8w u = __builtin_convertvector(*(const v8h *)p, v8w) << 16;
    memcpy(x, &u, sizeof(u));
}

#endif /* DITD_VEC8_H */
