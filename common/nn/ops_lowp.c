/* Precision names and the weight-range registry (ops_lowp.h). */
#include "nn/ops_lowp.h"

#include <string.h>

static const char *const names[] = {"fp32", "tf32", "bf16", "fp16"};

int ops_precision_parse(const char *name, enum ops_precision *p, err_t *e)
{
    for (int i = 0; i < 4; i++)
        if (name && !strcmp(name, names[i])) {
            *p = (enum ops_precision)i;
            return 0;
        }
    return err_set(e, ERR_ARG, "--precision must be fp32, tf32, bf16 or fp16 (got '%s')", name ? name : "");
}

const char *ops_precision_name(enum ops_precision p)
{
    return (unsigned)p < 4 ? names[p] : "?";
}

ops_lowp_range *ops_lowp_find(ops_lowp *l, const float *p, size_t n)
{
    for (int i = 0; i < l->nranges; i++) {
        ops_lowp_range *r = &l->r[i];
        if (p >= r->base && p + n <= r->base + r->n) return r;
    }
    return NULL;
}

void ops_lowp_touch(ops_lowp *l, const float *p, size_t n)
{
    for (int i = 0; i < l->nranges; i++) {
        ops_lowp_range *r = &l->r[i];
        if (p + n <= r->base || p >= r->base + r->n) continue;
        size_t lo = p > r->base ? (size_t)(p - r->base) : 0;
        size_t hi = p + n < r->base + r->n ? (size_t)(p + n - r->base) : r->n;
        r->gen++;
        /* one interval: its hull, which for the writes models make (a
         * load, one optimiser sweep) is what was written */
        if (r->stale_lo == r->stale_hi) {
            r->stale_lo = lo;
            r->stale_hi = hi;
        } else {
            if (lo < r->stale_lo) r->stale_lo = lo;
            if (hi > r->stale_hi) r->stale_hi = hi;
        }
    }
}

ops_lowp_range *ops_lowp_add(ops_lowp *l, const float *p, size_t n, err_t *e)
{
    if (l->nranges == OPS_LOWP_RANGES) {
        err_set(e, ERR_LIMIT, "ops: more than %d weight ranges registered", OPS_LOWP_RANGES);
        return NULL;
    }
    for (int i = 0; i < l->nranges; i++)
        if (p < l->r[i].base + l->r[i].n && p + n > l->r[i].base) {
            err_set(e, ERR_INTERNAL, "ops: weight range registered twice");
            return NULL;
        }
    ops_lowp_range *r = &l->r[l->nranges++];
    *r = (ops_lowp_range){.base = p, .n = n, .stale_lo = 0, .stale_hi = n};
    return r;
}

const void *ops_lowp_copy_of(ops_lowp *l, const float *p, size_t n, size_t es,
                             void (*convert)(void *user, void *dst, const float *src, size_t count), void *user)
{
    ops_lowp_range *r = ops_lowp_find(l, p, n);
    if (!r) return NULL;
    if (r->stale_lo < r->stale_hi) {
        convert(user, (char *)r->shadow + r->stale_lo * es, r->base + r->stale_lo, r->stale_hi - r->stale_lo);
        r->stale_lo = r->stale_hi = 0;
    }
    return (const char *)r->shadow + (size_t)(p - r->base) * es;
}

void *ops_lowp_remove(ops_lowp *l, const void *p)
{
    for (int i = 0; i < l->nranges; i++)
        if ((const void *)l->r[i].base == p) {
            void *s = l->r[i].shadow;
            l->r[i] = l->r[--l->nranges];
            return s;
        }
    return NULL;
}
