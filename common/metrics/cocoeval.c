#include "metrics/cocoeval.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/fsutil.h"
#include "core/progress.h"
#include "io/json_util.h"
#include "metrics/bleu.h"
#include "metrics/cider.h"
#include "metrics/jrun.h"
#include "metrics/meteor.h"
#include "metrics/rouge.h"
#include "metrics/spice.h"
#include "text/ptb.h"

/* ---- loading ------------------------------------------------------------ */

static const char *record_word(int is_results)
{
    return is_results ? "entry" : "annotation";
}

/* "entry 17: " / "annotation 4: " for the record of the file that holds
 * byte pos, or "" outside the records. A structural scan that tolerates
 * the very errors it locates (bad bytes, unfinished input). */
static void locate(const char *buf, size_t len, size_t pos, int is_results, char *out, size_t cap)
{
    enum { MAX_DEPTH = 4 };
    struct {
        char type;
        size_t index;
        int expect_key, key_is_annotations;
    } st[MAX_DEPTH];
    size_t depth = 0;
    out[0] = 0;
    for (size_t i = 0; i < len && i < pos; i++) {
        char c = buf[i];
        if (c == '"') {
            size_t start = ++i;
            while (i < len && buf[i] != '"') i += buf[i] == '\\' ? 2 : 1;
            if (i >= pos || i >= len) break;
            if (depth && depth <= MAX_DEPTH && st[depth - 1].type == '{' && st[depth - 1].expect_key) {
                st[depth - 1].key_is_annotations = i - start == 11 && !memcmp(buf + start, "annotations", 11);
                st[depth - 1].expect_key = 0;
            }
        } else if (c == '[' || c == '{') {
            if (depth < MAX_DEPTH) {
                st[depth].type = c;
                st[depth].index = 0;
                st[depth].expect_key = c == '{';
                st[depth].key_is_annotations = 0;
            }
            depth++;
        } else if ((c == ']' || c == '}') && depth) {
            depth--;
        } else if (c == ',' && depth && depth <= MAX_DEPTH) {
            st[depth - 1].index++;
            st[depth - 1].expect_key = st[depth - 1].type == '{';
        }
    }
    if (is_results && depth >= 1 && st[0].type == '[')
        snprintf(out, cap, "entry %zu: ", st[0].index);
    else if (!is_results && depth >= 2 && st[0].type == '{' && st[0].key_is_annotations && st[1].type == '[')
        snprintf(out, cap, "annotation %zu: ", st[1].index);
}

/* 17 or "name" (shortened) for messages. */
static const char *id_text(const cocoeval_caption_t *c, char *buf, size_t cap)
{
    if (!c->id_str) snprintf(buf, cap, "%lld", c->id_int);
    else snprintf(buf, cap, "\"%.60s%s\"", c->id_str, strlen(c->id_str) > 60 ? "..." : "");
    return buf;
}

/* Integers first (ascending), then strings (byte order). */
static int id_cmp(const cocoeval_caption_t *a, const cocoeval_caption_t *b)
{
    int sa = a->id_str != NULL, sb = b->id_str != NULL;
    if (sa != sb) return sa - sb;
    if (sa) return strcmp(a->id_str, b->id_str);
    return (a->id_int > b->id_int) - (a->id_int < b->id_int);
}

static int caption_cmp(const void *pa, const void *pb)
{
    const cocoeval_caption_t *a = pa, *b = pb;
    int c = id_cmp(a, b);
    return c ? c : (a->record > b->record) - (a->record < b->record);
}

/* The files are read with jscan (a flat token array: no tree to build and
 * free, a third of the process time with jansson), but what is an error
 * and what it says stay jansson's: the documents jscan accepts and jansson
 * (JSON_REJECT_DUPLICATES, no JSON_DECODE_ANY) refuses are found here,
 * and they and every syntax error go to jansson for its message. */
typedef struct {
    const char *p;
    uint32_t len;
} key_ref_t;

