/* The CPU backend's reduced precisions (ops_ext.h): BF16 (and FP16 where
 * the CPU has it) through oneDNN's matmul with float32 accumulation, and an
 * emulation everywhere else that gives the same numbers up to the order of
 * the float32 sums: both operands rounded to the precision and multiplied
 * by the float32 GEMM. A product of two bf16 (8-bit significand) or fp16
 * (11-bit) values is exact in float32, so the emulation differs from a
 * native unit only in how the float32 partial sums are ordered.
 *
 * TF32 is float32 here: a CPU has no TF32 unit, and rounding to 10 bits
 * would only lose accuracy without gaining speed. */
#include "nn/ops_cpu.h"
#include "core/fsutil.h"
#include "core/target_clones.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef CLIPCAP_HAVE_DNNL
#include <oneapi/dnnl/dnnl.h>

/* Matmul primitives kept per shape. Decoding makes five shapes per batch
 * size it passes through, training and the tower a few dozen in all. */
#define DNNL_MM_CACHE 256

typedef struct dnnl_mm {
    int key[10]; /* M, N, K, ta, tb, lda, ldb, ldc, accumulate, packed weights */
    dnnl_primitive_t prim;
    dnnl_memory_desc_t src, wei, dst;
} dnnl_mm;

/* A weight matrix in the blocked layout a matmul asked for. brgemm
 * multiplies from that layout only: given the plain copy it repacks the
 * whole matrix on every call, which at a decoding step's few rows costs
 * more than the product (a 768 x 50257 LM head per token). */
typedef struct dnnl_pack {
    const float *src; /* the float32 weights it is made from; with K, N, tb, ldb, md the key */
    int K, N, tb, ldb;
    uint64_t gen; /* the range's gen when packed: another one means repack */
    dnnl_memory_desc_t md;
    void *buf;
} dnnl_pack;

typedef struct cpu_dnnl {
    dnnl_engine_t engine;
    dnnl_stream_t stream;
    dnnl_data_type_t dt;
    dnnl_mm mm[DNNL_MM_CACHE];
    int n_mm, next_mm; /* entries used; the next one a full cache replaces */
    dnnl_pack *pack;
    int n_pack, cap_pack;
} cpu_dnnl;
#endif

/* elements converted per thread below which conversion stays on one */
#define CONVERT_PAR_MIN (1 << 16)

static size_t elem_size(const ops_ctx *ctx) { return ctx->lowp.native ? 2 : sizeof(float); }

/* Conversion loops, one per target type so that each vectorises, each
 * with an x86-64-v3 copy. fp16: F16C converts 8 floats per instruction;
 * baseline x86-64 calls a libgcc routine per element, which made fp16
 * training 6x slower than bf16. bf16: the integer rounding runs 8 wide
 * instead of 4 (every weight once per training step, every activation
 * entering a GEMM). */

CLONES_X86_64_V3 static void to_bf16_bits(uint16_t *dst, const float *src, size_t n)
{
#pragma omp simd
    for (size_t i = 0; i < n; i++) dst[i] = ops_bf16_bits(src[i]);
}

CLONES_X86_64_V3 static void to_bf16_float(float *dst, const float *src, size_t n)
{
#pragma omp simd
    for (size_t i = 0; i < n; i++) dst[i] = ops_bf16_float(ops_bf16_bits(src[i]));
}

#ifdef __FLT16_MAX__
CLONES_X86_64_V3 static void to_fp16_bits(uint16_t *dst, const float *src, size_t n)
{
    _Float16 *h = (_Float16 *)dst;
#pragma omp simd
    for (size_t i = 0; i < n; i++) h[i] = (_Float16)src[i];
}

CLONES_X86_64_V3 static void to_fp16_float(float *dst, const float *src, size_t n)
{
#pragma omp simd
    for (size_t i = 0; i < n; i++) dst[i] = (float)(_Float16)src[i];
}
#else
/* Compilers without _Float16 on this target (clang 14 on x86-64, used by
 * the fuzz build): IEEE binary16 with round-to-nearest-even in integer
 * arithmetic, subnormals included, bit for bit what the cast gives. */
