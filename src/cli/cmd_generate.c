/*
 * cmd_generate.c - `dit generate`: sample images of one class or of many
 * and write them as PNG (one image, a grid, or one file per image) with the
 * engine's metadata (every parameter the pixels depend on) in text chunks,
 * and/or as one NumPy .npz of uint8 images and labels, the form FID tools
 * read; or make them again from such a PNG (--from).
 *
 * Runs of tens of thousands of images are the point of --outdir and --npz:
 * each batch is written as soon as it is decoded, so memory stays that of
 * one batch and an interrupted run keeps what it finished (--resume then
 * makes the rest, outdir.c).
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "npy.h"
#include "npz.h"
#include "outdir.h"

static const char help[] =
    "usage: dit generate [--model DIR] --class C [options] -o out.png|--outdir DIR|--npz F\n"
    "       dit generate --from made.png [options] -o again.png\n"
    "\n"
    "  --model DIR        model directory (default: the bundled model)\n"
    "  --class C          class id or name, e.g. 7 or sneaker; or several: 3,7,bag, 0-9\n"
    "                     or all, with --n images of each, in that order\n"
    "  --cfg S            classifier-free guidance scale (default " CLI_STR(DITD_DEFAULT_CFG)
    "; <= 1 disables it)\n"
    "  --steps K          sampling steps, respaced from the 1000 training steps (default "
    CLI_STR(DITD_DEFAULT_STEPS) ")\n"
    "  --sampler NAME     ddpm, ddim or dpm++2m (default " DITD_DEFAULT_SAMPLER ")\n"
    "  --spacing NAME     uniform (default) or ddim: which K of the 1000 steps are visited\n"
    "  --eta E            ddim noise, 0 (default, deterministic) to 1\n"
    "  --seed S           seed, 0 to 2^63-1 (default: drawn at random and printed)\n"
    "  --n K              images to make of each class (default 1); several go into one\n"
    "                     grid PNG\n"
    "  --index I          number of the first image (default 0): image k of the run uses\n"
    "                     the noise stream (S, I + k), so --index 5 alone remakes image 5\n"
    "                     of --n 8, and image k of class list position c is c * n + k\n"
    "  --from FILE        take every parameter from a PNG made by dit or ditd; flags given\n"
    "                     as well override it\n"
    "  --any-model        with --from: go on even if the model differs from the PNG's\n"
    "  --batch B          images per forward pass (default min(n, 8))\n"
    "  --threads T        compute threads (default: all cores)\n"
    CLI_PRECISION_HELP
    "                     (with --from: the PNG's precision unless given)\n"
    "  -o FILE            output PNG (one class only: its metadata names one)\n"
    "  --outdir DIR       write each image as DIR/NNNNNN.png (NNNNNN = its index) instead\n"
    "                     of a grid\n"
    "  --npz FILE         also write every image into one NumPy archive: arr_0 uint8\n"
    "                     (N, H, W, 3), arr_1 int64 class labels (N), as FID tools read\n"
    "  --resume           with --outdir: make only the images whose PNG is not there yet\n"
    "                     (or was cut short), after checking that the PNGs there were\n"
    "                     made with the same model and parameters; --npz is then\n"
    "                     written afresh from the PNGs\n"
    "  --force            let --outdir and --npz replace existing files\n"
    "  --latent-out FILE  also write the final latents (n, C, L, L) as .npy\n"
    "  --quiet            no progress bar, no seed line\n"
    CLI_COMMON_HELP
    "\n"
    "The defaults are the daemon's (include/ditd.h), so the same parameters make the\n"
    "same PNG, byte for byte, from dit and from ditd.\n";

struct gen_opts {
    const char *model, *class_name, *out, *outdir, *npz, *latent_out, *from;
    struct ditd_params p;
    struct ditd_png_origin origin;     /* what --from's PNG says */
    int n, batch, threads, quiet, force, resume, any_model, seed_given;
    enum ditd_precision precision;
    int precision_set;
    int *classes, nclasses;            /* resolved --class list, once the model is loaded */
    long total;                        /* nclasses * n images */
};

/* The class of image g (0 .. total - 1) of the run: n of each, in order. */
static int image_class(const struct gen_opts *o, long g)
{
    return o->classes[g / o->n];
}

