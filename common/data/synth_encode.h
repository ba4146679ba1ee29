/* Every image format the synthetic data set writes, encoded in memory with
 * the reference libraries users' files come from: libjpeg-turbo (baseline,
 * progressive, greyscale, Adobe CMYK), libpng (8/16-bit RGB, grey, grey +
 * alpha, palette with and without tRNS, RGBA, Adam7 interlaced) and libwebp
 * (lossy and lossless, with and without alpha).
 *
 * Input is always the 8-bit RGBA that synth_draw produces; each format keeps
 * what it can (grey formats keep luma, formats without alpha drop it). The
 * encoders are deterministic: the same pixels give the same bytes. */
#ifndef CLIPCAP_SYNTH_ENCODE_H
#define CLIPCAP_SYNTH_ENCODE_H

#include <stddef.h>
#include <stdint.h>
#include "core/log.h"

enum synth_format {
    SYNTH_JPEG_BASELINE,
    SYNTH_JPEG_PROGRESSIVE,
    SYNTH_JPEG_GREY,
    SYNTH_JPEG_CMYK,
    SYNTH_PNG_RGB,
    SYNTH_PNG_RGB16,
    SYNTH_PNG_GREY,
    SYNTH_PNG_GREY_ALPHA,
    SYNTH_PNG_PALETTE,
    SYNTH_PNG_PALETTE_TRNS,
    SYNTH_PNG_RGBA,
    SYNTH_PNG_INTERLACED,
    SYNTH_WEBP_LOSSY,
    SYNTH_WEBP_LOSSY_ALPHA,
    SYNTH_WEBP_LOSSLESS,
    SYNTH_WEBP_LOSSLESS_ALPHA,
    SYNTH_N_FORMATS
};

typedef struct synth_format_info_t {
    const char *name;     /* "png-palette-trns": used in synth_index.json */
    const char *ext;      /* "jpg", "png", "webp" */
    const char *pil_mode; /* the mode Pillow reports when it opens the file */
    int grey;             /* stores luma only: draw achromatic scenes */
    int alpha;            /* keeps an alpha channel */
    int lossless;         /* decodes back to exactly the input pixels */
} synth_format_info_t;

const synth_format_info_t *synth_format_info(int format);
/* The format named name, or -1. */
int synth_format_by_name(const char *name);

/* Encode width x height RGBA pixels; *out is malloc'd (free with free()). */
int synth_encode(int format, const uint8_t *rgba, int width, int height, uint8_t **out, size_t *len, err_t *e);

#endif
