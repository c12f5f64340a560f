/*
 * ops.h - the layer operations of the DiT and the VAE decoder.
 *
 * Arguments go output first, then inputs, then weights, then dimensions.
 * Activations are row-major: DiT tokens as (rows, D), VAE feature maps as
 * (H, W, C) ("HWC"), so every linear layer is one or a few cblas_sgemm calls
 * (the VAE's 3x3 convolutions and GroupNorm are conv3.c and gnorm.c). ops_ref.c
 * holds a naive version of each op for tests, those two included.
 */
#ifndef DITD_OPS_H
#define DITD_OPS_H

#include <stddef.h>
#include <stdint.h>

struct team;

/* A linear layer y = x . W^T + b. W is stored (out, in) as PyTorch keeps it,
 * or, when `transposed`, in column panels of (in, 48) (the layout
 * ops_linear_tokens' own kernel reads, made at load for models with few
 * tokens per image). In bf16 the weights are held in exactly one form:
 * w16, the same layouts in bf16 (ops_bf16.c widens them to f32 on the way
 * to the kernel: the portable path), or dnn, packed by oneDNN for its bf16
 * matmul (the native path, ops_dnn.c); w is NULL then. */
struct dnn_linear;
struct linear {
    const float *w;     /* (out, in), or packed by ops_linear_t_pack when transposed */
    const uint16_t *w16;           /* bf16 form of w, or NULL */
    const struct dnn_linear *dnn;  /* oneDNN bf16 form, or NULL */
    const float *b;     /* (out) or NULL; float32 in every precision */
    int in, out;
    int transposed;
};

/* Shared state of the ops of one worker: its thread team. The ops spread
 * their work over the team themselves and call OpenBLAS single-threaded
 * (blas_set_threads(1)), so results do not depend on the thread count.
 * For bf16 products each team thread also has a staging area (stage_floats
 * floats at stage + thread * stage_floats) where a task widens the bf16
 * weights it needs and rounds its activations to bf16 before multiplying;
 * `bf16` makes ops_attention round its operands too. dit_forward fills
 * these for its own calls. */
struct dnn_ctx;
/* How the panel kernel (ops_linear.c) sums a block: as this CPU's vector
 * registers suit (0), or one form on purpose (tests compare the two). */
enum ops_lt_form { OPS_LT_AUTO, OPS_LT_WHOLE, OPS_LT_PIECES };

struct ops_ctx {
    struct team *team;
    int bf16;
    float *stage;
    size_t stage_floats;
    struct dnn_ctx *dnn;  /* per-thread oneDNN objects of the native path, or NULL */
    enum ops_lt_form lt_form;
};

/* out (M, N) = in (M, K) . w^T + b, with w (N, K) as PyTorch stores Linear
 * weights; b may be NULL. ldo/ldi are row strides (>= N / >= K). */
void ops_linear(const struct ops_ctx *c, float *out, int ldo, const float *in, int ldi,
                const float *w, const float *b, int M, int K, int N);

/* out (samples * rows, l->out) = in . W^T + b for the token rows of
 * several images, each image's result independent of the others and of the
 * thread count:
 *  - (out, in) weights: one set of BLAS tiles per image. OpenBLAS picks
 *    kernels with different rounding for different matrix heights, and some
 *    of its kernels (Haswell, Zen) round a row differently at different
 *    positions of the same call, so images never share a call;
 *  - transposed weights: our own kernel, which adds the products of every
 *    output in one fixed order, so all rows are done together. */
void ops_linear_tokens(const struct ops_ctx *c, float *out, int ldo, const float *in, int ldi,
                       const struct linear *l, int samples, int rows);

/* out (M, l->out) = in (M, l->in) . W^T + b for a few rows (conditioning
 * vectors). W (out, in): each output is one dot product in a fixed order,
 * so a row's result does not depend on M or on the thread count; W is read
 * once for all rows. Transposed W goes to ops_linear_t, which promises the
 * same. */
void ops_linear_small(const struct ops_ctx *c, float *out, const float *in,
                      const struct linear *l, int M);

/* out (samples * rows, l->out) = GELU(in . W^T + b), rows contiguous. */
void ops_linear_tokens_gelu(const struct ops_ctx *c, float *out, const float *in, int ldi,
                            const struct linear *l, int samples, int rows);

/* x (samples * rows, l->out) += gate * (in . W^T + b), one gate vector per
 * sample, gate_stride apart (gate NULL: plain residual add). tmp holds
 * (samples * rows, l->out) floats for weights that are not transposed; the
 * transposed kernel adds its results straight into x. */
void ops_linear_tokens_residual(const struct ops_ctx *c, float *x, float *tmp,
                                const float *in, int ldi, const struct linear *l,
                                const float *gate, int gate_stride, int samples, int rows);

