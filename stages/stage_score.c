/* `clipcap score`: the COCO caption metrics of a results file against an
 * annotation file, as the COCO caption toolkit reports them.
 *
 * Every image of the results is evaluated (the toolkit's imgIds =
 * cocoRes.getImgIds()); each needs exactly one candidate and at least one
 * reference. Captions go through the toolkit's PTB tokenisation
 * (common/text/ptb.h), then BLEU-1..4, ROUGE-L and CIDEr-D are computed
 * over the whole set at once: CIDEr's document frequencies depend on every
 * image, so scoring is not sharded and only rank 0 works. METEOR and SPICE
 * are Java programs; they are reported as null with a note. */
#include "core/log.h"
#include "core/mpictx.h"
#include "io/json_util.h"
#include "metrics/bleu.h"
#include "metrics/cider.h"
#include "metrics/rouge.h"
#include "text/ptb.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char stage_score_summary[] = "BLEU-1..4, ROUGE-L and CIDEr-D of captions, as the COCO caption toolkit";

static void score_usage(FILE *out)
{
    fprintf(out,
            "usage: clipcap score --results R --annotations A [--per-image]\n\n"
            "Scores the captions of R against the references of A like the COCO caption\n"
            "evaluation toolkit (pycocoevalcap): PTB tokenisation, then BLEU-1..4, ROUGE-L\n"
            "and CIDEr-D over all images of R. Prints one JSON object with the keys\n"
            "Bleu_1..Bleu_4, METEOR, ROUGE_L, CIDEr, SPICE; METEOR and SPICE (Java\n"
            "programs) are null, with a note.\n\n"
            "  --results R       COCO results: [{\"image_id\": ID, \"caption\": TEXT}, ...],\n"
            "                    exactly one caption per image\n"
            "  --annotations A   COCO captions: {\"annotations\": [{\"image_id\": ID,\n"
            "                    \"caption\": TEXT}, ...]}, references of every image of R\n"
            "  --per-image       add \"per_image\": [{\"image_id\", Bleu_1..4, ROUGE_L, CIDEr}]\n"
            "  -h, --help        this help\n");
}

/* One caption of either file, keyed by its image id. */
typedef struct {
    char key[64];      /* "i:123" or "s:name": ids of both types never collide */
    json_t *id;        /* borrowed */
    const char *text;  /* borrowed */
    char *tokens;      /* PTB-tokenized, owned */
} caption_t;

static int image_key(const json_t *id, char key[64], err_t *e)
{
    if (json_is_integer(id)) snprintf(key, 64, "i:%lld", (long long)json_integer_value(id));
    else if (json_is_string(id) && json_string_length(id) < 60) snprintf(key, 64, "s:%s", json_string_value(id));
    else return err_set(e, ERR_FORMAT, "'image_id' is not an integer or a short string");
    return 0;
}

static int key_cmp(const void *a, const void *b)
{
    return strcmp(((const caption_t *)a)->key, ((const caption_t *)b)->key);
}

static int read_captions(const char *path, const json_t *list, caption_t **out, size_t *n, err_t *e)
{
    size_t count = json_array_size(list);
    caption_t *c = calloc(count ? count : 1, sizeof *c);
    if (!c) return err_set(e, ERR_NOMEM, "%s: out of memory for %zu captions", path, count);
    *out = c;
    *n = 0;
    for (size_t i = 0; i < count; i++) {
        json_t *rec = json_array_get(list, i);
        int rc = json_get_str(rec, "caption", &c[i].text, e);
        if (!rc) {
            c[i].id = json_object_get(rec, "image_id");
            rc = c[i].id ? image_key(c[i].id, c[i].key, e) : err_set(e, ERR_FORMAT, "field 'image_id' is missing");
        }
        if (!rc) rc = ptb_tokenize(c[i].text, strlen(c[i].text), &c[i].tokens, e);
        if (rc) return err_wrap(e, "%s: caption %zu", path, i);
        (*n)++;
    }
    qsort(c, count, sizeof *c, key_cmp);
    return 0;
}

static void free_captions(caption_t *c, size_t n)
{
    for (size_t i = 0; c && i < n; i++) free(c[i].tokens);
    free(c);
}

/* Pairs every result with the references of its image. */
static int match_images(const char *rpath, const char *apath, const caption_t *res, size_t n_res, const caption_t *ann,
                        size_t n_ann, metric_item_t *items, const char **refs, err_t *e)
{
    size_t a = 0, used = 0;
    for (size_t i = 0; i < n_res; i++) {
        if (i && !strcmp(res[i].key, res[i - 1].key))
            return err_set(e, ERR_FORMAT, "%s: image %s has more than one caption", rpath, res[i].key + 2);
        while (a < n_ann && strcmp(ann[a].key, res[i].key) < 0) a++;
        size_t first = a;
        while (a < n_ann && !strcmp(ann[a].key, res[i].key)) refs[used + (a - first)] = ann[a].tokens, a++;
        if (a == first) return err_set(e, ERR_FORMAT, "%s: image %s of %s has no reference caption", apath, res[i].key + 2, rpath);
        items[i] = (metric_item_t){res[i].tokens, refs + used, a - first};
        used += a - first;
    }
    return 0;
}

