/*
 * npy.h - NumPy .npy files (format version 1.0), little-endian, C order.
 * Used by the dit CLI for raw tensors in and out, and by the tests.
 */
#ifndef DITD_NPY_H
#define DITD_NPY_H

#include <stddef.h>
#include <stdint.h>

#define NPY_MAX_DIMS 8

enum npy_dtype { NPY_F32, NPY_F64, NPY_I32, NPY_I64 };

struct npy_array {
    enum npy_dtype dtype;
    int ndim;
    int64_t shape[NPY_MAX_DIMS];
    int64_t numel;
    void *data;                /* malloc'd, numel elements */
};

/* Read a whole file; data is validated against the header (size, dtype
 * '<f4' '<f8' '<i4' '<i8', fortran_order False). 0 or DITD_E* with err. */
int npy_read(const char *path, struct npy_array *out, char *err, size_t errlen);
/* Parse an in-memory image (for fuzzing); copies the data. */
int npy_parse(const void *buf, size_t len, struct npy_array *out, char *err, size_t errlen);
int npy_write(const char *path, enum npy_dtype dtype, int ndim, const int64_t *shape,
              const void *data, char *err, size_t errlen);
void npy_free(struct npy_array *a);

#endif /* DITD_NPY_H */
