/*
 * weights.c - point the DiT and VAE weight structs at the tensors of the
 * safetensors files, whatever the key layout, checking every shape.
 *
 * F32 tensors are used in place from the read-only mapping. F16/BF16
 * tensors, F32 tensors at unaligned offsets, and 3x3 convolution weights
 * (re-laid out for the VAE's convolutions) are copied once; the mapped pages
 * of a copied tensor are then released so resident memory stays near the size
 * of the weights in use.
 */
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conv3.h"
#include "conv3_dnn.h"
#include "model.h"
#include "ops_dnn.h"

struct binder {
    struct ditd_model *m;
    struct st_file *f;
    const char *file;   /* for messages */
    const char *prefix; /* prepended to every name */
    char *err;
    size_t errlen;
    int rc;             /* first error, 0 while all is well */
};

static void binder_fail(struct binder *b, int rc, const char *fmt, ...)
{
    va_list ap;
    if (b->rc)
        return;
    b->rc = rc;
    va_start(ap, fmt);
    vsnprintf(b->err, b->errlen, fmt, ap);
    va_end(ap);
}

static void shape_str(char *out, size_t n, const int64_t *shape, int ndim)
{
    size_t used = (size_t)snprintf(out, n, "[");
    for (int i = 0; i < ndim && used < n; i++)
        used += (size_t)snprintf(out + used, n - used, "%s%lld", i ? ", " : "",
                                 (long long)shape[i]);
    if (used < n)
        snprintf(out + used, n - used, "]");
}

static const struct st_tensor *lookup(struct binder *b, const char *name)
{
    char full[256];
    snprintf(full, sizeof(full), "%s%s", b->prefix, name);
    return st_find(b->f, full);
}

/* A tensor of the expected shape as float32, or NULL (error recorded). */
static const float *bind(struct binder *b, const char *name, int ndim, const int64_t *shape)
{
    char want[96], got[96];
    const struct st_tensor *t;

    if (b->rc)
        return NULL;
    t = lookup(b, name);
    shape_str(want, sizeof(want), shape, ndim);
    if (!t) {
        binder_fail(b, DITD_ENOENT, "%s: tensor %s%s (expected shape %s) is missing; "
                    "is this the right model directory, and a complete file?",
                    b->file, b->prefix, name, want);
        return NULL;
    }
    shape_str(got, sizeof(got), t->shape, t->ndim);
    bool same = t->ndim == ndim;
    for (int i = 0; same && i < ndim; i++)
        same = t->shape[i] == shape[i];
    if (!same) {
        binder_fail(b, DITD_EINVAL, "%s: tensor %s%s has shape %s, the config implies %s; "
                    "check that config.json belongs to these weights",
                    b->file, b->prefix, name, got, want);
        return NULL;
    }
    if (t->dtype != ST_F32 && t->dtype != ST_F16 && t->dtype != ST_BF16) {
        binder_fail(b, DITD_EINVAL, "%s: tensor %s%s has dtype %s; ditd reads F32, F16 "
                    "and BF16 weights", b->file, b->prefix, name, st_dtype_name(t->dtype));
        return NULL;
    }

    const float *data;
    if (t->dtype == ST_F32 && ((uintptr_t)t->data & 3) == 0) {
        data = (const float *)(const void *)t->data;
    } else {
        float *copy = malloc(sizeof(float) * (size_t)(t->numel ? t->numel : 1));
        if (!copy || model_own(b->m, copy) != 0) {
            binder_fail(b, DITD_ENOMEM, "out of memory converting tensor %s%s", b->prefix, name);
            return NULL;
        }
        st_to_f32(t, copy);
        st_release(b->f, t);
        data = copy;
    }
    for (int64_t i = 0; i < t->numel; i++) {
        if (!isfinite(data[i])) {
            binder_fail(b, DITD_EINVAL, "%s: tensor %s%s holds a non-finite value at element "
                        "%lld; the weights are damaged", b->file, b->prefix, name, (long long)i);
            return NULL;
        }
    }
    return data;
}