static key_ref_t key_at(const jscan_t *d, uint32_t t) { return (key_ref_t){d->buf + d->tok[t].start, d->tok[t].len}; }

static int key_cmp(const void *pa, const void *pb)
{
    const key_ref_t *a = pa, *b = pb;
    if (a->len != b->len) return (a->len > b->len) - (a->len < b->len);
    return memcmp(a->p, b->p, a->len);
}

/* 1 when object obj has a key twice (or, large, cannot be checked). */
static int duplicate_key(const jscan_t *d, uint32_t obj)
{
    enum { PAIRWISE = 16 }; /* records have a handful of keys */
    size_t n = jscan_count(d, obj);
    if (n <= PAIRWISE) {
        for (uint32_t a = obj + 1; a < d->tok[obj].next; a = d->tok[a + 1].next)
            for (uint32_t b = d->tok[a + 1].next; b < d->tok[obj].next; b = d->tok[b + 1].next) {
                key_ref_t ka = key_at(d, a), kb = key_at(d, b);
                if (!key_cmp(&ka, &kb)) return 1;
            }
        return 0;
    }
    key_ref_t *k = malloc(n * sizeof *k);
    if (!k) return 1;
    size_t i = 0;
    for (uint32_t a = obj + 1; a < d->tok[obj].next; a = d->tok[a + 1].next)
        k[i++] = key_at(d, a);
    qsort(k, n, sizeof *k, key_cmp);
    int dup = 0;
    for (i = 1; i < n && !dup; i++) dup = !key_cmp(&k[i - 1], &k[i]);
    free(k);
    return dup;
}

static int jansson_refuses(const jscan_t *d)
{
    if (d->tok[0].type != JS_ARRAY && d->tok[0].type != JS_OBJECT) return 1;
    for (uint32_t t = 0; t < d->n_tok; t++) {
        const jscan_tok *k = &d->tok[t];
        long long v;
        if (k->type == JS_OBJECT && duplicate_key(d, t)) return 1;
        /* 19 digits or more may not fit json_int_t */
        if (k->type == JS_INT && k->len >= 19 && jscan_int(d, t, &v)) return 1;
        /* a number is never last in a container document: strtod stops at its end */
        if (k->type == JS_REAL && isinf(strtod(d->buf + k->start, NULL))) return 1;
    }
    return 0;
}

/* jansson's error for buf, with the record that holds it; 0 when jansson
 * reads buf. */
static int jansson_error(const char *buf, size_t len, const char *name, int is_results, err_t *e)
{
    json_error_t je;
    json_t *root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je);
    if (root) {
        json_decref(root);
        return 0;
    }
    char where[64];
    locate(buf, len, je.position > 0 ? (size_t)je.position : 0, is_results, where, sizeof where);
    return json_parse_error(e, &je, name, buf, len, where);
}

/* text (len bytes, malloc'd) is handed over to out->doc, which unescapes
 * it in place; pristine holds the same bytes untouched, or is NULL to read
 * them again from the file name, should jansson be asked. */
static int parse(cocoeval_captions_t *out, char *text, size_t len, const char *name, const char *pristine,
                 int is_results, err_t *e)
{
    int rc = jscan_parse(&out->doc, text, len, name, e);
    out->doc.owns_buf = 1;
    if (rc ? rc != ERR_FORMAT : !jansson_refuses(&out->doc)) return rc;
    uint8_t *again = NULL;
    err_t je = {0};
    int jrc = pristine ? 0 : fs_read_all(name, &again, &len, &je);
    if (!jrc) jrc = jansson_error(pristine ? pristine : (const char *)again, len, name, is_results, &je);
    free(again);
    if (jrc) *e = je;
    /* jansson reads what jscan refused (nesting deeper than jscan's limit):
     * jscan's message */
    return jrc ? jrc : rc;
}

