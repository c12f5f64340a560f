/*
 * blas.c - make sure OpenBLAS runs its best kernel for this CPU.
 *
 * OpenBLAS 0.3.21 (Debian 12) picks its kernel from the CPU model when the
 * library loads. On CPUs newer than the library it falls back to a generic
 * SSE3 kernel ("Prescott") that is several times slower, and an inherited
 * OPENBLAS_CORETYPE can pin a weaker kernel too. The choice can only be
 * changed through OPENBLAS_CORETYPE before the library loads, so
 * ditd_blas_prepare() sets it and re-executes the program once, through
 * /proc/self/exe (the very binary that runs, even if its file was replaced
 * since). The kernel names a process after the file it executes, so the
 * second run takes back the name the first had ("ditd", "dit"): without it
 * every thread would be called "exe" and `pgrep -x ditd` would miss it.
 */
#include "blas.h"

#include <dirent.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "ditd.h"

char *openblas_get_corename(void);
void openblas_set_num_threads(int n);

#define REEXEC_MARK "DITD_BLAS_REEXEC"
#define REEXEC_FROM "DITD_BLAS_FROM"
#define REEXEC_NAME "DITD_BLAS_NAME"

/* Kernels in order of strength; later entries need more of the CPU. */
static const char *const ranked[] = {
    "Sandybridge", "Haswell", "Zen", "SkylakeX", "Cooperlake",
};

static int rank_of(const char *core)
{
    for (size_t i = 0; i < sizeof(ranked) / sizeof(ranked[0]); i++)
        if (strcasecmp(core, ranked[i]) == 0)
            return (int)i + 1;
    return 0; /* generic or unknown: weakest */
}

const char *blas_best_core(void)
{
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512bf16"))
        return "Cooperlake";
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
        return "SkylakeX";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return "Haswell";
    if (__builtin_cpu_supports("avx"))
        return "Sandybridge";
    return NULL;
}

const char *ditd_blas_core(void)
{
    const char *name = openblas_get_corename();
    return name ? name : "unknown";
}

void blas_set_threads(int n)
{
    openblas_set_num_threads(n < 1 ? 1 : n);
}

int ditd_cpu_count(void)
{
    cpu_set_t set;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (sched_getaffinity(0, sizeof(set), &set) == 0)
        n = CPU_COUNT(&set);
    /* cgroup v2: "max 100000" or "<quota> <period>" in microseconds. */
    FILE *f = fopen("/sys/fs/cgroup/cpu.max", "r");
    if (f) {
        char quota[32];
        long period;
        if (fscanf(f, "%31s %ld", quota, &period) == 2 && strcmp(quota, "max") != 0 && period > 0) {
            long q = (atol(quota) + period - 1) / period;
            if (q >= 1 && q < n)
                n = q;
        }
        fclose(f);
    }
    return n < 1 ? 1 : (n > 1024 ? 1024 : (int)n);
}

/* Give this process and its threads (OpenBLAS starts its own before main)
 * the name the first run had. Best effort: a name is only cosmetic. */
static void restore_name(const char *name)
{
    char path[64];
    struct dirent *e;
    DIR *d;

    if (!name || !*name)
        return;
    prctl(PR_SET_NAME, name, 0, 0, 0);
    d = opendir("/proc/self/task");
    if (!d)
        return;
    while ((e = readdir(d)) != NULL) {
        FILE *f;

        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "/proc/self/task/%.20s/comm", e->d_name);
        f = fopen(path, "w");
        if (f) {
            fputs(name, f);
            fclose(f);
        }
    }
    closedir(d);
}

int ditd_blas_prepare(char **argv, const char *mode, char *msg, size_t msglen)
{
    const char *current = ditd_blas_core();
    const char *from = getenv(REEXEC_FROM);
    const char *want;
    char name[16] = "";     /* the kernel's limit, NUL included */

    if (getenv(REEXEC_MARK)) {
        /* Second run: report what happened and stop here whatever the result. */
        snprintf(msg, msglen, "OpenBLAS kernel %s (switched from %s by ditd)",
                 current, from ? from : "?");
        restore_name(getenv(REEXEC_NAME));
        unsetenv(REEXEC_MARK);
        unsetenv(REEXEC_FROM);
        unsetenv(REEXEC_NAME);
        return 0;
    }
    if (!mode || strcmp(mode, "keep") == 0) {
        snprintf(msg, msglen, "OpenBLAS kernel %s (kept as configured)", current);
        return 0;
    }
    if (strcmp(mode, "auto") == 0) {
        want = blas_best_core();
        if (!want || rank_of(current) >= rank_of(want)) {
            snprintf(msg, msglen, "OpenBLAS kernel %s", current);
            return 0;
        }
    } else {
        want = mode;
        if (strcasecmp(current, want) == 0) {
            snprintf(msg, msglen, "OpenBLAS kernel %s (as configured)", current);
            return 0;
        }
    }

    prctl(PR_GET_NAME, name, 0, 0, 0);
    if (setenv("OPENBLAS_CORETYPE", want, 1) != 0 || setenv(REEXEC_MARK, "1", 1) != 0 ||
        setenv(REEXEC_FROM, current, 1) != 0 || setenv(REEXEC_NAME, name, 1) != 0) {
        snprintf(msg, msglen, "OpenBLAS kernel %s; could not set OPENBLAS_CORETYPE=%s",
                 current, want);
        return DITD_ENOMEM;
    }
    execv("/proc/self/exe", argv);
    /* Still here: exec failed; carry on with the kernel we have. */
    unsetenv(REEXEC_MARK);
    unsetenv(REEXEC_FROM);
    unsetenv(REEXEC_NAME);
    snprintf(msg, msglen,
             "OpenBLAS kernel %s is slower than %s on this CPU and re-executing with "
             "OPENBLAS_CORETYPE=%s failed; set it in the environment yourself",
             current, want, want);
    return DITD_EIO;
}
