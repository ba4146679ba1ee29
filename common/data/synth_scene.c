#include "data/synth_scene.h"
#include "data/synth_rng.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Chromatic colours first, then the achromatic ones grey scenes draw from;
 * the three backgrounds are achromatic so every shape colour contrasts. */
static const synth_color_t colors[] = {
    {"red", {220, 30, 30}},      {"green", {30, 160, 40}},   {"blue", {30, 60, 220}},
    {"yellow", {240, 220, 30}},  {"orange", {245, 140, 20}}, {"purple", {140, 40, 170}},
    {"pink", {245, 120, 180}},   {"brown", {130, 80, 30}},   {"black", {0, 0, 0}},
    {"dark grey", {64, 64, 64}}, {"grey", {128, 128, 128}},  {"light grey", {192, 192, 192}},
    {"white", {255, 255, 255}},
};
enum { N_CHROMATIC = 8, FIRST_ACHROMATIC = 8, N_COLORS = (int)(sizeof colors / sizeof colors[0]) };
static const int backgrounds[] = {12, 8, 10}; /* white, black, grey */

static const char *const shape_names[SYNTH_N_SHAPES] = {"circle", "square", "triangle", "diamond"};
static const char *const relation_words[SYNTH_N_RELATIONS] = {"above", "below", "to the left of",
                                                              "to the right of"};
static const int relation_inverse[SYNTH_N_RELATIONS] = {SYNTH_BELOW, SYNTH_ABOVE, SYNTH_RIGHT_OF, SYNTH_LEFT_OF};
static const char *const position_words[SYNTH_N_POSITIONS] = {"in the center", "on the left", "on the right",
                                                              "at the top", "at the bottom"};
static const double position_xy[SYNTH_N_POSITIONS][2] = {
    {0.5, 0.5}, {0.25, 0.5}, {0.75, 0.5}, {0.5, 0.25}, {0.5, 0.75}};

const synth_color_t *synth_colors(int *count)
{
    if (count) *count = N_COLORS;
    return colors;
}

const char *synth_shape_name(int shape) { return shape >= 0 && shape < SYNTH_N_SHAPES ? shape_names[shape] : "?"; }

static int pick_color(synth_rng_t *r, int grey, int background)
{
    if (!grey) return (int)synth_rng_below(r, N_CHROMATIC);
    int c;
    do c = FIRST_ACHROMATIC + (int)synth_rng_below(r, N_COLORS - FIRST_ACHROMATIC);
    while (c == background);
    return c;
}

void synth_scene_make(synth_scene_t *s, uint64_t seed, int grey, int alpha)
{
    synth_rng_t r;
    synth_rng_init(&r, seed);
    memset(s, 0, sizeof *s);
    s->grey = grey;
    s->background = backgrounds[synth_rng_below(&r, 3)];
    /* Partial, never zero, transparency: a reader that drops alpha still sees
     * the background the caption names. */
    s->background_alpha = alpha ? (uint8_t)(96 + synth_rng_below(&r, 128)) : 255;
    s->n_objects = 1 + (int)synth_rng_below(&r, 2);
    for (int k = 0; k < s->n_objects; k++) {
        synth_object_t *o = &s->obj[k];
        do {
            o->shape = (int)synth_rng_below(&r, SYNTH_N_SHAPES);
            o->color = pick_color(&r, grey, s->background);
            /* Two shapes must differ, or "a red circle above a red circle"
             * would not say which is which. */
        } while (k == 1 && o->shape == s->obj[0].shape && o->color == s->obj[0].color);
    }
    if (s->n_objects == 1) {
        synth_object_t *o = &s->obj[0];
        o->large = (int)synth_rng_below(&r, 2);
        s->position = o->large ? SYNTH_CENTER : (int)synth_rng_below(&r, SYNTH_N_POSITIONS);
        o->half = o->large ? synth_rng_uniform(&r, 0.28, 0.38) : synth_rng_uniform(&r, 0.10, 0.16);
        o->cx = position_xy[s->position][0] + synth_rng_uniform(&r, -0.03, 0.03);
        o->cy = position_xy[s->position][1] + synth_rng_uniform(&r, -0.03, 0.03);
        return;
    }
    /* Two shapes sit in opposite halves along the relation's axis: centres
     * are >= 0.40 of that side apart and the halves sum to <= 0.36 of the
     * shorter side, so the shapes never touch and the relation holds. */
    s->relation = (int)synth_rng_below(&r, SYNTH_N_RELATIONS);
    int first_low = s->relation == SYNTH_ABOVE || s->relation == SYNTH_LEFT_OF;
    int vertical = s->relation == SYNTH_ABOVE || s->relation == SYNTH_BELOW;
    for (int k = 0; k < 2; k++) {
        synth_object_t *o = &s->obj[k];
        double along = ((k == 0) == first_low ? 0.27 : 0.73) + synth_rng_uniform(&r, -0.03, 0.03);
        double across = synth_rng_uniform(&r, 0.3, 0.7);
        o->cx = vertical ? across : along;
        o->cy = vertical ? along : across;
        o->half = synth_rng_uniform(&r, 0.10, 0.18);
    }
}

