/*
 * vae.c - AutoencoderKL decoder: post_quant_conv, conv_in, the mid block
 * (ResNet, single-head attention, ResNet), the up blocks (ResNets, then a
 * nearest x2 upsample and a 3x3 conv), GroupNorm, SiLU and conv_out.
 *
 * Feature maps are HWC. Every 3x3 convolution is a Winograd convolution
 * (conv3.c) that applies what precedes it while reading its input: the
 * GroupNorm + SiLU of a ResNet (folded into a per-channel affine by
 * gnorm_fold), or the x2 upsampling; and adds the ResNet's residual while
 * writing its output. So a ResNet is: statistics, conv, statistics, conv,
 * with no pass over a map of its own. The attention's projections and the
 * 1x1 shortcuts go to ops_linear.
 */
#include "vae.h"

#include <stdlib.h>
#include <string.h>

#include "conv3.h"
#include "conv3_dnn.h"
#include "ditd.h"
#include "gnorm.h"
#include "ops.h"

#define VAE_EPS 1e-6f

/* Channels of decoder up block i (decoder order: highest channels first). */
static int up_channels(const struct vae_config *cfg, int i)
{
    return cfg->block_out[cfg->blocks - 1 - i];
}

static int top_channels(const struct vae_config *cfg)
{
    return cfg->block_out[cfg->blocks - 1];
}

/* Call fn for every 3x3 convolution of a decode of an h x w latent:
 * its map size, channels and whether it adds a residual. */
typedef int (*conv_fn)(void *arg, int H, int W, int cin, int cout, int residual);

static int each_conv(const struct vae_config *cfg, int h, int w, conv_fn fn, void *arg)
{
    int H = h, W = w, prev = top_channels(cfg), rc;

    if ((rc = fn(arg, H, W, cfg->latent_channels, prev, 0)))
        return rc;
    for (int r = 0; r < 2; r++)
        if ((rc = fn(arg, H, W, prev, prev, 0)) || (rc = fn(arg, H, W, prev, prev, 1)))
            return rc;
    for (int i = 0; i < cfg->blocks; i++) {
        const int ch = up_channels(cfg, i);
        for (int j = 0; j <= cfg->layers_per_block; j++)
            if ((rc = fn(arg, H, W, j ? ch : prev, ch, 0)) || (rc = fn(arg, H, W, ch, ch, 1)))
                return rc;
        if (i < cfg->blocks - 1) {
            H *= 2;
            W *= 2;
            if ((rc = fn(arg, H, W, ch, ch, 0)))
                return rc;
        }
        prev = ch;
    }
    return fn(arg, H, W, prev, cfg->out_channels, 0);
}

/* The largest buffers any stage needs, in floats (partial in doubles). */
struct stage_sizes {
    size_t map, conv, partial, input;
    int channels, dnn;
};

static size_t max_size(size_t a, size_t b)
{
    return a > b ? a : b;
}

static int see_conv(void *arg, int H, int W, int cin, int cout, int residual)
{
    struct stage_sizes *z = arg;
    const size_t hw = (size_t)H * W;
    (void)residual;
    z->map = max_size(z->map, hw * (size_t)(cin > cout ? cin : cout));
    if (!z->dnn)
        z->conv = max_size(z->conv, conv3_scratch_floats(H, W, cin, cout));
    z->input = max_size(z->input, hw * (size_t)cin);
    z->partial = max_size(z->partial, gnorm_partial_doubles((long)hw, cin > cout ? cin : cout));
    z->channels = z->channels > cin ? z->channels : cin;
    z->channels = z->channels > cout ? z->channels : cout;
    return 0;
}

static void stage_sizes(const struct vae_config *cfg, int h, int w, struct stage_sizes *z)
{
    memset(z, 0, sizeof(*z));
    z->dnn = cfg->dnn != NULL;
    each_conv(cfg, h, w, see_conv, z);
}

/* Native bf16: the primitives of every convolution at this size. */
struct prepare_arg {
    struct conv3_dnn_ctx *ctx;
    char err[DITD_ERR_LEN];
};

static int prepare_conv(void *arg, int H, int W, int cin, int cout, int residual)
{
    struct prepare_arg *p = arg;
    return conv3_dnn_prepare(p->ctx, cin, cout, H, W, residual, p->err, sizeof(p->err));
}

struct state_layout {
    size_t map, chan, partial, conv, attn, stage; /* floats each (partial: of its doubles) */
    int stage_threads;
};

