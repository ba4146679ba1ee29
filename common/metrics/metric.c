#include "metrics/metric.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* splitmix64's finalizer */
static uint64_t key_hash(uint64_t k)
{
    k ^= k >> 30;
    k *= 0xBF58476D1CE4E5B9ull;
    k ^= k >> 27;
    k *= 0x94D049BB133111EBull;
    return k ^ (k >> 31);
}

/* Words are a few bytes: mixed 8 at a time, inline, where hash64 is a
 * library call per word. */
static uint64_t word_hash(const char *p, size_t len)
{
    uint64_t h = 0x9E3779B97F4A7C15ull ^ len, x;
    for (; len >= 8; p += 8, len -= 8) {
        memcpy(&x, p, 8);
        h = key_hash(h ^ x);
    }
    x = 0;
    for (size_t i = 0; i < len; i++) x |= (uint64_t)(unsigned char)p[i] << 8 * i;
    return key_hash(h ^ x);
}

static int words_push(metric_words_t *out, const char *p, size_t len, err_t *e)
{
    if (out->n == out->cap) {
        size_t cap = out->cap ? out->cap * 2 : 32;
        metric_word_t *w = realloc(out->w, cap * sizeof *w);
        if (!w) return err_set(e, ERR_NOMEM, "out of memory for %zu words", cap);
        out->w = w;
        out->cap = cap;
    }
    out->w[out->n++] = (metric_word_t){p, (uint32_t)len, word_hash(p, len)};
    return 0;
}

/* Python's str.split() whitespace for the ASCII the tokenizer emits. */
static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

int metric_split(const char *s, metric_words_t *out, err_t *e)
{
    out->n = 0;
    for (const char *p = s; *p;) {
        while (*p && is_space(*p)) p++;
        if (!*p) break;
        const char *start = p;
        while (*p && !is_space(*p)) p++;
        int rc = words_push(out, start, (size_t)(p - start), e);
        if (rc) return rc;
    }
    return 0;
}

int metric_split_space(const char *s, metric_words_t *out, err_t *e)
{
    out->n = 0;
    for (const char *p = s;; p++) {
        const char *sp = strchr(p, ' ');
        size_t len = sp ? (size_t)(sp - p) : strlen(p);
        int rc = words_push(out, p, len, e);
        if (rc) return rc;
        if (!sp) return 0;
        p = sp;
    }
}

void metric_vocab_init(metric_vocab_t *v)
{
    memset(v, 0, sizeof *v);
}

void metric_vocab_free(metric_vocab_t *v)
{
    free(v->slot);
    free(v->id);
    memset(v, 0, sizeof *v);
}

static size_t vocab_probe(const metric_vocab_t *v, const metric_word_t *w)
{
    size_t i = (size_t)w->h & (v->cap - 1);
    while (v->slot[i].p && !metric_word_eq(&v->slot[i], w)) i = (i + 1) & (v->cap - 1);
    return i;
}

int metric_vocab_id(metric_vocab_t *v, const metric_word_t *w, uint32_t *id, err_t *e)
{
    if (2 * (v->count + 1) > v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 1024, old_cap = v->cap;
        metric_word_t *slot = calloc(cap, sizeof *slot), *old = v->slot;
        uint32_t *ids = malloc(cap * sizeof *ids), *old_ids = v->id;
        if (!slot || !ids || v->count >= UINT32_MAX - 1) {
            free(slot);
            free(ids);
            return err_set(e, ERR_NOMEM, "out of memory for %zu distinct words", v->count + 1);
        }
        v->slot = slot;
        v->id = ids;
        v->cap = cap;
        for (size_t i = 0; i < old_cap; i++)
            if (old[i].p) {
                size_t s = vocab_probe(v, &old[i]);
                v->slot[s] = old[i];
                v->id[s] = old_ids[i];
            }
        free(old);
        free(old_ids);
    }
    size_t s = vocab_probe(v, w);
    if (!v->slot[s].p) {
        v->slot[s] = *w;
        v->id[s] = (uint32_t)v->count++;
    }
    *id = v->id[s];
    return 0;
}

