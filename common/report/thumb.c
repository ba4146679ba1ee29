#include "report/thumb.h"

#include <stdlib.h>
#include <webp/encode.h>

#include "image/image.h"
#include "image/resample.h"

void thumb_base64(sbuf_t *sb, const uint8_t *d, size_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)d[i] << 16 | (i + 1 < n ? (uint32_t)d[i + 1] << 8 : 0) | (i + 2 < n ? d[i + 2] : 0);
        char out[4] = {tab[v >> 18 & 63], tab[v >> 12 & 63], i + 1 < n ? tab[v >> 6 & 63] : '=',
                       i + 2 < n ? tab[v & 63] : '='};
        sb_append(sb, out, 4);
    }
}

int thumb_webp_uri(const uint8_t *data, size_t len, int max_side, sbuf_t *uri, int *w, int *h, err_t *e)
{
    image src = {0}, small = {0};
    /* a reduced-DCT JPEG decode is plenty for a thumbnail and much faster */
    image_decode_opts opts = {.jpeg_min_short = max_side};
    int rc = image_decode(data, len, &opts, &src, NULL, e);
    if (rc) return rc;
    int tw = src.width, th = src.height;
    /* only ever shrink: an upscaled thumbnail shows nothing new */
    if (tw > max_side || th > max_side) {
        if (tw >= th) th = (int)((long long)th * max_side / tw), tw = max_side;
        else tw = (int)((long long)tw * max_side / th), th = max_side;
        th = th < 1 ? 1 : th;
        tw = tw < 1 ? 1 : tw;
    }
    rc = image_resize_window(&src, tw, th, (image_window){0, 0, tw, th}, &small, e);
    image_free(&src);
    if (rc) return rc;
    uint8_t *rgb = malloc((size_t)tw * th * 3), *webp = NULL;
    if (!rgb) {
        image_free(&small);
        return err_set(e, ERR_NOMEM, "thumbnail of %dx%d", tw, th);
    }
    image_to_rgb(&small, rgb);
    image_free(&small);
    size_t n = WebPEncodeRGB(rgb, tw, th, tw * 3, 80.0f, &webp);
    free(rgb);
    if (!n) return err_set(e, ERR_INTERNAL, "libwebp could not encode a %dx%d thumbnail", tw, th);
    sb_puts(uri, "data:image/webp;base64,");
    thumb_base64(uri, webp, n);
    WebPFree(webp);
    *w = tw, *h = th;
    return 0;
}
