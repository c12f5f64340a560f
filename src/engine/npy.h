/*
 * npy.h - NumPy .npy files: read format versions 1.0, 2.0 and 3.0, write
 * 1.0; little-endian, C order, dtypes '<f4' '<f8' '<i4' '<i8'.
 * Used by the dit CLI for raw tensors in and out, and by the tests.
 */
#ifndef DITD_NPY_H
#define DITD_NPY_H

#include <stddef.h>
#include <stdint.h>

#define NPY_MAX_DIMS 8
/* Longest header accepted (NumPy itself refuses more than 10000 bytes by
 * default; version 2.0 allows 4 GiB, which nobody needs). */
#define NPY_MAX_HEADER 65536u

enum npy_dtype { NPY_F32, NPY_F64, NPY_I32, NPY_I64 };

struct npy_array {
    enum npy_dtype dtype;
    int ndim;                  /* 0 for a scalar */
    int64_t shape[NPY_MAX_DIMS];
    int64_t numel;
    void *data;                /* malloc'd (never NULL on success), numel elements */
};

/* Read a whole file; data is validated against the header (size, dtype
 * '<f4' '<f8' '<i4' '<i8', fortran_order False), and the file must end where
 * the data ends. 0, or DITD_ENOENT / DITD_EIO / DITD_ENOMEM / DITD_EINVAL
 * with a message naming the file and the problem in err. On failure out
 * holds nothing to free. */
int npy_read(const char *path, struct npy_array *out, char *err, size_t errlen);
/* Parse an in-memory image (for fuzzing); copies the data. Same codes. */
int npy_parse(const void *buf, size_t len, struct npy_array *out, char *err, size_t errlen);
/* Write a version 1.0 file as NumPy does (header padded to 64 bytes).
 * data holds the product of shape elements; it may be NULL when that is 0.
 * A partly written file is removed on failure. */
int npy_write(const char *path, enum npy_dtype dtype, int ndim, const int64_t *shape,
              const void *data, char *err, size_t errlen);
/* Free data; a is zeroed and may be freed again. */
void npy_free(struct npy_array *a);
/* Bytes per element. */
size_t npy_dtype_size(enum npy_dtype dtype);

#endif /* DITD_NPY_H */
