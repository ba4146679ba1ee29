/* The COCO results / annotations parser (common/metrics/cocoeval.h) on
 * arbitrary bytes. The input split at its first NUL byte is a results file
 * and an annotation file (without a NUL, the same bytes are tried as
 * both). Each either loads or fails with a message naming the file; loaded
 * captions are sorted by image id (one type per file) and tokenized; a
 * pair that matches (with and without --subset) scores BLEU and ROUGE-L in
 * [0, 1] and CIDEr-D in [0, 10 * ...] (non-negative, finite), with a
 * per-image JSON object for every image. Java scorers are never run. */
#include "metrics/cocoeval.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void check_loaded(const cocoeval_captions_t *c)
{
    for (size_t i = 0; i < c->n; i++) {
        const cocoeval_caption_t *x = &c->c[i], *p = i ? &c->c[i - 1] : NULL;
        if (!x->tokens || !x->text) abort();
        if (!p) continue;
        if (p->record == x->record) abort();
        /* sorted by image id, all of one type */
        if (!p->id_str != !x->id_str || (x->id_str ? strcmp(p->id_str, x->id_str) > 0 : p->id_int > x->id_int)) abort();
    }
}

static void score_pair(const cocoeval_captions_t *res, const cocoeval_captions_t *ann, int subset)
{
    cocoeval_set_t set;
    cocoeval_scores_t s;
    cocoeval_opts_t o = {.per_image = 1};
    err_t e = {0};
    if (cocoeval_match(&set, res, ann, subset, &e)) {
        if (!e.msg[0]) abort();
        return;
    }
    if (!set.n || cocoeval_score(&set, &o, &s, &e)) abort();
    for (int k = 0; k < 4; k++)
        if (!(s.bleu[k] >= 0 && s.bleu[k] <= 1 + 1e-9)) abort();
    if (!(s.rouge_l >= 0 && s.rouge_l <= 1 + 1e-9) || !(s.cider >= 0 && isfinite(s.cider))) abort();
    json_t *j = cocoeval_scores_json(&set, &s);
    if (!j || json_object_size(json_object_get(j, "per_image")) != set.n) abort();
    json_decref(j);
    cocoeval_scores_free(&s);
    cocoeval_set_free(&set);
}

/* The scorer's timing lines would flood the fuzzer's output. */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    setenv("CLIPCAP_LOG", "warn", 1);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    const char *sep = memchr(text, 0, size);
    size_t rlen = sep ? (size_t)(sep - text) : size;
    const char *atext = sep ? sep + 1 : text;
    size_t alen = sep ? size - rlen - 1 : size;
    cocoeval_captions_t res, ann;
    err_t e = {0};
    int rc_res = cocoeval_load_buffer(&res, text, rlen, "results.json", 1, &e);
    if (rc_res && !strstr(e.msg, "results.json")) abort();
    int rc_ann = cocoeval_load_buffer(&ann, atext, alen, "annotations.json", 0, &e);
    if (rc_ann && !strstr(e.msg, "annotations.json")) abort();
    if (!rc_res) check_loaded(&res);
    if (!rc_ann) check_loaded(&ann);
    if (!rc_res && !rc_ann) {
        score_pair(&res, &ann, 0);
        score_pair(&res, &ann, 1);
    }
    cocoeval_captions_free(&res);
    cocoeval_captions_free(&ann);
    return 0;
}
