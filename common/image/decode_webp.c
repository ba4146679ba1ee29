/* WebP through libwebp's WebPAnimDecoder, the path Pillow 9.4 takes for
 * every WebP file (still or animated): RGBA output with default options
 * (fancy upsampling for lossy), the first frame composited on a transparent
 * black canvas. Mode as Pillow: RGBA when the file declares alpha, else RGB.
 * The canvas size is read with WebPGetFeatures and checked against the
 * limits before libwebp allocates the canvas. */
#include "image/image.h"

#include <string.h>
#include <webp/decode.h>
#include <webp/demux.h>

static const char *webp_status_text(VP8StatusCode st)
{
    switch (st) {
    case VP8_STATUS_NOT_ENOUGH_DATA: return "truncated file (not enough data)";
    case VP8_STATUS_UNSUPPORTED_FEATURE: return "unsupported feature";
    case VP8_STATUS_OUT_OF_MEMORY: return "out of memory";
    default: return "corrupt bitstream";
    }
}

int image_decode_webp(const uint8_t *data, size_t len, const image_decode_opts *opts, image *out, image_info *info,
                      err_t *e)
{
    memset(out, 0, sizeof *out);
    WebPBitstreamFeatures feat;
    VP8StatusCode st = WebPGetFeatures(data, len, &feat);
    if (st != VP8_STATUS_OK)
        return err_set(e, st == VP8_STATUS_UNSUPPORTED_FEATURE ? ERR_UNSUPPORTED : ERR_FORMAT, "webp: %s",
                       webp_status_text(st));
    image_mode mode = feat.has_alpha ? IMAGE_MODE_RGBA : IMAGE_MODE_RGB;
    info->width = feat.width;
    info->height = feat.height;
    info->mode = mode;
    int rc = image_check_limits(feat.width, feat.height, &opts->limits, e);
    if (rc) return rc;

    WebPData wd = {data, len};
    WebPAnimDecoderOptions dopt;
    if (!WebPAnimDecoderOptionsInit(&dopt)) return err_set(e, ERR_INTERNAL, "webp: library version mismatch");
    dopt.color_mode = MODE_RGBA;
    dopt.use_threads = 0;
    WebPAnimDecoder *dec = WebPAnimDecoderNew(&wd, &dopt);
    if (!dec) return err_set(e, ERR_FORMAT, "webp: corrupt or truncated file (demux failed)");
    WebPAnimInfo ai;
    uint8_t *canvas = NULL;
    int ts = 0;
    if (!WebPAnimDecoderGetInfo(dec, &ai) || !WebPAnimDecoderGetNext(dec, &canvas, &ts) || !canvas) {
        WebPAnimDecoderDelete(dec);
        return err_set(e, ERR_FORMAT, "webp: corrupt or truncated frame data");
    }
    if ((int)ai.canvas_width != feat.width || (int)ai.canvas_height != feat.height) {
        WebPAnimDecoderDelete(dec);
        return err_set(e, ERR_FORMAT, "webp: canvas %ux%u disagrees with the header's %dx%d", ai.canvas_width,
                       ai.canvas_height, feat.width, feat.height);
    }
    rc = image_alloc_checked(out, feat.width, feat.height, mode, &opts->limits, e);
    if (rc) {
        WebPAnimDecoderDelete(dec);
        return rc;
    }
    size_t n = (size_t)feat.width * (size_t)feat.height;
    if (mode == IMAGE_MODE_RGBA) {
        memcpy(out->pixels, canvas, n * 4);
    } else {
        for (size_t i = 0; i < n; i++) memcpy(out->pixels + 3 * i, canvas + 4 * i, 3);
    }
    info->frames = (int)ai.frame_count;
    info->decoded_width = feat.width;
    info->decoded_height = feat.height;
    WebPAnimDecoderDelete(dec);
    return 0;
}
