/*
 * conv3_dnn.c - the VAE's 3x3 convolutions through oneDNN (see conv3_dnn.h
 * for the contract, docs/engine.md "Precision" for the numbers).
 *
 * A convolution of an H x W map is cut into at most BANDS bands of output
 * rows of one fixed height (the last one shorter). Each band is one call of
 * a primitive made for its (height, padding at the top, at the bottom):
 * the band reads the converted input rows it needs (one more above and
 * below, or the zero padding at the map's edges) in place, and writes its
 * rows of the float32 output in place, adding the bias and, with the sum
 * post-op, the residual already there.
 */
#include "conv3_dnn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ditd.h"

#ifdef DITD_HAVE_ONEDNN
#include <oneapi/dnnl/dnnl.h>

#include "onednn.h"
#include "ops.h"
#include "team.h"

#define BANDS 8
#define MAX_LAYOUTS 32
#define MAX_PRIMS 128

/* The packed weights' layout of one (cin, cout): the first convolution of
 * that shape picks it, the others are packed into it too. */
struct layout {
    int cin, cout;
    dnnl_memory_desc_t md;
};

struct conv3_dnn_weights {
    struct conv3_dnn_weights *next; /* the model's list, for freeing */
    dnnl_memory_t w;
};

struct conv3_dnn_model {
    dnnl_engine_t engine;
    dnnl_data_type_t dt;
    size_t esz;                   /* bytes per converted input element */
    int nlayouts;
    struct layout layouts[MAX_LAYOUTS];
    struct conv3_dnn_weights *weights;
    char impl[64];
};

/* One band shape of one convolution shape. */
struct prim {
    int cin, cout, H, W, hs, pt, pb, sum;
    dnnl_primitive_t p;
    dnnl_memory_desc_t src_md, bias_md, dst_md, pad_md;
    size_t pad_bytes;
};

struct thread_objs {
    dnnl_stream_t stream;
    dnnl_memory_t src[MAX_PRIMS], bias[MAX_PRIMS], dst[MAX_PRIMS], pad[MAX_PRIMS];
    void *pad_buf;
};

struct conv3_dnn_ctx {
    const struct conv3_dnn_model *d;
    int threads, nprims, finished, error;
    void *act;                    /* the converted input, (H, W, Cin) */
    size_t pad_bytes;
    struct prim prims[MAX_PRIMS];
    struct thread_objs th[];
};

/* Bands of an H-row map: count and height. */
static void bands(int H, int *n, int *height)
{
    const int want = H < BANDS ? H : BANDS;
    *height = (H + want - 1) / want;
    *n = (H + *height - 1) / *height;
}

/* A convolution's primitive descriptor: src (1, cin, hin, W) nhwc in the
 * path's type, dst (1, cout, hout, W) float32 nhwc, bias float32, padding
 * pt / pb rows and one column each side. wei NULL: let oneDNN choose. */
