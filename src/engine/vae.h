/*
 * vae.h - the decoder of Stable Diffusion's AutoencoderKL: latent to image.
 */
#ifndef DITD_VAE_H
#define DITD_VAE_H

#include <stddef.h>
#include <stdint.h>

struct ops_ctx;

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
};

/* A ResNet block without time embedding. 3x3 convolution weights ("w9") are
 * stored in the panels conv3.h describes, packed at load. */
struct vae_resnet {
    int cin, cout;
    const float *norm1_w, *norm1_b;   /* (cin) */
    const float *conv1_w, *conv1_b;   /* w9 (cin -> cout), (cout) */
    const float *norm2_w, *norm2_b;   /* (cout) */
    const float *conv2_w, *conv2_b;   /* (9, cout, cout), (cout) */
    const float *short_w, *short_b;   /* (cout, cin), (cout); NULL when cin == cout */
};

struct vae_up_block {
    struct vae_resnet res[VAE_MAX_LAYERS + 1];
    const float *up_w, *up_b;         /* w9 (c -> c), (c); NULL for the last block */
};

struct vae_weights {
    const float *post_quant_w, *post_quant_b; /* (C, C), (C) */
    const float *conv_in_w, *conv_in_b;       /* w9 (C -> top), (top) */
    struct vae_resnet mid_res[2];
    const float *attn_norm_w, *attn_norm_b;   /* (top) */
    const float *q_w, *q_b, *k_w, *k_b, *v_w, *v_b, *o_w, *o_b; /* (top, top), (top) */
    struct vae_up_block up[VAE_MAX_BLOCKS];   /* decoder order: highest channels first */
    const float *norm_out_w, *norm_out_b;     /* (bottom) */
    const float *conv_out_w, *conv_out_b;     /* w9 (bottom -> out), (out) */
};

/* Buffers for decoding one image of an h x w latent. */
struct vae_state {
    int h, w;           /* latent size */
    float *a, *b, *c;   /* (H*W*C) each, for the largest stage */
    float *scale, *shift; /* (Cmax) GroupNorm folded into a per-channel affine */
    double *partial;    /* GroupNorm partial sums */
    float *conv;        /* Winograd scratch of the largest convolution */
    float *attn;        /* q|k|v (3, h*w, top), then attention scores per thread */
    float *mem;
};

/* Buffers for one h x w latent decoded by `threads` threads. */
int vae_state_init(struct vae_state *s, const struct vae_config *cfg, int h, int w, int threads);
void vae_state_free(struct vae_state *s);
/* Bytes vae_state_init() allocates for an h x w latent. */
size_t vae_state_bytes(const struct vae_config *cfg, int h, int w, int threads);

/* z (C, h, w) latent already divided by the scaling factor, h x w the
 * state's size -> out (out_channels, h*f, w*f), f = 2^(blocks-1). One image;
 * the bytes do not depend on the thread count. */
void vae_decode(const struct vae_config *cfg, const struct vae_weights *w,
                struct vae_state *s, const struct ops_ctx *c, const float *z, float *out);

/* Decoder parameters and multiply-accumulates for one latent of size L. */
void vae_count(const struct vae_config *cfg, int latent_size, int64_t *params, double *macs);

#endif /* DITD_VAE_H */