static uint16_t fp16_bits_soft(float f)
{
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    uint32_t a = x & 0x7fffffffu;
    if (a >= 0x7f800000u) return sign | (a > 0x7f800000u ? 0x7e00u : 0x7c00u);
    if (a >= 0x477ff000u) return sign | 0x7c00u; /* 65520 and above round to inf */
    if (a <= 0x33000000u) return sign;            /* 2^-25 and below round to zero */
    int e = (int)(a >> 23);
    uint32_t m = (a & 0x7fffffu) | 0x800000u, r, rem, half;
    if (e < 113) { /* a binary16 subnormal: units of 2^-24 */
        int shift = 126 - e;
        r = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
    } else {
        r = ((uint32_t)(e - 112) << 10) | ((m >> 13) & 0x3ffu), rem = m & 0x1fffu, half = 0x1000u;
    }
    if (rem > half || (rem == half && (r & 1))) r++; /* a carry into the exponent is the right result */
    return (uint16_t)(sign | r);
}

static float fp16_float_soft(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu, x;
    if (e == 0) {
        float f = ldexpf((float)m, -24);
        memcpy(&x, &f, sizeof x);
        x |= sign;
    } else if (e == 31) x = sign | 0x7f800000u | (m << 13);
    else x = sign | ((e + 112) << 23) | (m << 13);
    float f;
    memcpy(&f, &x, sizeof f);
    return f;
}

static void to_fp16_bits(uint16_t *dst, const float *src, size_t n)
{
    for (size_t i = 0; i < n; i++) dst[i] = fp16_bits_soft(src[i]);
}

static void to_fp16_float(float *dst, const float *src, size_t n)
{
    for (size_t i = 0; i < n; i++) dst[i] = fp16_float_soft(fp16_bits_soft(src[i]));
}
#endif

/* src -> dst in the compute type: bf16/fp16 bits when native, rounded
 * floats when emulated; one contiguous block per thread. */
static void convert(void *user, void *dst, const float *src, size_t n)
{
    const ops_ctx *ctx = user;
    const int bf16 = ctx->lowp.prec == OPS_BF16, native = ctx->lowp.native;
#pragma omp parallel num_threads(n < CONVERT_PAR_MIN ? 1 : ctx->threads)
    {
        size_t t = (size_t)omp_get_thread_num(), nt = (size_t)omp_get_num_threads();
        size_t lo = n * t / nt, hi = n * (t + 1) / nt;
        if (native && bf16) to_bf16_bits((uint16_t *)dst + lo, src + lo, hi - lo);
        else if (native) to_fp16_bits((uint16_t *)dst + lo, src + lo, hi - lo);
        else if (bf16) to_bf16_float((float *)dst + lo, src + lo, hi - lo);
        else to_fp16_float((float *)dst + lo, src + lo, hi - lo);
    }
}

/* Scratch slot `slot` grown to n elements of the compute type; NULL when
 * it cannot grow. */
static void *scratch(ops_ctx *ctx, int slot, size_t n)
{
    if (n > ctx->scratch_cap[slot]) {
        free(ctx->scratch[slot]);
        ctx->scratch_cap[slot] = 0;
        if (!(ctx->scratch[slot] = mem_alloc_aligned(n * elem_size(ctx)))) return NULL;
        ctx->scratch_cap[slot] = n;
    }
    return ctx->scratch[slot];
}

/* The operand [p, p + n) in the compute type: a registered weight's copy
 * (brought up to date first) or a conversion into scratch slot `slot`.
 * NULL when scratch cannot grow. */
static const void *operand(ops_ctx *ctx, int slot, const float *p, size_t n)
{
    const void *copy = ops_lowp_copy_of(&ctx->lowp, p, n, elem_size(ctx), convert, ctx);
    if (copy) return copy;
    void *s = scratch(ctx, slot, n);
    if (s) convert(ctx, s, p, n);
    return s;
}

