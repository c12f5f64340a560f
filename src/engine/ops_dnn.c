/*
 * ops_dnn.c - the native bf16 products through oneDNN's matmul (see
 * ops_dnn.h for the contract, docs/engine.md "Precision" for the numbers).
 *
 * Layout of the work:
 *  - the float32 activations of a product are converted to bf16 once, into
 *    a buffer the worker's team shares (one pass, spread over the team);
 *  - then each team task is one primitive call: a column tile of one
 *    layer (its weights packed at load) for one image, or one (image, head,
 *    query block) of attention, run with one OpenMP thread on the calling
 *    team thread, into that thread's own float32 output buffer;
 *  - the task's epilogue adds the bias and applies GELU or the gated
 *    residual add while copying the tile out.
 * Every memory object, buffer and scratchpad is made with the context: a
 * product only sets data handles.
 */
#include "ops_dnn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ditd.h"

#ifdef DITD_HAVE_ONEDNN
#include <math.h>
#include <time.h>

#include <oneapi/dnnl/dnnl.h>

#include "onednn.h"
#include "ops_internal.h"
#include "team.h"

/* Columns per packed weight tile: 6 tiles for D = 1152, so two threads
 * stay busy on one image, and a tile's bf16 input (256 x 4608) fits L2. */
#define DNN_TILE_N 192
#define DNN_MAX_PRIMS 48

/* One matmul shape: src (M, K) x weights (K, N) -> dst (M, N) float32,
 * src and dst dense. kind: the weights' form: packed at load, or (for
 * attention) plain activations, K^T read from K's (N, K) rows (PRIM_KT)
 * or V's (K, N) rows as they are (PRIM_V). */
enum prim_kind { PRIM_PACKED, PRIM_KT, PRIM_V };

struct dnn_prim {
    enum prim_kind kind;
    int M, K, N;
    dnnl_primitive_t p;
    dnnl_memory_desc_t src_md, wei_md, dst_md, pad_md;
    size_t pad_bytes;
};

struct dnn_tile {
    int n0, nt, prim;
    dnnl_memory_t w;        /* packed weights of columns n0 .. n0 + nt */
};

struct dnn_linear {
    struct dnn_linear *next; /* the model's list, for freeing */
    int M, K, N, ntiles;
    struct dnn_tile tile[];
};

struct dnn_model {
    dnnl_engine_t engine;
    dnnl_data_type_t dt;
    size_t esz;              /* bytes per activation element */
    int nprims;
    struct dnn_prim prims[DNN_MAX_PRIMS];
    struct dnn_linear *linears;
    int max_k;               /* widest input of a packed layer */
    int att_width;           /* heads * hd of the attention, 0 without */
    size_t pad_bytes, dst_floats, p_elems; /* per-thread needs */
    char impl[64];
};

/* Per team thread: a stream, and for every primitive the memory objects a
 * call binds (weights only for attention: packed weights are shared). */
struct dnn_thread {
    dnnl_stream_t stream;
    dnnl_memory_t src[DNN_MAX_PRIMS], wei[DNN_MAX_PRIMS], dst[DNN_MAX_PRIMS], pad[DNN_MAX_PRIMS];
    float *dst_buf;          /* (dst_floats) */
    void *pad_buf;           /* (pad_bytes) */
    void *p16;               /* (p_elems) attention probabilities in the activation type */
};

struct dnn_ctx {
    const struct dnn_model *d;
    int threads;
    void *act;               /* shared activations converted to the activation type */
    size_t act_elems;
    int error;
    struct dnn_thread th[];
};

/* ---------------------------------------------------------------------------
 * Model: primitives and packed weights.
 */
int dnn_model_new(struct dnn_model **out, enum dnn_type type, char *err, size_t errlen)
{
    struct dnn_model *d = calloc(1, sizeof(*d));
    if (!d) {
        snprintf(err, errlen, "out of memory");
        return DITD_ENOMEM;
    }
    int rc = onednn_engine(&d->engine);
    if (rc) {
        snprintf(err, errlen, "oneDNN: no CPU engine");
        free(d);
        return rc;
    }
    d->dt = type == DNN_BF16 ? dnnl_bf16 : dnnl_f32;
    d->esz = type == DNN_BF16 ? 2 : 4;
    *out = d;
    return 0;
}

