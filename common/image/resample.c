/* Pillow 9.4's Image.resize and convert("RGB"), reproduced operation by
 * operation (Resample.c, Geometry.c's ImagingScaleAffine, Convert.c) so the
 * 8-bit results are identical. Only the requested output window is
 * computed: a tap row/column depends on its output index alone. */
#include "image/resample.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif

#define PRECISION_BITS 22 /* Pillow: 32 - 8 - 2 */

/* Pillow's MULDIV255: a*b/255 rounded, in integers. */
static inline unsigned muldiv255(unsigned a, unsigned b)
{
    unsigned t = a * b + 128;
    return ((t >> 8) + t) >> 8;
}

static inline uint8_t clip8i(int v) { return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v); }

static double bicubic(double x)
{
    const double a = -0.5;
    if (x < 0.0) x = -x;
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

/* Taps of output indices [first, first+count) of a 1-D resize in_size ->
 * out_size (Pillow's precompute_coeffs with box = (0, in_size)). */
typedef struct taps {
    int ksize;
    int *lo, *n;  /* first source index and number of taps, per output */
    double *kd;   /* ksize doubles per output, normalised */
    int32_t *ki;  /* the same in 22-bit fixed point (8-bit modes) */
} taps;

static void taps_free(taps *t)
{
    free(t->lo);
    free(t->kd);
    free(t->ki);
    memset(t, 0, sizeof *t);
}

static int taps_compute(int in_size, int out_size, int first, int count, taps *t, err_t *e)
{
    memset(t, 0, sizeof *t);
    /* Pillow computes (double)(in1 - in0) / outSize with a float box. */
    double scale = (double)((float)in_size - 0.0f) / out_size;
    double filterscale = scale < 1.0 ? 1.0 : scale;
    double support = 2.0 * filterscale;
    t->ksize = (int)ceil(support) * 2 + 1;
    t->lo = malloc(sizeof(int) * 2 * (size_t)count);
    t->kd = malloc(sizeof(double) * (size_t)t->ksize * (size_t)count);
    t->ki = malloc(sizeof(int32_t) * (size_t)t->ksize * (size_t)count);
    if (!t->lo || !t->kd || !t->ki) {
        taps_free(t);
        return err_set(e, ERR_NOMEM, "resize: out of memory for filter taps");
    }
    t->n = t->lo + count;
    for (int i = 0; i < count; i++) {
        int xx = first + i;
        double center = (xx + 0.5) * scale;
        double ww = 0.0, ss = 1.0 / filterscale;
        int xmin = (int)(center - support + 0.5);
        if (xmin < 0) xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > in_size) xmax = in_size;
        xmax -= xmin;
        double *k = t->kd + (size_t)i * t->ksize;
        int x;
        for (x = 0; x < xmax; x++) {
            double w = bicubic((x + xmin - center + 0.5) * ss);
            k[x] = w;
            ww += w;
        }
        for (x = 0; x < xmax; x++)
            if (ww != 0.0) k[x] /= ww;
        for (; x < t->ksize; x++) k[x] = 0;
        int32_t *ki = t->ki + (size_t)i * t->ksize;
        for (x = 0; x < t->ksize; x++)
            ki[x] = k[x] < 0 ? (int32_t)(-0.5 + k[x] * (1 << PRECISION_BITS))
                             : (int32_t)(0.5 + k[x] * (1 << PRECISION_BITS));
        t->lo[i] = xmin;
        t->n[i] = xmax;
    }
    return 0;
}

/* Sum of taps in fixed point, rounded and clipped as Pillow's clip8. */
static inline uint8_t fixed_clip8(int ss) { return clip8i(ss >> PRECISION_BITS); }

/* acc[i] += row[i] * k over n values: the vertical pass's inner loop where
 * the CPU lacks AVX2. Written in blocks of 16 so GCC's default cost model
 * vectorises it. */
static void accumulate_row(int32_t *restrict acc, const uint8_t *restrict row, int32_t k, size_t n)
{
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int l = 0; l < 16; l++) acc[i + l] += row[i + l] * k;
    for (; i < n; i++) acc[i] += row[i] * k;
}

