#include "data/synth_encode.h"

#include <stdio.h> /* before jpeglib.h, which uses FILE */
#include <jpeglib.h>
#include <png.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <webp/encode.h>

static const synth_format_info_t formats[SYNTH_N_FORMATS] = {
    [SYNTH_JPEG_BASELINE] = {"jpeg-baseline", "jpg", "RGB", 0, 0, 0},
    [SYNTH_JPEG_PROGRESSIVE] = {"jpeg-progressive", "jpg", "RGB", 0, 0, 0},
    [SYNTH_JPEG_GREY] = {"jpeg-grey", "jpg", "L", 1, 0, 0},
    [SYNTH_JPEG_CMYK] = {"jpeg-cmyk", "jpg", "CMYK", 0, 0, 0},
    [SYNTH_PNG_RGB] = {"png-rgb", "png", "RGB", 0, 0, 1},
    [SYNTH_PNG_RGB16] = {"png-rgb16", "png", "RGB", 0, 0, 1},
    [SYNTH_PNG_GREY] = {"png-grey", "png", "L", 1, 0, 1},
    [SYNTH_PNG_GREY_ALPHA] = {"png-grey-alpha", "png", "LA", 1, 1, 1},
    [SYNTH_PNG_PALETTE] = {"png-palette", "png", "P", 0, 0, 1},
    [SYNTH_PNG_PALETTE_TRNS] = {"png-palette-trns", "png", "P", 0, 1, 1},
    [SYNTH_PNG_RGBA] = {"png-rgba", "png", "RGBA", 0, 1, 1},
    [SYNTH_PNG_INTERLACED] = {"png-interlaced", "png", "RGB", 0, 0, 1},
    [SYNTH_WEBP_LOSSY] = {"webp-lossy", "webp", "RGB", 0, 0, 0},
    [SYNTH_WEBP_LOSSY_ALPHA] = {"webp-lossy-alpha", "webp", "RGBA", 0, 1, 0},
    [SYNTH_WEBP_LOSSLESS] = {"webp-lossless", "webp", "RGB", 0, 0, 1},
    [SYNTH_WEBP_LOSSLESS_ALPHA] = {"webp-lossless-alpha", "webp", "RGBA", 0, 1, 1},
};

const synth_format_info_t *synth_format_info(int format)
{
    return format >= 0 && format < SYNTH_N_FORMATS ? &formats[format] : NULL;
}

int synth_format_by_name(const char *name)
{
    for (int f = 0; f < SYNTH_N_FORMATS; f++)
        if (!strcmp(formats[f].name, name)) return f;
    return -1;
}

static inline uint8_t luma(const uint8_t *p) { return (uint8_t)((p[0] * 299 + p[1] * 587 + p[2] * 114 + 500) / 1000); }

/* Repack RGBA into ch channels per pixel: 1 luma, 2 luma+alpha, 3 RGB, 4 RGBA. */
static uint8_t *repack(const uint8_t *rgba, size_t n, int ch)
{
    uint8_t *out = malloc(n * (size_t)ch + 1);
    if (!out) return NULL;
    for (size_t i = 0; i < n; i++) {
        const uint8_t *p = rgba + 4 * i;
        uint8_t *q = out + (size_t)ch * i;
        if (ch <= 2) {
            q[0] = luma(p);
            if (ch == 2) q[1] = p[3];
        } else {
            memcpy(q, p, (size_t)ch);
        }
    }
    return out;
}

/* ---- JPEG ---- */

struct jpeg_fail {
    struct jpeg_error_mgr mgr;
    jmp_buf jmp;
    char msg[JMSG_LENGTH_MAX];
};

static void jpeg_fail_exit(j_common_ptr c)
{
    struct jpeg_fail *f = (struct jpeg_fail *)c->err;
    c->err->format_message(c, f->msg);
    longjmp(f->jmp, 1);
}