static int read_record(cocoeval_caption_t *c, const jscan_t *d, uint32_t rec, const cocoeval_caption_t *first,
                       sbuf_t *tokens, err_t *e)
{
    if (d->tok[rec].type != JS_OBJECT) return err_set(e, ERR_FORMAT, "not an object");
    size_t len;
    int rc = jscan_field_str(d, rec, "caption", &c->text, &len, e);
    if (rc) return rc;
    uint32_t id = jscan_get(d, rec, "image_id");
    if (!id) return err_set(e, ERR_FORMAT, "field 'image_id' is missing");
    if (d->tok[id].type == JS_STRING) c->id_str = jscan_cstr(d, id);
    else if (d->tok[id].type != JS_INT || jscan_int(d, id, &c->id_int)) /* in range: jansson_refuses */
        return err_set(e, ERR_FORMAT, "field 'image_id' is not an integer or a string");
    /* one type per file: 5 and "5" would be two images that print alike */
    if (first && !first->id_str != !c->id_str)
        return err_set(e, ERR_FORMAT, "field 'image_id' is %s, but the first record's is %s",
                       c->id_str ? "a string" : "an integer", first->id_str ? "a string" : "an integer");
    /* "" and "  " tokenise to no tokens: the toolkit scores them as the empty caption */
    rc = ptb_tokenize(c->text, len, tokens, e);
    sb_append(tokens, "", 1); /* each caption's tokens end with their NUL */
    return rc ? rc : tokens->failed ? err_set(e, ERR_NOMEM, "out of memory for the tokens") : 0;
}

static int load_text(cocoeval_captions_t *out, char *text, size_t len, const char *name, const char *pristine,
                     int is_results, err_t *e)
{
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "%s", name);
    int rc = parse(out, text, len, name, pristine, is_results, e);
    const jscan_t *d = &out->doc;
    uint32_t list = 0;
    if (!rc && is_results && d->tok[0].type != JS_ARRAY)
        rc = err_set(e, ERR_FORMAT, "%s: not a JSON array of results ({\"image_id\", \"caption\"} objects)", name);
    else if (!rc && !is_results && (rc = jscan_field_array(d, 0, "annotations", &list, e)))
        err_wrap(e, "%s", name);
    size_t count = rc ? 0 : jscan_count(d, list);
    /* the tokens of caption k start at[k] bytes into out->tokens until it stops moving */
    size_t *at = rc ? NULL : malloc((count ? count : 1) * sizeof *at);
    if (!rc && (!at || !(out->c = calloc(count ? count : 1, sizeof *out->c))))
        rc = err_set(e, ERR_NOMEM, "%s: out of memory for %zu captions", name, count);
    size_t k = 0;
    for (uint32_t t = list + 1; !rc && k < count; t = d->tok[t].next, k++) {
        cocoeval_caption_t *c = &out->c[k];
        c->record = k;
        at[k] = out->tokens.len;
        if ((rc = read_record(c, d, t, k ? &out->c[0] : NULL, &out->tokens, e)))
            err_wrap(e, "%s: %s %zu", name, record_word(is_results), k);
    }
    if (rc) {
        free(at);
        cocoeval_captions_free(out);
        return rc;
    }
    out->n = count;
    for (k = 0; k < count; k++) out->c[k].tokens = out->tokens.data + at[k];
    free(at);
    qsort(out->c, out->n, sizeof *out->c, caption_cmp);
    return 0;
}

int cocoeval_load_buffer(cocoeval_captions_t *out, const char *buf, size_t len, const char *name, int is_results,
                         err_t *e)
{
    char *text = malloc(len ? len : 1);
    if (!text) {
        memset(out, 0, sizeof *out);
        return err_set(e, ERR_NOMEM, "%s: out of memory for %zu bytes", name, len);
    }
    memcpy(text, buf, len);
    return load_text(out, text, len, name, buf, is_results, e);
}

static int load_path(cocoeval_captions_t *out, const char *path, int is_results, err_t *e)
{
    uint8_t *data = NULL;
    size_t len = 0;
    memset(out, 0, sizeof *out);
    int rc = fs_read_all(path, &data, &len, e);
    return rc ? rc : load_text(out, (char *)data, len, path, NULL, is_results, e);
}