/* Pillow's vertical 8-bit pass: output row j is the taps of t applied to
 * source rows lo[j]-base ..., all `stride` bytes of each row at once (the
 * same integer sums as Pillow's per-pixel loop, in a vectorisable order).
 * rowpass8_avx2 below does the same with its accumulators in registers. */
static void rowpass8_generic(const uint8_t *src, size_t stride, int base, const taps *t, int count, uint8_t *dst,
                             int32_t *acc)
{
    for (int j = 0; j < count; j++) {
        const int32_t *k = t->ki + (size_t)j * t->ksize;
        const uint8_t *rows = src + (size_t)(t->lo[j] - base) * stride;
        for (size_t i = 0; i < stride; i++) acc[i] = 1 << (PRECISION_BITS - 1);
        for (int y = 0; y < t->n[j]; y++) accumulate_row(acc, rows + (size_t)y * stride, k[y], stride);
        uint8_t *out = dst + (size_t)j * stride;
        for (size_t i = 0; i < stride; i++) out[i] = fixed_clip8(acc[i]);
    }
}

/* Pillow's horizontal 8-bit pass over R rows of src (row pitch `pitch`
 * pixels, C bytes each) into dst (R x count), one row at a time: each
 * channel has its own register accumulator, as in Pillow. Used for the
 * rows left over by the tiled pass below. */
static inline __attribute__((always_inline)) void hpass8_c(const uint8_t *src, size_t pitch, const int C, int R,
                                                           const taps *t, int count, uint8_t *dst)
{
    for (int y = 0; y < R; y++) {
        const uint8_t *row = src + (size_t)y * pitch * C;
        uint8_t *out = dst + (size_t)y * count * C;
        for (int i = 0; i < count; i++) {
            const int32_t *k = t->ki + (size_t)i * t->ksize;
            const uint8_t *p = row + (size_t)t->lo[i] * C;
            int n = t->n[i];
            int s0 = 1 << (PRECISION_BITS - 1), s1 = s0, s2 = s0, s3 = s0;
            for (int x = 0; x < n; x++) {
                const uint8_t *q = p + x * C;
                int32_t kx = k[x];
                s0 += q[0] * kx;
                if (C > 1) s1 += q[1] * kx;
                if (C > 2) s2 += q[2] * kx;
                if (C > 3) s3 += q[3] * kx;
            }
            out[i * C] = fixed_clip8(s0);
            if (C > 1) out[i * C + 1] = fixed_clip8(s1);
            if (C > 2) out[i * C + 2] = fixed_clip8(s2);
            if (C > 3) out[i * C + 3] = fixed_clip8(s3);
        }
    }
}

static void hpass8_rows(const uint8_t *src, size_t pitch, int C, int R, const taps *t, int count, uint8_t *dst)
{
    switch (C) {
    case 1: hpass8_c(src, pitch, 1, R, t, count, dst); break;
    case 2: hpass8_c(src, pitch, 2, R, t, count, dst); break;
    case 3: hpass8_c(src, pitch, 3, R, t, count, dst); break;
    default: hpass8_c(src, pitch, 4, R, t, count, dst); break;
    }
}

#if defined(__x86_64__) && defined(__GNUC__)
/* The horizontal pass on 8 rows at once (AVX2). Every row of a tile uses
 * the same taps, so with the tile stored column-major (tile[b*8 + r] = byte
 * b of row r) one vector of 8 int32 lanes per channel accumulates all its
 * rows: the same integer sums as Pillow's per-pixel loop (integer addition
 * is exact in any order), one vector multiply-add instead of 8 scalar ones.
 * Each source byte is transposed once and read by about four overlapping
 * outputs. Measured in docs/image.md. */
#define RESAMPLE_AVX2 1
#define HT 8
#define AVX2_FN __attribute__((target("avx2")))

/* tile[b*8 + r] = src[r*stride + b] for b < nbytes, r < 8: three rounds of
 * interleaving (bytes, pairs, quads) turn 8 rows of 16 bytes into 16
 * columns of 8 bytes. */