static int print_scores(FILE *out, const caption_t *res, size_t n, const double bleu[4], double rouge, double cider,
                        const double *bleu_img, const double *rouge_img, const double *cider_img, err_t *e)
{
    json_t *o = json_object();
    for (int k = 0; k < 4; k++) {
        char key[16];
        snprintf(key, sizeof key, "Bleu_%d", k + 1);
        json_object_set_new(o, key, json_real(bleu[k]));
    }
    json_object_set_new(o, "METEOR", json_null());
    json_object_set_new(o, "ROUGE_L", json_real(rouge));
    json_object_set_new(o, "CIDEr", json_real(cider));
    json_object_set_new(o, "SPICE", json_null());
    json_object_set_new(o, "images", json_integer((json_int_t)n));
    json_object_set_new(o, "note", json_string("METEOR and SPICE are the toolkit's Java programs and are not computed"));
    if (bleu_img) {
        json_t *per = json_array();
        for (size_t i = 0; i < n; i++) {
            json_t *p = json_object();
            json_object_set(p, "image_id", res[i].id);
            for (int k = 0; k < 4; k++) {
                char key[16];
                snprintf(key, sizeof key, "Bleu_%d", k + 1);
                json_object_set_new(p, key, json_real(bleu_img[4 * i + k]));
            }
            json_object_set_new(p, "ROUGE_L", json_real(rouge_img[i]));
            json_object_set_new(p, "CIDEr", json_real(cider_img[i]));
            json_array_append_new(per, p);
        }
        json_object_set_new(o, "per_image", per);
    }
    int rc = json_dumpf(o, out, JSON_REAL_PRECISION(17)) == 0 && fputc('\n', out) != EOF
                 ? 0
                 : err_set(e, ERR_IO, "stdout: write failed");
    json_decref(o);
    return rc;
}

static int score_run(const char *rpath, const char *apath, int per_image, err_t *e)
{
    json_t *rjson = NULL, *ajson = NULL, *anns = NULL;
    caption_t *res = NULL, *ann = NULL;
    size_t n_res = 0, n_ann = 0;
    metric_item_t *items = NULL;
    const char **refs = NULL;
    double *bleu_img = NULL, *rouge_img = NULL, *cider_img = NULL;
    double bleu[4], rouge = 0, cider = 0;
    int rc = json_load_path(&rjson, rpath, e);
    if (!rc) rc = json_load_path(&ajson, apath, e);
    if (!rc && !json_is_array(rjson)) rc = err_set(e, ERR_FORMAT, "%s: not a JSON array of results", rpath);
    if (!rc && (rc = json_get_array(ajson, "annotations", &anns, e))) err_wrap(e, "%s", apath);
    if (!rc) rc = read_captions(rpath, rjson, &res, &n_res, e);
    if (!rc) rc = read_captions(apath, anns, &ann, &n_ann, e);
    if (!rc && !n_res) rc = err_set(e, ERR_FORMAT, "%s: no results to score", rpath);
    if (!rc) {
        items = calloc(n_res, sizeof *items);
        refs = calloc(n_ann ? n_ann : 1, sizeof *refs);
        bleu_img = per_image ? calloc(4 * n_res, sizeof *bleu_img) : NULL;
        rouge_img = per_image ? calloc(n_res, sizeof *rouge_img) : NULL;
        cider_img = per_image ? calloc(n_res, sizeof *cider_img) : NULL;
        if (!items || !refs || (per_image && (!bleu_img || !rouge_img || !cider_img)))
            rc = err_set(e, ERR_NOMEM, "out of memory for %zu images", n_res);
    }
    if (!rc) rc = match_images(rpath, apath, res, n_res, ann, n_ann, items, refs, e);
    if (!rc) rc = bleu_score(items, n_res, bleu, bleu_img, e);
    if (!rc) rc = rouge_l_score(items, n_res, &rouge, rouge_img, e);
    if (!rc) rc = cider_d_score(items, n_res, &cider, cider_img, e);
    if (!rc) rc = print_scores(stdout, res, n_res, bleu, rouge, cider, bleu_img, rouge_img, cider_img, e);
    free(bleu_img);
    free(rouge_img);
    free(cider_img);
    free(items);
    free(refs);
    free_captions(res, n_res);
    free_captions(ann, n_ann);
    json_decref(rjson);
    json_decref(ajson);
    return rc;
}

int stage_score_main(int argc, char **argv)
{
    static const struct option opts[] = {{"results", required_argument, 0, 'r'},
                                         {"annotations", required_argument, 0, 'a'},
                                         {"per-image", no_argument, 0, 'p'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *rpath = NULL, *apath = NULL;
    int per_image = 0, c;
    err_t e = {0};
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'r': rpath = optarg; break;
        case 'a': apath = optarg; break;
        case 'p': per_image = 1; break;
        case 'h': score_usage(stdout); return 0;
        default: score_usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        err_set(&e, ERR_ARG, "unexpected argument '%s' (try --help)", argv[optind]);
        return err_report("score", &e);
    }
    if (!rpath || !apath) {
        err_set(&e, ERR_ARG, "--results and --annotations are required (try --help)");
        return err_report("score", &e);
    }
    if (mpictx_rank() != 0) return 0;
    if (score_run(rpath, apath, per_image, &e)) return err_report("score", &e);
    return 0;
}