int cocoeval_load_results(cocoeval_captions_t *out, const char *path, err_t *e)
{
    return load_path(out, path, 1, e);
}

int cocoeval_load_annotations(cocoeval_captions_t *out, const char *path, err_t *e)
{
    return load_path(out, path, 0, e);
}

void cocoeval_captions_free(cocoeval_captions_t *c)
{
    free(c->c);
    sb_free(&c->tokens);
    jscan_free(&c->doc);
    memset(c, 0, sizeof *c);
}

/* ---- matching ----------------------------------------------------------- */

/* The problem with the smallest record number wins, so the message names
 * the first bad record of the file. */
typedef struct {
    const cocoeval_caption_t *at, *other;
    size_t count;
} problem_t;

static void note_problem(problem_t *p, const cocoeval_caption_t *at, const cocoeval_caption_t *other)
{
    p->count++;
    if (!p->at || at->record < p->at->record) p->at = at, p->other = other;
}

int cocoeval_match(cocoeval_set_t *set, const cocoeval_captions_t *res, const cocoeval_captions_t *ann, int subset,
                   err_t *e)
{
    memset(set, 0, sizeof *set);
    if (!res->n) return err_set(e, ERR_FORMAT, "%s: no results to score", res->name);
    set->items = calloc(res->n, sizeof *set->items);
    set->cand = calloc(res->n, sizeof *set->cand);
    set->refs = calloc(ann->n ? ann->n : 1, sizeof *set->refs);
    if (!set->items || !set->cand || !set->refs) {
        cocoeval_set_free(set);
        return err_set(e, ERR_NOMEM, "out of memory for %zu images", res->n);
    }
    problem_t dup = {0}, unknown = {0}, missing = {0};
    size_t a = 0, used = 0;
    for (size_t i = 0; i < res->n; i++) {
        const cocoeval_caption_t *r = &res->c[i];
        if (i && !id_cmp(r, &res->c[i - 1])) {
            note_problem(&dup, r, &res->c[i - 1]);
            continue;
        }
        for (; a < ann->n && id_cmp(&ann->c[a], r) < 0; a++)
            if (!a || id_cmp(&ann->c[a], &ann->c[a - 1])) note_problem(&missing, &ann->c[a], NULL);
        size_t first = a;
        for (; a < ann->n && !id_cmp(&ann->c[a], r); a++) set->refs[used + a - first] = ann->c[a].tokens;
        if (a == first) {
            note_problem(&unknown, r, NULL);
            continue;
        }
        set->cand[set->n] = r;
        set->items[set->n++] = (metric_item_t){r->tokens, set->refs + used, a - first};
        used += a - first;
    }
    for (; a < ann->n; a++)
        if (!a || id_cmp(&ann->c[a], &ann->c[a - 1])) note_problem(&missing, &ann->c[a], NULL);
    char id[96];
    int rc = 0;
    /* report the earlier of the two results-file problems */
    if (dup.at && (!unknown.at || dup.at->record < unknown.at->record))
        rc = err_set(e, ERR_FORMAT, "%s: entry %zu: image_id %s already has a caption (entry %zu)", res->name,
                     dup.at->record, id_text(dup.at, id, sizeof id), dup.other->record);
    else if (unknown.at)
        rc = err_set(e, ERR_FORMAT, "%s: entry %zu: image_id %s is not in the annotations (%s has no caption for it)",
                     res->name, unknown.at->record, id_text(unknown.at, id, sizeof id), ann->name);
    else if (missing.at && !subset)
        rc = err_set(e, ERR_FORMAT,
                     "%s: annotation %zu: image_id %s has no entry in %s (%zu annotated images have none; "
                     "--subset scores only the images of the results, as the COCO toolkit does)",
                     ann->name, missing.at->record, id_text(missing.at, id, sizeof id), res->name, missing.count);
    if (rc) cocoeval_set_free(set);
    return rc;
}

