/*
 * test_onednn.c - the oneDNN helpers: the queries answer in every build;
 * with oneDNN, the engine and streams work, the thread count is per calling
 * thread (what keeps oneDNN from starting OpenMP threads inside a team
 * task), and a primitive executed from each team thread on its own slice,
 * single-threaded, gives the same bytes whatever the team size.
 */
#include <stdlib.h>

#include "../test.h"
#include "ditd.h"
#include "onednn.h"
#include "team.h"

#ifdef DITD_HAVE_ONEDNN
#include <pthread.h>

static void *other_thread(void *arg)
{
    *(int *)arg = onednn_threads();
    return NULL;
}

enum { M = 64, K = 48, N = 40, SLICES = 4 };

/* out (M, N) = a (M, K) . b (K, N): one matmul primitive on M / SLICES rows,
 * run by the team, one slice per task, each task with its own stream. */
struct mm_job {
    dnnl_primitive_t prim;
    dnnl_memory_desc_t a_md, b_md, c_md;
    const float *a, *b;
    float *c;
    int failures;
};

static void mm_task(void *arg, int task, int thread)
{
    struct mm_job *j = arg;
    dnnl_engine_t e;
    dnnl_stream_t s = NULL;
    dnnl_memory_t ma = NULL, mb = NULL, mc = NULL;
    const int rows = M / SLICES;
    (void)thread;

    onednn_thread_single();
    if (onednn_engine(&e) || onednn_stream_new(&s) ||
        dnnl_memory_create(&ma, &j->a_md, e, (void *)(j->a + (size_t)task * rows * K)) ||
        dnnl_memory_create(&mb, &j->b_md, e, (void *)j->b) ||
        dnnl_memory_create(&mc, &j->c_md, e, j->c + (size_t)task * rows * N)) {
        __atomic_add_fetch(&j->failures, 1, __ATOMIC_RELAXED);
    } else {
        const dnnl_exec_arg_t args[] = {
            { DNNL_ARG_SRC, ma }, { DNNL_ARG_WEIGHTS, mb }, { DNNL_ARG_DST, mc },
        };
        if (onednn_execute(j->prim, s, 3, args) != 0)
            __atomic_add_fetch(&j->failures, 1, __ATOMIC_RELAXED);
    }
    dnnl_memory_destroy(ma);
    dnnl_memory_destroy(mb);
    dnnl_memory_destroy(mc);
    onednn_stream_free(s);
}

static void check_matmul(void)
{
    static float a[M * K], b[K * N], c[3][M * N];
    struct mm_job j = { .a = a, .b = b };
    dnnl_matmul_desc_t d;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_engine_t e;
    const dnnl_dims_t da = { M / SLICES, K }, db = { K, N }, dc = { M / SLICES, N };

    for (int i = 0; i < M * K; i++)
        a[i] = (float)((i * 7919) % 263) / 131.0f - 1.0f;
    for (int i = 0; i < K * N; i++)
        b[i] = (float)((i * 104729) % 211) / 105.0f - 1.0f;
    onednn_thread_single();
    CHECK(onednn_engine(&e) == 0);
    CHECK(dnnl_memory_desc_init_by_tag(&j.a_md, 2, da, dnnl_f32, dnnl_ab) == dnnl_success);
    CHECK(dnnl_memory_desc_init_by_tag(&j.b_md, 2, db, dnnl_f32, dnnl_ab) == dnnl_success);
    CHECK(dnnl_memory_desc_init_by_tag(&j.c_md, 2, dc, dnnl_f32, dnnl_ab) == dnnl_success);
    CHECK(dnnl_matmul_desc_init(&d, &j.a_md, &j.b_md, NULL, &j.c_md) == dnnl_success);
    CHECK(dnnl_primitive_desc_create(&pd, &d, NULL, e, NULL) == dnnl_success);
    CHECK(dnnl_primitive_create(&j.prim, pd) == dnnl_success);
    dnnl_primitive_desc_destroy(pd);

    for (int threads = 1; threads <= 3; threads++) {
        struct team *t;
        CHECK(team_new(&t, threads) == 0);
        j.c = c[threads - 1];
        team_run(t, mm_task, &j, SLICES);
        team_free(t);
        CHECK_EQ_INT(j.failures, 0);
    }
    double worst = 0.0;
    for (int i = 0; i < M; i++)
        for (int n = 0; n < N; n++) {
            double ref = 0.0;
            for (int k = 0; k < K; k++)
                ref += (double)a[i * K + k] * b[k * N + n];
            double d = fabs(ref - c[0][i * N + n]);
            worst = d > worst ? d : worst;
        }
    CHECK(worst < 1e-4);
    CHECK(memcmp(c[0], c[1], sizeof(c[0])) == 0);
    CHECK(memcmp(c[0], c[2], sizeof(c[0])) == 0);
    dnnl_primitive_destroy(j.prim);
}
#endif

int main(void)
{
    const char *isa = onednn_isa();
    CHECK(isa && *isa);
#ifdef DITD_HAVE_ONEDNN
    dnnl_engine_t e1, e2;
    dnnl_stream_t s;
    CHECK(onednn_engine(&e1) == 0);
    CHECK(onednn_engine(&e2) == 0);
    CHECK(e1 && e1 == e2);
    CHECK(onednn_stream_new(&s) == 0);
    onednn_stream_free(s);
    CHECK(strcmp(isa, "none") != 0 && strcmp(isa, "unknown") != 0);
    char want[32];
    snprintf(want, sizeof(want), "%d.%d.%d", DNNL_VERSION_MAJOR, DNNL_VERSION_MINOR,
             DNNL_VERSION_PATCH);
    CHECK(onednn_version() && strcmp(onednn_version(), want) == 0);
    CHECK_EQ_INT(onednn_error(dnnl_success), 0);
    CHECK_EQ_INT(onednn_error(dnnl_out_of_memory), DITD_ENOMEM);
    CHECK_EQ_INT(onednn_error(dnnl_unimplemented), DITD_EINVAL);
    CHECK_STR_CONTAINS(onednn_status_name(dnnl_unimplemented), "unimplemented");
    /* bf16 natively only with the AVX512-BF16 bits (AMX includes them). */
    CHECK(onednn_native_bf16() == (strcmp(isa, "avx512_core_bf16") == 0 ||
                                   strcmp(isa, "avx512_core_amx") == 0));

    /* The thread count belongs to the calling thread. */
    pthread_t th;
    int seen = 0;
    onednn_set_threads(3);
    CHECK_EQ_INT(onednn_threads(), 3);
    onednn_set_threads(1);
    CHECK_EQ_INT(onednn_threads(), 1);
    onednn_set_threads(5);
    CHECK(pthread_create(&th, NULL, other_thread, &seen) == 0);
    pthread_join(th, NULL);
    CHECK(seen != 5);
    CHECK_EQ_INT(onednn_threads(), 5);
    check_matmul();
    printf("oneDNN %s, isa %s, native bf16 %s\n", onednn_version(), isa,
           onednn_native_bf16() ? "yes" : "no");
#else
    CHECK(strcmp(isa, "none") == 0);
    CHECK(!onednn_native_bf16());
    CHECK(onednn_version() == NULL);
    printf("built without oneDNN\n");
#endif
    return test_status();
}
