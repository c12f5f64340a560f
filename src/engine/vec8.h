/*
 * vec8.h - eight floats as one GCC vector, for the VAE kernels (wino.c,
 * gnorm.c): loads and stores of a partial vector at channel tails, a lane
 * select, exp and SiLU. Everything is static inline and is meant to be
 * inlined into functions cloned per instruction set (target_clones), where
 * it becomes AVX2 / AVX-512 code, or SSE pairs on the default clone.
 */
#ifndef DITD_VEC8_H
#define DITD_VEC8_H

#include <stdint.h>
#include <string.h>

#define VEC8_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#define VEC8 8

typedef float v8 __attribute__((vector_size(32)));
typedef float v8u __attribute__((vector_size(32), aligned(4)));
typedef int32_t v8i __attribute__((vector_size(32)));
typedef uint32_t v8w __attribute__((vector_size(32)));

/* Vectors are only passed between inlined functions inside the clones: the
 * ABI of passing them to a real call never arises. That holds only if every
 * helper here is inlined even at -O0: a real call from an AVX clone to a
 * helper compiled for the default target passes a v8 in registers on one
 * side and in memory on the other (the debug build crashed in conv3.c). */
#pragma GCC diagnostic ignored "-Wpsabi"
#define V8_INLINE static inline __attribute__((always_inline))

/* The first n (1..8) floats at p; the other lanes zero. */
V8_INLINE v8 v8_load(const float *p, int n)
{
    if (n == VEC8)
        return *(const v8u *)p;
    v8 v = { 0 };
    for (int k = 0; k < n; k++)
        v[k] = p[k];
    return v;
}

V8_INLINE void v8_store(float *p, v8 v, int n)
{
    if (n == VEC8) {
        *(v8u *)p = v;
        return;
    }
    for (int k = 0; k < n; k++)
        p[k] = v[k];
}

/* m ? a : b per lane, m from a vector comparison (all ones or zero). */
V8_INLINE v8 v8_select(v8i m, v8 a, v8 b)
{
    v8i ai, bi;
    memcpy(&ai, &a, sizeof(ai));
    memcpy(&bi, &b, sizeof(bi));
    ai = (ai & m) | (bi & ~m);
    memcpy(&a, &ai, sizeof(a));
    return a;
}

/* exp(x) to about one ulp, the same steps as ops.c's exp_approx: x clamped
 * to [-87, 88], round(x/ln2) by the 1.5*2^23 trick, a degree-6 polynomial
 * on the remainder, the power of two built from its bits. */
V8_INLINE v8 v8_exp(v8 x)
{
    const v8 lo = { -87, -87, -87, -87, -87, -87, -87, -87 };
    const v8 hi = { 88, 88, 88, 88, 88, 88, 88, 88 };
    x = v8_select(x < lo, lo, x);
    x = v8_select(x > hi, hi, x);
    v8 k = (x * 1.44269504089f + 12582912.0f) - 12582912.0f;
    v8 r = x - k * 0.693145751953125f - k * 1.42860682030941723212e-6f;
    v8 p = 1.0f + r * (1.0f + r * (0.5f + r * (0.16666667f + r * (0.041666668f +
           r * (0.0083333333f + r * 0.0013888889f)))));
    v8i bits = (__builtin_convertvector(k, v8i) + 127) << 23;
    v8 scale;
    memcpy(&scale, &bits, sizeof(scale));
    return p * scale;
}

/* x rounded to the nearest bf16 value (ties to even), as bf16.h's
 * bf16_round: NaN stays NaN. */
V8_INLINE v8 v8_bf16_round(v8 x)
{
    v8w u;
    memcpy(&u, &x, sizeof(u));
    const v8w nan = (v8w)((u & 0x7fffffffu) > 0x7f800000u);
    const v8w rounded = u + 0x7fffu + ((u >> 16) & 1u);
    u = ((nan & (u | 0x00400000u)) | (~nan & rounded)) & 0xffff0000u;
    memcpy(&x, &u, sizeof(x));
    return x;
}

/* Eight bf16 values widened to float32 (exact). */
V8_INLINE v8 v8_from_bf16(const uint16_t *p)
{
    typedef uint16_t v8h __attribute__((vector_size(16), aligned(2)));
    const v8w u = __builtin_convertvector(*(const v8h *)p, v8w) << 16;
    v8 x;
    memcpy(&x, &u, sizeof(x));
    return x;
}

V8_INLINE v8 v8_silu(v8 x)
{
    return x / (1.0f + v8_exp(-x));
}

#endif /* DITD_VEC8_H */