static dnnl_status_t conv_pd(dnnl_primitive_desc_t *pd, const struct conv3_dnn_model *d,
                             const dnnl_memory_desc_t *wei, int cin, int cout, int hs, int W,
                             int pt, int pb, int sum)
{
    const int hin = hs + 2 - pt - pb;
    const dnnl_dims_t sd = { 1, cin, hin, W }, wd = { cout, cin, 3, 3 }, bd = { cout };
    const dnnl_dims_t dd = { 1, cout, hs, W }, stride = { 1, 1 };
    const dnnl_dims_t pad_l = { pt, 1 }, pad_r = { pb, 1 };
    dnnl_memory_desc_t src, w, b, dst;
    dnnl_convolution_desc_t desc;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t ops = NULL;
    dnnl_status_t st = dnnl_memory_desc_init_by_tag(&src, 4, sd, d->dt, dnnl_nhwc);

    if (st == dnnl_success)
        st = wei ? (w = *wei, dnnl_success)
                 : dnnl_memory_desc_init_by_tag(&w, 4, wd, d->dt, dnnl_format_tag_any);
    if (st == dnnl_success)
        st = dnnl_memory_desc_init_by_tag(&b, 1, bd, dnnl_f32, dnnl_a);
    if (st == dnnl_success)
        st = dnnl_memory_desc_init_by_tag(&dst, 4, dd, dnnl_f32, dnnl_nhwc);
    if (st == dnnl_success)
        st = dnnl_convolution_forward_desc_init(&desc, dnnl_forward_inference,
                                                dnnl_convolution_direct, &src, &w, &b, &dst,
                                                stride, pad_l, pad_r);
    if (st == dnnl_success)
        st = dnnl_primitive_attr_create(&attr);
    if (st == dnnl_success)
        st = dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
    if (st == dnnl_success && sum) {
        st = dnnl_post_ops_create(&ops);
        if (st == dnnl_success)
            st = dnnl_post_ops_append_sum(ops, 1.0f);
        if (st == dnnl_success)
            st = dnnl_primitive_attr_set_post_ops(attr, ops);
        dnnl_post_ops_destroy(ops);
    }
    if (st == dnnl_success)
        st = dnnl_primitive_desc_create(pd, &desc, attr, d->engine, NULL);
    dnnl_primitive_attr_destroy(attr);
    return st;
}

/* ---------------------------------------------------------------------------
 * Model.
 */
int conv3_dnn_model_new(struct conv3_dnn_model **out, enum dnn_type type, char *err,
                        size_t errlen)
{
    struct conv3_dnn_model *d = calloc(1, sizeof(*d));
    if (!d) {
        snprintf(err, errlen, "out of memory");
        return DITD_ENOMEM;
    }
    if (onednn_engine(&d->engine) != 0) {
        snprintf(err, errlen, "oneDNN: no CPU engine");
        free(d);
        return DITD_EINVAL;
    }
    d->dt = type == DNN_BF16 ? dnnl_bf16 : dnnl_f32;
    d->esz = type == DNN_BF16 ? 2 : 4;
    *out = d;
    return 0;
}

void conv3_dnn_model_free(struct conv3_dnn_model *d)
{
    if (!d)
        return;
    for (struct conv3_dnn_weights *w = d->weights, *next; w; w = next) {
        next = w->next;
        dnnl_memory_destroy(w->w);
        free(w);
    }
    free(d);
}

const char *conv3_dnn_impl(const struct conv3_dnn_model *d)
{
    return d && d->impl[0] ? d->impl : "none";
}

static const struct layout *find_layout(const struct conv3_dnn_model *d, int cin, int cout)
{
    for (int i = 0; i < d->nlayouts; i++)
        if (d->layouts[i].cin == cin && d->layouts[i].cout == cout)
            return &d->layouts[i];
    return NULL;
}

int conv3_dnn_pack(struct conv3_dnn_model *d, struct conv3_weights *wt, const float *w,
                   int H, int W, char *err, size_t errlen)
{
    const int cin = wt->cin, cout = wt->cout;
    const struct layout *l = find_layout(d, cin, cout);
    struct conv3_dnn_weights *pw = calloc(1, sizeof(*pw));
    dnnl_primitive_desc_t pd = NULL;
    dnnl_memory_desc_t from_md;
    dnnl_stream_t s = NULL;
    dnnl_status_t st = dnnl_success;
    const dnnl_dims_t wd = { cout, cin, 3, 3 };

    if (!pw) {
        snprintf(err, errlen, "out of memory packing weights for oneDNN");
        return DITD_ENOMEM;
    }
    pw->next = d->weights;
    d->weights = pw;   /* freed with the model even when packing fails below */
    if (!l) {
        if (d->nlayouts == MAX_LAYOUTS) {
            snprintf(err, errlen, "oneDNN: more than %d convolution shapes", MAX_LAYOUTS);
            return DITD_EINVAL;
        }
        st = conv_pd(&pd, d, NULL, cin, cout, H, W, 1, 1, 0);
        if (st != dnnl_success)
            return onednn_fail(err, errlen, st, "no convolution for this shape");
        struct layout *nl = &d->layouts[d->nlayouts++];
        *nl = (struct layout){ .cin = cin, .cout = cout,
                               .md = *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0) };
        const char *impl = NULL;
        if (!d->impl[0] &&
            dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) == dnnl_success)
            snprintf(d->impl, sizeof(d->impl), "%s", impl);
        dnnl_primitive_desc_destroy(pd);
        l = nl;
    }
    if (onednn_stream_new(&s) != 0) {
        snprintf(err, errlen, "oneDNN: no stream");
        return DITD_EINVAL;
    }
    st = dnnl_memory_desc_init_by_tag(&from_md, 4, wd, dnnl_f32, dnnl_oihw);
    if (st == dnnl_success)
        st = onednn_pack(&pw->w, &l->md, &from_md, w, s);
    onednn_stream_free(s);
    if (st != dnnl_success)
        return onednn_fail(err, errlen, st, "packing convolution weights");
    wt->dnn = pw;
    return 0;
}