/* ---- n-gram numbers ---- */

/* A unigram's number is found by its word's number (uni[word], + 1; 0:
 * none yet). A longer n-gram is (number of its first n-1 words' n-gram,
 * last word), the two halves of the key of a slot of 12 bytes that also
 * holds the n-gram's number + 1 (0: empty): a look-up reads one slot, no
 * second array, and misses the cache once. */
typedef struct {
    uint32_t prev, word, gram1;
} gram_slot_t;

typedef struct {
    gram_slot_t *slot;
    size_t cap, count, bytes;
    uint32_t *uni;
    size_t n_uni;
} gram_table_t;

/* Room in uni for word numbers < words. */
static int uni_reserve(gram_table_t *t, size_t words, err_t *e)
{
    if (words <= t->n_uni) return 0;
    size_t n = t->n_uni ? t->n_uni : 1024;
    while (n < words) n *= 2;
    uint32_t *u = realloc(t->uni, n * sizeof *u);
    if (!u) return err_set(e, ERR_NOMEM, "out of memory for %zu distinct words", words);
    memset(u + t->n_uni, 0, (n - t->n_uni) * sizeof *u);
    t->uni = u;
    t->n_uni = n;
    return 0;
}

/* A new n-gram's number + 1. */
static int gram_new(gram_table_t *t, size_t k, uint32_t *gram1, err_t *e)
{
    if (t->count > METRIC_GRAM_INDEX(UINT32_MAX) - 1) return err_set(e, ERR_LIMIT, "more than 2^30 distinct n-grams");
    *gram1 = ((uint32_t)(k - 1) << 30 | (uint32_t)t->count++) + 1;
    return 0;
}

/* Zeroed slots straight from the kernel (no second pass to clear them), on
 * huge pages where it allows: random look-ups into megabytes would
 * otherwise miss the TLB almost every time. */