static const float *bind1(struct binder *b, const char *name, int64_t d0)
{
    const int64_t s[] = { d0 };
    return bind(b, name, 1, s);
}

static const float *bind2(struct binder *b, const char *name, int64_t d0, int64_t d1)
{
    const int64_t s[] = { d0, d1 };
    return bind(b, name, 2, s);
}

static const float *bind4(struct binder *b, const char *name, int64_t d0, int64_t d1,
                          int64_t d2, int64_t d3)
{
    const int64_t s[] = { d0, d1, d2, d3 };
    return bind(b, name, 4, s);
}

/* A linear layer from tensors "<name>.weight" (out, in) and "<name>.bias". */
static struct linear bind_linear(struct binder *b, const char *name, int out, int in)
{
    char w[160], bias[160];
    snprintf(w, sizeof(w), "%s.weight", name);
    snprintf(bias, sizeof(bias), "%s.bias", name);
    struct linear l = { .in = in, .out = out };
    l.w = bind2(b, w, out, in);
    l.b = bind1(b, bias, out);
    return l;
}

static const char *fmt(char *buf, size_t n, const char *f, ...)
{
    va_list ap;
    va_start(ap, f);
    vsnprintf(buf, n, f, ap);
    va_end(ap);
    return buf;
}

/* ---------------------------------------------------------------------------
 * DiT, original (facebookresearch) layout.
 */
static void bind_dit_original(struct binder *b, const struct dit_config *c, struct dit_weights *w)
{
    const int D = c->hidden, F = c->mlp_hidden, p = c->patch;
    const int P = c->in_channels * p * p, Po = p * p * c->out_channels;
    char n[128];

    w->patch = (struct linear){ .in = P, .out = D };
    w->patch.w = bind4(b, "x_embedder.proj.weight", D, c->in_channels, p, p);
    w->patch.b = bind1(b, "x_embedder.proj.bias", D);
    if (lookup(b, "pos_embed")) {
        const int64_t s[] = { 1, c->tokens, D };
        w->pos_embed = bind(b, "pos_embed", 3, s);
    }
    w->t1 = bind_linear(b, "t_embedder.mlp.0", D, DIT_FREQ_DIM);
    w->t2 = bind_linear(b, "t_embedder.mlp.2", D, D);
    w->y_table = bind2(b, "y_embedder.embedding_table.weight", c->num_classes + 1, D);

    for (int l = 0; l < c->depth && !b->rc; l++) {
        struct dit_block_weights *k = &w->blocks[l];
        k->qkv = bind_linear(b, fmt(n, sizeof(n), "blocks.%d.attn.qkv", l), 3 * D, D);
        k->proj = bind_linear(b, fmt(n, sizeof(n), "blocks.%d.attn.proj", l), D, D);
        k->fc1 = bind_linear(b, fmt(n, sizeof(n), "blocks.%d.mlp.fc1", l), F, D);
        k->fc2 = bind_linear(b, fmt(n, sizeof(n), "blocks.%d.mlp.fc2", l), D, F);
        if (c->block == DITD_BLOCK_ADALN_ZERO || c->block == DITD_BLOCK_ADALN) {
            const int chunks = c->block == DITD_BLOCK_ADALN_ZERO ? 6 : 4;
            k->ada = bind_linear(b, fmt(n, sizeof(n), "blocks.%d.adaLN_modulation.1", l),
                                 chunks * D, D);
            continue;
        }
        const int norms = c->block == DITD_BLOCK_CROSS_ATTENTION ? 3 : 2;
        for (int i = 0; i < norms; i++) {
            k->norm_w[i] = bind1(b, fmt(n, sizeof(n), "blocks.%d.norm%d.weight", l, i + 1), D);
            k->norm_b[i] = bind1(b, fmt(n, sizeof(n), "blocks.%d.norm%d.bias", l, i + 1), D);
        }
        if (c->block == DITD_BLOCK_CROSS_ATTENTION) {
            k->xq = bind_linear(b, fmt(n, sizeof(n), "blocks.%d.cross_attn.q", l), D, D);
            k->xkv = bind_linear(b, fmt(n, sizeof(n), "blocks.%d.cross_attn.kv", l), 2 * D, D);
            k->xproj = bind_linear(b, fmt(n, sizeof(n), "blocks.%d.cross_attn.proj", l), D, D);
        }
    }
    w->final_ada = bind_linear(b, "final_layer.adaLN_modulation.1", 2 * D, D);
    w->final = bind_linear(b, "final_layer.linear", Po, D);
}

