/* JPEG through libjpeg-turbo, producing what Pillow's JpegImageFile holds:
 * 1 component -> L, 3 -> RGB (YCbCr or Adobe RGB, libjpeg's default islow
 * IDCT and fancy upsampling, as Pillow leaves them), 4 -> CMYK where Pillow
 * always reads the samples as Adobe-inverted ("CMYK;I", 255 - sample),
 * YCCK converted to CMYK by libjpeg first.
 *
 * libjpeg reports fatal errors through error_exit, which must not return:
 * ours longjmps back here. A premature end of data is only a warning to
 * libjpeg (it pads with grey); Pillow refuses truncated files, so we turn
 * that warning into an error too. Other corrupt-data warnings (extraneous
 * bytes before a marker) are tolerated, as Pillow tolerates them. */
#include "image/image.h"

#include <setjmp.h>
#include <stdio.h> /* before jpeglib.h, which uses FILE */
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>

struct jpeg_ctx {
    struct jpeg_error_mgr pub;
    jmp_buf jump;
    int code;
    char msg[JMSG_LENGTH_MAX];
};

static void jpeg_ctx_error_exit(j_common_ptr cinfo)
{
    struct jpeg_ctx *ctx = (struct jpeg_ctx *)cinfo->err;
    cinfo->err->format_message(cinfo, ctx->msg);
    int c = cinfo->err->msg_code;
    ctx->code = (c == JERR_BAD_PRECISION || c == JERR_ARITH_NOTIMPL || c == JERR_NOT_COMPILED) ? ERR_UNSUPPORTED
                                                                                              : ERR_FORMAT;
    longjmp(ctx->jump, 1);
}

static void jpeg_ctx_emit_message(j_common_ptr cinfo, int level)
{
    if (level == -1 && cinfo->err->msg_code == JWRN_JPEG_EOF) {
        struct jpeg_ctx *ctx = (struct jpeg_ctx *)cinfo->err;
        snprintf(ctx->msg, sizeof ctx->msg, "truncated file (premature end of JPEG data)");
        ctx->code = ERR_FORMAT;
        longjmp(ctx->jump, 1);
    }
}

/* The largest power-of-two DCT reduction (1/8 .. 1/2) keeping the shorter
 * side >= min_short; libjpeg rounds scaled sizes up. */
static int jpeg_pick_denom(int w, int h, int min_short)
{
    int s = w < h ? w : h;
    for (int d = 8; d >= 2; d /= 2)
        if ((s + d - 1) / d >= min_short) return d;
    return 1;
}

int image_decode_jpeg(const uint8_t *data, size_t len, const image_decode_opts *opts, image *out, image_info *info,
                      err_t *e)
{
    struct jpeg_decompress_struct cinfo;
    struct jpeg_ctx ctx;
    memset(&cinfo, 0, sizeof cinfo); /* so jpeg_destroy is safe on any error path */
    memset(&ctx, 0, sizeof ctx);
    memset(out, 0, sizeof *out);
    cinfo.err = jpeg_std_error(&ctx.pub);
    ctx.pub.error_exit = jpeg_ctx_error_exit;
    ctx.pub.emit_message = jpeg_ctx_emit_message;
    if (setjmp(ctx.jump)) {
        jpeg_destroy_decompress(&cinfo);
        image_free(out);
        return err_set(e, ctx.code, "jpeg: %s", ctx.msg);
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, data, (unsigned long)len);
    jpeg_read_header(&cinfo, TRUE);

    image_mode mode;
    switch (cinfo.num_components) {
    case 1: mode = IMAGE_MODE_L; cinfo.out_color_space = JCS_GRAYSCALE; break;
    case 3: mode = IMAGE_MODE_RGB; cinfo.out_color_space = JCS_RGB; break;
    case 4: mode = IMAGE_MODE_CMYK; cinfo.out_color_space = JCS_CMYK; break;
    default:
        jpeg_destroy_decompress(&cinfo);
        return err_set(e, ERR_UNSUPPORTED, "jpeg: %d colour components (supported: 1, 3, 4)", cinfo.num_components);
    }
    info->width = (int)cinfo.image_width;
    info->height = (int)cinfo.image_height;
    info->mode = mode;
    /* Check the declared size before libjpeg allocates anything large. */
    int rc = image_check_limits(info->width, info->height, &opts->limits, e);
    if (rc) {
        jpeg_destroy_decompress(&cinfo);
        return rc;
    }
    if (opts->jpeg_min_short > 0) {
        cinfo.scale_num = 1;
        cinfo.scale_denom = (unsigned)jpeg_pick_denom(info->width, info->height, opts->jpeg_min_short);
    }
    jpeg_start_decompress(&cinfo);
    rc = image_alloc_checked(out, (int)cinfo.output_width, (int)cinfo.output_height, mode, &opts->limits, e);
    if (rc) {
        jpeg_destroy_decompress(&cinfo);
        return rc;
    }
    size_t stride = (size_t)out->width * (size_t)image_mode_bytes(mode);
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW row = out->pixels + (size_t)cinfo.output_scanline * stride;
        jpeg_read_scanlines(&cinfo, &row, 1);
    }
    /* No jpeg_finish_decompress: every scanline is in, so a file missing
     * only its trailing EOI marker is accepted. */
    jpeg_destroy_decompress(&cinfo);
    if (mode == IMAGE_MODE_CMYK) {
        size_t n = stride * (size_t)out->height;
        for (size_t i = 0; i < n; i++) out->pixels[i] = (uint8_t)(255 - out->pixels[i]);
    }
    info->decoded_width = out->width;
    info->decoded_height = out->height;
    return 0;
}
