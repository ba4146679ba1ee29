#include "metrics/metric.h"

#include "core/fsutil.h"

#include <stdlib.h>
#include <string.h>

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

uint64_t ngram_hash(const metric_word_t *w, int n)
{
    uint64_t h = 0x9E3779B97F4A7C15ull * (uint64_t)(n + 1);
    for (int i = 0; i < n; i++) h = (h ^ w[i].h) * 0xBF58476D1CE4E5B9ull + (uint64_t)i;
    return h ^ (h >> 31);
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

static ngram_entry_t *probe(const ngram_map_t *m, const metric_word_t *w, int n, uint64_t h)
{
    size_t i = (size_t)h & (m->cap - 1);
    for (;;) {
        ngram_entry_t *s = &m->slot[i];
        if (!s->w || (s->h == h && s->n == n && metric_ngram_eq(s->w, w, n))) return s;
        i = (i + 1) & (m->cap - 1);
    }
}

static int grow(ngram_map_t *m, err_t *e)
{
    size_t cap = m->cap ? m->cap * 2 : 256;
    ngram_entry_t *old = m->slot, *slot = calloc(cap, sizeof *slot);
    if (!slot) return err_set(e, ERR_NOMEM, "out of memory for %zu n-grams", cap);
    size_t old_cap = m->cap;
    m->slot = slot;
    m->cap = cap;
    for (size_t i = 0; i < old_cap; i++)
        if (old[i].w) *probe(m, old[i].w, old[i].n, old[i].h) = old[i];
    free(old);
    return 0;
}

int ngram_map_get(ngram_map_t *m, const metric_word_t *w, int n, ngram_entry_t **out, err_t *e)
{
    if (2 * (m->count + 1) > m->cap) {
        int rc = grow(m, e);
        if (rc) return rc;
    }
    uint64_t h = ngram_hash(w, n);
    ngram_entry_t *s = probe(m, w, n, h);
    if (!s->w) {
        *s = (ngram_entry_t){w, h, n, 0.0, SIZE_MAX};
        m->count++;
    }
    *out = s;
    return 0;
}

const ngram_entry_t *ngram_map_find(const ngram_map_t *m, const metric_word_t *w, int n)
{
    if (!m->cap) return NULL;
    const ngram_entry_t *s = probe(m, w, n, ngram_hash(w, n));
    return s->w ? s : NULL;
}
