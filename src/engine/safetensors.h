/*
 * safetensors.h - read-only, memory-mapped access to .safetensors files.
 *
 * The whole header is validated before any tensor is handed out, following
 * the rules of the reference implementation plus the fixes other loaders
 * needed (docs/models.md, "safetensors validation"): bounded header size,
 * checked arithmetic, known dtypes, shapes of non-negative dims, offsets that
 * tile the data buffer with no hole, overlap or trailing byte. Every
 * corruption has its own fault code and message. Nothing here aborts.
 */
#ifndef DITD_SAFETENSORS_H
#define DITD_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#define ST_MAX_DIMS 8
#define ST_MAX_HEADER 100000000u

enum st_dtype {
    ST_BOOL, ST_U8, ST_I8, ST_I16, ST_U16, ST_F16, ST_BF16, ST_I32, ST_U32,
    ST_F32, ST_F64, ST_I64, ST_U64, ST_F8_E4M3, ST_F8_E5M2
};

/* Why a file was refused; one value per rule. */
enum st_fault {
    ST_OK = 0,
    ST_FAULT_IO,               /* open/stat/mmap failed */
    ST_FAULT_SHORT_FILE,       /* fewer than 8 bytes */
    ST_FAULT_HEADER_TOO_LARGE, /* N > ST_MAX_HEADER */
    ST_FAULT_HEADER_PAST_EOF,  /* 8 + N overflows or exceeds the file */
    ST_FAULT_HEADER_START,     /* header does not start with '{' */
    ST_FAULT_HEADER_UTF8,      /* header is not valid UTF-8 */
    ST_FAULT_HEADER_JSON,      /* header is not a JSON object */
    ST_FAULT_DUPLICATE_NAME,
    ST_FAULT_METADATA,         /* __metadata__ not a string->string map */
    ST_FAULT_ENTRY,            /* entry not an object with exactly dtype/shape/data_offsets */
    ST_FAULT_DTYPE,            /* unknown dtype */
    ST_FAULT_SHAPE,            /* dims not integers in [0, 2^31], or too many dims */
    ST_FAULT_SIZE_OVERFLOW,    /* element count x dtype size overflows */
    ST_FAULT_NOT_BYTE_ALIGNED, /* sub-byte dtype with a bit count not multiple of 8 */
    ST_FAULT_OFFSETS,          /* data_offsets not two non-negative integers */
    ST_FAULT_OFFSETS_ORDER,    /* begin > end */
    ST_FAULT_PAST_EOF,         /* end beyond the data buffer */
    ST_FAULT_SIZE_MISMATCH,    /* end - begin != bytes implied by shape and dtype */
    ST_FAULT_HOLE,             /* gap between consecutive tensors */
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
    int64_t numel;
    const uint8_t *data;       /* into the file, not necessarily aligned */
    size_t nbytes;
};

struct st_file {
    const uint8_t *base;       /* whole file image (mapping or caller buffer) */
    size_t size;
    int mapped;                /* 1 when base is our mmap */
    struct st_tensor *tensors; /* sorted by name */
    int count;
    char *strings;             /* owns the tensor names */
    enum st_fault fault;       /* why the last open/parse failed */
};

/* Map and validate `path`. 0, or a negative DITD_E* code with f->fault set
 * and a message in err that names the file, the tensor and the rule. */
int st_open(struct st_file *f, const char *path, char *err, size_t errlen);
/* Validate an in-memory file image (borrowed; must outlive f). */
int st_parse(struct st_file *f, const void *buf, size_t len, char *err, size_t errlen);
void st_close(struct st_file *f);

/* Borrowed pointer or NULL. */
const struct st_tensor *st_find(const struct st_file *f, const char *name);
const char *st_dtype_name(enum st_dtype t);
const char *st_fault_name(enum st_fault fault);

/* Convert a F32, F16 or BF16 tensor to float32 in `out` (numel floats). */
int st_to_f32(const struct st_tensor *t, float *out);
/* Tell the kernel the bytes of t will not be read again (page cache only). */
void st_release(const struct st_file *f, const struct st_tensor *t);

#endif /* DITD_SAFETENSORS_H */