#ifdef CLIPCAP_HAVE_DNNL
/* B (K x N, stored transposed when tb) as a plain strided descriptor */
static dnnl_status_t plain_b(dnnl_memory_desc_t *b, int K, int N, int tb, int ldb, dnnl_data_type_t dt)
{
    dnnl_dims_t db = {K, N}, sb = {tb ? 1 : ldb, tb ? ldb : 1};
    return dnnl_memory_desc_init_by_strides(b, 2, db, dt, sb);
}

/* packed: the weights' layout left to oneDNN (format_tag any) */
static dnnl_status_t matmul_pd(cpu_dnnl *d, int M, int N, int K, int ta, int tb, int lda, int ldb, int ldc, int accumulate,
                               int packed, dnnl_primitive_desc_t *pd)
{
    dnnl_memory_desc_t a, b, c;
    dnnl_dims_t da = {M, K}, db = {K, N}, dc = {M, N};
    dnnl_dims_t sa = {ta ? 1 : lda, ta ? lda : 1}, sc = {ldc, 1};
    dnnl_matmul_desc_t md;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t po = NULL;
    dnnl_status_t s;
    if ((s = dnnl_memory_desc_init_by_strides(&a, 2, da, d->dt, sa)) ||
        (s = packed ? dnnl_memory_desc_init_by_tag(&b, 2, db, d->dt, dnnl_format_tag_any) : plain_b(&b, K, N, tb, ldb, d->dt)) ||
        (s = dnnl_memory_desc_init_by_strides(&c, 2, dc, dnnl_f32, sc)) || (s = dnnl_matmul_desc_init(&md, &a, &b, NULL, &c)))
        return s;
    if (accumulate) { /* C += A·B: the sum post-op adds the old C */
        if ((s = dnnl_primitive_attr_create(&attr)) || (s = dnnl_post_ops_create(&po)) ||
            (s = dnnl_post_ops_append_sum(po, 1.0f)) || (s = dnnl_primitive_attr_set_post_ops(attr, po)))
            goto out;
    }
    s = dnnl_primitive_desc_create(pd, &md, attr, d->engine, NULL);
out:
    if (po) dnnl_post_ops_destroy(po);
    if (attr) dnnl_primitive_attr_destroy(attr);
    return s;
}

/* The cached primitive for a shape, created on a miss (a full cache
 * replaces its entries in turn); NULL when oneDNN refuses the shape. */
static dnnl_mm *matmul_get(cpu_dnnl *d, int M, int N, int K, int ta, int tb, int lda, int ldb, int ldc, int accumulate,
                           int packed)
{
    const int key[10] = {M, N, K, ta, tb, lda, ldb, ldc, accumulate, packed};
    for (int i = 0; i < d->n_mm; i++)
        if (!memcmp(d->mm[i].key, key, sizeof key)) return &d->mm[i];
    dnnl_primitive_desc_t pd = NULL;
    dnnl_primitive_t prim = NULL;
    if (matmul_pd(d, M, N, K, ta, tb, lda, ldb, ldc, accumulate, packed, &pd) || dnnl_primitive_create(&prim, pd)) {
        if (pd) dnnl_primitive_desc_destroy(pd);
        return NULL;
    }
    dnnl_mm *m = &d->mm[d->n_mm < DNNL_MM_CACHE ? d->n_mm++ : d->next_mm];
    if (d->n_mm == DNNL_MM_CACHE) d->next_mm = (d->next_mm + 1) % DNNL_MM_CACHE;
    if (m->prim) dnnl_primitive_destroy(m->prim);
    memcpy(m->key, key, sizeof key);
    m->prim = prim;
    m->src = *dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0);
    m->wei = *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    m->dst = *dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);
    dnnl_primitive_desc_destroy(pd);
    return m;
}

