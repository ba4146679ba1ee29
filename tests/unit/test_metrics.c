/* metrics: BLEU-1..4, ROUGE-L and CIDEr-D, corpus and per image, against
 * tests/fixtures/metrics/scores.json, written by a plain-Python transcription
 * of the COCO toolkit's scorers (tests/gen/gen_metric_fixtures.py). The sets
 * hold 300, 1 and 5 images, including an empty candidate, clipping, brevity,
 * repeats and length ties. Tolerance 1e-9 absolute: both sides compute in
 * doubles and differ only in the order of floating-point sums (measured
 * differences are around 1e-15), far tighter than the 1e-6 the evaluation
 * promises. */
#include "check.h"
#include "metrics/bleu.h"
#include "metrics/cider.h"
#include "metrics/rouge.h"

#include <jansson.h>

#define TOL 1e-9

static double max_diff;

static void near(double got, double want, const char *set, const char *what, long image)
{
    double d = fabs(got - want);
    if (d > max_diff) max_diff = d;
    CHECK_MSG(d <= TOL, "%s: %s image %ld: got %.17g, want %.17g", set, what, image, got, want);
}

static void check_set(json_t *set)
{
    const char *name = json_string_value(json_object_get(set, "name"));
    json_t *images = json_object_get(set, "images");
    size_t n = json_array_size(images);
    metric_item_t *items = calloc(n, sizeof *items);
    const char **refs = NULL;
    size_t total = 0;
    for (size_t i = 0; i < n; i++) total += json_array_size(json_object_get(json_array_get(images, i), "references"));
    refs = calloc(total, sizeof *refs);
    for (size_t i = 0, r = 0; i < n; i++) {
        json_t *img = json_array_get(images, i);
        json_t *rs = json_object_get(img, "references");
        items[i].cand = json_string_value(json_object_get(img, "candidate"));
        items[i].refs = refs + r;
        items[i].n_refs = json_array_size(rs);
        for (size_t k = 0; k < items[i].n_refs; k++) refs[r++] = json_string_value(json_array_get(rs, k));
    }
    double bleu[4], rouge, cider;
    double *bleu_img = calloc(4 * n, sizeof *bleu_img), *rouge_img = calloc(n, sizeof *rouge_img),
           *cider_img = calloc(n, sizeof *cider_img);
    err_t e = {0};
    metric_grams_t grams;
    CHECK_OK(metric_grams_build(&grams, items, n, &e), &e);
    CHECK_OK(bleu_score(&grams, bleu, bleu_img, &e), &e);
    CHECK_OK(rouge_l_score(items, n, &rouge, rouge_img, &e), &e);
    CHECK_OK(cider_d_score(&grams, &cider, cider_img, &e), &e);
    metric_grams_free(&grams);
    for (int k = 0; k < 4; k++) near(bleu[k], json_real_value(json_array_get(json_object_get(set, "Bleu"), k)), name, "Bleu corpus", -1);
    near(rouge, json_real_value(json_object_get(set, "ROUGE_L")), name, "ROUGE_L corpus", -1);
    near(cider, json_number_value(json_object_get(set, "CIDEr")), name, "CIDEr corpus", -1);
    for (size_t i = 0; i < n; i++) {
        json_t *img = json_array_get(images, i);
        for (int k = 0; k < 4; k++)
            near(bleu_img[4 * i + k], json_number_value(json_array_get(json_object_get(img, "Bleu"), k)), name, "Bleu",
                 (long)i);
        near(rouge_img[i], json_number_value(json_object_get(img, "ROUGE_L")), name, "ROUGE_L", (long)i);
        near(cider_img[i], json_number_value(json_object_get(img, "CIDEr")), name, "CIDEr", (long)i);
    }
    free(bleu_img);
    free(rouge_img);
    free(cider_img);
    free(refs);
    free(items);
}