/* out (M, N) = in (M, K) . W^T + b with W packed by ops_linear_t_pack, N a
 * multiple of 16: the kernel behind transposed token layers. Every output
 * is b[n] plus the products added in k order, whatever M, the row or the
 * thread. */
void ops_linear_t(const struct ops_ctx *c, float *out, int ldo, const float *in, int ldi,
                  const float *wt, const float *b, int M, int K, int N);
/* wt (K * N floats) = w (N, K) re-laid out for ops_linear_t. */
void ops_linear_t_pack(float *wt, const float *w, int K, int N);

void ops_silu(const struct ops_ctx *c, float *out, const float *in, long n);
void ops_gelu_tanh(const struct ops_ctx *c, float *x, long n);

/* LayerNorm without affine parameters over D, then, when shift is not NULL,
 * modulate: out = ln(x)*(1+scale) + shift, with one (shift, scale) pair per
 * sample of `tokens` rows; mod_stride is the distance between samples' vectors. */
void ops_layernorm_modulate(const struct ops_ctx *c, float *out, const float *in,
                            const float *shift, const float *scale, int mod_stride,
                            int samples, int tokens, int D, float eps);
/* LayerNorm with weight and bias (D). */
void ops_layernorm_affine(const struct ops_ctx *c, float *out, const float *in,
                          const float *w, const float *b, int rows, int D, float eps);

/* x += gate * h per sample (gate NULL: x += h); gate_stride between samples. */
void ops_gated_add(const struct ops_ctx *c, float *x, const float *h,
                   const float *gate, int gate_stride, int samples, int tokens, int D);

/* Multi-head attention for `samples` independent sequences:
 * out[s] (Tq, heads*hd) = softmax(q k^T / sqrt(hd)) v, per head, where
 * head h owns columns h*hd .. (h+1)*hd-1 of q, k and v. ld* are row strides;
 * sample s starts at row s*Tq of q/out and s*Tk of k/v. scratch holds
 * ops_attention_scratch() floats per team thread. */
void ops_attention(const struct ops_ctx *c, float *out, int ldo,
                   const float *q, int ldq, const float *k, int ldk,
                   const float *v, int ldv, int samples, int Tq, int Tk, int heads, int hd,
                   float *scratch);
size_t ops_attention_scratch(int Tq, int Tk);

/* ---------------------------------------------------------------------------
 * bf16 (ops_bf16.c). Products take bf16 operands (activations rounded to
 * nearest even at the product's input) and add in float32; everything else
 * stays float32.
 */
/* dst[i] = bf16(src[i]), rounded to nearest even. */
void ops_bf16_from_f32(uint16_t *dst, const float *src, size_t n);
/* Staging floats per team thread for bf16 products of a DiT: inputs of up
 * to max_k features, conditioning products of up to small_rows x small_k,
 * attention over Tq x Tk with head size hd. */
size_t ops_bf16_stage_floats(int max_k, int small_rows, int small_k, int Tq, int Tk, int hd);

/* Naive references (ops_ref.c) of the bf16 products: in rounded to bf16,
 * w (N, K) bf16 as PyTorch's layout, b + the products added in k order in
 * float32; the attention with q, k, v and the softmax output rounded. */
void ops_ref_linear_bf16(float *out, int ldo, const float *in, int ldi,
                         const uint16_t *w, const float *b, int M, int K, int N);
void ops_ref_attention_bf16(float *out, int ldo, const float *q, int ldq, const float *k,
                            int ldk, const float *v, int ldv, int samples, int Tq, int Tk,
                            int heads, int hd);

/* x += y over n elements. */
void ops_add(const struct ops_ctx *c, float *x, const float *y, long n);

/* Naive references (ops_ref.c), same contracts, single-threaded, for tests. */
void ops_ref_linear(float *out, int ldo, const float *in, int ldi,
                    const float *w, const float *b, int M, int K, int N);
void ops_ref_silu(float *out, const float *in, long n);
void ops_ref_gelu_tanh(float *x, long n);
void ops_ref_layernorm_modulate(float *out, const float *in, const float *shift,
                                const float *scale, int mod_stride, int samples,
                                int tokens, int D, float eps);
void ops_ref_attention(float *out, int ldo, const float *q, int ldq, const float *k, int ldk,
                       const float *v, int ldv, int samples, int Tq, int Tk, int heads, int hd);
void ops_ref_groupnorm(float *out, const float *in, const float *gamma, const float *beta,
                       long HW, int C, int groups, float eps, int silu);
/* w is PyTorch's (Cout, Cin, 3, 3). */
void ops_ref_conv3x3(float *out, const float *in, const float *w, const float *b,
                     int H, int W, int Cin, int Cout);

#endif /* DITD_OPS_H */
