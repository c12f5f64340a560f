/*
 * cmd_info.c - `dit info` (what a model or a paper configuration is and
 * costs) and `dit bench` (how fast a forward pass runs here, next to what
 * OpenBLAS alone reaches on the same matrices).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static const char info_help[] =
    "usage: dit info --model DIR [--precision P] [--json]\n"
    "       dit info --config XL/2 [--image-size 256] [--json]\n"
    "\n"
    "Parameter count and multiply-accumulates (GMAC) per forward pass per image.\n"
    "--config takes a paper configuration (S, B, L, XL with patch 2, 4 or 8) and\n"
    "needs no weights; --model describes a model directory, its classes included,\n"
    "and the precision it runs at on this CPU.\n"
    "\n"
    CLI_PRECISION_HELP
    CLI_COMMON_HELP;

/* Resident set size of this process in bytes, 0 when unknown. */
static long long rss_bytes(void)
{
    long long pages_total, pages_resident;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f)
        return 0;
    int n = fscanf(f, "%lld %lld", &pages_total, &pages_resident);
    fclose(f);
    return n == 2 ? pages_resident * sysconf(_SC_PAGESIZE) : 0;
}

static const char *const block_names[] = { "adaln_zero", "adaln", "cross_attention", "in_context" };

static void print_model(const struct ditd_model_info *i, int json, long long rss_before,
                        long long rss_after)
{
    if (json) {
        printf("{\"rss_before_load\": %lld, \"rss_after_load\": %lld, \"weight_bytes\": %lld, ",
               rss_before, rss_after, (long long)i->weight_bytes);
        printf("\"precision\": \"%s\", \"isa\": \"%s\", \"precision_note\": \"%s\", ",
               i->precision, i->isa, i->precision_note);
        printf("\"name\": \"%s\", \"id\": \"%s\", \"layout\": \"%s\", \"block\": \"%s\", \"numerics\": \"%s\", "
               "\"image_size\": %d, \"latent_size\": %d, \"latent_channels\": %d, \"patch\": %d, "
               "\"depth\": %d, \"hidden\": %d, \"heads\": %d, \"num_classes\": %d, "
               "\"learn_sigma\": %s, \"guidance_channels\": %d, \"params\": %lld, "
               "\"gmacs\": %.4f, \"vae_params\": %lld, \"vae_gmacs\": %.4f, \"classes\": [",
               i->name, i->id, i->layout == DITD_LAYOUT_ORIGINAL ? "original" : "diffusers",
               block_names[i->block], i->diffusers_numerics ? "diffusers" : "original",
               i->image_size, i->latent_size, i->latent_channels, i->patch, i->depth, i->hidden,
               i->heads, i->num_classes, i->learn_sigma ? "true" : "false", i->guidance_channels,
               (long long)i->dit_params, i->dit_gmacs, (long long)i->vae_params, i->vae_gmacs);
        for (int c = 0; c < i->num_classes; c++) {
            const char *n = i->class_names[c];
            if (n)
                printf("%s\"%s\"", c ? ", " : "", n);
            else
                printf("%snull", c ? ", " : "");
        }
        printf("]}\n");
        return;
    }
    printf("model       %s (%s), id %s\n", i->name, i->path, i->id);
    printf("layout      %s keys, %s numerics, %s blocks\n",
           i->layout == DITD_LAYOUT_ORIGINAL ? "original" : "diffusers",
           i->diffusers_numerics ? "diffusers" : "original", block_names[i->block]);
    printf("images      %d px, latent %d x %d x %d, patch %d\n", i->image_size,
           i->latent_channels, i->latent_size, i->latent_size, i->patch);
    printf("transformer depth %d, hidden %d, %d heads, %s sigma, guidance on %d channel(s)\n",
           i->depth, i->hidden, i->heads, i->learn_sigma ? "learned" : "fixed",
           i->guidance_channels);
    printf("DiT         %lld parameters, %.2f GMAC per forward per image\n",
           (long long)i->dit_params, i->dit_gmacs);
    printf("VAE decoder %lld parameters, %.2f GMAC per image\n", (long long)i->vae_params,
           i->vae_gmacs);
    printf("memory      %.1f MB of weights in use; resident %.1f MB after loading "
           "(%.1f MB before)\n", i->weight_bytes / 1e6, rss_after / 1e6, rss_before / 1e6);
    printf("compute     %s on %s: %s\n", i->precision, i->isa, i->precision_note);
    printf("classes     %d:", i->num_classes);
    for (int c = 0; c < i->num_classes && c < 20; c++)
        printf(" %d=%s", c, i->class_names[c] ? i->class_names[c] : "?");
    printf(i->num_classes > 20 ? " ...\n" : "\n");
}