static void state_layout(const struct vae_config *cfg, int h, int w, int threads,
                         struct state_layout *l)
{
    struct stage_sizes z;
    const size_t tokens = (size_t)h * w;

    stage_sizes(cfg, h, w, &z);
    /* Round up to 16 floats so every buffer stays 64-byte aligned. */
    l->map = (z.map + 15) & ~(size_t)15;
    l->chan = ((size_t)z.channels + 15) & ~(size_t)15;
    l->partial = (2 * z.partial + 15) & ~(size_t)15;
    l->conv = (z.conv + 15) & ~(size_t)15;
    l->attn = cfg->mid_attention ?
        (size_t)threads * ops_attention_scratch((int)tokens, (int)tokens) +
        3 * tokens * (size_t)top_channels(cfg) : 0;
    /* bf16: the staged operands of the linear layers (at most z.channels
     * inputs) and of the attention, per thread. */
    l->stage = cfg->bf16 ? (ops_bf16_stage_floats(z.channels, 0, 0, (int)tokens, (int)tokens,
                                                  top_channels(cfg)) + 15) & ~(size_t)15 : 0;
    l->stage_threads = threads;
}

size_t vae_state_bytes(const struct vae_config *cfg, int h, int w, int threads)
{
    struct state_layout l;
    state_layout(cfg, h, w, threads, &l);
    return sizeof(float) * (3 * l.map + 3 * l.chan + l.partial + l.conv + l.attn +
                            (size_t)l.stage_threads * l.stage);
}

int vae_state_init(struct vae_state *s, const struct vae_config *cfg, int h, int w, int threads)
{
    struct state_layout l;

    memset(s, 0, sizeof(*s));
    state_layout(cfg, h, w, threads, &l);
    if (posix_memalign((void **)&s->mem, 64, vae_state_bytes(cfg, h, w, threads)) != 0)
        return DITD_ENOMEM;
    if (cfg->dnn) {
        struct stage_sizes z;
        struct prepare_arg p = { 0 };
        int rc;
        stage_sizes(cfg, h, w, &z);
        if ((rc = conv3_dnn_ctx_new(&s->dnn, cfg->dnn, threads, z.input)) ||
            (p.ctx = s->dnn, rc = each_conv(cfg, h, w, prepare_conv, &p)) ||
            (rc = conv3_dnn_ctx_finish(s->dnn, p.err, sizeof(p.err)))) {
            vae_state_free(s);
            return rc;
        }
    }
    s->a = s->mem;
    s->b = s->a + l.map;
    s->c = s->b + l.map;
    s->center = s->c + l.map;
    s->scale = s->center + l.chan;
    s->shift = s->scale + l.chan;
    s->partial = (double *)(s->shift + l.chan);
    s->conv = s->shift + l.chan + l.partial;
    s->attn = s->conv + l.conv;
    s->stage = l.stage ? s->attn + l.attn : NULL;
    s->stage_floats = l.stage;
    s->h = h;
    s->w = w;
    return 0;
}

void vae_state_free(struct vae_state *s)
{
    conv3_dnn_ctx_free(s->dnn);
    free(s->mem);
    memset(s, 0, sizeof(*s));
}

/* *x = shortcut(*x) + conv2(silu(gn2(conv1(silu(gn1(*x)))))); buffers rotate.
 * Each GroupNorm + SiLU happens inside the convolution that reads it. */
static void resnet(const struct vae_config *cfg, const struct vae_resnet *r, struct vae_state *s,
                   const struct ops_ctx *c, float **x, float **t1, float **t2, int H, int W)
{
    const long HW = (long)H * W;
    struct conv3_input in = { .center = s->center, .scale = s->scale, .shift = s->shift,
                             .silu = 1 };

    gnorm_fold(c, s->center, s->scale, s->shift, *x, r->norm1_w, r->norm1_b, HW, r->cin, cfg->groups,
               VAE_EPS, s->partial);
    in.x = *x;
    conv3_run(c, *t1, NULL, &in, &r->conv1, H, W, s->conv, s->dnn);
    gnorm_fold(c, s->center, s->scale, s->shift, *t1, r->norm2_w, r->norm2_b, HW, r->cout, cfg->groups,
               VAE_EPS, s->partial);
    in.x = *t1;
    if (r->cin != r->cout) {
        ops_linear_tokens(c, *t2, r->cout, *x, r->cin, &r->shortcut, 1, (int)HW);
        conv3_run(c, *t2, *t2, &in, &r->conv2, H, W, s->conv, s->dnn);
        float *tmp = *x;
        *x = *t2;
        *t2 = tmp;
    } else {
        conv3_run(c, *x, *x, &in, &r->conv2, H, W, s->conv, s->dnn);
    }
}