AVX2_FN static void tile_transpose(const uint8_t *src, size_t stride, size_t nbytes, uint8_t *tile)
{
    size_t b = 0;
    for (; b + 16 <= nbytes; b += 16) {
        __m128i a[8], t[8], u[8];
        for (int y = 0; y < 8; y++) a[y] = _mm_loadu_si128((const __m128i *)(src + (size_t)y * stride + b));
        for (int y = 0; y < 8; y += 2) {
            t[y] = _mm_unpacklo_epi8(a[y], a[y + 1]);     /* columns 0..7 of rows y, y+1 */
            t[y + 1] = _mm_unpackhi_epi8(a[y], a[y + 1]); /* columns 8..15 */
        }
        for (int h = 0; h < 2; h++) {                         /* columns 0..7, then 8..15 */
            u[4 * h] = _mm_unpacklo_epi16(t[h], t[2 + h]);     /* rows 0-3 */
            u[4 * h + 1] = _mm_unpackhi_epi16(t[h], t[2 + h]);
            u[4 * h + 2] = _mm_unpacklo_epi16(t[4 + h], t[6 + h]); /* rows 4-7 */
            u[4 * h + 3] = _mm_unpackhi_epi16(t[4 + h], t[6 + h]);
        }
        uint8_t *o = tile + b * HT;
        for (int q = 0; q < 4; q++) { /* q: a group of 4 columns */
            const __m128i lo = u[(q >> 1) * 4 + (q & 1)], hi = u[(q >> 1) * 4 + (q & 1) + 2];
            _mm_storeu_si128((__m128i *)(o + 32 * q), _mm_unpacklo_epi32(lo, hi));
            _mm_storeu_si128((__m128i *)(o + 32 * q + 16), _mm_unpackhi_epi32(lo, hi));
        }
    }
    for (; b < nbytes; b++)
        for (int y = 0; y < HT; y++) tile[b * HT + (size_t)y] = src[(size_t)y * stride + b];
}

/* The inverse: dst[r*stride + b] = tile[b*8 + r]. Rounds of interleaving
 * pairs of columns (bytes, then pairs, quads and halves of rows). */
AVX2_FN static void tile_untranspose(const uint8_t *tile, size_t nbytes, uint8_t *dst, size_t stride)
{
    size_t b = 0;
    for (; b + 16 <= nbytes; b += 16) {
        const uint8_t *in = tile + b * HT;
        __m128i p[8], q[8], w[8];
        for (int j = 0; j < 8; j++) /* columns 2j, 2j+1 interleaved: rows 0..7 */
            p[j] = _mm_unpacklo_epi8(_mm_loadl_epi64((const __m128i *)(in + 16 * j)),
                                     _mm_loadl_epi64((const __m128i *)(in + 16 * j + 8)));
        for (int j = 0; j < 8; j += 2) { /* 4 columns: rows 0-3, rows 4-7 */
            q[j] = _mm_unpacklo_epi16(p[j], p[j + 1]);
            q[j + 1] = _mm_unpackhi_epi16(p[j], p[j + 1]);
        }
        for (int h = 0; h < 2; h++) { /* 8 columns (h: columns 0-7 or 8-15): rows 0-1, 2-3, 4-5, 6-7 */
            w[4 * h] = _mm_unpacklo_epi32(q[4 * h], q[4 * h + 2]);
            w[4 * h + 1] = _mm_unpackhi_epi32(q[4 * h], q[4 * h + 2]);
            w[4 * h + 2] = _mm_unpacklo_epi32(q[4 * h + 1], q[4 * h + 3]);
            w[4 * h + 3] = _mm_unpackhi_epi32(q[4 * h + 1], q[4 * h + 3]);
        }
        for (int r = 0; r < 4; r++) { /* w[r]: rows 2r, 2r+1 of columns 0-7; w[4+r] of columns 8-15 */
            _mm_storeu_si128((__m128i *)(dst + (size_t)(2 * r) * stride + b), _mm_unpacklo_epi64(w[r], w[4 + r]));
            _mm_storeu_si128((__m128i *)(dst + (size_t)(2 * r + 1) * stride + b), _mm_unpackhi_epi64(w[r], w[4 + r]));
        }
    }
    for (; b < nbytes; b++)
        for (int y = 0; y < HT; y++) dst[(size_t)y * stride + b] = tile[b * HT + (size_t)y];
}

