/*
 * dit.c - the DiT forward pass, written to read like the paper: embed the
 * patches, the timestep and the class, run the blocks, apply the final
 * adaLN layer, and put the patches back together. Each row of a batch has
 * its own timestep and class, so images at different steps share a pass.
 */
#include "dit.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"
#include "ops_dnn.h"
#include "team.h"

int dit_config_finish(struct dit_config *cfg, char *err, size_t errlen)
{
    if (cfg->in_channels < 1 || cfg->input_size < 1 || cfg->patch < 1 || cfg->hidden < 1 ||
        cfg->depth < 1 || cfg->heads < 1 || cfg->num_classes < 1) {
        snprintf(err, errlen, "transformer config: sizes must be positive "
                 "(in_channels %d, sample_size %d, patch_size %d, hidden %d, num_layers %d, "
                 "heads %d, num_embeds_ada_norm %d)", cfg->in_channels, cfg->input_size,
                 cfg->patch, cfg->hidden, cfg->depth, cfg->heads, cfg->num_classes);
        return DITD_EINVAL;
    }
    if (cfg->input_size > 512 || cfg->hidden > 16384 || cfg->depth > 256 ||
        cfg->in_channels > 64 || cfg->num_classes > 1000000) {
        snprintf(err, errlen, "transformer config: sizes beyond what ditd supports "
                 "(sample_size <= 512, hidden <= 16384, num_layers <= 256, in_channels <= 64)");
        return DITD_EINVAL;
    }
    if (cfg->input_size % cfg->patch != 0) {
        snprintf(err, errlen, "transformer config: sample_size %d is not a multiple of "
                 "patch_size %d", cfg->input_size, cfg->patch);
        return DITD_EINVAL;
    }
    if (cfg->hidden % cfg->heads != 0) {
        snprintf(err, errlen, "transformer config: hidden size %d is not a multiple of "
                 "%d heads", cfg->hidden, cfg->heads);
        return DITD_EINVAL;
    }
    if (cfg->out_channels != cfg->in_channels && cfg->out_channels != 2 * cfg->in_channels) {
        snprintf(err, errlen, "transformer config: out_channels %d must be in_channels (%d) "
                 "or twice it (learned sigma)", cfg->out_channels, cfg->in_channels);
        return DITD_EINVAL;
    }
    if (cfg->hidden % 4 != 0) {
        snprintf(err, errlen, "transformer config: hidden size %d must be a multiple of 4 "
                 "for the 2-D sin-cos position embedding", cfg->hidden);
        return DITD_EINVAL;
    }
    cfg->grid = cfg->input_size / cfg->patch;
    cfg->tokens = cfg->grid * cfg->grid;
    cfg->seq = cfg->tokens + (cfg->block == DITD_BLOCK_IN_CONTEXT ? 2 : 0);
    cfg->head_dim = cfg->hidden / cfg->heads;
    cfg->mlp_hidden = 4 * cfg->hidden;
    /* With few tokens per image, BLAS spends as long packing the weights
     * (again for every image) as multiplying; the transposed-weight kernel
     * then wins (measured 120 vs 75 GFLOP/s at 16 tokens, and behind from
     * 64 on). It needs output widths that are multiples of 16. */
    const int po = cfg->patch * cfg->patch * cfg->out_channels;
    cfg->transposed = cfg->seq < 48 && cfg->hidden % 16 == 0 && po % 16 == 0;
    return 0;
}

