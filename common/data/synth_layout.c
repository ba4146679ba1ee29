#include "data/synth_layout.h"
#include "core/fsutil.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const tsv_rel = "cc/Train_GCC-training.tsv";

void synth_coco_image_path(const synth_record_t *r, char *out, size_t cap)
{
    const char *split = synth_coco_split_name(r);
    snprintf(out, cap, "coco/%s/COCO_%s_%012llu.%s", split, split, (unsigned long long)r->coco_id,
             synth_record_ext(r));
}

void synth_cc_file_path(const synth_record_t *r, const char *ext, char *out, size_t cap)
{
    snprintf(out, cap, "cc/files/%05llu/%09llu.%s", (unsigned long long)r->shard, (unsigned long long)r->cc_key, ext);
}

void synth_cc_tar_path(uint64_t shard, char *out, size_t cap)
{
    snprintf(out, cap, "cc/wds/%05llu.tar", (unsigned long long)shard);
}

static void cc_url(const synth_record_t *r, char *out, size_t cap)
{
    snprintf(out, cap, "https://images.synth.invalid/%llu.%s", (unsigned long long)r->index,
             synth_format_info(r->format)->ext);
}

static int want_coco_files(const synth_plan_t *p) { return (p->o.layouts & (SYNTH_LAYOUT_COCO | SYNTH_LAYOUT_KARPATHY)) != 0; }

int synth_layout_dirs(const synth_plan_t *p, err_t *e)
{
    static const char *const coco_dirs[] = {"coco/annotations", "coco/train2014", "coco/val2014"};
    char path[4096];
    int rc = fs_mkdirs(p->o.out, e);
    /* Karpathy's file points at the COCO images, so either layout writes
     * them; only the COCO layout has annotation files. */
    for (int i = (p->o.layouts & SYNTH_LAYOUT_COCO) ? 0 : 1; i < 3 && !rc && want_coco_files(p); i++)
        if (!(rc = fs_join(path, sizeof path, p->o.out, coco_dirs[i], e))) rc = fs_mkdirs(path, e);
    if (!rc && (p->o.layouts & SYNTH_LAYOUT_KARPATHY) && !(rc = fs_join(path, sizeof path, p->o.out, "karpathy", e)))
        rc = fs_mkdirs(path, e);
    if (!rc && (p->o.layouts & SYNTH_LAYOUT_CC_TSV) && !(rc = fs_join(path, sizeof path, p->o.out, "cc", e)))
        rc = fs_mkdirs(path, e);
    if (!rc && (p->o.layouts & SYNTH_LAYOUT_CC_TAR) && !(rc = fs_join(path, sizeof path, p->o.out, "cc/wds", e)))
        rc = fs_mkdirs(path, e);
    return rc;
}

int synth_layout_shard_dir(const synth_plan_t *p, uint64_t shard, err_t *e)
{
    if (!(p->o.layouts & SYNTH_LAYOUT_CC_FILES)) return 0;
    char rel[64], dir[4096];
    snprintf(rel, sizeof rel, "cc/files/%05llu", (unsigned long long)shard);
    int rc = fs_join(dir, sizeof dir, p->o.out, rel, e);
    return rc ? rc : fs_mkdirs(dir, e);
}

/* ---- output files: written beside the target and renamed into place ---- */

typedef struct out_file_t {
    FILE *f;
    char path[4096];
    char tmp[4200];
} out_file_t;

static int out_open(out_file_t *o, const char *dir, const char *rel, err_t *e)
{
    int rc = fs_join(o->path, sizeof o->path, dir, rel, e);
    if (rc) return rc;
    snprintf(o->tmp, sizeof o->tmp, "%s.tmp.%d", o->path, (int)getpid());
    o->f = fopen(o->tmp, "wb");
    if (!o->f) return err_set(e, ERR_IO, "%s: cannot create: %s", o->tmp, strerror(errno));
    return 0;
}

static int out_close(out_file_t *o, int rc, err_t *e)
{
    if (!o->f) return rc;
    int bad = ferror(o->f);
    if (fclose(o->f) != 0) bad = 1;
    o->f = NULL;
    if (!rc && bad) rc = err_set(e, ERR_IO, "%s: write failed: %s", o->tmp, strerror(errno));
    if (!rc && rename(o->tmp, o->path) != 0)
        rc = err_set(e, ERR_IO, "%s: cannot rename into place: %s", o->path, strerror(errno));
    if (rc) unlink(o->tmp);
    return rc;
}

