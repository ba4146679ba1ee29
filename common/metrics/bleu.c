#include "metrics/bleu.h"

#include <math.h>
#include <stdlib.h>

#define BLEU_TINY 1e-15
#define BLEU_SMALL 1e-9

static size_t count_in(const metric_words_t *s, const metric_word_t *g, int k)
{
    size_t c = 0;
    for (size_t i = 0; i + (size_t)k <= s->n; i++) c += metric_ngram_eq(&s->w[i], g, k);
    return c;
}

/* Clipped matches of the candidate's k-grams: each distinct k-gram once,
 * min(its count, its largest count in one reference). */
static double clipped(const metric_words_t *cand, const metric_words_t *refs, size_t n_refs, int k)
{
    double total = 0;
    for (size_t i = 0; i + (size_t)k <= cand->n; i++) {
        const metric_word_t *g = &cand->w[i];
        int seen = 0;
        for (size_t j = 0; j < i && !seen; j++) seen = metric_ngram_eq(&cand->w[j], g, k);
        if (seen) continue;
        size_t mine = count_in(cand, g, k), best = 0;
        for (size_t r = 0; r < n_refs; r++) {
            size_t c = count_in(&refs[r], g, k);
            if (c > best) best = c;
        }
        total += (double)(mine < best ? mine : best);
    }
    return total;
}

static void bleu_from_counts(const double correct[4], const double guess[4], double testlen, double reflen,
                             double out[4])
{
    double bleu = 1.0;
    for (int k = 0; k < 4; k++) {
        bleu *= (correct[k] + BLEU_TINY) / (guess[k] + BLEU_SMALL);
        out[k] = pow(bleu, 1.0 / (k + 1));
    }
    double ratio = (testlen + BLEU_TINY) / (reflen + BLEU_SMALL);
    if (ratio < 1)
        for (int k = 0; k < 4; k++) out[k] *= exp(1 - 1 / ratio);
}

int bleu_score(const metric_item_t *items, size_t n, double corpus[4], double *per_image, err_t *e)
{
    metric_words_t cand = {0};
    metric_words_t *refs = NULL;
    size_t refs_cap = 0;
    double correct[4] = {0}, guess[4] = {0}, testlen = 0, reflen = 0;
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        const metric_item_t *it = &items[i];
        if (!it->n_refs) {
            rc = err_set(e, ERR_ARG, "image %zu: no reference captions", i);
            break;
        }
        if (it->n_refs > refs_cap) {
            metric_words_t *p = realloc(refs, it->n_refs * sizeof *p);
            if (!p) {
                rc = err_set(e, ERR_NOMEM, "out of memory for %zu references", it->n_refs);
                break;
            }
            for (size_t r = refs_cap; r < it->n_refs; r++) p[r] = (metric_words_t){0};
            refs = p;
            refs_cap = it->n_refs;
        }
        rc = metric_split(it->cand, &cand, e);
        for (size_t r = 0; r < it->n_refs && !rc; r++) rc = metric_split(it->refs[r], &refs[r], e);
        if (rc) break;
        /* closest reference length, ties to the shorter */
        size_t best = refs[0].n;
        for (size_t r = 1; r < it->n_refs; r++) {
            size_t d = refs[r].n > cand.n ? refs[r].n - cand.n : cand.n - refs[r].n;
            size_t db = best > cand.n ? best - cand.n : cand.n - best;
            if (d < db || (d == db && refs[r].n < best)) best = refs[r].n;
        }
        double c[4], g[4];
        for (int k = 0; k < 4; k++) {
            c[k] = clipped(&cand, refs, it->n_refs, k + 1);
            g[k] = cand.n + 1 > (size_t)(k + 1) ? (double)(cand.n - (size_t)k) : 0.0;
            correct[k] += c[k];
            guess[k] += g[k];
        }
        testlen += (double)cand.n;
        reflen += (double)best;
        if (per_image) bleu_from_counts(c, g, (double)cand.n, (double)best, per_image + 4 * i);
    }
    if (!rc) bleu_from_counts(correct, guess, testlen, reflen, corpus);
    free(cand.w);
    for (size_t r = 0; r < refs_cap; r++) free(refs[r].w);
    free(refs);
    return rc;
}