AVX2_FN static inline __attribute__((always_inline)) __m256i mac8(__m256i s, const uint8_t *q, __m256i k)
{
    return _mm256_add_epi32(s, _mm256_mullo_epi32(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)q)), k));
}

/* Eight sums >> 22 as int16; _mm_packus_epi16 then clips to 0..255, i.e.
 * fixed_clip8 on each lane. */
AVX2_FN static inline __attribute__((always_inline)) __m128i shift16(__m256i s)
{
    s = _mm256_srai_epi32(s, PRECISION_BITS);
    return _mm_packs_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
}

/* One tile: out[(i*C + c)*8 + r] = output pixel i, channel c, row r. */
AVX2_FN static inline __attribute__((always_inline)) void hmac_tile_c(const uint8_t *tile, const int C,
                                                                      const taps *t, int count, uint8_t *out)
{
    const __m256i bias = _mm256_set1_epi32(1 << (PRECISION_BITS - 1));
    for (int i = 0; i < count; i++, out += C * HT) {
        const int32_t *k = t->ki + (size_t)i * t->ksize;
        const uint8_t *p = tile + (size_t)t->lo[i] * C * HT;
        __m256i s0 = bias, s1 = bias, s2 = bias, s3 = bias;
        for (int x = 0; x < t->n[i]; x++, p += C * HT) {
            const __m256i kx = _mm256_set1_epi32(k[x]);
            s0 = mac8(s0, p, kx);
            if (C > 1) s1 = mac8(s1, p + HT, kx);
            if (C > 2) s2 = mac8(s2, p + 2 * HT, kx);
            if (C > 3) s3 = mac8(s3, p + 3 * HT, kx);
        }
        if (C == 1) _mm_storel_epi64((__m128i *)out, _mm_packus_epi16(shift16(s0), shift16(s0)));
        if (C > 1) _mm_storeu_si128((__m128i *)out, _mm_packus_epi16(shift16(s0), shift16(s1)));
        if (C == 3) _mm_storel_epi64((__m128i *)(out + 2 * HT), _mm_packus_epi16(shift16(s2), shift16(s2)));
        if (C == 4) _mm_storeu_si128((__m128i *)(out + 2 * HT), _mm_packus_epi16(shift16(s2), shift16(s3)));
    }
}

/* tile: scratch of HT * (cw + count) * C bytes. */
AVX2_FN static void hpass8_tiled(const uint8_t *src, size_t pitch, int C, int R, int cw, const taps *t, int count,
                                 uint8_t *dst, uint8_t *tile)
{
    uint8_t *out = tile + (size_t)HT * cw * C;
    const size_t out_bytes = (size_t)count * C;
    int y = 0;
    for (; y + HT <= R; y += HT) {
        tile_transpose(src + (size_t)y * pitch * C, pitch * C, (size_t)cw * C, tile);
        switch (C) {
        case 1: hmac_tile_c(tile, 1, t, count, out); break;
        case 2: hmac_tile_c(tile, 2, t, count, out); break;
        case 3: hmac_tile_c(tile, 3, t, count, out); break;
        default: hmac_tile_c(tile, 4, t, count, out); break;
        }
        tile_untranspose(out, out_bytes, dst + (size_t)y * out_bytes, out_bytes);
    }
    hpass8_rows(src + (size_t)y * pitch * C, pitch, C, R - y, t, count, dst + (size_t)y * out_bytes);
}

/* rowpass8 with the accumulators in registers: 16 bytes of the output row
 * at a time, every tap of the column added before the next 16. */
