/*
 * ditd.h - the public API of the ditd engine.
 *
 * The engine loads a class-conditional Diffusion Transformer (DiT) and the
 * AutoencoderKL decoder from a model directory, and generates images one
 * denoising step at a time so that a caller can batch images that are at
 * different steps into one forward pass (continuous batching).
 *
 * Conventions (libuv style):
 *  - functions that act return 0 or a negative errno-style code (DITD_E*);
 *  - functions that can fail for reasons a user can fix also fill a caller
 *    buffer `err` of `errlen` bytes (DITD_ERR_LEN is always enough) with a
 *    sentence that names the problem and how to fix it;
 *  - nothing here calls exit() or abort(), whatever the input files hold;
 *  - a model is read-only once loaded and may be shared by any number of
 *    threads; a worker (run state) belongs to one thread at a time.
 */
#ifndef DITD_H
#define DITD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DITD_ERR_LEN 512

/* Error codes: negated errno values, so strerror(-rc) is meaningful. */
#define DITD_EINVAL  (-22) /* bad argument or bad file contents */
#define DITD_ENOMEM  (-12) /* allocation failed */
#define DITD_EIO     (-5)  /* read/map failure */
#define DITD_ENOENT  (-2)  /* missing file, tensor or class name */
#define DITD_ERANGE  (-34) /* value outside the configured limits */
#define DITD_ECANCELED (-125)

enum ditd_sampler {
    DITD_SAMPLER_DDPM,     /* ancestral, learned-range variance (reference default) */
    DITD_SAMPLER_DDIM,     /* deterministic for eta = 0 */
    DITD_SAMPLER_DPMPP_2M  /* DPM-Solver++ 2M, data prediction */
};

/* Key layout of the transformer weights, detected from the tensor names. */
enum ditd_layout {
    DITD_LAYOUT_ORIGINAL,  /* facebookresearch/DiT: blocks.N.*, x_embedder.* */
    DITD_LAYOUT_DIFFUSERS  /* diffusers: transformer_blocks.N.*, pos_embed.proj.* */
};

/* How the blocks are conditioned on (t, y): the four designs of the paper. */
enum ditd_block {
    DITD_BLOCK_ADALN_ZERO,
    DITD_BLOCK_ADALN,
    DITD_BLOCK_CROSS_ATTENTION,
    DITD_BLOCK_IN_CONTEXT
};

/* Arithmetic of the DiT's dense products (docs/engine.md, "Precision"). */
enum ditd_precision {
    DITD_PRECISION_AUTO,  /* bf16 where the CPU multiplies bf16 natively (AVX512-BF16 or
                           * AMX-BF16) and ditd has a fast path for the model; else fp32 */
    DITD_PRECISION_FP32,
    DITD_PRECISION_BF16   /* bf16 products, float32 accumulation; emulated (bf16 numerics at
                           * float32 speed) on CPUs without bf16 instructions */
};
/* "auto", "fp32" or "bf16" (case-insensitive); 0 or DITD_EINVAL. */
int ditd_precision_parse(const char *name, enum ditd_precision *out);
const char *ditd_precision_name(enum ditd_precision p);

struct ditd_model_info {
    const char *name;          /* directory base name */
    const char *path;          /* directory as given */
    enum ditd_layout layout;
    enum ditd_block block;
    bool diffusers_numerics;   /* t-divisor 127, pre-MLP eps, 4-channel guidance */
    int guidance_channels;     /* epsilon channels that guidance touches */
    int image_size;            /* pixels per side */
    int image_channels;        /* decoder output channels: 3 RGB, 1 grey */
    int latent_size;           /* latent cells per side */
    int latent_channels;       /* C */
    int learn_sigma;           /* 1 when the DiT outputs 2C channels */
    int patch;                 /* p */
    int depth;                 /* L */
    int hidden;                /* D */
    int heads;
    int num_classes;           /* the null (unconditional) class id equals this */
    const char *const *class_names; /* num_classes entries, NULL where unnamed */
    const char *const *class_labels; /* the same with every synonym ditd_model_class()
                                      * accepts, comma-separated ("ankle_boot, ankle boot") */
    double vae_scaling_factor;
    int64_t dit_params;        /* parameters of one DiT (embedders counted once) */
    double dit_gmacs;          /* multiply-accumulates per image per forward, 1e9 */
    int64_t vae_params;        /* decoder + post_quant_conv */
    double vae_gmacs;          /* per image decode, 1e9 */
    int64_t weight_bytes;      /* bytes of float32 weights in use (DiT + decoder) */
    const char *precision;     /* arithmetic of the DiT in use: "fp32" or "bf16" */
    const char *isa;           /* best vector ISA of this CPU in use (after the DITD_ISA
                                * cap): "amx_bf16", "avx512_bf16", "avx512", "avx2",
                                * "sse" or "generic" */
    const char *preview;       /* what DITD_PREVIEW_AUTO does: "decode" or "linear" */
    const char *id;            /* 16 hex digits naming the weights (docs/models.md "Model id") */
    const char *precision_note; /* one line for the log: the precision and why, e.g.
                                 * "precision auto: fp32 (this CPU has no AVX512-BF16/AMX)" */
    int default_rows;          /* row budget a server should give a forward by default at
                                * this precision: 16, or 32 with native bf16 */
};