int cmd_info(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "model", required_argument, 0, 'm' }, { "config", required_argument, 0, 'c' },
        { "image-size", required_argument, 0, 'i' }, { "json", no_argument, 0, 'j' },
        { "verbose", no_argument, 0, 'v' }, { "precision", required_argument, 0, 'R' },
        { "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 },
    };
    const char *model = NULL, *config = NULL;
    enum ditd_precision precision = DITD_PRECISION_AUTO;
    int json = 0, ch;
    long long size = 256;

    while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (ch) {
        case 'm': model = optarg; break;
        case 'c': config = optarg; break;
        case 'j': json = 1; break;
        case 'v': break;   /* read by main() */
        case 'i':
            if (cli_int(optarg, 8, 8192, "--image-size", &size)) return 2;
            break;
        case 'R': if (cli_precision(optarg, &precision)) return 2; break;
        case 'h': fputs(info_help, stdout); return 0;
        default: fputs(info_help, stderr); return 2;
        }
    }
    if (config) {
        struct ditd_arch_info a;
        char err[DITD_ERR_LEN];
        if (ditd_arch_info(config, (int)size, 1000, &a, err, sizeof(err)) != 0)
            return cli_fail("%s", err);
        if (json)
            printf("{\"config\": \"%s\", \"image_size\": %lld, \"depth\": %d, \"hidden\": %d, "
                   "\"heads\": %d, \"patch\": %d, \"params\": %lld, \"gmacs\": %.4f}\n",
                   config, size, a.depth, a.hidden, a.heads, a.patch, (long long)a.params, a.gmacs);
        else
            printf("DiT-%s at %lld px: depth %d, hidden %d, %d heads, patch %d\n"
                   "%lld parameters, %.2f GMAC per forward per image\n",
                   config, size, a.depth, a.hidden, a.heads, a.patch, (long long)a.params, a.gmacs);
        return 0;
    }
    const long long before = rss_bytes();
    struct ditd_model *m = cli_model(model, precision, 0);
    if (!m)
        return 1;
    print_model(ditd_model_info(m), json, before, rss_bytes());
    ditd_model_free(m);
    return 0;
}

static const char bench_help[] =
    "usage: dit bench --config XL/2 [--image-size 256] [--batch 1,4,8] [--threads T]\n"
    "                 [--iterations N] [--precision P] [--json]\n"
    "       dit bench --model DIR [--batch ...] ...\n"
    "       dit bench --vae [--image-size 256] [--precision P] [--threads T] ...\n"
    "\n"
    "Times DiT forward passes, with random weights for --config (no files needed) or\n"
    "the weights of a model directory, and the matrix product of the precision in use\n"
    "alone on the same matrix shapes in the same run (fp32: OpenBLAS sgemm with its own\n"
    "threading; bf16: oneDNN's bf16 matmul, or ditd's emulated bf16 product on CPUs\n"
    "without bf16). Reports ms per forward, achieved GFLOP/s (2 x MACs / time) and\n"
    "that product's GFLOP/s (gemm_gflops; sgemm_gflops is always reported too); their\n"
    "ratio is the efficiency.\n"
    "With --vae, times decodes of one latent to an image of --image-size px by the\n"
    "Stable Diffusion VAE decoder (sd-vae-ft-* architecture, random weights) and\n"
    "reports ms per decode.\n"
    "\n"
    CLI_PRECISION_HELP
    CLI_COMMON_HELP;

/* dit bench --vae: one line of text or one JSON object. */
static int bench_vae(int size, int threads, int iters, enum ditd_precision precision, int json)
{
    struct ditd_bench_vae_result r;
    char err[DITD_ERR_LEN];

    if (ditd_bench_vae(size, precision, threads, iters, &r, err, sizeof(err)) != 0)
        return cli_fail("%s", err);
    if (json)
        printf("{\"vae\": \"sd-vae-ft\", \"image_size\": %d, \"latent_size\": %d, "
               "\"threads\": %d, \"precision\": \"%s\", \"precision_note\": \"%s\", "
               "\"iterations\": %d, \"ms_per_decode\": %.1f, \"ms_best\": %.1f, "
               "\"cpu_ms_per_decode\": %.1f, \"gmacs\": %.2f, \"gflops\": %.1f}\n", size,
               r.latent_size, threads, r.precision, r.precision_note, iters, r.ms_per_decode,
               r.ms_best, r.cpu_ms_per_decode, r.gmacs, r.gflops);
    else
        printf("SD VAE decoder, %dx%d latent to %d px, %d threads\n%s\n"
               "%.1f ms per decode (best %.1f, CPU %.1f ms), %.1f GMAC, %.1f GFLOP/s "
               "direct-equivalent\n", r.latent_size, r.latent_size, size, threads,
               r.precision_note, r.ms_per_decode, r.ms_best, r.cpu_ms_per_decode, r.gmacs,
               r.gflops);
    return 0;
}

