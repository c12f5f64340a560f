/*
 * npy.h - NumPy .npy files: read format versions 1.0, 2.0 and 3.0, write
 * 1.0; little-endian, C order, dtypes '<f4' '<f8' '<i4' '<i8' '|u1'.
 * Used by the dit CLI for raw tensors in and out, by the .npz writer
 * (npz.h) for its members' headers, and by the tests.
 */
#ifndef DITD_NPY_H
#define DITD_NPY_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#define NPY_MAX_DIMS 8
/* Longest header accepted (NumPy itself refuses more than 10000 bytes by
 * default; version 2.0 allows 4 GiB, which nobody needs). */
#define NPY_MAX_HEADER 65536u
/* Room for any header npy_header() formats (prelude included). */
#define NPY_HEADER_BUF 512u

enum npy_dtype { NPY_F32, NPY_F64, NPY_I32, NPY_I64, NPY_U8 };

struct npy_array {
    enum npy_dtype dtype;
    int ndim;                  /* 0 for a scalar */
    int64_t shape[NPY_MAX_DIMS];
    int64_t numel;
    void *data;                /* malloc'd (never NULL on success), numel elements */
};

/* Read a whole file; data is validated against the header (size, dtype
 * '<f4' '<f8' '<i4' '<i8' '|u1', fortran_order False), and the file must end where
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
/* The version 1.0 header np.save writes for an array of dtype and shape:
 * prelude, then the dict padded with spaces and '\n' so that the data
 * starts on a 64-byte boundary. Into buf (NPY_HEADER_BUF bytes is always
 * enough); *len receives the header's length and *data_bytes the number of
 * data bytes that must follow it. 0, or DITD_EINVAL for a bad dtype, rank,
 * shape or buffer with a message in err that names no file (the caller
 * knows which file it writes). */
int npy_header(uint8_t *buf, size_t buflen, enum npy_dtype dtype, int ndim,
               const int64_t *shape, size_t *len, uint64_t *data_bytes, char *err,
               size_t errlen);
/* err = "<file>: <message>" (the message alone with file NULL), the message
 * formatted from fmt and ap; nothing when err is NULL or errlen 0. The
 * messages of npy.c and npz.c. */
void npy_verror(char *err, size_t errlen, const char *file, const char *fmt, va_list ap);
/* Free data; a is zeroed and may be freed again. */
void npy_free(struct npy_array *a);
/* Bytes per element. */
size_t npy_dtype_size(enum npy_dtype dtype);

#endif /* DITD_NPY_H */
