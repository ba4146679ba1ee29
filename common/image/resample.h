/* Pillow-exact resize (Image.resize as Pillow 9.4 does it), restricted to an
 * output window so a centre crop never materialises the full resized image.
 *
 * image_resize_window(in, out_w, out_h, win, out) computes the pixels
 * [win.x, win.x+win.w) x [win.y, win.y+win.h) of `in` resized to out_w x out_h
 * and stores them, in in's mode, as a win.w x win.h image. Each output pixel
 * depends only on its own taps, so the window equals cropping Pillow's full
 * result. The filter follows Pillow's choice for the mode:
 *   P and 1          NEAREST (Pillow's affine scale: source x = int(x0 + (i+0.5)*sx),
 *                    accumulated in double exactly as Pillow steps it)
 *   L, RGB, CMYK     BICUBIC, a = -0.5, support 2*max(scale,1), taps clipped
 *                    at the edges and renormalised, 22-bit fixed-point weights,
 *                    horizontal pass into 8 bits first, then vertical
 *   LA, RGBA         the same on premultiplied alpha (Pillow's RGBA->RGBa and
 *                    back, integer formulas), i.e. straight alpha on output
 *   I                BICUBIC with double weights on int32, rounded half up
 * When out_w == in->width (or out_h == in->height) that pass is skipped, as
 * in Pillow; when both match the window is a plain copy. */
#ifndef CLIPCAP_RESAMPLE_H
#define CLIPCAP_RESAMPLE_H

#include "image/image.h"

typedef struct image_window {
    int x, y, w, h;
} image_window;

int image_resize_window(const image *in, int out_w, int out_h, image_window win, image *out, err_t *e);

/* Pillow's convert("RGB") from any image_mode into packed RGB (w*h*3):
 * L/1 replicated, LA/RGBA alpha dropped, P through the palette, CMYK by
 * Pillow's cmyk2rgb, I clipped to 0..255. */
void image_to_rgb(const image *in, uint8_t *rgb);

#endif