void dnn_model_free(struct dnn_model *d)
{
    if (!d)
        return;
    for (struct dnn_linear *l = d->linears, *next; l; l = next) {
        next = l->next;
        for (int t = 0; t < l->ntiles; t++)
            dnnl_memory_destroy(l->tile[t].w);
        free(l);
    }
    for (int i = 0; i < d->nprims; i++)
        dnnl_primitive_destroy(d->prims[i].p);
    free(d);
}

const char *dnn_model_impl(const struct dnn_model *d)
{
    return d->impl[0] ? d->impl : "none";
}

/* The index of the primitive of this shape, or -1. */
static int find(const struct dnn_model *d, enum prim_kind kind, int M, int K, int N)
{
    for (int i = 0; i < d->nprims; i++) {
        const struct dnn_prim *p = &d->prims[i];
        if (p->kind == kind && p->M == M && p->K == K && p->N == N)
            return i;
    }
    return -1;
}

/* The primitive of this shape, made on first request; its index or DITD_E*. */
static int prim_get(struct dnn_model *d, enum prim_kind kind, int M, int K, int N,
                    char *err, size_t errlen)
{
    const int known = find(d, kind, M, K, N);
    if (known >= 0)
        return known;
    if (d->nprims == DNN_MAX_PRIMS) {
        snprintf(err, errlen, "oneDNN: more than %d product shapes", DNN_MAX_PRIMS);
        return DITD_EINVAL;
    }
    struct dnn_prim *p = &d->prims[d->nprims];
    const dnnl_dims_t src_dims = { M, K }, wei_dims = { K, N }, dst_dims = { M, N };
    static const dnnl_format_tag_t wei_tag[] = {
        [PRIM_PACKED] = dnnl_format_tag_any, [PRIM_KT] = dnnl_ba, [PRIM_V] = dnnl_ab,
    };
    dnnl_matmul_desc_t desc;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_status_t st;
    const char *impl = NULL;

    *p = (struct dnn_prim){ .kind = kind, .M = M, .K = K, .N = N };
    st = dnnl_memory_desc_init_by_tag(&p->src_md, 2, src_dims, d->dt, dnnl_ab);
    if (st == dnnl_success)
        st = dnnl_memory_desc_init_by_tag(&p->wei_md, 2, wei_dims, d->dt, wei_tag[kind]);
    if (st == dnnl_success)
        st = dnnl_memory_desc_init_by_tag(&p->dst_md, 2, dst_dims, dnnl_f32, dnnl_ab);
    if (st == dnnl_success)
        st = dnnl_matmul_desc_init(&desc, &p->src_md, &p->wei_md, NULL, &p->dst_md);
    if (st == dnnl_success)
        st = dnnl_primitive_attr_create(&attr);
    if (st == dnnl_success)
        st = dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
    if (st == dnnl_success)
        st = dnnl_primitive_desc_create(&pd, &desc, attr, d->engine, NULL);
    dnnl_primitive_attr_destroy(attr);
    if (st != dnnl_success)
        return onednn_fail(err, errlen, st, "no matmul for this shape");
    p->wei_md = *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    p->pad_md = *dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    p->pad_bytes = dnnl_memory_desc_get_size(&p->pad_md);
    if (kind == PRIM_PACKED && !d->impl[0] &&
        dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) == dnnl_success)
        snprintf(d->impl, sizeof(d->impl), "%s", impl);
    st = dnnl_primitive_create(&p->p, pd);
    dnnl_primitive_desc_destroy(pd);
    if (st != dnnl_success)
        return onednn_fail(err, errlen, st, "creating a matmul");
    if (p->pad_bytes > d->pad_bytes)
        d->pad_bytes = p->pad_bytes;
    if ((size_t)M * N > d->dst_floats)
        d->dst_floats = (size_t)M * N;
    return d->nprims++;
}

/* Reorder the float32 rows n0 .. n0 + nt of w (N, K), seen as the (K, nt)
 * matrix of strides (1, K), into the primitive's packed weights. */
static int pack_tile(struct dnn_model *d, struct dnn_tile *t, const float *w, int K,
                     dnnl_stream_t s, char *err, size_t errlen)
{
    const dnnl_dims_t dims = { K, t->nt }, strides = { 1, K };
    dnnl_memory_desc_t from_md;
    dnnl_status_t st = dnnl_memory_desc_init_by_strides(&from_md, 2, dims, dnnl_f32, strides);

    if (st == dnnl_success)
        st = onednn_pack(&t->w, &d->prims[t->prim].wei_md, &from_md, w + (size_t)t->n0 * K, s);
    return st == dnnl_success ? 0 : onednn_fail(err, errlen, st, "packing weights");
}