/* The parameters of image g of the run. */
static struct ditd_params image_params(const struct gen_opts *o, long g)
{
    struct ditd_params p = o->p;
    p.class_id = image_class(o, g);
    p.index += (uint32_t)g;
    return p;
}

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
    enum { O_INDEX = 1000, O_FROM, O_FORCE, O_ANY_MODEL, O_VERBOSE, O_PRECISION, O_NPZ, O_RESUME };
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
        { "npz", required_argument, 0, O_NPZ }, { "resume", no_argument, 0, O_RESUME },
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
        case O_NPZ: o->npz = optarg; break;
        case 'L': o->latent_out = optarg; break;
        case 'q': o->quiet = 1; break;
        case O_FROM: break;
        case O_FORCE: o->force = 1; break;
        case O_RESUME: o->resume = 1; break;
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
    if (!o->out && !o->outdir && !o->npz && !o->latent_out)
        return cli_fail("say where to write: -o out.png, --outdir DIR, --npz FILE or "
                        "--latent-out z.npy"), -1;
    if (o->resume && (!o->outdir || o->out || o->latent_out || o->force))
        return cli_fail("--resume continues an --outdir run, file by file; it cannot finish "
                        "a grid (-o) or --latent-out, which are written whole, and it keeps "
                        "files that --force would replace"), -1;
    if (index >= 0)
        o->p.index = (uint32_t)index;
    if (!o->seed_given)
        o->p.seed = ditd_seed_random();
    return 0;
}

/* What follows from the class list: the image count, the index range, the
 * batch, and which outputs can hold several classes. */
