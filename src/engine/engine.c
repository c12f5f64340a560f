/*
 * engine.c - the public generation API: per-image sampler state, workers
 * that own all buffers of a forward pass, the batched denoising step with
 * classifier-free guidance, and decoding to 8-bit pixels.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "blas.h"
#include "model.h"
#include "ops.h"
#include "rng.h"
#include "sampler.h"
#include "schedule.h"
#include "team.h"

struct ditd_image {
    const struct ditd_model *m;
    struct ditd_params p;
    struct schedule sched;
    struct sampler smp;
    int rows;      /* 2 with guidance */
    float *mem;    /* x, x0, x0_prev: 3 * (C, L, L) */
};

struct ditd_worker {
    const struct ditd_model *m;
    struct team *team;
    struct ops_ctx ops;
    struct dit_state dit;
    struct vae_state vae;
    int max_rows;
    float *xin;    /* (max_rows, C, L, L) */
    int *t, *y;    /* (max_rows) */
    float *out;    /* (max_rows, out_channels, L, L) */
    float *eps;    /* (C, L, L) guided epsilon of one image */
    float *noise;  /* (C, L, L) */
    float *z;      /* (C, L, L) latent / scaling factor */
    float *pixels; /* (out_channels, H, W) decoder output */
};

static int64_t latent_floats(const struct ditd_model *m)
{
    return (int64_t)m->dit.in_channels * m->dit.input_size * m->dit.input_size;
}

/* ---------------------------------------------------------------------------
 * Parameters.
 */
int ditd_params_check(const struct ditd_model *m, const struct ditd_params *p,
                      char *err, size_t errlen)
{
    if (p->class_id < 0 || p->class_id >= m->dit.num_classes) {
        snprintf(err, errlen, "class %d is out of range: this model has classes 0 to %d",
                 p->class_id, m->dit.num_classes - 1);
        return DITD_EINVAL;
    }
    if (!isfinite(p->cfg) || p->cfg < 0.0f || p->cfg > 100.0f) {
        snprintf(err, errlen, "cfg must be a finite number between 0 and 100 (1 = no guidance)");
        return DITD_EINVAL;
    }
    if (p->steps < 1 || p->steps > 1000) {
        snprintf(err, errlen, "steps must be an integer between 1 and 1000, got %d", p->steps);
        return DITD_EINVAL;
    }
    if (p->sampler != DITD_SAMPLER_DDPM && p->sampler != DITD_SAMPLER_DDIM &&
        p->sampler != DITD_SAMPLER_DPMPP_2M) {
        snprintf(err, errlen, "sampler must be ddpm, ddim or dpm++2m");
        return DITD_EINVAL;
    }
    if (!isfinite(p->eta) || p->eta < 0.0f || p->eta > 1.0f) {
        snprintf(err, errlen, "eta must be a number between 0 and 1");
        return DITD_EINVAL;
    }
    if (p->ddim_spacing) {
        struct schedule s;
        int rc = schedule_init(&s, p->steps, true, err, errlen);
        schedule_free(&s);
        return rc;
    }
    return 0;
}

/* ---------------------------------------------------------------------------
 * Images.
 */
int ditd_image_new(struct ditd_image **out, const struct ditd_model *m,
                   const struct ditd_params *p, char *err, size_t errlen)
{
    struct ditd_image *img;
    const int64_t n = latent_floats(m);
    int rc;

    if ((rc = ditd_params_check(m, p, err, errlen)))
        return rc;
    img = calloc(1, sizeof(*img));
    if (!img)
        goto nomem;
    img->m = m;
    img->p = *p;
    img->rows = p->cfg > 1.0f ? 2 : 1;
    if ((rc = schedule_init(&img->sched, p->steps, p->ddim_spacing, err, errlen))) {
        free(img);
        return rc;
    }
    img->mem = malloc(sizeof(float) * 3 * (size_t)n);
    if (!img->mem) {
        ditd_image_free(img);
        goto nomem;
    }
    img->smp = (struct sampler){
        .kind = p->sampler, .eta = p->eta, .sched = &img->sched, .n = n,
        .j = p->steps - 1, .x = img->mem, .x0 = img->mem + n, .x0_prev = img->mem + 2 * n,
    };
    rng_normal(img->smp.x, n, p->seed, 0, p->index);
    *out = img;
    return 0;

nomem:
    snprintf(err, errlen, "out of memory for a new image");
    return DITD_ENOMEM;
}

