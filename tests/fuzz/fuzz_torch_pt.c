/* .pt parsing (zip directory + pickle machine) on arbitrary bytes: pt_open_buffer
 * must either reject the input or hand out tensors inside the buffer. */
#include <stdint.h>
#include <stdlib.h>

#include "io/torch_pt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pt_file *f;
    err_t e = {0};
    if (pt_open_buffer(&f, data, size, "fuzz.pt", &e)) return 0;
    for (int i = 0; i < pt_count(f); i++) {
        const pt_tensor *t = pt_tensor_at(f, i);
        size_t n = t->nbytes / st_dtype_size(t->dtype);
        float *v = malloc(n ? n * sizeof *v : 1);
        if (v) pt_read_f32(f, t, v, n, &e);
        free(v);
    }
    pt_close(f);
    return 0;
}