/* *x += to_out(Attention(group_norm(*x))), one head over the H*W pixels. */
static void mid_attention(const struct vae_config *cfg, const struct vae_weights *w,
                          struct vae_state *s, const struct ops_ctx *c,
                          float *x, float *t1, float *t2, int HW)
{
    const int C = top_channels(cfg);
    float *q = s->attn, *k = q + (size_t)HW * C, *v = k + (size_t)HW * C;
    float *scores = v + (size_t)HW * C;

    gnorm_fold(c, s->center, s->scale, s->shift, x, w->attn_norm_w, w->attn_norm_b, HW, C, cfg->groups,
               VAE_EPS, s->partial);
    gnorm_apply(c, t1, x, s->center, s->scale, s->shift, HW, C, 0);
    ops_linear_tokens(c, q, C, t1, C, &w->q, 1, HW);
    ops_linear_tokens(c, k, C, t1, C, &w->k, 1, HW);
    ops_linear_tokens(c, v, C, t1, C, &w->v, 1, HW);
    ops_attention(c, t2, C, q, C, k, C, v, C, 1, HW, HW, 1, C, scores);
    ops_linear_tokens(c, t1, C, t2, C, &w->o, 1, HW);
    ops_add(c, x, t1, (long)HW * C);
}

int vae_decode(const struct vae_config *cfg, const struct vae_weights *w,
               struct vae_state *s, const struct ops_ctx *ctx, const float *z, float *out)
{
    const int C = cfg->latent_channels, oc = cfg->out_channels;
    float *x = s->a, *t1 = s->b, *t2 = s->c;
    int H = s->h, W = s->w;
    struct conv3_input in = { 0 };
    /* The decoder's own view of the worker's context: bf16 with its own
     * staging area, and never the DiT's oneDNN objects (made for its shapes). */
    struct ops_ctx vc = { .team = ctx->team, .bf16 = cfg->bf16, .stage = s->stage,
                          .stage_floats = s->stage_floats };
    const struct ops_ctx *c = &vc;

    /* NCHW latent -> HWC, then post_quant_conv (1x1) and conv_in. */
    for (int p = 0; p < H * W; p++)
        for (int ch = 0; ch < C; ch++)
            t2[(size_t)p * C + ch] = z[(size_t)ch * H * W + p];
    ops_linear_tokens(c, t1, C, t2, C, &w->post_quant, 1, H * W);
    in.x = t1;
    conv3_run(c, x, NULL, &in, &w->conv_in, H, W, s->conv, s->dnn);

    resnet(cfg, &w->mid_res[0], s, c, &x, &t1, &t2, H, W);
    if (cfg->mid_attention)
        mid_attention(cfg, w, s, c, x, t1, t2, H * W);
    resnet(cfg, &w->mid_res[1], s, c, &x, &t1, &t2, H, W);

    for (int i = 0; i < cfg->blocks; i++) {
        const struct vae_up_block *ub = &w->up[i];
        for (int j = 0; j <= cfg->layers_per_block; j++)
            resnet(cfg, &ub->res[j], s, c, &x, &t1, &t2, H, W);
        if (i < cfg->blocks - 1) {
            in = (struct conv3_input){ .x = x, .up2 = 1 };
            H *= 2;
            W *= 2;
            conv3_run(c, t1, NULL, &in, &ub->up, H, W, s->conv, s->dnn);
            float *tmp = x;
            x = t1;
            t1 = tmp;
        }
    }

    const int cb = cfg->block_out[0];
    gnorm_fold(c, s->center, s->scale, s->shift, x, w->norm_out_w, w->norm_out_b, (long)H * W, cb,
               cfg->groups, VAE_EPS, s->partial);
    in = (struct conv3_input){ .x = x, .center = s->center, .scale = s->scale,
                               .shift = s->shift, .silu = 1 };
    conv3_run(c, t2, NULL, &in, &w->conv_out, H, W, s->conv, s->dnn);
    /* HWC -> CHW. */
    for (int p = 0; p < H * W; p++)
        for (int ch = 0; ch < oc; ch++)
            out[(size_t)ch * H * W + p] = t2[(size_t)p * oc + ch];
    return conv3_dnn_error(s->dnn) ? DITD_EIO : 0;
}

