#include "metrics/bleu.h"

#include <math.h>
#include <stdlib.h>

#define BLEU_TINY 1e-15
#define BLEU_SMALL 1e-9

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

/* One image: clipped matches (each distinct candidate n-gram counted at
 * most as often as in the one reference that holds it most), guesses, the
 * candidate's length and the closest reference length (ties to the
 * shorter). cand is the calling thread's table: a candidate n-gram's w
 * counts it in the current reference and aux keeps the largest count, so
 * the references need no table of their own. */
static int bleu_image(const metric_grams_t *g, size_t i, metric_tf_t *cand, double correct[4], double guess[4],
                      double *testlen, double *reflen, err_t *e)
{
    size_t c0 = g->first[i], clen = g->len[c0], best = g->len[c0 + 1];
    int rc = metric_tf_fill(cand, g->gram + g->start[c0], g->start[c0 + 1] - g->start[c0], e);
    for (size_t c = c0 + 1; c < g->first[i + 1] && !rc; c++) {
        size_t rl = g->len[c], d = rl > clen ? rl - clen : clen - rl, db = best > clen ? best - clen : clen - best;
        if (d < db || (d == db && rl < best)) best = rl;
        for (size_t k = 0; k < cand->n_distinct; k++) cand->slot[cand->order[k]].w = 0;
        for (size_t k = g->start[c]; k < g->start[c + 1]; k++) {
            metric_tf_slot_t *x = metric_tf_find(cand, g->gram[k]);
            if (x && ++x->w > x->aux) x->aux = (uint32_t)x->w;
        }
    }
    for (int k = 0; k < 4; k++) {
        correct[k] = 0;
        guess[k] = clen > (size_t)k ? (double)(clen - (size_t)k) : 0.0;
    }
    for (size_t k = 0; k < cand->n_distinct; k++) {
        const metric_tf_slot_t *x = &cand->slot[cand->order[k]];
        correct[METRIC_GRAM_N(x->gram) - 1] += x->count < x->aux ? x->count : x->aux;
    }
    *testlen = (double)clen;
    *reflen = (double)best;
    return rc;
}

int bleu_score(const metric_grams_t *g, double corpus[4], double *per_image, err_t *e)
{
    double correct[4] = {0}, guess[4] = {0}, testlen = 0, reflen = 0;
    int rc = 0;
    /* the sums are of integers (exact in doubles): any thread order gives the same bits */
#pragma omp parallel reduction(+ : correct[:4], guess[:4], testlen, reflen)
    {
        metric_tf_t cand = {0};
        err_t mine = {0};
        int my_rc = 0;
#pragma omp for schedule(static)
        for (size_t i = 0; i < g->n_items; i++) {
            double c[4], gs[4], tl, rl;
            if (my_rc || (my_rc = bleu_image(g, i, &cand, c, gs, &tl, &rl, &mine))) continue;
            for (int k = 0; k < 4; k++) correct[k] += c[k], guess[k] += gs[k];
            testlen += tl;
            reflen += rl;
            if (per_image) bleu_from_counts(c, gs, tl, rl, per_image + 4 * i);
        }
        metric_tf_free(&cand);
#pragma omp critical(bleu_error)
        if (my_rc && !rc) rc = my_rc, *e = mine;
    }
    if (!rc) bleu_from_counts(correct, guess, testlen, reflen, corpus);
    return rc;
}