/* ---------------------------------------------------------------------------
 * DiT, diffusers layout: the embedders are read from block 0 only.
 */
/* The diffusers layout stores q, k and v apart; one (3D, D) copy lets the
 * forward pass make one product, and the mapped originals are released. */
static struct linear fuse_qkv(struct binder *b, const char *prefix, int D)
{
    const float *parts_w[3], *parts_b[3];
    const char *names[3] = { "to_q", "to_k", "to_v" };
    struct linear l = { .in = D, .out = 3 * D };
    char n[160];

    for (int i = 0; i < 3; i++) {
        parts_w[i] = bind2(b, fmt(n, sizeof(n), "%s%s.weight", prefix, names[i]), D, D);
        parts_b[i] = bind1(b, fmt(n, sizeof(n), "%s%s.bias", prefix, names[i]), D);
    }
    if (b->rc)
        return l;
    float *wq = malloc(sizeof(float) * 3 * (size_t)D * D);
    float *bq = malloc(sizeof(float) * 3 * (size_t)D);
    if (!wq || !bq) {
        free(wq);
        free(bq);
        binder_fail(b, DITD_ENOMEM, "out of memory fusing %sto_q/k/v", prefix);
        return l;
    }
    /* model_own frees what it cannot keep. */
    if (model_own(b->m, wq) != 0 || model_own(b->m, bq) != 0) {
        binder_fail(b, DITD_ENOMEM, "out of memory fusing %sto_q/k/v", prefix);
        return l;
    }
    for (int i = 0; i < 3; i++) {
        memcpy(wq + (size_t)i * D * D, parts_w[i], sizeof(float) * (size_t)D * D);
        memcpy(bq + (size_t)i * D, parts_b[i], sizeof(float) * (size_t)D);
        model_drop(b->m, b->f, parts_w[i], sizeof(float) * (size_t)D * D);
        model_drop(b->m, b->f, parts_b[i], sizeof(float) * (size_t)D);
    }
    l.w = wq;
    l.b = bq;
    return l;
}

static void bind_dit_diffusers(struct binder *b, const struct dit_config *c, struct dit_weights *w)
{
    const int D = c->hidden, F = c->mlp_hidden, p = c->patch;
    const int P = c->in_channels * p * p, Po = p * p * c->out_channels;
    const char *emb = "transformer_blocks.0.norm1.emb.";
    char n[160];

    w->patch = (struct linear){ .in = P, .out = D };
    w->patch.w = bind4(b, "pos_embed.proj.weight", D, c->in_channels, p, p);
    w->patch.b = bind1(b, "pos_embed.proj.bias", D);
    w->t1 = bind_linear(b, fmt(n, sizeof(n), "%stimestep_embedder.linear_1", emb), D, DIT_FREQ_DIM);
    w->t2 = bind_linear(b, fmt(n, sizeof(n), "%stimestep_embedder.linear_2", emb), D, D);
    w->y_table = bind2(b, fmt(n, sizeof(n), "%sclass_embedder.embedding_table.weight", emb),
                       c->num_classes + 1, D);

    for (int l = 0; l < c->depth && !b->rc; l++) {
        struct dit_block_weights *k = &w->blocks[l];
        k->qkv = fuse_qkv(b, fmt(n, sizeof(n), "transformer_blocks.%d.attn1.", l), D);
        k->proj = bind_linear(b, fmt(n, sizeof(n), "transformer_blocks.%d.attn1.to_out.0", l), D, D);
        k->fc1 = bind_linear(b, fmt(n, sizeof(n), "transformer_blocks.%d.ff.net.0.proj", l), F, D);
        k->fc2 = bind_linear(b, fmt(n, sizeof(n), "transformer_blocks.%d.ff.net.2", l), D, F);
        k->ada = bind_linear(b, fmt(n, sizeof(n), "transformer_blocks.%d.norm1.linear", l), 6 * D, D);
    }
    w->final_ada = bind_linear(b, "proj_out_1", 2 * D, D);
    w->final = bind_linear(b, "proj_out_2", Po, D);
}

