/*
 * fuzz_safetensors.c - libFuzzer target for the safetensors validator.
 *
 * The input is a whole file image given to st_parse(). Besides "no crash,
 * no sanitizer report, no leak", it checks what the validator promises:
 * a refusal always carries a fault code and a message; an accepted file's
 * tensors tile the data buffer exactly, are all found by name, and convert
 * to float without reading outside their bytes.
 */
#include "safetensors.h"
#include "ditd.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Read every byte of every tensor (ASan checks the bounds) and convert the
 * float ones; a broken promise traps, which libFuzzer reports as a crash. */
static void check_accepted(const struct st_file *f, const uint8_t *data, size_t size)
{
    uint64_t n = 0, total = 0;
    unsigned sum = 0;

    for (int i = 7; i >= 0; i--)
        n = n << 8 | data[i];
    for (int i = 0; i < f->count; i++) {
        const struct st_tensor *t = &f->tensors[i];

        if (st_find(f, t->name) != t || t->data < data + 8 + n ||
            t->nbytes > (size_t)(data + size - t->data))
            __builtin_trap();
        for (size_t k = 0; k < t->nbytes; k++)
            sum += t->data[k];
        total += t->nbytes;
        if ((t->dtype == ST_F32 || t->dtype == ST_F16 || t->dtype == ST_BF16) &&
            t->numel <= (1 << 20)) {
            float *out = malloc((size_t)(t->numel ? t->numel : 1) * sizeof *out);

            if (out && st_to_f32(t, out) != 0)
                __builtin_trap();
            free(out);
        }
        st_release(f, t);
    }
    /* No hole, overlap or trailing byte: the sizes add up to the data. */
    if (total != size - 8 - n)
        __builtin_trap();
    (void)sum;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct st_file f;
    char err[DITD_ERR_LEN];

    err[0] = '\0';
    if (st_parse(&f, data, size, err, sizeof err) == 0)
        check_accepted(&f, data, size);
    else if (f.fault == ST_OK || f.fault >= ST_FAULT_COUNT || err[0] == '\0' ||
             f.tensors || f.strings)
        __builtin_trap();
    st_close(&f);
    return 0;
}