static int encode_jpeg(int format, const uint8_t *rgba, int w, int h, uint8_t **out, size_t *len, err_t *e)
{
    int ch = format == SYNTH_JPEG_GREY ? 1 : format == SYNTH_JPEG_CMYK ? 4 : 3;
    size_t n = (size_t)w * (size_t)h;
    uint8_t *px = repack(rgba, n, ch == 4 ? 3 : ch);
    uint8_t *cmyk = NULL;
    if (!px) return err_set(e, ERR_NOMEM, "jpeg: cannot allocate %dx%d pixels", w, h);
    if (ch == 4) {
        /* Adobe CMYK, stored inverted as Photoshop writes it, with the
         * usual conversion K = 1 - max, C = (max - R) / max, so that
         * R = (1 - C)(1 - K) (what Pillow and browsers compute) gives R back. */
        cmyk = malloc(n * 4);
        if (!cmyk) {
            free(px);
            return err_set(e, ERR_NOMEM, "jpeg: cannot allocate %dx%d CMYK pixels", w, h);
        }
        for (size_t i = 0; i < n; i++) {
            const uint8_t *p = px + 3 * i;
            uint8_t mx = p[0] > p[1] ? p[0] : p[1];
            if (p[2] > mx) mx = p[2];
            for (int c = 0; c < 3; c++)
                cmyk[4 * i + c] = (uint8_t)(mx ? 255 - (255 * (mx - p[c]) + mx / 2) / mx : 255);
            cmyk[4 * i + 3] = mx;
        }
    }
    const uint8_t *src = ch == 4 ? cmyk : px;
    struct jpeg_compress_struct c;
    struct jpeg_fail f;
    unsigned char *buf = NULL;
    unsigned long size = 0;
    c.err = jpeg_std_error(&f.mgr);
    f.mgr.error_exit = jpeg_fail_exit;
    if (setjmp(f.jmp)) {
        jpeg_destroy_compress(&c);
        free(buf);
        free(px);
        free(cmyk);
        return err_set(e, ERR_INTERNAL, "libjpeg: %s", f.msg);
    }
    jpeg_create_compress(&c);
    jpeg_mem_dest(&c, &buf, &size);
    c.image_width = (JDIMENSION)w;
    c.image_height = (JDIMENSION)h;
    c.input_components = ch;
    c.in_color_space = ch == 1 ? JCS_GRAYSCALE : ch == 4 ? JCS_CMYK : JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, 90, TRUE);
    if (format == SYNTH_JPEG_PROGRESSIVE) jpeg_simple_progression(&c);
    jpeg_start_compress(&c, TRUE);
    while (c.next_scanline < c.image_height) {
        JSAMPROW row = (JSAMPROW)(src + (size_t)c.next_scanline * (size_t)w * (size_t)ch);
        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    free(px);
    free(cmyk);
    /* jpeg_mem_dest's buffer comes from malloc, so the caller can free() it. */
    *out = buf;
    *len = size;
    return 0;
}

/* ---- PNG ---- */

struct png_sink {
    uint8_t *p;
    size_t n, cap;
    int oom;
};

static void png_sink_write(png_structp png, png_bytep data, size_t len)
{
    struct png_sink *s = png_get_io_ptr(png);
    if (s->oom) return;
    if (s->n + len > s->cap) {
        size_t cap = s->cap ? s->cap : 4096;
        while (cap < s->n + len) cap *= 2;
        uint8_t *p = realloc(s->p, cap);
        if (!p) {
            s->oom = 1;
            return;
        }
        s->p = p;
        s->cap = cap;
    }
    memcpy(s->p + s->n, data, len);
    s->n += len;
}

static void png_sink_flush(png_structp png) { (void)png; }

/* Palette of the distinct colours (RGB, or RGBA with alpha) and the index
 * image; fails past 256 colours, which synth_draw never produces. */
