/*
 * ops_internal.h - what the op files (ops.c, ops_linear.c, ops_bf16.c, and
 * the VAE's conv3.c and gnorm.c) share and nothing else includes: the
 * vectorising clone attributes, the fast exp and GELU, and the GEMM tile
 * sizes.
 */
#ifndef DITD_OPS_INTERNAL_H
#define DITD_OPS_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* A function built once per instruction set and picked at load time. Only
 * static functions carry it: an exported one is a plain function that calls
 * its static clone, because clang 14 (Debian 12's) does not give an exported
 * target_clones function a symbol under its own name. */
#define VECTOR_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))

/* For the matrix-product kernels: also a * b + c fused into one FMA across
 * statements. GCC needs to be told; clang fuses within an expression by
 * default, which covers the kernels' acc += a * b, and has no optimize
 * attribute to say more. */
#ifdef __clang__
#define KERNEL_CLONES VECTOR_CLONES
#else
#define KERNEL_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default"), \
                                     optimize("fp-contract=fast")))
#endif

/* exp(x) to about one ulp, written so a loop of it vectorises (GCC only
 * if-converts the clamp under -fno-trapping-math, meson.build): range
 * reduction by round(x/ln2) with the 1.5*2^23 trick, a degree-6 Taylor
 * polynomial on |r| <= ln2/2, and the power of two built from its bits.
 * Inputs are clamped to [-87, 88], so very negative x gives ~1e-38, not 0. */
static inline float exp_approx(float x)
{
    x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
    float k = (x * 1.44269504089f + 12582912.0f) - 12582912.0f;
    float r = x - k * 0.693145751953125f - k * 1.42860682030941723212e-6f;
    float p = 1.0f + r * (1.0f + r * (0.5f + r * (0.16666667f + r * (0.041666668f +
              r * (0.0083333333f + r * 0.0013888889f)))));
    int32_t bits = ((int32_t)k + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof(scale));
    return p * scale;
}

/* GELU with the tanh approximation, using 0.5(1 + tanh(y)) = 1/(1 + e^-2y). */
static inline float gelu_tanh(float u)
{
    float y = 0.7978845608028654f * (u + 0.044715f * u * u * u);
    return u / (1.0f + exp_approx(-2.0f * y));
}

/* Linear layers: products are cut into fixed tiles that depend only on the
 * matrix shape, each tile is one single-threaded sgemm, and the team takes
 * tiles as they come. A C element is then computed by the same kernel
 * whatever the thread count, which OpenBLAS's own threading does not
 * promise; the images stay byte-identical with any number of threads.
 *
 * Tiles are 256 rows (all tokens of a 256 px XL/2 image, so each weight
 * tile is packed once per sample, not once per 128 rows) by 192 columns
 * (six tiles for D = 1152, enough to keep two threads even at batch 1).
 * Tasks go column tile by column tile: the threads share one weight tile
 * while it is in cache. On XL/2 this took batch 1 from 75-85 % to 83-92 %
 * of the sgemm rate (docs/performance.md).
 */
#define TILE_M 256
#define TILE_N 192

/* The panel kernel (ops_linear.c): panels of 48 columns, tasks of up to
 * 64 rows. Attention (ops.c): blocks of 128 queries per task. */
#define LT_COLS 48
#define LT_TASK_ROWS 64
#define ATT_ROWS 128

static inline int ops_tiles(int n, int tile)
{
    return (n + tile - 1) / tile;
}

struct ops_ctx;
struct linear;

/* bf16 helpers of ops_bf16.c for the kernels of the other op files.
 * dst (rows, cols) at stride ldd = src rounded to bf16 values (as floats). */
void ops_bf16_round_rows(float *dst, int ldd, const float *src, int lds, int rows, int cols);
/* dst[i] = src[i] widened to float32. */
void ops_bf16_widen(float *dst, const uint16_t *src, size_t n);
/* Row-wise softmax of (rows, n) scores scaled by `scale`, in place (ops.c). */
void ops_softmax_rows(float *s, int rows, int n, float scale);
/* Token rows through l->w16 (out, in): tiles of sgemm on staged operands. */
void ops_bf16_linear_tiles(const struct ops_ctx *c, float *out, int ldo, const float *in,
                           int ldi, const struct linear *l, int samples, int rows);
/* A few rows through l->w16 (out, in): fixed-order dot products. */
void ops_bf16_linear_small(const struct ops_ctx *c, float *out, const float *in,
                           const struct linear *l, int M);

#endif /* DITD_OPS_INTERNAL_H */
