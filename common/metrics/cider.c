#include "metrics/cider.h"

#include <math.h>
#include <stdlib.h>

#define CIDER_SIGMA 6.0

/* Every caption as word numbers, back to back: caption c is
 * ids[start[c] .. start[c + 1]); captions 0..n-1 are the candidates, the
 * references of image i are captions n + ref_start[i] .. n + ref_start[i + 1]. */
typedef struct {
    uint32_t *ids;
    size_t *start, *ref_start;
    size_t n_caps;
} cider_text_t;

static void cider_text_free(cider_text_t *t)
{
    free(t->ids);
    free(t->start);
    free(t->ref_start);
}

static int cider_number(const metric_item_t *items, size_t n, cider_text_t *t, err_t *e)
{
    size_t n_refs = 0, words = 0, cap = 0;
    for (size_t i = 0; i < n; i++) {
        if (!items[i].n_refs) return err_set(e, ERR_ARG, "image %zu: no reference captions", i);
        n_refs += items[i].n_refs;
    }
    t->n_caps = n + n_refs;
    t->start = calloc(t->n_caps + 1, sizeof *t->start);
    t->ref_start = calloc(n + 1, sizeof *t->ref_start);
    if (!t->start || !t->ref_start) return err_set(e, ERR_NOMEM, "out of memory for %zu images", n);
    metric_vocab_t vocab;
    metric_words_t w = {0};
    metric_vocab_init(&vocab);
    int rc = 0;
    for (size_t c = 0, i = 0, r = 0; c < t->n_caps && !rc; c++) {
        const char *text;
        if (c < n) {
            text = items[c].cand;
        } else {
            while (r == items[i].n_refs) r = 0, i++, t->ref_start[i] = c - n;
            text = items[i].refs[r++];
        }
        t->start[c] = words;
        rc = metric_split(text, &w, e);
        /* allocated even when every text is empty: the offsets below are
         * taken from ids, and an offset from NULL is undefined */
        if (!rc && (words + w.n > cap || !t->ids)) {
            size_t grown = cap ? cap : 1024;
            while (grown < words + w.n) grown *= 2;
            uint32_t *ids = realloc(t->ids, grown * sizeof *ids);
            if (!ids) rc = err_set(e, ERR_NOMEM, "out of memory for %zu words", grown);
            else t->ids = ids, cap = grown;
        }
        for (size_t k = 0; k < w.n && !rc; k++) rc = metric_vocab_id(&vocab, &w.w[k], &t->ids[words++], e);
    }
    t->start[t->n_caps] = words;
    t->ref_start[n] = n_refs;
    metric_vocab_free(&vocab);
    free(w.w);
    return rc;
}

/* The caption's tf-idf vector in m (value = weight), its norm per n and its
 * number of bigrams. */
static int caption_vec(ngram_map_t *m, const uint32_t *ids, size_t len, const ngram_map_t *df, double log_n,
                       double norm[4], double *bigrams, err_t *e)
{
    ngram_map_clear(m);
    for (int k = 1; k <= METRIC_MAX_N; k++)
        for (size_t i = 0; i + (size_t)k <= len; i++) {
            ngram_entry_t *g;
            ngram_key_t key = ngram_key(&ids[i], k);
            int rc = ngram_map_get(m, key, k, ngram_key_hash(key), &g, e);
            if (rc) return rc;
            g->value += 1;
        }
    *bigrams = 0;
    for (int k = 0; k < METRIC_MAX_N; k++) norm[k] = 0;
    for (size_t s = 0; s < m->cap; s++)
        if (m->slot[s].n) ngram_map_prefetch(df, ngram_key_hash(m->slot[s].key));
    for (size_t s = 0; s < m->cap; s++) {
        ngram_entry_t *g = &m->slot[s];
        if (!g->n) continue;
        const ngram_entry_t *d = ngram_map_find(df, g->key, ngram_key_hash(g->key));
        double dfv = d && d->value > 1 ? d->value : 1.0;
        if (g->n == 2) *bigrams += g->value;
        g->value *= log_n - log(dfv);
        norm[g->n - 1] += g->value * g->value;
    }
    for (int k = 0; k < METRIC_MAX_N; k++) norm[k] = sqrt(norm[k]);
    return 0;
}

/* Document frequency: the number of images whose references hold the
 * n-gram. The map is sized once; each reference's look-ups are prefetched
 * together. */
static int cider_df(const cider_text_t *t, size_t n, ngram_map_t *df, err_t *e)
{
    size_t total = 0;
    for (size_t c = n; c < t->n_caps; c++)
        for (size_t k = 1, len = t->start[c + 1] - t->start[c]; k <= METRIC_MAX_N; k++) total += len >= k ? len + 1 - k : 0;
    int rc = ngram_map_reserve(df, total, e);
    for (size_t i = 0; i < n && !rc; i++)
        for (size_t c = n + t->ref_start[i]; c < n + t->ref_start[i + 1] && !rc; c++)
            for (int k = 1; k <= METRIC_MAX_N && !rc; k++) {
                const uint32_t *ids = t->ids + t->start[c];
                size_t len = t->start[c + 1] - t->start[c];
                for (size_t p = 0; p + (size_t)k <= len; p++) ngram_map_prefetch(df, ngram_key_hash(ngram_key(&ids[p], k)));
                for (size_t p = 0; p + (size_t)k <= len && !rc; p++) {
                    ngram_entry_t *g;
                    ngram_key_t key = ngram_key(&ids[p], k);
                    rc = ngram_map_get(df, key, k, ngram_key_hash(key), &g, e);
                    if (!rc && g->tag != (uint32_t)i) g->tag = (uint32_t)i, g->value += 1;
                }
            }
    return rc;
}

int cider_d_score(const metric_item_t *items, size_t n, double *mean, double *per_image, err_t *e)
{
    if (n >= UINT32_MAX) return err_set(e, ERR_LIMIT, "%zu images: CIDEr-D takes fewer than 2^32", n);
    cider_text_t t = {0};
    ngram_map_t df, cm, rm;
    ngram_map_init(&df);
    ngram_map_init(&cm);
    ngram_map_init(&rm);
    int rc = cider_number(items, n, &t, e);
    if (!rc) rc = cider_df(&t, n, &df, e);
    double log_n = log((double)n), sum = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        double cnorm[4], rnorm[4], clen, rlen, score[4] = {0};
        rc = caption_vec(&cm, t.ids + t.start[i], t.start[i + 1] - t.start[i], &df, log_n, cnorm, &clen, e);
        for (size_t c = n + t.ref_start[i]; c < n + t.ref_start[i + 1] && !rc; c++) {
            rc = caption_vec(&rm, t.ids + t.start[c], t.start[c + 1] - t.start[c], &df, log_n, rnorm, &rlen, e);
            if (rc) break;
            double val[4] = {0};
            for (size_t s = 0; s < rm.cap; s++) {
                const ngram_entry_t *g = &rm.slot[s];
                if (!g->n) continue;
                const ngram_entry_t *cg = ngram_map_find(&cm, g->key, ngram_key_hash(g->key));
                if (cg) val[g->n - 1] += (cg->value < g->value ? cg->value : g->value) * g->value;
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
    cider_text_free(&t);
    return rc;
}