static int build_palette(const uint8_t *rgba, size_t n, int alpha, png_color *pal, png_byte *trns, int *count,
                         uint8_t *idx, err_t *e)
{
    uint32_t seen[256];
    int np = 0, last = -1;
    uint32_t last_key = 0;
    for (size_t i = 0; i < n; i++) {
        const uint8_t *p = rgba + 4 * i;
        uint32_t key = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)(alpha ? p[3] : 255) << 24;
        /* Shapes are runs of one colour: the last hit is the usual answer. */
        int k = last >= 0 && key == last_key ? last : -1;
        for (int j = 0; k < 0 && j < np; j++)
            if (seen[j] == key) k = j;
        if (k < 0) {
            if (np == 256) return err_set(e, ERR_INTERNAL, "png palette: more than 256 colours");
            seen[np] = key;
            pal[np].red = p[0];
            pal[np].green = p[1];
            pal[np].blue = p[2];
            trns[np] = (png_byte)(key >> 24);
            k = np++;
        }
        idx[i] = (uint8_t)k;
        last = k;
        last_key = key;
    }
    *count = np;
    return 0;
}

struct png_job {
    int w, h, depth, color_type, interlace;
    png_bytep *rows;
    png_color *pal;
    png_byte *trns;
    int npal, use_trns;
};

/* libpng reports errors by longjmp: keep the setjmp in a function whose
 * locals do not change after it, so nothing is clobbered. */
static int png_write_mem(const struct png_job *j, struct png_sink *sink)
{
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info) {
        png_destroy_write_struct(&png, &info);
        return ERR_NOMEM;
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        return ERR_INTERNAL;
    }
    png_set_write_fn(png, sink, png_sink_write, png_sink_flush);
    png_set_IHDR(png, info, (png_uint_32)j->w, (png_uint_32)j->h, j->depth, j->color_type, j->interlace,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (j->color_type == PNG_COLOR_TYPE_PALETTE) {
        png_set_PLTE(png, info, j->pal, j->npal);
        if (j->use_trns) png_set_tRNS(png, info, j->trns, j->npal, NULL);
    }
    png_write_info(png, info);
    png_write_image(png, j->rows);
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    return 0;
}

static int encode_png(int format, const uint8_t *rgba, int w, int h, uint8_t **out, size_t *len, err_t *e)
{
    size_t n = (size_t)w * (size_t)h;
    int color_type, ch, depth = 8;
    switch (format) {
    case SYNTH_PNG_GREY: color_type = PNG_COLOR_TYPE_GRAY, ch = 1; break;
    case SYNTH_PNG_GREY_ALPHA: color_type = PNG_COLOR_TYPE_GRAY_ALPHA, ch = 2; break;
    case SYNTH_PNG_PALETTE:
    case SYNTH_PNG_PALETTE_TRNS: color_type = PNG_COLOR_TYPE_PALETTE, ch = 1; break;
    case SYNTH_PNG_RGBA: color_type = PNG_COLOR_TYPE_RGBA, ch = 4; break;
    case SYNTH_PNG_RGB16: color_type = PNG_COLOR_TYPE_RGB, ch = 3, depth = 16; break;
    default: color_type = PNG_COLOR_TYPE_RGB, ch = 3; break;
    }
    png_color pal[256];
    png_byte trns[256];
    int npal = 0;
    size_t row_bytes = (size_t)w * (size_t)ch * (size_t)(depth / 8);
    uint8_t *px = malloc(row_bytes * (size_t)h + 1);
    png_bytep *rows = malloc(sizeof(png_bytep) * (size_t)h);
    if (!px || !rows) {
        free(px);
        free(rows);
        return err_set(e, ERR_NOMEM, "png: cannot allocate %dx%d pixels", w, h);
    }
    if (color_type == PNG_COLOR_TYPE_PALETTE) {
        if (build_palette(rgba, n, format == SYNTH_PNG_PALETTE_TRNS, pal, trns, &npal, px, e) != 0) {
            free(px);
            free(rows);
            return e ? e->code : ERR_INTERNAL;
        }
    } else if (depth == 16) {
        /* v * 257 widens 8 bits to 16 exactly: both bytes equal v. */
        for (size_t i = 0; i < n; i++)
            for (int c = 0; c < 3; c++) px[6 * i + 2 * c] = px[6 * i + 2 * c + 1] = rgba[4 * i + c];
    } else {
        uint8_t *r = repack(rgba, n, ch);
        if (!r) {
            free(px);
            free(rows);
            return err_set(e, ERR_NOMEM, "png: cannot allocate %dx%d pixels", w, h);
        }
        memcpy(px, r, row_bytes * (size_t)h);
        free(r);
    }
    for (int y = 0; y < h; y++) rows[y] = px + (size_t)y * row_bytes;

    struct png_job job = {w, h, depth, color_type,
                          format == SYNTH_PNG_INTERLACED ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE,
                          rows, pal, trns, npal, format == SYNTH_PNG_PALETTE_TRNS};
    struct png_sink sink = {0};
    int rc = png_write_mem(&job, &sink);
    free(px);
    free(rows);
    if (rc) {
        free(sink.p);
        return err_set(e, rc == ERR_NOMEM ? ERR_NOMEM : ERR_INTERNAL, "libpng failed to encode a %dx%d %s image", w,
                       h, formats[format].name);
    }
    if (sink.oom) {
        free(sink.p);
        return err_set(e, ERR_NOMEM, "png: cannot grow the output buffer");
    }
    *out = sink.p;
    *len = sink.n;
    return 0;
}

