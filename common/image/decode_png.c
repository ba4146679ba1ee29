/* PNG through libpng, into the mode Pillow's PngImagePlugin opens:
 *   grey 1 bit -> "1"; grey 2/4/8 -> L (2/4-bit scaled by 0x55/0x11);
 *   grey 16 -> I (int32 0..65535); RGB 8/16 -> RGB; palette 1..8 -> P;
 *   grey+alpha 8 -> LA; grey+alpha 16 -> RGBA; RGBA 8/16 -> RGBA.
 * 16-bit samples keep their most significant byte (Pillow's ";16B" raw
 * modes do the same; libpng's png_set_strip_16). tRNS chunks do not change
 * the mode (Pillow keeps them as metadata that convert("RGB") ignores), and
 * gamma/ICC chunks are ignored as Pillow ignores them.
 *
 * libpng's error callback longjmps back here; reading past the end of the
 * buffer is a "truncated file" error. */
#include "image/image.h"

#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct png_ctx {
    const uint8_t *data;
    size_t len, pos;
    char msg[256];
};

static void png_ctx_error(png_structp png, png_const_charp msg)
{
    struct png_ctx *ctx = png_get_error_ptr(png);
    snprintf(ctx->msg, sizeof ctx->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void png_ctx_warning(png_structp png, png_const_charp msg) {}

static void png_ctx_read(png_structp png, png_bytep dst, size_t n)
{
    struct png_ctx *ctx = png_get_io_ptr(png);
    if (n > ctx->len - ctx->pos) png_error(png, "truncated file (unexpected end of PNG data)");
    memcpy(dst, ctx->data + ctx->pos, n);
    ctx->pos += n;
}

/* Pillow's mode for a PNG bit depth and colour type. */
static int png_pick_mode(int depth, int ctype, image_mode *mode)
{
    switch (ctype) {
    case PNG_COLOR_TYPE_GRAY: *mode = depth == 1 ? IMAGE_MODE_1 : depth == 16 ? IMAGE_MODE_I : IMAGE_MODE_L; return 0;
    case PNG_COLOR_TYPE_RGB: *mode = IMAGE_MODE_RGB; return 0;
    case PNG_COLOR_TYPE_PALETTE: *mode = IMAGE_MODE_P; return 0;
    case PNG_COLOR_TYPE_GRAY_ALPHA: *mode = depth == 16 ? IMAGE_MODE_RGBA : IMAGE_MODE_LA; return 0;
    case PNG_COLOR_TYPE_RGB_ALPHA: *mode = IMAGE_MODE_RGBA; return 0;
    }
    return -1;
}

int image_decode_png(const uint8_t *data, size_t len, const image_decode_opts *opts, image *out, image_info *info,
                     err_t *e)
{
    struct png_ctx ctx = {data, len, 0, {0}};
    memset(out, 0, sizeof *out);
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &ctx, png_ctx_error, png_ctx_warning);
    if (!png) return err_set(e, ERR_NOMEM, "png: cannot create the decoder");
    png_infop pinfo = png_create_info_struct(png);
    if (!pinfo) {
        png_destroy_read_struct(&png, NULL, NULL);
        return err_set(e, ERR_NOMEM, "png: cannot create the decoder");
    }
    /* Row pointers live in a heap block owned by this frame; volatile so
     * the longjmp path sees the value set after setjmp. */
    png_bytep *volatile rows = NULL;
    uint8_t *volatile wide = NULL;
    if (setjmp(png_jmpbuf(png))) {
        free(rows);
        free(wide);
        png_destroy_read_struct(&png, &pinfo, NULL);
        image_free(out);
        return err_set(e, ERR_FORMAT, "png: %s", ctx.msg);
    }
    png_set_read_fn(png, &ctx, png_ctx_read);
    /* Our own limit is checked below; lift libpng's 1e6 x 1e6 default so
     * the message is ours and consistent across formats. */
    png_set_user_limits(png, 0x7fffffff, 0x7fffffff);
    png_read_info(png, pinfo);
    png_uint_32 w, h;
    int depth, ctype, interlace;
    png_get_IHDR(png, pinfo, &w, &h, &depth, &ctype, &interlace, NULL, NULL);
    image_mode mode;
    if (png_pick_mode(depth, ctype, &mode)) {
        png_destroy_read_struct(&png, &pinfo, NULL);
        return err_set(e, ERR_UNSUPPORTED, "png: colour type %d", ctype);
    }
    info->width = (int)w;
    info->height = (int)h;
    info->mode = mode;
    int rc = image_alloc_checked(out, (int)w, (int)h, mode, &opts->limits, e);
    if (rc) {
        png_destroy_read_struct(&png, &pinfo, NULL);
        return rc;
    }
    if (ctype == PNG_COLOR_TYPE_PALETTE) {
        /* Pillow's palette starts as a grey ramp; PLTE overrides its entries. */
        for (int i = 0; i < 256; i++) out->palette[3 * i] = out->palette[3 * i + 1] = out->palette[3 * i + 2] = (uint8_t)i;
        png_colorp plte = NULL;
        int nplte = 0;
        if (png_get_PLTE(png, pinfo, &plte, &nplte) == PNG_INFO_PLTE)
            for (int i = 0; i < nplte && i < 256; i++) {
                out->palette[3 * i] = plte[i].red;
                out->palette[3 * i + 1] = plte[i].green;
                out->palette[3 * i + 2] = plte[i].blue;
            }
        if (depth < 8) png_set_packing(png);
    } else if (ctype == PNG_COLOR_TYPE_GRAY && depth < 8) {
        png_set_expand_gray_1_2_4_to_8(png);
    }
    if (depth == 16 && mode != IMAGE_MODE_I) png_set_strip_16(png);
    if (ctype == PNG_COLOR_TYPE_GRAY_ALPHA && depth == 16) png_set_gray_to_rgb(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, pinfo);

    size_t rowbytes = png_get_rowbytes(png, pinfo);
    size_t stride = (size_t)w * (size_t)image_mode_bytes(mode);
    uint8_t *base = out->pixels;
    if (mode == IMAGE_MODE_I) {
        /* 16-bit big-endian samples, widened to int32 afterwards. */
        wide = malloc(rowbytes * h);
        if (!wide) png_error(png, "out of memory");
        base = wide;
        stride = rowbytes;
    } else if (rowbytes != stride) {
        png_error(png, "unexpected row size after transformations");
    }
    rows = malloc(sizeof(png_bytep) * h);
    if (!rows) png_error(png, "out of memory");
    for (png_uint_32 y = 0; y < h; y++) rows[y] = base + (size_t)y * stride;
    png_read_image(png, rows);
    if (mode == IMAGE_MODE_I) {
        int32_t *dst = (int32_t *)out->pixels;
        size_t n = (size_t)w * h;
        for (size_t i = 0; i < n; i++) dst[i] = (int32_t)((wide[2 * i] << 8) | wide[2 * i + 1]);
    }
    free(rows);
    free(wide);
    png_destroy_read_struct(&png, &pinfo, NULL);
    info->decoded_width = (int)w;
    info->decoded_height = (int)h;
    return 0;
}
