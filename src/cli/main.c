/*
 * main.c - the dit command-line tool: dispatch to a subcommand, after making
 * sure OpenBLAS runs its best kernel for this CPU.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "ditd-build.h"

static const char usage[] =
    "usage: dit <command> [options]\n"
    "\n"
    "Class-conditional image generation with Diffusion Transformers (DiT).\n"
    "\n"
    "commands:\n"
    "  generate   sample images:      dit generate --class 7 --cfg 4 -o x.png\n"
    "  info       model figures:      dit info --model DIR | --config XL/2 [--image-size 512] [--json]\n"
    "  bench      forward speed:      dit bench --config XL/2 [--image-size 256] --batch 1,4,8 [--json]\n"
    "  forward    raw DiT output:     dit forward --model DIR --x in.npy --t 999,17 --y 3,1000 -o out.npy\n"
    "  decode     raw VAE decoder:    dit decode --model DIR --latent z.npy -o out.npy|out.png\n"
    "  schedule   diffusion tables:   dit schedule --steps 250 [--spacing ddim] -o s.npy\n"
    "\n"
    "Run 'dit <command> --help' for the options of a command. Without --model the\n"
    "bundled model is used ($DITD_MODEL overrides it).\n"
    "\n"
    "options of every command:\n"
    CLI_COMMON_HELP
    "\n"
    "environment:\n"
    "  DITD_MODEL   default model directory\n"
    "  DITD_BLAS    OpenBLAS kernel policy: auto (default: switch to the best kernel\n"
    "               this CPU supports), keep, or a kernel name such as SkylakeX\n"
    "  DITD_ISA     use at most this vector ISA, to act as an older CPU: avx2, avx512,\n"
    "               avx512_bf16, ... (e.g. DITD_ISA=avx2: no native bf16)\n";

int cli_verbose;

int cli_fail(const char *fmt, ...)
{
    va_list ap;
    fputs("dit: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return 1;
}

int cli_int(const char *text, long long lo, long long hi, const char *what, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno || end == text || *end || v < lo || v > hi) {
        cli_fail("%s must be an integer between %lld and %lld, got \"%s\"", what, lo, hi, text);
        return -1;
    }
    *out = v;
    return 0;
}

int cli_float(const char *text, double lo, double hi, const char *what, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (errno || end == text || *end || !isfinite(v) || v < lo || v > hi) {
        cli_fail("%s must be a number between %g and %g, got \"%s\"", what, lo, hi, text);
        return -1;
    }
    *out = v;
    return 0;
}

int cli_int_list(const char *text, long long lo, long long hi, const char *what,
                 int **out, int *count)
{
    int n = 1;
    for (const char *p = text; *p; p++)
        n += *p == ',';
    int *v = malloc(sizeof(int) * (size_t)n);
    char *copy = strdup(text), *save = NULL;
    if (!v || !copy) {
        free(v);
        free(copy);
        return cli_fail("out of memory"), -1;
    }
    int k = 0;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        long long x;
        if (cli_int(tok, lo, hi, what, &x) != 0) {
            free(v);
            free(copy);
            return -1;
        }
        v[k++] = (int)x;
    }
    free(copy);
    if (k != n) {
        free(v);
        cli_fail("%s: empty entry in \"%s\"", what, text);
        return -1;
    }
    *out = v;
    *count = k;
    return 0;
}

int cli_precision(const char *text, enum ditd_precision *out)
{
    if (ditd_precision_parse(text, out) != 0) {
        cli_fail("--precision must be auto, fp32 or bf16, got \"%s\"", text);
        return -1;
    }
    return 0;
}

struct ditd_model *cli_model(const char *dir, enum ditd_precision precision, int announce)
{
    char path[4096], err[DITD_ERR_LEN];
    struct ditd_model *m;

    if (!dir) {
        if (ditd_model_default_path(path, sizeof(path)) != 0) {
            cli_fail("no model given and the bundled model was not found; pass --model DIR "
                     "or set DITD_MODEL");
            return NULL;
        }
        dir = path;
    }
    if (ditd_model_load_precision(&m, dir, precision, err, sizeof(err)) != 0) {
        cli_fail("cannot load model %s: %s", dir, err);
        return NULL;
    }
    if (cli_verbose)
        fprintf(stderr, "dit: model %s (id %s) from %s\n", ditd_model_info(m)->name,
                ditd_model_info(m)->id, dir);
    if (announce || cli_verbose)
        fprintf(stderr, "dit: %s\n", ditd_model_info(m)->precision_note);
    return m;
}

int cli_default_threads(void)
{
    const int n = ditd_cpu_count();
    return n > 256 ? 256 : n;
}

int main(int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*run)(int, char **);
    } commands[] = {
        { "generate", cmd_generate }, { "info", cmd_info }, { "bench", cmd_bench },
        { "forward", cmd_forward }, { "decode", cmd_decode }, { "schedule", cmd_schedule },
    };
    char msg[256];
    const char *policy = getenv("DITD_BLAS");

    if (argc >= 2 && strcmp(argv[1], "--verbose") == 0) {   /* dit --verbose generate ... */
        cli_verbose = 1;
        argc--;
        argv++;
    }
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fputs(usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("dit %s\n", DITD_VERSION);
        return 0;
    }
    for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
        cli_verbose = cli_verbose || strcmp(argv[i], "--verbose") == 0;
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (strcmp(argv[1], commands[i].name) != 0)
            continue;
        /* The kernel is news only when asked, or when it could not be fixed. */
        if (ditd_blas_prepare(argv, policy ? policy : "auto", msg, sizeof(msg)) != 0)
            fprintf(stderr, "dit: warning: %s\n", msg);
        else if (cli_verbose)
            fprintf(stderr, "dit: %s\n", msg);
        return commands[i].run(argc - 1, argv + 1);
    }
    fprintf(stderr, "dit: unknown command \"%s\"\n\n%s", argv[1], usage);
    return 2;
}
