/*
 * cmd_generate.c - `dit generate`: sample images of one class and write
 * them as PNG (one image, a grid, or one file per image), with the engine's
 * metadata (every parameter the pixels depend on) in text chunks; or make
 * them again from such a PNG (--from).
 */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "npy.h"

static const char help[] =
    "usage: dit generate [--model DIR] --class N|NAME [options] -o out.png\n"
    "       dit generate --from made.png [options] -o again.png\n"
    "\n"
    "  --model DIR        model directory (default: the bundled model)\n"
    "  --class N|NAME     class id or name, e.g. 7 or sneaker\n"
    "  --cfg S            classifier-free guidance scale (default " CLI_STR(DITD_DEFAULT_CFG)
    "; <= 1 disables it)\n"
    "  --steps K          sampling steps, respaced from the 1000 training steps (default "
    CLI_STR(DITD_DEFAULT_STEPS) ")\n"
    "  --sampler NAME     ddpm, ddim or dpm++2m (default " DITD_DEFAULT_SAMPLER ")\n"
    "  --spacing NAME     uniform (default) or ddim: which K of the 1000 steps are visited\n"
    "  --eta E            ddim noise, 0 (default, deterministic) to 1\n"
    "  --seed S           seed, 0 to 2^63-1 (default: drawn at random and printed)\n"
    "  --n K              images to make (default 1); several go into one grid PNG\n"
    "  --index I          number of the first image (default 0): image k uses the noise\n"
    "                     stream (S, I + k), so --index 5 alone remakes image 5 of --n 8\n"
    "  --from FILE        take every parameter from a PNG made by dit or ditd; flags given\n"
    "                     as well override it\n"
    "  --any-model        with --from: go on even if the model differs from the PNG's\n"
    "  --batch B          images per forward pass (default min(n, 8))\n"
    "  --threads T        compute threads (default: all cores)\n"
    CLI_PRECISION_HELP
    "                     (with --from: the PNG's precision unless given)\n"
    "  -o FILE            output PNG\n"
    "  --outdir DIR       write each image as DIR/NNNNNN.png (NNNNNN = its index) instead\n"
    "                     of a grid\n"
    "  --force            let --outdir replace existing files\n"
    "  --latent-out FILE  also write the final latents (n, C, L, L) as .npy\n"
    "  --quiet            no progress bar, no seed line\n"
    CLI_COMMON_HELP
    "\n"
    "The defaults are the daemon's (include/ditd.h), so the same parameters make the\n"
    "same PNG, byte for byte, from dit and from ditd.\n";

struct gen_opts {
    const char *model, *class_name, *out, *outdir, *latent_out, *from;
    struct ditd_params p;
    struct ditd_png_origin origin;     /* what --from's PNG says */
    int n, batch, threads, quiet, force, any_model, seed_given;
    enum ditd_precision precision;
    int precision_set;
};

/* Read FILE's metadata into o->origin and take its parameters as the base. */
static int load_origin(struct gen_opts *o, const char *path)
{
    char err[DITD_ERR_LEN];
    uint8_t *png = NULL;
    size_t len = 0;
    FILE *f = fopen(path, "rb");

    struct stat st;

    if (f && fstat(fileno(f), &st) == 0) {
        /* Metadata sits in the first kilobytes, but a chunk may follow the
         * pixels: read it all, within reason for a generated image. */
        const off_t max = 256 << 20;
        len = (size_t)(st.st_size < max ? st.st_size : max);
        png = malloc(len ? len : 1);
        if (png)
            len = fread(png, 1, len, f);
    }
    if (f)
        fclose(f);
    if (!f || !png) {
        free(png);
        return cli_fail("--from %s: %s", path, f ? "cannot read it" : strerror(errno)), -1;
    }
    int rc = ditd_png_metadata_read(png, len, &o->origin, err, sizeof(err));
    free(png);
    if (rc != 0)
        return cli_fail("--from %s: %s", path, err), -1;
    o->p = o->origin.params;
    o->n = o->origin.count;
    o->seed_given = 1;
    return 0;
}

