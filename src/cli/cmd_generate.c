/*
 * cmd_generate.c - `dit generate`: sample images of one class and write
 * them as PNG (one image, a grid, or one file per image), with the
 * generation parameters in the PNG's tEXt chunks.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "ditd-build.h"
#include "npy.h"

static const char help[] =
    "usage: dit generate [--model DIR] --class N|NAME [options] -o out.png\n"
    "\n"
    "  --model DIR        model directory (default: the bundled model)\n"
    "  --class N|NAME     class id or name, e.g. 7 or sneaker\n"
    "  --cfg S            classifier-free guidance scale (default 4; <= 1 disables it)\n"
    "  --steps K          sampling steps, respaced from the 1000 training steps (default 250)\n"
    "  --sampler NAME     ddpm (default), ddim or dpm++2m\n"
    "  --spacing NAME     uniform (default) or ddim: which K of the 1000 steps are visited\n"
    "  --eta E            ddim noise, 0 (default, deterministic) to 1\n"
    "  --seed S           seed (default 0); image k uses the noise stream (S, k)\n"
    "  --n K              images to make (default 1); several go into one grid PNG\n"
    "  --batch B          images per forward pass (default min(n, 8))\n"
    "  --threads T        compute threads (default: all cores)\n"
    "  -o FILE            output PNG\n"
    "  --outdir DIR       write each image as DIR/NNNNNN.png instead of a grid\n"
    "  --latent-out FILE  also write the final latents (n, C, L, L) as .npy\n"
    "  --quiet            no progress bar\n";

struct gen_opts {
    const char *model, *class_name, *out, *outdir, *latent_out;
    struct ditd_params p;
    int n, batch, threads, quiet;
};

static int parse(int argc, char **argv, struct gen_opts *o)
{
    static const struct option longopts[] = {
        { "model", required_argument, 0, 'm' }, { "class", required_argument, 0, 'c' },
        { "cfg", required_argument, 0, 'g' }, { "steps", required_argument, 0, 's' },
        { "sampler", required_argument, 0, 'S' }, { "spacing", required_argument, 0, 'P' },
        { "eta", required_argument, 0, 'e' }, { "seed", required_argument, 0, 'r' },
        { "n", required_argument, 0, 'n' }, { "batch", required_argument, 0, 'b' },
        { "threads", required_argument, 0, 't' }, { "outdir", required_argument, 0, 'O' },
        { "latent-out", required_argument, 0, 'L' }, { "quiet", no_argument, 0, 'q' },
        { "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 },
    };
    long long v;
    double d;
    int ch;

    ditd_params_default(&o->p);
    o->n = 1;
    o->threads = cli_default_threads();
    while ((ch = getopt_long(argc, argv, "o:h", longopts, NULL)) != -1) {
        switch (ch) {
        case 'm': o->model = optarg; break;
        case 'c': o->class_name = optarg; break;
        case 'o': o->out = optarg; break;
        case 'O': o->outdir = optarg; break;
        case 'L': o->latent_out = optarg; break;
        case 'q': o->quiet = 1; break;
        case 'g':
            if (cli_float(optarg, 0, 100, "--cfg", &d)) return -1;
            o->p.cfg = (float)d;
            break;
        case 'e':
            if (cli_float(optarg, 0, 1, "--eta", &d)) return -1;
            o->p.eta = (float)d;
            break;
        case 's':
            if (cli_int(optarg, 1, 1000, "--steps", &v)) return -1;
            o->p.steps = (int)v;
            break;
        case 'r':
            if (cli_int(optarg, 0, INT64_MAX, "--seed", &v)) return -1;
            o->p.seed = (uint64_t)v;
            break;
        case 'n':
            if (cli_int(optarg, 1, 100000, "--n", &v)) return -1;
            o->n = (int)v;
            break;
        case 'b':
            if (cli_int(optarg, 1, 256, "--batch", &v)) return -1;
            o->batch = (int)v;
            break;
        case 't':
            if (cli_int(optarg, 1, 256, "--threads", &v)) return -1;
            o->threads = (int)v;
            break;
        case 'S':
            if (ditd_sampler_parse(optarg, &o->p.sampler) != 0)
                return cli_fail("--sampler must be ddpm, ddim or dpm++2m, got \"%s\"", optarg), -1;
            break;
        case 'P':
            if (strcmp(optarg, "uniform") && strcmp(optarg, "ddim"))
                return cli_fail("--spacing must be uniform or ddim"), -1;
            o->p.ddim_spacing = strcmp(optarg, "ddim") == 0;
            break;
        case 'h':
            fputs(help, stdout);
            return 1;
        default:
            fputs(help, stderr);
            return -1;
        }
    }
    if (optind < argc)
        return cli_fail("unexpected argument \"%s\"; see dit generate --help", argv[optind]), -1;
    if (!o->class_name)
        return cli_fail("--class is required (an id, or a name such as sneaker)"), -1;
    if (!o->out && !o->outdir && !o->latent_out)
        return cli_fail("say where to write: -o out.png, --outdir DIR or --latent-out z.npy"), -1;
    if (!o->batch)
        o->batch = o->n < 8 ? o->n : 8;
    return 0;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void progress(long done, long total, double started)
{
    const int width = 30;
    double el = now_s() - started;
    double left = done ? el * (double)(total - done) / (double)done : 0;
    int fill = (int)(width * done / (total ? total : 1));
    fprintf(stderr, "\r[%.*s%*s] %ld/%ld steps, %.1f s, %.1f s left ",
            fill, "##############################", width - fill, "", done, total, el, left);
    if (done == total)
        fputc('\n', stderr);
}

static int write_png(const char *path, const uint8_t *rgb, int w, int h,
                     const struct ditd_png_text *text, int ntext)
{
    uint8_t *png;
    size_t len;
    if (ditd_png_encode(rgb, w, h, 3, text, ntext, &png, &len) != 0)
        return cli_fail("cannot encode %s", path);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(png, 1, len, f) != len || fclose(f) != 0) {
        if (f)
            fclose(f);
        free(png);
        return cli_fail("cannot write %s: %s", path, strerror(errno));
    }
    free(png);
    return 0;
}

/* n images of size s into rows of up to 8, 2-pixel black borders. */
static uint8_t *make_grid(const uint8_t *rgb, int n, int s, int *gw, int *gh)
{
    const int cols = n < 8 ? n : 8, rows = (n + cols - 1) / cols;
    *gw = cols * (s + 2) + 2;
    *gh = rows * (s + 2) + 2;
    uint8_t *g = calloc((size_t)*gw * *gh * 3, 1);
    if (!g)
        return NULL;
    for (int k = 0; k < n; k++) {
        const int x0 = 2 + (k % cols) * (s + 2), y0 = 2 + (k / cols) * (s + 2);
        for (int y = 0; y < s; y++)
            memcpy(g + ((size_t)(y0 + y) * *gw + x0) * 3, rgb + ((size_t)k * s * s + (size_t)y * s) * 3,
                   (size_t)s * 3);
    }
    return g;
}