/* Layers re-laid out for ops_linear_t; the (out, in) originals
 * are dropped. The conditioning layers (t embedder, adaLN, cross-attention
 * k/v) too: with few rows their dot-product kernel was a tenth of the
 * bundled model's forward. */
struct layer_pass {
    struct ditd_model *m;
    const struct st_file *f;
    int fallbacks;           /* native: layers oneDNN could not take */
    char dnn_err[160];
};

static int transpose_linear(void *arg, struct linear *l, int rows)
{
    struct layer_pass *p = arg;
    (void)rows;
    float *t = malloc(sizeof(float) * (size_t)l->in * l->out);
    if (!t || model_own(p->m, t) != 0)
        return DITD_ENOMEM;
    ops_linear_t_pack(t, l->w, l->in, l->out);
    model_drop(p->m, p->f, l->w, sizeof(float) * (size_t)l->in * l->out);
    l->w = t;
    l->transposed = 1;
    return 0;
}

/* bf16: each layer's weights converted once: token layers packed for
 * oneDNN on the native path, the others (and all on the portable path) in
 * the layout they already have. The float32 copy (or its mapped pages) is
 * let go, so the model holds the weights of its products in bf16 only. A
 * layer oneDNN cannot take runs on the portable kernel. */
static int bf16_linear(void *arg, struct linear *l, int rows)
{
    struct layer_pass *p = arg;
    const size_t n = (size_t)l->in * l->out;
    if (rows && p->m->dnn) {
        char err[DITD_ERR_LEN];
        if (dnn_pack_linear(p->m->dnn, l, rows, err, sizeof(err)) == 0) {
            model_drop(p->m, p->f, l->w, sizeof(float) * n);
            l->w = NULL;
            return 0;
        }
        if (!p->fallbacks++)
            snprintf(p->dnn_err, sizeof(p->dnn_err), "%.150s", err);
    }
    uint16_t *h = malloc(sizeof(uint16_t) * n);
    if (!h || model_own(p->m, h) != 0)
        return DITD_ENOMEM;
    ops_bf16_from_f32(h, l->w, n);
    model_drop(p->m, p->f, l->w, sizeof(float) * n);
    l->w = NULL;
    l->w16 = h;
    return 0;
}

/* The oneDNN model of the native path with its attention primitives; when
 * oneDNN cannot make them, the model runs on the portable bf16 kernels and
 * its note says so. */
static void native_setup(struct ditd_model *m, struct layer_pass *pass)
{
    char err[DITD_ERR_LEN];
    if (dnn_model_new(&m->dnn, DNN_BF16, err, sizeof(err)) == 0 &&
        dit_dnn_prepare(&m->dit, m->dnn, err, sizeof(err)) == 0) {
        m->dit.dnn = m->dnn;
        return;
    }
    dnn_model_free(m->dnn);
    m->dnn = NULL;
    m->native_bf16 = 0;
    snprintf(pass->dnn_err, sizeof(pass->dnn_err), "%.150s", err);
    snprintf(m->precision_note, sizeof(m->precision_note),
             "precision bf16: emulated, oneDNN could not run this model (%.120s)", err);
}

