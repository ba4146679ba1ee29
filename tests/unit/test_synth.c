/* The synthetic data set: PRNG and caption grammar, drawing agrees with the
 * captions, every format decodes with the reference decoders (libjpeg-turbo,
 * libpng, libwebp: the libraries users' files are read with, not our
 * encoder's code paths) to the drawn pixels, tar framing, and a whole
 * generated tree parses and cross-references. */
#include "check.h"

#include "core/fsutil.h"
#include "data/synth.h"
#include "data/synth_draw.h"
#include "data/synth_encode.h"
#include "data/synth_rng.h"
#include "data/synth_scene.h"
#include "io/tar_writer.h"

#include <jansson.h>
#include <stdio.h> /* before jpeglib.h */
#include <jpeglib.h>
#include <png.h>
#include <setjmp.h>
#include <webp/decode.h>

/* ---- reference decoders, to RGBA8 ---- */

typedef struct decoded_t {
    int w, h;
    uint8_t *rgba;
    int progressive, components, adobe; /* JPEG */
    int color_type, bit_depth, interlace, has_trns; /* PNG */
    int has_alpha, lossless; /* WebP */
} decoded_t;

struct jerr { struct jpeg_error_mgr m; jmp_buf j; };
static void jerr_exit(j_common_ptr c) { longjmp(((struct jerr *)c->err)->j, 1); }

static int decode_jpeg(const uint8_t *buf, size_t len, decoded_t *d)
{
    struct jpeg_decompress_struct c;
    struct jerr je;
    c.err = jpeg_std_error(&je.m);
    je.m.error_exit = jerr_exit;
    if (setjmp(je.j)) {
        jpeg_destroy_decompress(&c);
        return -1;
    }
    jpeg_create_decompress(&c);
    jpeg_mem_src(&c, buf, (unsigned long)len);
    jpeg_read_header(&c, TRUE);
    d->progressive = c.progressive_mode;
    d->components = c.num_components;
    d->adobe = c.saw_Adobe_marker;
    jpeg_start_decompress(&c);
    d->w = (int)c.output_width;
    d->h = (int)c.output_height;
    int ch = c.output_components;
    uint8_t *row = malloc((size_t)d->w * (size_t)ch);
    d->rgba = malloc((size_t)d->w * (size_t)d->h * 4);
    while (c.output_scanline < c.output_height) {
        int y = (int)c.output_scanline;
        JSAMPROW r = row;
        jpeg_read_scanlines(&c, &r, 1);
        for (int x = 0; x < d->w; x++) {
            uint8_t *q = d->rgba + 4 * ((size_t)y * d->w + x), *p = row + (size_t)x * ch;
            if (ch == 1) q[0] = q[1] = q[2] = p[0];
            else if (ch == 3) memcpy(q, p, 3);
            else /* inverted Adobe CMYK: R = (1 - C)(1 - K) */
                for (int k = 0; k < 3; k++) q[k] = (uint8_t)((p[k] * p[3] + 127) / 255);
            q[3] = 255;
        }
    }
    jpeg_finish_decompress(&c);
    jpeg_destroy_decompress(&c);
    free(row);
    return 0;
}

struct pngsrc { const uint8_t *p; size_t n, off; };
static void png_src_read(png_structp png, png_bytep out, size_t len)
{
    struct pngsrc *s = png_get_io_ptr(png);
    if (s->off + len > s->n) png_error(png, "short");
    memcpy(out, s->p + s->off, len);
    s->off += len;
}

static int decode_png(const uint8_t *buf, size_t len, decoded_t *d)
{
    struct pngsrc src = {buf, len, 0};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, NULL);
        return -1;
    }
    png_set_read_fn(png, &src, png_src_read);
    png_read_info(png, info);
    d->w = (int)png_get_image_width(png, info);
    d->h = (int)png_get_image_height(png, info);
    d->color_type = png_get_color_type(png, info);
    d->bit_depth = png_get_bit_depth(png, info);
    d->interlace = png_get_interlace_type(png, info);
    d->has_trns = png_get_valid(png, info, PNG_INFO_tRNS) != 0;
    png_set_strip_16(png); /* keeps the high byte: exact for v*257 */
    png_set_expand(png);
    png_set_gray_to_rgb(png);
    png_set_filler(png, 0xff, PNG_FILLER_AFTER);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    d->rgba = malloc((size_t)d->w * (size_t)d->h * 4);
    png_bytep *rows = malloc(sizeof(png_bytep) * (size_t)d->h);
    for (int y = 0; y < d->h; y++) rows[y] = d->rgba + (size_t)y * d->w * 4;
    png_read_image(png, rows);
    png_read_end(png, NULL);
    png_destroy_read_struct(&png, &info, NULL);
    free(rows);
    return 0;
}