int dnn_pack_linear(struct dnn_model *d, struct linear *l, int rows, char *err, size_t errlen)
{
    const int K = l->in, N = l->out, ntiles = ops_tiles(N, DNN_TILE_N);
    struct dnn_linear *dl = calloc(1, sizeof(*dl) + sizeof(struct dnn_tile) * (size_t)ntiles);
    dnnl_stream_t s = NULL;
    int rc = dl ? onednn_stream_new(&s) : DITD_ENOMEM;

    if (rc) {
        free(dl);
        snprintf(err, errlen, "out of memory packing weights for oneDNN");
        return rc;
    }
    *dl = (struct dnn_linear){ .next = d->linears, .M = rows, .K = K, .N = N };
    d->linears = dl;   /* freed with the model even when packing fails below */
    for (int t = 0; t < ntiles && !rc; t++) {
        struct dnn_tile *tile = &dl->tile[t];
        tile->n0 = t * DNN_TILE_N;
        tile->nt = N - tile->n0 < DNN_TILE_N ? N - tile->n0 : DNN_TILE_N;
        rc = tile->prim = prim_get(d, PRIM_PACKED, rows, K, tile->nt, err, errlen);
        if (rc >= 0) {
            dl->ntiles = t + 1;   /* its packed memory goes with the model, made or not */
            rc = pack_tile(d, tile, l->w, K, s, err, errlen);
        }
    }
    onednn_stream_free(s);
    if (rc)
        return rc;
    if (K > d->max_k)
        d->max_k = K;
    l->dnn = dl;
    return 0;
}

/* Query blocks of ATT_ROWS (and the last, shorter one): QK^T, then PV, all
 * operands dense per (image, head) (ops_dnn_attention converts them so). */
int dnn_prepare_attention(struct dnn_model *d, int Tq, int Tk, int hd, int width,
                          char *err, size_t errlen)
{
    const int rows[2] = { Tq < ATT_ROWS ? Tq : ATT_ROWS, Tq % ATT_ROWS };
    for (int i = 0; i < 2; i++) {
        if (!rows[i])
            continue;
        int rc = prim_get(d, PRIM_KT, rows[i], hd, Tk, err, errlen);
        if (rc >= 0)
            rc = prim_get(d, PRIM_V, rows[i], Tk, hd, err, errlen);
        if (rc < 0)
            return rc;
        if ((size_t)rows[i] * Tk > d->p_elems)
            d->p_elems = (size_t)rows[i] * Tk;
    }
    if (width > d->att_width)
        d->att_width = width;
    return 0;
}

/* ---------------------------------------------------------------------------
 * Context: streams, memory objects, buffers.
 */
void dnn_ctx_free(struct dnn_ctx *c)
{
    if (!c)
        return;
    for (int t = 0; t < c->threads; t++) {
        struct dnn_thread *th = &c->th[t];
        for (int i = 0; i < c->d->nprims; i++) {
            dnnl_memory_destroy(th->src[i]);
            dnnl_memory_destroy(th->wei[i]);
            dnnl_memory_destroy(th->dst[i]);
            dnnl_memory_destroy(th->pad[i]);
        }
        onednn_stream_free(th->stream);
        free(th->dst_buf);
        free(th->pad_buf);
        free(th->p16);
    }
    free(c->act);
    free(c);
}