/* One reorder of src (in its descriptor) into dst's. */
static dnnl_status_t reorder(cpu_dnnl *d, const dnnl_memory_desc_t *smd, const void *src, const dnnl_memory_desc_t *dmd,
                             void *dst)
{
    dnnl_primitive_desc_t pd = NULL;
    dnnl_primitive_t p = NULL;
    dnnl_memory_t ms = NULL, md = NULL;
    dnnl_status_t s = dnnl_reorder_primitive_desc_create(&pd, smd, d->engine, dmd, d->engine, NULL);
    if (!s) s = dnnl_primitive_create(&p, pd);
    if (!s) s = dnnl_memory_create(&ms, smd, d->engine, (void *)src);
    if (!s) s = dnnl_memory_create(&md, dmd, d->engine, dst);
    if (!s) {
        dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, ms}, {DNNL_ARG_TO, md}};
        s = dnnl_primitive_execute(p, d->stream, 2, args);
        if (!s) s = dnnl_stream_wait(d->stream);
    }
    if (md) dnnl_memory_destroy(md);
    if (ms) dnnl_memory_destroy(ms);
    if (p) dnnl_primitive_destroy(p);
    if (pd) dnnl_primitive_desc_destroy(pd);
    return s;
}

/* The width nb when md is oneDNN's BA16a{nb}b2a for a K x N bf16 matrix
 * (what brgemm asks for with AVX512-BF16), else 0. That layout: blocks of
 * 32 K rows by nb N columns, the N blocks outermost; inside a block the K
 * rows in pairs, the pair of each column one 32-bit word for the bf16 dot
 * product ([k/2][n][k%2]); zeros pad the last blocks. */
static int pack_width(const dnnl_memory_desc_t *md, int K, int N)
{
    static const dnnl_format_tag_t tags[] = {dnnl_BA16a64b2a, dnnl_BA16a48b2a, dnnl_BA16a32b2a};
    static const int widths[] = {64, 48, 32};
    const dnnl_dims_t dims = {K, N};
    for (int i = 0; i < 3; i++) {
        dnnl_memory_desc_t t;
        if (!dnnl_memory_desc_init_by_tag(&t, 2, dims, dnnl_bf16, tags[i]) && dnnl_memory_desc_equal(&t, md)) return widths[i];
    }
    return 0;
}

/* B (K x N) rounded to bf16 straight into BA16a{nb}b2a (pack_width): one
 * pass over the floats where rounding into a plain copy and reordering
 * that took three; the same bits, only placed elsewhere. Word (p, n) of
 * the layout holds B[2p][n] | B[2p + 1][n] << 16. */
#define PACK_AT(dst, kb, nb, p, n) \
    (dst)[((size_t)((n) / (nb)) * (kb) + (p) / 16) * 16 * (nb) + (size_t)((p) % 16) * (nb) + (n) % (nb)]

/* Pairs [p0, p1) of B = src (src[k·ld + n]), padding included: row by
 * row, each row pair one vectorised loop per block of columns. */
CLONES_X86_64_V3 static void pack_rows_bf16(uint32_t *dst, const float *src, int K, int N, int ld, int nb, int p0, int p1)
{
    const int kb = (K + 31) / 32, nblocks = (N + nb - 1) / nb;
    for (int p = p0; p < p1; p++)
        for (int jb = 0; jb < nblocks; jb++) {
            uint32_t *d = &PACK_AT(dst, kb, nb, p, jb * nb);
            const int n0 = jb * nb, nn = N - n0 < nb ? N - n0 : nb, valid = 2 * p < K ? nn : 0;
            if (2 * p + 1 < K) {
                const float *r0 = src + (size_t)2 * p * ld + n0, *r1 = r0 + ld;
#pragma omp simd
                for (int i = 0; i < nn; i++) d[i] = ops_bf16_bits(r0[i]) | (uint32_t)ops_bf16_bits(r1[i]) << 16;
            } else if (valid) {
                const float *r0 = src + (size_t)2 * p * ld + n0;
#pragma omp simd
                for (int i = 0; i < nn; i++) d[i] = ops_bf16_bits(r0[i]);
            }
            for (int i = valid; i < nb; i++) d[i] = 0;
        }
}