static int decode_webp(const uint8_t *buf, size_t len, decoded_t *d)
{
    WebPBitstreamFeatures f;
    if (WebPGetFeatures(buf, len, &f) != VP8_STATUS_OK) return -1;
    d->has_alpha = f.has_alpha;
    d->lossless = f.format == 2;
    uint8_t *p = WebPDecodeRGBA(buf, len, &d->w, &d->h);
    if (!p) return -1;
    d->rgba = malloc((size_t)d->w * (size_t)d->h * 4);
    memcpy(d->rgba, p, (size_t)d->w * (size_t)d->h * 4);
    WebPFree(p);
    return 0;
}

static int decode_any(const uint8_t *buf, size_t len, decoded_t *d)
{
    memset(d, 0, sizeof *d);
    if (len >= 3 && buf[0] == 0xff && buf[1] == 0xd8) return decode_jpeg(buf, len, d);
    if (len >= 8 && !memcmp(buf, "\x89PNG", 4)) return decode_png(buf, len, d);
    if (len >= 12 && !memcmp(buf, "RIFF", 4) && !memcmp(buf + 8, "WEBP", 4)) return decode_webp(buf, len, d);
    return -1;
}

/* ---- tests ---- */

static void test_rng(void)
{
    /* Published splitmix64 outputs for seed 0 (Vigna's reference code). */
    uint64_t st = 0;
    CHECK(synth_splitmix64(&st) == 0xe220a8397b1dcdafull);
    CHECK(synth_splitmix64(&st) == 0x6e789e6aa1b965f4ull);
    synth_rng_t a, b;
    synth_rng_init(&a, 42);
    synth_rng_init(&b, 42);
    int same = 1, inrange = 1;
    for (int i = 0; i < 1000; i++) same &= synth_rng_next(&a) == synth_rng_next(&b);
    for (int i = 0; i < 1000; i++) inrange &= synth_rng_below(&a, 7) < 7;
    CHECK(same && inrange);
    uint32_t perm[100], seen[100] = {0};
    for (uint32_t i = 0; i < 100; i++) perm[i] = i;
    synth_rng_shuffle(&a, perm, 100);
    int ok = 1;
    for (int i = 0; i < 100; i++) ok &= seen[perm[i]]++ == 0;
    CHECK(ok);
    CHECK(synth_seed_mix(1, 2, 3) != synth_seed_mix(1, 3, 2));
}

static void test_captions(void)
{
    int ncol;
    const synth_color_t *col = synth_colors(&ncol);
    for (uint64_t seed = 0; seed < 400; seed++) {
        synth_scene_t s, s2;
        int grey = seed % 3 == 0;
        synth_scene_make(&s, seed, grey, seed % 2);
        synth_scene_make(&s2, seed, grey, seed % 2);
        CHECK(!memcmp(&s, &s2, sizeof s));
        char cap[SYNTH_N_PHRASINGS][SYNTH_CAPTION_MAX];
        for (int p = 0; p < SYNTH_N_PHRASINGS; p++) {
            size_t n = synth_caption(&s, p, cap[p], sizeof cap[p]);
            CHECK(n == strlen(cap[p]) && n > 10);
            for (int k = 0; k < s.n_objects; k++) {
                CHECK_MSG(strstr(cap[p], col[s.obj[k].color].name) && strstr(cap[p], synth_shape_name(s.obj[k].shape)),
                          "'%s'", cap[p]);
                const uint8_t *c = col[s.obj[k].color].rgb;
                if (grey) CHECK(c[0] == c[1] && c[1] == c[2]);
            }
            CHECK_MSG(!strstr(cap[p], " a orange") && !strstr(cap[p], " an red") && strncmp(cap[p], "a orange", 8),
                      "'%s'", cap[p]);
            for (int q = 0; q < p; q++) CHECK(strcmp(cap[p], cap[q]));
        }
        if (s.n_objects == 2) {
            static const char *rel[] = {"above", "below", "to the left of", "to the right of"};
            CHECK_MSG(strstr(cap[0], rel[s.relation]), "'%s'", cap[0]);
        } else {
            CHECK(strstr(cap[0], s.obj[0].large ? "large" : "small"));
        }
    }
    /* the article follows the next word */
    synth_scene_t s = {.n_objects = 2, .relation = SYNTH_LEFT_OF, .background = 12};
    s.obj[0] = (synth_object_t){.shape = SYNTH_CIRCLE, .color = 4}; /* orange */
    s.obj[1] = (synth_object_t){.shape = SYNTH_SQUARE, .color = 0}; /* red */
    char c[SYNTH_CAPTION_MAX];
    synth_caption(&s, 1, c, sizeof c);
    CHECK_MSG(!strcmp(c, "a red square to the right of an orange circle"), "'%s'", c);
}

