/*
 * fuzz_npy.c - libFuzzer target for the .npy parser: npy_parse() on the
 * whole input. An accepted array must hold exactly the bytes its shape
 * implies (all read here, so ASan checks the copy); a refused one must
 * come with a message and nothing to free.
 */
#include "npy.h"
#include "ditd.h"

#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct npy_array a;
    char err[DITD_ERR_LEN];

    err[0] = '\0';
    if (npy_parse(data, size, &a, err, sizeof err) == 0) {
        uint64_t numel = 1, nbytes;
        unsigned sum = 0;

        for (int i = 0; i < a.ndim; i++)
            numel *= (uint64_t)a.shape[i];
        nbytes = numel * npy_dtype_size(a.dtype);
        if (!a.data || (int64_t)numel != a.numel || nbytes > size)
            __builtin_trap();
        for (uint64_t k = 0; k < nbytes; k++)
            sum += ((const uint8_t *)a.data)[k];
        if (nbytes && memcmp(a.data, data + size - nbytes, (size_t)nbytes) != 0)
            __builtin_trap();
        (void)sum;
    } else if (err[0] == '\0' || a.data) {
        __builtin_trap();
    }
    npy_free(&a);
    return 0;
}
