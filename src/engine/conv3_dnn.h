/*
 * conv3_dnn.h - the VAE's 3x3 convolutions through oneDNN (conv3_dnn.c):
 * the native bf16 path, for CPUs with AVX512-BF16 or AMX.
 *
 * At load each convolution's weights are reordered once into the layout
 * oneDNN's convolution asks for (format_tag_any), in the data type of the
 * path; the float32 weights are let go. A decode state then holds the
 * primitives for its map sizes and, per team thread, a stream, memory
 * objects and a scratchpad: a convolution allocates nothing. A convolution
 * converts its input once (applying the GroupNorm affine + SiLU or the x2
 * upsampling on the way, rounding to bf16), then each team task runs one
 * primitive, single-threaded, on a fixed band of output rows; the band
 * heights depend only on the map size, so the bytes never depend on the
 * thread count. The bias is the primitive's; the residual add its sum
 * post-op.
 *
 * The same code runs in float32 (DNN_F32, ops_dnn.h): no CPU here has bf16,
 * so the tests exercise the packing, the bands and the post-ops in float32
 * on every machine, and in bf16 where the CPU has it. Without oneDNN every
 * function fails with DITD_EINVAL.
 */
#ifndef DITD_CONV3_DNN_H
#define DITD_CONV3_DNN_H

#include <stddef.h>

#include "conv3.h"
#include "ops_dnn.h"

struct conv3_dnn_model; /* per model: data type, the packed weights' layouts */
struct conv3_dnn_ctx;   /* per decode state: primitives, per-thread objects, buffers */

int conv3_dnn_model_new(struct conv3_dnn_model **out, enum dnn_type type, char *err,
                        size_t errlen);
void conv3_dnn_model_free(struct conv3_dnn_model *d);
/* "brg:avx512_core_amx_bf16" and the like: what oneDNN picked. */
const char *conv3_dnn_impl(const struct conv3_dnn_model *d);

/* Reorder w, PyTorch's (cout, cin, 3, 3) float32, for a convolution that
 * runs on H x W maps in the model's own decode; sets wt->dnn (wt->w and
 * wt->w16 stay as they are: the caller lets them go). */
int conv3_dnn_pack(struct conv3_dnn_model *d, struct conv3_weights *wt, const float *w,
                   int H, int W, char *err, size_t errlen);

/* A state's context for `threads` team threads; then one prepare per
 * convolution shape the state runs (residual: with the sum post-op).
 * max_input: elements of the largest converted input (H * W * Cin). */
int conv3_dnn_ctx_new(struct conv3_dnn_ctx **out, const struct conv3_dnn_model *d,
                      int threads, size_t max_input);
int conv3_dnn_prepare(struct conv3_dnn_ctx *c, int cin, int cout, int H, int W, int residual,
                      char *err, size_t errlen);
/* After the last prepare: the per-thread objects and scratchpads. */
int conv3_dnn_ctx_finish(struct conv3_dnn_ctx *c, char *err, size_t errlen);
void conv3_dnn_ctx_free(struct conv3_dnn_ctx *c);
/* The first error a convolution met since the context was made (0: none). */
int conv3_dnn_error(const struct conv3_dnn_ctx *c);

/* conv3_run's contract, through oneDNN (wt->dnn set, the shape prepared).
 * residual is NULL or out itself. */
void conv3_dnn_run(const struct ops_ctx *c, struct conv3_dnn_ctx *x, float *out,
                   const float *residual, const struct conv3_input *in,
                   const struct conv3_weights *wt, int H, int W);

#endif /* DITD_CONV3_DNN_H */
