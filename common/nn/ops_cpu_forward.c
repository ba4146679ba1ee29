/* The CPU backend, forward half of ops.h: context and memory, the forward
 * ops, the optimiser and the reductions. GEMMs go to OpenBLAS; everything
 * else is an OpenMP loop over rows or elements. Forward ops WRITE their
 * outputs (only the backward half accumulates).
 *
 * Nothing here inspects floating-point exception flags, and without
 * no-trapping-math GCC keeps float compares (clamps, relu, max) out of
 * vectorised loops in case they raise one. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif

#include "nn/ops_cpu.h"
#include "nn/ops_cpu_math.h"
#include "nn/ops_ext.h"
#include "core/fsutil.h"
#include "core/target_clones.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int ops_create(ops_ctx **ctx, int threads, err_t *e)
{
    *ctx = NULL;
    ops_ctx *c = calloc(1, sizeof *c);
    if (!c) return err_set(e, ERR_NOMEM, "ops: cannot allocate the CPU context");
    c->threads = threads > 0 ? threads : omp_get_max_threads();
    if (c->threads < 1) c->threads = 1;
    /* GEMMs are split over our OpenMP threads (ops_cpu_gemm); OpenBLAS's own
     * pool would compete with them for the same cores. */
    openblas_set_num_threads(1);
    *ctx = c;
    return 0;
}

void ops_destroy(ops_ctx *ctx)
{
    if (!ctx) return;
    ops_cpu_lowp_destroy(ctx);
    free(ctx);
}

const char *ops_backend_name(const ops_ctx *ctx) { return "cpu"; }

float *ops_alloc(ops_ctx *ctx, size_t count, err_t *e)
{
    if (count > SIZE_MAX / sizeof(float)) {
        err_set(e, ERR_NOMEM, "ops: %zu floats overflow the address space", count);
        return NULL;
    }
    float *p = mem_alloc_aligned(count ? count * sizeof(float) : sizeof(float));
    if (!p) err_set(e, ERR_NOMEM, "ops: cannot allocate %zu floats (%.1f MiB)", count,
                    (double)count * sizeof(float) / (1024.0 * 1024.0));
    return p;
}

void ops_free(ops_ctx *ctx, void *p)
{
    if (p) ops_cpu_lowp_forget(ctx, p);
    free(p);
}

void ops_upload(ops_ctx *ctx, float *dst, const float *host_src, size_t count)
{
    ops_lowp_touch(&ctx->lowp, dst, count);
    if (count) memcpy(dst, host_src, count * sizeof(float));
}

void ops_download(ops_ctx *ctx, float *host_dst, const float *src, size_t count)
{
    if (count) memcpy(host_dst, src, count * sizeof(float));
}

void ops_fill(ops_ctx *ctx, float *x, float value, size_t count)
{
    ops_lowp_touch(&ctx->lowp, x, count);
#pragma omp parallel for simd num_threads(ctx->threads) if (count >= OPS_CPU_PAR_MIN) schedule(static)
    for (size_t i = 0; i < count; i++) x[i] = value;
}

void ops_copy(ops_ctx *ctx, float *dst, const float *src, size_t count)
{
    ops_lowp_touch(&ctx->lowp, dst, count);
    if (count && dst != src) memmove(dst, src, count * sizeof(float));
}

/* Below this many multiply-adds a GEMM runs on one thread. */
#define GEMM_PAR_MIN (1 << 18)