/* One element of a streamed JSON array: comma-separated, compact. Takes the
 * reference to v. */
static int out_json(out_file_t *o, json_t *v, int *first, err_t *e)
{
    if (!v) return err_set(e, ERR_NOMEM, "%s: cannot build a JSON value", o->path);
    if (!*first) fputc(',', o->f);
    *first = 0;
    int rc = json_dumpf(v, o->f, JSON_COMPACT) == 0 ? 0 : err_set(e, ERR_IO, "%s: cannot write JSON", o->tmp);
    json_decref(v);
    return rc;
}

/* Plain write of a record's file: the data set is regenerated from its seed,
 * so per-file fsync and rename would only slow it down. */
static int write_file(const char *dir, const char *rel, const void *data, size_t len, err_t *e)
{
    char path[4096];
    int rc = fs_join(path, sizeof path, dir, rel, e);
    if (rc) return rc;
    FILE *f = fopen(path, "wb");
    if (!f) return err_set(e, ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    size_t put = len ? fwrite(data, 1, len, f) : 0;
    int bad = put != len || ferror(f);
    if (fclose(f) != 0) bad = 1;
    if (bad) return err_set(e, ERR_IO, "%s: write failed: %s", path, strerror(errno));
    return 0;
}

/* Latin-1 to UTF-8: the JSON view of the non-UTF-8 caption. */
static void latin1_to_utf8(const char *in, char *out, size_t cap)
{
    size_t n = 0;
    for (const unsigned char *s = (const unsigned char *)in; *s && n + 3 < cap; s++) {
        if (*s < 0x80) {
            out[n++] = (char)*s;
        } else {
            out[n++] = (char)(0xc0 | (*s >> 6));
            out[n++] = (char)(0x80 | (*s & 0x3f));
        }
    }
    out[n] = 0;
}

static json_t *cc_caption_json(const synth_record_t *r)
{
    char raw[SYNTH_CAPTION_MAX], utf8[2 * SYNTH_CAPTION_MAX];
    synth_record_cc_caption(r, raw, sizeof raw);
    latin1_to_utf8(raw, utf8, sizeof utf8);
    return json_string(r->bad == SYNTH_BAD_NON_UTF8 ? utf8 : raw);
}

/* ---- COCO ---- */

static json_t *coco_image_json(const synth_record_t *r)
{
    char path[4096];
    synth_coco_image_path(r, path, sizeof path);
    const char *name = strrchr(path, '/') + 1;
    char url[512];
    snprintf(url, sizeof url, "http://images.synth.invalid/%s/%s", synth_coco_split_name(r), name);
    return json_pack("{s:i, s:s, s:s, s:i, s:i, s:s, s:s, s:I}", "license", 1, "file_name", name, "coco_url", url,
                     "height", r->height, "width", r->width, "date_captured", "2014-01-01 00:00:00", "flickr_url", url,
                     "id", (json_int_t)r->coco_id);
}

static int write_coco(const synth_plan_t *p, int val, synth_summary_t *s, err_t *e)
{
    out_file_t o = {0};
    char rel[64];
    snprintf(rel, sizeof rel, "coco/annotations/captions_%s2014.json", val ? "val" : "train");
    int rc = out_open(&o, p->o.out, rel, e);
    if (rc) return rc;
    fputs("{\"info\":{\"description\":\"clipcap synth: shapes on backgrounds\",\"version\":\"1.0\",\"year\":2014,"
          "\"contributor\":\"clipcap\",\"date_created\":\"2014-01-01 00:00:00\"},"
          "\"licenses\":[{\"url\":\"https://creativecommons.org/publicdomain/zero/1.0/\",\"id\":1,\"name\":\"CC0\"}],"
          "\"images\":[",
          o.f);
    int first = 1;
    synth_record_t r;
    for (uint64_t i = 0; i < p->total && !rc; i++) {
        synth_plan_record(p, i, &r);
        if (!r.in_coco || r.val2014 != val) continue;
        int copies = r.bad == SYNTH_BAD_DUPLICATE_ID ? 2 : 1;
        for (int c = 0; c < copies && !rc; c++) rc = out_json(&o, coco_image_json(&r), &first, e);
        s->coco_images[val]++;
    }
    fputs("],\"annotations\":[", o.f);
    first = 1;
    for (uint64_t i = 0; i < p->total && !rc; i++) {
        synth_plan_record(p, i, &r);
        if (!r.in_coco || r.val2014 != val) continue;
        for (int k = 0; k < SYNTH_N_PHRASINGS && !rc; k++) {
            char cap[SYNTH_CAPTION_MAX];
            synth_record_coco_caption(&r, k, cap, sizeof cap);
            /* ids like COCO's: unique, sparse, not positions */
            rc = out_json(&o, json_pack("{s:I, s:I, s:s}", "image_id", (json_int_t)r.coco_id, "id",
                                        (json_int_t)(r.coco_id * 10 + (uint64_t)k), "caption", cap),
                          &first, e);
            s->coco_captions[val]++;
        }
    }
    fputs("]}", o.f);
    return out_close(&o, rc, e);
}

/* ---- Karpathy ---- */

/* Karpathy's tokens: lower-cased runs of letters and digits. */
static json_t *tokens_json(const char *s)
{
    json_t *a = json_array();
    char tok[SYNTH_CAPTION_MAX];
    size_t n = 0;
    for (const char *c = s;; c++) {
        if (*c && isalnum((unsigned char)*c)) {
            if (n + 1 < sizeof tok) tok[n++] = (char)tolower((unsigned char)*c);
            continue;
        }
        if (n) {
            tok[n] = 0;
            json_array_append_new(a, json_string(tok));
            n = 0;
        }
        if (!*c) break;
    }
    return a;
}

static json_t *karpathy_image_json(const synth_record_t *r, uint64_t imgid, uint64_t *sentid)
{
    char path[4096];
    synth_coco_image_path(r, path, sizeof path);
    json_t *sentids = json_array(), *sentences = json_array();
    for (int k = 0; k < SYNTH_N_PHRASINGS; k++) {
        char cap[SYNTH_CAPTION_MAX];
        synth_record_coco_caption(r, k, cap, sizeof cap);
        json_array_append_new(sentids, json_integer((json_int_t)*sentid));
        json_array_append_new(sentences, json_pack("{s:o, s:s, s:I, s:I}", "tokens", tokens_json(cap), "raw", cap,
                                                   "imgid", (json_int_t)imgid, "sentid", (json_int_t)*sentid));
        (*sentid)++;
    }
    return json_pack("{s:s, s:o, s:s, s:I, s:s, s:o, s:I}", "filepath", synth_coco_split_name(r), "sentids", sentids,
                     "filename", strrchr(path, '/') + 1, "imgid", (json_int_t)imgid, "split",
                     synth_karpathy_split_name(r->karpathy_split), "sentences", sentences, "cocoid",
                     (json_int_t)r->coco_id);
}

static int write_karpathy(const synth_plan_t *p, synth_summary_t *s, err_t *e)
{
    out_file_t o = {0};
    int rc = out_open(&o, p->o.out, "karpathy/dataset_coco.json", e);
    if (rc) return rc;
    fputs("{\"images\":[", o.f);
    int first = 1;
    uint64_t imgid = 0, sentid = 0;
    synth_record_t r;
    for (uint64_t i = 0; i < p->total && !rc; i++) {
        synth_plan_record(p, i, &r);
        if (!r.in_coco) continue;
        int copies = r.bad == SYNTH_BAD_DUPLICATE_ID ? 2 : 1;
        for (int c = 0; c < copies && !rc; c++) rc = out_json(&o, karpathy_image_json(&r, imgid++, &sentid), &first, e);
        s->karpathy[r.karpathy_split]++;
    }
    fputs("],\"dataset\":\"coco\"}", o.f);
    return out_close(&o, rc, e);
}

/* ---- Conceptual Captions ---- */

static int write_tsv(const synth_plan_t *p, err_t *e)
{
    out_file_t o = {0};
    int rc = out_open(&o, p->o.out, tsv_rel, e);
    synth_record_t r;
    for (uint64_t i = 0; i < p->total && !rc; i++) {
        synth_plan_record(p, i, &r);
        if (!r.in_cc) continue;
        char cap[SYNTH_CAPTION_MAX], url[256];
        synth_record_cc_caption(&r, cap, sizeof cap);
        cc_url(&r, url, sizeof url);
        fprintf(o.f, "%s\t%s\n", cap, url);
    }
    return out_close(&o, rc, e);
}

static int cc_has_image(const synth_record_t *r)
{
    return r->bad != SYNTH_BAD_MISSING_IMAGE && r->bad != SYNTH_BAD_FAILED_DOWNLOAD;
}

/* The sample's img2dataset JSON, malloc'd. */
static char *cc_sample_json(const synth_record_t *r)
{
    char url[256], key[16];
    cc_url(r, url, sizeof url);
    snprintf(key, sizeof key, "%09llu", (unsigned long long)r->cc_key);
    int failed = r->bad == SYNTH_BAD_FAILED_DOWNLOAD;
    json_t *size = failed ? json_null() : json_integer(r->width);
    json_t *o = json_pack("{s:o, s:s, s:s, s:s, s:o, s:o, s:o, s:o, s:o}", "caption", cc_caption_json(r), "url", url,
                          "key", key, "status", failed ? "failed_to_download" : "success", "error_message",
                          failed ? json_string("HTTP Error 404: Not Found") : json_null(), "width", size, "height",
                          failed ? json_null() : json_integer(r->height), "original_width", json_copy(size),
                          "original_height", failed ? json_null() : json_integer(r->height));
    char *text = o ? json_dumps(o, JSON_INDENT(4)) : NULL;
    json_decref(o);
    return text;
}

int synth_layout_write_record(const synth_plan_t *p, const synth_record_t *r, const uint8_t *image, size_t len,
                              tar_writer_t *tar, err_t *e)
{
    char rel[4096];
    int rc = 0;
    const char *out = p->o.out;
    if (want_coco_files(p) && r->in_coco && image) {
        synth_coco_image_path(r, rel, sizeof rel);
        rc = write_file(out, rel, image, len, e);
    }
    if (rc || !r->in_cc || !(p->o.layouts & (SYNTH_LAYOUT_CC_FILES | SYNTH_LAYOUT_CC_TAR))) return rc;
    char cap[SYNTH_CAPTION_MAX];
    size_t cap_len = synth_record_cc_caption(r, cap, sizeof cap);
    char *js = cc_sample_json(r);
    if (!js) return err_set(e, ERR_NOMEM, "cc sample %llu: cannot build its JSON", (unsigned long long)r->cc_key);
    const char *ext = synth_record_ext(r);
    const char *parts[3] = {cc_has_image(r) ? ext : NULL, "txt", "json"};
    const void *data[3] = {image, cap, js};
    size_t lens[3] = {len, cap_len, strlen(js)};
    if (p->o.layouts & SYNTH_LAYOUT_CC_FILES) {
        for (int k = 0; k < 3 && !rc; k++) {
            if (!parts[k]) continue;
            synth_cc_file_path(r, parts[k], rel, sizeof rel);
            rc = write_file(out, rel, data[k], lens[k], e);
        }
    }
    for (int k = 0; k < 3 && !rc && tar; k++) {
        if (!parts[k]) continue;
        char member[64];
        snprintf(member, sizeof member, "%09llu.%s", (unsigned long long)r->cc_key, parts[k]);
        rc = tar_writer_add(tar, member, data[k], lens[k], e);
    }
    free(js);
    return rc;
}

/* ---- synth_index.json and synth_bad.json ---- */

static json_t *index_json(const synth_plan_t *p, const synth_record_t *r)
{
    const synth_format_info_t *fi = synth_format_info(r->format);
    char path[4096];
    json_t *o = json_pack("{s:I, s:s, s:s, s:s, s:i, s:i}", "index", (json_int_t)r->index, "kind",
                          synth_bad_name(r->bad), "format", fi->name, "pil_mode", fi->pil_mode, "width", r->width,
                          "height", r->height);
    /* The geometry the captions describe, in pixels, so that tests can
     * check the decoded pixels against the words independently. */
    const synth_color_t *col = synth_colors(NULL);
    const synth_scene_t *sc = &r->scene;
    json_t *objs = json_array();
    double m = r->width < r->height ? r->width : r->height;
    for (int k = 0; k < sc->n_objects; k++) {
        const synth_object_t *ob = &sc->obj[k];
        const uint8_t *c = col[ob->color].rgb;
        json_array_append_new(objs, json_pack("{s:s, s:s, s:[i,i,i], s:f, s:f, s:f}", "shape",
                                              synth_shape_name(ob->shape), "color", col[ob->color].name, "rgb", c[0],
                                              c[1], c[2], "x", round(ob->cx * r->width * 1000) / 1000, "y",
                                              round(ob->cy * r->height * 1000) / 1000, "half",
                                              round(ob->half * m * 1000) / 1000));
    }
    const uint8_t *bg = col[sc->background].rgb;
    json_object_set_new(o, "background", json_pack("{s:s, s:[i,i,i], s:i}", "color", col[sc->background].name, "rgb",
                                                   bg[0], bg[1], bg[2], "alpha", sc->background_alpha));
    json_object_set_new(o, "objects", objs);
    if (r->in_coco && want_coco_files(p)) {
        json_t *caps = json_array();
        for (int k = 0; k < SYNTH_N_PHRASINGS; k++) {
            char cap[SYNTH_CAPTION_MAX];
            synth_record_coco_caption(r, k, cap, sizeof cap);
            json_array_append_new(caps, json_string(cap));
        }
        synth_coco_image_path(r, path, sizeof path);
        json_object_set_new(o, "coco_id", json_integer((json_int_t)r->coco_id));
        json_object_set_new(o, "coco_split", json_string(synth_coco_split_name(r)));
        json_object_set_new(o, "karpathy_split", json_string(synth_karpathy_split_name(r->karpathy_split)));
        json_object_set_new(o, "coco_path", json_string(path));
        json_object_set_new(o, "captions", caps);
    }
    if (r->in_cc && (p->o.layouts & (SYNTH_LAYOUT_CC_TSV | SYNTH_LAYOUT_CC_FILES | SYNTH_LAYOUT_CC_TAR))) {
        char key[16];
        snprintf(key, sizeof key, "%09llu", (unsigned long long)r->cc_key);
        json_object_set_new(o, "cc_key", json_string(key));
        json_object_set_new(o, "cc_caption", cc_caption_json(r));
        if (p->o.layouts & SYNTH_LAYOUT_CC_FILES) {
            synth_cc_file_path(r, synth_record_ext(r), path, sizeof path);
            json_object_set_new(o, "cc_path", json_string(path));
        }
        if (p->o.layouts & SYNTH_LAYOUT_CC_TAR) {
            synth_cc_tar_path(r->shard, path, sizeof path);
            json_object_set_new(o, "cc_tar", json_string(path));
        }
    }
    return o;
}

static const char *const bad_details[SYNTH_N_BAD] = {
    "",
    "listed with its captions, but the image file does not exist",
    "one caption is the empty string",
    "the image is listed twice with the same id",
    "the image file holds only the first half of a valid JPEG",
    "the image file is empty (0 bytes)",
    "the .jpg file holds PNG bytes",
    "the caption bytes are Latin-1 (\"\\xe9t\\xe9\"), not UTF-8; JSON fields hold the Latin-1 decoding",
    "status failed_to_download with an error_message; no image",
};

static int bad_in_layout(const synth_record_t *r, unsigned layout)
{
    switch (layout) {
    case SYNTH_LAYOUT_COCO:
    case SYNTH_LAYOUT_KARPATHY: return r->in_coco;
    case SYNTH_LAYOUT_CC_TSV: return r->in_cc && (r->bad == SYNTH_BAD_EMPTY_CAPTION || r->bad == SYNTH_BAD_NON_UTF8);
    default: return r->in_cc;
    }
}

static json_t *bad_json(const synth_plan_t *p, const synth_record_t *r, unsigned layout)
{
    static const struct { unsigned bit; const char *name; } names[] = {
        {SYNTH_LAYOUT_COCO, "coco"}, {SYNTH_LAYOUT_KARPATHY, "karpathy"}, {SYNTH_LAYOUT_CC_TSV, "cc-tsv"},
        {SYNTH_LAYOUT_CC_FILES, "cc-files"}, {SYNTH_LAYOUT_CC_TAR, "cc-tar"}};
    const char *lname = "?";
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++)
        if (names[k].bit == layout) lname = names[k].name;
    char path[4096], key[16];
    snprintf(key, sizeof key, "%09llu", (unsigned long long)r->cc_key);
    json_t *o = json_pack("{s:s, s:s, s:I, s:s}", "kind", synth_bad_name(r->bad), "layout", lname, "index",
                          (json_int_t)r->index, "detail", bad_details[r->bad]);
    switch (layout) {
    case SYNTH_LAYOUT_COCO:
    case SYNTH_LAYOUT_KARPATHY:
        synth_coco_image_path(r, path, sizeof path);
        json_object_set_new(o, "id", json_integer((json_int_t)r->coco_id));
        json_object_set_new(o, "path", json_string(path));
        json_object_set_new(o, "file", json_string(layout == SYNTH_LAYOUT_KARPATHY ? "karpathy/dataset_coco.json"
                                                   : r->val2014 ? "coco/annotations/captions_val2014.json"
                                                                : "coco/annotations/captions_train2014.json"));
        break;
    case SYNTH_LAYOUT_CC_TSV: {
        /* The line number of the record in the TSV: CC records before it. */
        uint64_t line = 1;
        synth_record_t q;
        for (uint64_t i = 0; i < r->index; i++) {
            synth_plan_record(p, i, &q);
            line += q.in_cc;
        }
        json_object_set_new(o, "id", json_string(key));
        json_object_set_new(o, "path", json_string(tsv_rel));
        json_object_set_new(o, "line", json_integer((json_int_t)line));
        break;
    }
    case SYNTH_LAYOUT_CC_FILES:
        synth_cc_file_path(r, synth_record_ext(r), path, sizeof path);
        json_object_set_new(o, "id", json_string(key));
        json_object_set_new(o, "path", json_string(path));
        break;
    default:
        synth_cc_tar_path(r->shard, path, sizeof path);
        json_object_set_new(o, "id", json_string(key));
        json_object_set_new(o, "path", json_string(path));
        snprintf(path, sizeof path, "%s.%s", key, synth_record_ext(r));
        json_object_set_new(o, "member", json_string(path));
        break;
    }
    return o;
}

