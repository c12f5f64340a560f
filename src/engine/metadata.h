/*
 * metadata.h - the engine-private half of metadata.c: naming a model
 * directory's weights at load.
 */
#ifndef DITD_METADATA_H
#define DITD_METADATA_H

#include <stddef.h>

#define METADATA_ID_LEN 17   /* 16 hex digits and the NUL */

/* XXH64 over transformer/config.json, transformer/diffusion_pytorch_model.safetensors,
 * vae/config.json and vae/diffusion_pytorch_model.safetensors, in that
 * order, as one stream: `cat` those four files | xxhsum -H1. */
int metadata_model_id(const char *dir, char out[METADATA_ID_LEN], char *err, size_t errlen);

#endif /* DITD_METADATA_H */