void ops_cpu_gemm(const ops_ctx *ctx, int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
                  int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
    if (M <= 0 || N <= 0) return;
    const enum CBLAS_TRANSPOSE ta = trans_a ? CblasTrans : CblasNoTrans, tb = trans_b ? CblasTrans : CblasNoTrans;
    int nt = (double)M * N * K < GEMM_PAR_MIN ? 1 : ctx->threads;
    /* Split the wider side of C in blocks of 16 (a multiple of every
     * OpenBLAS kernel's unroll), so threads share no output and each one
     * packs only its part of the wider operand. */
    const int by_cols = N >= M, span = by_cols ? N : M;
    const int blocks = (span + 15) / 16;
    if (nt > blocks) nt = blocks;
    if (nt <= 1) {
        cblas_sgemm(CblasRowMajor, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
#pragma omp parallel num_threads(nt)
    {
        int t = omp_get_thread_num(), n = omp_get_num_threads();
        int lo = (int)((long)blocks * t / n) * 16, hi = (int)((long)blocks * (t + 1) / n) * 16;
        if (hi > span) hi = span;
        if (hi > lo) {
            if (by_cols) /* columns lo..hi of C are columns of op(B) */
                cblas_sgemm(CblasRowMajor, ta, tb, M, hi - lo, K, alpha, A, lda,
                            trans_b ? B + (size_t)lo * ldb : B + lo, ldb, beta, C + lo, ldc);
            else /* rows lo..hi of C are rows of op(A) */
                cblas_sgemm(CblasRowMajor, ta, tb, hi - lo, N, K, alpha, trans_a ? A + lo : A + (size_t)lo * lda, lda,
                            B, ldb, beta, C + (size_t)lo * ldc, ldc);
        }
    }
}

void ops_matmul(ops_ctx *ctx, float *out, const float *in, const float *w, const float *bias,
                int M, int K, int N, enum ops_weight_layout layout)
{
    if (M <= 0 || N <= 0) return;
    float beta = 0.0f;
    if (bias) {
        /* Seed every row with the bias and let the GEMM add onto it
         * (beta = 1): one pass over out instead of two. */
#pragma omp parallel for num_threads(ctx->threads) if ((size_t)M * N >= OPS_CPU_PAR_MIN) schedule(static)
        for (int i = 0; i < M; i++) memcpy(out + (size_t)i * N, bias, (size_t)N * sizeof(float));
        beta = 1.0f;
    }
    if (K <= 0) {
        if (!bias) memset(out, 0, (size_t)M * N * sizeof(float));
        return;
    }
    if (layout == OPS_W_NK)
        ops_cpu_gemm_prec(ctx, 0, 1, M, N, K, in, K, w, K, beta, out, N);
    else
        ops_cpu_gemm_prec(ctx, 0, 0, M, N, K, in, K, w, N, beta, out, N);
}

void ops_layernorm(ops_ctx *ctx, float *out, float *mean, float *rstd, const float *in,
                   const float *g, const float *b, int M, int C, float eps)
{
#pragma omp parallel for num_threads(ctx->threads) if ((size_t)M * C >= OPS_CPU_PAR_MIN) schedule(static)
    for (int i = 0; i < M; i++) {
        const float *x = in + (size_t)i * C;
        float *y = out + (size_t)i * C;
        /* Two passes (mean, then centred squares): the one-pass E[x²]-E[x]²
         * loses digits on the large-mean rows of a residual stream. */
        float s = 0.0f;
#pragma omp simd reduction(+ : s)
        for (int c = 0; c < C; c++) s += x[c];
        float m = s / (float)C;
        float v = 0.0f;
#pragma omp simd reduction(+ : v)
        for (int c = 0; c < C; c++) {
            float d = x[c] - m;
            v += d * d;
        }
        float r = 1.0f / sqrtf(v / (float)C + eps);
#pragma omp simd
        for (int c = 0; c < C; c++) y[c] = (x[c] - m) * r * g[c] + b[c];
        if (mean) mean[i] = m;
        if (rstd) rstd[i] = r;
    }
}

void ops_add(ops_ctx *ctx, float *out, const float *a, const float *b, size_t n)
{
#pragma omp parallel for simd num_threads(ctx->threads) if (n >= OPS_CPU_PAR_MIN) schedule(static)
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

void ops_gelu_erf(ops_ctx *ctx, float *out, const float *in, size_t n)
{
#pragma omp parallel for num_threads(ctx->threads) if (n >= OPS_CPU_PAR_MIN) schedule(static)
    for (size_t i = 0; i < n; i++) {
        float x = in[i];
        out[i] = 0.5f * x * (1.0f + erff(x * 0.7071067811865476f));
    }
}

void ops_tanh(ops_ctx *ctx, float *out, const float *in, size_t n)
{
#pragma omp parallel for num_threads(ctx->threads) if (n >= OPS_CPU_PAR_MIN) schedule(static)
    for (size_t i = 0; i < n; i++) out[i] = tanhf(in[i]);
}

void ops_relu(ops_ctx *ctx, float *out, const float *in, size_t n)
{
#pragma omp parallel for simd num_threads(ctx->threads) if (n >= OPS_CPU_PAR_MIN) schedule(static)
    for (size_t i = 0; i < n; i++) out[i] = in[i] > 0.0f ? in[i] : 0.0f;
}

/* Run fn over [0, n) in one contiguous block per thread. */
static void par_map(const ops_ctx *ctx, void (*fn)(float *, const float *, size_t), float *out, const float *in,
                    size_t n)
{
#pragma omp parallel num_threads(ctx->threads) if (n >= OPS_CPU_PAR_MIN)
    {
        size_t t = (size_t)omp_get_thread_num(), nt = (size_t)omp_get_num_threads();
        size_t lo = n * t / nt, hi = n * (t + 1) / nt;
        fn(out + lo, in + lo, hi - lo);
    }
}

CLONES_X86_64_V3 static void quick_gelu_block(float *out, const float *in, size_t n)
{
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
        float x = in[i];
        out[i] = x / (1.0f + fast_expf(-1.702f * x));
    }
}

void ops_quick_gelu(ops_ctx *ctx, float *out, const float *in, size_t n) { par_map(ctx, quick_gelu_block, out, in, n); }

/* 0.5·x·(1 + tanh(u)) is x·sigmoid(2u): one vectorised exp instead of a
 * tanhf call per element, and no cancellation for large |u|. */
CLONES_X86_64_V3 static void gelu_tanh_block(float *out, const float *in, size_t n)
{
    const float k = 0.7978845608028654f; /* sqrt(2/pi) */
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
        float x = in[i];
        out[i] = x / (1.0f + fast_expf(-2.0f * k * (x + 0.044715f * x * x * x)));
    }
}

void ops_gelu_tanh(ops_ctx *ctx, float *out, const float *in, size_t n) { par_map(ctx, gelu_tanh_block, out, in, n); }

/* s[j] = scale · q·k_j for n keys of row stride ks: eight keys at a time so
 * that eight independent sums hide the add latency a single dot product
 * waits on (D is 64 in every model here: too short to amortise it). */
static inline __attribute__((always_inline)) void scores(float *s, const float *q, const float *k, int n, int D, int ks, float scale)
{
    int j = 0;
    for (; j + 8 <= n; j += 8) {
        const float *k0 = k + (size_t)j * ks;
        float a0 = 0, a1 = 0, a2 = 0, a3 = 0, a4 = 0, a5 = 0, a6 = 0, a7 = 0;
#pragma omp simd reduction(+ : a0, a1, a2, a3, a4, a5, a6, a7)
        for (int d = 0; d < D; d++) {
            float qd = q[d];
            a0 += qd * k0[d];
            a1 += qd * k0[ks + d];
            a2 += qd * k0[2 * (size_t)ks + d];
            a3 += qd * k0[3 * (size_t)ks + d];
            a4 += qd * k0[4 * (size_t)ks + d];
            a5 += qd * k0[5 * (size_t)ks + d];
            a6 += qd * k0[6 * (size_t)ks + d];
            a7 += qd * k0[7 * (size_t)ks + d];
        }
        s[j] = a0 * scale, s[j + 1] = a1 * scale, s[j + 2] = a2 * scale, s[j + 3] = a3 * scale;
        s[j + 4] = a4 * scale, s[j + 5] = a5 * scale, s[j + 6] = a6 * scale, s[j + 7] = a7 * scale;
    }
    for (; j < n; j++) {
        const float *kj = k + (size_t)j * ks;
        float a = 0.0f;
#pragma omp simd reduction(+ : a)
        for (int d = 0; d < D; d++) a += q[d] * kj[d];
        s[j] = a * scale;
    }
}

/* Keys are visited in chunks of at most this many with a running (online)
 * softmax, so a query row needs only this much stack when probs is NULL. */
#define ATT_CHUNK 256

/* One query row of one head: o = softmax(scale · q·Kᵀ) · V over keys
 * 0..visible-1, p (when not NULL) receives the probabilities of all Tk keys.
 * The scores live in p (all at once) or, in inference, in a stack chunk
 * with the max and normaliser carried across chunks. */
CLONES_X86_64_V3 static void attention_row(float *o, float *p, const float *qi, const float *kb, const float *vb,
                                           int visible, int Tk, int D, int kv_stride, float scale)
{
    float stack[ATT_CHUNK];
    const int chunk = p ? (visible > 0 ? visible : 1) : ATT_CHUNK;
    float m = -INFINITY, l = 0.0f;
    for (int d = 0; d < D; d++) o[d] = 0.0f;
    for (int c0 = 0; c0 < visible; c0 += chunk) {
        int n = visible - c0 < chunk ? visible - c0 : chunk;
        float *s = p ? p : stack;
        scores(s, qi, kb + (size_t)c0 * kv_stride, n, D, kv_stride, scale);
        float mc = m;
        for (int j = 0; j < n; j++) mc = s[j] > mc ? s[j] : mc;
        if (mc > m) { /* rescale what earlier chunks accumulated */
            float f = fast_expf(m - mc);
            l *= f;
            for (int d = 0; d < D; d++) o[d] *= f;
            m = mc;
        }
        float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
        for (int j = 0; j < n; j++) {
            s[j] = fast_expf(s[j] - m);
            sum += s[j];
        }
        l += sum;
        for (int j = 0; j < n; j++) {
            const float *vj = vb + (size_t)(c0 + j) * kv_stride;
            float pj = s[j];
#pragma omp simd
            for (int d = 0; d < D; d++) o[d] += pj * vj[d];
        }
    }
    float inv = l > 0.0f ? 1.0f / l : 0.0f;
    for (int d = 0; d < D; d++) o[d] *= inv;
    if (p) {
        for (int j = 0; j < visible; j++) p[j] *= inv;
        for (int j = visible; j < Tk; j++) p[j] = 0.0f;
    }
}

void ops_attention(ops_ctx *ctx, float *out, float *probs, const float *q, const float *k,
                   const float *v, int B, int Tq, int Tk, int H, int D, int q_stride,
                   int kv_stride, int causal, float scale)
{
    const int C = H * D;
    const long rows = (long)B * H * Tq;
#pragma omp parallel for num_threads(ctx->threads) if (rows * Tk * D >= OPS_CPU_PAR_MIN) schedule(static)
    for (long r = 0; r < rows; r++) {
        int i = (int)(r % Tq);
        int h = (int)((r / Tq) % H);
        int b = (int)(r / ((long)Tq * H));
        int visible = causal ? i + (Tk - Tq) + 1 : Tk; /* keys 0..visible-1 */
        if (visible > Tk) visible = Tk;
        if (visible < 0) visible = 0;
        attention_row(out + ((size_t)b * Tq + i) * C + (size_t)h * D,
                      probs ? probs + (((size_t)b * H + h) * Tq + i) * Tk : NULL,
                      q + ((size_t)b * Tq + i) * q_stride + (size_t)h * D, k + (size_t)b * Tk * kv_stride + (size_t)h * D,
                      v + (size_t)b * Tk * kv_stride + (size_t)h * D, visible, Tk, D, kv_stride, scale);
    }
}

void ops_gather_rows(ops_ctx *ctx, float *out, const float *table, const int32_t *ids, int n, int C)
{
#pragma omp parallel for num_threads(ctx->threads) if ((size_t)n * C >= OPS_CPU_PAR_MIN) schedule(static)
    for (int i = 0; i < n; i++)
        memcpy(out + (size_t)i * C, table + (size_t)ids[i] * C, (size_t)C * sizeof(float));
}

void ops_im2patch(ops_ctx *ctx, float *out, const float *images, int B, int S, int P)
{
    const int G = S / P, L = G * G, F = 3 * P * P;
#pragma omp parallel for num_threads(ctx->threads) if ((size_t)B * L * F >= OPS_CPU_PAR_MIN) schedule(static)
    for (long bp = 0; bp < (long)B * L; bp++) {
        int b = (int)(bp / L), patch = (int)(bp % L);
        int py = patch / G, px = patch % G;
        float *o = out + (size_t)bp * F;
        for (int c = 0; c < 3; c++)
            for (int r = 0; r < P; r++) {
                const float *src = images + (((size_t)b * 3 + c) * S + (size_t)py * P + r) * S + (size_t)px * P;
                memcpy(o + ((size_t)c * P + r) * P, src, (size_t)P * sizeof(float));
            }
    }
}

/* One row's log Σ_j e^(x_j): one pass for the max, one for the sum
 * (ops_cpu_math.h: float terms, double sum). */
CLONES_X86_64_V3 static double row_lse(const float *x, int V)
{
    const float m = ops_cpu_row_max(x, V);
    return m + log(ops_cpu_sum_exp(x, V, m, NULL));
}

float ops_cross_entropy(ops_ctx *ctx, float *losses, const float *logits, const int32_t *targets,
                        int M, int V)
{
    double total = 0.0;
    long counted = 0;
#pragma omp parallel for num_threads(ctx->threads) if ((size_t)M * V >= OPS_CPU_PAR_MIN) schedule(static) \
    reduction(+ : total, counted)
    for (int i = 0; i < M; i++) {
        if (targets[i] < 0) {
            losses[i] = 0.0f;
            continue;
        }
        const float *x = logits + (size_t)i * V;
        double loss = row_lse(x, V) - x[targets[i]];
        losses[i] = (float)loss;
        total += loss;
        counted++;
    }
    return counted ? (float)(total / (double)counted) : 0.0f;
}

/* Vectorised (simd: -O2 alone leaves a loop of unknown length scalar;
 * -fno-math-errno, CMakeLists.txt: sqrtf need not branch to set errno) and
 * with an x86-64-v3 copy: IEEE division and square root give the same bits
 * 8 wide as one at a time, and the C11 build contracts no a·b + c into
 * an FMA. A scalar sqrt and divide per element made this 10 % of a bf16
 * GPT-2 training step. */
CLONES_X86_64_V3 void ops_adamw(ops_ctx *ctx, float *params, const float *grads, float *m, float *v, size_t n,
                       float lr, float beta1, float beta2, float eps, float weight_decay, int step)
{
    /* torch.optim.AdamW (non-amsgrad, foreach=False): decay the weight,
     * update the moments, then p -= lr/bc1 · m / (sqrt(v)/sqrt(bc2) + eps). */
    const float bc1 = 1.0f - powf(beta1, (float)step);
    const float bc2 = 1.0f - powf(beta2, (float)step);
    const float step_size = lr / bc1;
    const float bc2_sqrt = sqrtf(bc2);
    const float decay = 1.0f - lr * weight_decay;
    ops_lowp_touch(&ctx->lowp, params, n);
#pragma omp parallel for simd num_threads(ctx->threads) if (n >= OPS_CPU_PAR_MIN) schedule(static)
    for (size_t i = 0; i < n; i++) {
        float g = grads[i];
        float mi = beta1 * m[i] + (1.0f - beta1) * g;
        float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
        m[i] = mi;
        v[i] = vi;
        params[i] = params[i] * decay - step_size * mi / (sqrtf(vi) / bc2_sqrt + eps);
    }
}

double ops_sum_squares(ops_ctx *ctx, const float *x, size_t n)
{
    double s = 0.0;
#pragma omp parallel for num_threads(ctx->threads) if (n >= OPS_CPU_PAR_MIN) schedule(static) reduction(+ : s)
    for (size_t i = 0; i < n; i++) s += (double)x[i] * x[i];
    return s;
}

void ops_scale(ops_ctx *ctx, float *x, float s, size_t n)
{
    ops_lowp_touch(&ctx->lowp, x, n);
#pragma omp parallel for simd num_threads(ctx->threads) if (n >= OPS_CPU_PAR_MIN) schedule(static)
    for (size_t i = 0; i < n; i++) x[i] *= s;
}