int dnn_ctx_new(struct dnn_ctx **out, const struct dnn_model *d, int max_rows, int seq,
                int threads)
{
    struct dnn_ctx *c = calloc(1, sizeof(*c) + sizeof(struct dnn_thread) * (size_t)threads);
    int rc = DITD_ENOMEM;

    if (!c)
        return DITD_ENOMEM;
    c->d = d;
    c->threads = threads;
    /* The widest converted input: a packed layer's, or attention's q, k, v. */
    const size_t width = (size_t)(d->max_k > 3 * d->att_width ? d->max_k : 3 * d->att_width);
    c->act_elems = (size_t)max_rows * (size_t)seq * width;
    if (!(c->act = malloc(d->esz * (c->act_elems ? c->act_elems : 1))))
        goto fail;
    for (int t = 0; t < threads; t++) {
        struct dnn_thread *th = &c->th[t];
        th->dst_buf = malloc(sizeof(float) * (d->dst_floats ? d->dst_floats : 1));
        th->pad_buf = malloc(d->pad_bytes ? d->pad_bytes : 1);
        th->p16 = malloc(d->esz * (d->p_elems ? d->p_elems : 1));
        if (!th->dst_buf || !th->pad_buf || !th->p16 || (rc = onednn_stream_new(&th->stream)))
            goto fail;
        rc = DITD_ENOMEM;
        for (int i = 0; i < d->nprims; i++) {
            const struct dnn_prim *p = &d->prims[i];
            if (dnnl_memory_create(&th->src[i], &p->src_md, d->engine, DNNL_MEMORY_NONE) ||
                (p->kind != PRIM_PACKED &&
                 dnnl_memory_create(&th->wei[i], &p->wei_md, d->engine, DNNL_MEMORY_NONE)) ||
                dnnl_memory_create(&th->dst[i], &p->dst_md, d->engine, th->dst_buf) ||
                (p->pad_bytes &&
                 dnnl_memory_create(&th->pad[i], &p->pad_md, d->engine, th->pad_buf)))
                goto fail;
        }
    }
    *out = c;
    return 0;
fail:
    dnn_ctx_free(c);
    return rc;
}

int dnn_ctx_error(const struct dnn_ctx *c)
{
    return c ? c->error : 0;
}

/* One primitive call on team thread `thread`; src and wei NULL keep the
 * bound handles. Errors are kept in the context for the caller to see. */
static void run(struct dnn_ctx *c, int thread, int prim, const void *src, const void *wei,
                dnnl_memory_t packed)
{
    struct dnn_thread *th = &c->th[thread];
    dnnl_memory_t w = packed ? packed : th->wei[prim];
    dnnl_status_t st = dnnl_memory_set_data_handle(th->src[prim], (void *)src);
    if (st == dnnl_success && !packed)
        st = dnnl_memory_set_data_handle(w, (void *)wei);
    const dnnl_exec_arg_t args[] = {
        { DNNL_ARG_SRC, th->src[prim] }, { DNNL_ARG_WEIGHTS, w },
        { DNNL_ARG_DST, th->dst[prim] }, { DNNL_ARG_SCRATCHPAD, th->pad[prim] },
    };
    onednn_thread_single();
    int rc = st == dnnl_success ? onednn_execute(c->d->prims[prim].p, th->stream,
                                                 th->pad[prim] ? 4 : 3, args)
                                : onednn_error(st);
    if (rc && !c->error)
        c->error = rc;
}

/* ---------------------------------------------------------------------------
 * Converting activations: rows of `cols` floats at stride lds into the
 * shared buffer at stride ldd, spread over the team.
 */
struct convert_job {
    void *dst;
    const float *src;
    int ldd, lds, cols;
    long rows;
    size_t esz;
    int ntasks;
};

static void convert_task(void *arg, int task, int thread)
{
    const struct convert_job *j = arg;
    long begin, end;
    (void)thread;
    team_chunk(j->rows, j->ntasks, task, &begin, &end);
    for (long r = begin; r < end; r++) {
        const float *s = j->src + r * j->lds;
        if (j->esz == 2)
            ops_bf16_from_f32((uint16_t *)j->dst + r * j->ldd, s, (size_t)j->cols);
        else
            memcpy((float *)j->dst + r * j->ldd, s, sizeof(float) * (size_t)j->cols);
    }
}

static void convert(const struct ops_ctx *c, void *dst, int ldd, const float *src, int lds,
                    long rows, int cols)
{
    struct convert_job job = {
        .dst = dst, .src = src, .ldd = ldd, .lds = lds, .cols = cols, .rows = rows,
        .esz = c->dnn->d->esz, .ntasks = 4 * team_size(c->team),
    };
    team_run(c->team, convert_task, &job, job.ntasks);
}

/* ---------------------------------------------------------------------------
 * Linear layers.
 */
struct linear_job {
    struct dnn_ctx *c;
    const struct dnn_linear *dl;
    float *out;
    const float *b, *gate;
    int ldo, rows, samples, gate_stride;
    enum dnn_epilogue epilogue;
};