/* Column blocks [jb0, jb1) of B = srcᵀ (src[n·ld + k]): B's column n is
 * src's row n, its pairs neighbours. A tile of 16 rows x 16 pairs is
 * rounded row by row (vectorised) and its words transposed into place;
 * the 16 rows stream through src side by side. */
CLONES_X86_64_V3 static void pack_cols_bf16(uint32_t *dst, const float *src, int K, int N, int ld, int nb, int jb0,
                                            int jb1)
{
    const int kb = (K + 31) / 32;
    uint16_t tile[16][32];
    for (int n0 = jb0 * nb; n0 < jb1 * nb; n0 += 16)
        for (int k0 = 0; k0 < kb * 32; k0 += 32) {
            const int kn = K - k0 < 32 ? (K > k0 ? K - k0 : 0) : 32;
            for (int r = 0; r < 16; r++) {
                const int valid = n0 + r < N ? kn : 0;
                if (valid == 32) {
                    const float *row = src + (size_t)(n0 + r) * ld + k0;
#pragma omp simd
                    for (int k = 0; k < 32; k++) tile[r][k] = ops_bf16_bits(row[k]);
                } else {
                    for (int k = 0; k < valid; k++) tile[r][k] = ops_bf16_bits(src[(size_t)(n0 + r) * ld + k0 + k]);
                    for (int k = valid; k < 32; k++) tile[r][k] = 0;
                }
            }
            uint32_t *d = &PACK_AT(dst, kb, nb, k0 / 2, n0); /* the 16 columns share a block: nb % 16 == 0 */
            for (int p = 0; p < 16; p++)
                for (int r = 0; r < 16; r++) memcpy(&d[(size_t)p * nb + r], &tile[r][2 * p], sizeof *d);
        }
}
#undef PACK_AT

/* B into buf in layout md from the floats, by pack_rows_bf16 or
 * pack_cols_bf16 on the context's threads when pack_width knows md, else
 * by a oneDNN reorder of B's plain bf16 copy (operand slot 1). Nonzero
 * when there is no memory for that copy or oneDNN refuses. */
static int pack(ops_ctx *ctx, const float *B, int K, int N, int tb, int ldb, const dnnl_memory_desc_t *md, void *buf)
{
    const int nb = pack_width(md, K, N);
    if (nb) {
        /* rows split by pairs, columns by blocks: each thread's part of the layout is its own */
        const int parts = tb ? (N + nb - 1) / nb : (K + 31) / 32 * 16;
#pragma omp parallel num_threads((size_t)K * N < CONVERT_PAR_MIN ? 1 : ctx->threads)
        {
            const int t = omp_get_thread_num(), nt = omp_get_num_threads();
            const int lo = (int)((long)parts * t / nt), hi = (int)((long)parts * (t + 1) / nt);
            if (tb) pack_cols_bf16(buf, B, K, N, ldb, nb, lo, hi);
            else pack_rows_bf16(buf, B, K, N, ldb, nb, lo, hi);
        }
        return 0;
    }
    cpu_dnnl *d = ctx->dnnl;
    dnnl_memory_desc_t pmd;
    const void *plain = operand(ctx, 1, B, ops_lowp_extent(tb, K, N, ldb));
    return !plain || plain_b(&pmd, K, N, tb, ldb, d->dt) || reorder(d, &pmd, plain, md, buf);
}

/* Registered weight matrix B (in range r) in layout md: its plain copy
 * when md is B as stored, else a packed copy, packed again when the range
 * was written since; NULL when there is no memory or oneDNN refuses, and
 * the caller multiplies from the plain copy. */