/* ---------------------------------------------------------------------------
 * Context.
 */
int conv3_dnn_ctx_new(struct conv3_dnn_ctx **out, const struct conv3_dnn_model *d,
                      int threads, size_t max_input)
{
    struct conv3_dnn_ctx *c = calloc(1, sizeof(*c) + sizeof(struct thread_objs) * (size_t)threads);
    if (!c)
        return DITD_ENOMEM;
    c->d = d;
    c->threads = threads;
    if (!(c->act = malloc(d->esz * (max_input ? max_input : 1)))) {
        free(c);
        return DITD_ENOMEM;
    }
    *out = c;
    return 0;
}

static int find_prim(const struct conv3_dnn_ctx *c, int cin, int cout, int H, int W, int hs,
                     int pt, int pb, int sum)
{
    for (int i = 0; i < c->nprims; i++) {
        const struct prim *p = &c->prims[i];
        if (p->cin == cin && p->cout == cout && p->H == H && p->W == W && p->hs == hs &&
            p->pt == pt && p->pb == pb && p->sum == sum)
            return i;
    }
    return -1;
}

int conv3_dnn_prepare(struct conv3_dnn_ctx *c, int cin, int cout, int H, int W, int residual,
                      char *err, size_t errlen)
{
    const struct layout *l = find_layout(c->d, cin, cout);
    int n, S;

    if (!l) {
        snprintf(err, errlen, "oneDNN: no packed weights for a %d -> %d convolution", cin, cout);
        return DITD_EINVAL;
    }
    bands(H, &n, &S);
    for (int i = 0; i < n; i++) {
        const int y0 = i * S, hs = H - y0 < S ? H - y0 : S, pt = i == 0, pb = y0 + hs == H;
        if (find_prim(c, cin, cout, H, W, hs, pt, pb, residual) >= 0)
            continue;
        if (c->nprims == MAX_PRIMS) {
            snprintf(err, errlen, "oneDNN: more than %d convolution primitives", MAX_PRIMS);
            return DITD_EINVAL;
        }
        struct prim *p = &c->prims[c->nprims];
        dnnl_primitive_desc_t pd = NULL;
        dnnl_status_t st = conv_pd(&pd, c->d, &l->md, cin, cout, hs, W, pt, pb, residual);
        if (st != dnnl_success)
            return onednn_fail(err, errlen, st, "no convolution for this map size");
        *p = (struct prim){ .cin = cin, .cout = cout, .H = H, .W = W, .hs = hs, .pt = pt,
                            .pb = pb, .sum = residual };
        p->src_md = *dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0);
        p->bias_md = *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 1);
        p->dst_md = *dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);
        p->pad_md = *dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
        p->pad_bytes = dnnl_memory_desc_get_size(&p->pad_md);
        st = dnnl_primitive_create(&p->p, pd);
        dnnl_primitive_desc_destroy(pd);
        if (st != dnnl_success)
            return onednn_fail(err, errlen, st, "creating a convolution");
        if (p->pad_bytes > c->pad_bytes)
            c->pad_bytes = p->pad_bytes;
        c->nprims++;
    }
    return 0;
}