void ditd_image_free(struct ditd_image *img)
{
    if (!img)
        return;
    schedule_free(&img->sched);
    free(img->mem);
    free(img);
}

int ditd_image_rows(const struct ditd_image *img) { return img->rows; }
int ditd_image_steps(const struct ditd_image *img) { return img->p.steps; }
int ditd_image_steps_done(const struct ditd_image *img) { return img->p.steps - 1 - img->smp.j; }
bool ditd_image_done(const struct ditd_image *img) { return img->smp.j < 0; }
const float *ditd_image_latent(const struct ditd_image *img) { return img->smp.x; }

const float *ditd_image_x0(const struct ditd_image *img)
{
    return img->smp.have_x0 ? img->smp.x0 : NULL;
}

/* ---------------------------------------------------------------------------
 * Workers.
 */
int ditd_worker_new(struct ditd_worker **out, const struct ditd_model *m,
                    int max_rows, int threads, char *err, size_t errlen)
{
    struct ditd_worker *w = calloc(1, sizeof(*w));
    const int64_t n = latent_floats(m);
    const int L = m->dit.input_size, H = m->info.image_size;

    if (max_rows < 1 || max_rows > 4096 || threads < 1 || threads > 1024) {
        snprintf(err, errlen, "a worker needs 1..4096 rows and 1..1024 threads (got %d, %d)",
                 max_rows, threads);
        free(w);
        return DITD_EINVAL;
    }
    if (!w)
        goto nomem;
    w->m = m;
    w->max_rows = max_rows;
    if (team_new(&w->team, threads) != 0)
        goto nomem;
    w->ops.team = w->team;
    blas_set_threads(1);
    if (dit_state_init(&w->dit, &m->dit, max_rows, threads) != 0 ||
        vae_state_init(&w->vae, &m->vae, L, L, threads) != 0)
        goto nomem;
    w->xin = malloc(sizeof(float) * (size_t)(max_rows * n));
    w->t = malloc(sizeof(int) * (size_t)max_rows);
    w->y = malloc(sizeof(int) * (size_t)max_rows);
    w->out = malloc(sizeof(float) * (size_t)max_rows * m->dit.out_channels * L * L);
    w->eps = malloc(sizeof(float) * (size_t)n);
    w->noise = malloc(sizeof(float) * (size_t)n);
    w->z = malloc(sizeof(float) * (size_t)n);
    w->pixels = malloc(sizeof(float) * (size_t)m->vae.out_channels * H * H);
    if (!w->xin || !w->t || !w->y || !w->out || !w->eps || !w->noise || !w->z || !w->pixels)
        goto nomem;
    *out = w;
    return 0;

nomem:
    ditd_worker_free(w);
    snprintf(err, errlen, "out of memory allocating a worker for %d rows; lower the batch size",
             max_rows);
    return DITD_ENOMEM;
}

void ditd_worker_free(struct ditd_worker *w)
{
    if (!w)
        return;
    team_free(w->team);
    dit_state_free(&w->dit);
    vae_state_free(&w->vae);
    free(w->xin);
    free(w->t);
    free(w->y);
    free(w->out);
    free(w->eps);
    free(w->noise);
    free(w->z);
    free(w->pixels);
    free(w);
}

int ditd_worker_max_rows(const struct ditd_worker *w)
{
    return w->max_rows;
}

int ditd_forward(struct ditd_worker *w, const float *x, const int *t, const int *y, int n,
                 float *out)
{
    if (n < 1 || n > w->max_rows)
        return DITD_ERANGE;
    for (int i = 0; i < n; i++)
        if (t[i] < 0 || t[i] >= SCHEDULE_TRAIN_STEPS || y[i] < 0 || y[i] > w->m->dit.num_classes)
            return DITD_EINVAL;
    dit_forward(&w->m->dit, &w->m->dw, &w->dit, &w->ops, x, t, y, n, out);
    return dit_state_error(&w->dit) ? DITD_EIO : 0;
}

/* Guided epsilon of one image from its conditional (and null-class) rows. */
static void guide(float *eps, const float *cond, const float *uncond, float scale,
                  int guided_channels, int64_t plane, int channels)
{
    for (int c = 0; c < channels; c++) {
        const float *pc = cond + c * plane;
        float *e = eps + c * plane;
        if (uncond && c < guided_channels) {
            const float *pu = uncond + c * plane;
            for (int64_t i = 0; i < plane; i++)
                e[i] = pu[i] + scale * (pc[i] - pu[i]);
        } else {
            memcpy(e, pc, sizeof(float) * (size_t)plane);
        }
    }
}

