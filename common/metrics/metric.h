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
 * A metric_vocab_t numbers distinct words (its keys point into the
 * caller's strings, which must outlive it). An ngram_map_t maps n-grams
 * (n <= METRIC_MAX_N) of word numbers, held inline in the entry, to a
 * value: a look-up touches one slot and no caption text, which matters
 * when the map (CIDEr's document frequencies) is far larger than the
 * caches. */
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
    metric_word_t *slot; /* p == NULL marks a free slot */
    uint32_t *id;        /* id[s]: the number of slot s's word */
    size_t cap, count;
} metric_vocab_t;

void metric_vocab_init(metric_vocab_t *v);
void metric_vocab_free(metric_vocab_t *v);
/* The number of w (0, 1, ... in order of first appearance). */
int metric_vocab_id(metric_vocab_t *v, const metric_word_t *w, uint32_t *id, err_t *e);

/* Up to METRIC_MAX_N word numbers; unused places hold UINT32_MAX. */
typedef struct {
    uint64_t a, b;
} ngram_key_t;

typedef struct {
    ngram_key_t key;
    double value; /* a count or a weight, the user's choice */
    uint32_t tag; /* free for the user (CIDEr: last image counted) */
    uint32_t n;   /* words in the n-gram; 0 marks a free slot */
} ngram_entry_t;

typedef struct {
    ngram_entry_t *slot;
    size_t cap, count;
} ngram_map_t;

ngram_key_t ngram_key(const uint32_t *ids, int n);
uint64_t ngram_key_hash(ngram_key_t k);
void ngram_map_init(ngram_map_t *m);
void ngram_map_free(ngram_map_t *m);
void ngram_map_clear(ngram_map_t *m);
/* The entry of the n-gram, created with value 0 and tag UINT32_MAX if
 * absent. h is ngram_key_hash(k). */
int ngram_map_get(ngram_map_t *m, ngram_key_t k, int n, uint64_t h, ngram_entry_t **out, err_t *e);
/* The entry or NULL. */
const ngram_entry_t *ngram_map_find(const ngram_map_t *m, ngram_key_t k, uint64_t h);
/* Room for count entries without growing (a large map is then allocated
 * once instead of rehashed while it fills). */
int ngram_map_reserve(ngram_map_t *m, size_t count, err_t *e);
/* Start loading the slot where an n-gram of hash h would be: independent
 * look-ups into a map larger than the caches overlap their memory waits. */
void ngram_map_prefetch(const ngram_map_t *m, uint64_t h);

#endif
