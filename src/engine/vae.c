/*
 * vae.c - AutoencoderKL decoder: post_quant_conv, conv_in, the mid block
 * (ResNet, single-head attention, ResNet), the up blocks (ResNets, then a
 * nearest x2 upsample and a 3x3 conv), GroupNorm, SiLU and conv_out.
 * Feature maps are HWC so convolutions are GEMMs (ops_conv3x3).
 */
#include "vae.h"

#include <stdlib.h>
#include <string.h>

#include "ditd.h"
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

struct stage_sizes {
    size_t map;  /* largest H*W*C of a feature map */
    size_t pad;  /* largest padded conv input */
    size_t wide; /* largest padded-width conv output */
};

static void see_conv(struct stage_sizes *z, int H, int cin, int cout)
{
    size_t pad = ops_conv3x3_pad_floats(H, H, cin);
    size_t wide = ops_conv3x3_wide_floats(H, H, cout);
    size_t map = (size_t)H * H * (size_t)(cin > cout ? cin : cout);
    z->pad = pad > z->pad ? pad : z->pad;
    z->wide = wide > z->wide ? wide : z->wide;
    z->map = map > z->map ? map : z->map;
}

/* Walk the decoder's convolutions for one latent of size L. */
static void stage_sizes(const struct vae_config *cfg, int L, struct stage_sizes *z)
{
    int H = L, prev = top_channels(cfg);

    memset(z, 0, sizeof(*z));
    see_conv(z, H, cfg->latent_channels, prev);
    see_conv(z, H, prev, prev);
    for (int i = 0; i < cfg->blocks; i++) {
        const int ch = up_channels(cfg, i);
        see_conv(z, H, prev, ch);
        see_conv(z, H, ch, ch);
        if (i < cfg->blocks - 1) {
            H *= 2;
            see_conv(z, H, ch, ch);
        }
        prev = ch;
    }
    see_conv(z, H, prev, cfg->out_channels);
}

int vae_state_init(struct vae_state *s, const struct vae_config *cfg, int latent_size, int threads)
{
    struct stage_sizes z;
    const size_t tokens = (size_t)latent_size * latent_size;
    const size_t attn = cfg->mid_attention ?
        (size_t)threads * ops_attention_scratch((int)tokens, (int)tokens) +
        3 * tokens * (size_t)top_channels(cfg) : 0;

    memset(s, 0, sizeof(*s));
    stage_sizes(cfg, latent_size, &z);
    /* Round up to 16 floats so every buffer stays 64-byte aligned. */
    const size_t map = (z.map + 15) & ~(size_t)15;
    const size_t pad = (z.pad + 15) & ~(size_t)15;
    const size_t wide = (z.wide + 15) & ~(size_t)15;
    if (posix_memalign((void **)&s->mem, 64, sizeof(float) * (3 * map + pad + wide + attn)) != 0)
        return DITD_ENOMEM;
    s->a = s->mem;
    s->b = s->a + map;
    s->c = s->b + map;
    s->pad = s->c + map;
    s->wide = s->pad + pad;
    s->attn = s->wide + wide;
    s->latent_size = latent_size;
    return 0;
}

void vae_state_free(struct vae_state *s)
{
    free(s->mem);
    memset(s, 0, sizeof(*s));
}

/* *x = shortcut(*x) + conv2(silu(gn2(conv1(silu(gn1(*x)))))); buffers rotate. */
static void resnet(const struct vae_config *cfg, const struct vae_resnet *r, struct vae_state *s,
                   const struct ops_ctx *c, float **x, float **t1, float **t2, int H)
{
    const long HW = (long)H * H;
    ops_groupnorm(c, *t1, *x, r->norm1_w, r->norm1_b, HW, r->cin, cfg->groups, VAE_EPS, 1);
    ops_conv3x3(c, *t2, *t1, r->conv1_w, r->conv1_b, H, H, r->cin, r->cout, s->pad, s->wide);
    ops_groupnorm(c, *t1, *t2, r->norm2_w, r->norm2_b, HW, r->cout, cfg->groups, VAE_EPS, 1);
    ops_conv3x3(c, *t2, *t1, r->conv2_w, r->conv2_b, H, H, r->cout, r->cout, s->pad, s->wide);
    if (r->short_w) {
        ops_linear(c, *t1, r->cout, *x, r->cin, r->short_w, r->short_b, (int)HW, r->cin, r->cout);
        ops_add(c, *t1, *t2, HW * r->cout);
        float *tmp = *x;
        *x = *t1;
        *t1 = tmp;
    } else {
        ops_add(c, *x, *t2, HW * r->cout);
    }
}

