/* The CPU backend's backward ops (llm.c's formulas): GEMMs through
 * ops_cpu_gemm (OpenBLAS split over the context's threads) except inside
 * attention, which is parallel over (batch, head) itself; the rest as
 * OpenMP loops. Every function ACCUMULATES into its gradients
 * and skips a NULL one entirely, so a frozen model's weight gradients cost
 * nothing. Reductions over rows (bias, LayerNorm gain/bias gradients) are
 * parallel over columns, so each sum keeps one fixed order whatever the
 * thread count: results do not depend on OMP_NUM_THREADS.
 *
 * No-trapping-math as in ops_cpu_forward.c: nothing here inspects
 * floating-point exception flags, and without it GCC keeps float compares
 * (the logits' max) out of vectorised loops. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif

#include "nn/ops_cpu.h"
#include "nn/ops_cpu_math.h"
#include "core/target_clones.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>

#include "nn/ops_dropout_mask.h"

static int par_threads(const ops_ctx *ctx, size_t work)
{
    return work < OPS_CPU_PAR_MIN ? 1 : ctx->threads;
}

void ops_matmul_backward(ops_ctx *ctx, float *din, float *dw, float *dbias, const float *dout,
                         const float *in, const float *w, int M, int K, int N,
                         enum ops_weight_layout layout)
{
    if (din) {
        /* NK: din[M,K] += dout[M,N]·W[N,K];  KN: din += dout·W[K,N]ᵀ */
        if (layout == OPS_W_NK)
            ops_cpu_gemm_prec(ctx, 0, 0, M, K, N, dout, N, w, K, 1.0f, din, K);
        else
            ops_cpu_gemm_prec(ctx, 0, 1, M, K, N, dout, N, w, N, 1.0f, din, K);
    }
    if (dw) {
        /* NK: dW[N,K] += doutᵀ·in;  KN: dW[K,N] += inᵀ·dout */
        if (layout == OPS_W_NK)
            ops_cpu_gemm_prec(ctx, 1, 0, N, K, M, dout, N, in, K, 1.0f, dw, K);
        else
            ops_cpu_gemm_prec(ctx, 1, 0, K, N, M, in, K, dout, N, 1.0f, dw, N);
    }
    if (dbias) {
        /* Column blocks walked row by row: contiguous reads, and each
         * column still sums its rows in order m = 0, 1, ... (same bits as a
         * column at a time, which strided through dout and cost as much as
         * some of the GEMMs). */
        enum { BIAS_BLOCK = 64 };
#pragma omp parallel for num_threads(par_threads(ctx, (size_t)M * N)) schedule(static)
        for (int n0 = 0; n0 < N; n0 += BIAS_BLOCK) {
            const int nb = N - n0 < BIAS_BLOCK ? N - n0 : BIAS_BLOCK;
            float s[BIAS_BLOCK] = {0};
            for (int m = 0; m < M; m++) {
                const float *row = dout + (size_t)m * N + n0;
#pragma omp simd
                for (int j = 0; j < nb; j++) s[j] += row[j];
            }
            for (int j = 0; j < nb; j++) dbias[n0 + j] += s[j];
        }
    }
}

void ops_layernorm_backward(ops_ctx *ctx, float *din, float *dg, float *db, const float *dout,
                            const float *in, const float *g, const float *mean,
                            const float *rstd, int M, int C)
{
    int nt = par_threads(ctx, (size_t)M * C);
    if (din) {
#pragma omp parallel for num_threads(nt) schedule(static)
        for (int m = 0; m < M; m++) {
            const float *x = in + (size_t)m * C, *dy = dout + (size_t)m * C;
            float mu = mean[m], rs = rstd[m];
            float dnorm_mean = 0.0f, dnorm_norm_mean = 0.0f;
            for (int c = 0; c < C; c++) {
                float dnorm = g[c] * dy[c];
                dnorm_mean += dnorm;
                dnorm_norm_mean += dnorm * (x[c] - mu) * rs;
            }
            dnorm_mean /= (float)C;
            dnorm_norm_mean /= (float)C;
            float *dx = din + (size_t)m * C;
            for (int c = 0; c < C; c++) {
                float norm = (x[c] - mu) * rs;
                dx[c] += (g[c] * dy[c] - dnorm_mean - norm * dnorm_norm_mean) * rs;
            }
        }
    }
    if (dg || db) {
#pragma omp parallel for num_threads(nt) schedule(static)
        for (int c = 0; c < C; c++) {
            float sg = 0.0f, sb = 0.0f;
            for (int m = 0; m < M; m++) {
                float dy = dout[(size_t)m * C + c];
                sg += (in[(size_t)m * C + c] - mean[m]) * rstd[m] * dy;
                sb += dy;
            }
            if (dg) dg[c] += sg;
            if (db) db[c] += sb;
        }
    }
}