void cocoeval_set_free(cocoeval_set_t *set)
{
    free(set->items);
    free(set->cand);
    free(set->refs);
    memset(set, 0, sizeof *set);
}

/* ---- scoring ------------------------------------------------------------ */

int cocoeval_check_opts(const cocoeval_opts_t *o, err_t *e)
{
    int rc = 0;
    if (o->meteor_jar) rc = jrun_check_jar("--meteor-jar", o->meteor_jar, e);
    if (!rc && o->spice_jar) rc = jrun_check_jar("--spice-jar", o->spice_jar, e);
    return rc;
}

int cocoeval_score(const cocoeval_set_t *set, const cocoeval_opts_t *o, cocoeval_scores_t *s, err_t *e)
{
    memset(s, 0, sizeof *s);
    size_t n = set->n;
    if (o->per_image) {
        s->bleu_img = calloc(4 * n, sizeof *s->bleu_img);
        s->rouge_img = calloc(n, sizeof *s->rouge_img);
        s->cider_img = calloc(n, sizeof *s->cider_img);
        s->meteor_img = o->meteor_jar ? calloc(n, sizeof *s->meteor_img) : NULL;
        if (!s->bleu_img || !s->rouge_img || !s->cider_img || (o->meteor_jar && !s->meteor_img)) {
            cocoeval_scores_free(s);
            return err_set(e, ERR_NOMEM, "out of memory for the scores of %zu images", n);
        }
    }
    metric_grams_t grams;
    double t0 = clock_now();
    int rc = metric_grams_build(&grams, set->items, n, e);
    double t1 = clock_now();
    if (!rc) rc = bleu_score(&grams, s->bleu, s->bleu_img, e);
    double t2 = clock_now();
    if (!rc) rc = rouge_l_score(set->items, n, &s->rouge_l, s->rouge_img, e);
    double t3 = clock_now();
    if (!rc) rc = cider_d_score(&grams, &s->cider, s->cider_img, e);
    double t4 = clock_now();
    if (!rc)
        log_msg(LOG_INFO, "score: %zu images: n-grams %.3f s (BLEU's and CIDEr-D's), BLEU %.3f s, ROUGE-L %.3f s, "
                "CIDEr-D %.3f s", n, t1 - t0, t2 - t1, t3 - t2, t4 - t3);
    metric_grams_free(&grams);
    if (!rc && o->meteor_jar) {
        log_msg(LOG_INFO, "score: METEOR of %zu images with %s", n, o->meteor_jar);
        rc = meteor_score(o->meteor_jar, set->items, n, &s->meteor, s->meteor_img, e);
        s->has_meteor = !rc;
    }
    if (!rc && o->spice_jar) {
        log_msg(LOG_INFO, "score: SPICE of %zu images with %s", n, o->spice_jar);
        rc = spice_score(o->spice_jar, set->items, n, &s->spice, o->per_image ? &s->spice_img : NULL, e);
        s->has_spice = !rc;
    }
    if (rc) cocoeval_scores_free(s);
    return rc;
}

void cocoeval_scores_free(cocoeval_scores_t *s)
{
    free(s->bleu_img);
    free(s->rouge_img);
    free(s->cider_img);
    free(s->meteor_img);
    json_decref(s->spice_img);
    memset(s, 0, sizeof *s);
}