struct ditd_model;   /* loaded weights and configuration (opaque, read-only) */
struct ditd_worker;  /* run state of one compute thread (opaque) */
struct ditd_image;   /* one image being denoised (opaque) */

/* Load the model directory `dir` (see docs/models.md). On success *out is a
 * new model, freed with ditd_model_free(). The weights of the DiT's
 * products are converted once, here, to the form the chosen precision's
 * kernels read. ditd_model_load() uses DITD_PRECISION_AUTO. */
int ditd_model_load(struct ditd_model **out, const char *dir,
                    char *err, size_t errlen);
int ditd_model_load_precision(struct ditd_model **out, const char *dir,
                              enum ditd_precision precision, char *err, size_t errlen);
void ditd_model_free(struct ditd_model *m);
/* Borrowed; valid while the model lives. */
const struct ditd_model_info *ditd_model_info(const struct ditd_model *m);
/* The default model directory, first of: $DITD_MODEL; the bundled model of
 * the source tree when this program runs from its build tree; the model
 * installed beside this program (<bindir>/../share/ditd/models/fashion-dit,
 * so that a moved or DESTDIR-staged install finds its own); the installed
 * path configured at build time. Writes it to out and returns 0, or
 * DITD_ENOENT (out then holds the configured installed path, for messages)
 * when none of them exists. docs/operations.md "Which model". */
int ditd_model_default_path(char *out, size_t len);

/* Class id for a name ("sneaker") or a decimal id ("7"); -1 when unknown. */
int ditd_model_class(const struct ditd_model *m, const char *name);

/* Architecture figures for a named configuration ("XL/2") without weights. */
struct ditd_arch_info {
    int depth, hidden, heads, patch;
    int64_t params;
    double gmacs;
};
int ditd_arch_info(const char *config, int image_size, int num_classes,
                   struct ditd_arch_info *out, char *err, size_t errlen);

/* Speed of DiT forwards of a named configuration with random weights (no
 * files), and of OpenBLAS sgemm alone on the same matrix shapes, measured
 * in the same run with the same threads. batch counts images (rows). */
struct ditd_bench_result {
    double ms_per_forward;    /* median over the timed iterations */
    double gflops;            /* 2 * MACs / time */
    double sgemm_gflops;      /* OpenBLAS sgemm on the forward's GEMM shapes */
    double gemm_gflops;       /* the matrix product of the precision in use on those shapes:
                               * sgemm (fp32), oneDNN's bf16 matmul (native bf16), or
                               * ditd's staged bf16 product (emulated bf16) */
    double gemm_fraction;     /* share of the MACs that are those GEMMs */
    const char *precision;    /* "fp32" or "bf16" */
    char precision_note[192]; /* the precision and why (see ditd_model_info) */
};
int ditd_bench_forward(const char *config, int image_size, enum ditd_precision precision,
                       int batch, int threads, int iterations, struct ditd_bench_result *out,
                       char *err, size_t errlen);
/* The same for the DiT of a loaded model. */
int ditd_bench_model(const struct ditd_model *m, int batch, int threads, int iterations,
                     struct ditd_bench_result *out, char *err, size_t errlen);

/* Speed of the Stable Diffusion VAE decoder (sd-vae-ft-* architecture) with
 * random weights (no files): one image of image_size px (a multiple of 8)
 * decoded on `threads` threads, the worker's own code path, at `precision`
 * (resolved as a model's: auto is bf16 where the CPU has it natively). */
struct ditd_bench_vae_result {
    double ms_per_decode;     /* median over the timed iterations */
    double ms_best;
    double cpu_ms_per_decode; /* CPU time of all threads, mean: the machine's load shows less */
    double gmacs;             /* multiply-accumulates of one decode, direct method, 1e9 */
    double gflops;            /* 2 * gmacs / median time: direct-method equivalent */
    int latent_size;
    const char *precision;    /* "fp32" or "bf16" */
    char precision_note[192]; /* the precision and why (see ditd_model_info) */
};
int ditd_bench_vae(int image_size, enum ditd_precision precision, int threads, int iterations,
                   struct ditd_bench_vae_result *out, char *err, size_t errlen);