int model_bind_dit(struct ditd_model *m, struct st_file *f, char *err, size_t errlen)
{
    struct binder b = {
        .m = m, .f = f, .file = "transformer/diffusion_pytorch_model.safetensors",
        .prefix = "", .err = err, .errlen = errlen,
    };
    const struct dit_config *c = &m->dit;

    m->dw.blocks = calloc((size_t)c->depth, sizeof(*m->dw.blocks));
    if (!m->dw.blocks || model_own(m, m->dw.blocks) != 0) {
        snprintf(err, errlen, "out of memory for %d transformer blocks", c->depth);
        return DITD_ENOMEM;
    }
    if (m->info.layout == DITD_LAYOUT_ORIGINAL)
        bind_dit_original(&b, c, &m->dw);
    else
        bind_dit_diffusers(&b, c, &m->dw);
    if (b.rc)
        return b.rc;
    struct layer_pass pass = { .m = m, .f = f };
    if (m->native_bf16)
        native_setup(m, &pass);
    if ((c->transposed && dit_weights_each(c, &m->dw, transpose_linear, &pass) != 0) ||
        (c->bf16 && dit_weights_each(c, &m->dw, bf16_linear, &pass) != 0)) {
        snprintf(err, errlen, "out of memory re-laying out the transformer weights");
        return DITD_ENOMEM;
    }
    const size_t used = strlen(m->precision_note);
    if (pass.fallbacks)
        snprintf(m->precision_note + used, sizeof(m->precision_note) - used,
                 "; %d layer(s) emulated (%.100s)", pass.fallbacks, pass.dnn_err);
    else if (m->dnn)
        snprintf(m->precision_note + used, sizeof(m->precision_note) - used, "; oneDNN %s",
                 dnn_model_impl(m->dnn));

    if (!m->dw.pos_embed) {
        float *pe = malloc(sizeof(float) * (size_t)c->tokens * (size_t)c->hidden);
        if (!pe || model_own(m, pe) != 0) {
            snprintf(err, errlen, "out of memory for the position embedding");
            return DITD_ENOMEM;
        }
        dit_pos_embed(pe, c->grid, c->hidden);
        m->dw.pos_embed = pe;
    }
    return 0;
}

/* ---------------------------------------------------------------------------
 * VAE decoder: diffusers names (new or legacy attention names) or
 * CompVis/ldm names, optionally under "first_stage_model.".
 */
enum vae_naming { VAE_DIFFUSERS, VAE_DIFFUSERS_LEGACY, VAE_LDM };

struct vae_names {
    enum vae_naming kind;
    int blocks;
};

/* A 3x3 convolution "<pre>weight" (cout, cin, 3, 3) and its "<pre>bias":
 * packed for oneDNN when the model has a native bf16 convolution model
 * (the convolution runs on H x H maps in the model's own decode), else
 * re-laid out in the panels of the VAE's own kernels (conv3.h). A shape
 * oneDNN cannot take stays on the own kernels (bf16 panels then). */
static struct conv3_weights bind_conv3(struct binder *b, const char *pre, int cout, int cin, int H)
{
    struct conv3_weights c = { .cin = cin, .cout = cout };
    char name[200];
    const float *w = bind4(b, fmt(name, sizeof(name), "%sweight", pre), cout, cin, 3, 3);
    if (!w)
        return c;
    if (b->m->vae.dnn) {
        char err[DITD_ERR_LEN];
        if (conv3_dnn_pack(b->m->vae.dnn, &c, w, H, H, err, sizeof(err)) != 0)
            b->m->vae_dnn_fallbacks++;
    }
    if (!c.dnn) {
        float *r = malloc(sizeof(float) * conv3_weight_floats(cin, cout));
        if (!r || model_own(b->m, r) != 0) {
            binder_fail(b, DITD_ENOMEM, "out of memory re-laying out %s%s", b->prefix, name);
            return c;
        }
        conv3_pack_weights(r, w, cin, cout);
        c.w = r;
    }
    model_drop(b->m, b->f, w, sizeof(float) * 9 * (size_t)cin * cout);
    c.b = bind1(b, fmt(name, sizeof(name), "%sbias", pre), cout);
    return c;
}

