/*
 * outdir.h - the files of `dit generate --outdir DIR` (outdir.c).
 */
#ifndef DITD_CLI_OUTDIR_H
#define DITD_CLI_OUTDIR_H

#include <stddef.h>
#include <stdint.h>

#include "ditd.h"

/* mkdir -p: runs often go to a new folder under a new folder. 0, or an
 * errno value. */
int outdir_make_dirs(const char *dir);

/* DIR/NNNNNN.png for image number `number` (the run's --index + g). */
void outdir_path(char *buf, size_t len, const char *dir, uint64_t number);

/* Before any compute: DIR is a folder (made, with its parents, if missing)
 * and writable; unless `force`, none of the run's `total` files from image
 * number `index` on exists yet. 0, or 1 after printing why. */
int outdir_prepare(const char *dir, uint32_t index, long total, int force);

/* Whether `have`, the metadata of an existing file, is image g of this run:
 * 1, or 0 with what differs in why. */
typedef int (*outdir_same_fn)(void *ctx, long g, const struct ditd_png_origin *have,
                              char *why, size_t whylen);

/* --resume: sets bit g of done ((total + 7) / 8 zeroed bytes) for each
 * complete PNG of the run already in DIR, counting them in *ndone and the
 * PNGs cut short (to be made again) in *nredo. A file made by another run,
 * a whole PNG without dit's metadata, or a file that is no PNG stops the
 * resume: 1 after printing why; else 0. */
int outdir_survey(const char *dir, uint32_t index, long total, outdir_same_fn same, void *ctx,
                  uint8_t *done, long *ndone, long *nredo);

/* The pixels of the size x size PNG at path into rgb (size * size * 3
 * bytes, 8-bit RGB); 0, or -1 with the reason in err. */
int outdir_read_rgb(const char *path, int size, uint8_t *rgb, char *err, size_t errlen);

#endif /* DITD_CLI_OUTDIR_H */