/* Centroid of the pixels of exactly colour rgb. */
static int centroid(const uint8_t *px, int w, int h, const uint8_t *rgb, double *cx, double *cy)
{
    double sx = 0, sy = 0;
    long n = 0;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            if (!memcmp(px + 4 * ((size_t)y * w + x), rgb, 3)) sx += x, sy += y, n++;
    if (n) *cx = sx / n, *cy = sy / n;
    return n > 0;
}

static void test_draw_matches_caption(void)
{
    const synth_color_t *col = synth_colors(NULL);
    int w = 200, h = 160;
    uint8_t *px = malloc((size_t)w * h * 4);
    for (uint64_t seed = 0; seed < 200; seed++) {
        synth_scene_t s;
        synth_scene_make(&s, seed, 0, 0);
        synth_draw(&s, w, h, px);
        CHECK(!memcmp(px, col[s.background].rgb, 3)); /* corner: background */
        for (int k = 0; k < s.n_objects; k++) {
            int x = (int)(s.obj[k].cx * w), y = (int)(s.obj[k].cy * h);
            CHECK(!memcmp(px + 4 * ((size_t)y * w + x), col[s.obj[k].color].rgb, 3));
        }
        if (s.n_objects == 2 && s.obj[0].color != s.obj[1].color) {
            double ax, ay, bx, by;
            CHECK(centroid(px, w, h, col[s.obj[0].color].rgb, &ax, &ay));
            CHECK(centroid(px, w, h, col[s.obj[1].color].rgb, &bx, &by));
            int ok = s.relation == SYNTH_ABOVE ? ay < by : s.relation == SYNTH_BELOW ? ay > by
                   : s.relation == SYNTH_LEFT_OF ? ax < bx : ax > bx;
            CHECK_MSG(ok, "seed %llu relation %d", (unsigned long long)seed, s.relation);
        } else if (s.n_objects == 1 && s.position != SYNTH_CENTER) {
            double ax, ay;
            CHECK(centroid(px, w, h, col[s.obj[0].color].rgb, &ax, &ay));
            int ok = s.position == SYNTH_LEFT ? ax < w / 2.0 : s.position == SYNTH_RIGHT ? ax > w / 2.0
                   : s.position == SYNTH_TOP ? ay < h / 2.0 : ay > h / 2.0;
            CHECK(ok);
        }
    }
    free(px);
}