/* ---------------------------------------------------------------------------
 * Generation parameters of one image.
 */
struct ditd_params {
    int class_id;              /* 0 .. num_classes-1 */
    float cfg;                 /* guidance scale; <= 1 runs conditional rows only */
    int steps;                 /* respaced steps: 1 .. 1000 */
    bool ddim_spacing;         /* "ddimK" spacing instead of the uniform "K" */
    enum ditd_sampler sampler;
    float eta;                 /* DDIM only: 0 deterministic .. 1 */
    uint64_t seed;
    uint32_t index;            /* image number within its request: its noise stream */
};

/* The defaults of the dit tool and of the daemon (whose default_steps,
 * default_cfg and default_sampler keys start from these): one place, so that
 * the same request gives the same image from both. */
#define DITD_DEFAULT_STEPS   50
#define DITD_DEFAULT_CFG     4.0
#define DITD_DEFAULT_SAMPLER "ddpm"
/* Seeds nobody chose are drawn from the OS in 0 .. 2^53-1 (exact as a JSON
 * number) and reported, so that any image can be made again. */
uint64_t ditd_seed_random(void);

/* Fill the defaults above: class 0, uniform spacing, eta 0, seed 0, index 0
 * (callers apply the seed policy themselves). */
void ditd_params_default(struct ditd_params *p);
/* Check ranges against the model; 0 or DITD_EINVAL with a message naming
 * the field. */
int ditd_params_check(const struct ditd_model *m, const struct ditd_params *p,
                      char *err, size_t errlen);
int ditd_sampler_parse(const char *name, enum ditd_sampler *out);
const char *ditd_sampler_name(enum ditd_sampler s);

/* ---------------------------------------------------------------------------
 * Images in flight. An image draws its starting noise from (seed, index) on
 * creation and carries its own sampler state, so its result does not depend
 * on what else shares its forward passes.
 */
int ditd_image_new(struct ditd_image **out, const struct ditd_model *m,
                   const struct ditd_params *p, char *err, size_t errlen);
void ditd_image_free(struct ditd_image *img);
/* DiT rows one step of this image needs: 2 with guidance, else 1. */
int ditd_image_rows(const struct ditd_image *img);
int ditd_image_steps(const struct ditd_image *img);      /* total steps */
int ditd_image_steps_done(const struct ditd_image *img); /* 0 .. steps */
bool ditd_image_done(const struct ditd_image *img);
/* Current latent (C, L, L); after the last step, the sample (unscaled). */
const float *ditd_image_latent(const struct ditd_image *img);
/* Current prediction of the clean latent x0 (C, L, L); NULL before step 1. */
const float *ditd_image_x0(const struct ditd_image *img);

/* ---------------------------------------------------------------------------
 * Workers. A worker owns every buffer a forward pass or a decode needs,
 * allocated once here for at most `max_rows` DiT rows; the calls below do
 * not allocate. `threads` is the number of threads the worker computes with
 * (its own thread included): the worker spreads fixed tiles of work over
 * them and calls OpenBLAS single-threaded, so results do not depend on the
 * thread count, and several workers run side by side (give them at most the
 * cores between them).
 */
int ditd_worker_new(struct ditd_worker **out, const struct ditd_model *m,
                    int max_rows, int threads, char *err, size_t errlen);
void ditd_worker_free(struct ditd_worker *w);
int ditd_worker_max_rows(const struct ditd_worker *w);

/* One denoising step for each of the n images (one shared DiT forward).
 * The rows of all images together must fit max_rows. Images already done
 * are an error (DITD_EINVAL). */
int ditd_step(struct ditd_worker *w, struct ditd_image *const *imgs, int n);

/* Decode n finished images to RGB8, HWC, image_size^2*3 bytes each,
 * written to rgb + k*image_size^2*3. Decodes one image at a time. */
int ditd_decode(struct ditd_worker *w, struct ditd_image *const *imgs, int n,
                uint8_t *rgb);

/* Raw DiT forward: x (n, C, L, L), t original timesteps 0..999, y class ids
 * (num_classes = null); out (n, out_channels, L, L). n <= max_rows. */
int ditd_forward(struct ditd_worker *w, const float *x, const int *t,
                 const int *y, int n, float *out);
/* Raw VAE decoder: z (n, C, L, L) latents before the 1/scaling_factor
 * division; out (n, out_channels, 8L, 8L) float, unclamped. */