/* A 1x1 convolution or Linear "<pre>weight" (out, in[, 1, 1]) and its bias. */
static struct linear bind_proj(struct binder *b, const char *pre, int out, int in, int conv)
{
    struct linear l = { .in = in, .out = out };
    char name[200];
    fmt(name, sizeof(name), "%sweight", pre);
    l.w = conv ? bind4(b, name, out, in, 1, 1) : bind2(b, name, out, in);
    l.b = bind1(b, fmt(name, sizeof(name), "%sbias", pre), out);
    return l;
}

/* Prefix of ResNet j of decoder up block i (i = -1: mid block). */
static const char *resnet_prefix(char *out, size_t n, const struct vae_names *v, int i, int j)
{
    if (v->kind == VAE_LDM)
        return i < 0 ? fmt(out, n, "decoder.mid.block_%d.", j + 1)
                     : fmt(out, n, "decoder.up.%d.block.%d.", v->blocks - 1 - i, j);
    return i < 0 ? fmt(out, n, "decoder.mid_block.resnets.%d.", j)
                 : fmt(out, n, "decoder.up_blocks.%d.resnets.%d.", i, j);
}

static void bind_resnet(struct binder *b, const struct vae_names *v, int i, int j,
                        int cin, int cout, int H, struct vae_resnet *r)
{
    char pre[96], n[160];
    resnet_prefix(pre, sizeof(pre), v, i, j);
    r->cin = cin;
    r->cout = cout;
    r->norm1_w = bind1(b, fmt(n, sizeof(n), "%snorm1.weight", pre), cin);
    r->norm1_b = bind1(b, fmt(n, sizeof(n), "%snorm1.bias", pre), cin);
    r->conv1 = bind_conv3(b, fmt(n, sizeof(n), "%sconv1.", pre), cout, cin, H);
    r->norm2_w = bind1(b, fmt(n, sizeof(n), "%snorm2.weight", pre), cout);
    r->norm2_b = bind1(b, fmt(n, sizeof(n), "%snorm2.bias", pre), cout);
    r->conv2 = bind_conv3(b, fmt(n, sizeof(n), "%sconv2.", pre), cout, cout, H);
    if (cin != cout) {
        const char *sc = v->kind == VAE_LDM ? "nin_shortcut" : "conv_shortcut";
        r->shortcut = bind_proj(b, fmt(n, sizeof(n), "%s%s.", pre, sc), cout, cin, 1);
    }
}

static void bind_attention(struct binder *b, const struct vae_names *v, int C, struct vae_weights *w)
{
    static const char *const names[3][5] = {
        { "group_norm", "to_q", "to_k", "to_v", "to_out.0" },
        { "group_norm", "query", "key", "value", "proj_attn" },
        { "norm", "q", "k", "v", "proj_out" },
    };
    const char *pre = v->kind == VAE_LDM ? "decoder.mid.attn_1." : "decoder.mid_block.attentions.0.";
    const char *const *nm = names[v->kind];
    struct linear *proj[4] = { &w->q, &w->k, &w->v, &w->o };
    char n[160];

    w->attn_norm_w = bind1(b, fmt(n, sizeof(n), "%s%s.weight", pre, nm[0]), C);
    w->attn_norm_b = bind1(b, fmt(n, sizeof(n), "%s%s.bias", pre, nm[0]), C);
    /* Linear (C, C) in diffusers, 1x1 conv in ldm. */
    for (int i = 0; i < 4; i++)
        *proj[i] = bind_proj(b, fmt(n, sizeof(n), "%s%s.", pre, nm[i + 1]), C, C,
                             v->kind == VAE_LDM);
}

/* bf16: a tensor converted once, the float32 one let go (vae_weights_to_bf16). */
static uint16_t *vae_bf16_copy(void *arg, const float *f32, size_t n)
{
    struct binder *b = arg;
    uint16_t *h = malloc(sizeof(uint16_t) * (n ? n : 1));
    if (!h || model_own(b->m, h) != 0)
        return NULL;
    ops_bf16_from_f32(h, f32, n);
    model_drop(b->m, b->f, f32, sizeof(float) * n);
    return h;
}