AVX2_FN static void rowpass8_avx2(const uint8_t *src, size_t stride, int base, const taps *t, int count,
                                  uint8_t *dst)
{
    const __m256i bias = _mm256_set1_epi32(1 << (PRECISION_BITS - 1));
    for (int j = 0; j < count; j++) {
        const int32_t *k = t->ki + (size_t)j * t->ksize;
        const uint8_t *rows = src + (size_t)(t->lo[j] - base) * stride;
        uint8_t *out = dst + (size_t)j * stride;
        size_t i = 0;
        for (; i + 16 <= stride; i += 16) {
            __m256i a = bias, b = bias;
            const uint8_t *q = rows + i;
            for (int y = 0; y < t->n[j]; y++, q += stride) {
                const __m256i ky = _mm256_set1_epi32(k[y]);
                a = mac8(a, q, ky);
                b = mac8(b, q + 8, ky);
            }
            _mm_storeu_si128((__m128i *)(out + i), _mm_packus_epi16(shift16(a), shift16(b)));
        }
        for (; i < stride; i++) {
            int32_t ss = 1 << (PRECISION_BITS - 1);
            for (int y = 0; y < t->n[j]; y++) ss += rows[(size_t)y * stride + i] * k[y];
            out[i] = fixed_clip8(ss);
        }
    }
}
#else
#define RESAMPLE_AVX2 0
#define HT 0
#endif

/* The 8-bit passes: the AVX2 versions where the CPU has AVX2 (the build
 * targets baseline x86-64), else the generic loops. Both give the same
 * bytes. tile: scratch of HT*(cw + count)*C bytes; acc: stride int32. */
static void hpass8(const uint8_t *src, size_t pitch, int C, int R, int cw, const taps *t, int count, uint8_t *dst,
                   uint8_t *tile)
{
#if RESAMPLE_AVX2
    if (__builtin_cpu_supports("avx2")) {
        hpass8_tiled(src, pitch, C, R, cw, t, count, dst, tile);
        return;
    }
#else
    (void)cw, (void)tile;
#endif
    hpass8_rows(src, pitch, C, R, t, count, dst);
}

static void rowpass8(const uint8_t *src, size_t stride, int base, const taps *t, int count, uint8_t *dst, int32_t *acc)
{
#if RESAMPLE_AVX2
    if (__builtin_cpu_supports("avx2")) {
        rowpass8_avx2(src, stride, base, t, count, dst);
        return;
    }
#endif
    rowpass8_generic(src, stride, base, t, count, dst, acc);
}

/* Pillow's ROUND_UP for the int32 path (0.5F promoted to double). */
static inline int32_t round_up(double f) { return (int32_t)(f >= 0.0 ? f + 0.5f : f - 0.5f); }

static void hpass32(const int32_t *src, size_t pitch, int R, const taps *t, int count, int32_t *dst)
{
    for (int y = 0; y < R; y++) {
        const int32_t *row = src + (size_t)y * pitch;
        for (int i = 0; i < count; i++) {
            const double *k = t->kd + (size_t)i * t->ksize;
            const int32_t *p = row + t->lo[i];
            double ss = 0.0;
            for (int x = 0; x < t->n[i]; x++) ss += p[x] * k[x];
            dst[(size_t)y * count + i] = round_up(ss);
        }
    }
}

static void vpass32(const int32_t *src, int w, int base, const taps *t, int count, int32_t *dst)
{
    for (int j = 0; j < count; j++) {
        const double *k = t->kd + (size_t)j * t->ksize;
        const int32_t *col = src + (size_t)(t->lo[j] - base) * w;
        for (int x = 0; x < w; x++) {
            double ss = 0.0;
            for (int y = 0; y < t->n[j]; y++) ss += col[(size_t)y * w + x] * k[y];
            dst[(size_t)j * w + x] = round_up(ss);
        }
    }
}

/* Pillow's RGBA -> RGBa (and LA -> La) on pixels of C bytes, alpha last. */
static void premultiply(uint8_t *p, size_t npix, int C)
{
    for (size_t i = 0; i < npix; i++, p += C) {
        unsigned a = p[C - 1];
        for (int c = 0; c < C - 1; c++) p[c] = (uint8_t)muldiv255(p[c], a);
    }
}

/* Pillow's RGBa -> RGBA (and La -> LA): alpha 0 or 255 keep the colour. */
static void unpremultiply(uint8_t *p, size_t npix, int C)
{
    for (size_t i = 0; i < npix; i++, p += C) {
        unsigned a = p[C - 1];
        if (a == 0 || a == 255) continue;
        for (int c = 0; c < C - 1; c++) p[c] = clip8i((int)((255 * (unsigned)p[c]) / a));
    }
}