int ditd_decode_latents(struct ditd_worker *w, const float *z, int n, float *out);

/* The same for latents of any size, z (n, C, h, w) with 1 <= h, w <=
 * DITD_DECODE_MAX_LATENT; out (n, out_channels, h*f, w*f), f = image_size /
 * latent_size (8 for the SD VAE). The decoder is convolutional, so any size
 * decodes. Unlike a worker's calls this one allocates the buffers for its
 * size (about 0.25 GB for a 32x32 SD latent, 3.5 GB for 128x128) and frees
 * them before it returns; DITD_ENOMEM says how much was needed. A latent of
 * the model's own size gives the same bytes as ditd_decode_latents(), and
 * no result depends on `threads` or on n. */
#define DITD_DECODE_MAX_LATENT 128
int ditd_decode_any(const struct ditd_model *m, const float *z, int n, int h, int w,
                    int threads, float *out, char *err, size_t errlen);

/* Previews of images in flight, at the image's own size, from the current x0
 * prediction. DECODE runs the real VAE decoder; LINEAR maps each latent cell to
 * RGB with a linear projection per latent channel (vae/config.json's
 * latent_rgb_factors, or fitted at load) and upscales bilinearly. AUTO is the
 * model's choice, made at load from the model sizes: DECODE when a decode
 * costs at most a tenth of the cheapest denoising step (one DiT row),
 * otherwise LINEAR (docs/engine.md, "Previews"). */
enum ditd_preview_method {
    DITD_PREVIEW_AUTO,
    DITD_PREVIEW_DECODE,
    DITD_PREVIEW_LINEAR
};
/* Write the preview of `img` to rgb: RGB8, HWC, image_size^2*3 bytes. Uses
 * the worker's decode buffers: call it on the worker's thread, between
 * steps. DITD_EINVAL before the first step. */
int ditd_image_preview(struct ditd_worker *w, const struct ditd_image *img,
                       enum ditd_preview_method how, uint8_t *rgb);

/* ---------------------------------------------------------------------------
 * PNG encoding (libpng) with tEXt chunks. *out is malloc'd; free() it.
 */
struct ditd_png_text {
    const char *key;
    const char *value;
};
int ditd_png_encode(const uint8_t *rgb, int width, int height, int channels,
                    const struct ditd_png_text *text, int ntext,
                    uint8_t **out, size_t *outlen);

/* What a generated PNG records about itself (docs/api.md "PNG metadata"):
 * software and version, model name and id, class id and name, cfg, steps,
 * sampler, spacing, eta, seed, index and precision: everything the pixels
 * depend on, and nothing else (no time), so the bytes depend only on the
 * request. The dit tool and the daemon both write exactly these. */
#define DITD_META_MAX 16
struct ditd_png_meta {
    struct ditd_png_text text[DITD_META_MAX];
    int n;
    char store[1024];          /* the values point in here */
};
/* count = images in the PNG: 1, or n for a grid of images p->index ..
 * p->index + count - 1. */
void ditd_png_metadata(const struct ditd_model *m, const struct ditd_params *p, int count,
                       struct ditd_png_meta *out);

/* The same read back from a PNG file's bytes (tEXt and uncompressed iTXt
 * chunks anywhere in the file). */
struct ditd_png_origin {
    struct ditd_params params; /* params.index: the first image's */
    int count;                 /* images in the PNG */
    char model[128];           /* model name, "" when absent */
    char model_id[32];         /* "" when absent */
    char precision[16];        /* "" when absent */
    char software[64];
};
int ditd_png_metadata_read(const uint8_t *png, size_t len, struct ditd_png_origin *out,
                           char *err, size_t errlen);

/* ---------------------------------------------------------------------------
 * BLAS. OpenBLAS picks its kernel when it is loaded; on CPUs it does not know
 * it falls back to a generic one several times slower. ditd_blas_prepare()
 * must run first thing in main(): when the kernel in use is weaker than the
 * CPU supports, it sets OPENBLAS_CORETYPE and re-executes the program (it
 * returns only when no re-exec is needed or the re-exec failed).
 * mode: "auto" (fix a weak kernel), "keep" (never touch), or a kernel name.
 */
int ditd_blas_prepare(char **argv, const char *mode, char *msg, size_t msglen);
const char *ditd_blas_core(void);   /* kernel in use, e.g. "Cooperlake" */

/* CPUs this process may use: its affinity mask, lowered to a cgroup v2 CPU
 * quota when there is one (containers started with --cpus); at least 1. */
int ditd_cpu_count(void);

#ifdef __cplusplus
}
#endif
#endif /* DITD_H */
