/*
 * model.h - a loaded model directory: configurations, weight pointers into
 * the mapped safetensors files, class names, preview projection. Shared by
 * model.c (loading), preview.c and engine.c.
 */
#ifndef DITD_MODEL_H
#define DITD_MODEL_H

#include "dit.h"
#include "ditd.h"
#include "metadata.h"
#include "safetensors.h"
#include "vae.h"

#define MODEL_MAX_LATENT_CHANNELS 64

struct ditd_model {
    struct ditd_model_info info;
    char *path;
    char *name;
    char id[METADATA_ID_LEN]; /* metadata_model_id() of the directory */
    char **class_names;      /* (num_classes) canonical names, NULL where unnamed */
    char **class_labels;     /* (num_classes) full labels with their synonyms */
    struct dit_config dit;
    struct dit_weights dw;
    struct vae_config vae;
    struct vae_weights vw;
    struct st_file dit_file;
    struct st_file vae_file;
    void **owned;            /* converted or re-laid-out tensors we allocated */
    int nowned, capowned;
    float rgb_factors[MODEL_MAX_LATENT_CHANNELS * 3]; /* (C, 3) latent -> RGB preview */
    float rgb_bias[3];
    bool preview_decode;     /* DITD_PREVIEW_AUTO decodes (else the projection) */
    enum ditd_precision precision; /* as resolved: FP32 or BF16 (the DiT's products) */
    int native_bf16;         /* bf16 products through oneDNN (ops_dnn.c) */
    int vae_dnn_fallbacks;   /* VAE convolutions oneDNN could not take (own kernels) */
    struct dnn_model *dnn;   /* the native path's primitives and packed weights, or NULL */
    char precision_note[192];
};

/* Keep a heap block until the model is freed; frees p and fails when the
 * list cannot grow. */
int model_own(struct ditd_model *m, void *p);
/* A tensor the model no longer reads: free it when it is one of ours,
 * otherwise release its pages of the mapping of f. */
void model_drop(struct ditd_model *m, const struct st_file *f, const void *p, size_t nbytes);

/* Bind every VAE decoder tensor of f to m->vw per m->vae; 0 or DITD_E*
 * with a message naming the tensor. */
int model_bind_vae(struct ditd_model *m, struct st_file *f, char *err, size_t errlen);
int model_bind_dit(struct ditd_model *m, struct st_file *f, char *err, size_t errlen);

/* The DiT configuration of a paper model name such as "XL/2". */
int model_arch_config(const char *config, int image_size, int num_classes,
                      struct dit_config *out, char *err, size_t errlen);

/* Previews (preview.c): pick the method DITD_PREVIEW_AUTO uses from the model
 * sizes, and fit the latent-to-RGB projection by decoding noise unless the
 * VAE config had one (have_factors). After fill_info. */
int preview_init(struct ditd_model *m, bool have_factors, char *err, size_t errlen);

/* engine.c, for preview.c: decoder output (channels, plane) in [-1, 1] to
 * RGB8 HWC the way final images are made; a worker's model and its
 * (out_channels, H, W) decode buffer. */
void engine_rgb8(const float *pixels, int channels, int64_t plane, uint8_t *rgb);
static inline uint8_t engine_u8(float x)
{
    float v = 127.5f * x + 128.0f;

    return (uint8_t)(v > 0.0f ? (v < 255.0f ? v : 255.0f) : 0.0f); /* NaN -> 0 */
}
const struct ditd_model *engine_worker_model(const struct ditd_worker *w);
float *engine_worker_pixels(struct ditd_worker *w);

#endif /* DITD_MODEL_H */