/* *x += to_out(Attention(group_norm(*x))), one head over the H*W pixels. */
static void mid_attention(const struct vae_config *cfg, const struct vae_weights *w,
                          struct vae_state *s, const struct ops_ctx *c,
                          float *x, float *t1, float *t2, int H)
{
    const int C = top_channels(cfg), HW = H * H;
    float *q = s->attn, *k = q + (size_t)HW * C, *v = k + (size_t)HW * C;
    float *scores = v + (size_t)HW * C;

    ops_groupnorm(c, t1, x, w->attn_norm_w, w->attn_norm_b, HW, C, cfg->groups, VAE_EPS, 0);
    ops_linear(c, q, C, t1, C, w->q_w, w->q_b, HW, C, C);
    ops_linear(c, k, C, t1, C, w->k_w, w->k_b, HW, C, C);
    ops_linear(c, v, C, t1, C, w->v_w, w->v_b, HW, C, C);
    ops_attention(c, t2, C, q, C, k, C, v, C, 1, HW, HW, 1, C, scores);
    ops_linear(c, t1, C, t2, C, w->o_w, w->o_b, HW, C, C);
    ops_add(c, x, t1, (long)HW * C);
}

void vae_decode(const struct vae_config *cfg, const struct vae_weights *w,
                struct vae_state *s, const struct ops_ctx *c, const float *z, float *out)
{
    const int C = cfg->latent_channels, L = s->latent_size;
    float *x = s->a, *t1 = s->b, *t2 = s->c;
    int H = L;

    /* NCHW latent -> HWC, then post_quant_conv (1x1) and conv_in. */
    for (int p = 0; p < L * L; p++)
        for (int ch = 0; ch < C; ch++)
            t2[(size_t)p * C + ch] = z[(size_t)ch * L * L + p];
    ops_linear(c, t1, C, t2, C, w->post_quant_w, w->post_quant_b, L * L, C, C);
    ops_conv3x3(c, x, t1, w->conv_in_w, w->conv_in_b, H, H, C, top_channels(cfg), s->pad, s->wide);

    resnet(cfg, &w->mid_res[0], s, c, &x, &t1, &t2, H);
    if (cfg->mid_attention)
        mid_attention(cfg, w, s, c, x, t1, t2, H);
    resnet(cfg, &w->mid_res[1], s, c, &x, &t1, &t2, H);

    for (int i = 0; i < cfg->blocks; i++) {
        const struct vae_up_block *ub = &w->up[i];
        for (int j = 0; j <= cfg->layers_per_block; j++)
            resnet(cfg, &ub->res[j], s, c, &x, &t1, &t2, H);
        if (ub->up_w) {
            const int ch = up_channels(cfg, i);
            ops_upsample2(t1, x, H, H, ch);
            H *= 2;
            ops_conv3x3(c, x, t1, ub->up_w, ub->up_b, H, H, ch, ch, s->pad, s->wide);
        }
    }

    const int cb = cfg->block_out[0];
    ops_groupnorm(c, t1, x, w->norm_out_w, w->norm_out_b, (long)H * H, cb, cfg->groups, VAE_EPS, 1);
    ops_conv3x3(c, t2, t1, w->conv_out_w, w->conv_out_b, H, H, cb, cfg->out_channels,
                s->pad, s->wide);
    /* HWC -> CHW. */
    for (int p = 0; p < H * H; p++)
        for (int ch = 0; ch < cfg->out_channels; ch++)
            out[(size_t)ch * H * H + p] = t2[(size_t)p * cfg->out_channels + ch];
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
