#include "data/synth_draw.h"

#include <math.h>

int synth_object_contains(const synth_object_t *o, int width, int height, double x, double y)
{
    double hp = o->half * (width < height ? width : height);
    double dx = x - o->cx * width, dy = y - o->cy * height;
    switch (o->shape) {
    case SYNTH_CIRCLE: return dx * dx + dy * dy <= hp * hp;
    case SYNTH_SQUARE: return fabs(dx) <= hp && fabs(dy) <= hp;
    case SYNTH_DIAMOND: return fabs(dx) + fabs(dy) <= hp;
    default: /* triangle, apex up, base on the bottom edge of the box */
        return dy >= -hp && dy <= hp && fabs(dx) <= (dy + hp) * 0.5;
    }
}

static inline uint8_t mix(uint8_t a, uint8_t b, int cov)
{
    /* cov of 4 samples are b; integer rounding keeps it exact and portable */
    return (uint8_t)((a * (4 - cov) + b * cov + 2) / 4);
}

void synth_draw(const synth_scene_t *s, int width, int height, uint8_t *rgba)
{
    const synth_color_t *col = synth_colors(NULL);
    const uint8_t *bg = col[s->background].rgb;
    size_t n = (size_t)width * (size_t)height;
    for (size_t i = 0; i < n; i++) {
        rgba[4 * i] = bg[0];
        rgba[4 * i + 1] = bg[1];
        rgba[4 * i + 2] = bg[2];
        rgba[4 * i + 3] = s->background_alpha;
    }
    int m = width < height ? width : height;
    for (int k = 0; k < s->n_objects; k++) {
        const synth_object_t *o = &s->obj[k];
        const uint8_t *c = col[o->color].rgb;
        double hp = o->half * m;
        int x0 = (int)floor(o->cx * width - hp) - 1, x1 = (int)ceil(o->cx * width + hp) + 1;
        int y0 = (int)floor(o->cy * height - hp) - 1, y1 = (int)ceil(o->cy * height + hp) + 1;
        if (x0 < 0) x0 = 0;
        if (y0 < 0) y0 = 0;
        if (x1 > width) x1 = width;
        if (y1 > height) y1 = height;
        for (int y = y0; y < y1; y++)
            for (int x = x0; x < x1; x++) {
                int cov = 0;
                for (int sy = 0; sy < 2; sy++)
                    for (int sx = 0; sx < 2; sx++)
                        cov += synth_object_contains(o, width, height, x + 0.25 + 0.5 * sx, y + 0.25 + 0.5 * sy);
                if (!cov) continue;
                uint8_t *p = rgba + 4 * ((size_t)y * width + x);
                for (int ch = 0; ch < 3; ch++) p[ch] = mix(p[ch], c[ch], cov);
                p[3] = mix(p[3], 255, cov);
            }
    }
}