static void test_encode_roundtrip(void)
{
    static const int sizes[][2] = {{1, 1}, {3, 5}, {17, 9}, {64, 48}, {301, 203}};
    for (int f = 0; f < SYNTH_N_FORMATS; f++) {
        const synth_format_info_t *fi = synth_format_info(f);
        CHECK(synth_format_by_name(fi->name) == f);
        for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
            int w = sizes[si][0], h = sizes[si][1];
            synth_scene_t s;
            synth_scene_make(&s, 1000 + (uint64_t)f * 10 + si, fi->grey, fi->alpha);
            uint8_t *px = malloc((size_t)w * h * 4);
            synth_draw(&s, w, h, px);
            uint8_t *buf;
            size_t len;
            err_t e = {0};
            CHECK_OK(synth_encode(f, px, w, h, &buf, &len, &e), &e);
            uint8_t *again;
            size_t len2;
            CHECK_OK(synth_encode(f, px, w, h, &again, &len2, &e), &e);
            CHECK_MSG(len == len2 && !memcmp(buf, again, len), "%s not deterministic", fi->name);
            free(again);
            decoded_t d;
            CHECK_MSG(decode_any(buf, len, &d) == 0, "%s %dx%d does not decode", fi->name, w, h);
            CHECK_MSG(d.w == w && d.h == h, "%s: %dx%d decoded as %dx%d", fi->name, w, h, d.w, d.h);
            const char *ext = fi->ext;
            if (!strcmp(ext, "jpg")) {
                CHECK(d.progressive == (f == SYNTH_JPEG_PROGRESSIVE));
                CHECK(d.components == (f == SYNTH_JPEG_GREY ? 1 : f == SYNTH_JPEG_CMYK ? 4 : 3));
                if (f == SYNTH_JPEG_CMYK) CHECK(d.adobe);
            } else if (!strcmp(ext, "png")) {
                int ct = f == SYNTH_PNG_GREY ? PNG_COLOR_TYPE_GRAY : f == SYNTH_PNG_GREY_ALPHA ? PNG_COLOR_TYPE_GRAY_ALPHA
                       : f == SYNTH_PNG_RGBA ? PNG_COLOR_TYPE_RGBA
                       : (f == SYNTH_PNG_PALETTE || f == SYNTH_PNG_PALETTE_TRNS) ? PNG_COLOR_TYPE_PALETTE
                                                                                   : PNG_COLOR_TYPE_RGB;
                CHECK_MSG(d.color_type == ct, "%s colour type %d", fi->name, d.color_type);
                CHECK(d.bit_depth == (f == SYNTH_PNG_RGB16 ? 16 : 8));
                CHECK(d.interlace == (f == SYNTH_PNG_INTERLACED ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE));
                CHECK(d.has_trns == (f == SYNTH_PNG_PALETTE_TRNS));
            } else {
                CHECK_MSG(d.has_alpha == fi->alpha, "%s has_alpha %d", fi->name, d.has_alpha);
                CHECK(d.lossless == fi->lossless);
            }
            /* What the format keeps of the drawn pixels: luma for grey, alpha
             * only with alpha. Lossless must match exactly; lossy formats on
             * flat shapes within a mean of 8 levels (JPEG q90 4:2:0 chroma
             * and WebP q85 blur edges; tiny images are all edge, so they are
             * held only to decoding at the right size). */
            double sum = 0;
            int maxd = 0;
            for (size_t i = 0; i < (size_t)w * h; i++) {
                uint8_t want[4];
                const uint8_t *p = px + 4 * i;
                uint8_t l = (uint8_t)((p[0] * 299 + p[1] * 587 + p[2] * 114 + 500) / 1000);
                for (int c = 0; c < 3; c++) want[c] = fi->grey ? l : p[c];
                want[3] = fi->alpha ? p[3] : 255;
                for (int c = 0; c < 4; c++) {
                    int dd = abs((int)d.rgba[4 * i + c] - want[c]);
                    sum += dd;
                    if (dd > maxd) maxd = dd;
                }
            }
            double mean = sum / ((double)w * h * 4);
            if (fi->lossless) CHECK_MSG(maxd == 0, "%s %dx%d: max diff %d", fi->name, w, h, maxd);
            else if (w >= 64) CHECK_MSG(mean < 8, "%s %dx%d: mean diff %.2f", fi->name, w, h, mean);
            free(d.rgba);
            free(buf);
            free(px);
        }
    }
}

static unsigned parse_octal(const char *p, int n)
{
    unsigned v = 0;
    for (int i = 0; i < n && p[i] >= '0' && p[i] <= '7'; i++) v = v * 8 + (unsigned)(p[i] - '0');
    return v;
}