static const void *pack_get(ops_ctx *ctx, const float *B, int K, int N, int tb, int ldb, const ops_lowp_range *r,
                            const dnnl_memory_desc_t *md)
{
    cpu_dnnl *d = ctx->dnnl;
    dnnl_memory_desc_t pmd;
    if (!plain_b(&pmd, K, N, tb, ldb, d->dt) && dnnl_memory_desc_equal(&pmd, md)) /* wanted as stored: no copy */
        return operand(ctx, 1, B, ops_lowp_extent(tb, K, N, ldb));
    dnnl_pack *p = NULL;
    for (int i = 0; i < d->n_pack && !p; i++) {
        dnnl_pack *q = &d->pack[i];
        if (q->src == B && q->K == K && q->N == N && q->tb == tb && q->ldb == ldb && dnnl_memory_desc_equal(&q->md, md))
            p = q;
    }
    if (!p) {
        if (d->n_pack == d->cap_pack) {
            int cap = d->cap_pack ? 2 * d->cap_pack : 64;
            dnnl_pack *np = realloc(d->pack, (size_t)cap * sizeof *np);
            if (!np) return NULL;
            d->pack = np;
            d->cap_pack = cap;
        }
        void *buf = mem_alloc_aligned(dnnl_memory_desc_get_size(md));
        if (!buf) return NULL;
        p = &d->pack[d->n_pack++];
        *p = (dnnl_pack){.src = B, .K = K, .N = N, .tb = tb, .ldb = ldb, .gen = r->gen + 1, .md = *md, .buf = buf};
    }
    if (p->gen != r->gen) {
        if (pack(ctx, B, K, N, tb, ldb, md, p->buf)) return NULL;
        p->gen = r->gen;
    }
    return p->buf;
}

/* Forget the packed matrices made from [base, base + n). */
static void pack_drop(cpu_dnnl *d, const float *base, size_t n)
{
    for (int i = 0; i < d->n_pack;) {
        if (d->pack[i].src >= base && d->pack[i].src < base + n) {
            free(d->pack[i].buf);
            d->pack[i] = d->pack[--d->n_pack];
        } else
            i++;
    }
}

/* One oneDNN matmul C (+)= op(A)·op(B), the operands rounded on the way
 * in: A into plain scratch, B packed (pack_get) when it is a registered
 * weight, else into plain scratch. It runs on OpenMP like the rest of the
 * backend: the team size is the context's for the duration of the call
 * (oneDNN also sizes a primitive's work split by it when creating it).
 * 0 when done, 1 out of memory for a rounded operand, -1 when oneDNN
 * refuses the shape. */
static int onednn_gemm(ops_ctx *ctx, int ta, int tb, int M, int N, int K, const float *A, int lda, const float *B,
                       int ldb, int accumulate, float *C, int ldc)
{
    cpu_dnnl *d = ctx->dnnl;
    const size_t nb = ops_lowp_extent(tb, K, N, ldb);
    const ops_lowp_range *wr = ops_lowp_find(&ctx->lowp, B, nb);
    const void *a = operand(ctx, 0, A, ops_lowp_extent(ta, M, K, lda)), *w = NULL;
    if (!a) return 1;
    const int saved = omp_get_max_threads();
    if (saved != ctx->threads) omp_set_num_threads(ctx->threads);
    int rc = -1;
    dnnl_mm *m = matmul_get(d, M, N, K, ta, tb, lda, ldb, ldc, accumulate, 1);
    if (m && wr) w = pack_get(ctx, B, K, N, tb, ldb, wr, &m->wei);
    else if (m && pack_width(&m->wei, K, N)) {
        /* an activation (the weight gradients' dY or X): packed as it is
         * rounded, which costs what rounding it does, where brgemm would
         * pack the rounded copy again inside the call */
        void *buf = scratch(ctx, 1, dnnl_memory_desc_get_size(&m->wei) / 2);
        if (buf && !pack(ctx, B, K, N, tb, ldb, &m->wei, buf)) w = buf;
    }
    if (!w) {
        m = matmul_get(d, M, N, K, ta, tb, lda, ldb, ldc, accumulate, 0);
        if (!(w = operand(ctx, 1, B, nb))) rc = 1, m = NULL;
    }
    /* without a primitive (oneDNN refused the shape or ran out of memory)
     * the call fails and the caller reports it */
    if (m) {
        dnnl_memory_t ma = NULL, mb = NULL, mc = NULL;
        dnnl_status_t s = dnnl_memory_create(&ma, &m->src, d->engine, (void *)a);
        if (!s) s = dnnl_memory_create(&mb, &m->wei, d->engine, (void *)w);
        if (!s) s = dnnl_memory_create(&mc, &m->dst, d->engine, C);
        if (!s) {
            dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, ma}, {DNNL_ARG_WEIGHTS, mb}, {DNNL_ARG_DST, mc}};
            s = dnnl_primitive_execute(m->prim, d->stream, 3, args);
            if (!s) s = dnnl_stream_wait(d->stream);
        }
        if (mc) dnnl_memory_destroy(mc);
        if (mb) dnnl_memory_destroy(mb);
        if (ma) dnnl_memory_destroy(ma);
        rc = s == dnnl_success ? 0 : -1;
    }
    if (saved != ctx->threads) omp_set_num_threads(saved);
    return rc;
}