int dit_state_init(struct dit_state *s, const struct dit_config *cfg, int max_rows, int threads)
{
    const size_t R = (size_t)max_rows, S = (size_t)cfg->seq, D = (size_t)cfg->hidden;
    const size_t T = (size_t)cfg->tokens;
    const size_t pp = (size_t)cfg->patch * (size_t)cfg->patch;
    size_t big = S * (size_t)cfg->mlp_hidden;
    if (big < T * pp * (size_t)cfg->out_channels)
        big = T * pp * (size_t)cfg->out_channels;
    /* bf16 staging: the widest input the panel kernel rounds (only models
     * with panels use it), conditioning products of up to 2 rows per row
     * (cross-attention's condition tokens), attention over the sequence. */
    const int in_patch = cfg->in_channels * cfg->patch * cfg->patch;
    int max_k = cfg->mlp_hidden > in_patch ? cfg->mlp_hidden : in_patch;
    const int small_k = cfg->hidden > DIT_FREQ_DIM ? cfg->hidden : DIT_FREQ_DIM;
    const size_t stage = !cfg->bf16 ? 0 :
        ops_bf16_stage_floats(cfg->transposed ? max_k : 0, 2 * max_rows, small_k,
                              cfg->seq, cfg->seq, cfg->head_dim);
    const size_t sizes[] = {
        R * S * D,                        /* x */
        R * S * D,                        /* h */
        R * big,                          /* big */
        R * S * D,                        /* att */
        R * T * pp * (size_t)cfg->in_channels, /* patches */
        R * DIT_FREQ_DIM,                 /* tfreq */
        R * D, R * D, R * D,              /* temb, c, silu_c */
        R * 6 * D,                        /* mod */
        R * 2 * D,                        /* cond */
        R * 4 * D,                        /* kv */
        (size_t)threads * ops_attention_scratch((int)S, (int)S),
        (size_t)threads * stage,
    };
    float **slots[] = {
        &s->x, &s->h, &s->big, &s->att, &s->patches, &s->tfreq, &s->temb, &s->c,
        &s->silu_c, &s->mod, &s->cond, &s->kv, &s->scratch, &s->stage,
    };
    size_t total = 0;
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
        total += (sizes[i] + 15) & ~(size_t)15; /* keep every buffer 64-byte aligned */

    memset(s, 0, sizeof(*s));
    if (posix_memalign((void **)&s->mem, 64, total * sizeof(float)) != 0)
        return DITD_ENOMEM;
    float *p = s->mem;
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        *slots[i] = p;
        p += (sizes[i] + 15) & ~(size_t)15;
    }
    s->scratch_floats = ops_attention_scratch((int)S, (int)S);
    s->stage_floats = stage;
    s->max_rows = max_rows;
    if (cfg->dnn && dnn_ctx_new(&s->dnn, cfg->dnn, max_rows, cfg->seq, threads) != 0) {
        dit_state_free(s);
        return DITD_ENOMEM;
    }
    return 0;
}

void dit_state_free(struct dit_state *s)
{
    dnn_ctx_free(s->dnn);
    free(s->mem);
    memset(s, 0, sizeof(*s));
}

int dit_state_error(const struct dit_state *s)
{
    return dnn_ctx_error(s->dnn);
}

void dit_pos_embed(float *out, int grid, int D)
{
    const int quarter = D / 4;
    for (int i = 0; i < grid; i++) {
        for (int j = 0; j < grid; j++) {
            float *row = out + ((size_t)i * grid + j) * D;
            for (int k = 0; k < quarter; k++) {
                double omega = 1.0 / pow(10000.0, (double)k / (double)quarter);
                /* First half: column index; second half: row index. */
                double a = (double)(float)j * omega, b = (double)(float)i * omega;
                row[k] = (float)sin(a);
                row[quarter + k] = (float)cos(a);
                row[2 * quarter + k] = (float)sin(b);
                row[3 * quarter + k] = (float)cos(b);
            }
        }
    }
}

/* x (n, C, L, L) -> patches (n, T, C*p*p), each vector ordered (c, ky, kx). */
static void patchify(float *patches, const float *x, int n, const struct dit_config *cfg)
{
    const int C = cfg->in_channels, L = cfg->input_size, p = cfg->patch, G = cfg->grid;
    for (int s = 0; s < n; s++)
        for (int i = 0; i < G; i++)
            for (int j = 0; j < G; j++) {
                float *v = patches + (((size_t)s * G + i) * G + j) * (size_t)(C * p * p);
                for (int c = 0; c < C; c++)
                    for (int ky = 0; ky < p; ky++)
                        for (int kx = 0; kx < p; kx++)
                            *v++ = x[(((size_t)s * C + c) * L + i * p + ky) * L + j * p + kx];
            }
}

/* tokens (n, T, p*p*Cout) with vectors ordered (py, px, c) -> out (n, Cout, L, L). */
static void unpatchify(float *out, const float *tokens, int n, const struct dit_config *cfg)
{
    const int Co = cfg->out_channels, L = cfg->input_size, p = cfg->patch, G = cfg->grid;
    for (int s = 0; s < n; s++)
        for (int i = 0; i < G; i++)
            for (int j = 0; j < G; j++) {
                const float *v = tokens + (((size_t)s * G + i) * G + j) * (size_t)(p * p * Co);
                for (int py = 0; py < p; py++)
                    for (int px = 0; px < p; px++)
                        for (int c = 0; c < Co; c++)
                            out[(((size_t)s * Co + c) * L + i * p + py) * L + j * p + px] =
                                v[(py * p + px) * Co + c];
            }
}

