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
 * caller's strings, which must outlive it). metric_grams_t numbers the
 * n-grams (n <= METRIC_MAX_N) of every caption of a set once, so that BLEU
 * and CIDEr count, clip and weight plain integers; a metric_tf_t holds one
 * caption's distinct n-grams with their counts, in a table small enough to
 * stay in the L1 cache. */
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
/* Inline: ROUGE-L's LCS asks for every pair of words. Words are short, so
 * a byte loop beats a memcmp call. */
static inline int metric_word_eq(const metric_word_t *a, const metric_word_t *b)
{
    if (a->h != b->h || a->len != b->len) return 0;
    for (uint32_t i = 0; i < a->len; i++)
        if (a->p[i] != b->p[i]) return 0;
    return 1;
}

typedef struct {
    metric_word_t *slot; /* p == NULL marks a free slot */
    uint32_t *id;        /* id[s]: the number of slot s's word */
    size_t cap, count;
} metric_vocab_t;

void metric_vocab_init(metric_vocab_t *v);
void metric_vocab_free(metric_vocab_t *v);
/* The number of w (0, 1, ... in order of first appearance). */
int metric_vocab_id(metric_vocab_t *v, const metric_word_t *w, uint32_t *id, err_t *e);

/* Every caption of a set as n-gram numbers. Captions are numbered image by
 * image: image i's candidate is caption first[i], its references follow up
 * to first[i + 1]. Caption c has len[c] words (Python's split()) and its
 * n-grams in gram[start[c] .. start[c + 1]): every unigram in order, then
 * every bigram, trigram and 4-gram. Equal n-grams have equal numbers; a
 * number holds n and a dense index < n_distinct (over all n), for arrays
 * indexed by n-gram. */
typedef struct {
    uint32_t *gram, *len;
    size_t *start, *first;
    size_t n_items, n_caps, n_distinct;
} metric_grams_t;

#define METRIC_GRAM_N(g) ((int)((g) >> 30) + 1)
#define METRIC_GRAM_INDEX(g) ((g) & 0x3FFFFFFFu)

/* Every item needs >= 1 reference (ERR_ARG naming the image). */
int metric_grams_build(metric_grams_t *g, const metric_item_t *items, size_t n, err_t *e);
void metric_grams_free(metric_grams_t *g);

/* metric_tf_fill: the distinct n-grams of grams[0..n) with their counts;
 * order[0..n_distinct) lists their slots in order of first appearance.
 * aux and w are the caller's (zeroed by fill). A table is reused from
 * caption to caption (one per thread); a slot belongs to the current fill
 * when its stamp is the table's. */
typedef struct {
    uint32_t gram, count, stamp, aux;
    double w;
} metric_tf_slot_t;

typedef struct {
    metric_tf_slot_t *slot;
    uint32_t *order;
    size_t cap, n_distinct;
    uint32_t stamp;
    int bits;
} metric_tf_t;

int metric_tf_fill(metric_tf_t *t, const uint32_t *grams, size_t n, err_t *e);
static inline size_t metric_tf_home(const metric_tf_t *t, uint32_t gram)
{
    return (size_t)((gram * 0x9E3779B1u) >> (32 - t->bits));
}

/* The slot of gram in the current fill, or NULL. Inline: BLEU and CIDEr-D
 * look up every distinct n-gram of every reference. */
static inline metric_tf_slot_t *metric_tf_find(const metric_tf_t *t, uint32_t gram)
{
    if (!t->slot) return NULL;
    for (size_t s = metric_tf_home(t, gram);; s = (s + 1) & (t->cap - 1)) {
        metric_tf_slot_t *x = &t->slot[s];
        if (x->stamp != t->stamp) return NULL;
        if (x->gram == gram) return x;
    }
}
void metric_tf_free(metric_tf_t *t);

#endif