int model_bind_vae(struct ditd_model *m, struct st_file *f, char *err, size_t errlen)
{
    const struct vae_config *c = &m->vae;
    struct vae_weights *w = &m->vw;
    struct binder b = {
        .m = m, .f = f, .file = "vae/diffusion_pytorch_model.safetensors",
        .prefix = "", .err = err, .errlen = errlen,
    };
    struct vae_names v = { .blocks = c->blocks };
    const int C = c->latent_channels, top = c->block_out[c->blocks - 1];
    const int L = m->dit.input_size;   /* map sizes of the model's own decode */
    char n[160];

    /* Native bf16: the convolutions go to oneDNN (conv3_dnn.c). */
    if (c->bf16 && m->native_bf16 &&
        conv3_dnn_model_new(&m->vae.dnn, DNN_BF16, n, sizeof(n)) != 0)
        m->vae.dnn = NULL;

    if (st_find(f, "first_stage_model.decoder.conv_in.weight"))
        b.prefix = "first_stage_model.";
    if (lookup(&b, "decoder.mid.block_1.conv1.weight"))
        v.kind = VAE_LDM;
    else if (lookup(&b, "decoder.mid_block.attentions.0.query.weight"))
        v.kind = VAE_DIFFUSERS_LEGACY;
    else
        v.kind = VAE_DIFFUSERS;

    w->post_quant = bind_proj(&b, "post_quant_conv.", C, C, 1);
    w->conv_in = bind_conv3(&b, "decoder.conv_in.", top, C, L);
    bind_resnet(&b, &v, -1, 0, top, top, L, &w->mid_res[0]);
    if (c->mid_attention)
        bind_attention(&b, &v, top, w);
    bind_resnet(&b, &v, -1, 1, top, top, L, &w->mid_res[1]);

    int prev = top;
    for (int i = 0; i < c->blocks && !b.rc; i++) {
        const int ch = c->block_out[c->blocks - 1 - i];
        for (int j = 0; j <= c->layers_per_block; j++)
            bind_resnet(&b, &v, i, j, j == 0 ? prev : ch, ch, L << i, &w->up[i].res[j]);
        if (i < c->blocks - 1) {
            const char *fmt_up = v.kind == VAE_LDM ? "decoder.up.%d.upsample.conv."
                                                   : "decoder.up_blocks.%d.upsamplers.0.conv.";
            const int idx = v.kind == VAE_LDM ? c->blocks - 1 - i : i;
            w->up[i].up = bind_conv3(&b, fmt(n, sizeof(n), fmt_up, idx), ch, ch, L << (i + 1));
        }
        prev = ch;
    }
    const char *norm_out = v.kind == VAE_LDM ? "decoder.norm_out" : "decoder.conv_norm_out";
    w->norm_out_w = bind1(&b, fmt(n, sizeof(n), "%s.weight", norm_out), c->block_out[0]);
    w->norm_out_b = bind1(&b, fmt(n, sizeof(n), "%s.bias", norm_out), c->block_out[0]);
    w->conv_out = bind_conv3(&b, "decoder.conv_out.", c->out_channels, c->block_out[0],
                             L << (c->blocks - 1));
    if (!b.rc && c->bf16 && vae_weights_to_bf16(w, c, vae_bf16_copy, &b) != 0)
        binder_fail(&b, DITD_ENOMEM, "out of memory converting the VAE decoder to bf16");
    if (!b.rc && m->vae.dnn) {
        const size_t used = strlen(m->precision_note);
        snprintf(m->precision_note + used, sizeof(m->precision_note) - used,
                 "; VAE convolutions %s%s", conv3_dnn_impl(m->vae.dnn),
                 m->vae_dnn_fallbacks ? " (some on ditd's kernels)" : "");
    }
    return b.rc;
}
