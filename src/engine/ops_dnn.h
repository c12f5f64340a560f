/*
 * ops_dnn.h - the native bf16 products (ops_dnn.c): oneDNN's matmul with
 * bf16 operands and float32 results, for CPUs with AVX512-BF16 or AMX.
 *
 * A model's token layers are packed at load, column tile by column tile, in
 * the layout oneDNN's bf16 matmul asks for (format_tag_any); a product is
 * then one primitive call per (image, column tile) with the image's fixed
 * row count, executed single-threaded from a team thread. The shapes of
 * the calls depend only on the model, never on the batch or the thread
 * count, so an image's bits do not either. Attention's QK^T and PV are one
 * call each per (image, head, block of queries).
 *
 * The same code runs in float32 (DNN_F32): no CPU here has bf16, so the
 * tests exercise the packing, the tiling and the calls in float32 on every
 * machine, and in bf16 where the CPU has it (tests/unit/test_dnn.c).
 * Without oneDNN every function fails with DITD_EINVAL (and isa.c never
 * chooses this path).
 */
#ifndef DITD_OPS_DNN_H
#define DITD_OPS_DNN_H

#include <stddef.h>
#include <stdint.h>

#include "ops.h"

enum dnn_type { DNN_BF16, DNN_F32 };

struct dnn_model; /* primitives and packed weights of one model; read-only once built */
struct dnn_ctx;   /* one worker's: a stream, memory objects and buffers per team thread */

int dnn_model_new(struct dnn_model **out, enum dnn_type type, char *err, size_t errlen);
void dnn_model_free(struct dnn_model *d);
/* Pack the float32 (out, in) weights of l for products of `rows` rows per
 * image and set l->dnn (l->w stays: the caller drops it). 0 or DITD_E*
 * with err saying why (e.g. no implementation of this shape here). */
int dnn_pack_linear(struct dnn_model *d, struct linear *l, int rows, char *err, size_t errlen);
/* The primitives of attention over Tq queries and Tk keys per image, heads
 * of size hd, heads * hd = width. */
int dnn_prepare_attention(struct dnn_model *d, int Tq, int Tk, int hd, int width,
                          char *err, size_t errlen);
/* The implementation oneDNN picked for the model's products, e.g.
 * "brg:avx512_core_amx_bf16". */
const char *dnn_model_impl(const struct dnn_model *d);

/* Buffers for up to max_rows images of at most seq rows, on `threads` team
 * threads (all allocated here; the products allocate nothing). */
int dnn_ctx_new(struct dnn_ctx **out, const struct dnn_model *d, int max_rows, int seq,
                int threads);
void dnn_ctx_free(struct dnn_ctx *c);
/* The first error a product met since the context was made (0: none). */
int dnn_ctx_error(const struct dnn_ctx *c);

/* Token rows through l->dnn: out (samples * rows, l->out) at stride ldo
 * receives in . W^T + b, GELU of it, or (residual) x += gate * it, as the
 * ops_linear_tokens* functions. */
enum dnn_epilogue { DNN_STORE, DNN_GELU, DNN_RESIDUAL };
void ops_dnn_linear(const struct ops_ctx *c, float *out, int ldo, const float *in, int ldi,
                    const struct linear *l, int samples, int rows, enum dnn_epilogue epilogue,
                    const float *gate, int gate_stride);
/* ops_attention through oneDNN (c->dnn set); same contract. */
void ops_dnn_attention(const struct ops_ctx *c, float *out, int ldo, const float *q, int ldq,
                       const float *k, int ldk, const float *v, int ldv, int samples, int Tq,
                       int Tk, int heads, int hd, float *scratch);

/* Milliseconds of `depth` rounds of the four block products of a DiT (qkv,
 * proj, fc1, fc2: hidden D, MLP F) on M rows at once, oneDNN's bf16 matmul
 * with its own `threads` threads: what the library reaches on the forward's
 * shapes. Negative DITD_E* on failure. */
double dnn_bench_gemms(int M, int D, int F, int depth, int threads);

#endif /* DITD_OPS_DNN_H */
