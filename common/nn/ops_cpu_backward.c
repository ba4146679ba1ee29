/* The CPU backend's backward ops (llm.c's formulas): GEMMs through OpenBLAS,
 * the rest as OpenMP loops. Every function ACCUMULATES into its gradients
 * and skips a NULL one entirely, so a frozen model's weight gradients cost
 * nothing. Reductions over rows (bias, LayerNorm gain/bias gradients) are
 * parallel over columns, so each sum keeps one fixed order whatever the
 * thread count: results do not depend on OMP_NUM_THREADS. */
#include "nn/ops_cpu.h"

#include <cblas.h>
#include <math.h>

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
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, K, N, 1.0f, dout, N, w, K, 1.0f, din, K);
        else
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, K, N, 1.0f, dout, N, w, N, 1.0f, din, K);
    }
    if (dw) {
        /* NK: dW[N,K] += doutᵀ·in;  KN: dW[K,N] += inᵀ·dout */
        if (layout == OPS_W_NK)
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, N, K, M, 1.0f, dout, N, in, K, 1.0f, dw, K);
        else
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, K, N, M, 1.0f, in, K, dout, N, 1.0f, dw, N);
    }
    if (dbias) {
#pragma omp parallel for num_threads(par_threads(ctx, (size_t)M * N)) schedule(static)
        for (int n = 0; n < N; n++) {
            float s = 0.0f;
            for (int m = 0; m < M; m++) s += dout[(size_t)m * N + n];
            dbias[n] += s;
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

void ops_gelu_tanh_backward(ops_ctx *ctx, float *din, const float *in, const float *dout, size_t n)
{
    const float s = sqrtf(2.0f / (float)M_PI);
#pragma omp parallel for num_threads(par_threads(ctx, n)) schedule(static)
    for (size_t i = 0; i < n; i++) {
        float x = in[i];
        float u = s * (x + 0.044715f * x * x * x);
        float t = tanhf(u);
        float sech2 = 1.0f - t * t;
        float local = 0.5f * (1.0f + t) + 0.5f * x * sech2 * s * (1.0f + 3.0f * 0.044715f * x * x);
        din[i] += local * dout[i];
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

/* Per (batch, head), for query row i:
 *   dv_j += p_ij·do_i;  dp_ij = do_i·v_j;  ds_ij = p_ij (dp_ij − Σ_j p_ij dp_ij)
 *   dq_i += scale Σ_j ds_ij k_j;  dk_j += scale ds_ij q_i.
 * Masked keys have p_ij = 0 and are skipped, so the causal flag is not
 * needed. Each (batch, head) writes only its own slice of dq/dk/dv, which
 * makes the (b, h) loop safe to run in parallel. */
void ops_attention_backward(ops_ctx *ctx, float *dq, float *dk, float *dv, const float *dout,
                            const float *probs, const float *q, const float *k, const float *v,
                            int B, int Tq, int Tk, int H, int D, int q_stride, int kv_stride,
                            float scale)
{
    const int C = H * D;
    size_t work = (size_t)B * H * Tq * Tk * D;
#pragma omp parallel num_threads(par_threads(ctx, work))
    {
        float dp[Tk]; /* Tk <= the context length: a few KB of stack */
#pragma omp for collapse(2) schedule(static)
        for (int b = 0; b < B; b++) {
            for (int h = 0; h < H; h++) {
                for (int i = 0; i < Tq; i++) {
                    const float *p = probs + (((size_t)b * H + h) * Tq + i) * Tk;
                    const float *doi = dout + ((size_t)b * Tq + i) * C + (size_t)h * D;
                    const float *qi = q + ((size_t)b * Tq + i) * q_stride + (size_t)h * D;
                    float dsum = 0.0f;
                    for (int j = 0; j < Tk; j++) {
                        dp[j] = 0.0f;
                        if (p[j] == 0.0f) continue;
                        const float *vj = v + ((size_t)b * Tk + j) * kv_stride + (size_t)h * D;
                        float s = 0.0f;
                        for (int d = 0; d < D; d++) s += doi[d] * vj[d];
                        dp[j] = s;
                        dsum += p[j] * s;
                        if (dv) {
                            float *dvj = dv + ((size_t)b * Tk + j) * kv_stride + (size_t)h * D;
                            for (int d = 0; d < D; d++) dvj[d] += p[j] * doi[d];
                        }
                    }
                    float *dqi = dq ? dq + ((size_t)b * Tq + i) * q_stride + (size_t)h * D : NULL;
                    for (int j = 0; j < Tk; j++) {
                        if (p[j] == 0.0f) continue;
                        float ds = p[j] * (dp[j] - dsum) * scale;
                        const float *kj = k + ((size_t)b * Tk + j) * kv_stride + (size_t)h * D;
                        if (dqi)
                            for (int d = 0; d < D; d++) dqi[d] += ds * kj[d];
                        if (dk) {
                            float *dkj = dk + ((size_t)b * Tk + j) * kv_stride + (size_t)h * D;
                            for (int d = 0; d < D; d++) dkj[d] += ds * qi[d];
                        }
                    }
                }
            }
        }
    }
}

void ops_scatter_add_rows(ops_ctx *ctx, float *dtable, const float *dout, const int32_t *ids, int n, int C)
{
    /* Parallel over columns: rows may repeat an id, columns never collide. */
#pragma omp parallel for num_threads(par_threads(ctx, (size_t)n * C)) schedule(static)
    for (int c = 0; c < C; c++)
        for (int i = 0; i < n; i++) dtable[(size_t)ids[i] * C + c] += dout[(size_t)i * C + c];
}

void ops_cross_entropy_backward(ops_ctx *ctx, float *dlogits, const float *logits,
                                const int32_t *targets, int M, int V, float scale)
{
#pragma omp parallel for num_threads(par_threads(ctx, (size_t)M * V)) schedule(static)
    for (int m = 0; m < M; m++) {
        if (targets[m] < 0) continue;
        const float *x = logits + (size_t)m * V;
        float *dx = dlogits + (size_t)m * V;
        float mx = x[0];
        for (int j = 1; j < V; j++) mx = x[j] > mx ? x[j] : mx;
        double sum = 0.0;
        for (int j = 0; j < V; j++) sum += expf(x[j] - mx);
        float inv = (float)(1.0 / sum);
        for (int j = 0; j < V; j++) dx[j] += scale * expf(x[j] - mx) * inv;
        dx[targets[m]] -= scale;
    }
}