/* Native when oneDNN has a non-reference matmul for the type on this CPU
 * (brgemm with AVX512-BF16 or AMX for bf16; fp16 needs AVX512-FP16). */
static void onednn_probe(ops_ctx *ctx)
{
    cpu_dnnl *d = calloc(1, sizeof *d);
    if (!d) return;
    d->dt = ctx->lowp.prec == OPS_BF16 ? dnnl_bf16 : dnnl_f16;
    dnnl_primitive_desc_t pd = NULL;
    const char *impl = NULL;
    if (dnnl_engine_create(&d->engine, dnnl_cpu, 0) || dnnl_stream_create(&d->stream, d->engine, dnnl_stream_default_flags) ||
        matmul_pd(d, 64, 64, 64, 0, 1, 64, 64, 64, 1, 0, &pd) ||
        dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) || !impl || !strncmp(impl, "ref", 3)) {
        if (pd) dnnl_primitive_desc_destroy(pd);
        if (d->stream) dnnl_stream_destroy(d->stream);
        if (d->engine) dnnl_engine_destroy(d->engine);
        free(d);
        return;
    }
    snprintf(ctx->lowp.impl, sizeof ctx->lowp.impl, "%s (oneDNN %s)", ops_precision_name(ctx->lowp.prec), impl);
    dnnl_primitive_desc_destroy(pd);
    ctx->dnnl = d;
    ctx->lowp.native = 1;
}

static void onednn_free(ops_ctx *ctx)
{
    cpu_dnnl *d = ctx->dnnl;
    if (!d) return;
    for (int i = 0; i < d->n_mm; i++) dnnl_primitive_destroy(d->mm[i].prim);
    for (int i = 0; i < d->n_pack; i++) free(d->pack[i].buf);
    free(d->pack);
    dnnl_stream_destroy(d->stream);
    dnnl_engine_destroy(d->engine);
    free(d);
    ctx->dnnl = NULL;
}
#endif

int ops_set_precision(ops_ctx *ctx, enum ops_precision p, err_t *e)
{
    if ((unsigned)p > OPS_FP16) return err_set(e, ERR_ARG, "ops: unknown precision %d", (int)p);
    if (ctx->lowp.nranges) return err_set(e, ERR_ARG, "ops: precision set after weights were registered");
#ifdef CLIPCAP_HAVE_DNNL
    onednn_free(ctx);
#endif
    ctx->lowp.prec = p;
    ctx->lowp.native = 0;
    snprintf(ctx->lowp.impl, sizeof ctx->lowp.impl, "%s", ops_precision_name(p));
    if (p == OPS_TF32) snprintf(ctx->lowp.impl, sizeof ctx->lowp.impl, "tf32 (fp32 on the CPU)");
    if (p < OPS_BF16) return 0;
    /* CLIPCAP_LOWP=emulate keeps the emulation where the CPU could do
     * better: tests compare the two paths on one machine with it. */
#ifdef CLIPCAP_HAVE_DNNL
    const char *force = getenv("CLIPCAP_LOWP");
    if (!force || strcmp(force, "emulate")) onednn_probe(ctx);
#endif
    if (!ctx->lowp.native) snprintf(ctx->lowp.impl, sizeof ctx->lowp.impl, "%s (emulated)", ops_precision_name(p));
    return 0;
}