/* Sinusoidal embedding [cos | sin] of the integer timesteps, float32 math
 * as in the reference. */
static void timestep_freqs(float *out, const int *t, int n, float divisor)
{
    const int half = DIT_FREQ_DIM / 2;
    const float neg_log = (float)-log(10000.0);
    for (int s = 0; s < n; s++) {
        float *e = out + (size_t)s * DIT_FREQ_DIM;
        for (int k = 0; k < half; k++) {
            float freq = expf((float)k * neg_log / divisor);
            float arg = (float)t[s] * freq;
            e[k] = cosf(arg);
            e[half + k] = sinf(arg);
        }
    }
}

/* c = MLP(freq(t)) + E[y]; also the two condition tokens [t_emb; y_emb]. */
static void embed_condition(const struct dit_config *cfg, const struct dit_weights *w,
                            struct dit_state *s, const struct ops_ctx *c,
                            const int *t, const int *y, int n)
{
    const int D = cfg->hidden;
    timestep_freqs(s->tfreq, t, n, cfg->t_divisor);
    ops_linear_small(c, s->c, s->tfreq, &w->t1, n);
    ops_silu(c, s->c, s->c, (long)n * D);
    ops_linear_small(c, s->temb, s->c, &w->t2, n);
    for (int r = 0; r < n; r++) {
        const float *ye = w->y_table + (size_t)y[r] * D;
        float *cr = s->c + (size_t)r * D;
        for (int i = 0; i < D; i++)
            cr[i] = s->temb[(size_t)r * D + i] + ye[i];
        memcpy(s->cond + (size_t)r * 2 * D, s->temb + (size_t)r * D, sizeof(float) * (size_t)D);
        memcpy(s->cond + ((size_t)r * 2 + 1) * D, ye, sizeof(float) * (size_t)D);
    }
    ops_silu(c, s->silu_c, s->c, (long)n * D);
}

/* x += gate * proj(MultiHeadSelfAttention(h)) over each row's seq tokens
 * (gate NULL: a plain residual add). */
static void self_attention(const struct dit_config *cfg, const struct dit_block_weights *b,
                           struct dit_state *s, const struct ops_ctx *c, int n,
                           const float *gate, int gate_stride)
{
    const int D = cfg->hidden, S = cfg->seq;
    float *qkv = s->big; /* (n * S, 3D) */

    ops_linear_tokens(c, qkv, 3 * D, s->h, D, &b->qkv, n, S);
    ops_attention(c, s->att, D, qkv, 3 * D, qkv + D, 3 * D, qkv + 2 * D, 3 * D,
                  n, S, S, cfg->heads, cfg->head_dim, s->scratch);
    ops_linear_tokens_residual(c, s->x, s->h, s->att, D, &b->proj, gate, gate_stride, n, S);
}

/* x += gate * MLP(h), the MLP being fc1, tanh GELU, fc2. */
static void mlp(const struct dit_config *cfg, const struct dit_block_weights *b,
                struct dit_state *s, const struct ops_ctx *c, int n,
                const float *gate, int gate_stride)
{
    const int D = cfg->hidden, F = cfg->mlp_hidden, S = cfg->seq;
    ops_linear_tokens_gelu(c, s->big, s->h, D, &b->fc1, n, S);
    ops_linear_tokens_residual(c, s->x, s->h, s->big, F, &b->fc2, gate, gate_stride, n, S);
}

/* The reference block: x += g1*Attn(mod(LN(x))); x += g2*MLP(mod(LN(x))). */
static void block_adaln(const struct dit_config *cfg, const struct dit_block_weights *b,
                        struct dit_state *s, const struct ops_ctx *c, int n, int gated)
{
    const int D = cfg->hidden, S = cfg->seq;
    const int chunks = gated ? 6 : 4;
    const int ms = chunks * D; /* stride between rows' modulation vectors */
    float *shift_msa = s->mod, *scale_msa = s->mod + D;
    float *gate_msa = gated ? s->mod + 2 * D : NULL;
    float *shift_mlp = s->mod + (gated ? 3 : 2) * D, *scale_mlp = shift_mlp + D;
    float *gate_mlp = gated ? s->mod + 5 * D : NULL;

