/*
 * cmd_tensor.c - raw tensor commands for tests and debugging: `dit
 * forward` (DiT output for given inputs), `dit decode` (VAE decoder) and
 * `dit schedule` (the diffusion tables), with .npy files in and out.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "npy.h"
#include "schedule.h"

static const char forward_help[] =
    "usage: dit forward --model DIR --x in.npy --t 999,17 --y 3,1000 -o out.npy\n"
    "                   [--threads T] [--precision P]\n"
    "\n"
    "Runs the DiT on a batch x (N, C, L, L) float32 with original timesteps t (0..999)\n"
    "and class ids y (num_classes = the null class); writes (N, out_channels, L, L).\n"
    "\n"
    "  --threads T        compute threads (default: all cores)\n"
    CLI_PRECISION_HELP
    CLI_COMMON_HELP;

static const char decode_help[] =
    "usage: dit decode --model DIR --latent z.npy -o out.npy|out.png [--threads T]\n"
    "                  [--precision P]\n"
    "\n"
    "Runs the VAE decoder on latents z (N, C, h, w) float32 as sampled (the tool divides\n"
    "by the scaling factor). Any latent size decodes, 1 to 128 cells per side, not only\n"
    "the DiT's own. .npy output holds the raw decoder output (N, channels, h*f, w*f),\n"
    "f = 8 for the SD VAE; .png output holds the first image mapped to 8 bits.\n"
    "\n"
    "  --threads T        compute threads (default: all cores)\n"
    CLI_PRECISION_HELP
    CLI_COMMON_HELP;

static const char schedule_help[] =
    "usage: dit schedule --steps K [--spacing uniform|ddim] -o s.npy\n"
    "\n"
    "Writes the respaced diffusion tables as a (K, 8) float64 array with columns\n"
    "timestep, beta, alphas_cumprod, alphas_cumprod_prev, posterior_variance,\n"
    "posterior_log_variance_clipped, posterior_mean_coef1, posterior_mean_coef2.\n"
    "\n"
    CLI_COMMON_HELP;

struct tensor_opts {
    const char *model, *x, *t, *y, *latent, *out, *spacing;
    long long steps, threads;
    enum ditd_precision precision;
    int precision_set;
};

static int parse(int argc, char **argv, const char *help, struct tensor_opts *o)
{
    static const struct option longopts[] = {
        { "model", required_argument, 0, 'm' }, { "x", required_argument, 0, 'x' },
        { "t", required_argument, 0, 't' }, { "y", required_argument, 0, 'y' },
        { "latent", required_argument, 0, 'z' }, { "steps", required_argument, 0, 's' },
        { "spacing", required_argument, 0, 'p' }, { "verbose", no_argument, 0, 'v' },
        { "threads", required_argument, 0, 'T' }, { "precision", required_argument, 0, 'R' },
        { "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 },
    };
    int ch;
    o->threads = cli_default_threads();
    while ((ch = getopt_long(argc, argv, "o:h", longopts, NULL)) != -1) {
        switch (ch) {
        case 'm': o->model = optarg; break;
        case 'x': o->x = optarg; break;
        case 't': o->t = optarg; break;
        case 'y': o->y = optarg; break;
        case 'z': o->latent = optarg; break;
        case 'o': o->out = optarg; break;
        case 'p': o->spacing = optarg; break;
        case 'v': break;   /* read by main() */
        case 's': if (cli_int(optarg, 1, 1000, "--steps", &o->steps)) return -1; break;
        case 'T': if (cli_int(optarg, 1, 256, "--threads", &o->threads)) return -1; break;
        case 'R':
            if (cli_precision(optarg, &o->precision)) return -1;
            o->precision_set = 1;
            break;
        case 'h': fputs(help, stdout); return 1;
        default: fputs(help, stderr); return -1;
        }
    }
    if (!o->out)
        return cli_fail("-o is required"), -1;
    return 0;
}

/* Read a float32 array of exactly 4 dims (N, C, L, L) matching the model;
 * with any_size, (N, C, h, w) with h, w from 1 to DITD_DECODE_MAX_LATENT. */