static void linear_task(void *arg, int task, int thread)
{
    const struct linear_job *j = arg;
    const struct dnn_tile *t = &j->dl->tile[task / j->samples];
    const int sample = task % j->samples, K = j->dl->K;
    const char *src = (const char *)j->c->act + (size_t)sample * j->rows * K * j->c->d->esz;
    const float *acc = j->c->th[thread].dst_buf;

    run(j->c, thread, t->prim, src, NULL, t->w);
    for (int r = 0; r < j->rows; r++) {
        const float *a = acc + (size_t)r * t->nt;
        float *o = j->out + ((size_t)sample * j->rows + r) * j->ldo + t->n0;
        const float *b = j->b ? j->b + t->n0 : NULL;
        const float *g = j->gate ? j->gate + (size_t)sample * j->gate_stride + t->n0 : NULL;
        for (int n = 0; n < t->nt; n++) {
            const float v = b ? a[n] + b[n] : a[n];
            if (j->epilogue == DNN_GELU)
                o[n] = gelu_tanh(v);
            else if (j->epilogue == DNN_RESIDUAL)
                o[n] += g ? g[n] * v : v;
            else
                o[n] = v;
        }
    }
}

void ops_dnn_linear(const struct ops_ctx *c, float *out, int ldo, const float *in, int ldi,
                    const struct linear *l, int samples, int rows, enum dnn_epilogue epilogue,
                    const float *gate, int gate_stride)
{
    const struct dnn_linear *dl = l->dnn;
    struct linear_job job = {
        .c = c->dnn, .dl = dl, .out = out, .b = l->b, .gate = gate, .ldo = ldo, .rows = rows,
        .samples = samples, .gate_stride = gate_stride, .epilogue = epilogue,
    };
    if (rows != dl->M) {   /* packed for another row count: a bug, not an input error */
        c->dnn->error = DITD_EINVAL;
        return;
    }
    convert(c, c->dnn->act, dl->K, in, ldi, (long)samples * rows, dl->K);
    /* Tile-major: the threads share one packed weight tile while it is hot. */
    team_run(c->team, linear_task, &job, samples * dl->ntiles);
}

/* ---------------------------------------------------------------------------
 * Attention: q, k and v converted once into head-major blocks, (samples,
 * heads, tokens, hd) each, so that every operand of a call is a dense
 * matrix (the layouts oneDNN's fastest kernels take); then per task QK^T
 * into the thread's score rows, softmax in float32, the probabilities
 * converted, PV, and the head's columns copied out.
 */
struct heads_job {
    char *dst;
    const float *src;
    int lds, T, heads, hd, ntasks;
    long rows;
    size_t esz;
};

static void heads_task(void *arg, int task, int thread)
{
    const struct heads_job *j = arg;
    long begin, end;
    (void)thread;
    team_chunk(j->rows, j->ntasks, task, &begin, &end);
    for (long r = begin; r < end; r++) {
        const long s = r / j->T, i = r % j->T;
        for (int h = 0; h < j->heads; h++) {
            const float *src = j->src + r * j->lds + (size_t)h * j->hd;
            char *dst = j->dst + (((size_t)s * j->heads + h) * j->T + i) * j->hd * j->esz;
            if (j->esz == 2)
                ops_bf16_from_f32((uint16_t *)dst, src, (size_t)j->hd);
            else
                memcpy(dst, src, sizeof(float) * (size_t)j->hd);
        }
    }
}

/* The (samples * T, heads * hd) rows at src (stride lds) into dst in the
 * head-major layout; returns the end of what was written. */
static char *convert_heads(const struct ops_ctx *c, char *dst, const float *src, int lds,
                           int samples, int T, int heads, int hd)
{
    struct heads_job job = {
        .dst = dst, .src = src, .lds = lds, .T = T, .heads = heads, .hd = hd,
        .rows = (long)samples * T, .esz = c->dnn->d->esz, .ntasks = 4 * team_size(c->team),
    };
    team_run(c->team, heads_task, &job, job.ntasks);
    return dst + (size_t)samples * T * heads * hd * job.esz;
}

struct att_job {
    struct dnn_ctx *c;
    float *out, *scratch;
    size_t per_thread;
    const char *q, *k, *v;  /* head-major blocks */
    int ldo, Tq, Tk, heads, hd, qblocks;
};

