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

/* A ResNet block without time embedding. Convolutions are stored re-laid
 * out for ops_conv3x3: (9, Cout, Cin). */
struct vae_resnet {
    int cin, cout;
    const float *norm1_w, *norm1_b;   /* (cin) */
    const float *conv1_w, *conv1_b;   /* (9, cout, cin), (cout) */
    const float *norm2_w, *norm2_b;   /* (cout) */
    const float *conv2_w, *conv2_b;   /* (9, cout, cout), (cout) */
    const float *short_w, *short_b;   /* (cout, cin), (cout); NULL when cin == cout */
};

struct vae_up_block {
    struct vae_resnet res[VAE_MAX_LAYERS + 1];
    const float *up_w, *up_b;         /* (9, c, c), (c); NULL for the last block */
};

struct vae_weights {
    const float *post_quant_w, *post_quant_b; /* (C, C), (C) */
    const float *conv_in_w, *conv_in_b;       /* (9, top, C), (top) */
    struct vae_resnet mid_res[2];
    const float *attn_norm_w, *attn_norm_b;   /* (top) */
    const float *q_w, *q_b, *k_w, *k_b, *v_w, *v_b, *o_w, *o_b; /* (top, top), (top) */
    struct vae_up_block up[VAE_MAX_BLOCKS];   /* decoder order: highest channels first */
    const float *norm_out_w, *norm_out_b;     /* (bottom) */
    const float *conv_out_w, *conv_out_b;     /* (9, out, bottom), (out) */
};

/* Buffers for decoding one image of latent size L. */
struct vae_state {
    int latent_size;
    float *a, *b, *c;   /* (H*W*Cmax) each, for the largest stage */
    float *pad, *wide;  /* conv3x3 scratch */
    float *attn;        /* q|k|v (3, L*L, top), then attention scores per thread */
    float *mem;
};

/* Buffers for one image of latent size L decoded by `threads` threads. */
int vae_state_init(struct vae_state *s, const struct vae_config *cfg, int latent_size, int threads);
void vae_state_free(struct vae_state *s);

/* z (C, L, L) latent already divided by the scaling factor ->
 * out (out_channels, H, W), H = W = L * 2^(blocks-1). One image. */
void vae_decode(const struct vae_config *cfg, const struct vae_weights *w,
                struct vae_state *s, const struct ops_ctx *c, const float *z, float *out);

/* Decoder parameters and multiply-accumulates for one latent of size L. */
void vae_count(const struct vae_config *cfg, int latent_size, int64_t *params, double *macs);

#endif /* DITD_VAE_H */
