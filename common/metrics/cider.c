#include "metrics/cider.h"

#include <math.h>
#include <stdlib.h>

#define CIDER_SIGMA 6.0

/* The weights' two tables: df[j], the number of images whose references
 * hold n-gram index j (n-grams only in candidates: 0), and idf[d] =
 * log(N) - log(max(1, d)) for d = 0..N, so that a weight costs no log. */
typedef struct {
    uint32_t *df;
    double *idf;
} cider_weights_t;

static int cider_weights(const metric_grams_t *g, cider_weights_t *w, err_t *e)
{
    size_t n = g->n_distinct ? g->n_distinct : 1;
    w->df = calloc(n, sizeof *w->df);
    w->idf = malloc((g->n_items + 1) * sizeof *w->idf);
    uint32_t *seen = calloc(n, sizeof *seen); /* seen[j]: the last image counted for n-gram j, + 1 */
    int rc = w->df && w->idf && seen ? 0 : err_set(e, ERR_NOMEM, "out of memory for %zu n-grams", g->n_distinct);
    /* an image's references are contiguous: an n-gram counts once per image */
    for (size_t i = 0; i < g->n_items && !rc; i++)
        for (size_t k = g->start[g->first[i] + 1]; k < g->start[g->first[i + 1]]; k++) {
            uint32_t j = METRIC_GRAM_INDEX(g->gram[k]);
            if (seen[j] != (uint32_t)i + 1) seen[j] = (uint32_t)i + 1, w->df[j]++;
        }
    double log_n = log((double)g->n_items);
    for (size_t d = 0; d <= g->n_items && !rc; d++) w->idf[d] = log_n - log(d > 1 ? (double)d : 1.0);
    free(seen);
    return rc;
}

/* Caption c's tf-idf vector into t (w of each distinct n-gram), its norm
 * per n; returns its number of bigrams (the toolkit's "length"). */
static int caption_vec(const metric_grams_t *g, size_t c, const cider_weights_t *w, metric_tf_t *t, double norm[4],
                       double *bigrams, err_t *e)
{
    int rc = metric_tf_fill(t, g->gram + g->start[c], g->start[c + 1] - g->start[c], e);
    for (int k = 0; k < 4; k++) norm[k] = 0;
    for (size_t k = 0; k < t->n_distinct && !rc; k++) {
        metric_tf_slot_t *x = &t->slot[t->order[k]];
        x->w = (double)x->count * w->idf[w->df[METRIC_GRAM_INDEX(x->gram)]];
        norm[METRIC_GRAM_N(x->gram) - 1] += x->w * x->w;
    }
    for (int k = 0; k < 4; k++) norm[k] = sqrt(norm[k]);
    *bigrams = g->len[c] > 1 ? (double)(g->len[c] - 1) : 0.0;
    return rc;
}

static int cider_image(const metric_grams_t *g, size_t i, const cider_weights_t *w, metric_tf_t *cand,
                       metric_tf_t *ref, double *out, err_t *e)
{
    double cnorm[4], rnorm[4], clen, rlen, score[4] = {0};
    size_t c0 = g->first[i];
    int rc = caption_vec(g, c0, w, cand, cnorm, &clen, e);
    for (size_t c = c0 + 1; c < g->first[i + 1] && !rc; c++) {
        if ((rc = caption_vec(g, c, w, ref, rnorm, &rlen, e))) break;
        /* sum over the n-grams both hold of min(cand, ref) * ref */
        double val[4] = {0};
        for (size_t k = 0; k < ref->n_distinct; k++) {
            const metric_tf_slot_t *r = &ref->slot[ref->order[k]];
            const metric_tf_slot_t *x = metric_tf_find(cand, r->gram);
            if (x) val[METRIC_GRAM_N(r->gram) - 1] += (x->w < r->w ? x->w : r->w) * r->w;
        }
        double delta = clen - rlen;
        for (int k = 0; k < 4; k++) {
            if (cnorm[k] != 0 && rnorm[k] != 0) val[k] /= cnorm[k] * rnorm[k];
            score[k] += val[k] * exp(-(delta * delta) / (2 * CIDER_SIGMA * CIDER_SIGMA));
        }
    }
    *out = (score[0] + score[1] + score[2] + score[3]) / 4.0 / (double)(g->first[i + 1] - c0 - 1) * 10.0;
    return rc;
}

int cider_d_score(const metric_grams_t *g, double *mean, double *per_image, err_t *e)
{
    if (g->n_items >= UINT32_MAX) return err_set(e, ERR_LIMIT, "%zu images: CIDEr-D takes fewer than 2^32", g->n_items);
    cider_weights_t w = {0};
    double *scores = per_image ? per_image : malloc((g->n_items ? g->n_items : 1) * sizeof *scores);
    int rc = scores ? cider_weights(g, &w, e) : err_set(e, ERR_NOMEM, "out of memory for %zu scores", g->n_items);
    if (!rc) {
#pragma omp parallel
        {
            metric_tf_t cand = {0}, ref = {0};
            err_t mine = {0};
            int my_rc = 0;
#pragma omp for schedule(static)
            for (size_t i = 0; i < g->n_items; i++)
                if (!my_rc) my_rc = cider_image(g, i, &w, &cand, &ref, &scores[i], &mine);
            metric_tf_free(&cand);
            metric_tf_free(&ref);
#pragma omp critical(cider_error)
            if (my_rc && !rc) rc = my_rc, *e = mine;
        }
    }
    /* the mean in image order, whatever the threads */
    double sum = 0;
    for (size_t i = 0; !rc && i < g->n_items; i++) sum += scores[i];
    if (!rc) *mean = g->n_items ? sum / (double)g->n_items : 0.0;
    free(w.df);
    free(w.idf);
    if (scores != per_image) free(scores);
    return rc;
}