static int parse(int argc, char **argv, struct gen_opts *o)
{
    enum { O_INDEX = 1000, O_FROM, O_FORCE, O_ANY_MODEL, O_VERBOSE, O_PRECISION };
    static const struct option longopts[] = {
        { "model", required_argument, 0, 'm' }, { "class", required_argument, 0, 'c' },
        { "cfg", required_argument, 0, 'g' }, { "steps", required_argument, 0, 's' },
        { "sampler", required_argument, 0, 'S' }, { "spacing", required_argument, 0, 'P' },
        { "eta", required_argument, 0, 'e' }, { "seed", required_argument, 0, 'r' },
        { "n", required_argument, 0, 'n' }, { "batch", required_argument, 0, 'b' },
        { "threads", required_argument, 0, 't' }, { "outdir", required_argument, 0, 'O' },
        { "latent-out", required_argument, 0, 'L' }, { "quiet", no_argument, 0, 'q' },
        { "index", required_argument, 0, O_INDEX }, { "from", required_argument, 0, O_FROM },
        { "force", no_argument, 0, O_FORCE }, { "any-model", no_argument, 0, O_ANY_MODEL },
        { "verbose", no_argument, 0, O_VERBOSE }, { "precision", required_argument, 0, O_PRECISION },
        { "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 },
    };
    long long v, index = -1;
    double d;
    int ch;

    ditd_params_default(&o->p);
    o->n = 1;
    o->threads = cli_default_threads();
    /* --from first, whatever its position: the other flags override it. */
    opterr = 0;
    while ((ch = getopt_long(argc, argv, "o:h", longopts, NULL)) != -1)
        if (ch == O_FROM)
            o->from = optarg;
    opterr = 1;
    optind = 0;
    if (o->from && load_origin(o, o->from) != 0)
        return -1;
    while ((ch = getopt_long(argc, argv, "o:h", longopts, NULL)) != -1) {
        switch (ch) {
        case 'm': o->model = optarg; break;
        case 'c': o->class_name = optarg; break;
        case 'o': o->out = optarg; break;
        case 'O': o->outdir = optarg; break;
        case 'L': o->latent_out = optarg; break;
        case 'q': o->quiet = 1; break;
        case O_FROM: break;
        case O_FORCE: o->force = 1; break;
        case O_ANY_MODEL: o->any_model = 1; break;
        case O_VERBOSE: cli_verbose = 1; break;
        case O_PRECISION:
            if (cli_precision(optarg, &o->precision)) return -1;
            o->precision_set = 1;
            break;
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
            o->seed_given = 1;
            break;
        case O_INDEX:
            if (cli_int(optarg, 0, UINT32_MAX, "--index", &index)) return -1;
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
    if (!o->class_name && !o->from)
        return cli_fail("--class is required (an id, or a name such as sneaker)"), -1;
    if (!o->out && !o->outdir && !o->latent_out)
        return cli_fail("say where to write: -o out.png, --outdir DIR or --latent-out z.npy"), -1;
    if (index >= 0)
        o->p.index = (uint32_t)index;
    if ((uint64_t)o->p.index + (uint64_t)o->n - 1 > UINT32_MAX)
        return cli_fail("--index %u with --n %d runs past image number %u",
                        o->p.index, o->n, UINT32_MAX), -1;
    if (!o->seed_given) {
        o->p.seed = ditd_seed_random();
        if (!o->quiet)
            fprintf(stderr, "dit: seed %llu (drawn at random; --seed %llu makes the same "
                    "images again)\n", (unsigned long long)o->p.seed,
                    (unsigned long long)o->p.seed);
    }
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

/* exclusive: fail rather than replace an existing file. */
static int write_png(const char *path, bool exclusive, const uint8_t *rgb, int w, int h,
                     const struct ditd_png_meta *meta)
{
    uint8_t *png;
    size_t len;
    if (ditd_png_encode(rgb, w, h, 3, meta->text, meta->n, &png, &len) != 0)
        return cli_fail("cannot encode %s", path);
    FILE *f = fopen(path, exclusive ? "wbx" : "wb");
    if (!f || fwrite(png, 1, len, f) != len || fclose(f) != 0) {
        const int e = errno;
        if (f)
            fclose(f);
        free(png);
        if (e == EEXIST)
            return cli_fail("%s already exists; pass --force to overwrite it", path);
        return cli_fail("cannot write %s: %s", path, strerror(e));
    }
    free(png);
    return 0;
}

static void outdir_path(char *buf, size_t len, const struct gen_opts *o, int k)
{
    snprintf(buf, len, "%s/%06llu.png", o->outdir, (unsigned long long)o->p.index + (unsigned)k);
}

/* Before any compute: the output directory exists (or is made) and, without
 * --force, none of the files to write is there yet. */
static int check_outdir(const struct gen_opts *o)
{
    char path[4096];

    if (!o->outdir)
        return 0;
    if (mkdir(o->outdir, 0777) != 0 && errno != EEXIST)
        return cli_fail("cannot create %s: %s", o->outdir, strerror(errno));
    if (access(o->outdir, W_OK) != 0)
        return cli_fail("cannot write into %s: %s", o->outdir, strerror(errno));
    for (int k = 0; k < o->n && !o->force; k++) {
        outdir_path(path, sizeof(path), o, k);
        if (access(path, F_OK) == 0)
            return cli_fail("%s already exists; pass --force to overwrite it%s", path,
                            o->n > 1 ? " (and the other images of this run)" : "");
    }
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
    const int size = ditd_model_info(m)->image_size;
    struct ditd_png_meta meta;
    char path[4096];

    for (int k = 0; o->outdir && k < o->n; k++) {
        struct ditd_params p = o->p;
        p.index += (uint32_t)k;
        ditd_png_metadata(m, &p, 1, &meta);
        outdir_path(path, sizeof(path), o, k);
        if (write_png(path, !o->force, rgb + (size_t)k * size * size * 3, size, size, &meta))
            return 1;
    }
    if (!o->out)
        return 0;
    ditd_png_metadata(m, &o->p, o->n, &meta);
    if (o->n == 1)
        return write_png(o->out, false, rgb, size, size, &meta);
    int gw, gh;
    uint8_t *grid = make_grid(rgb, o->n, size, &gw, &gh);
    if (!grid)
        return cli_fail("out of memory for the grid");
    int rc = write_png(o->out, false, grid, gw, gh, &meta);
    free(grid);
    return rc;
}

/* Value of key in meta, "" when absent. */
static const char *meta_value(const struct ditd_png_meta *meta, const char *key)
{
    for (int i = 0; i < meta->n; i++)
        if (strcmp(meta->text[i].key, key) == 0)
            return meta->text[i].value;
    return "";
}

/* --from: the image is only the same with the same weights and precision. */
static int check_origin(const struct gen_opts *o, const struct ditd_model *m)
{
    static const char *const keys[] = { "model_id", "precision" };
    const char *recorded[] = { o->origin.model_id, o->origin.precision };
    struct ditd_png_meta now;

    ditd_png_metadata(m, &o->p, 1, &now);
    for (int i = 0; i < 2; i++) {
        const char *have = meta_value(&now, keys[i]);
        if (strcmp(recorded[i], have) == 0)
            continue;
        if (o->any_model) {
            fprintf(stderr, "dit: warning: %s was made with %s %s, this run uses %s: the image "
                    "will differ (--any-model)\n", o->from, keys[i],
                    recorded[i][0] ? recorded[i] : "(unrecorded)", have);
            continue;
        }
        if (i == 1)
            return cli_fail("%s was made at precision %s, this run computes in %s, so the "
                            "image would differ; drop --precision (or give --precision %s), "
                            "or pass --any-model to make it anyway", o->from, recorded[i],
                            have, recorded[i]);
        return cli_fail("%s was made with model_id %s (model %s), but this run has model_id %s "
                        "(model %s from %s), so the image would differ; pass --model with the "
                        "model it names, or --any-model to make it anyway", o->from,
                        recorded[i][0] ? recorded[i] : "(unrecorded)",
                        o->origin.model[0] ? o->origin.model : "?", have,
                        ditd_model_info(m)->name, ditd_model_info(m)->path);
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
    /* --from remakes the image at the precision it was made with. */
    if (o.from && !o.precision_set && o.origin.precision[0] &&
        ditd_precision_parse(o.origin.precision, &o.precision) != 0) {
        cli_fail("%s records precision \"%s\", which this dit does not know", o.from,
                 o.origin.precision);
        goto out;
    }
    if (!(m = cli_model(o.model, o.precision, o.precision_set)))
        goto out;
    const struct ditd_model_info *info = ditd_model_info(m);
    if (o.class_name)
        o.p.class_id = ditd_model_class(m, o.class_name);
    if (o.p.class_id < 0) {
        cli_fail("unknown class \"%s\": use an id from 0 to %d or a name (dit info lists them)",
                 o.class_name, info->num_classes - 1);
        goto out;
    }
    if (o.from && check_origin(&o, m) != 0)
        goto out;
    if (check_outdir(&o) != 0)
        goto out;
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
            p.index += (uint32_t)(first + k);
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
