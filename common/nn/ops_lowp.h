/* Backend-neutral bookkeeping behind ops_ext.h's precision API: the
 * registered weight ranges, their compute-precision copies ("shadows") and
 * which parts of each copy are stale. Each backend embeds one ops_lowp in
 * its context, allocates and fills the shadows itself, and calls
 * ops_lowp_touch from every op that can write a weight. */
#ifndef CLIPCAP_OPS_LOWP_H
#define CLIPCAP_OPS_LOWP_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include "nn/ops_ext.h"

#define OPS_LOWP_RANGES 16

typedef struct ops_lowp_range {
    const float *base;
    size_t n;
    void *shadow;               /* n elements in the compute type, backend memory */
    size_t stale_lo, stale_hi;  /* element offsets [lo, hi) not yet converted */
    uint64_t gen;               /* bumped by every write: a backend's copies made
                                   from the shadow (a packed layout) compare it */
} ops_lowp_range;

typedef struct ops_lowp {
    enum ops_precision prec;
    int native;                 /* the backend computes prec itself (else: emulated) */
    char impl[96];              /* ops_precision_impl's answer */
    int nranges;
    ops_lowp_range r[OPS_LOWP_RANGES];
} ops_lowp;

/* The range holding all of [p, p + n), or NULL. */
ops_lowp_range *ops_lowp_find(ops_lowp *l, const float *p, size_t n);
/* [p, p + n) was written: mark what it overlaps stale, bump its gen. */
void ops_lowp_touch(ops_lowp *l, const float *p, size_t n);
/* A new range, whole stale, shadow to be set by the backend. NULL + error
 * when full or overlapping another. */
ops_lowp_range *ops_lowp_add(ops_lowp *l, const float *p, size_t n, err_t *e);
/* The registered copy of [p, p + n) with elements of es bytes, after
 * convert(user, dst, src, count) has brought its stale part up to date;
 * NULL when no range holds [p, p + n). */
const void *ops_lowp_copy_of(ops_lowp *l, const float *p, size_t n, size_t es,
                             void (*convert)(void *user, void *dst, const float *src, size_t count), void *user);
/* Elements a GEMM operand of rows x cols (before op()) with leading
 * dimension ld spans; trans: stored transposed. */
static inline size_t ops_lowp_extent(int trans, int rows, int cols, int ld)
{
    return trans ? (size_t)(cols - 1) * ld + rows : (size_t)(rows - 1) * ld + cols;
}
/* Remove the range starting at p; returns its shadow (for the backend to
 * free) or NULL when p starts none. */
void *ops_lowp_remove(ops_lowp *l, const void *p);

/* Round-to-nearest-even float32 -> bfloat16 bits (NaN stays NaN), as
 * torch's .to(torch.bfloat16). */
/* memcpy, not a union: GCC's vectoriser gives up on a union's load. */
static inline uint16_t ops_bf16_bits(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    const uint32_t nan = (u >> 16) | 0x40u, rne = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
    return (uint16_t)((u & 0x7fffffffu) > 0x7f800000u ? nan : rne);
}
static inline float ops_bf16_float(uint16_t b)
{
    const uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

#endif
