/* Shared image helpers and the decoder dispatcher (format by magic bytes). */
#include "image/image.h"

#include <stdlib.h>
#include <string.h>

int image_mode_bytes(image_mode mode)
{
    switch (mode) {
    case IMAGE_MODE_1:
    case IMAGE_MODE_L:
    case IMAGE_MODE_P: return 1;
    case IMAGE_MODE_LA: return 2;
    case IMAGE_MODE_RGB: return 3;
    case IMAGE_MODE_RGBA:
    case IMAGE_MODE_CMYK:
    case IMAGE_MODE_I: return 4;
    }
    return 0;
}

const char *image_mode_name(image_mode mode)
{
    static const char *const names[] = {"1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "I"};
    return (unsigned)mode < sizeof names / sizeof names[0] ? names[mode] : "?";
}

const char *image_format_name(image_format format)
{
    switch (format) {
    case IMAGE_FORMAT_JPEG: return "jpeg";
    case IMAGE_FORMAT_PNG: return "png";
    case IMAGE_FORMAT_WEBP: return "webp";
    case IMAGE_FORMAT_UNKNOWN: break;
    }
    return "unknown";
}

image_format image_sniff(const uint8_t *data, size_t len)
{
    static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (len >= 3 && data[0] == 0xff && data[1] == 0xd8 && data[2] == 0xff) return IMAGE_FORMAT_JPEG;
    if (len >= 8 && !memcmp(data, png_sig, 8)) return IMAGE_FORMAT_PNG;
    if (len >= 12 && !memcmp(data, "RIFF", 4) && !memcmp(data + 8, "WEBP", 4)) return IMAGE_FORMAT_WEBP;
    return IMAGE_FORMAT_UNKNOWN;
}

/* A few formats users meet that we deliberately do not decode: name them so
 * the error says "unsupported GIF" rather than "not an image". */
static const char *image_sniff_other(const uint8_t *data, size_t len)
{
    if (len >= 6 && (!memcmp(data, "GIF87a", 6) || !memcmp(data, "GIF89a", 6))) return "GIF";
    if (len >= 2 && !memcmp(data, "BM", 2)) return "BMP";
    if (len >= 4 && (!memcmp(data, "II*\0", 4) || !memcmp(data, "MM\0*", 4))) return "TIFF";
    if (len >= 12 && !memcmp(data + 4, "ftyp", 4)) return "HEIF/AVIF";
    return NULL;
}

int image_check_limits(int width, int height, const image_limits *lim, err_t *e)
{
    if (width <= 0 || height <= 0) return err_set(e, ERR_FORMAT, "invalid dimensions %dx%d", width, height);
    uint64_t max_pixels = lim && lim->max_pixels ? lim->max_pixels : IMAGE_DEFAULT_MAX_PIXELS;
    uint64_t pixels = (uint64_t)width * (uint64_t)height;
    if (pixels > max_pixels)
        return err_set(e, ERR_LIMIT, "%dx%d = %llu pixels exceeds the limit of %llu (decompression bomb?)", width,
                       height, (unsigned long long)pixels, (unsigned long long)max_pixels);
    return 0;
}

int image_alloc_checked(image *im, int width, int height, image_mode mode, const image_limits *lim, err_t *e)
{
    int rc = image_check_limits(width, height, lim, e);
    if (rc) return rc;
    uint64_t pixels = (uint64_t)width * (uint64_t)height;
    im->width = width;
    im->height = height;
    im->mode = mode;
    im->pixels = malloc((size_t)pixels * (size_t)image_mode_bytes(mode));
    if (!im->pixels) return err_set(e, ERR_NOMEM, "out of memory for %dx%d pixels", width, height);
    return 0;
}

void image_free(image *im)
{
    if (!im) return;
    free(im->pixels);
    im->pixels = NULL;
}

int image_decode(const uint8_t *data, size_t len, const image_decode_opts *opts, image *out, image_info *info,
                 err_t *e)
{
    memset(out, 0, sizeof *out);
    image_info local;
    if (!info) info = &local;
    memset(info, 0, sizeof *info);
    size_t max_bytes = opts && opts->limits.max_bytes ? opts->limits.max_bytes : IMAGE_DEFAULT_MAX_BYTES;
    if (len == 0) return err_set(e, ERR_FORMAT, "empty file (0 bytes)");
    if (len > max_bytes)
        return err_set(e, ERR_LIMIT, "file of %zu bytes exceeds the limit of %zu bytes", len, max_bytes);
    image_decode_opts defaults = {{0, 0}, 0};
    if (!opts) opts = &defaults;
    info->format = image_sniff(data, len);
    info->frames = 1;
    switch (info->format) {
    case IMAGE_FORMAT_JPEG: return image_decode_jpeg(data, len, opts, out, info, e);
    case IMAGE_FORMAT_PNG: return image_decode_png(data, len, opts, out, info, e);
    case IMAGE_FORMAT_WEBP: return image_decode_webp(data, len, opts, out, info, e);
    case IMAGE_FORMAT_UNKNOWN: break;
    }
    const char *other = image_sniff_other(data, len);
    if (other) return err_set(e, ERR_UNSUPPORTED, "unsupported image format %s (supported: JPEG, PNG, WebP)", other);
    return err_set(e, ERR_FORMAT, "not a JPEG, PNG or WebP file (unrecognised leading bytes %02x %02x %02x %02x)",
                   data[0], len > 1 ? data[1] : 0, len > 2 ? data[2] : 0, len > 3 ? data[3] : 0);
}
