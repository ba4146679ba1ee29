/* CLIP preprocessing: decode -> Pillow-exact resize of the centre-crop
 * window -> convert("RGB") -> ToTensor + Normalize in float32. */
#include "image/clip_preprocess.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "image/resample.h"

void clip_preprocess_cfg_default(clip_preprocess_cfg *cfg, int image_size)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->image_size = image_size;
    const float mean[3] = {CLIP_MEAN_R, CLIP_MEAN_G, CLIP_MEAN_B};
    const float std[3] = {CLIP_STD_R, CLIP_STD_G, CLIP_STD_B};
    memcpy(cfg->mean, mean, sizeof mean);
    memcpy(cfg->std, std, sizeof std);
}

/* Python's round() of d/2 for an integer d >= 0: halves go to even. */
static int round_half_even_div2(int d)
{
    int q = d / 2;
    return (d & 1) && (q & 1) ? q + 1 : q;
}

void clip_preprocess_geometry(int w, int h, int size, int *new_w, int *new_h, int *left, int *top)
{
    int shorter = w <= h ? w : h, longer = w <= h ? h : w;
    /* torchvision: int(size * long / short), a true (double) division. */
    int new_long = (int)((double)size * (double)longer / (double)shorter);
    *new_w = w <= h ? size : new_long;
    *new_h = w <= h ? new_long : size;
    *left = round_half_even_div2(*new_w - size);
    *top = round_half_even_div2(*new_h - size);
}

int clip_preprocess_rgb8(const uint8_t *data, size_t len, const clip_preprocess_cfg *cfg, uint8_t *rgb,
                         image_info *info, err_t *e)
{
    int S = cfg->image_size;
    if (S <= 0 || S > 4096) return err_set(e, ERR_ARG, "image size %d out of range 1..4096", S);
    if (cfg->fast_resize < 0 || cfg->fast_resize > 8)
        return err_set(e, ERR_ARG, "fast_resize %d out of range 0..8", cfg->fast_resize);
    image_decode_opts opts = {cfg->limits, cfg->fast_resize > 0 ? cfg->fast_resize * S : 0};
    image src, win;
    int rc = image_decode(data, len, &opts, &src, info, e);
    if (rc) return rc;
    int shorter = src.width < src.height ? src.width : src.height;
    int longer = src.width < src.height ? src.height : src.width;
    if ((double)S * (double)longer / (double)shorter > (double)INT_MAX) {
        image_free(&src);
        return err_set(e, ERR_UNSUPPORTED, "aspect ratio %dx%d too extreme to resize to a shorter side of %d",
                       src.width, src.height, S);
    }
    int new_w, new_h, left, top;
    clip_preprocess_geometry(src.width, src.height, S, &new_w, &new_h, &left, &top);
    image_window w = {left, top, S, S};
    rc = image_resize_window(&src, new_w, new_h, w, &win, e);
    image_free(&src);
    if (rc) return rc;
    image_to_rgb(&win, rgb);
    image_free(&win);
    return 0;
}

void clip_preprocess_normalize(const uint8_t *rgb, int size, const float mean[3], const float std[3], float *out)
{
    size_t n = (size_t)size * size;
    /* torch: byte.float().div(255), then sub_(mean).div_(std), all float32.
     * A value depends only on (byte, channel): tabulate the 3 x 256 results
     * with exactly those operations, then look them up. */
    float lut[3][256];
    for (int c = 0; c < 3; c++)
        for (int v = 0; v < 256; v++) lut[c][v] = ((float)v / 255.0f - mean[c]) / std[c];
    float *r = out, *g = out + n, *b = out + 2 * n;
    for (size_t i = 0; i < n; i++, rgb += 3) {
        r[i] = lut[0][rgb[0]];
        g[i] = lut[1][rgb[1]];
        b[i] = lut[2][rgb[2]];
    }
}

int clip_preprocess(const uint8_t *data, size_t len, const clip_preprocess_cfg *cfg, float *out, image_info *info,
                    err_t *e)
{
    int S = cfg->image_size;
    if (S <= 0 || S > 4096) return err_set(e, ERR_ARG, "image size %d out of range 1..4096", S);
    uint8_t *rgb = malloc((size_t)S * S * 3);
    if (!rgb) return err_set(e, ERR_NOMEM, "out of memory for a %dx%d crop", S, S);
    int rc = clip_preprocess_rgb8(data, len, cfg, rgb, info, e);
    if (rc == 0) clip_preprocess_normalize(rgb, S, cfg->mean, cfg->std, out);
    free(rgb);
    return rc;
}