    ops_linear_small(c, s->mod, s->silu_c, &b->ada, n);

    ops_layernorm_modulate(c, s->h, s->x, shift_msa, scale_msa, ms, n, S, D, 1e-6f);
    self_attention(cfg, b, s, c, n, gate_msa, ms);

    ops_layernorm_modulate(c, s->h, s->x, shift_mlp, scale_mlp, ms, n, S, D, cfg->mlp_norm_eps);
    mlp(cfg, b, s, c, n, gate_mlp, ms);
}

/* Pre-norm blocks with affine LayerNorms, no modulation:
 *   in context:       x += Attn(norm1(x)); x += MLP(norm2(x))
 *   cross-attention:  x += Attn(norm1(x)); x += XAttn(norm2(x), [t_emb; y_emb]);
 *                     x += MLP(norm3(x)) */
static void block_prenorm(const struct dit_config *cfg, const struct dit_block_weights *b,
                          struct dit_state *s, const struct ops_ctx *c, int n)
{
    const int D = cfg->hidden, S = cfg->seq, M = n * S;
    const int cross = cfg->block == DITD_BLOCK_CROSS_ATTENTION;

    ops_layernorm_affine(c, s->h, s->x, b->norm_w[0], b->norm_b[0], M, D, 1e-6f);
    self_attention(cfg, b, s, c, n, NULL, 0);

    if (cross) {
        ops_layernorm_affine(c, s->h, s->x, b->norm_w[1], b->norm_b[1], M, D, 1e-6f);
        ops_linear_tokens(c, s->big, D, s->h, D, &b->xq, n, S);
        ops_linear_small(c, s->kv, s->cond, &b->xkv, 2 * n);
        ops_attention(c, s->att, D, s->big, D, s->kv, 2 * D, s->kv + D, 2 * D,
                      n, S, 2, cfg->heads, cfg->head_dim, s->scratch);
        ops_linear_tokens_residual(c, s->x, s->h, s->att, D, &b->xproj, NULL, 0, n, S);
    }

    const int last = cross ? 2 : 1;
    ops_layernorm_affine(c, s->h, s->x, b->norm_w[last], b->norm_b[last], M, D, cfg->mlp_norm_eps);
    mlp(cfg, b, s, c, n, NULL, 0);
}

void dit_forward(const struct dit_config *cfg, const struct dit_weights *w,
                 struct dit_state *s, const struct ops_ctx *ctx,
                 const float *x, const int *t, const int *y, int n, float *out)
{
    const int D = cfg->hidden, T = cfg->tokens, S = cfg->seq;
    const int lead = S - T; /* condition tokens in front (in-context only) */
    struct ops_ctx bf16_ctx = *ctx;
    const struct ops_ctx *c = ctx;

    if (cfg->bf16 || s->dnn) {
        bf16_ctx.bf16 = cfg->bf16;
        bf16_ctx.stage = s->stage;
        bf16_ctx.stage_floats = s->stage_floats;
        bf16_ctx.dnn = s->dnn;
        c = &bf16_ctx;
    }

    embed_condition(cfg, w, s, c, t, y, n);

    /* Patch embedding plus the fixed position embedding; in context, the
     * two condition tokens go in front. */
    patchify(s->patches, x, n, cfg);
    ops_linear_tokens(c, s->h, D, s->patches, w->patch.in, &w->patch, n, T);
    for (int r = 0; r < n; r++) {
        float *xr = s->x + (size_t)r * S * D;
        if (lead)
            memcpy(xr, s->cond + (size_t)r * 2 * D, sizeof(float) * 2 * (size_t)D);
        memcpy(xr + (size_t)lead * D, s->h + (size_t)r * T * D, sizeof(float) * (size_t)T * D);
        ops_add(c, xr + (size_t)lead * D, w->pos_embed, (long)T * D);
    }

    for (int l = 0; l < cfg->depth; l++) {
        const struct dit_block_weights *b = &w->blocks[l];
        switch (cfg->block) {
        case DITD_BLOCK_ADALN_ZERO:
            block_adaln(cfg, b, s, c, n, 1);
            break;
        case DITD_BLOCK_ADALN:
            block_adaln(cfg, b, s, c, n, 0);
            break;
        case DITD_BLOCK_CROSS_ATTENTION:
        case DITD_BLOCK_IN_CONTEXT:
            block_prenorm(cfg, b, s, c, n);
            break;
        }
    }

    /* Final layer: LN, modulate by (shift, scale) from c, linear. */
    if (lead) {
        for (int r = 0; r < n; r++)
            memmove(s->x + (size_t)r * T * D, s->x + ((size_t)r * S + lead) * D,
                    sizeof(float) * (size_t)T * D);
    }
    ops_linear_small(c, s->mod, s->silu_c, &w->final_ada, n);
    ops_layernorm_modulate(c, s->h, s->x, s->mod, s->mod + D, 2 * D, n, T, D, 1e-6f);
    ops_linear_tokens(c, s->big, w->final.out, s->h, D, &w->final, n, T);
    unpatchify(out, s->big, n, cfg);
}