static gram_slot_t *map_slots(size_t cap, size_t *bytes)
{
    size_t huge = (size_t)2 << 20;
    *bytes = (cap * sizeof(gram_slot_t) + huge - 1) / huge * huge;
    void *p = mmap(NULL, *bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return NULL;
    (void)madvise(p, *bytes, MADV_HUGEPAGE); /* advice only: without it the table works, slower */
    return p;
}

static uint64_t gram_hash(uint32_t prev, uint32_t word)
{
    return key_hash((uint64_t)prev << 32 | word);
}

/* A slot may straddle two cache lines: both are fetched. */
static void gram_prefetch(const gram_table_t *t, uint64_t h)
{
    const gram_slot_t *s = &t->slot[(size_t)h & (t->cap - 1)];
    __builtin_prefetch(s);
    __builtin_prefetch(&s->gram1);
}

static gram_slot_t *gram_probe(const gram_table_t *t, uint32_t prev, uint32_t word, uint64_t h)
{
    for (size_t i = (size_t)h & (t->cap - 1);; i = (i + 1) & (t->cap - 1)) {
        gram_slot_t *s = &t->slot[i];
        if (!s->gram1 || (s->word == word && s->prev == prev)) return s;
    }
}

/* Room for `more` new n-grams at a load of at most 3/4. */
static int gram_reserve(gram_table_t *t, size_t more, err_t *e)
{
    if (4 * (t->count + more) <= 3 * t->cap) return 0;
    size_t cap = t->cap ? t->cap : (size_t)1 << 12, bytes;
    while (3 * cap < 4 * (t->count + more)) cap *= 2;
    gram_slot_t *slot = map_slots(cap, &bytes);
    if (!slot) return err_set(e, ERR_NOMEM, "out of memory for %zu n-grams", cap / 4 * 3);
    gram_table_t old = *t;
    t->slot = slot;
    t->cap = cap;
    t->bytes = bytes;
    for (size_t i = 0; i < old.cap; i++)
        if (old.slot[i].gram1) {
            const gram_slot_t *o = &old.slot[i];
            *gram_probe(t, o->prev, o->word, gram_hash(o->prev, o->word)) = *o;
        }
    if (old.slot) munmap(old.slot, old.bytes);
    return 0;
}

/* The n-grams of image i's captions (their words ids[], caption after
 * caption) into g->gram, n by n over all of them: the look-ups of one n
 * are independent, so their slots are prefetched together and the memory
 * waits of a table larger than the caches overlap (a caption alone has too
 * few). */
static int grams_of_image(metric_grams_t *g, size_t i, gram_table_t *t, const uint32_t *ids, uint32_t *prev,
                          uint64_t *hash, err_t *e)
{
    size_t c0 = g->first[i], c1 = g->first[i + 1], words = 0;
    for (size_t c = c0; c < c1; c++) words += g->len[c];
    int rc = gram_reserve(t, METRIC_MAX_N * words, e);
    for (size_t q = 0; q < words && !rc; q++) {
        uint32_t *u = &t->uni[ids[q]];
        if (!*u) rc = gram_new(t, 1, u, e);
        prev[q] = *u - 1;
    }
    for (size_t c = c0, q = 0; c < c1 && !rc; q += g->len[c++])
        memcpy(g->gram + g->start[c], prev + q, g->len[c] * sizeof *prev);
    for (size_t k = 2; k <= METRIC_MAX_N && !rc; k++) {
        size_t q = 0;
        for (size_t c = c0; c < c1; q += g->len[c++])
            for (size_t p = 0; p + k <= g->len[c]; p++) {
                hash[q + p] = gram_hash(prev[q + p], ids[q + p + k - 1]);
                gram_prefetch(t, hash[q + p]);
            }
        q = 0;
        for (size_t c = c0; c < c1 && !rc; q += g->len[c++]) {
            size_t len = g->len[c];
            /* after the caption's 1..k-1-grams */
            uint32_t *out = g->gram + g->start[c] + (k - 1) * len - (k - 1) * (k - 2) / 2;
            for (size_t p = 0; p + k <= len && !rc; p++) {
                uint32_t word = ids[q + p + k - 1];
                gram_slot_t *s = gram_probe(t, prev[q + p], word, hash[q + p]);
                if (!s->gram1 && !(rc = gram_new(t, k, &s->gram1, e))) s->prev = prev[q + p], s->word = word;
                prev[q + p] = out[p] = s->gram1 - 1;
            }
        }
    }
    return rc;
}

/* Python's len(s.split()) */
static size_t count_words(const char *s)
{
    size_t n = 0;
    for (int in = 0; *s; s++) {
        int sp = *s == ' ' || *s == '\t' || *s == '\n' || *s == '\r' || *s == '\v' || *s == '\f';
        n += !sp && !in;
        in = !sp;
    }
    return n;
}

void metric_grams_free(metric_grams_t *g)
{
    free(g->gram);
    free(g->len);
    free(g->start);
    free(g->first);
    memset(g, 0, sizeof *g);
}

/* Two passes: word counts size every array exactly (and the table for half
 * the n-grams being distinct), then the n-grams are numbered. */
int metric_grams_build(metric_grams_t *g, const metric_item_t *items, size_t n, err_t *e)
{
    memset(g, 0, sizeof *g);
    size_t caps = 0;
    for (size_t i = 0; i < n; i++) {
        if (!items[i].n_refs) return err_set(e, ERR_ARG, "image %zu: no reference captions", i);
        caps += 1 + items[i].n_refs;
    }
    g->n_items = n;
    g->n_caps = caps;
    g->first = malloc((n + 1) * sizeof *g->first);
    g->start = malloc((caps + 1) * sizeof *g->start);
    g->len = malloc((caps ? caps : 1) * sizeof *g->len);
    int rc = g->first && g->start && g->len ? 0 : err_set(e, ERR_NOMEM, "out of memory for %zu captions", caps);
    size_t longest = 0, c = 0; /* longest: the most words of an image */
    for (size_t i = 0; i < n && !rc; i++) {
        g->first[i] = c;
        size_t words = 0;
        for (size_t r = 0; r <= items[i].n_refs; r++, c++) {
            size_t len = count_words(r ? items[i].refs[r - 1] : items[i].cand), grams = 0;
            if (len >= UINT32_MAX) rc = err_set(e, ERR_LIMIT, "image %zu: a caption of %zu words", i, len);
            for (size_t k = 1; k <= METRIC_MAX_N && k <= len; k++) grams += len - k + 1;
            g->len[c] = (uint32_t)len;
            g->start[c + 1] = (c ? g->start[c] : 0) + grams;
            words += len;
        }
        if (words > longest) longest = words;
    }
    if (rc) {
        metric_grams_free(g);
        return rc;
    }
    g->first[n] = caps;
    g->start[0] = 0;
    metric_vocab_t vocab;
    metric_vocab_init(&vocab);
    metric_words_t w = {0};
    gram_table_t t = {0};
    g->gram = malloc((g->start[caps] ? g->start[caps] : 1) * sizeof *g->gram);
    uint32_t *ids = malloc((longest + 1) * sizeof *ids), *prev = malloc((longest + 1) * sizeof *prev);
    uint64_t *hash = malloc((longest + 1) * sizeof *hash);
    if (!g->gram || !ids || !prev || !hash) rc = err_set(e, ERR_NOMEM, "out of memory for %zu n-grams", g->start[caps]);
    if (!rc) rc = gram_reserve(&t, g->start[caps] / 2, e);
    for (size_t i = 0; i < n && !rc; i++) {
        size_t q = 0;
        for (size_t r = 0; r <= items[i].n_refs && !rc; r++) {
            rc = metric_split(r ? items[i].refs[r - 1] : items[i].cand, &w, e);
            for (size_t k = 0; k < w.n && !rc; k++) rc = metric_vocab_id(&vocab, &w.w[k], &ids[q++], e);
        }
        if (!rc) rc = uni_reserve(&t, vocab.count, e);
        if (!rc) rc = grams_of_image(g, i, &t, ids, prev, hash, e);
    }
    g->n_distinct = t.count;
    free(ids), free(prev), free(hash);
    if (t.slot) munmap(t.slot, t.bytes);
    free(t.uni);
    free(w.w);
    metric_vocab_free(&vocab);
    if (rc) metric_grams_free(g);
    return rc;
}

/* ---- one caption's term frequencies ---- */

void metric_tf_free(metric_tf_t *t)
{
    free(t->slot);
    free(t->order);
    memset(t, 0, sizeof *t);
}

int metric_tf_fill(metric_tf_t *t, const uint32_t *grams, size_t n, err_t *e)
{
    if (2 * n > t->cap || !t->slot) {
        int bits = 6;
        while (((size_t)1 << bits) < 2 * n) bits++;
        if (bits > 31) return err_set(e, ERR_LIMIT, "a caption of %zu n-grams", n);
        size_t cap = (size_t)1 << bits;
        metric_tf_slot_t *slot = calloc(cap, sizeof *slot);
        uint32_t *order = malloc(cap * sizeof *order);
        if (!slot || !order) {
            free(slot), free(order);
            return err_set(e, ERR_NOMEM, "out of memory for a caption of %zu n-grams", n);
        }
        free(t->slot), free(t->order);
        *t = (metric_tf_t){slot, order, cap, 0, 0, bits};
    }
    if (++t->stamp == 0) { /* wrapped: a stale slot could look current */
        for (size_t s = 0; s < t->cap; s++) t->slot[s].stamp = 0;
        t->stamp = 1;
    }
    t->n_distinct = 0;
    for (size_t i = 0; i < n; i++) {
        size_t s = metric_tf_home(t, grams[i]);
        while (t->slot[s].stamp == t->stamp && t->slot[s].gram != grams[i]) s = (s + 1) & (t->cap - 1);
        metric_tf_slot_t *x = &t->slot[s];
        if (x->stamp != t->stamp) {
            *x = (metric_tf_slot_t){grams[i], 0, t->stamp, 0, 0.0};
            t->order[t->n_distinct++] = (uint32_t)s;
        }
        x->count++;
    }
    return 0;
}