/* Pillow's NEAREST resize (ImagingScaleAffine): source positions stepped in
 * double from 0.5*scale, truncated. */
static void nearest_index(int in_size, int out_size, int first, int count, int *idx)
{
    double step = (double)((float)in_size - 0.0f) / out_size;
    double pos = 0.0 + step * 0.5;
    for (int i = 0; i < first + count; i++) {
        int v = (int)pos; /* pos >= 0: Pillow's COORD() is plain truncation here */
        if (v >= in_size) v = in_size - 1; /* not reached for integer sizes; keeps reads in bounds */
        if (i >= first) idx[i - first] = v;
        pos += step;
    }
}

static int resize_nearest(const image *in, int out_w, int out_h, image_window win, image *out, err_t *e)
{
    int C = image_mode_bytes(in->mode);
    int *xi = malloc(sizeof(int) * ((size_t)win.w + (size_t)win.h));
    if (!xi) return err_set(e, ERR_NOMEM, "resize: out of memory");
    int *yi = xi + win.w;
    nearest_index(in->width, out_w, win.x, win.w, xi);
    nearest_index(in->height, out_h, win.y, win.h, yi);
    for (int y = 0; y < win.h; y++) {
        const uint8_t *row = in->pixels + (size_t)yi[y] * in->width * C;
        uint8_t *dst = out->pixels + (size_t)y * win.w * C;
        for (int x = 0; x < win.w; x++) memcpy(dst + (size_t)x * C, row + (size_t)xi[x] * C, (size_t)C);
    }
    free(xi);
    return 0;
}

/* Copy rows [r0,r1) x columns [c0, c0+cw) of src into a packed buffer. */
static void copy_block(const uint8_t *src, int src_w, int bpp, int r0, int r1, int c0, int cw, uint8_t *dst)
{
    for (int y = r0; y < r1; y++)
        memcpy(dst + (size_t)(y - r0) * cw * bpp, src + ((size_t)y * src_w + c0) * bpp, (size_t)cw * bpp);
}

