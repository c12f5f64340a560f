/*
 * vae.h - the decoder of Stable Diffusion's AutoencoderKL: latent to image.
 */
#ifndef DITD_VAE_H
#define DITD_VAE_H

#include <stddef.h>
#include <stdint.h>

#include "conv3.h"
#include "ops.h"

#define VAE_MAX_BLOCKS 8
#define VAE_MAX_LAYERS 8

struct vae_config {
    int latent_channels;              /* C */
    int out_channels;                 /* image channels, 3 for RGB */
    int blocks;                       /* up blocks = entries of block_out_channels */
    int block_out[VAE_MAX_BLOCKS];    /* as in the config: lowest resolution LAST */
    int layers_per_block;             /* decoder up blocks have this + 1 ResNets */
    int groups;                       /* GroupNorm groups */
    int mid_attention;                /* 1 when the mid block has attention */
    float scaling_factor;
    int bf16;                         /* products in bf16 numerics (the model's precision) */
    struct conv3_dnn_model *dnn;      /* native bf16: convolutions packed for oneDNN, or NULL */
};

/* The weights of 3x3 convolutions (struct conv3_weights) are packed at load
 * in the panels conv3.h describes, in float32 or, for bf16, in bf16. The
 * 1x1 convolutions and the attention's projections are linear layers with
 * (out, in) weights, float32 (w) or bf16 (w16). Norms and biases are float32. */
struct vae_resnet {
    int cin, cout;
    const float *norm1_w, *norm1_b;   /* (cin) */
    struct conv3_weights conv1;       /* cin -> cout */
    const float *norm2_w, *norm2_b;   /* (cout) */
    struct conv3_weights conv2;       /* cout -> cout */
    struct linear shortcut;           /* cin -> cout when cin != cout */
};

struct vae_up_block {
    struct vae_resnet res[VAE_MAX_LAYERS + 1];
    struct conv3_weights up;          /* c -> c after the x2 upsampling; not the last block */
};

struct vae_weights {
    struct linear post_quant;                 /* C -> C */
    struct conv3_weights conv_in;             /* C -> top */
    struct vae_resnet mid_res[2];
    const float *attn_norm_w, *attn_norm_b;   /* (top) */
    struct linear q, k, v, o;                 /* top -> top */
    struct vae_up_block up[VAE_MAX_BLOCKS];   /* decoder order: highest channels first */
    const float *norm_out_w, *norm_out_b;     /* (bottom) */
    struct conv3_weights conv_out;            /* bottom -> out */
};

/* Convert the float32 weights of w to bf16 in place of them (cfg->bf16):
 * each tensor goes through convert(ctx, f32, n) -> bf16 copy, which also
 * lets the float32 one go. 0 or DITD_ENOMEM. */
int vae_weights_to_bf16(struct vae_weights *w, const struct vae_config *cfg,
                        uint16_t *(*convert)(void *ctx, const float *f32, size_t n), void *ctx);

/* Buffers for decoding one image of an h x w latent. */
struct vae_state {
    int h, w;           /* latent size */
    float *a, *b, *c;   /* (H*W*C) each, for the largest stage */
    float *center, *scale, *shift; /* (Cmax) GroupNorm folded into a per-channel affine */
    double *partial;    /* GroupNorm partial sums */
    float *conv;        /* Winograd scratch of the largest convolution */
    float *attn;        /* q|k|v (3, h*w, top), then attention scores per thread */
    float *stage;       /* bf16: (threads, stage_floats) staged operands of the products */
    size_t stage_floats;
    struct conv3_dnn_ctx *dnn; /* cfg->dnn: primitives for this size, per-thread objects */
    float *mem;
};

/* Buffers for one h x w latent decoded by `threads` threads (and, with
 * cfg->dnn, oneDNN's primitives for that size). 0, DITD_ENOMEM, or
 * DITD_EINVAL when oneDNN cannot convolve at that size. */
int vae_state_init(struct vae_state *s, const struct vae_config *cfg, int h, int w, int threads);
void vae_state_free(struct vae_state *s);
/* Bytes vae_state_init() allocates for an h x w latent. */
size_t vae_state_bytes(const struct vae_config *cfg, int h, int w, int threads);

/* z (C, h, w) latent already divided by the scaling factor, h x w the
 * state's size -> out (out_channels, h*f, w*f), f = 2^(blocks-1). One image;
 * the bytes do not depend on the thread count. 0, or DITD_EIO when a oneDNN
 * call failed. */
int vae_decode(const struct vae_config *cfg, const struct vae_weights *w,
               struct vae_state *s, const struct ops_ctx *c, const float *z, float *out);

/* Random float32 weights for cfg (bench_vae.c), for benchmarks and tests:
 * PyTorch-like scales; the 3x3 convolutions packed for oneDNN when
 * cfg->dnn is set (for maps of the sizes of an L x L latent's decode), else
 * into panels. Returns the block w points into (free() it), or NULL. The
 * same seed draws the same values whatever cfg->dnn. */
float *vae_weights_random(const struct vae_config *cfg, struct vae_weights *w, int L,
                          uint64_t seed);

/* Decoder parameters and multiply-accumulates for one latent of size L. */
void vae_count(const struct vae_config *cfg, int latent_size, int64_t *params, double *macs);

#endif /* DITD_VAE_H */
