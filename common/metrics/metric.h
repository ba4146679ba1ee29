/* The input every caption metric shares, and the n-gram bookkeeping of
 * BLEU and CIDEr.
 *
 * An evaluated set is one metric_item_t per image: the candidate and the
 * references, already through the evaluation tokenizer (common/text/ptb.h),
 * i.e. lower-case words separated by single spaces. Metrics split them the
 * way the COCO toolkit's scorers do: BLEU and CIDEr with Python's split()
 * (runs of whitespace, no empty words), ROUGE-L with split(" ") (every
 * space separates, so "" is one empty word).
 *
 * An ngram_map_t counts n-grams (n <= METRIC_MAX_N) of split() words; keys
 * point into the caller's words, which must outlive the map. */
#ifndef CLIPCAP_METRIC_H
#define CLIPCAP_METRIC_H

#include <stddef.h>
#include <stdint.h>
#include "core/log.h"

#define METRIC_MAX_N 4

typedef struct {
    const char *cand;
    const char *const *refs;
    size_t n_refs;
} metric_item_t;

typedef struct {
    const char *p;
    uint32_t len;
    uint64_t h;
} metric_word_t;

typedef struct {
    metric_word_t *w;
    size_t n, cap;
} metric_words_t;

/* Python's s.split() into *out (reused; grown with realloc). */
int metric_split(const char *s, metric_words_t *out, err_t *e);
/* Python's s.split(" ") into *out. */
int metric_split_space(const char *s, metric_words_t *out, err_t *e);
int metric_word_eq(const metric_word_t *a, const metric_word_t *b);
/* w[0..n) == v[0..n) */
int metric_ngram_eq(const metric_word_t *w, const metric_word_t *v, int n);

typedef struct {
    const metric_word_t *w; /* first word; NULL marks a free slot */
    uint64_t h;
    int n;
    double value;           /* a count or a weight, the user's choice */
    size_t tag;             /* free for the user (CIDEr: last image counted) */
} ngram_entry_t;

typedef struct {
    ngram_entry_t *slot;
    size_t cap, count;
} ngram_map_t;

void ngram_map_init(ngram_map_t *m);
void ngram_map_free(ngram_map_t *m);
void ngram_map_clear(ngram_map_t *m);
uint64_t ngram_hash(const metric_word_t *w, int n);
/* The entry of w[0..n), created with value 0 and tag SIZE_MAX if absent. */
int ngram_map_get(ngram_map_t *m, const metric_word_t *w, int n, ngram_entry_t **out, err_t *e);
/* The entry of w[0..n) or NULL. */
const ngram_entry_t *ngram_map_find(const ngram_map_t *m, const metric_word_t *w, int n);

#endif
