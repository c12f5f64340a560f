/*
 * conv3.h - the 3x3 convolutions (stride 1, zero padding 1) of the VAE
 * decoder on HWC maps, fp32.
 *
 * Maps of more than a few 4x4 tiles go through Winograd's minimal filtering
 * F(4x4, 3x3): a quarter of the multiplications of the direct method. Small
 * maps (a preview's or a tiny latent's) go through the direct method, since
 * there the transform of the filters would cost more than it saves. The
 * layer before the convolution (GroupNorm's affine + SiLU, or nearest x2
 * upsampling) is applied while the input is read, and the residual add
 * while the output is written: neither needs a pass over the map of its own.
 *
 * Determinism: the work is cut into tiles, chunks and blocks that depend
 * only on (H, W, Cin, Cout), and every output is summed in the same order
 * whatever the thread that computes it: the bytes do not depend on the
 * thread count.
 *
 * ops_ref_conv3x3 (ops_ref.c) is the naive reference the tests compare with.
 */
#ifndef DITD_CONV3_H
#define DITD_CONV3_H

#include <stddef.h>
#include <stdint.h>

struct ops_ctx;
struct conv3_dnn_weights; /* conv3_dnn.c */
struct conv3_dnn_ctx;

/* What the convolution reads: map x, transformed per channel on the fly. */
struct conv3_input {
    const float *x;     /* (H, W, Cin), or (H/2, W/2, Cin) with up2 */
    const float *center; /* (Cin) per-channel affine (x - center) * scale + shift */
    const float *scale;  /*   before the convolution (GroupNorm folded), or all */
    const float *shift;  /*   three NULL */
    int silu;           /* then SiLU */
    int up2;            /* x is upsampled x2 (nearest) first; H and W even */
};

/* Weights are kept in panels of 16 output channels, the rows the product
 * kernel reads: (9, P, Cin, 16) with P = ceil(Cout / 16), tap ky*3+kx,
 * zero in the lanes past Cout. conv3_weight_floats() floats; pack from
 * PyTorch's (Cout, Cin, 3, 3). */
#define CONV3_PANEL 16
size_t conv3_weight_floats(int Cin, int Cout);
void conv3_pack_weights(float *w9, const float *w, int Cin, int Cout);

/* One convolution's weights: float32 panels, the same panels in bf16, or
 * oneDNN's packed form (native bf16, conv3_dnn.h). With bf16 weights the
 * convolution computes in bf16 numerics: the values it reads (after the
 * affine / SiLU / upsampling) are rounded to bf16 too, and the products are
 * added in float32 (docs/engine.md, "Precision"). */
struct conv3_weights {
    const float *w;       /* (9, P, Cin, 16) float32, or NULL */
    const uint16_t *w16;  /* the same in bf16, or NULL */
    const struct conv3_dnn_weights *dnn; /* or NULL */
    const float *b;       /* (Cout), float32 in every precision */
    int cin, cout;
};

/* out (H, W, Cout) = conv3x3(input) + bias [+ residual]. residual is
 * (H, W, Cout) or NULL; it may be out itself (an in-place residual add),
 * but out must not overlap the input map. scratch holds
 * conv3_scratch_floats(H, W, Cin, Cout) floats, 64-byte aligned; dnn is the
 * state's oneDNN context when wt->dnn is set (NULL otherwise). */
void conv3_run(const struct ops_ctx *c, float *out, const float *residual,
               const struct conv3_input *in, const struct conv3_weights *wt,
               int H, int W, float *scratch, struct conv3_dnn_ctx *dnn);
size_t conv3_scratch_floats(int H, int W, int Cin, int Cout);

/* Row y of the convolution's input (upsampled, affine, SiLU as `in` says),
 * W * Cin values HWC at dst: float32, float32 rounded to bf16 values, or
 * bf16 (uint16). */
enum conv3_row { CONV3_F32, CONV3_ROUNDED, CONV3_BF16 };
void conv3_input_row(const struct conv3_input *in, int W, int Cin, int y, enum conv3_row mode,
                     void *dst);

/* Whether conv3_run takes the Winograd path for this shape (for tests). */
int conv3_winograd(int H, int W, int Cin, int Cout);

#endif /* DITD_CONV3_H */