/* ---- WebP ---- */

static int encode_webp(int format, const uint8_t *rgba, int w, int h, uint8_t **out, size_t *len, err_t *e)
{
    int alpha = formats[format].alpha;
    size_t n = (size_t)w * (size_t)h;
    uint8_t *rgb = alpha ? NULL : repack(rgba, n, 3);
    if (!alpha && !rgb) return err_set(e, ERR_NOMEM, "webp: cannot allocate %dx%d pixels", w, h);
    uint8_t *enc = NULL;
    size_t sz;
    switch (format) {
    case SYNTH_WEBP_LOSSY: sz = WebPEncodeRGB(rgb, w, h, w * 3, 85.0f, &enc); break;
    case SYNTH_WEBP_LOSSY_ALPHA: sz = WebPEncodeRGBA(rgba, w, h, w * 4, 85.0f, &enc); break;
    case SYNTH_WEBP_LOSSLESS: sz = WebPEncodeLosslessRGB(rgb, w, h, w * 3, &enc); break;
    default: sz = WebPEncodeLosslessRGBA(rgba, w, h, w * 4, &enc); break;
    }
    free(rgb);
    if (sz == 0 || !enc) {
        WebPFree(enc);
        return err_set(e, ERR_INTERNAL, "libwebp failed to encode a %dx%d %s image", w, h, formats[format].name);
    }
    /* Hand back malloc'd memory so that every format frees the same way. */
    *out = malloc(sz);
    if (!*out) {
        WebPFree(enc);
        return err_set(e, ERR_NOMEM, "webp: cannot allocate %zu bytes", sz);
    }
    memcpy(*out, enc, sz);
    *len = sz;
    WebPFree(enc);
    return 0;
}

int synth_encode(int format, const uint8_t *rgba, int width, int height, uint8_t **out, size_t *len, err_t *e)
{
    *out = NULL;
    *len = 0;
    if (format < 0 || format >= SYNTH_N_FORMATS) return err_set(e, ERR_ARG, "unknown synthetic format %d", format);
    if (width < 1 || height < 1) return err_set(e, ERR_ARG, "%s: bad size %dx%d", formats[format].name, width, height);
    const char *ext = formats[format].ext;
    if (ext[0] == 'j') return encode_jpeg(format, rgba, width, height, out, len, e);
    if (ext[0] == 'p') return encode_png(format, rgba, width, height, out, len, e);
    return encode_webp(format, rgba, width, height, out, len, e);
}