int dit_weights_each(const struct dit_config *c, struct dit_weights *w,
                     int (*fn)(void *arg, struct linear *l, int rows), void *arg)
{
    const int T = c->tokens, S = c->seq;
    struct linear *top[] = { &w->patch, &w->final, &w->final_ada, &w->t1, &w->t2 };
    const int top_rows[] = { T, T, 0, 0, 0 };
    int rc = 0;
    for (size_t i = 0; i < sizeof(top) / sizeof(top[0]) && !rc; i++)
        if (top[i]->w || top[i]->w16 || top[i]->dnn)
            rc = fn(arg, top[i], top_rows[i]);
    for (int l = 0; l < c->depth && !rc; l++) {
        struct dit_block_weights *k = &w->blocks[l];
        struct linear *layers[] = { &k->ada, &k->qkv, &k->proj, &k->fc1, &k->fc2,
                                    &k->xq, &k->xkv, &k->xproj };
        const int rows[] = { 0, S, S, S, S, S, 0, S };
        for (size_t i = 0; i < sizeof(layers) / sizeof(layers[0]) && !rc; i++)
            if (layers[i]->w || layers[i]->w16 || layers[i]->dnn)
                rc = fn(arg, layers[i], rows[i]);
    }
    return rc;
}

int dit_dnn_prepare(const struct dit_config *c, struct dnn_model *d, char *err, size_t errlen)
{
    const int S = c->seq, hd = c->head_dim, D = c->hidden;
    int rc = dnn_prepare_attention(d, S, S, hd, D, err, errlen);
    if (rc == 0 && c->block == DITD_BLOCK_CROSS_ATTENTION)
        rc = dnn_prepare_attention(d, S, 2, hd, D, err, errlen);
    return rc;
}

void dit_count(const struct dit_config *cfg, int64_t *params, double *macs)
{
    const int64_t D = cfg->hidden, T = cfg->tokens, S = cfg->seq, F = cfg->mlp_hidden;
    const int64_t P = (int64_t)cfg->in_channels * cfg->patch * cfg->patch;
    const int64_t Po = (int64_t)cfg->patch * cfg->patch * cfg->out_channels;
    int64_t p = 0;
    double m = 0;

    p += D * P + D + T * D;                               /* patches, position */
    m += (double)T * P * D;
    p += DIT_FREQ_DIM * D + D + D * D + D;                /* timestep MLP */
    m += (double)DIT_FREQ_DIM * D + (double)D * D;
    p += (int64_t)(cfg->num_classes + 1) * D;             /* class table */

    int64_t pb = 3 * D * D + 3 * D + D * D + D + F * D + F + F * D + D;
    double mb = 4.0 * S * D * D + 2.0 * S * S * D + 2.0 * S * F * D;
    switch (cfg->block) {
    case DITD_BLOCK_ADALN_ZERO:
        pb += 6 * D * D + 6 * D;
        mb += 6.0 * D * D;
        break;
    case DITD_BLOCK_ADALN:
        pb += 4 * D * D + 4 * D;
        mb += 4.0 * D * D;
        break;
    case DITD_BLOCK_CROSS_ATTENTION:
        pb += 3 * 2 * D + (D * D + D) + (2 * D * D + 2 * D) + (D * D + D);
        mb += 2.0 * S * D * D + 4.0 * D * D + 4.0 * S * D;
        break;
    case DITD_BLOCK_IN_CONTEXT:
        pb += 2 * 2 * D;
        break;
    }
    p += cfg->depth * pb;
    m += cfg->depth * mb;

    p += 2 * D * D + 2 * D + Po * D + Po;                 /* final layer */
    m += 2.0 * D * D + (double)T * D * Po;
    *params = p;
    *macs = m;
}
