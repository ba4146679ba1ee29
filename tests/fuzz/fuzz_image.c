/* libFuzzer target: arbitrary bytes through the decoders and the whole CLIP
 * preprocessing (exact and fast mode). Any input must give 0 or an error
 * code with a message; crashes, leaks of sanitizer-visible state and
 * out-of-bounds reads are bugs. The pixel limit is lowered so that headers
 * claiming large canvases are cheap to reject and the fuzzer stays fast. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "image/clip_preprocess.h"
#include "image/image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    clip_preprocess_cfg cfg;
    /* The first byte picks the output size and the mode, the rest is the file. */
    int sel = size ? data[0] : 0;
    clip_preprocess_cfg_default(&cfg, 1 + (sel & 63));
    cfg.fast_resize = (sel >> 6) & 1;
    cfg.limits.max_pixels = 1 << 20;
    const uint8_t *file = size ? data + 1 : data;
    size_t len = size ? size - 1 : 0;
    int S = cfg.image_size;
    float *out = malloc(sizeof(float) * 3 * (size_t)S * (size_t)S);
    if (!out) return 0;
    err_t e = {0};
    image_info info;
    int rc = clip_preprocess(file, len, &cfg, out, &info, &e);
    if (rc != 0 && e.msg[0] == 0) abort(); /* every error explains itself */
    if (rc == 0)
        for (int i = 0; i < 3 * S * S; i++)
            if (!(out[i] > -3.0f && out[i] < 3.0f)) abort(); /* normalised 8-bit values stay in range */
    free(out);
    return 0;
}
