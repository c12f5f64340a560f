/*
 * dit.h - the Diffusion Transformer (Peebles & Xie): configuration,
 * weights, run state and the forward pass.
 */
#ifndef DITD_DIT_H
#define DITD_DIT_H

#include <stddef.h>
#include <stdint.h>

#include "ditd.h"
#include "ops.h"

#define DIT_FREQ_DIM 256 /* size of the sinusoidal timestep embedding */

struct dnn_model;
struct dnn_ctx;

struct dit_config {
    int in_channels;       /* C */
    int out_channels;      /* C, or 2C with learned sigma */
    int input_size;        /* L, latent cells per side */
    int patch;             /* p */
    int grid;              /* G = L / p */
    int tokens;            /* T = G^2 patch tokens */
    int seq;               /* tokens the blocks see: T, or T + 2 in context */
    int hidden;            /* D */
    int depth;
    int heads;
    int head_dim;          /* D / heads */
    int mlp_hidden;        /* 4D */
    int num_classes;       /* the null class id equals it */
    enum ditd_block block;
    float t_divisor;       /* 128 original, 127 diffusers */
    float mlp_norm_eps;    /* eps of the pre-MLP LayerNorm */
    int transposed;        /* token layers hold (in, out) weights for ops_linear_t */
    int bf16;              /* dense products in bf16: weights in their w16 or dnn form */
    const struct dnn_model *dnn; /* token layers packed for oneDNN (ops_dnn.c), or NULL */
};

/* Below, "a -> b" is a linear layer from a to b features. Token layers
 * (applied to every token) may be transposed; conditioning layers (applied
 * to one vector per row) never are. */
struct dit_block_weights {
    struct linear ada;                  /* D -> 6D (adaLN: 4D), conditioning */
    struct linear qkv;                  /* D -> 3D, outputs q | k | v */
    struct linear proj;                 /* D -> D */
    struct linear fc1;                  /* D -> 4D */
    struct linear fc2;                  /* 4D -> D */
    const float *norm_w[3], *norm_b[3]; /* (D) affine norms: cross-attention, in-context */
    struct linear xq;                   /* D -> D, cross-attention query */
    struct linear xkv;                  /* D -> 2D, keys | values of the condition tokens */
    struct linear xproj;                /* D -> D */
};

struct dit_weights {
    struct linear patch;                /* C*p*p -> D, a patch vector ordered (c, ky, kx) */
    const float *pos_embed;             /* (T, D) */
    struct linear t1;                   /* 256 -> D, conditioning */
    struct linear t2;                   /* D -> D, conditioning */
    const float *y_table;               /* (num_classes + 1, D) */
    struct dit_block_weights *blocks;   /* (depth) */
    struct linear final_ada;            /* D -> 2D, conditioning */
    struct linear final;                /* D -> p*p*out_channels */
};

/* Activations for up to max_rows rows, carved from one allocation. */
struct dit_state {
    int max_rows;
    float *x;        /* (rows, seq, D) residual stream */
    float *h;        /* (rows, seq, D) sublayer input, then sublayer output */
    float *big;      /* (rows, seq, 4D) q|k|v, the MLP hidden, or final tokens */
    float *att;      /* (rows, seq, D) attention output */
    float *patches;  /* (rows, T, C*p*p) */
    float *tfreq;    /* (rows, 256) */
    float *temb;     /* (rows, D) */
    float *c;        /* (rows, D) conditioning t_emb + y_emb */
    float *silu_c;   /* (rows, D) */
    float *mod;      /* (rows, 6D) modulation vectors of the current block */
    float *cond;     /* (rows, 2, D) condition tokens [t_emb; y_emb] */
    float *kv;       /* (rows, 2, 2D) cross-attention keys|values */
    float *scratch;  /* (threads, seq * seq) attention scores */
    size_t scratch_floats;
    float *stage;    /* bf16: (threads, stage_floats) operands of the products */
    size_t stage_floats;
    struct dnn_ctx *dnn; /* cfg->dnn: the worker's oneDNN objects and buffers */
    float *mem;
};

/* Fill the derived fields (grid, tokens, seq, head_dim, mlp_hidden) and
 * check the configuration; DITD_EINVAL with a message when inconsistent. */
int dit_config_finish(struct dit_config *cfg, char *err, size_t errlen);

int dit_state_init(struct dit_state *s, const struct dit_config *cfg, int max_rows, int threads);
void dit_state_free(struct dit_state *s);
/* The first error of a forward's oneDNN calls since the state was made; 0
 * without oneDNN (the other kernels cannot fail). */
int dit_state_error(const struct dit_state *s);

/* out (n, out_channels, L, L) for x (n, C, L, L), timesteps t (n) and class
 * ids y (n); n <= max_rows. */
void dit_forward(const struct dit_config *cfg, const struct dit_weights *w,
                 struct dit_state *s, const struct ops_ctx *c,
                 const float *x, const int *t, const int *y, int n, float *out);

/* fn(arg, l, rows) for every linear layer of w that holds weights, in a
 * fixed order; rows: the rows per image of a token layer (T or seq), 0 for
 * a conditioning layer. Stops at and returns the first non-zero result. */
int dit_weights_each(const struct dit_config *c, struct dit_weights *w,
                     int (*fn)(void *arg, struct linear *l, int rows), void *arg);

/* The attention primitives of c in d (self-attention over seq tokens, and
 * over the 2 condition tokens for cross-attention blocks). */
int dit_dnn_prepare(const struct dit_config *c, struct dnn_model *d, char *err, size_t errlen);

/* Sin-cos position embedding (T, D) of the reference, computed in double. */
void dit_pos_embed(float *out, int grid, int D);

/* Random small weights for an adaLN-Zero config in one block of memory
 * (benchmarks, tests); returns the block, NULL when out of memory. */
float *dit_weights_random(const struct dit_config *c, struct dit_weights *w, uint64_t seed);
void dit_weights_free(void *mem, struct dit_weights *w);
/* dst = src with its linear layers in the form c asks for: token layers
 * packed into c->dnn when it is set, the others (all with c->dnn NULL)
 * converted to bf16 (w16, same layout) when c->bf16; the rest is shared
 * with src. dnn is c->dnn, writable. Returns the block that holds the bf16
 * weights (free with dit_weights_free(block, dst); the packed ones go with
 * dnn_model_free), NULL when out of memory or oneDNN failed. */
void *dit_weights_bf16(const struct dit_config *c, struct dnn_model *dnn,
                       const struct dit_weights *src, struct dit_weights *dst);

/* Parameters (embedders once, position embedding included) and
 * multiply-accumulates per image per forward. */
void dit_count(const struct dit_config *cfg, int64_t *params, double *macs);

#endif /* DITD_DIT_H */
