/*
 * model.h - a loaded model directory: configurations, weight pointers into
 * the mapped safetensors files, class names, preview projection. Shared by
 * model.c (loading), preview.c and engine.c.
 */
#ifndef DITD_MODEL_H
#define DITD_MODEL_H

#include "dit.h"
#include "ditd.h"
#include "safetensors.h"
#include "vae.h"

#define MODEL_MAX_LATENT_CHANNELS 64

struct ditd_model {
    struct ditd_model_info info;
    char *path;
    char *name;
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

/* Preview projection: read from the VAE config, or fit by decoding noise. */
int preview_fit(struct ditd_model *m, char *err, size_t errlen);

#endif /* DITD_MODEL_H */
