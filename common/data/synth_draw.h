/* Rasterise a synthetic scene into 8-bit RGBA, row-major, no padding.
 * Shape edges are anti-aliased with 2x2 supersampling, so an image holds the
 * background, the shape colours and at most three blends of each shape with
 * the background: few enough colours for a PNG palette. Works at any size
 * down to 1x1 (a shape smaller than a pixel may leave no trace). */
#ifndef CLIPCAP_SYNTH_DRAW_H
#define CLIPCAP_SYNTH_DRAW_H

#include <stdint.h>
#include "data/synth_scene.h"

/* rgba must hold width*height*4 bytes. */
void synth_draw(const synth_scene_t *s, int width, int height, uint8_t *rgba);

/* Whether the point (x, y), in pixels, lies inside object o of an image of
 * the given size: the geometry synth_draw fills, for tests and callers that
 * need to know where a shape is. */
int synth_object_contains(const synth_object_t *o, int width, int height, double x, double y);

#endif