/* One convolution's or linear layer's float32 weights swapped for bf16. */
static int conv_to_bf16(struct conv3_weights *cw,
                        uint16_t *(*convert)(void *, const float *, size_t), void *ctx)
{
    if (!cw->w)
        return 0;
    cw->w16 = convert(ctx, cw->w, conv3_weight_floats(cw->cin, cw->cout));
    cw->w = NULL;
    return cw->w16 ? 0 : DITD_ENOMEM;
}

static int linear_to_bf16(struct linear *l, uint16_t *(*convert)(void *, const float *, size_t),
                          void *ctx)
{
    if (!l->w)
        return 0;
    l->w16 = convert(ctx, l->w, (size_t)l->in * l->out);
    l->w = NULL;
    return l->w16 ? 0 : DITD_ENOMEM;
}

static int resnet_to_bf16(struct vae_resnet *r,
                          uint16_t *(*convert)(void *, const float *, size_t), void *ctx)
{
    return conv_to_bf16(&r->conv1, convert, ctx) || conv_to_bf16(&r->conv2, convert, ctx) ||
           linear_to_bf16(&r->shortcut, convert, ctx) ? DITD_ENOMEM : 0;
}

int vae_weights_to_bf16(struct vae_weights *w, const struct vae_config *cfg,
                        uint16_t *(*convert)(void *ctx, const float *f32, size_t n), void *ctx)
{
    int bad = linear_to_bf16(&w->post_quant, convert, ctx) ||
              conv_to_bf16(&w->conv_in, convert, ctx) ||
              resnet_to_bf16(&w->mid_res[0], convert, ctx) ||
              resnet_to_bf16(&w->mid_res[1], convert, ctx) ||
              linear_to_bf16(&w->q, convert, ctx) || linear_to_bf16(&w->k, convert, ctx) ||
              linear_to_bf16(&w->v, convert, ctx) || linear_to_bf16(&w->o, convert, ctx) ||
              conv_to_bf16(&w->conv_out, convert, ctx);
    for (int i = 0; i < cfg->blocks && !bad; i++) {
        for (int j = 0; j <= cfg->layers_per_block && !bad; j++)
            bad = resnet_to_bf16(&w->up[i].res[j], convert, ctx);
        bad = bad || conv_to_bf16(&w->up[i].up, convert, ctx);
    }
    return bad ? DITD_ENOMEM : 0;
}

static void count_resnet(int cin, int cout, long HW, int64_t *p, double *m)
{
    *p += 2 * cin + (int64_t)9 * cin * cout + cout + 2 * cout + (int64_t)9 * cout * cout + cout;
    *m += (double)HW * 9 * cin * cout + (double)HW * 9 * cout * cout;
    if (cin != cout) {
        *p += (int64_t)cin * cout + cout;
        *m += (double)HW * cin * cout;
    }
}

void vae_count(const struct vae_config *cfg, int latent_size, int64_t *params, double *macs)
{
    const int C = cfg->latent_channels, top = top_channels(cfg);
    long H = latent_size;
    int64_t p = 0;
    double m = 0;

    p += (int64_t)C * C + C;
    m += (double)H * H * C * C;
    p += (int64_t)9 * C * top + top;
    m += (double)H * H * 9 * C * top;
    count_resnet(top, top, H * H, &p, &m);
    count_resnet(top, top, H * H, &p, &m);
    if (cfg->mid_attention) {
        p += 2 * top + 4 * ((int64_t)top * top + top);
        m += 4.0 * H * H * top * top + 2.0 * (double)(H * H) * (double)(H * H) * top;
    }
    int prev = top;
    for (int i = 0; i < cfg->blocks; i++) {
        const int ch = up_channels(cfg, i);
        for (int j = 0; j <= cfg->layers_per_block; j++) {
            count_resnet(j == 0 ? prev : ch, ch, H * H, &p, &m);
        }
        if (i < cfg->blocks - 1) {
            H *= 2;
            p += (int64_t)9 * ch * ch + ch;
            m += (double)H * H * 9 * ch * ch;
        }
        prev = ch;
    }
    p += 2 * (int64_t)cfg->block_out[0];
    p += (int64_t)9 * cfg->block_out[0] * cfg->out_channels + cfg->out_channels;
    m += (double)H * H * 9 * cfg->block_out[0] * cfg->out_channels;
    *params = p;
    *macs = m;
}