/* With σ = σ(2u) = (1 + tanh u)/2 and 1 − tanh²u = 4σ(1 − σ), GELU's
 * derivative is σ + 2·x·σ(1 − σ)·u'(x): one vectorised exp instead of a
 * tanhf call per element. The exp is of -2|u|, so it is at most 1 (fast_expf
 * overflows to inf past 88.37, and inf·0 would be NaN): with q = 1/(1 + e),
 * σ is q for u >= 0 and e·q below, and σ(1 − σ) = e·q² either way, which
 * keeps its digits where 1 − tanh² cancels (|u| of a few and more). Past
 * fast_expf's clamp e is 0, not its 1e-38, which the x³ factor would bring
 * back to the size of the result for |x| ~ 1e12. */
CLONES_X86_64_V3 static void gelu_tanh_backward_block(float *din, const float *in, const float *dout, size_t n)
{
    const float k = 0.7978845608028654f; /* sqrt(2/pi) */
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
        float x = in[i];
        float u2 = 2.0f * k * (x + 0.044715f * x * x * x), a = fabsf(u2); /* 2u, as the forward */
        float e = a < 87.0f ? fast_expf(-a) : 0.0f;
        float q = 1.0f / (1.0f + e), eq = e * q;
        float s = u2 >= 0.0f ? q : eq;
        float local = s + 2.0f * k * x * (eq * q) * (1.0f + 3.0f * 0.044715f * x * x);
        din[i] += local * dout[i];
    }
}

void ops_gelu_tanh_backward(ops_ctx *ctx, float *din, const float *in, const float *dout, size_t n)
{
#pragma omp parallel num_threads(par_threads(ctx, n))
    {
        size_t t = (size_t)omp_get_thread_num(), nt = (size_t)omp_get_num_threads();
        size_t lo = n * t / nt, hi = n * (t + 1) / nt;
        gelu_tanh_backward_block(din + lo, in + lo, dout + lo, hi - lo);
    }
}

void ops_tanh_backward(ops_ctx *ctx, float *din, const float *out, const float *dout, size_t n)
{
#pragma omp parallel for num_threads(par_threads(ctx, n)) schedule(static)
    for (size_t i = 0; i < n; i++) din[i] += (1.0f - out[i] * out[i]) * dout[i];
}

void ops_relu_backward(ops_ctx *ctx, float *din, const float *in, const float *dout, size_t n)
{
#pragma omp parallel for num_threads(par_threads(ctx, n)) schedule(static)
    for (size_t i = 0; i < n; i++)
        if (in[i] > 0.0f) din[i] += dout[i];
}

/* Per (batch, head), with P the saved probabilities [Tq, Tk]:
 *   dV += Pᵀ·dO;  dP = dO·Vᵀ;  dS = P ∘ (dP − rowsum(P ∘ dP));
 *   dQ += scale·dS·K;  dK += scale·dSᵀ·Q.
 * Four small GEMMs per (batch, head) and block of query rows, each a
 * single-threaded cblas_sgemm called from inside the OpenMP loop over
 * (batch, head): that loop is the parallelism, so ops_cpu_gemm's split
 * would only nest a second team. Masked keys have P = 0, so they get
 * dS = 0 and add nothing; the causal flag is not needed. Each (batch,
 * head) writes only its own slice of dq/dk/dv, which makes the loop safe
 * to run in parallel. Query rows go in blocks of at most ATT_BWD_TILE
 * floats of dS, so the scratch stays a small stack array for any context
 * length. (As scalar loops this was 3 GFLOPS on two cores, a third of a
 * Transformer-mapper step.) */
#define ATT_BWD_TILE 16384

/* Dropout on the probabilities (p > 0): with P' = mask(P), dV uses P' and
 * dS = P'∘dP' − P·rowsum(P'∘dP') (dP' = dO·Vᵀ), which is the softmax
 * backward of dP = mask(dP'). p = 0 keeps the plain formula, bit for bit. */