static void att_task(void *arg, int task, int thread)
{
    const struct att_job *j = arg;
    struct dnn_ctx *c = j->c;
    const size_t esz = c->d->esz;
    const int qb = task % j->qblocks, h = (task / j->qblocks) % j->heads;
    const int s = task / (j->qblocks * j->heads);
    const int r0 = qb * ATT_ROWS, rows = j->Tq - r0 < ATT_ROWS ? j->Tq - r0 : ATT_ROWS;
    const int qk = find(c->d, PRIM_KT, rows, j->hd, j->Tk);
    const int pv = find(c->d, PRIM_V, rows, j->Tk, j->hd);
    const size_t head = (size_t)s * j->heads + h;
    const char *q = j->q + ((head * j->Tq + r0) * j->hd) * esz;
    const char *k = j->k + head * j->Tk * j->hd * esz, *v = j->v + head * j->Tk * j->hd * esz;
    float *scores = j->scratch + (size_t)thread * j->per_thread;
    struct dnn_thread *th = &c->th[thread];

    if (qk < 0 || pv < 0) {
        if (!c->error)
            c->error = DITD_EINVAL;
        return;
    }
    /* The scores land in this task's score rows, not the output buffer. */
    dnnl_memory_set_data_handle(th->dst[qk], scores);
    run(c, thread, qk, q, k, NULL);
    ops_softmax_rows(scores, rows, j->Tk, 1.0f / sqrtf((float)j->hd));
    if (esz == 2)
        ops_bf16_from_f32(th->p16, scores, (size_t)rows * j->Tk);
    else
        memcpy(th->p16, scores, sizeof(float) * (size_t)rows * j->Tk);
    run(c, thread, pv, th->p16, v, NULL);
    for (int r = 0; r < rows; r++)
        memcpy(j->out + ((size_t)s * j->Tq + r0 + r) * j->ldo + (size_t)h * j->hd,
               th->dst_buf + (size_t)r * j->hd, sizeof(float) * (size_t)j->hd);
}

void ops_dnn_attention(const struct ops_ctx *c, float *out, int ldo, const float *q, int ldq,
                       const float *k, int ldk, const float *v, int ldv, int samples, int Tq,
                       int Tk, int heads, int hd, float *scratch)
{
    char *act = c->dnn->act;
    struct att_job job = {
        .c = c->dnn, .out = out, .scratch = scratch, .per_thread = ops_attention_scratch(Tq, Tk),
        .ldo = ldo, .Tq = Tq, .Tk = Tk, .heads = heads, .hd = hd,
        .qblocks = ops_tiles(Tq, ATT_ROWS),
    };
    job.q = act;
    job.k = convert_heads(c, act, q, ldq, samples, Tq, heads, hd);
    job.v = convert_heads(c, (char *)job.k, k, ldk, samples, Tk, heads, hd);
    convert_heads(c, (char *)job.v, v, ldv, samples, Tk, heads, hd);
    team_run(c->team, att_task, &job, samples * heads * job.qblocks);
}

/* ---------------------------------------------------------------------------
 * The library alone on the forward's shapes (dit bench).
 */
static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

