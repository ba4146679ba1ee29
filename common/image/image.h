/* Decoded images, decode limits, and the decoders' entry point.
 *
 * An `image` holds pixels in the mode Pillow would open the file in, because
 * CLIP's reference preprocessing resizes in that mode before converting to
 * RGB (see docs/image.md):
 *   IMAGE_MODE_1     bilevel PNG, one byte per pixel (0 or 255)
 *   IMAGE_MODE_L     grey, 1 byte
 *   IMAGE_MODE_LA    grey + alpha, 2 bytes
 *   IMAGE_MODE_P     palette indices, 1 byte, plus `palette` (256 RGB entries
 *                    initialised as Pillow does: entry i is (i,i,i) unless the
 *                    file's PLTE sets it)
 *   IMAGE_MODE_RGB   3 bytes
 *   IMAGE_MODE_RGBA  4 bytes (straight, not premultiplied, alpha)
 *   IMAGE_MODE_CMYK  4 bytes, ink amounts (0 = no ink), i.e. Pillow's CMYK
 *   IMAGE_MODE_I     int32 per pixel (16-bit grey PNG, values 0..65535)
 * Rows are packed: stride = width * image_mode_bytes(mode).
 *
 * Decoding reads the header first and checks `image_limits` before any
 * pixel buffer is allocated, so a small file that claims 100000x100000
 * pixels fails with ERR_LIMIT without touching memory. Every decoder is
 * re-entrant (no shared mutable state; libjpeg/libpng errors longjmp back
 * into the decoder, never exit()). Errors: ERR_FORMAT (corrupt, truncated,
 * empty, unknown signature), ERR_UNSUPPORTED (a valid file we do not
 * handle), ERR_LIMIT, ERR_NOMEM. Messages do not name the file: the caller
 * wraps them with the file or record. */
#ifndef CLIPCAP_IMAGE_H
#define CLIPCAP_IMAGE_H

#include <stddef.h>
#include <stdint.h>
#include "core/log.h"

typedef enum image_format {
    IMAGE_FORMAT_UNKNOWN = 0,
    IMAGE_FORMAT_JPEG,
    IMAGE_FORMAT_PNG,
    IMAGE_FORMAT_WEBP,
} image_format;

typedef enum image_mode {
    IMAGE_MODE_1 = 0,
    IMAGE_MODE_L,
    IMAGE_MODE_LA,
    IMAGE_MODE_P,
    IMAGE_MODE_RGB,
    IMAGE_MODE_RGBA,
    IMAGE_MODE_CMYK,
    IMAGE_MODE_I,
} image_mode;

/* Pillow refuses more than 178956970 pixels; we default lower because
 * several workers decode at once (64 Mpx RGBA is 256 MiB). */
#define IMAGE_DEFAULT_MAX_PIXELS ((uint64_t)1 << 26)
#define IMAGE_DEFAULT_MAX_BYTES ((size_t)256 << 20)

typedef struct image_limits {
    uint64_t max_pixels; /* width*height as declared by the header; 0 = default */
    size_t max_bytes;    /* size of the encoded file; 0 = default */
} image_limits;

typedef struct image_info {
    int width, height;            /* as stored in the file */
    int decoded_width, decoded_height; /* after a reduced-DCT decode (fast mode), else = width/height */
    image_format format;
    image_mode mode;              /* the mode the pixels were decoded in */
    int frames;                   /* animated WebP: frame count (first frame used); else 1 */
} image_info;

typedef struct image {
    int width, height;
    image_mode mode;
    uint8_t *pixels;          /* malloc'd; int32_t* for IMAGE_MODE_I */
    uint8_t palette[256 * 3]; /* IMAGE_MODE_P only */
} image;

typedef struct image_decode_opts {
    image_limits limits;
    /* > 0: JPEG only, decode at the smallest libjpeg DCT scale 1/2, 1/4 or
     * 1/8 whose shorter side is still >= min_short (fast mode). 0: full size. */
    int jpeg_min_short;
} image_decode_opts;

/* Bytes per pixel of a mode (4 for IMAGE_MODE_I). */
int image_mode_bytes(image_mode mode);
const char *image_mode_name(image_mode mode);     /* Pillow's names: "1", "L", "LA", "P", ... */
const char *image_format_name(image_format format); /* "jpeg", "png", "webp", "unknown" */

/* The format from the leading magic bytes (never the file name). */
image_format image_sniff(const uint8_t *data, size_t len);

/* Decode any supported file. On success *out owns its pixels (image_free)
 * and info (may be NULL) is filled. On failure *out holds nothing. */
int image_decode(const uint8_t *data, size_t len, const image_decode_opts *opts, image *out, image_info *info,
                 err_t *e);
void image_free(image *im);

/* Per-format decoders, called by image_decode after sniffing. */
int image_decode_jpeg(const uint8_t *data, size_t len, const image_decode_opts *opts, image *out, image_info *info,
                      err_t *e);
int image_decode_png(const uint8_t *data, size_t len, const image_decode_opts *opts, image *out, image_info *info,
                     err_t *e);
int image_decode_webp(const uint8_t *data, size_t len, const image_decode_opts *opts, image *out, image_info *info,
                      err_t *e);

/* Shared by the decoders: ERR_LIMIT when w*h exceeds the limit (0 = default),
 * ERR_FORMAT when a dimension is not positive. Called with the header's
 * dimensions before the codec allocates anything. */
int image_check_limits(int width, int height, const image_limits *lim, err_t *e);
/* image_check_limits, then allocates im->pixels. */
int image_alloc_checked(image *im, int width, int height, image_mode mode, const image_limits *lim, err_t *e);

#endif
