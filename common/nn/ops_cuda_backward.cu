/* The CUDA backend's backward ops except attention (ops_cuda_attention.cu),
 * with the CPU backend's formulas. Every function ACCUMULATES and skips a
 * NULL gradient. Sums over rows (bias, LayerNorm gain and bias, embedding
 * rows) run in one fixed order per column, so a step's gradients have the
 * same bits on every run; no atomics. */
#include "nn/ops_cuda.h"

#include <math.h>

/* ---- matmul ---- */

void ops_matmul_backward(ops_ctx *c, float *din, float *dw, float *dbias, const float *dout, const float *in,
                         const float *w, int M, int K, int N, enum ops_weight_layout layout)
{
    if (M <= 0 || N <= 0) return;
    ops_cuda_enter(c);
    if (din) {
        /* NK: din[M,K] += dout[M,N]·W[N,K];  KN: din += dout·W[K,N]ᵀ */
        if (layout == OPS_W_NK)
            ops_cuda_gemm_prec(c, 0, 0, M, K, N, dout, N, w, K, 1.0f, din, K);
        else
            ops_cuda_gemm_prec(c, 0, 1, M, K, N, dout, N, w, N, 1.0f, din, K);
    }
    if (dw) {
        /* NK: dW[N,K] += doutᵀ·in;  KN: dW[K,N] += inᵀ·dout */
        if (layout == OPS_W_NK)
            ops_cuda_gemm_prec(c, 1, 0, N, K, M, dout, N, in, K, 1.0f, dw, K);
        else
            ops_cuda_gemm_prec(c, 1, 0, K, N, M, in, K, dout, N, 1.0f, dw, N);
    }
    if (dbias) {
        /* dbias[N] += doutᵀ·1: dout read column-major is the [N, M] matrix */
        const float one = 1.0f;
        const float *ones = ops_cuda_ones(c, (size_t)M);
        ops_cuda_check_blas(cublasSgemv(c->blas, CUBLAS_OP_N, N, M, &one, dout, N, ones, 1, &one, dbias, 1),
                            "cublasSgemv (bias gradient)");
    }
}

/* ---- LayerNorm ---- */

#define LN_WARPS 4

__global__ void k_layernorm_backward_in(float *din, const float *dout, const float *in, const float *g,
                                        const float *mean, const float *rstd, int M, int C)
{
    const int row = blockIdx.x * LN_WARPS + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    if (row >= M) return;
    const float *x = in + (size_t)row * C, *dy = dout + (size_t)row * C;
    const float mu = mean[row], rs = rstd[row];
    float a = 0.0f, b = 0.0f;
    for (int i = lane; i < C; i += 32) {
        float dnorm = g[i] * dy[i];
        a += dnorm;
        b += dnorm * (x[i] - mu) * rs;
    }
    const float dnorm_mean = ops_warp_sum(a) / (float)C, dnorm_norm_mean = ops_warp_sum(b) / (float)C;
    float *dx = din + (size_t)row * C;
    for (int i = lane; i < C; i += 32) {
        float norm = (x[i] - mu) * rs;
        dx[i] += (g[i] * dy[i] - dnorm_mean - norm * dnorm_norm_mean) * rs;
    }
}

/* Column sums: a 32×8 block owns 32 columns; each of its 8 rows of threads
 * sums every 8th row of the input, then the 8 partials are added in order. */
#define COL_X 32
#define COL_Y 8

__global__ void k_layernorm_backward_gb(float *dg, float *db, const float *dout, const float *in, const float *mean,
                                        const float *rstd, int M, int C)
{
    __shared__ float sg[COL_Y][COL_X], sb[COL_Y][COL_X];
    const int col = blockIdx.x * COL_X + threadIdx.x;
    float ag = 0.0f, ab = 0.0f;
    if (col < C)
        for (int m = threadIdx.y; m < M; m += COL_Y) {
            float dy = dout[(size_t)m * C + col];
            ag += (in[(size_t)m * C + col] - mean[m]) * rstd[m] * dy;
            ab += dy;
        }
    sg[threadIdx.y][threadIdx.x] = ag;
    sb[threadIdx.y][threadIdx.x] = ab;
    __syncthreads();
    if (threadIdx.y == 0 && col < C) {
        for (int y = 1; y < COL_Y; y++) ag += sg[y][threadIdx.x], ab += sb[y][threadIdx.x];
        if (dg) dg[col] += ag;
        if (db) db[col] += ab;
    }
}

void ops_layernorm_backward(ops_ctx *c, float *din, float *dg, float *db, const float *dout, const float *in,
                            const float *g, const float *mean, const float *rstd, int M, int C)
{
    if (M <= 0 || C <= 0) return;
    ops_cuda_enter(c);
    if (din) {
        k_layernorm_backward_in<<<(M + LN_WARPS - 1) / LN_WARPS, 32 * LN_WARPS, 0, c->stream>>>(din, dout, in, g, mean,
                                                                                               rstd, M, C);
        ops_cuda_check_launch("ops_layernorm_backward (input)");
    }
    if (dg || db) {
        k_layernorm_backward_gb<<<(C + COL_X - 1) / COL_X, dim3(COL_X, COL_Y), 0, c->stream>>>(dg, db, dout, in, mean,
                                                                                             rstd, M, C);
        ops_cuda_check_launch("ops_layernorm_backward (gain, bias)");
    }
}

