/*
 * onednn.h - the engine's private door to oneDNN (Debian libdnnl-dev): one
 * CPU engine for the process, streams, status codes mapped to DITD_E*, the
 * instruction set oneDNN will use, and its thread count.
 *
 * Built only with -Donednn=enabled|auto where the library is found
 * (DITD_HAVE_ONEDNN); the queries at the bottom exist in every build and
 * answer "none" / false without it, so callers need no #ifdef to ask.
 *
 * Threads: the Debian library runs its primitives on OpenMP. The engine
 * keeps its own promise (results independent of the thread count) by calling
 * oneDNN with ONE OpenMP thread from each thread of a worker's team, every
 * call on a fixed slice of the work (onednn_thread_single()); oneDNN then
 * never starts OpenMP threads of its own, which would otherwise keep
 * spinning on the two cores after each call while the team runs the next op.
 * onednn_set_threads() is there for callers that do want oneDNN's threading.
 */
#ifndef DITD_ONEDNN_H
#define DITD_ONEDNN_H

#include <stdbool.h>
#include <stddef.h>

#ifdef DITD_HAVE_ONEDNN
#include <oneapi/dnnl/dnnl.h>

/* The process's CPU engine, created on first use and kept until exit. */
int onednn_engine(dnnl_engine_t *out);

/* A stream on that engine. Streams are not shared between threads: one per
 * thread that executes primitives. */
int onednn_stream_new(dnnl_stream_t *out);
void onednn_stream_free(dnnl_stream_t s);

/* 0 for dnnl_success, else the closest DITD_E* (out of memory -> ENOMEM,
 * unimplemented -> EINVAL: no implementation for this shape or data type on
 * this CPU). */
int onednn_error(dnnl_status_t st);
/* "unimplemented", "out_of_memory", ... for messages. */
const char *onednn_status_name(dnnl_status_t st);
/* err = "oneDNN: <what>: <status name>"; returns onednn_error(st). */
int onednn_fail(char *err, size_t errlen, dnnl_status_t st, const char *what);

/* OpenMP threads of the primitives the calling thread creates and executes
 * from now on (the count is per calling thread). */
void onednn_set_threads(int n);
/* The count primitives of the calling thread run with. */
int onednn_threads(void);
/* onednn_set_threads(1): call in each team task before executing a
 * primitive on that task's slice. */
void onednn_thread_single(void);

/* Execute primitive p on stream s with nargs (arg, memory) pairs and wait
 * for it; 0 or DITD_E*. */
int onednn_execute(dnnl_primitive_t p, dnnl_stream_t s, int nargs,
                   const dnnl_exec_arg_t *args);

/* Pack weights once at load: a new memory *out of layout to_md (the one a
 * primitive asked for), filled from the plain float32 data at src described
 * by from_md through a reorder on stream s. *out is set as soon as it exists,
 * so the caller frees it with its model even when the reorder fails. */
dnnl_status_t onednn_pack(dnnl_memory_t *out, const dnnl_memory_desc_t *to_md,
                          const dnnl_memory_desc_t *from_md, const void *src, dnnl_stream_t s);
#endif

/* The instruction set oneDNN dispatches to on this CPU, after any
 * ONEDNN_MAX_CPU_ISA limit in the environment: "avx2", "avx512_core",
 * "avx512_core_bf16", "avx512_core_amx", ...; "none" without oneDNN. */
const char *onednn_isa(void);

/* True when oneDNN runs bf16 primitives natively here: AVX512-BF16 or AMX.
 * (On plain avx512_core oneDNN 2.6 emulates bf16, slower than fp32; below
 * avx512_core it has no bf16 convolution or matmul at all.) Always false
 * without oneDNN. */
bool onednn_native_bf16(void);

/* "2.6.3", or NULL without oneDNN. */
const char *onednn_version(void);

#endif /* DITD_ONEDNN_H */
