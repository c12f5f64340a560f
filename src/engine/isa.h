/*
 * isa.h - which vector instructions this CPU and its operating system let
 * us run, detected once at run time (cpuid + xgetbv), and the precision
 * choice that follows from it.
 */
#include <stddef.h>

#include "ditd.h"
#ifndef DITD_ISA_H
#define DITD_ISA_H

/* In order of capability: each level implies the ones before it. */
enum isa_level {
    ISA_GENERIC,     /* not x86-64, or no SSE4.1 */
    ISA_SSE,         /* SSE4.1 */
    ISA_AVX2,        /* AVX2 + FMA, YMM state enabled by the OS */
    ISA_AVX512,      /* AVX-512 F/BW/VL/DQ ("avx512_core"), ZMM state enabled */
    ISA_AVX512_BF16, /* + AVX512_BF16: native bf16 dot products */
    ISA_AMX_BF16     /* + AMX tiles with bf16, tile state enabled */
};

/* The level in use: the detected one, lowered by the environment variable
 * DITD_ISA (one of the names below) to simulate an older CPU. A request
 * above what the CPU has is ignored: we never run what the CPU lacks. */
enum isa_level isa_level(void);
/* What the CPU reports, without the DITD_ISA cap. */
enum isa_level isa_detected(void);
/* "generic", "sse", "avx2", "avx512", "avx512_bf16", "amx_bf16". */
const char *isa_name(enum isa_level l);
/* The level named s, or -1. */
int isa_parse(const char *s);
/* Native bf16 arithmetic: AVX512-BF16 or AMX-BF16. */
int isa_has_bf16(enum isa_level l);

/* The precision to run when `want` is asked for, on this CPU (after the
 * DITD_ISA cap) and this build: *bf16 set for bf16 products, *native when
 * they go to oneDNN's bf16 matmul (ops_dnn.c) rather than the portable
 * emulation. `panels`: the model's token layers use ditd's panel kernel
 * (few tokens per image), which has no native bf16 form. note receives one
 * line for the log saying what was chosen and why. */
void isa_choose_precision(enum ditd_precision want, int panels, int *bf16, int *native,
                          char *note, size_t len);

#endif /* DITD_ISA_H */