/* ---- elementwise: din += f(a, dout) ---- */

template <typename F> __global__ void k_grad(float *din, const float *a, const float *dout, size_t n, F f)
{
    OPS_GRID_LOOP(i, n) din[i] += f(a[i], dout[i]);
}

template <typename F>
static void grad(ops_ctx *c, float *din, const float *a, const float *dout, size_t n, F f, const char *what)
{
    if (!n || !din) return;
    ops_cuda_enter(c);
    k_grad<<<ops_cuda_blocks(n, OPS_CUDA_THREADS), OPS_CUDA_THREADS, 0, c->stream>>>(din, a, dout, n, f);
    ops_cuda_check_launch(what);
}

struct g_gelu_tanh { /* a is the forward input */
    __device__ float operator()(float x, float dy) const
    {
        const float s = 0.7978845608028654f; /* sqrt(2/pi) */
        float u = s * (x + 0.044715f * x * x * x);
        float t = tanhf(u);
        float sech2 = 1.0f - t * t;
        return (0.5f * (1.0f + t) + 0.5f * x * sech2 * s * (1.0f + 3.0f * 0.044715f * x * x)) * dy;
    }
};
struct g_tanh { /* a is the forward output */
    __device__ float operator()(float y, float dy) const { return (1.0f - y * y) * dy; }
};
struct g_relu {
    __device__ float operator()(float x, float dy) const { return x > 0.0f ? dy : 0.0f; }
};

void ops_gelu_tanh_backward(ops_ctx *c, float *din, const float *in, const float *dout, size_t n)
{
    grad(c, din, in, dout, n, g_gelu_tanh(), "ops_gelu_tanh_backward");
}

void ops_tanh_backward(ops_ctx *c, float *din, const float *out, const float *dout, size_t n)
{
    grad(c, din, out, dout, n, g_tanh(), "ops_tanh_backward");
}

void ops_relu_backward(ops_ctx *c, float *din, const float *in, const float *dout, size_t n)
{
    grad(c, din, in, dout, n, g_relu(), "ops_relu_backward");
}

/* ---- embedding rows: one thread per column, rows in order (ids repeat,
 * columns never collide) ---- */

__global__ void k_scatter_add_rows(float *dtable, const float *dout, const int32_t *ids, int n, int C)
{
    const int col = blockIdx.x * blockDim.x + threadIdx.x;
    if (col >= C) return;
    for (int i = 0; i < n; i++) dtable[(size_t)ids[i] * C + col] += dout[(size_t)i * C + col];
}

void ops_scatter_add_rows(ops_ctx *c, float *dtable, const float *dout, const int32_t *ids, int n, int C)
{
    if (!dtable || n <= 0 || C <= 0) return;
    ops_cuda_enter(c);
    const int32_t *d = ops_cuda_stage_ids(c, ids, (size_t)n, NULL, 0, NULL);
    k_scatter_add_rows<<<(C + 127) / 128, 128, 0, c->stream>>>(dtable, dout, d, n, C);
    ops_cuda_check_launch("ops_scatter_add_rows");
}

/* ---- cross-entropy: one block per row ---- */

#define XENT_THREADS 256

__global__ void k_cross_entropy_backward(float *dlogits, const float *logits, const int32_t *targets, int V,
                                         float scale)
{
    __shared__ float shf[32];
    __shared__ double shd[32];
    const int m = blockIdx.x, t = targets[m];
    if (t < 0) return;
    const float *x = logits + (size_t)m * V;
    float *dx = dlogits + (size_t)m * V;
    float mx = -INFINITY;
    for (int j = threadIdx.x; j < V; j += blockDim.x) mx = fmaxf(mx, x[j]);
    mx = ops_block_reduce(mx, ops_max_op(), shf);
    double sum = 0.0;
    for (int j = threadIdx.x; j < V; j += blockDim.x) sum += (double)expf(x[j] - mx);
    sum = ops_block_reduce(sum, ops_sum_op(), shd);
    const float inv = (float)(1.0 / sum);
    for (int j = threadIdx.x; j < V; j += blockDim.x) {
        float gj = scale * expf(x[j] - mx) * inv;
        if (j == t) gj -= scale;
        dx[j] += gj;
    }
}

void ops_cross_entropy_backward(ops_ctx *c, float *dlogits, const float *logits, const int32_t *targets, int M, int V,
                                float scale)
{
    if (!dlogits || M <= 0 || V <= 0) return;
    ops_cuda_enter(c);
    const int32_t *t = ops_cuda_stage_ids(c, targets, (size_t)M, NULL, 0, NULL);
    k_cross_entropy_backward<<<M, XENT_THREADS, 0, c->stream>>>(dlogits, logits, t, V, scale);
    ops_cuda_check_launch("ops_cross_entropy_backward");
}