static int read_latents(const char *path, const struct ditd_model_info *i, int any_size,
                        struct npy_array *a)
{
    char err[DITD_ERR_LEN];
    if (npy_read(path, a, err, sizeof(err)) != 0)
        return cli_fail("%s", err);
    if (a->dtype != NPY_F32 || a->ndim != 4 || a->shape[0] < 1 ||
        a->shape[1] != i->latent_channels) {
        npy_free(a);
        if (any_size)
            return cli_fail("%s: expected float32 of shape (N, %d, h, w)", path,
                            i->latent_channels);
        return cli_fail("%s: expected float32 of shape (N, %d, %d, %d)", path,
                        i->latent_channels, i->latent_size, i->latent_size);
    }
    if (any_size ? a->shape[2] < 1 || a->shape[2] > DITD_DECODE_MAX_LATENT || a->shape[3] < 1 ||
                   a->shape[3] > DITD_DECODE_MAX_LATENT
                 : a->shape[2] != i->latent_size || a->shape[3] != i->latent_size) {
        const long long h = a->shape[2], w = a->shape[3];
        npy_free(a);
        if (any_size)
            return cli_fail("%s: a %lld x %lld latent; the decoder takes 1 to %d cells per side "
                            "(images up to %d px)", path, h, w, DITD_DECODE_MAX_LATENT,
                            DITD_DECODE_MAX_LATENT * (i->image_size / i->latent_size));
        return cli_fail("%s: expected float32 of shape (N, %d, %d, %d)", path,
                        i->latent_channels, i->latent_size, i->latent_size);
    }
    return 0;
}

/* Write (n, c, h, w) float32 as .npy; 0 or 1 after printing why. */
static int write_nchw(const char *path, const float *data, int n, int c, int h, int w)
{
    char err[DITD_ERR_LEN];
    const int64_t shape[4] = { n, c, h, w };
    if (npy_write(path, NPY_F32, 4, shape, data, err, sizeof(err)) != 0)
        return cli_fail("%s", err);
    return 0;
}

int cmd_forward(int argc, char **argv)
{
    struct tensor_opts o = { 0 };
    struct npy_array x = { 0 };
    struct ditd_model *m = NULL;
    struct ditd_worker *w = NULL;
    int *t = NULL, *y = NULL, nt = 0, ny = 0, rc = parse(argc, argv, forward_help, &o);
    float *out = NULL;
    char err[DITD_ERR_LEN];

    if (rc)
        return rc < 0 ? 2 : 0;
    if (!o.x || !o.t || !o.y)
        return cli_fail("--x, --t and --y are required"), 2;
    rc = 1;
    if (!(m = cli_model(o.model, o.precision, o.precision_set)))
        goto out;
    const struct ditd_model_info *i = ditd_model_info(m);
    if (read_latents(o.x, i, 0, &x) != 0 ||
        cli_int_list(o.t, 0, 999, "--t", &t, &nt) != 0 ||
        cli_int_list(o.y, 0, i->num_classes, "--y", &y, &ny) != 0)
        goto out;
    const int n = (int)x.shape[0];
    if (nt != n || ny != n) {
        cli_fail("the batch has %d rows but --t has %d values and --y %d", n, nt, ny);
        goto out;
    }
    const int oc = i->learn_sigma ? 2 * i->latent_channels : i->latent_channels;
    out = malloc(sizeof(float) * (size_t)n * oc * i->latent_size * i->latent_size);
    if (!out || ditd_worker_new(&w, m, n, (int)o.threads, err, sizeof(err)) != 0) {
        cli_fail("%s", out ? err : "out of memory");
        goto out;
    }
    if (ditd_forward(w, x.data, t, y, n, out) != 0) {
        cli_fail("forward pass failed");
        goto out;
    }
    rc = write_nchw(o.out, out, n, oc, i->latent_size, i->latent_size);
out:
    ditd_worker_free(w);
    ditd_model_free(m);
    npy_free(&x);
    free(t);
    free(y);
    free(out);
    return rc;
}