void ops_cpu_attention_backward(ops_ctx *ctx, float *dq, float *dk, float *dv, const float *dout, const float *probs,
                                const float *q, const float *k, const float *v, int B, int Tq, int Tk, int H, int D,
                                int q_stride, int kv_stride, float scale, float pdrop, uint64_t key, uint64_t offset)
{
    if (B <= 0 || Tq <= 0 || Tk <= 0) return;
    const int C = H * D;
    const int rows = Tk >= ATT_BWD_TILE ? 1 : ATT_BWD_TILE / Tk;
    const float keep_scale = 1.0f / (1.0f - pdrop);
    size_t work = (size_t)B * H * Tq * Tk * D;
#pragma omp parallel num_threads(par_threads(ctx, work))
    {
        float ds[(size_t)rows * Tk], pd_tile[pdrop > 0.0f ? (size_t)rows * Tk : 1];
        float *pd = pdrop > 0.0f ? pd_tile : NULL;
#pragma omp for collapse(2) schedule(static)
        for (int b = 0; b < B; b++) {
            for (int h = 0; h < H; h++) {
                const float *kb = k + (size_t)b * Tk * kv_stride + (size_t)h * D;
                const float *vb = v + (size_t)b * Tk * kv_stride + (size_t)h * D;
                float *dkb = dk ? dk + (size_t)b * Tk * kv_stride + (size_t)h * D : NULL;
                float *dvb = dv ? dv + (size_t)b * Tk * kv_stride + (size_t)h * D : NULL;
                for (int i0 = 0; i0 < Tq; i0 += rows) {
                    const int n = Tq - i0 < rows ? Tq - i0 : rows;
                    const size_t at = (((size_t)b * H + h) * Tq + i0) * Tk;
                    const float *p = probs + at, *pk = p; /* pk: the probabilities V saw */
                    if (pd) {
                        for (size_t x = 0; x < (size_t)n * Tk; x++)
                            pd[x] = ops_dropout_kept(key, offset + at + x, pdrop) ? p[x] * keep_scale : 0.0f;
                        pk = pd;
                    }
                    const float *dob = dout + ((size_t)b * Tq + i0) * C + (size_t)h * D;
                    const float *qb = q + ((size_t)b * Tq + i0) * q_stride + (size_t)h * D;
                    if (dvb)
                        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Tk, D, n, 1.0f, pk, Tk, dob, C, 1.0f,
                                    dvb, kv_stride);
                    if (!dq && !dkb) continue;
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, Tk, D, 1.0f, dob, C, vb, kv_stride, 0.0f,
                                ds, Tk);
                    for (int i = 0; i < n; i++) {
                        const float *pi = p + (size_t)i * Tk, *pki = pk + (size_t)i * Tk;
                        float *di = ds + (size_t)i * Tk, dsum = 0.0f;
                        for (int j = 0; j < Tk; j++) dsum += pki[j] * di[j];
                        if (pd)
                            for (int j = 0; j < Tk; j++) di[j] = (pki[j] * di[j] - pi[j] * dsum) * scale;
                        else
                            for (int j = 0; j < Tk; j++) di[j] = pi[j] * (di[j] - dsum) * scale;
                    }
                    if (dq)
                        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, D, Tk, 1.0f, ds, Tk, kb, kv_stride,
                                    1.0f, dq + ((size_t)b * Tq + i0) * q_stride + (size_t)h * D, q_stride);
                    if (dkb)
                        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Tk, D, n, 1.0f, ds, Tk, qb, q_stride,
                                    1.0f, dkb, kv_stride);
                }
            }
        }
    }
}

void ops_attention_backward(ops_ctx *ctx, float *dq, float *dk, float *dv, const float *dout,
                            const float *probs, const float *q, const float *k, const float *v,
                            int B, int Tq, int Tk, int H, int D, int q_stride, int kv_stride,
                            float scale)
{
    ops_cpu_attention_backward(ctx, dq, dk, dv, dout, probs, q, k, v, B, Tq, Tk, H, D, q_stride, kv_stride, scale,
                               0.0f, 0, 0);
}

void ops_scatter_add_rows(ops_ctx *ctx, float *dtable, const float *dout, const int32_t *ids, int n, int C)
{
    /* Parallel over columns: rows may repeat an id, columns never collide. */
#pragma omp parallel for num_threads(par_threads(ctx, (size_t)n * C)) schedule(static)
    for (int c = 0; c < C; c++)
        for (int i = 0; i < n; i++) dtable[(size_t)ids[i] * C + c] += dout[(size_t)i * C + c];
}

/* A row's e^(x_j - max) are kept for its first CE_KEEP logits (GPT-2's
 * 50257 all fit: 256 KiB of each thread's stack) and computed a second time
 * beyond them. */
#define CE_KEEP 65536

/* One row: the max, Σ e^(x_j - max) as the forward sums it (ops_cpu_math.h;
 * past CE_KEEP logits in two parts, so the last bits may differ) while
 * keeping the terms in e, then dx += scale/Σ · e. */
CLONES_X86_64_V3 static void cross_entropy_backward_row(float *dx, const float *x, int V, int target, float scale,
                                                        float *e)
{
    const int kept = V < CE_KEEP ? V : CE_KEEP;
    const float m = ops_cpu_row_max(x, V);
    const double sum = ops_cpu_sum_exp(x, kept, m, e) + ops_cpu_sum_exp(x + kept, V - kept, m, NULL);
    const float f = (float)(scale / sum);
#pragma omp simd
    for (int j = 0; j < kept; j++) dx[j] += f * e[j];
#pragma omp simd
    for (int j = kept; j < V; j++) dx[j] += f * fast_expf(x[j] - m);
    dx[target] -= scale;
}

void ops_cross_entropy_backward(ops_ctx *ctx, float *dlogits, const float *logits,
                                const int32_t *targets, int M, int V, float scale)
{
    if (V <= 0) return;
#pragma omp parallel num_threads(par_threads(ctx, (size_t)M * V))
    {
        float e[V < CE_KEEP ? V : CE_KEEP];
#pragma omp for schedule(static)
        for (int m = 0; m < M; m++)
            if (targets[m] >= 0)
                cross_entropy_backward_row(dlogits + (size_t)m * V, logits + (size_t)m * V, V, targets[m], scale, e);
    }
}