static int write_index_and_bad(const synth_plan_t *p, synth_summary_t *s, err_t *e)
{
    out_file_t o = {0};
    int rc = out_open(&o, p->o.out, "synth_index.json", e);
    if (rc) return rc;
    fprintf(o.f, "{\"version\":1,\"seed\":%llu,\"count\":%llu,\"records\":[", (unsigned long long)p->o.seed,
            (unsigned long long)p->o.count);
    int first = 1;
    synth_record_t r;
    for (uint64_t i = 0; i < p->total && !rc; i++) {
        synth_plan_record(p, i, &r);
        rc = out_json(&o, index_json(p, &r), &first, e);
        if (r.bad) continue;
        s->per_format[r.format]++;
        s->large += (uint64_t)r.width * (uint64_t)r.height >= 1000000;
        s->tiny += r.width < 32 || r.height < 32;
    }
    fputs("]}\n", o.f);
    rc = out_close(&o, rc, e);
    if (rc) return rc;

    rc = out_open(&o, p->o.out, "synth_bad.json", e);
    if (rc) return rc;
    fprintf(o.f, "{\"version\":1,\"seed\":%llu,\"count\":%llu,\"records\":[", (unsigned long long)p->o.seed,
            (unsigned long long)p->o.count);
    first = 1;
    for (uint64_t i = p->o.count; i < p->total && !rc; i++) {
        synth_plan_record(p, i, &r);
        s->bad++;
        for (unsigned bit = 1; bit <= SYNTH_LAYOUT_CC_TAR && !rc; bit <<= 1) {
            /* The images both COCO and Karpathy use are written with either. */
            if (!(p->o.layouts & bit) || !bad_in_layout(&r, bit)) continue;
            rc = out_json(&o, bad_json(p, &r, bit), &first, e);
        }
    }
    fputs("]}\n", o.f);
    return out_close(&o, rc, e);
}

int synth_layout_write_metadata(const synth_plan_t *p, synth_summary_t *s, err_t *e)
{
    memset(s, 0, sizeof *s);
    s->records = p->total;
    unsigned l = p->o.layouts;
    int rc = 0;
    if (l & SYNTH_LAYOUT_COCO) {
        rc = write_coco(p, 0, s, e);
        if (!rc) rc = write_coco(p, 1, s, e);
    }
    if (!rc && (l & SYNTH_LAYOUT_KARPATHY)) rc = write_karpathy(p, s, e);
    if (!rc && (l & SYNTH_LAYOUT_CC_TSV)) rc = write_tsv(p, e);
    if (!rc && (l & (SYNTH_LAYOUT_CC_TSV | SYNTH_LAYOUT_CC_FILES | SYNTH_LAYOUT_CC_TAR))) {
        synth_record_t r;
        for (uint64_t i = 0; i < p->total; i++) {
            synth_plan_record(p, i, &r);
            s->cc_samples += r.in_cc;
        }
        s->cc_shards = (p->total + p->o.per_shard - 1) / p->o.per_shard;
    }
    if (!rc) rc = write_index_and_bad(p, s, e);
    return rc;
}