static int write_png_file(const char *path, const float *img, int channels, int h, int w)
{
    const size_t plane = (size_t)h * w;
    uint8_t *rgb = malloc(plane * 3), *png = NULL;
    size_t len;
    int rc = 1;
    if (!rgb)
        return cli_fail("out of memory");
    for (size_t p = 0; p < plane; p++)
        for (int c = 0; c < 3; c++) {
            float v = 127.5f * img[(size_t)(c < channels ? c : 0) * plane + p] + 128.0f;
            rgb[p * 3 + c] = (uint8_t)(v > 0.0f ? (v < 255.0f ? v : 255.0f) : 0.0f);
        }
    if (ditd_png_encode(rgb, w, h, 3, NULL, 0, &png, &len) == 0) {
        FILE *f = fopen(path, "wb");
        if (f && fwrite(png, 1, len, f) == len && fclose(f) == 0)
            rc = 0;
        else if (f)
            fclose(f);
    }
    if (rc)
        cli_fail("cannot write %s", path);
    free(rgb);
    free(png);
    return rc;
}

int cmd_decode(int argc, char **argv)
{
    struct tensor_opts o = { 0 };
    struct npy_array z = { 0 };
    struct ditd_model *m = NULL;
    float *out = NULL;
    char err[DITD_ERR_LEN];
    int rc = parse(argc, argv, decode_help, &o);

    if (rc)
        return rc < 0 ? 2 : 0;
    if (!o.latent)
        return cli_fail("--latent is required"), 2;
    rc = 1;
    if (!(m = cli_model(o.model, o.precision, o.precision_set)))
        goto out;
    const struct ditd_model_info *i = ditd_model_info(m);
    if (read_latents(o.latent, i, 1, &z) != 0)
        goto out;
    const int n = (int)z.shape[0], lh = (int)z.shape[2], lw = (int)z.shape[3];
    const int f = i->image_size / i->latent_size, h = lh * f, w = lw * f;
    const int channels = i->image_channels;
    out = malloc(sizeof(float) * (size_t)n * channels * h * w);
    if (!out) {
        cli_fail("out of memory for %d decoded images of %d x %d", n, h, w);
        goto out;
    }
    if (ditd_decode_any(m, z.data, n, lh, lw, (int)o.threads, out, err, sizeof(err)) != 0) {
        cli_fail("%s", err);
        goto out;
    }
    const size_t len = strlen(o.out);
    if (len > 4 && strcmp(o.out + len - 4, ".png") == 0)
        rc = write_png_file(o.out, out, channels, h, w);
    else
        rc = write_nchw(o.out, out, n, channels, h, w);
out:
    ditd_model_free(m);
    npy_free(&z);
    free(out);
    return rc;
}

int cmd_schedule(int argc, char **argv)
{
    struct tensor_opts o = { .steps = 250 };
    struct schedule s;
    char err[DITD_ERR_LEN];
    int rc = parse(argc, argv, schedule_help, &o);

    if (rc)
        return rc < 0 ? 2 : 0;
    if (o.spacing && strcmp(o.spacing, "uniform") && strcmp(o.spacing, "ddim"))
        return cli_fail("--spacing must be uniform or ddim"), 2;
    if (schedule_init(&s, (int)o.steps, o.spacing && strcmp(o.spacing, "ddim") == 0,
                      err, sizeof(err)) != 0)
        return cli_fail("%s", err);
    double *table = malloc(sizeof(double) * 8 * (size_t)s.steps);
    if (!table) {
        schedule_free(&s);
        return cli_fail("out of memory");
    }
    for (int j = 0; j < s.steps; j++) {
        const double row[8] = {
            s.timestep[j], s.beta[j], s.alphas_cumprod[j], s.alphas_cumprod_prev[j],
            s.posterior_variance[j], s.posterior_log_var[j], s.posterior_mean_coef1[j],
            s.posterior_mean_coef2[j],
        };
        memcpy(table + 8 * (size_t)j, row, sizeof(row));
    }
    const int64_t shape[2] = { s.steps, 8 };
    rc = npy_write(o.out, NPY_F64, 2, shape, table, err, sizeof(err)) != 0 ? cli_fail("%s", err) : 0;
    free(table);
    schedule_free(&s);
    return rc;
}
