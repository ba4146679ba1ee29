#include "metrics/rouge.h"

#include <stdlib.h>

#define ROUGE_BETA 1.2

/* LCS length of a candidate c of at most 64 words and a reference r,
 * bit-parallel (Hyyro, "Bit-parallel LCS-length computation revisited",
 * 2004): a zero bit j of v marks where the LCS so far grew at candidate
 * word j; each reference word costs one match mask and a few word
 * operations instead of a row of the DP table. */
static size_t lcs_bits(const metric_words_t *c, const metric_words_t *r)
{
    uint64_t v = ~0ull;
    for (size_t i = 0; i < r->n; i++) {
        uint64_t match = 0;
        for (size_t j = 0; j < c->n; j++) match |= (uint64_t)metric_word_eq(&c->w[j], &r->w[i]) << j;
        uint64_t u = v & match;
        v = (v + u) | (v - u);
    }
    uint64_t used = c->n == 64 ? ~0ull : (1ull << c->n) - 1;
    return c->n - (size_t)__builtin_popcountll(v & used);
}

/* LCS length with one row of the DP table: for longer candidates. */
static size_t lcs(const metric_words_t *a, const metric_words_t *b, size_t *row)
{
    for (size_t j = 0; j <= b->n; j++) row[j] = 0;
    for (size_t i = 1; i <= a->n; i++) {
        size_t diag = 0;
        for (size_t j = 1; j <= b->n; j++) {
            size_t up = row[j];
            row[j] = metric_word_eq(&a->w[i - 1], &b->w[j - 1]) ? diag + 1 : (up > row[j - 1] ? up : row[j - 1]);
            diag = up;
        }
    }
    return row[b->n];
}

int rouge_l_score(const metric_item_t *items, size_t n, double *mean, double *per_image, err_t *e)
{
    metric_words_t cand = {0}, ref = {0};
    size_t *row = NULL, row_cap = 0;
    double sum = 0;
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        const metric_item_t *it = &items[i];
        if (!it->n_refs) {
            rc = err_set(e, ERR_ARG, "image %zu: no reference captions", i);
            break;
        }
        if ((rc = metric_split_space(it->cand, &cand, e))) break;
        double pmax = 0, rmax = 0;
        for (size_t r = 0; r < it->n_refs && !rc; r++) {
            if ((rc = metric_split_space(it->refs[r], &ref, e))) break;
            if (cand.n > 64 && cand.n + 1 > row_cap) {
                size_t *p = realloc(row, (cand.n + 1) * sizeof *p);
                if (!p) {
                    rc = err_set(e, ERR_NOMEM, "out of memory for a %zu-word caption", cand.n);
                    break;
                }
                row = p;
                row_cap = cand.n + 1;
            }
            double l = (double)(cand.n <= 64 ? lcs_bits(&cand, &ref) : lcs(&ref, &cand, row));
            double p = l / (double)cand.n, q = l / (double)ref.n;
            if (p > pmax) pmax = p;
            if (q > rmax) rmax = q;
        }
        if (rc) break;
        double b2 = ROUGE_BETA * ROUGE_BETA;
        double f = (pmax != 0 && rmax != 0) ? ((1 + b2) * pmax * rmax) / (rmax + b2 * pmax) : 0.0;
        if (per_image) per_image[i] = f;
        sum += f;
    }
    if (!rc) *mean = n ? sum / (double)n : 0.0;
    free(cand.w);
    free(ref.w);
    free(row);
    return rc;
}