static int plan_run(struct gen_opts *o)
{
    o->total = (long)o->nclasses * o->n;
    if ((uint64_t)o->p.index + (uint64_t)o->total - 1 > UINT32_MAX)
        return cli_fail("--index %u with %ld images runs past image number %u",
                        o->p.index, o->total, UINT32_MAX);
    if (o->out && o->nclasses > 1)
        return cli_fail("-o writes images of one class (its metadata names one); for %d "
                        "classes use --outdir DIR or --npz FILE", o->nclasses);
    if (o->out && o->total > 4096)
        return cli_fail("-o would make a grid of %ld images; use --outdir DIR or --npz FILE "
                        "for that many", o->total);
    if (!o->batch)
        o->batch = o->total < 8 ? (int)o->total : 8;
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

/* Where the images of a run go, batch by batch as they are decoded. */
struct sink {
    int size;                  /* image side, pixels */
    size_t pix, lat;           /* bytes of an RGB image, floats of a latent */
    struct npz *npz;           /* --npz: arr_0 open for appending */
    uint8_t *rgb;              /* -o: every image, for the grid */
    float *latents;            /* --latent-out: every final latent */
};

static int sink_open(struct sink *k, const struct gen_opts *o, const struct ditd_model *m)
{
    const struct ditd_model_info *info = ditd_model_info(m);
    char err[DITD_ERR_LEN];

    k->size = info->image_size;
    k->pix = (size_t)k->size * k->size * 3;
    k->lat = (size_t)info->latent_channels * info->latent_size * info->latent_size;
    if (o->out && !(k->rgb = malloc(k->pix * (size_t)o->total)))
        return cli_fail("out of memory for %ld images", o->total);
    if (o->latent_out && !(k->latents = malloc(sizeof(float) * k->lat * (size_t)o->total)))
        return cli_fail("out of memory for %ld latents", o->total);
    /* A resumed run's archive is made from its PNGs at the end (sink_pack). */
    if (!o->npz || o->resume)
        return 0;
    const int64_t shape[4] = { o->total, k->size, k->size, 3 };
    if (npz_create(&k->npz, o->npz, !o->force, err, sizeof(err)) != 0 ||
        npz_begin(k->npz, "arr_0", NPY_U8, 4, shape, err, sizeof(err)) != 0)
        return cli_fail("%s", err);
    return 0;
}

/* The folder of the --npz file, made (with its parents) as --outdir's is. */
static int npz_folder(const char *path)
{
    char dir[4096];
    const char *slash = strrchr(path, '/');
    int e;

    if (!slash || slash == path)
        return 0;
    if ((size_t)(slash - path) >= sizeof(dir))
        return cli_fail("--npz %s: the path is too long", path);
    memcpy(dir, path, (size_t)(slash - path));
    dir[slash - path] = '\0';
    if ((e = outdir_make_dirs(dir)) != 0)
        return cli_fail("cannot create the folder %s of --npz: %s", dir, strerror(e));
    return 0;
}

/* --resume --npz: arr_0 from every PNG of the finished --outdir, in order
 * (their pixels are the decoded images', PNG being lossless); the archive
 * is written afresh, since an interrupted one is of no use. */
static int sink_pack(struct sink *k, const struct gen_opts *o, uint8_t *rgb)
{
    const int64_t shape[4] = { o->total, k->size, k->size, 3 };
    char path[4096], err[DITD_ERR_LEN];

    if (npz_create(&k->npz, o->npz, false, err, sizeof(err)) != 0 ||
        npz_begin(k->npz, "arr_0", NPY_U8, 4, shape, err, sizeof(err)) != 0)
        return cli_fail("%s", err);
    for (long g = 0; g < o->total; g++) {
        outdir_path(path, sizeof(path), o->outdir, (uint64_t)o->p.index + (uint64_t)g);
        if (outdir_read_rgb(path, k->size, rgb, err, sizeof(err)) != 0)
            return cli_fail("--npz from %s: %s", o->outdir, err);
        if (npz_append(k->npz, rgb, k->pix, err, sizeof(err)) != 0)
            return cli_fail("%s", err);
    }
    return 0;
}

/* Images gs[0 .. count): rgb (count, H, W, 3), imgs their state. They follow
 * each other except where --resume skips images (which only --outdir allows). */
static int sink_batch(struct sink *k, const struct gen_opts *o, const struct ditd_model *m,
                      const long *gs, int count, const uint8_t *rgb,
                      struct ditd_image *const *imgs)
{
    const size_t pix = k->pix;
    struct ditd_png_meta meta;
    char path[4096], err[DITD_ERR_LEN];

    for (int i = 0; o->outdir && i < count; i++) {
        const struct ditd_params p = image_params(o, gs[i]);
        ditd_png_metadata(m, &p, 1, &meta);
        outdir_path(path, sizeof(path), o->outdir, (uint64_t)p.index);
        /* --resume writes only missing images and those cut short. */
        if (write_png(path, !o->force && !o->resume, rgb + pix * (size_t)i, k->size, k->size,
                      &meta))
            return 1;
    }
    if (k->npz && npz_append(k->npz, rgb, pix * (size_t)count, err, sizeof(err)) != 0)
        return cli_fail("%s", err);
    for (int i = 0; k->rgb && i < count; i++)
        memcpy(k->rgb + pix * (size_t)gs[i], rgb + pix * (size_t)i, pix);
    for (int i = 0; k->latents && i < count; i++)
        memcpy(k->latents + k->lat * (size_t)gs[i], ditd_image_latent(imgs[i]),
               sizeof(float) * k->lat);
    return 0;
}

/* After the last batch: the labels, the latents, the PNG or grid. */
static int sink_finish(struct sink *k, const struct gen_opts *o, const struct ditd_model *m)
{
    const struct ditd_model_info *info = ditd_model_info(m);
    char err[DITD_ERR_LEN];

    if (k->npz) {
        const int64_t n = o->total;
        int rc = npz_end(k->npz, err, sizeof(err));
        if (rc == 0)
            rc = npz_begin(k->npz, "arr_1", NPY_I64, 1, &n, err, sizeof(err));
        for (long g = 0; rc == 0 && g < o->total; g++) {
            const int64_t label = image_class(o, g);
            rc = npz_append(k->npz, &label, sizeof(label), err, sizeof(err));
        }
        if (rc == 0)
            rc = npz_end(k->npz, err, sizeof(err));
        if (rc == 0) {
            rc = npz_close(k->npz, err, sizeof(err));
            k->npz = NULL;
        }
        if (rc != 0)
            return cli_fail("%s", err);
    }
    if (k->latents) {
        const int64_t shape[4] = { o->total, info->latent_channels, info->latent_size,
                                   info->latent_size };
        if (npy_write(o->latent_out, NPY_F32, 4, shape, k->latents, err, sizeof(err)) != 0)
            return cli_fail("%s", err);
    }
    if (!k->rgb)
        return 0;
    const struct ditd_params p = image_params(o, 0);
    struct ditd_png_meta meta;
    ditd_png_metadata(m, &p, o->n, &meta);
    if (o->total == 1)
        return write_png(o->out, false, k->rgb, k->size, k->size, &meta);
    int gw, gh;
    uint8_t *grid = make_grid(k->rgb, o->n, k->size, &gw, &gh);
    if (!grid)
        return cli_fail("out of memory for the grid");
    int rc = write_png(o->out, false, grid, gw, gh, &meta);
    free(grid);
    return rc;
}

/* Frees what sink_open took; a half-written --npz is removed. */
static void sink_free(struct sink *k)
{
    npz_discard(k->npz);
    free(k->rgb);
    free(k->latents);
}

/* --from: the image is only the same with the same weights and precision
 * (the model's id and precision are what a PNG's metadata records). */
static int check_origin(const struct gen_opts *o, const struct ditd_model *m)
{
    static const char *const keys[] = { "model_id", "precision" };
    const char *recorded[] = { o->origin.model_id, o->origin.precision };
    const char *now[] = { ditd_model_info(m)->id, ditd_model_info(m)->precision };

    for (int i = 0; i < 2; i++) {
        const char *have = now[i];
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

struct resume_ctx {
    const struct gen_opts *o;
    const struct ditd_model_info *info;  /* its id and precision, as the PNGs record them */
};

/* --resume: is `have` image g of this run? The same model, precision and
 * every parameter the pixels depend on (dit's version may differ). */
static int resume_same(void *arg, long g, const struct ditd_png_origin *have, char *why,
                       size_t len)
{
    const struct resume_ctx *c = arg;
    const struct ditd_params want = image_params(c->o, g), *p = &have->params;

    if (strcmp(have->model_id, c->info->id) != 0)
        snprintf(why, len, "model_id %s, this run %s", have->model_id, c->info->id);
    else if (strcmp(have->precision, c->info->precision) != 0)
        snprintf(why, len, "precision %s, this run %s", have->precision, c->info->precision);
    else if (have->count != 1 || p->index != want.index)
        snprintf(why, len, "image number %u, not %u", p->index, want.index);
    else if (p->class_id != want.class_id)
        snprintf(why, len, "class %d, this run %d", p->class_id, want.class_id);
    else if (p->seed != want.seed)
        snprintf(why, len, "seed %llu, this run %llu", (unsigned long long)p->seed,
                 (unsigned long long)want.seed);
    else if (p->cfg != want.cfg || p->steps != want.steps || p->sampler != want.sampler ||
             p->ddim_spacing != want.ddim_spacing || p->eta != want.eta)
        snprintf(why, len, "cfg %g, %d %s steps, spacing %s, eta %g; this run cfg %g, %d %s "
                 "steps, spacing %s, eta %g", p->cfg, p->steps, ditd_sampler_name(p->sampler),
                 p->ddim_spacing ? "ddim" : "uniform", p->eta, want.cfg, want.steps,
                 ditd_sampler_name(want.sampler), want.ddim_spacing ? "ddim" : "uniform", want.eta);
    else
        return 1;
    return 0;
}

/* Up to o->batch numbers of images still to make, from *next on, into gs. */
static int next_batch(const struct gen_opts *o, const uint8_t *done, long *next, long *gs)
{
    int count = 0;
    for (; *next < o->total && count < o->batch; (*next)++)
        if (!done || !(done[*next / 8] & (1u << (*next % 8))))
            gs[count++] = *next;
    return count;
}

/* Ctrl-C or SIGTERM during a run: stop after the step under way, keep the
 * finished PNGs (a write in progress completes), remove a half-written
 * archive, and say how to finish. A second signal acts as usual. */
static volatile sig_atomic_t stop_signal;

static void on_stop(int sig)
{
    stop_signal = sig;
}

static void catch_stop(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop;
    sa.sa_flags = SA_RESTART | SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

/* The exit status after a stop signal, which it reports. */
static int stopped(const struct gen_opts *o, long kept, int show)
{
    if (show)
        fputc('\n', stderr);
    if (o->outdir)
        cli_fail("stopped by %s: %ld of %ld images are in %s; the same command with --resume "
                 "makes the rest%s", strsignal(stop_signal), kept, o->total, o->outdir,
                 o->npz ? " and the archive" : "");
    else
        cli_fail("stopped by %s; nothing was written", strsignal(stop_signal));
    return 128 + stop_signal;
}

int cmd_generate(int argc, char **argv)
{
    struct gen_opts o = { 0 };
    struct sink sink = { 0 };
    struct ditd_model *m = NULL;
    struct ditd_worker *w = NULL;
    struct ditd_image **imgs = NULL;
    uint8_t *rgb = NULL, *done = NULL;
    long *gs = NULL, skipped = 0, redo = 0;
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
    if (cli_class_list(o.class_name, o.p.class_id, m, &o.classes, &o.nclasses) != 0 ||
        plan_run(&o) != 0)
        goto out;
    o.p.class_id = o.classes[0];
    if (o.from && check_origin(&o, m) != 0)
        goto out;
    if (o.outdir && outdir_prepare(o.outdir, o.p.index, o.total, o.force || o.resume) != 0)
        goto out;
    if (o.resume) {
        struct resume_ctx rc_ctx = { &o, ditd_model_info(m) };
        if (!(done = calloc((size_t)(o.total + 7) / 8, 1))) {
            cli_fail("out of memory for a list of %ld images", o.total);
            goto out;
        }
        if (outdir_survey(o.outdir, o.p.index, o.total, resume_same, &rc_ctx, done, &skipped,
                          &redo) != 0)
            goto out;
        if (!o.quiet)
            fprintf(stderr, "dit: --resume: %ld of %ld images already in %s; %ld to make%s\n",
                    skipped, o.total, o.outdir, o.total - skipped,
                    redo ? " (some over PNGs cut short)" : "");
    }
    if (ditd_params_check(m, &o.p, err, sizeof(err)) != 0) {
        cli_fail("%s", err);
        goto out;
    }
    /* Said once the run is sure to start, not before a refusal. */
    if (!o.seed_given && !o.quiet)
        fprintf(stderr, "dit: seed %llu (drawn at random; --seed %llu makes the same images "
                "again)\n", (unsigned long long)o.p.seed, (unsigned long long)o.p.seed);
    const int rows_per = o.p.cfg > 1.0f ? 2 : 1;
    if (o.npz && npz_folder(o.npz) != 0)
        goto out;
    if (sink_open(&sink, &o, m) != 0)
        goto out;
    imgs = calloc((size_t)o.batch, sizeof(*imgs));
    gs = malloc(sizeof(*gs) * (size_t)o.batch);
    rgb = malloc(sink.pix * (size_t)o.batch);
    if (!imgs || !gs || !rgb) {
        cli_fail("out of memory for a batch of %d images", o.batch);
        goto out;
    }
    if (ditd_worker_new(&w, m, o.batch * rows_per, o.threads, err, sizeof(err)) != 0) {
        cli_fail("%s", err);
        goto out;
    }

    const int show = !o.quiet && isatty(2);
    const long total = (o.total - skipped) * o.p.steps;
    const double started = now_s();
    long steps_done = 0, next = 0, kept = skipped;
    catch_stop();
    for (int count; (count = next_batch(&o, done, &next, gs)) > 0;) {
        for (int k = 0; k < count; k++) {
            const struct ditd_params p = image_params(&o, gs[k]);
            ditd_image_free(imgs[k]);
            imgs[k] = NULL;
            if (ditd_image_new(&imgs[k], m, &p, err, sizeof(err)) != 0) {
                cli_fail("%s", err);
                goto out;
            }
        }
        for (int step = 0; step < o.p.steps; step++) {
            if (ditd_step(w, imgs, count) != 0) {
                cli_fail("denoising step failed");
                goto out;
            }
            steps_done += count;
            if (show)
                progress(steps_done, total, started);
            if (stop_signal) {
                rc = stopped(&o, kept, show);
                goto out;
            }
        }
        if (ditd_decode(w, imgs, count, rgb) != 0) {
            cli_fail("decoding failed");
            goto out;
        }
        if (sink_batch(&sink, &o, m, gs, count, rgb, imgs) != 0)
            goto out;
        kept += count;
    }
    if (o.resume && o.npz && sink_pack(&sink, &o, rgb) != 0)
        goto out;
    rc = sink_finish(&sink, &o, m);

out:
    for (int k = 0; imgs && k < o.batch; k++)
        ditd_image_free(imgs[k]);
    free(imgs);
    free(gs);
    free(done);
    free(rgb);
    sink_free(&sink);
    free(o.classes);
    ditd_worker_free(w);
    ditd_model_free(m);
    return rc;
}
