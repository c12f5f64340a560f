/*
 * safetensors.h - read-only, memory-mapped access to .safetensors files.
 *
 * The whole header is validated before any tensor is handed out, following
 * the rules of the reference implementation plus the fixes other loaders
 * needed (docs/models.md, "safetensors validation"): bounded header size,
 * checked arithmetic, known dtypes, shapes of non-negative dims, offsets that
 * tile the data buffer with no hole, overlap or trailing byte. Every
 * corruption has its own fault code and message. Nothing here aborts.
 *
 * Alignment: tensor data points into the file at 8 + N + begin, and neither N
 * nor begin has to be a multiple of anything, so `data` may have any
 * alignment. st_f32_data() says when an F32 tensor can be read in place;
 * otherwise copy it with st_to_f32(), which never assumes alignment.
 */
#ifndef DITD_SAFETENSORS_H
#define DITD_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#define ST_MAX_DIMS 8
#define ST_MAX_HEADER 100000000u
/* Largest dim accepted, 2^31, as in docs/models.md. */
#define ST_MAX_DIM (INT64_C(1) << 31)
/* Bound on the JSON keys and values of one header. jansson spends up to
 * ~140 bytes per item, so a 100 MB header of tiny entries would need over a
 * gigabyte; this caps the parser at ~150 MB whatever the header holds, and
 * still allows ~90,000 tensors (a DiT-XL file has ~700). */
#define ST_MAX_ITEMS 1000000u

enum st_dtype {
    ST_BOOL, ST_U8, ST_I8, ST_I16, ST_U16, ST_F16, ST_BF16, ST_I32, ST_U32,
    ST_F32, ST_F64, ST_I64, ST_U64, ST_F8_E4M3, ST_F8_E5M2,
    /* Newer reference dtypes; recognised and validated, never converted. */
    ST_F8_E8M0, ST_F4, ST_F6_E2M3, ST_F6_E3M2, ST_C64,
    ST_DTYPE_COUNT
};

/* Why a file was refused; one value per rule. */
enum st_fault {
    ST_OK = 0,
    ST_FAULT_IO,               /* open/stat/mmap failed, or not a regular file */
    ST_FAULT_SHORT_FILE,       /* fewer than 8 bytes */
    ST_FAULT_HEADER_TOO_LARGE, /* N > ST_MAX_HEADER (checked first, so N = 2^64-1 lands here) */
    ST_FAULT_HEADER_PAST_EOF,  /* 8 + N exceeds the file */
    ST_FAULT_HEADER_START,     /* header empty or does not start with '{' */
    ST_FAULT_HEADER_UTF8,      /* header is not valid UTF-8 */
    ST_FAULT_TOO_MANY_ITEMS,   /* more than ST_MAX_ITEMS JSON keys and values */
    ST_FAULT_HEADER_JSON,      /* header is not a JSON object */
    ST_FAULT_DUPLICATE_NAME,   /* a key repeats (tensor name, or a field of an entry) */
    ST_FAULT_METADATA,         /* __metadata__ not a string->string map */
    ST_FAULT_ENTRY,            /* entry not an object with exactly dtype/shape/data_offsets */
    ST_FAULT_DTYPE,            /* dtype not a string naming a known dtype */
    ST_FAULT_SHAPE,            /* not an array of at most ST_MAX_DIMS integers in [0, 2^31] */
    ST_FAULT_SIZE_OVERFLOW,    /* element count x dtype bits overflows 64 bits */
    ST_FAULT_NOT_BYTE_ALIGNED, /* sub-byte dtype with a bit count not multiple of 8 */
    ST_FAULT_OFFSETS,          /* data_offsets not two non-negative integers */
    ST_FAULT_OFFSETS_ORDER,    /* begin > end */
    ST_FAULT_PAST_EOF,         /* end beyond the data buffer */
    ST_FAULT_SIZE_MISMATCH,    /* end - begin != bytes implied by shape and dtype */
    ST_FAULT_HOLE,             /* gap before the first or between consecutive tensors */
    ST_FAULT_OVERLAP,          /* tensors share bytes */
    ST_FAULT_TRAILING,         /* bytes after the last tensor */
    ST_FAULT_NOMEM,
    ST_FAULT_COUNT
};

struct st_tensor {
    const char *name;
    enum st_dtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    int64_t numel;             /* product of shape; 1 for a scalar */
    const uint8_t *data;       /* into the file, not necessarily aligned */
    size_t nbytes;
};

struct st_file {
    const uint8_t *base;       /* whole file image (mapping or caller buffer) */
    size_t size;
    int mapped;                /* 1 when base is our mmap */
    struct st_tensor *tensors; /* sorted by name (strcmp) */
    int count;
    char *strings;             /* owns the tensor names */
    enum st_fault fault;       /* why the last open/parse failed */
};

/* Map and validate `path`. 0, or a negative DITD_E* code with f->fault set
 * and a message in err that names the file, the tensor and the rule.
 * DITD_ENOENT when the file does not exist, DITD_EIO when it cannot be read,
 * DITD_ENOMEM, else DITD_EINVAL. On failure f holds nothing to free, but
 * st_close(f) is still safe. */
int st_open(struct st_file *f, const char *path, char *err, size_t errlen);
/* Validate an in-memory file image (borrowed; must outlive f). Same codes. */
int st_parse(struct st_file *f, const void *buf, size_t len, char *err, size_t errlen);
/* Unmap and free; f is zeroed and may be closed again. */
void st_close(struct st_file *f);

/* Borrowed pointer or NULL. O(log count). */
const struct st_tensor *st_find(const struct st_file *f, const char *name);
const char *st_dtype_name(enum st_dtype t);
/* Bits per element (4, 6, 8, ... 64); 0 for an invalid value. */
unsigned st_dtype_bits(enum st_dtype t);
const char *st_fault_name(enum st_fault fault);

/* t's data as floats when it is F32 and float-aligned, so that it can be
 * used in place (borrowed from the file); NULL otherwise. */
const float *st_f32_data(const struct st_tensor *t);
/* Convert a F32, F16 or BF16 tensor to float32 in `out` (numel floats).
 * Exact: F16 subnormals, infinities and NaN payloads are kept. 0, or
 * DITD_EINVAL for another dtype. */
int st_to_f32(const struct st_tensor *t, float *out);
/* Tell the kernel the bytes of t will not be read again (page cache only):
 * the whole pages inside t's bytes are dropped from f's mapping. Reading
 * them afterwards still works (they fault back in). No-op for st_parse. */
void st_release(const struct st_file *f, const struct st_tensor *t);
/* The same for any byte range; ignored when it is not inside f's mapping. */
void st_release_bytes(const struct st_file *f, const void *p, size_t nbytes);

#endif /* DITD_SAFETENSORS_H */
