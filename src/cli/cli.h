/*
 * cli.h - what the subcommands of the dit tool share.
 */
#ifndef DITD_CLI_H
#define DITD_CLI_H

#include <stdint.h>

#include "ditd.h"

/* Each subcommand: argc/argv start at the subcommand's name; returns the
 * process exit status. */
int cmd_generate(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_forward(int argc, char **argv);
int cmd_decode(int argc, char **argv);
int cmd_schedule(int argc, char **argv);

#define CLI_STR_(x) #x
#define CLI_STR(x) CLI_STR_(x)

/* The flags every command takes, at the end of each command's --help. */
#define CLI_COMMON_HELP \
    "  --verbose          also say which OpenBLAS kernel runs and which model loads\n" \
    "  --help             this text\n"

/* Set by --verbose anywhere on the command line. */
extern int cli_verbose;

/* Print "dit: <message>" to stderr; returns 1 (the failure status). */
int cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Parse a whole decimal integer in [lo, hi]; 0 or -1 after printing why. */
int cli_int(const char *text, long long lo, long long hi, const char *what, long long *out);
int cli_float(const char *text, double lo, double hi, const char *what, double *out);
/* A comma-separated list of integers in [lo, hi]; *out is malloc'd. */
int cli_int_list(const char *text, long long lo, long long hi, const char *what,
                 int **out, int *count);

/* Parse --precision (auto, fp32, bf16); 0 or -1 after printing why. */
int cli_precision(const char *text, enum ditd_precision *out);
#define CLI_PRECISION_HELP \
    "  --precision P      arithmetic of the DiT: auto (default: bf16 where the CPU has\n" \
    "                     AVX512-BF16/AMX, else fp32), fp32, or bf16 (emulated, not\n" \
    "                     faster, on other CPUs)\n"

/* Load dir, or the default model when dir is NULL, at `precision`; prints
 * errors, and the precision chosen and why when `announce` is set. */
struct ditd_model *cli_model(const char *dir, enum ditd_precision precision, int announce);

/* The --class list of dit generate (classes.c): ids in the order given, or
 * `fallback` when text is NULL; *ids is malloc'd. 0, or 1 after printing why. */
int cli_class_list(const char *text, int fallback, const struct ditd_model *m, int **ids, int *n);

/* Threads to compute with by default: the online cores. */
int cli_default_threads(void);

#endif /* DITD_CLI_H */