enum ops_precision ops_get_precision(const ops_ctx *ctx) { return ctx->lowp.prec; }

const char *ops_precision_impl(const ops_ctx *ctx) { return ctx->lowp.impl[0] ? ctx->lowp.impl : "fp32"; }

int ops_register_weights(ops_ctx *ctx, const float *p, size_t n, err_t *e)
{
    if (ctx->lowp.prec < OPS_BF16 || !n) return 0;
    ops_lowp_range *r = ops_lowp_add(&ctx->lowp, p, n, e);
    if (!r) return e ? e->code : ERR_LIMIT;
    if (!(r->shadow = mem_alloc_aligned(n * elem_size(ctx)))) {
        ops_lowp_remove(&ctx->lowp, p);
        return err_set(e, ERR_NOMEM, "ops: cannot allocate the %s copy of %zu weights", ops_precision_name(ctx->lowp.prec), n);
    }
    return 0;
}

void ops_cpu_lowp_forget(ops_ctx *ctx, void *p)
{
#ifdef CLIPCAP_HAVE_DNNL
    const ops_lowp_range *r = ops_lowp_find(&ctx->lowp, p, 1);
    if (ctx->dnnl && r && r->base == p) pack_drop(ctx->dnnl, r->base, r->n);
#endif
    free(ops_lowp_remove(&ctx->lowp, p));
}

void ops_cpu_lowp_destroy(ops_ctx *ctx)
{
    while (ctx->lowp.nranges) free(ops_lowp_remove(&ctx->lowp, ctx->lowp.r[0].base));
    free(ctx->scratch[0]);
    free(ctx->scratch[1]);
#ifdef CLIPCAP_HAVE_DNNL
    onednn_free(ctx);
#endif
}

void ops_cpu_gemm_prec(ops_ctx *ctx, int trans_a, int trans_b, int M, int N, int K, const float *A, int lda,
                       const float *B, int ldb, float beta, float *C, int ldc)
{
    if (ctx->lowp.prec < OPS_BF16 || M <= 0 || N <= 0 || K <= 0) {
        ops_cpu_gemm(ctx, trans_a, trans_b, M, N, K, 1.0f, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    int rc = 1;
#ifdef CLIPCAP_HAVE_DNNL
    if (ctx->lowp.native) {
        /* A void op cannot report a refusal: abort, as the CUDA backend
         * does when cuBLAS fails (oneDNN accepts every shape the models
         * make). */
        if ((rc = onednn_gemm(ctx, trans_a, trans_b, M, N, K, A, lda, B, ldb, beta != 0.0f, C, ldc)) < 0) {
            log_msg(LOG_ERROR, "ops: oneDNN refused a %dx%dx%d %s GEMM", M, N, K, ops_precision_name(ctx->lowp.prec));
            abort();
        }
    } else
#endif
    {
        const void *a = operand(ctx, 0, A, ops_lowp_extent(trans_a, M, K, lda));
        const void *b = a ? operand(ctx, 1, B, ops_lowp_extent(trans_b, K, N, ldb)) : NULL;
        if (a && b) {
            ops_cpu_gemm(ctx, trans_a, trans_b, M, N, K, 1.0f, a, lda, b, ldb, beta, C, ldc);
            rc = 0;
        }
    }
    if (rc) {
        /* Out of memory for a rounded copy: a void op cannot fail, and the
         * float32 product is the closest answer there is. */
        log_msg(LOG_WARN, "ops: no memory to round a %dx%dx%d GEMM's operands; computed in fp32", M, N, K);
        ops_cpu_gemm(ctx, trans_a, trans_b, M, N, K, 1.0f, A, lda, B, ldb, beta, C, ldc);
    }
}