static int write_outputs(const struct gen_opts *o, const struct ditd_model *m, const uint8_t *rgb)
{
    const struct ditd_model_info *info = ditd_model_info(m);
    const int s = info->image_size;
    char cls[160], cfg[32], steps[32], seed[32], eta[32], index[32];
    const char *name = info->class_names[o->p.class_id];

    snprintf(cls, sizeof(cls), "%d%s%s", o->p.class_id, name ? " " : "", name ? name : "");
    snprintf(cfg, sizeof(cfg), "%g", o->p.cfg);
    snprintf(steps, sizeof(steps), "%d%s", o->p.steps, o->p.ddim_spacing ? " (ddim spacing)" : "");
    snprintf(seed, sizeof(seed), "%llu", (unsigned long long)o->p.seed);
    snprintf(eta, sizeof(eta), "%g", o->p.eta);
    struct ditd_png_text text[] = {
        { "Software", "ditd " DITD_VERSION }, { "model", info->name }, { "class", cls },
        { "cfg", cfg }, { "steps", steps }, { "sampler", ditd_sampler_name(o->p.sampler) },
        { "eta", eta }, { "seed", seed }, { "index", index },
    };
    const int ntext = sizeof(text) / sizeof(text[0]);

    if (o->outdir) {
        if (mkdir(o->outdir, 0777) != 0 && access(o->outdir, W_OK) != 0)
            return cli_fail("cannot create %s: %s", o->outdir, strerror(errno));
        for (int k = 0; k < o->n; k++) {
            char path[4096];
            snprintf(index, sizeof(index), "%d", k);
            snprintf(path, sizeof(path), "%s/%06d.png", o->outdir, k);
            if (write_png(path, rgb + (size_t)k * s * s * 3, s, s, text, ntext))
                return 1;
        }
    }
    if (o->out) {
        if (o->n == 1) {
            snprintf(index, sizeof(index), "0");
            return write_png(o->out, rgb, s, s, text, ntext);
        }
        int gw, gh;
        uint8_t *grid = make_grid(rgb, o->n, s, &gw, &gh);
        if (!grid)
            return cli_fail("out of memory for the grid");
        snprintf(index, sizeof(index), "0-%d", o->n - 1);
        int rc = write_png(o->out, grid, gw, gh, text, ntext);
        free(grid);
        return rc;
    }
    return 0;
}

