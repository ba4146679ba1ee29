/* tar header walking on arbitrary bytes: every member handed out lies
 * inside the buffer. */
#include <stdint.h>
#include <stdlib.h>

#include "io/tar_reader.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tar_reader *r;
    err_t e = {0};
    if (tar_open_buffer(&r, data, size, "fuzz.tar", &e)) return 0;
    tar_member m;
    while (tar_next(r, &m, &e) == 1)
        if (m.data_offset > size || m.size > size - m.data_offset) abort();
    tar_close(r);
    return 0;
}
