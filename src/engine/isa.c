/*
 * isa.c - run-time detection of the vector instructions we may use.
 *
 * A CPU flag alone is not enough: the operating system must also save the
 * wider registers on a context switch, which it says in XCR0 (read with
 * xgetbv). The AVX-512 and AMX levels therefore need both the cpuid bits and
 * the matching XCR0 state bits. The result is computed once per process.
 * Also the choice of precision that follows from the ISA and the build.
 */
#include "isa.h"

#include "onednn.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define ISA_X86 1
#endif

static const char *const names[] = {
    "generic", "sse", "avx2", "avx512", "avx512_bf16", "amx_bf16",
};

const char *isa_name(enum isa_level l)
{
    return l >= ISA_GENERIC && l <= ISA_AMX_BF16 ? names[l] : "generic";
}

int isa_parse(const char *s)
{
    for (int i = 0; i < (int)(sizeof(names) / sizeof(names[0])); i++)
        if (strcasecmp(s, names[i]) == 0)
            return i;
    return -1;
}

int isa_has_bf16(enum isa_level l)
{
    return l >= ISA_AVX512_BF16;
}

#ifdef ISA_X86
static unsigned long long read_xcr0(void)
{
    unsigned int lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((unsigned long long)hi << 32) | lo;
}

static enum isa_level detect(void)
{
    unsigned int a, b, c, d, max;
    enum isa_level l = ISA_GENERIC;

    if (!__get_cpuid(0, &max, &b, &c, &d) || !__get_cpuid(1, &a, &b, &c, &d))
        return l;
    if (c & bit_SSE4_1)
        l = ISA_SSE;
    const int fma = (c & bit_FMA) != 0, osxsave = (c & bit_OSXSAVE) != 0, avx = (c & bit_AVX) != 0;
    if (!osxsave || !avx || max < 7)
        return l;
    const unsigned long long xcr0 = read_xcr0();
    if ((xcr0 & 0x6) != 0x6) /* XMM and YMM state */
        return l;
    unsigned int b7, c7, d7, a71 = 0, b71, c71, d71;
    __cpuid_count(7, 0, a, b7, c7, d7);
    const unsigned int sub = a;
    if (sub >= 1)
        __cpuid_count(7, 1, a71, b71, c71, d71);
    if (!(b7 & bit_AVX2) || !fma)
        return l;
    l = ISA_AVX2;
    const unsigned int core512 = bit_AVX512F | bit_AVX512BW | bit_AVX512VL | bit_AVX512DQ;
    if ((b7 & core512) != core512 || (xcr0 & 0xe0) != 0xe0) /* opmask, ZMM hi256, hi16 ZMM */
        return l;
    l = ISA_AVX512;
    if (!(a71 & (1u << 5))) /* AVX512_BF16: leaf 7 subleaf 1 EAX bit 5 */
        return l;
    l = ISA_AVX512_BF16;
    /* AMX-BF16 (EDX 22) and AMX-TILE (EDX 24), with XTILECFG and XTILEDATA
     * state (XCR0 bits 17, 18). */
    if ((d7 & (1u << 22)) && (d7 & (1u << 24)) && (xcr0 & 0x60000) == 0x60000)
        l = ISA_AMX_BF16;
    return l;
}
#else
static enum isa_level detect(void)
{
    return ISA_GENERIC;
}
#endif

static pthread_once_t once = PTHREAD_ONCE_INIT;
static enum isa_level detected, in_use;

static void init(void)
{
    detected = in_use = detect();
    const char *cap = getenv("DITD_ISA");
    int want = cap && cap[0] ? isa_parse(cap) : -1;
    if (want >= 0 && want < (int)detected)
        in_use = (enum isa_level)want;
}

enum isa_level isa_detected(void)
{
    pthread_once(&once, init);
    return detected;
}

enum isa_level isa_level(void)
{
    pthread_once(&once, init);
    return in_use;
}

/* The DITD_ISA cap as a clause for the notes, "" when it changes nothing. */
static void cap_clause(char *out, size_t len)
{
    const char *cap = getenv("DITD_ISA");
    out[0] = '\0';
    if (!cap || !cap[0])
        return;
    if (isa_parse(cap) < 0)
        snprintf(out, len, "; DITD_ISA=%s is not an ISA name and was ignored", cap);
    else if (isa_level() != isa_detected())
        snprintf(out, len, "; DITD_ISA=%s hides this CPU's %s", cap, isa_name(isa_detected()));
}

void isa_choose_precision(enum ditd_precision want, int panels, int *bf16, int *native,
                          char *note, size_t len)
{
    const enum isa_level l = isa_level();
    const char *isa = isa_name(l), *name = ditd_precision_name(want);
    char cap[128];
    const int dnn = onednn_version() != NULL;
    /* Both views of the CPU must agree: ours (with the DITD_ISA cap) and
     * oneDNN's (with its ONEDNN_MAX_CPU_ISA cap). */
    const int fast = isa_has_bf16(l) && onednn_native_bf16() && !panels;

    cap_clause(cap, sizeof(cap));
    *bf16 = want == DITD_PRECISION_BF16 || (want == DITD_PRECISION_AUTO && fast);
    *native = *bf16 && fast;
    if (*native)
        snprintf(note, len, "precision %s: bf16 (%s, through oneDNN)%s", name, isa, cap);
    else if (want == DITD_PRECISION_FP32)
        snprintf(note, len, "precision fp32 (as asked; this CPU: %s)%s", isa, cap);
    else if (*bf16)
        snprintf(note, len, "precision bf16: emulated on %s (%s): bf16 numerics at float32 "
                 "speed, not faster%s", isa,
                 !isa_has_bf16(l) ? "no AVX512-BF16/AMX on this CPU" :
                 !dnn ? "this build has no oneDNN" :
                 "this model's few tokens per image run on ditd's own kernel", cap);
    else if (!isa_has_bf16(l))
        snprintf(note, len, "precision auto: fp32 (this CPU has no AVX512-BF16/AMX; best ISA "
                 "%s)%s", isa, cap);
    else if (!dnn)
        snprintf(note, len, "precision auto: fp32 (this CPU has %s, but ditd was built without "
                 "oneDNN: bf16 would be emulated, not faster)%s", isa, cap);
    else
        snprintf(note, len, "precision auto: fp32 (this model's few tokens per image run on "
                 "ditd's own float32 kernel; bf16 would not be faster)%s", cap);
}
