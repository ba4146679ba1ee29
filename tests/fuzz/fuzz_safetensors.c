/* safetensors header validation on arbitrary bytes: st_open_buffer must
 * either reject the input or hand out tensors that can all be read. */
#include <stdint.h>
#include <stdlib.h>

#include "io/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    st_file *f;
    err_t e = {0};
    if (st_open_buffer(&f, data, size, "fuzz.safetensors", &e)) return 0;
    for (int i = 0; i < st_count(f); i++) {
        const st_tensor *t = st_tensor_at(f, i);
        size_t n = t->nbytes / st_dtype_size(t->dtype);
        float *v = malloc(n ? n * sizeof *v : 1);
        if (v) st_read_f32(f, t, v, n, &e);
        free(v);
        st_find(f, t->name);
    }
    st_metadata(f);
    st_close(f);
    return 0;
}