int cmd_bench(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "config", required_argument, 0, 'c' }, { "image-size", required_argument, 0, 'i' },
        { "batch", required_argument, 0, 'b' }, { "threads", required_argument, 0, 't' },
        { "iterations", required_argument, 0, 'n' }, { "json", no_argument, 0, 'j' },
        { "model", required_argument, 0, 'm' }, { "verbose", no_argument, 0, 'v' },
        { "precision", required_argument, 0, 'R' }, { "vae", no_argument, 0, 'a' },
        { "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 },
    };
    const char *config = "XL/2", *batches = "1", *model_dir = NULL;
    enum ditd_precision precision = DITD_PRECISION_AUTO;
    struct ditd_model *model = NULL;
    long long size = 256, threads = cli_default_threads(), iters = 5;
    int json = 0, vae = 0, ch, *batch = NULL, nbatch = 0;

    while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (ch) {
        case 'c': config = optarg; break;
        case 'm': model_dir = optarg; break;
        case 'b': batches = optarg; break;
        case 'j': json = 1; break;
        case 'v': break;   /* read by main() */
        case 'a': vae = 1; break;
        case 'i': if (cli_int(optarg, 8, 8192, "--image-size", &size)) return 2; break;
        case 't': if (cli_int(optarg, 1, 256, "--threads", &threads)) return 2; break;
        case 'n': if (cli_int(optarg, 1, 1000, "--iterations", &iters)) return 2; break;
        case 'R': if (cli_precision(optarg, &precision)) return 2; break;
        case 'h': fputs(bench_help, stdout); return 0;
        default: fputs(bench_help, stderr); return 2;
        }
    }
    if (vae)
        return bench_vae((int)size, (int)threads, (int)iters, precision, json);
    if (cli_int_list(batches, 1, 256, "--batch", &batch, &nbatch) != 0)
        return 2;
    if (model_dir) {
        if (!(model = cli_model(model_dir, precision, 0))) {
            free(batch);
            return 1;
        }
        config = ditd_model_info(model)->name;
        size = ditd_model_info(model)->image_size;
    }
    for (int i = 0; i < nbatch; i++) {
        struct ditd_bench_result r;
        char err[DITD_ERR_LEN];
        int rc = model ? ditd_bench_model(model, batch[i], (int)threads, (int)iters, &r,
                                          err, sizeof(err))
                       : ditd_bench_forward(config, (int)size, precision, batch[i], (int)threads,
                                            (int)iters, &r, err, sizeof(err));
        if (rc != 0) {
            free(batch);
            ditd_model_free(model);
            return cli_fail("%s", err);
        }
        const bool bf16 = strcmp(r.precision, "bf16") == 0;
        if (i == 0 && json)
            printf("{\"config\": \"%s\", \"image_size\": %lld, \"threads\": %lld, "
                   "\"blas_core\": \"%s\", \"precision\": \"%s\", \"precision_note\": \"%s\", "
                   "\"results\": [", config, size, threads, ditd_blas_core(), r.precision,
                   r.precision_note);
        else if (i == 0)
            /* In fp32 the precision's product is sgemm: one column says it. */
            printf("DiT-%s at %lld px, %lld threads, OpenBLAS kernel %s\n%s\n"
                   "batch  ms/forward  ms/image   GFLOP/s  %s GFLOP/s  efficiency%s\n",
                   config, size, threads, ditd_blas_core(), r.precision_note,
                   bf16 ? " bf16 gemm" : "     sgemm", bf16 ? "  sgemm GFLOP/s" : "");
        if (json)
            printf("%s{\"batch\": %d, \"ms_per_forward\": %.2f, \"ms_per_image\": %.2f, "
                   "\"gflops\": %.1f, \"gemm_gflops\": %.1f, \"sgemm_gflops\": %.1f, "
                   "\"efficiency\": %.3f, \"gemm_fraction\": %.3f}", i ? ", " : "", batch[i],
                   r.ms_per_forward, r.ms_per_forward / batch[i], r.gflops, r.gemm_gflops,
                   r.sgemm_gflops, r.gflops / r.gemm_gflops, r.gemm_fraction);
        else {
            printf("%5d  %10.1f  %8.1f  %8.1f  %16.1f  %9.1f%%", batch[i], r.ms_per_forward,
                   r.ms_per_forward / batch[i], r.gflops, r.gemm_gflops,
                   100.0 * r.gflops / r.gemm_gflops);
            if (bf16)
                printf("  %13.1f", r.sgemm_gflops);
            putchar('\n');
        }
        fflush(stdout);
    }
    if (json)
        printf("]}\n");
    free(batch);
    ditd_model_free(model);
    return 0;
}