int ditd_step(struct ditd_worker *w, struct ditd_image *const *imgs, int n)
{
    const struct ditd_model *m = w->m;
    const int C = m->dit.in_channels, Co = m->dit.out_channels;
    const int64_t plane = (int64_t)m->dit.input_size * m->dit.input_size;
    const int64_t per = latent_floats(m);
    int rows = 0;

    for (int k = 0; k < n; k++) {
        if (imgs[k]->m != m || ditd_image_done(imgs[k]))
            return DITD_EINVAL;
        rows += imgs[k]->rows;
    }
    if (rows > w->max_rows)
        return DITD_ERANGE;

    /* Lay out the batch: each image's conditional row, then its null row. */
    rows = 0;
    for (int k = 0; k < n; k++) {
        const struct ditd_image *img = imgs[k];
        for (int r = 0; r < img->rows; r++, rows++) {
            memcpy(w->xin + rows * per, img->smp.x, sizeof(float) * (size_t)per);
            w->t[rows] = img->sched.timestep[img->smp.j];
            w->y[rows] = r == 0 ? img->p.class_id : m->dit.num_classes;
        }
    }
    dit_forward(&m->dit, &m->dw, &w->dit, &w->ops, w->xin, w->t, w->y, rows, w->out);
    if (dit_state_error(&w->dit))
        return DITD_EIO;   /* a oneDNN call failed: the outputs are not to be trusted */

    rows = 0;
    for (int k = 0; k < n; k++) {
        struct ditd_image *img = imgs[k];
        const float *cond = w->out + (int64_t)rows * Co * plane;
        const float *uncond = img->rows == 2 ? cond + Co * plane : NULL;
        const float *v = Co == 2 * C ? cond + C * plane : NULL;

        guide(w->eps, cond, uncond, img->p.cfg, m->info.guidance_channels, plane, C);
        if (sampler_needs_noise(&img->smp))
            rng_normal(w->noise, per, img->p.seed, (uint32_t)img->smp.j + 1, img->p.index);
        sampler_update(&img->smp, w->eps, v, w->noise);
        rows += img->rows;
    }
    return 0;
}

int ditd_decode_latents(struct ditd_worker *w, const float *z, int n, float *out)
{
    const struct ditd_model *m = w->m;
    const int64_t per = latent_floats(m);
    const int64_t pix = (int64_t)m->vae.out_channels * m->info.image_size * m->info.image_size;

    for (int k = 0; k < n; k++) {
        for (int64_t i = 0; i < per; i++)
            w->z[i] = z[k * per + i] / m->vae.scaling_factor;
        int rc = vae_decode(&m->vae, &m->vw, &w->vae, &w->ops, w->z, out + k * pix);
        if (rc)
            return rc;
    }
    return 0;
}

int ditd_decode(struct ditd_worker *w, struct ditd_image *const *imgs, int n, uint8_t *rgb)
{
    const struct ditd_model *m = w->m;
    const int64_t plane = (int64_t)m->info.image_size * m->info.image_size;
    const int oc = m->vae.out_channels;

    for (int k = 0; k < n; k++) {
        if (imgs[k]->m != m || !ditd_image_done(imgs[k]))
            return DITD_EINVAL;
    }
    for (int k = 0; k < n; k++) {
        int rc = ditd_decode_latents(w, imgs[k]->smp.x, 1, w->pixels);
        if (rc)
            return rc;
        engine_rgb8(w->pixels, oc, plane, rgb + k * plane * 3);
    }
    return 0;
}

void engine_rgb8(const float *pixels, int channels, int64_t plane, uint8_t *rgb)
{
    for (int64_t p = 0; p < plane; p++) {
        for (int ch = 0; ch < 3; ch++) {
            /* Grey models repeat their one channel; extra channels are dropped. */
            rgb[p * 3 + ch] = engine_u8(pixels[(ch < channels ? ch : 0) * plane + p]);
        }
    }
}

const struct ditd_model *engine_worker_model(const struct ditd_worker *w)
{
    return w->m;
}

float *engine_worker_pixels(struct ditd_worker *w)
{
    return w->pixels;
}