int image_resize_window(const image *in, int out_w, int out_h, image_window win, image *out, err_t *e)
{
    memset(out, 0, sizeof *out);
    if (out_w <= 0 || out_h <= 0 || win.x < 0 || win.y < 0 || win.w <= 0 || win.h <= 0 || win.x + win.w > out_w ||
        win.y + win.h > out_h)
        return err_set(e, ERR_ARG, "resize: window %dx%d+%d+%d outside %dx%d", win.w, win.h, win.x, win.y, out_w, out_h);
    image_limits unlimited = {UINT64_MAX, 0};
    int rc = image_alloc_checked(out, win.w, win.h, in->mode, &unlimited, e);
    if (rc) return rc;
    memcpy(out->palette, in->palette, sizeof out->palette);
    int bpp = image_mode_bytes(in->mode);
    int need_h = out_w != in->width, need_v = out_h != in->height;
    if (!need_h && !need_v) {
        copy_block(in->pixels, in->width, bpp, win.y, win.y + win.h, win.x, win.w, out->pixels);
        return 0;
    }
    if (in->mode == IMAGE_MODE_P || in->mode == IMAGE_MODE_1) {
        rc = resize_nearest(in, out_w, out_h, win, out, e);
        if (rc) image_free(out);
        return rc;
    }

    taps th = {0}, tv = {0};
    uint8_t *src = NULL, *tmp = NULL;
    /* Source rows the vertical pass reads (all window rows when it is skipped). */
    int r0 = win.y, r1 = win.y + win.h;
    if (need_v) {
        if ((rc = taps_compute(in->height, out_h, win.y, win.h, &tv, e))) goto done;
        r0 = tv.lo[0];
        r1 = tv.lo[win.h - 1] + tv.n[win.h - 1];
    }
    if (need_h && (rc = taps_compute(in->width, out_w, win.x, win.w, &th, e))) goto done;
    /* Columns the horizontal pass reads. */
    int c0 = need_h ? th.lo[0] : win.x;
    int c1 = need_h ? th.lo[win.w - 1] + th.n[win.w - 1] : win.x + win.w;
    int alpha = in->mode == IMAGE_MODE_LA || in->mode == IMAGE_MODE_RGBA;
    int R = r1 - r0, cw = c1 - c0;
    if (need_h)
        for (int i = 0; i < win.w; i++) th.lo[i] -= c0;
    /* The block [r0,r1) x [c0,c1) of the source: the input itself, or a
     * premultiplied copy for the alpha modes. */
    const uint8_t *blk = in->pixels + ((size_t)r0 * in->width + c0) * bpp;
    size_t pitch = (size_t)in->width;
    if (alpha) {
        src = malloc((size_t)R * cw * bpp);
        if (!src) {
            rc = err_set(e, ERR_NOMEM, "resize: out of memory");
            goto done;
        }
        copy_block(in->pixels, in->width, bpp, r0, r1, c0, cw, src);
        premultiply(src, (size_t)R * cw, bpp);
        blk = src;
        pitch = (size_t)cw;
    }
    /* tmp: the horizontal pass's output, R rows x win.w pixels. */
    int32_t *acc = malloc(sizeof(int32_t) * (size_t)win.w * bpp);
    tmp = malloc((size_t)R * win.w * bpp + (size_t)HT * (cw + win.w) * bpp);
    if (!acc || !tmp) {
        free(acc);
        rc = err_set(e, ERR_NOMEM, "resize: out of memory");
        goto done;
    }
    int wide = in->mode == IMAGE_MODE_I; /* 16-bit grey PNG: Pillow's double-precision int32 path */
    if (need_h && wide) hpass32((const int32_t *)blk, pitch, R, &th, win.w, (int32_t *)tmp);
    else if (need_h) hpass8(blk, pitch, bpp, R, cw, &th, win.w, tmp, tmp + (size_t)R * win.w * bpp);
    else copy_block(blk, (int)pitch, bpp, 0, R, 0, win.w, tmp);
    if (need_v && wide) vpass32((const int32_t *)tmp, win.w, r0, &tv, win.h, (int32_t *)out->pixels);
    else if (need_v) rowpass8(tmp, (size_t)win.w * bpp, r0, &tv, win.h, out->pixels, acc);
    else memcpy(out->pixels, tmp, (size_t)win.h * win.w * bpp);
    free(acc);
    if (alpha) unpremultiply(out->pixels, (size_t)win.w * win.h, bpp);
    rc = 0;
done:
    free(src);
    free(tmp);
    taps_free(&th);
    taps_free(&tv);
    if (rc) image_free(out);
    return rc;
}

void image_to_rgb(const image *in, uint8_t *rgb)
{
    size_t n = (size_t)in->width * in->height;
    const uint8_t *p = in->pixels;
    switch (in->mode) {
    case IMAGE_MODE_1:
    case IMAGE_MODE_L:
        for (size_t i = 0; i < n; i++) rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = p[i];
        break;
    case IMAGE_MODE_LA:
        for (size_t i = 0; i < n; i++) rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = p[2 * i];
        break;
    case IMAGE_MODE_P:
        for (size_t i = 0; i < n; i++) memcpy(rgb + 3 * i, in->palette + 3 * p[i], 3);
        break;
    case IMAGE_MODE_RGB: memcpy(rgb, p, n * 3); break;
    case IMAGE_MODE_RGBA:
        for (size_t i = 0; i < n; i++) memcpy(rgb + 3 * i, p + 4 * i, 3);
        break;
    case IMAGE_MODE_CMYK:
        for (size_t i = 0; i < n; i++) {
            int nk = 255 - p[4 * i + 3];
            for (int c = 0; c < 3; c++) rgb[3 * i + c] = clip8i(nk - (int)muldiv255(p[4 * i + c], (unsigned)nk));
        }
        break;
    case IMAGE_MODE_I: {
        const int32_t *q = (const int32_t *)in->pixels;
        for (size_t i = 0; i < n; i++) rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = clip8i(q[i] > 255 ? 255 : q[i]);
        break;
    }
    }
}
