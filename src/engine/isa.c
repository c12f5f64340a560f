/*
 * isa.c - run-time detection of the vector instructions we may use.
 *
 * A CPU flag alone is not enough: the operating system must also save the
 * wider registers on a context switch, which it says in XCR0 (read with
 * xgetbv). The AVX-512 and AMX levels therefore need both the cpuid bits and
 * the matching XCR0 state bits. The result is computed once per process.
 */
#include "isa.h"

#include <pthread.h>
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