static void test_tar(void)
{
    char dir[4096], path[4200];
    check_tmpdir(dir, sizeof dir, "synth_tar");
    snprintf(path, sizeof path, "%s/t.tar", dir);
    char longname[200];
    memset(longname, 'd', 120);
    longname[120] = '/';
    memset(longname + 121, 'f', 40);
    longname[161] = 0;
    uint8_t big[513];
    for (int i = 0; i < 513; i++) big[i] = (uint8_t)(i * 7);
    const char *names[3] = {"000000001.txt", "000000001.jpg", longname};
    const void *data[3] = {"", big, "x"};
    size_t lens[3] = {0, sizeof big, 1};
    tar_writer_t *w;
    err_t e = {0};
    CHECK_OK(tar_writer_open(&w, path, &e), &e);
    for (int i = 0; i < 3; i++) CHECK_OK(tar_writer_add(w, names[i], data[i], lens[i], &e), &e);
    char toolong[300];
    memset(toolong, 'a', 299);
    toolong[299] = 0;
    CHECK(tar_writer_add(w, toolong, "", 0, &e) == ERR_LIMIT);
    CHECK_OK(tar_writer_close(w, &e), &e);
    uint8_t *t;
    size_t n;
    CHECK_OK(fs_read_all(path, &t, &n, &e), &e);
    CHECK(n % 512 == 0);
    size_t off = 0;
    for (int i = 0; i < 3 && off + 512 <= n; i++) {
        const char *hd = (const char *)t + off;
        /* POSIX: checksum = sum of header bytes with the field as spaces */
        unsigned sum = 0;
        for (int k = 0; k < 512; k++) sum += (k >= 148 && k < 156) ? ' ' : (unsigned char)hd[k];
        CHECK(parse_octal(hd + 148, 8) == sum);
        CHECK(!memcmp(hd + 257, "ustar\0" "00", 8));
        char full[300];
        if (hd[345]) snprintf(full, sizeof full, "%.155s/%.100s", hd + 345, hd);
        else snprintf(full, sizeof full, "%.100s", hd);
        CHECK_MSG(!strcmp(full, names[i]), "member %d '%s'", i, full);
        unsigned sz = parse_octal(hd + 124, 12);
        CHECK(sz == lens[i]);
        CHECK(!memcmp(t + off + 512, data[i], sz));
        off += 512 + (sz + 511) / 512 * 512;
    }
    CHECK(off + 1024 == n);
    int zero = 1;
    for (size_t k = off; k < n; k++) zero &= t[k] == 0;
    CHECK(zero);
    free(t);
}

static json_t *load_json(const char *dir, const char *rel)
{
    char path[4400];
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);
    CHECK_MSG(j != NULL, "%s: %s", path, je.text);
    return j;
}

static int file_decodes_as(const char *dir, const char *rel, int w, int h)
{
    char path[4400];
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    uint8_t *b;
    size_t n;
    err_t e = {0};
    if (fs_read_all(path, &b, &n, &e)) return 0;
    decoded_t d;
    int ok = decode_any(b, n, &d) == 0 && d.w == w && d.h == h;
    if (d.rgba) free(d.rgba);
    free(b);
    return ok;
}

/* --square: the 32-384 px images become square, and nothing else changes
 * (the other draws are the same). */
static void test_square(void)
{
    synth_opts_t o = {.count = 200, .seed = 3, .layouts = SYNTH_LAYOUT_ALL, .large = 2, .per_shard = 20};
    synth_plan_t plain, square;
    err_t e = {0};
    CHECK_OK(synth_plan_init(&plain, &o, &e), &e);
    o.square = 1;
    CHECK_OK(synth_plan_init(&square, &o, &e), &e);
    int squares = 0, others = 0;
    for (uint64_t i = 0; i < o.count; i++) {
        synth_record_t a, b;
        synth_plan_record(&plain, i, &a);
        synth_plan_record(&square, i, &b);
        CHECK(a.width == b.width && a.format == b.format && a.karpathy_split == b.karpathy_split &&
              !memcmp(&a.scene, &b.scene, sizeof a.scene));
        if (a.width >= 32 && a.width <= 384 && a.height >= 32 && a.height <= 384 && a.width * a.height < 1000000) {
            squares += b.height == b.width;
            others += a.height != a.width;
        } else {
            CHECK(a.height == b.height); /* large and tiny sizes are kept */
        }
    }
    CHECK(squares >= 190 && others >= 150);
}

