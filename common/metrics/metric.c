#include "metrics/metric.h"

#include "core/fsutil.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

static int words_push(metric_words_t *out, const char *p, size_t len, err_t *e)
{
    if (out->n == out->cap) {
        size_t cap = out->cap ? out->cap * 2 : 32;
        metric_word_t *w = realloc(out->w, cap * sizeof *w);
        if (!w) return err_set(e, ERR_NOMEM, "out of memory for %zu words", cap);
        out->w = w;
        out->cap = cap;
    }
    out->w[out->n++] = (metric_word_t){p, (uint32_t)len, hash64(p, len)};
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

int metric_word_eq(const metric_word_t *a, const metric_word_t *b)
{
    return a->h == b->h && a->len == b->len && !memcmp(a->p, b->p, a->len);
}

int metric_ngram_eq(const metric_word_t *w, const metric_word_t *v, int n)
{
    for (int i = 0; i < n; i++)
        if (!metric_word_eq(&w[i], &v[i])) return 0;
    return 1;
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

ngram_key_t ngram_key(const uint32_t *ids, int n)
{
    uint32_t k[4] = {UINT32_MAX, UINT32_MAX, UINT32_MAX, UINT32_MAX};
    for (int i = 0; i < n; i++) k[i] = ids[i];
    return (ngram_key_t){(uint64_t)k[0] | (uint64_t)k[1] << 32, (uint64_t)k[2] | (uint64_t)k[3] << 32};
}

/* splitmix64's finalizer over both halves */
uint64_t ngram_key_hash(ngram_key_t k)
{
    uint64_t h = k.a * 0x9E3779B97F4A7C15ull ^ (k.b + 0x632BE59BD9B4E019ull) * 0xBF58476D1CE4E5B9ull;
    h ^= h >> 31;
    h *= 0x94D049BB133111EBull;
    return h ^ (h >> 29);
}

static int key_eq(ngram_key_t x, ngram_key_t y)
{
    return x.a == y.a && x.b == y.b;
}

void ngram_map_init(ngram_map_t *m)
{
    memset(m, 0, sizeof *m);
}

void ngram_map_free(ngram_map_t *m)
{
    free(m->slot);
    memset(m, 0, sizeof *m);
}

void ngram_map_clear(ngram_map_t *m)
{
    if (m->slot) memset(m->slot, 0, m->cap * sizeof *m->slot);
    m->count = 0;
}

static ngram_entry_t *probe(const ngram_map_t *m, ngram_key_t k, uint64_t h)
{
    size_t i = (size_t)h & (m->cap - 1);
    while (m->slot[i].n && !key_eq(m->slot[i].key, k)) i = (i + 1) & (m->cap - 1);
    return &m->slot[i];
}

/* Zeroed slots; a table of megabytes on huge pages where the kernel
 * allows it: random look-ups into it would otherwise miss the TLB almost
 * every time. */
static ngram_entry_t *alloc_slots(size_t cap)
{
    size_t bytes = cap * sizeof(ngram_entry_t), huge = (size_t)2 << 20;
    if (bytes < huge) return calloc(cap, sizeof(ngram_entry_t));
    void *p = aligned_alloc(huge, (bytes + huge - 1) / huge * huge);
    if (!p) return NULL;
    (void)madvise(p, bytes, MADV_HUGEPAGE); /* advice only: without it the table works, slower */
    return memset(p, 0, bytes);
}

static int grow_to(ngram_map_t *m, size_t cap, err_t *e)
{
    ngram_entry_t *old = m->slot, *slot = alloc_slots(cap);
    if (!slot) return err_set(e, ERR_NOMEM, "out of memory for %zu n-grams", cap);
    size_t old_cap = m->cap;
    m->slot = slot;
    m->cap = cap;
    for (size_t i = 0; i < old_cap; i++)
        if (old[i].n) *probe(m, old[i].key, ngram_key_hash(old[i].key)) = old[i];
    free(old);
    return 0;
}

int ngram_map_reserve(ngram_map_t *m, size_t count, err_t *e)
{
    size_t cap = m->cap ? m->cap : 256;
    while (cap < 2 * (count + 1)) cap *= 2;
    return cap > m->cap ? grow_to(m, cap, e) : 0;
}

void ngram_map_prefetch(const ngram_map_t *m, uint64_t h)
{
    if (m->cap) __builtin_prefetch(&m->slot[(size_t)h & (m->cap - 1)]);
}

int ngram_map_get(ngram_map_t *m, ngram_key_t k, int n, uint64_t h, ngram_entry_t **out, err_t *e)
{
    if (2 * (m->count + 1) > m->cap) {
        int rc = grow_to(m, m->cap ? m->cap * 2 : 256, e);
        if (rc) return rc;
    }
    ngram_entry_t *s = probe(m, k, h);
    if (!s->n) {
        *s = (ngram_entry_t){k, 0.0, UINT32_MAX, (uint32_t)n};
        m->count++;
    }
    *out = s;
    return 0;
}

const ngram_entry_t *ngram_map_find(const ngram_map_t *m, ngram_key_t k, uint64_t h)
{
    if (!m->cap) return NULL;
    const ngram_entry_t *s = probe(m, k, h);
    return s->n ? s : NULL;
}
