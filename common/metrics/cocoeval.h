/* COCO caption evaluation end to end: a results file and an annotation
 * file in, the toolkit's scores (pycocoevalcap's COCOEvalCap) out. Used by
 * `clipcap score` and by `clipcap eval` after it gathers its captions.
 *
 * Loading. Results: a JSON array of {"image_id": ID, "caption": TEXT}
 * ("entry K" in messages, K counting from 0). Annotations: an object whose
 * "annotations" array holds {"image_id": ID, "caption": TEXT} ("annotation
 * K"); its "images" list is not needed. ID is an integer or a string (5 and
 * "5" are different images); other fields are ignored. Every caption is
 * checked (a string, not empty or only whitespace, valid UTF-8 without NUL)
 * and PTB-tokenized (common/text/ptb.h). Errors name the file and the
 * record: "results.json: entry 17: field 'caption' is not a string";
 * invalid UTF-8 and other JSON syntax errors name the record that holds
 * the bad byte, with its line and column.
 *
 * Matching. Each image of the results needs exactly one caption and at
 * least one reference ("results.json: entry 17: image_id 99 is not in the
 * annotations", "... entry 18: image_id 7 already has a caption (entry
 * 3)"). By default each annotated image also needs a result; with subset
 * set, the images of the results are scored and the others ignored, which
 * is what the toolkit does (imgIds = cocoRes.getImgIds()).
 *
 * Scoring. BLEU-1..4, ROUGE-L and CIDEr-D in C (bleu.h, rouge.h, cider.h);
 * METEOR and SPICE through their jars when the options name them
 * (meteor.h, spice.h), otherwise not computed: null in the JSON, never 0.
 * The images are scored in the order of their ids (integers first,
 * ascending, then strings in byte order). */
#ifndef CLIPCAP_COCOEVAL_H
#define CLIPCAP_COCOEVAL_H

#include <jansson.h>
#include <stdio.h>
#include "data/jscan.h"
#include "data/sbuf.h"
#include "metrics/metric.h"

typedef struct {
    const char *id_str; /* the image_id when it is a string (borrowed from the file's text), else NULL */
    long long id_int;   /* the image_id when it is an integer */
    const char *text;   /* the caption as written (borrowed) */
    const char *tokens; /* PTB-tokenized (in the captions' tokens) */
    size_t record;      /* index in the file's list */
} cocoeval_caption_t;

typedef struct {
    char name[512];        /* the path, for messages */
    jscan_t doc;           /* the whole file, owned */
    sbuf_t tokens;         /* every caption's tokens, each ending with a NUL */
    cocoeval_caption_t *c; /* sorted by image id, then record */
    size_t n;
} cocoeval_captions_t;

/* On error *out is left empty (cocoeval_captions_free is still safe). */
int cocoeval_load_results(cocoeval_captions_t *out, const char *path, err_t *e);
int cocoeval_load_annotations(cocoeval_captions_t *out, const char *path, err_t *e);
/* Either format from a buffer (fuzzing, in-memory results); name is used
 * in messages. is_results: 1 for a results array, 0 for annotations. */
int cocoeval_load_buffer(cocoeval_captions_t *out, const char *buf, size_t len, const char *name, int is_results,
                         err_t *e);
void cocoeval_captions_free(cocoeval_captions_t *c);

/* The evaluated set: one item per image, in id order. */
typedef struct {
    size_t n;
    metric_item_t *items;
    const cocoeval_caption_t **cand; /* cand[i]: the result of image i */
    const char **refs;               /* storage behind items[].refs */
} cocoeval_set_t;

int cocoeval_match(cocoeval_set_t *set, const cocoeval_captions_t *res, const cocoeval_captions_t *ann, int subset,
                   err_t *e);
void cocoeval_set_free(cocoeval_set_t *set);

typedef struct {
    const char *meteor_jar; /* NULL: METEOR not computed */
    const char *spice_jar;  /* NULL: SPICE not computed */
    int per_image;          /* fill the per-image arrays */
    int subset;             /* for cocoeval_score_files: see Matching */
} cocoeval_opts_t;

typedef struct {
    double bleu[4], rouge_l, cider, meteor, spice; /* spice may be NaN, as the toolkit's */
    int has_meteor, has_spice;
    /* per image, in set order, when opts.per_image (else NULL) */
    double *bleu_img; /* 4 per image */
    double *rouge_img, *cider_img, *meteor_img;
    json_t *spice_img; /* array of SPICE's per-category scores objects */
} cocoeval_scores_t;

/* Checks the jars named in o before any work: missing jar -> ERR_IO. */
int cocoeval_check_opts(const cocoeval_opts_t *o, err_t *e);
int cocoeval_score(const cocoeval_set_t *set, const cocoeval_opts_t *o, cocoeval_scores_t *s, err_t *e);
void cocoeval_scores_free(cocoeval_scores_t *s);
/* {"Bleu_1".."Bleu_4", "METEOR", "ROUGE_L", "CIDEr", "SPICE", "images",
 * "note" (what was not computed and why; absent when all were),
 * "per_image": {"ID": {"image_id": ID, "Bleu_1", ..., "SPICE"}} (when the
 * per-image scores exist; the toolkit's imgToEval)}. NULL when out of
 * memory. */
json_t *cocoeval_scores_json(const cocoeval_set_t *set, const cocoeval_scores_t *s);

/* Load, match, score and write the JSON object (and a newline) to out. */
int cocoeval_score_files(const char *results, const char *annotations, const cocoeval_opts_t *o, FILE *out, err_t *e);

#endif
