/*
 * decode.c - VAE decodes of latents of any size (what `dit decode` runs).
 *
 * The decoder is fully convolutional (its mid-block attention runs over
 * whatever pixels there are), so a latent of any size decodes. A worker's
 * buffers are sized once for the model's own latent and its calls never
 * allocate; this call instead allocates the buffers for its latent size,
 * decodes, and frees them. It runs the same code on the same buffer layout
 * as a worker, so a latent of the model's own size gives the same bytes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blas.h"
#include "model.h"
#include "ops.h"
#include "team.h"

int ditd_decode_any(const struct ditd_model *m, const float *z, int n, int h, int w,
                    int threads, float *out, char *err, size_t errlen)
{
    const struct vae_config *cfg = &m->vae;
    const int f = 1 << (cfg->blocks - 1), C = cfg->latent_channels;
    struct vae_state s = { 0 };
    struct team *team = NULL;
    float *zs = NULL;
    int rc = DITD_ENOMEM;

    if (n < 1 || h < 1 || w < 1 || h > DITD_DECODE_MAX_LATENT || w > DITD_DECODE_MAX_LATENT) {
        snprintf(err, errlen, "a latent to decode must have 1 to %d cells per side (images up to "
                 "%d px), got %d x %d", DITD_DECODE_MAX_LATENT, DITD_DECODE_MAX_LATENT * f, h, w);
        return DITD_ERANGE;
    }
    if (threads < 1 || threads > 1024) {
        snprintf(err, errlen, "threads must be 1..1024, got %d", threads);
        return DITD_EINVAL;
    }
    const size_t per = (size_t)C * h * w, pix = (size_t)cfg->out_channels * h * f * w * f;
    zs = malloc(sizeof(float) * per);
    if (!zs || team_new(&team, threads) != 0 ||
        (rc = vae_state_init(&s, cfg, h, w, threads)) == DITD_ENOMEM) {
        snprintf(err, errlen, "out of memory: decoding a %d x %d latent needs %.0f MB of buffers",
                 h, w, (double)vae_state_bytes(cfg, h, w, threads) / 1e6);
        rc = DITD_ENOMEM;
        goto out;
    }
    if (rc) {
        snprintf(err, errlen, "oneDNN cannot run the decoder's convolutions on a %d x %d latent "
                 "in bf16; decode with --precision fp32", h, w);
        goto out;
    }
    struct ops_ctx ops = { .team = team };
    blas_set_threads(1);
    for (int k = 0; k < n; k++) {
        for (size_t i = 0; i < per; i++)
            zs[i] = z[k * per + i] / cfg->scaling_factor;
        if ((rc = vae_decode(cfg, &m->vw, &s, &ops, zs, out + k * pix)) != 0) {
            snprintf(err, errlen, "the VAE decoder failed in oneDNN (%s)", strerror(-rc));
            goto out;
        }
    }
    rc = 0;
out:
    vae_state_free(&s);
    team_free(team);
    free(zs);
    return rc;
}
