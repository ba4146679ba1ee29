/* What one synthetic image shows, and the captions that describe it.
 *
 * A scene is a solid background with one or two shapes. One shape has a size
 * word (small/large) and a position ("in the center", "on the left", ...);
 * two shapes have a spatial relation ("above", "to the left of", ...) and
 * never overlap, so the relation is true of the pixels. Geometry is stored as
 * fractions of the image so one scene can be drawn at any size. Greyscale
 * scenes use only achromatic colours so that their captions stay true after
 * the image is stored as grey.
 *
 * Captions come from SYNTH_N_PHRASINGS fixed templates (docs/synth.md lists
 * the grammar); every phrasing names every shape's colour and kind. */
#ifndef CLIPCAP_SYNTH_SCENE_H
#define CLIPCAP_SYNTH_SCENE_H

#include <stddef.h>
#include <stdint.h>

enum synth_shape { SYNTH_CIRCLE, SYNTH_SQUARE, SYNTH_TRIANGLE, SYNTH_DIAMOND, SYNTH_N_SHAPES };

/* One shape's placement relative to the other (two-shape scenes). */
enum synth_relation { SYNTH_ABOVE, SYNTH_BELOW, SYNTH_LEFT_OF, SYNTH_RIGHT_OF, SYNTH_N_RELATIONS };

/* A lone shape's place (one-shape scenes). */
enum synth_position { SYNTH_CENTER, SYNTH_LEFT, SYNTH_RIGHT, SYNTH_TOP, SYNTH_BOTTOM, SYNTH_N_POSITIONS };

#define SYNTH_N_PHRASINGS 5
#define SYNTH_CAPTION_MAX 160

typedef struct synth_color_t {
    const char *name;
    uint8_t rgb[3];
} synth_color_t;

typedef struct synth_object_t {
    int shape;    /* enum synth_shape */
    int color;    /* index into synth_colors() */
    int large;    /* one-shape scenes: 1 = "large", 0 = "small" */
    double cx, cy; /* centre as a fraction of width and height */
    double half;  /* half extent as a fraction of min(width, height) */
} synth_object_t;

typedef struct synth_scene_t {
    int n_objects;          /* 1 or 2 */
    synth_object_t obj[2];  /* two shapes: obj[0] RELATION obj[1] */
    int relation;           /* enum synth_relation, two shapes only */
    int position;           /* enum synth_position, one shape only */
    int background;         /* index into synth_colors() */
    uint8_t background_alpha; /* 255 unless the image format keeps alpha */
    int grey;               /* achromatic colours only */
} synth_scene_t;

/* The colour table: names and sRGB values. */
const synth_color_t *synth_colors(int *count);
const char *synth_shape_name(int shape);

/* Draw a scene from seed. grey: achromatic colours only; alpha: give the
 * background a partial transparency (shapes stay opaque). */
void synth_scene_make(synth_scene_t *s, uint64_t seed, int grey, int alpha);

/* Phrasing p in [0, SYNTH_N_PHRASINGS) of the scene's caption into out,
 * lower case, no final period. Returns the length (always < cap when cap >=
 * SYNTH_CAPTION_MAX). */
size_t synth_caption(const synth_scene_t *s, int phrasing, char *out, size_t cap);

#endif
