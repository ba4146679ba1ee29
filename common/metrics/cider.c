#include "metrics/cider.h"

#include <math.h>
#include <stdlib.h>

#define CIDER_SIGMA 6.0

/* Every caption split once: the n-gram maps point into these words. */
typedef struct {
    metric_words_t *cand, *refs; /* refs of image i start at ref_start[i] */
    size_t *ref_start;
    size_t n_refs;
} cider_words_t;

static void cider_words_free(cider_words_t *w, size_t n)
{
    for (size_t i = 0; w->cand && i < n; i++) free(w->cand[i].w);
    for (size_t r = 0; w->refs && r < w->n_refs; r++) free(w->refs[r].w);
    free(w->cand);
    free(w->refs);
    free(w->ref_start);
}

static int cider_split(const metric_item_t *items, size_t n, cider_words_t *w, err_t *e)
{
    w->n_refs = 0;
    for (size_t i = 0; i < n; i++) {
        if (!items[i].n_refs) return err_set(e, ERR_ARG, "image %zu: no reference captions", i);
        w->n_refs += items[i].n_refs;
    }
    w->cand = calloc(n ? n : 1, sizeof *w->cand);
    w->refs = calloc(w->n_refs ? w->n_refs : 1, sizeof *w->refs);
    w->ref_start = calloc(n + 1, sizeof *w->ref_start);
    if (!w->cand || !w->refs || !w->ref_start) return err_set(e, ERR_NOMEM, "out of memory for %zu images", n);
    for (size_t i = 0, r = 0; i < n; i++) {
        w->ref_start[i] = r;
        int rc = metric_split(items[i].cand, &w->cand[i], e);
        for (size_t k = 0; k < items[i].n_refs && !rc; k++, r++) rc = metric_split(items[i].refs[k], &w->refs[r], e);
        if (rc) return rc;
    }
    w->ref_start[n] = w->n_refs;
    return 0;
}

/* The caption's tf-idf vector in m (value = weight), its norm per n and its
 * number of bigrams. */
static int caption_vec(ngram_map_t *m, const metric_words_t *w, const ngram_map_t *df, double log_n, double norm[4],
                       double *bigrams, err_t *e)
{
    ngram_map_clear(m);
    for (int k = 1; k <= METRIC_MAX_N; k++)
        for (size_t i = 0; i + (size_t)k <= w->n; i++) {
            ngram_entry_t *g;
            int rc = ngram_map_get(m, &w->w[i], k, &g, e);
            if (rc) return rc;
            g->value += 1;
        }
    *bigrams = 0;
    for (int k = 0; k < METRIC_MAX_N; k++) norm[k] = 0;
    for (size_t s = 0; s < m->cap; s++) {
        ngram_entry_t *g = &m->slot[s];
        if (!g->w) continue;
        const ngram_entry_t *d = ngram_map_find(df, g->w, g->n);
        double dfv = d && d->value > 1 ? d->value : 1.0;
        if (g->n == 2) *bigrams += g->value;
        g->value *= log_n - log(dfv);
        norm[g->n - 1] += g->value * g->value;
    }
    for (int k = 0; k < METRIC_MAX_N; k++) norm[k] = sqrt(norm[k]);
    return 0;
}

int cider_d_score(const metric_item_t *items, size_t n, double *mean, double *per_image, err_t *e)
{
    cider_words_t w = {0};
    ngram_map_t df, cm, rm;
    ngram_map_init(&df);
    ngram_map_init(&cm);
    ngram_map_init(&rm);
    int rc = cider_split(items, n, &w, e);
    /* document frequency: images whose references hold the n-gram */
    for (size_t i = 0; i < n && !rc; i++)
        for (size_t r = w.ref_start[i]; r < w.ref_start[i + 1] && !rc; r++)
            for (int k = 1; k <= METRIC_MAX_N && !rc; k++)
                for (size_t p = 0; p + (size_t)k <= w.refs[r].n && !rc; p++) {
                    ngram_entry_t *g;
                    rc = ngram_map_get(&df, &w.refs[r].w[p], k, &g, e);
                    if (!rc && g->tag != i) g->tag = i, g->value += 1;
                }
    double log_n = log((double)n), sum = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        double cnorm[4], rnorm[4], clen, rlen, score[4] = {0};
        rc = caption_vec(&cm, &w.cand[i], &df, log_n, cnorm, &clen, e);
        for (size_t r = w.ref_start[i]; r < w.ref_start[i + 1] && !rc; r++) {
            rc = caption_vec(&rm, &w.refs[r], &df, log_n, rnorm, &rlen, e);
            if (rc) break;
            double val[4] = {0};
            for (size_t s = 0; s < rm.cap; s++) {
                const ngram_entry_t *g = &rm.slot[s];
                if (!g->w) continue;
                const ngram_entry_t *c = ngram_map_find(&cm, g->w, g->n);
                if (c) val[g->n - 1] += (c->value < g->value ? c->value : g->value) * g->value;
            }
            double delta = clen - rlen;
            for (int k = 0; k < 4; k++) {
                if (cnorm[k] != 0 && rnorm[k] != 0) val[k] /= cnorm[k] * rnorm[k];
                score[k] += val[k] * exp(-(delta * delta) / (2 * CIDER_SIGMA * CIDER_SIGMA));
            }
        }
        if (rc) break;
        double s = (score[0] + score[1] + score[2] + score[3]) / 4.0 / (double)items[i].n_refs * 10.0;
        if (per_image) per_image[i] = s;
        sum += s;
    }
    if (!rc) *mean = n ? sum / (double)n : 0.0;
    ngram_map_free(&df);
    ngram_map_free(&cm);
    ngram_map_free(&rm);
    cider_words_free(&w, n);
    return rc;
}
