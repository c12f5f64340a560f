/*
 * preview.c - previews of images in flight at the image's own size, from
 * the current x0 prediction: either the real VAE decode, or a linear
 * projection per latent channel to RGB, upscaled bilinearly. The
 * projection comes from vae/config.json, or is fitted once at load by least
 * squares from a few small decodes of random latents, which works for any
 * VAE without hand-tuned tables. Which of the two AUTO means is decided at
 * load from the model sizes (docs/engine.md, "Previews").
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "ops.h"
#include "rng.h"
#include "team.h"

#define FIT_LATENTS 2
#define FIT_SEED 0x5eedf17ULL
/* AUTO decodes when a decode costs at most this share of a one-row step. */
#define DECODE_SHARE 0.1

/* Solve the (n x n) system a x = b in place (Gaussian elimination with
 * partial pivoting); 0 on success. */
static int solve(double *a, double *b, int n, int nrhs)
{
    for (int col = 0; col < n; col++) {
        int piv = col;
        for (int r = col + 1; r < n; r++)
            if (fabs(a[r * n + col]) > fabs(a[piv * n + col]))
                piv = r;
        if (fabs(a[piv * n + col]) < 1e-12)
            return -1;
        for (int k = 0; k < n; k++) {
            double t = a[col * n + k]; a[col * n + k] = a[piv * n + k]; a[piv * n + k] = t;
        }
        for (int k = 0; k < nrhs; k++) {
            double t = b[col * nrhs + k]; b[col * nrhs + k] = b[piv * nrhs + k]; b[piv * nrhs + k] = t;
        }
        for (int r = 0; r < n; r++) {
            if (r == col)
                continue;
            double f = a[r * n + col] / a[col * n + col];
            for (int k = 0; k < n; k++)
                a[r * n + k] -= f * a[col * n + k];
            for (int k = 0; k < nrhs; k++)
                b[r * nrhs + k] -= f * b[col * nrhs + k];
        }
    }
    for (int r = 0; r < n; r++)
        for (int k = 0; k < nrhs; k++)
            b[r * nrhs + k] /= a[r * n + r];
    return 0;
}

static int fit(struct ditd_model *m, char *err, size_t errlen)
{
    const int C = m->vae.latent_channels, oc = m->vae.out_channels;
    const int L = m->dit.input_size < 8 ? m->dit.input_size : 8;
    const int f = 1 << (m->vae.blocks - 1), H = L * f;
    const int np = C + 1; /* unknowns per colour: C factors and a bias */
    struct team *team = NULL;
    struct vae_state vs = { 0 };
    float *z = malloc(sizeof(float) * (size_t)C * L * L);
    float *zs = malloc(sizeof(float) * (size_t)C * L * L);
    float *img = malloc(sizeof(float) * (size_t)oc * H * H);
    double ata[(MODEL_MAX_LATENT_CHANNELS + 1) * (MODEL_MAX_LATENT_CHANNELS + 1)] = { 0 };
    double atb[(MODEL_MAX_LATENT_CHANNELS + 1) * 3] = { 0 };
    int rc = DITD_ENOMEM;

    if (!z || !zs || !img || team_new(&team, 1) != 0 || vae_state_init(&vs, &m->vae, L, L, 1) != 0)
        goto out;
    struct ops_ctx ops = { .team = team };
    for (int s = 0; s < FIT_LATENTS; s++) {
        rng_normal(z, (int64_t)C * L * L, FIT_SEED, 0, (uint32_t)s);
        for (int i = 0; i < C * L * L; i++)
            zs[i] = z[i] / m->vae.scaling_factor;
        if ((rc = vae_decode(&m->vae, &m->vw, &vs, &ops, zs, img)) != 0)
            goto out;
        /* Normal equations over latent cells vs. the mean colour of their f x f pixels. */
        for (int y = 0; y < L; y++) {
            for (int x = 0; x < L; x++) {
                double row[MODEL_MAX_LATENT_CHANNELS + 1], rgb[3] = { 0 };
                for (int c = 0; c < C; c++)
                    row[c] = z[(c * L + y) * L + x];
                row[C] = 1.0;
                for (int k = 0; k < 3; k++) {
                    const float *plane = img + (size_t)(k < oc ? k : 0) * H * H;
                    for (int dy = 0; dy < f; dy++)
                        for (int dx = 0; dx < f; dx++)
                            rgb[k] += plane[(y * f + dy) * H + x * f + dx];
                    rgb[k] /= (double)f * f;
                }
                for (int i = 0; i < np; i++) {
                    for (int j = 0; j < np; j++)
                        ata[i * np + j] += row[i] * row[j];
                    for (int k = 0; k < 3; k++)
                        atb[i * 3 + k] += row[i] * rgb[k];
                }
            }
        }
    }
    for (int i = 0; i < np; i++)
        ata[i * np + i] += 1e-6; /* ridge: keeps the system solvable for dead channels */
    if (solve(ata, atb, np, 3) != 0) {
        snprintf(err, errlen, "could not fit the preview projection; add latent_rgb_factors "
                 "to vae/config.json");
        rc = DITD_EINVAL;
        goto out;
    }
    for (int c = 0; c < C; c++)
        for (int k = 0; k < 3; k++)
            m->rgb_factors[c * 3 + k] = (float)atb[c * 3 + k];
    for (int k = 0; k < 3; k++)
        m->rgb_bias[k] = (float)atb[C * 3 + k];
    rc = 0;

out:
    if (rc == DITD_ENOMEM)
        snprintf(err, errlen, "out of memory fitting the preview projection");
    vae_state_free(&vs);
    team_free(team);
    free(z);
    free(zs);
    free(img);
    return rc;
}