static void test_toolkit_parity(void)
{
    char path[4096];
    json_error_t jerr;
    json_t *root = json_load_file(check_fixture(path, sizeof path, "metrics/scores.json"), 0, &jerr);
    CHECK_MSG(root != NULL, "%s: %s", path, jerr.text);
    if (!root) return;
    json_t *sets = json_object_get(root, "sets");
    CHECK(json_array_size(sets) == 3);
    for (size_t s = 0; s < json_array_size(sets); s++) check_set(json_array_get(sets, s));
    fprintf(stderr, "largest difference from the reference: %.3g\n", max_diff);
    json_decref(root);
}

static void test_no_references_is_an_error(void)
{
    metric_item_t item = {"a dog", NULL, 0};
    double r;
    err_t e = {0};
    metric_grams_t grams;
    CHECK(metric_grams_build(&grams, &item, 1, &e) == ERR_ARG && strstr(e.msg, "image 0: no reference"));
    CHECK(rouge_l_score(&item, 1, &r, NULL, &e) == ERR_ARG);
}

/* ROUGE-L's F from an LCS of l words, candidate m words, reference n. */
static double rouge_f(double l, double m, double n)
{
    double p = l / m, r = l / n, b2 = 1.2 * 1.2;
    return l ? (1 + b2) * p * r / (r + b2 * p) : 0.0;
}

/* "w0 w1 ... w(n-1)" taking every step-th word from first, or backwards. */
static char *words(size_t first, size_t n, size_t step, int backwards)
{
    char *s = calloc(n * 8 + 1, 1);
    for (size_t k = 0; s && k < n; k++)
        sprintf(s + strlen(s), "%sw%zu", k ? " " : "", backwards ? first + (n - 1 - k) * step : first + k * step);
    return s;
}

/* Candidates of up to 64 words take a bit-parallel LCS, longer ones the DP
 * table: the LCS lengths here are known (every other word: half; reversed:
 * one; repeats: the shorter's count), on both sides of 64. */
static void test_rouge_long_captions(void)
{
    for (size_t m = 63; m <= 66; m++) {
        char *cand = words(0, m, 1, 0), *half = words(0, (m + 1) / 2, 2, 0), *rev = words(0, m, 1, 1);
        const char *refs1[1] = {half}, *refs2[1] = {rev};
        metric_item_t items[2] = {{cand, refs1, 1}, {cand, refs2, 1}};
        double mean, img[2];
        err_t e = {0};
        CHECK_OK(rouge_l_score(items, 2, &mean, img, &e), &e);
        double h = (double)((m + 1) / 2);
        CHECK_MSG(fabs(img[0] - rouge_f(h, (double)m, h)) < 1e-12, "%zu words, every other: %.17g", m, img[0]);
        CHECK_MSG(fabs(img[1] - rouge_f(1, (double)m, (double)m)) < 1e-12, "%zu words, reversed: %.17g", m, img[1]);
        free(cand), free(half), free(rev);
    }
    char cand[64 * 2 + 16] = "";
    for (int k = 0; k < 64; k++) strcat(cand, k ? " a" : "a");
    const char *refs[1] = {"a b a b a"};
    metric_item_t item = {cand, refs, 1};
    double mean;
    err_t e = {0};
    CHECK_OK(rouge_l_score(&item, 1, &mean, NULL, &e), &e);
    CHECK_MSG(fabs(mean - rouge_f(3, 64, 5)) < 1e-12, "64 repeats: %.17g", mean);
    strcat(cand, " a");
    CHECK_OK(rouge_l_score(&item, 1, &mean, NULL, &e), &e);
    CHECK_MSG(fabs(mean - rouge_f(3, 65, 5)) < 1e-12, "65 repeats: %.17g", mean);
}

int main(void)
{
    CHECK_RUN(test_toolkit_parity);
    CHECK_RUN(test_no_references_is_an_error);
    CHECK_RUN(test_rouge_long_captions);
    return check_summary();
}