int conv3_dnn_ctx_finish(struct conv3_dnn_ctx *c, char *err, size_t errlen)
{
    const dnnl_engine_t e = c->d->engine;
    for (int t = 0; t < c->threads; t++) {
        struct thread_objs *th = &c->th[t];
        if (!(th->pad_buf = malloc(c->pad_bytes ? c->pad_bytes : 1)) ||
            onednn_stream_new(&th->stream) != 0) {
            snprintf(err, errlen, "out of memory for oneDNN's convolution buffers");
            return DITD_ENOMEM;
        }
        for (int i = 0; i < c->nprims; i++) {
            const struct prim *p = &c->prims[i];
            if (dnnl_memory_create(&th->src[i], &p->src_md, e, DNNL_MEMORY_NONE) ||
                dnnl_memory_create(&th->bias[i], &p->bias_md, e, DNNL_MEMORY_NONE) ||
                dnnl_memory_create(&th->dst[i], &p->dst_md, e, DNNL_MEMORY_NONE) ||
                (p->pad_bytes &&
                 dnnl_memory_create(&th->pad[i], &p->pad_md, e, th->pad_buf))) {
                snprintf(err, errlen, "out of memory for oneDNN's memory objects");
                return DITD_ENOMEM;
            }
        }
    }
    c->finished = 1;
    return 0;
}

void conv3_dnn_ctx_free(struct conv3_dnn_ctx *c)
{
    if (!c)
        return;
    for (int t = 0; t < c->threads; t++) {
        struct thread_objs *th = &c->th[t];
        for (int i = 0; i < c->nprims; i++) {
            dnnl_memory_destroy(th->src[i]);
            dnnl_memory_destroy(th->bias[i]);
            dnnl_memory_destroy(th->dst[i]);
            dnnl_memory_destroy(th->pad[i]);
        }
        onednn_stream_free(th->stream);
        free(th->pad_buf);
    }
    for (int i = 0; i < c->nprims; i++)
        dnnl_primitive_destroy(c->prims[i].p);
    free(c->act);
    free(c);
}

int conv3_dnn_error(const struct conv3_dnn_ctx *c)
{
    return c ? c->error : 0;
}

/* ---------------------------------------------------------------------------
 * Running.
 */
struct run_job {
    struct conv3_dnn_ctx *x;
    float *out;
    const struct conv3_input *in;
    const struct conv3_weights *wt;
    int H, W, n, S, sum;
};

/* Row y of the convolution's input, activated (or upsampled), converted. */
static void convert_task(void *arg, int y, int thread)
{
    const struct run_job *j = arg;
    const int Cin = j->wt->cin;
    (void)thread;
    conv3_input_row(j->in, j->W, Cin, y, j->x->d->esz == 4 ? CONV3_F32 : CONV3_BF16,
                    (char *)j->x->act + j->x->d->esz * (size_t)y * j->W * Cin);
}