static void test_generate(void)
{
    char dir[4096];
    check_tmpdir(dir, sizeof dir, "synth_gen");
    synth_opts_t o = {.out = dir, .count = 20, .seed = 5, .layouts = SYNTH_LAYOUT_ALL, .bad = 1, .large = 0,
                      .per_shard = 8};
    synth_summary_t s;
    err_t e = {0};
    CHECK_OK(synth_generate(&o, &s, &e), &e);
    CHECK(s.records == 28 && s.bad == 8);

    json_t *idx = load_json(dir, "synth_index.json"), *bad = load_json(dir, "synth_bad.json");
    json_t *coco[2] = {load_json(dir, "coco/annotations/captions_train2014.json"),
                       load_json(dir, "coco/annotations/captions_val2014.json")};
    json_t *kp = load_json(dir, "karpathy/dataset_coco.json");
    if (!idx || !bad || !coco[0] || !coco[1] || !kp) return;

    /* COCO: every annotation's image exists; ids unique but the duplicate;
     * every good image file decodes at the size the JSON says. */
    int images = 0, dups = 0;
    for (int v = 0; v < 2; v++) {
        json_t *ims = json_object_get(coco[v], "images"), *anns = json_object_get(coco[v], "annotations");
        size_t i, j;
        json_t *im, *an;
        json_array_foreach(anns, i, an) {
            json_int_t id = json_integer_value(json_object_get(an, "image_id"));
            int found = 0;
            json_array_foreach(ims, j, im) found |= json_integer_value(json_object_get(im, "id")) == id;
            CHECK_MSG(found, "annotation %zu: image %lld not listed", i, (long long)id);
            CHECK(json_is_string(json_object_get(an, "caption")));
        }
        json_array_foreach(ims, i, im) {
            images++;
            for (size_t k = 0; k < i; k++)
                dups += json_integer_value(json_object_get(json_array_get(ims, k), "id")) ==
                        json_integer_value(json_object_get(im, "id"));
        }
    }
    CHECK(dups == 1);
    CHECK(images == 20 + 6 + 1); /* good + COCO's bad records + the duplicate */
    CHECK(json_array_size(json_object_get(kp, "images")) == 27);

    /* Every good record decodes, in both layouts, at its listed size; its
     * COCO entry says the same size. */
    size_t i;
    json_t *r;
    int good = 0;
    json_array_foreach(json_object_get(idx, "records"), i, r) {
        if (strcmp(json_string_value(json_object_get(r, "kind")), "good")) continue;
        good++;
        int w = (int)json_integer_value(json_object_get(r, "width")), h = (int)json_integer_value(json_object_get(r, "height"));
        const char *cp = json_string_value(json_object_get(r, "coco_path"));
        const char *cc = json_string_value(json_object_get(r, "cc_path"));
        CHECK_MSG(cp && file_decodes_as(dir, cp, w, h), "%s", cp ? cp : "no coco_path");
        CHECK_MSG(cc && file_decodes_as(dir, cc, w, h), "%s", cc ? cc : "no cc_path");
        json_t *ims = json_object_get(coco[!strcmp(json_string_value(json_object_get(r, "coco_split")), "val2014")], "images");
        size_t j;
        json_t *im;
        int match = 0;
        json_array_foreach(ims, j, im) if (json_integer_value(json_object_get(im, "id")) ==
                                               json_integer_value(json_object_get(r, "coco_id"))) match =
            json_integer_value(json_object_get(im, "width")) == w && json_integer_value(json_object_get(im, "height")) == h;
        CHECK(match);
    }
    CHECK(good == 20);

    /* Every bad kind is listed, and the files say what the list says. */
    int kinds = 0;
    json_array_foreach(json_object_get(bad, "records"), i, r) {
        const char *kind = json_string_value(json_object_get(r, "kind"));
        const char *layout = json_string_value(json_object_get(r, "layout"));
        const char *path = json_string_value(json_object_get(r, "path"));
        char full[4400];
        snprintf(full, sizeof full, "%s/%s", dir, path);
        if (!strcmp(layout, "cc-files") || !strcmp(layout, "coco")) {
            kinds++;
            int exists = fs_exists(full);
            if (!strcmp(kind, "missing_image") || !strcmp(kind, "failed_download")) CHECK_MSG(!exists, "%s", full);
            uint8_t *b = NULL;
            size_t n = 0;
            if (!strcmp(kind, "zero_length")) CHECK(fs_read_all(full, &b, &n, &e) == 0 && n == 0);
            if (!strcmp(kind, "truncated_image") || !strcmp(kind, "wrong_extension")) {
                decoded_t d = {0};
                CHECK(fs_read_all(full, &b, &n, &e) == 0 && n > 0);
                if (!strcmp(kind, "wrong_extension")) CHECK(n > 8 && !memcmp(b, "\x89PNG", 4) && strstr(path, ".jpg"));
                else CHECK(decode_any(b, n, &d) != 0);
                free(d.rgba);
            }
            free(b);
        }
    }
    CHECK(kinds == 6 + 7);
    json_decref(idx);
    json_decref(bad);
    json_decref(coco[0]);
    json_decref(coco[1]);
    json_decref(kp);
}

int main(void)
{
    CHECK_RUN(test_rng);
    CHECK_RUN(test_captions);
    CHECK_RUN(test_draw_matches_caption);
    CHECK_RUN(test_encode_roundtrip);
    CHECK_RUN(test_tar);
    CHECK_RUN(test_square);
    CHECK_RUN(test_generate);
    return check_summary();
}