/* Appends printf-style text, never past cap; returns the new length. */
static size_t cat(char *out, size_t cap, size_t len, const char *fmt, ...)
{
    if (len + 1 >= cap) return len;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out + len, cap - len, fmt, ap);
    va_end(ap);
    if (n < 0) return len;
    return len + (size_t)n < cap ? len + (size_t)n : cap - 1;
}

/* "a small red circle", "an orange square" */
static size_t noun_phrase(const synth_scene_t *s, const synth_object_t *o, char *out, size_t cap, size_t len)
{
    const char *size = s->n_objects == 1 ? (o->large ? "large" : "small") : NULL;
    const char *first = size ? size : colors[o->color].name;
    const char *article = strchr("aeiou", first[0]) ? "an" : "a";
    if (size) return cat(out, cap, len, "%s %s %s %s", article, size, colors[o->color].name, shape_names[o->shape]);
    return cat(out, cap, len, "%s %s %s", article, colors[o->color].name, shape_names[o->shape]);
}

size_t synth_caption(const synth_scene_t *s, int phrasing, char *out, size_t cap)
{
    const char *bg = colors[s->background].name;
    size_t n = 0;
    out[0] = 0;
    if (s->n_objects == 1) {
        const char *pos = position_words[s->position];
        switch (phrasing) {
        case 0:
            n = noun_phrase(s, &s->obj[0], out, cap, n);
            return cat(out, cap, n, " on a %s background", bg);
        case 1:
            n = noun_phrase(s, &s->obj[0], out, cap, n);
            return cat(out, cap, n, " %s of the image", pos);
        case 2:
            n = cat(out, cap, n, "a %s background with ", bg);
            n = noun_phrase(s, &s->obj[0], out, cap, n);
            return cat(out, cap, n, " %s", pos);
        case 3:
            n = cat(out, cap, n, "there is ");
            n = noun_phrase(s, &s->obj[0], out, cap, n);
            return cat(out, cap, n, " %s", pos);
        default:
            n = cat(out, cap, n, "a picture of ");
            n = noun_phrase(s, &s->obj[0], out, cap, n);
            return cat(out, cap, n, " %s on a %s background", pos, bg);
        }
    }
    const synth_object_t *a = &s->obj[0], *b = &s->obj[1];
    const char *rel = relation_words[s->relation];
    switch (phrasing) {
    case 0:
        n = noun_phrase(s, a, out, cap, n);
        n = cat(out, cap, n, " %s ", rel);
        return noun_phrase(s, b, out, cap, n);
    case 1:
        n = noun_phrase(s, b, out, cap, n);
        n = cat(out, cap, n, " %s ", relation_words[relation_inverse[s->relation]]);
        return noun_phrase(s, a, out, cap, n);
    case 2:
        n = noun_phrase(s, a, out, cap, n);
        n = cat(out, cap, n, " and ");
        n = noun_phrase(s, b, out, cap, n);
        return cat(out, cap, n, " on a %s background", bg);
    case 3:
        n = cat(out, cap, n, "there is ");
        n = noun_phrase(s, a, out, cap, n);
        n = cat(out, cap, n, " %s ", rel);
        n = noun_phrase(s, b, out, cap, n);
        return cat(out, cap, n, " on a %s background", bg);
    default:
        n = cat(out, cap, n, "a picture of ");
        n = noun_phrase(s, a, out, cap, n);
        n = cat(out, cap, n, " %s ", rel);
        return noun_phrase(s, b, out, cap, n);
    }
}