static void band_task(void *arg, int band, int thread)
{
    const struct run_job *j = arg;
    struct conv3_dnn_ctx *x = j->x;
    struct thread_objs *th = &x->th[thread];
    const int Cin = j->wt->cin, Cout = j->wt->cout;
    const int y0 = band * j->S, hs = j->H - y0 < j->S ? j->H - y0 : j->S;
    const int pt = band == 0, pb = y0 + hs == j->H;
    const int i = find_prim(x, Cin, Cout, j->H, j->W, hs, pt, pb, j->sum);
    int rc = DITD_EINVAL;

    if (i >= 0) {
        char *src = (char *)x->act + x->d->esz * (size_t)(y0 - 1 + pt) * j->W * Cin;
        dnnl_status_t st = dnnl_memory_set_data_handle(th->src[i], src);
        if (st == dnnl_success)
            st = dnnl_memory_set_data_handle(th->bias[i], (void *)j->wt->b);
        if (st == dnnl_success)
            st = dnnl_memory_set_data_handle(th->dst[i], j->out + (size_t)y0 * j->W * Cout);
        const dnnl_exec_arg_t args[] = {
            { DNNL_ARG_SRC, th->src[i] }, { DNNL_ARG_WEIGHTS, j->wt->dnn->w },
            { DNNL_ARG_BIAS, th->bias[i] }, { DNNL_ARG_DST, th->dst[i] },
            { DNNL_ARG_SCRATCHPAD, th->pad[i] },
        };
        onednn_thread_single();
        rc = st == dnnl_success ? onednn_execute(x->prims[i].p, th->stream,
                                                 th->pad[i] ? 5 : 4, args)
                                : onednn_error(st);
    }
    if (rc && !x->error)
        x->error = rc;
}

void conv3_dnn_run(const struct ops_ctx *c, struct conv3_dnn_ctx *x, float *out,
                   const float *residual, const struct conv3_input *in,
                   const struct conv3_weights *wt, int H, int W)
{
    struct run_job j = { .x = x, .out = out, .in = in, .wt = wt, .H = H, .W = W,
                         .sum = residual != NULL };
    if (!x->finished || (residual && residual != out)) {
        x->error = x->error ? x->error : DITD_EINVAL;
        return;
    }
    bands(H, &j.n, &j.S);
    team_run(c->team, convert_task, &j, H);
    team_run(c->team, band_task, &j, j.n);
}

#else /* !DITD_HAVE_ONEDNN */

int conv3_dnn_model_new(struct conv3_dnn_model **out, enum dnn_type type, char *err,
                        size_t errlen)
{
    (void)type;
    *out = NULL;
    snprintf(err, errlen, "ditd was built without oneDNN");
    return DITD_EINVAL;
}

void conv3_dnn_model_free(struct conv3_dnn_model *d)
{
    (void)d;
}

const char *conv3_dnn_impl(const struct conv3_dnn_model *d)
{
    (void)d;
    return "none";
}

int conv3_dnn_pack(struct conv3_dnn_model *d, struct conv3_weights *wt, const float *w,
                   int H, int W, char *err, size_t errlen)
{
    (void)d, (void)wt, (void)w, (void)H, (void)W;
    snprintf(err, errlen, "ditd was built without oneDNN");
    return DITD_EINVAL;
}

int conv3_dnn_ctx_new(struct conv3_dnn_ctx **out, const struct conv3_dnn_model *d,
                      int threads, size_t max_input)
{
    (void)d, (void)threads, (void)max_input;
    *out = NULL;
    return DITD_EINVAL;
}

int conv3_dnn_prepare(struct conv3_dnn_ctx *c, int cin, int cout, int H, int W, int residual,
                      char *err, size_t errlen)
{
    (void)c, (void)cin, (void)cout, (void)H, (void)W, (void)residual;
    snprintf(err, errlen, "ditd was built without oneDNN");
    return DITD_EINVAL;
}

int conv3_dnn_ctx_finish(struct conv3_dnn_ctx *c, char *err, size_t errlen)
{
    (void)c;
    snprintf(err, errlen, "ditd was built without oneDNN");
    return DITD_EINVAL;
}

void conv3_dnn_ctx_free(struct conv3_dnn_ctx *c)
{
    (void)c;
}

int conv3_dnn_error(const struct conv3_dnn_ctx *c)
{
    (void)c;
    return 0;
}

void conv3_dnn_run(const struct ops_ctx *c, struct conv3_dnn_ctx *x, float *out,
                   const float *residual, const struct conv3_input *in,
                   const struct conv3_weights *wt, int H, int W)
{
    (void)c, (void)x, (void)out, (void)residual, (void)in, (void)wt, (void)H, (void)W;
}
#endif