int preview_init(struct ditd_model *m, bool have_factors, char *err, size_t errlen)
{
    /* A step's cost is the DiT forward; a guided step costs twice this, so
     * the rule holds for every step an image takes. Multiply-accumulates
     * stand in for time: both are dense products on the same cores. */
    m->preview_decode = m->info.vae_gmacs <= DECODE_SHARE * m->info.dit_gmacs;
    m->info.preview = m->preview_decode ? "decode" : "linear";
    return have_factors ? 0 : fit(m, err, errlen);
}

/* Bilinear sample (half-pixel centres, edges clamped) of the projected
 * latent at output pixel (y, x), scale f: RGB in the decoder's [-1, 1]. */
static void linear_pixel(const struct ditd_model *m, const float *x0, int L, int f, int y, int x,
                         float out[3])
{
    const int C = m->vae.latent_channels;
    float sy = ((float)y + 0.5f) / (float)f - 0.5f, sx = ((float)x + 0.5f) / (float)f - 0.5f;
    int y0 = (int)floorf(sy), x0i = (int)floorf(sx);
    float wy = sy - (float)y0, wx = sx - (float)x0i;
    int ys[2] = { y0 < 0 ? 0 : y0, y0 + 1 > L - 1 ? L - 1 : y0 + 1 };
    int xs[2] = { x0i < 0 ? 0 : x0i, x0i + 1 > L - 1 ? L - 1 : x0i + 1 };
    float w[4] = { (1 - wy) * (1 - wx), (1 - wy) * wx, wy * (1 - wx), wy * wx };

    for (int k = 0; k < 3; k++)
        out[k] = m->rgb_bias[k];
    for (int n = 0; n < 4; n++) {
        int p = ys[n >> 1] * L + xs[n & 1];
        for (int c = 0; c < C; c++) {
            float v = w[n] * x0[(size_t)c * L * L + p];
            for (int k = 0; k < 3; k++)
                out[k] += v * m->rgb_factors[c * 3 + k];
        }
    }
}

int ditd_image_preview(struct ditd_worker *w, const struct ditd_image *img,
                       enum ditd_preview_method how, uint8_t *rgb)
{
    const struct ditd_model *m = engine_worker_model(w);
    const float *x0 = ditd_image_x0(img);
    const int L = m->dit.input_size, H = m->info.image_size, f = H / L;

    if (!x0)
        return DITD_EINVAL;
    if (how == DITD_PREVIEW_AUTO)
        how = m->preview_decode ? DITD_PREVIEW_DECODE : DITD_PREVIEW_LINEAR;
    if (how == DITD_PREVIEW_DECODE) {
        float *pixels = engine_worker_pixels(w);
        int rc = ditd_decode_latents(w, x0, 1, pixels);

        if (rc == 0)
            engine_rgb8(pixels, m->vae.out_channels, (int64_t)H * H, rgb);
        return rc;
    }
    for (int y = 0; y < H; y++) {
        for (int x = 0; x < H; x++) {
            float v[3];
            uint8_t *px = rgb + ((size_t)y * H + x) * 3;

            linear_pixel(m, x0, L, f, y, x, v);
            for (int k = 0; k < 3; k++)
                px[k] = engine_u8(v[k]);
        }
    }
    return 0;
}