double dnn_bench_gemms(int M, int D, int F, int depth, int threads)
{
    const int shapes[4][2] = { { 3 * D, D }, { D, D }, { F, D }, { D, F } }; /* N, K */
    char err[DITD_ERR_LEN];
    struct dnn_model *d = NULL;
    dnnl_stream_t s = NULL;
    dnnl_memory_t src[4] = { 0 }, wei[4] = { 0 }, dst[4] = { 0 }, pad[4] = { 0 };
    int prim[4], rc = dnn_model_new(&d, DNN_BF16, err, sizeof(err));
    double ms = DITD_EINVAL;

    onednn_set_threads(threads);   /* the library's own threading, like sgemm's */
    if (rc == 0)
        rc = onednn_stream_new(&s);
    for (int i = 0; i < 4 && rc == 0; i++) {
        rc = prim[i] = prim_get(d, PRIM_PACKED, M, shapes[i][1], shapes[i][0], err,
                                sizeof(err));
        if (rc < 0)
            break;
        const struct dnn_prim *p = &d->prims[prim[i]];
        rc = dnnl_memory_create(&src[i], &p->src_md, d->engine, DNNL_MEMORY_ALLOCATE) ||
             dnnl_memory_create(&wei[i], &p->wei_md, d->engine, DNNL_MEMORY_ALLOCATE) ||
             dnnl_memory_create(&dst[i], &p->dst_md, d->engine, DNNL_MEMORY_ALLOCATE) ||
             (p->pad_bytes &&
              dnnl_memory_create(&pad[i], &p->pad_md, d->engine, DNNL_MEMORY_ALLOCATE))
                 ? DITD_ENOMEM : 0;
    }
    /* Contents do not change the speed; zeroed pages would flatter it. */
    for (int i = 0; i < 4 && rc == 0; i++) {
        void *h;
        dnnl_memory_get_data_handle(src[i], &h);
        memset(h, 0x3c, dnnl_memory_desc_get_size(&d->prims[prim[i]].src_md));
        dnnl_memory_get_data_handle(wei[i], &h);
        memset(h, 0x3c, dnnl_memory_desc_get_size(&d->prims[prim[i]].wei_md));
    }
    for (int pass = 0; pass < 2 && rc == 0; pass++) {   /* a warm-up pass, then the timed one */
        const double t0 = now_ms();
        for (int l = 0; l < depth && rc == 0; l++)
            for (int i = 0; i < 4 && rc == 0; i++) {
                const dnnl_exec_arg_t args[] = {
                    { DNNL_ARG_SRC, src[i] }, { DNNL_ARG_WEIGHTS, wei[i] },
                    { DNNL_ARG_DST, dst[i] }, { DNNL_ARG_SCRATCHPAD, pad[i] },
                };
                rc = onednn_execute(d->prims[prim[i]].p, s, pad[i] ? 4 : 3, args);
            }
        ms = rc ? rc : now_ms() - t0;
    }
    for (int i = 0; i < 4; i++) {
        dnnl_memory_destroy(src[i]);
        dnnl_memory_destroy(wei[i]);
        dnnl_memory_destroy(dst[i]);
        dnnl_memory_destroy(pad[i]);
    }
    onednn_stream_free(s);
    dnn_model_free(d);
    onednn_set_threads(1);
    return ms;
}

#else /* !DITD_HAVE_ONEDNN: the path is never chosen; these only say so. */

int dnn_model_new(struct dnn_model **out, enum dnn_type type, char *err, size_t errlen)
{
    (void)type;
    *out = NULL;
    snprintf(err, errlen, "this build has no oneDNN (meson option onednn)");
    return DITD_EINVAL;
}

void dnn_model_free(struct dnn_model *d)
{
    (void)d;
}

int dnn_pack_linear(struct dnn_model *d, struct linear *l, int rows, char *err, size_t errlen)
{
    (void)d, (void)l, (void)rows;
    snprintf(err, errlen, "this build has no oneDNN");
    return DITD_EINVAL;
}

int dnn_prepare_attention(struct dnn_model *d, int Tq, int Tk, int hd, int width,
                          char *err, size_t errlen)
{
    (void)d, (void)Tq, (void)Tk, (void)hd, (void)width;
    snprintf(err, errlen, "this build has no oneDNN");
    return DITD_EINVAL;
}

const char *dnn_model_impl(const struct dnn_model *d)
{
    (void)d;
    return "none";
}

int dnn_ctx_new(struct dnn_ctx **out, const struct dnn_model *d, int max_rows, int seq,
                int threads)
{
    (void)d, (void)max_rows, (void)seq, (void)threads;
    *out = NULL;
    return DITD_EINVAL;
}

void dnn_ctx_free(struct dnn_ctx *c)
{
    (void)c;
}

int dnn_ctx_error(const struct dnn_ctx *c)
{
    (void)c;
    return 0;
}

void ops_dnn_linear(const struct ops_ctx *c, float *out, int ldo, const float *in, int ldi,
                    const struct linear *l, int samples, int rows, enum dnn_epilogue epilogue,
                    const float *gate, int gate_stride)
{
    (void)c, (void)out, (void)ldo, (void)in, (void)ldi, (void)l, (void)samples, (void)rows;
    (void)epilogue, (void)gate, (void)gate_stride;
}

void ops_dnn_attention(const struct ops_ctx *c, float *out, int ldo, const float *q, int ldq,
                       const float *k, int ldk, const float *v, int ldv, int samples, int Tq,
                       int Tk, int heads, int hd, float *scratch)
{
    (void)c, (void)out, (void)ldo, (void)q, (void)ldq, (void)k, (void)ldk, (void)v, (void)ldv;
    (void)samples, (void)Tq, (void)Tk, (void)heads, (void)hd, (void)scratch;
}

double dnn_bench_gemms(int M, int D, int F, int depth, int threads)
{
    (void)M, (void)D, (void)F, (void)depth, (void)threads;
    return DITD_EINVAL;
}
#endif