int cmd_generate(int argc, char **argv)
{
    struct gen_opts o = { 0 };
    struct ditd_model *m = NULL;
    struct ditd_worker *w = NULL;
    struct ditd_image **imgs = NULL;
    uint8_t *rgb = NULL;
    float *latents = NULL;
    char err[DITD_ERR_LEN];
    int rc = parse(argc, argv, &o);

    if (rc)
        return rc < 0 ? 2 : 0;
    rc = 1;
    if (!(m = cli_model(o.model)))
        goto out;
    const struct ditd_model_info *info = ditd_model_info(m);
    o.p.class_id = ditd_model_class(m, o.class_name);
    if (o.p.class_id < 0) {
        cli_fail("unknown class \"%s\": use an id from 0 to %d or a name (dit info lists them)",
                 o.class_name, info->num_classes - 1);
        goto out;
    }
    if (ditd_params_check(m, &o.p, err, sizeof(err)) != 0) {
        cli_fail("%s", err);
        goto out;
    }
    const int rows_per = o.p.cfg > 1.0f ? 2 : 1;
    const size_t lat = (size_t)info->latent_channels * info->latent_size * info->latent_size;
    const size_t pix = (size_t)info->image_size * info->image_size * 3;
    imgs = calloc((size_t)o.n, sizeof(*imgs));
    rgb = malloc(pix * (size_t)o.n);
    latents = malloc(sizeof(float) * lat * (size_t)o.n);
    if (!imgs || !rgb || !latents) {
        cli_fail("out of memory for %d images", o.n);
        goto out;
    }
    if (ditd_worker_new(&w, m, o.batch * rows_per, o.threads, err, sizeof(err)) != 0) {
        cli_fail("%s", err);
        goto out;
    }

    const int show = !o.quiet && isatty(2);
    const long total = (long)o.n * o.p.steps;
    const double started = now_s();
    long done = 0;
    for (int first = 0; first < o.n; first += o.batch) {
        const int count = o.n - first < o.batch ? o.n - first : o.batch;
        for (int k = 0; k < count; k++) {
            struct ditd_params p = o.p;
            p.index = (uint32_t)(first + k);
            if (ditd_image_new(&imgs[first + k], m, &p, err, sizeof(err)) != 0) {
                cli_fail("%s", err);
                goto out;
            }
        }
        for (int step = 0; step < o.p.steps; step++) {
            if (ditd_step(w, imgs + first, count) != 0) {
                cli_fail("denoising step failed");
                goto out;
            }
            done += count;
            if (show)
                progress(done, total, started);
        }
        if (ditd_decode(w, imgs + first, count, rgb + pix * (size_t)first) != 0) {
            cli_fail("decoding failed");
            goto out;
        }
        for (int k = 0; k < count; k++)
            memcpy(latents + lat * (size_t)(first + k), ditd_image_latent(imgs[first + k]),
                   sizeof(float) * lat);
    }
    if (o.latent_out) {
        const int64_t shape[4] = { o.n, info->latent_channels, info->latent_size, info->latent_size };
        if (npy_write(o.latent_out, NPY_F32, 4, shape, latents, err, sizeof(err)) != 0) {
            cli_fail("%s", err);
            goto out;
        }
    }
    rc = write_outputs(&o, m, rgb);

out:
    for (int k = 0; imgs && k < o.n; k++)
        ditd_image_free(imgs[k]);
    free(imgs);
    free(rgb);
    free(latents);
    ditd_worker_free(w);
    ditd_model_free(m);
    return rc;
}
