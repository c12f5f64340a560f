/*
 * onednn.c - see onednn.h. The queries at the bottom are compiled in every
 * build; the rest only where oneDNN was found.
 */
#include "onednn.h"

#include "ditd.h"

#ifdef DITD_HAVE_ONEDNN
#include <pthread.h>
#include <stdio.h>

#include <oneapi/dnnl/dnnl_debug.h>
#if DNNL_CPU_RUNTIME == DNNL_RUNTIME_OMP
/* libgomp's, declared here rather than through <omp.h>: the build links
 * libgomp by name and does not compile with -fopenmp (meson.build). */
void omp_set_num_threads(int n);
int omp_get_max_threads(void);
#endif

static pthread_once_t engine_once = PTHREAD_ONCE_INIT;
static dnnl_engine_t engine;
static dnnl_status_t engine_status;

static void engine_create(void)
{
    engine_status = dnnl_engine_create(&engine, dnnl_cpu, 0);
}

int onednn_engine(dnnl_engine_t *out)
{
    pthread_once(&engine_once, engine_create);
    *out = engine;
    return onednn_error(engine_status);
}

int onednn_stream_new(dnnl_stream_t *out)
{
    dnnl_engine_t e;
    int rc = onednn_engine(&e);
    if (rc)
        return rc;
    return onednn_error(dnnl_stream_create(out, e, dnnl_stream_default_flags));
}

void onednn_stream_free(dnnl_stream_t s)
{
    if (s)
        dnnl_stream_destroy(s);
}

int onednn_error(dnnl_status_t st)
{
    switch (st) {
    case dnnl_success: return 0;
    case dnnl_out_of_memory: return DITD_ENOMEM;
    case dnnl_invalid_arguments:
    case dnnl_unimplemented:
    case dnnl_iterator_ends:
    case dnnl_not_required: return DITD_EINVAL;
    case dnnl_runtime_error: return DITD_EIO;
    }
    return DITD_EINVAL;
}

const char *onednn_status_name(dnnl_status_t st)
{
    return dnnl_status2str(st);
}

int onednn_fail(char *err, size_t errlen, dnnl_status_t st, const char *what)
{
    snprintf(err, errlen, "oneDNN: %s: %s", what, onednn_status_name(st));
    return onednn_error(st);
}

void onednn_set_threads(int n)
{
#if DNNL_CPU_RUNTIME == DNNL_RUNTIME_OMP
    omp_set_num_threads(n < 1 ? 1 : n);
#else
    (void)n;
#endif
}

int onednn_threads(void)
{
#if DNNL_CPU_RUNTIME == DNNL_RUNTIME_OMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

void onednn_thread_single(void)
{
    onednn_set_threads(1);
}

int onednn_execute(dnnl_primitive_t p, dnnl_stream_t s, int nargs, const dnnl_exec_arg_t *args)
{
    dnnl_status_t st = dnnl_primitive_execute(p, s, nargs, args);
    if (st == dnnl_success)
        st = dnnl_stream_wait(s);
    return onednn_error(st);
}

dnnl_status_t onednn_pack(dnnl_memory_t *out, const dnnl_memory_desc_t *to_md,
                          const dnnl_memory_desc_t *from_md, const void *src, dnnl_stream_t s)
{
    dnnl_engine_t e = NULL;
    dnnl_memory_t from = NULL;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_primitive_t r = NULL;
    dnnl_status_t st = onednn_engine(&e) == 0 ? dnnl_success : dnnl_runtime_error;

    if (st == dnnl_success)
        st = dnnl_memory_create(&from, from_md, e, (void *)src);
    if (st == dnnl_success)
        st = dnnl_memory_create(out, to_md, e, DNNL_MEMORY_ALLOCATE);
    if (st == dnnl_success)
        st = dnnl_reorder_primitive_desc_create(&pd, from_md, e, to_md, e, NULL);
    if (st == dnnl_success)
        st = dnnl_primitive_create(&r, pd);
    if (st == dnnl_success) {
        const dnnl_exec_arg_t args[] = { { DNNL_ARG_FROM, from }, { DNNL_ARG_TO, *out } };
        st = dnnl_primitive_execute(r, s, 2, args);
        if (st == dnnl_success)
            st = dnnl_stream_wait(s);
    }
    dnnl_primitive_destroy(r);
    dnnl_primitive_desc_destroy(pd);
    dnnl_memory_destroy(from);
    return st;
}

const char *onednn_isa(void)
{
    switch (dnnl_get_effective_cpu_isa()) {
    case dnnl_cpu_isa_all: return "all";
    case dnnl_cpu_isa_sse41: return "sse41";
    case dnnl_cpu_isa_avx: return "avx";
    case dnnl_cpu_isa_avx2: return "avx2";
    case dnnl_cpu_isa_avx2_vnni: return "avx2_vnni";
    case dnnl_cpu_isa_avx512_mic: return "avx512_mic";
    case dnnl_cpu_isa_avx512_mic_4ops: return "avx512_mic_4ops";
    case dnnl_cpu_isa_avx512_core: return "avx512_core";
    case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni";
    case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16";
    case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx";
    }
    return "unknown";
}

bool onednn_native_bf16(void)
{
    const unsigned bf16 = dnnl_cpu_isa_avx512_core_bf16;
    return ((unsigned)dnnl_get_effective_cpu_isa() & bf16) == bf16;
}

static pthread_once_t version_once = PTHREAD_ONCE_INIT;
static char version_text[32];

static void version_format(void)
{
    const dnnl_version_t *v = dnnl_version();
    snprintf(version_text, sizeof(version_text), "%d.%d.%d", v->major, v->minor, v->patch);
}

const char *onednn_version(void)
{
    pthread_once(&version_once, version_format);
    return version_text;
}
#else /* !DITD_HAVE_ONEDNN */

const char *onednn_isa(void)
{
    return "none";
}

bool onednn_native_bf16(void)
{
    return false;
}

const char *onednn_version(void)
{
    return NULL;
}
#endif