/* A JSON number, or null where JSON has none (NaN). */
static json_t *real_or_null(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

/* Bleu_1..4, METEOR, ROUGE_L, CIDEr, SPICE into o; img < 0 for the corpus. */
static int put_scores(json_t *o, const cocoeval_scores_t *s, long img)
{
    int bad = 0;
    for (int k = 0; k < 4; k++) {
        char key[16];
        snprintf(key, sizeof key, "Bleu_%d", k + 1);
        bad |= json_object_set_new(o, key, json_real(img < 0 ? s->bleu[k] : s->bleu_img[4 * img + k]));
    }
    json_t *meteor = !s->has_meteor ? json_null() : real_or_null(img < 0 ? s->meteor : s->meteor_img[img]);
    json_t *spice = !s->has_spice ? json_null()
                    : img < 0    ? real_or_null(s->spice)
                                 : json_incref(json_array_get(s->spice_img, (size_t)img));
    bad |= json_object_set_new(o, "METEOR", meteor);
    bad |= json_object_set_new(o, "ROUGE_L", json_real(img < 0 ? s->rouge_l : s->rouge_img[img]));
    bad |= json_object_set_new(o, "CIDEr", json_real(img < 0 ? s->cider : s->cider_img[img]));
    bad |= json_object_set_new(o, "SPICE", spice);
    return bad;
}

json_t *cocoeval_scores_json(const cocoeval_set_t *set, const cocoeval_scores_t *s)
{
    json_t *o = json_object();
    if (!o) return NULL;
    int bad = put_scores(o, s, -1);
    bad |= json_object_set_new(o, "images", json_integer((json_int_t)set->n));
    char note[256] = "";
    if (!s->has_meteor || !s->has_spice)
        snprintf(note, sizeof note, "%s not computed: pass %s (the COCO toolkit's Java scorers) with java on PATH",
                 !s->has_meteor && !s->has_spice ? "METEOR and SPICE" : !s->has_meteor ? "METEOR" : "SPICE",
                 !s->has_meteor && !s->has_spice ? "--meteor-jar and --spice-jar"
                 : !s->has_meteor                ? "--meteor-jar"
                                                 : "--spice-jar");
    if (s->has_spice && !isfinite(s->spice))
        snprintf(note + strlen(note), sizeof note - strlen(note), "%sSPICE is NaN (an image has no score), as in the toolkit",
                 note[0] ? "; " : "");
    if (note[0]) bad |= json_object_set_new(o, "note", json_string(note));
    if (s->bleu_img) {
        json_t *per = json_object();
        bad |= json_object_set_new(o, "per_image", per);
        for (size_t i = 0; i < set->n && !bad; i++) {
            const cocoeval_caption_t *c = set->cand[i];
            char key[64];
            json_t *p = json_object();
            bad |= !p ||
                   json_object_set_new(p, "image_id", c->id_str ? json_string(c->id_str) : json_integer(c->id_int)) ||
                   put_scores(p, s, (long)i);
            if (!c->id_str) snprintf(key, sizeof key, "%lld", c->id_int);
            bad |= json_object_set_new(per, c->id_str ? c->id_str : key, p);
        }
    }
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

int cocoeval_score_files(const char *results, const char *annotations, const cocoeval_opts_t *o, FILE *out, err_t *e)
{
    cocoeval_captions_t res, ann;
    cocoeval_set_t set = {0};
    cocoeval_scores_t s = {0};
    memset(&ann, 0, sizeof ann);
    double t0 = clock_now();
    int rc = cocoeval_check_opts(o, e);
    if (!rc) rc = cocoeval_load_results(&res, results, e);
    else memset(&res, 0, sizeof res);
    if (!rc) rc = cocoeval_load_annotations(&ann, annotations, e);
    if (!rc)
        log_msg(LOG_INFO, "score: %zu results and %zu references loaded and tokenized in %.3f s", res.n, ann.n,
                clock_now() - t0);
    if (!rc) rc = cocoeval_match(&set, &res, &ann, o->subset, e);
    if (!rc) rc = cocoeval_score(&set, o, &s, e);
    if (!rc) {
        json_t *j = cocoeval_scores_json(&set, &s);
        if (!j) rc = err_set(e, ERR_NOMEM, "out of memory for the scores of %zu images", set.n);
        else if (json_dumpf(j, out, JSON_REAL_PRECISION(17)) || fputc('\n', out) == EOF || fflush(out))
            rc = err_set(e, ERR_IO, "writing the scores failed");
        json_decref(j);
    }
    cocoeval_scores_free(&s);
    cocoeval_set_free(&set);
    cocoeval_captions_free(&res);
    cocoeval_captions_free(&ann);
    return rc;
}
