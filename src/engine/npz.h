/*
 * npz.h - write NumPy .npz archives as a stream: members are added one
 * after the other and their data arrives in pieces, so an archive may be
 * far larger than memory (dit generate's samples.npz: arr_0 uint8
 * (N, H, W, 3) images, arr_1 int64 (N,) labels, as the ADM evaluator reads).
 *
 *     npz_create(&z, "samples.npz", true, err, sizeof err);
 *     npz_begin(z, "arr_0", NPY_U8, 4, (int64_t[]){n, h, w, 3}, err, sizeof err);
 *     for each image: npz_append(z, pixels, h * w * 3, err, sizeof err);
 *     npz_end(z, err, sizeof err);
 *     ... arr_1 the same way ...
 *     npz_close(z, err, sizeof err);
 *
 * Each function returns 0 or a negative DITD_E* code with a message naming
 * the file in err. After any failure the archive is unusable: later calls
 * fail, and the caller ends with npz_discard() (or npz_close(), which then
 * fails); either removes the file.
 */
#ifndef DITD_NPZ_H
#define DITD_NPZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "npy.h"

/* Longest member name npz_begin takes (".npy" is added). */
#define NPZ_MAX_NAME 200

/* An archive being written. */
struct npz;

/* Create path, truncating a file there, or with exclusive refusing one
 * (DITD_EIO, saying it exists). DITD_ENOENT when the directory is missing,
 * DITD_ENOMEM. */
int npz_create(struct npz **out, const char *path, bool exclusive, char *err, size_t errlen);
/* Start member "<name>.npy" (name like "arr_0") holding an array of dtype
 * and shape; its raw element bytes, in C order, follow through npz_append
 * calls. DITD_EINVAL for a bad name, dtype or shape or while another member
 * is open; DITD_EIO. */
int npz_begin(struct npz *z, const char *name, enum npy_dtype dtype, int ndim,
              const int64_t *shape, char *err, size_t errlen);
/* The next len bytes of the open member's data (data may be NULL when len
 * is 0). DITD_EINVAL when no member is open or the data would run past
 * what the shape needs; DITD_EIO. */
int npz_append(struct npz *z, const void *data, size_t len, char *err, size_t errlen);
/* Finish the open member. DITD_EINVAL when the bytes appended fall short of
 * what its shape needs; DITD_EIO. */
int npz_end(struct npz *z, char *err, size_t errlen);
/* Write the central directory and close the file; frees z. On failure
 * (a member still open, an earlier failure, a write error) the file is
 * removed. */
int npz_close(struct npz *z, char *err, size_t errlen);
/* Give up: free z and remove the partial file. NULL is fine. */
void npz_discard(struct npz *z);

#endif /* DITD_NPZ_H */
