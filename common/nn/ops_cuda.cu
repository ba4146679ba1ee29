/* The CUDA backend, forward half of ops.h and ops_ext.h: context, memory,
 * scratch, the GEMM, the forward ops, the optimiser and the reductions
 * (attention is in ops_cuda_attention.cu, the backward ops in
 * ops_cuda_backward.cu). Forward ops WRITE their outputs.
 *
 * The arithmetic follows the CPU backend op by op (two-pass LayerNorm,
 * 1/sqrtf, the same activation formulas, double sums where the CPU sums in
 * double), so both backends meet the same fixtures with the same
 * tolerances; they differ in summation order only. */
#define OMPI_SKIP_MPICXX 1 /* mpi.h from C++: the C API only */
#define MPICH_SKIP_MPICXX 1
#include "nn/ops_cuda.h"

extern "C" {
#include "core/mpictx.h"
}

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

/* ---- errors, context ---- */

void ops_cuda_check(cudaError_t rc, const char *what)
{
    if (rc == cudaSuccess) return;
    log_msg(LOG_ERROR, "ops (%s): CUDA error %s: %s", what, cudaGetErrorName(rc), cudaGetErrorString(rc));
    abort();
}

void ops_cuda_check_launch(const char *what) { ops_cuda_check(cudaGetLastError(), what); }

void ops_cuda_check_blas(cublasStatus_t rc, const char *what)
{
    if (rc == CUBLAS_STATUS_SUCCESS) return;
    log_msg(LOG_ERROR, "ops (%s): cuBLAS error %s", what, cublasGetStatusString(rc));
    abort();
}

void ops_cuda_enter(ops_ctx *c)
{
    if (c->device != 0) ops_cuda_check(cudaSetDevice(c->device), "cudaSetDevice");
}

static int create_failed(ops_ctx *c, err_t *e, const char *what, const char *why)
{
    ops_destroy(c);
    return err_set(e, ERR_UNSUPPORTED, "ops: %s failed: %s", what, why);
}

int ops_create(ops_ctx **ctx, int threads, err_t *e)
{
    *ctx = NULL;
    int n = 0;
    cudaError_t rc = cudaGetDeviceCount(&n);
    if (rc != cudaSuccess || n < 1)
        return err_set(e, ERR_UNSUPPORTED, "ops: this clipcap was built for CUDA and no GPU is usable (%s)",
                       rc != cudaSuccess ? cudaGetErrorString(rc) : "no device");
    ops_ctx *c = (ops_ctx *)calloc(1, sizeof *c);
    if (!c) return err_set(e, ERR_NOMEM, "ops: cannot allocate the CUDA context");
    /* one GPU per rank on a node; ranks beyond the GPU count share them */
    c->device = mpictx_local_rank() % n;
    if ((rc = cudaSetDevice(c->device)) != cudaSuccess) return create_failed(c, e, "cudaSetDevice", cudaGetErrorString(rc));
    if ((rc = cudaStreamCreate(&c->stream)) != cudaSuccess)
        return create_failed(c, e, "cudaStreamCreate", cudaGetErrorString(rc));
    cublasStatus_t bs = cublasCreate(&c->blas);
    if (bs == CUBLAS_STATUS_SUCCESS) bs = cublasSetStream(c->blas, c->stream);
    /* plain FP32: TF32 would move GEMMs by ~1e-3 relative, outside the
     * fixtures' tolerances and away from the CPU backend */
    if (bs == CUBLAS_STATUS_SUCCESS) bs = cublasSetMathMode(c->blas, CUBLAS_DEFAULT_MATH);
    if (bs != CUBLAS_STATUS_SUCCESS) return create_failed(c, e, "cuBLAS set-up", cublasGetStatusString(bs));
    *ctx = c;
    return 0;
}

void ops_destroy(ops_ctx *c)
{
    if (!c) return;
    ops_cuda_enter(c);
    if (c->stream) cudaStreamSynchronize(c->stream);
    if (c->comm && c->comm_free) c->comm_free(c->comm);
    ops_cuda_lowp_destroy(c);
    cudaFree(c->idx);
    cudaFree(c->work);
    cudaFree(c->ones);
    cudaFree(c->red);
    cudaFreeHost(c->red_host);
    if (c->blas) cublasDestroy(c->blas);
    if (c->stream) cudaStreamDestroy(c->stream);
    free(c);
}

const char *ops_backend_name(const ops_ctx *ctx) { return "cuda"; }

/* ---- memory ---- */

float *ops_alloc(ops_ctx *c, size_t count, err_t *e)
{
    if (count > SIZE_MAX / sizeof(float) / 2) {
        err_set(e, ERR_NOMEM, "ops: %zu floats overflow the address space", count);
        return NULL;
    }
    ops_cuda_enter(c);
    size_t bytes = (count ? count : 1) * sizeof(float);
    void *p = NULL;
    cudaError_t rc = cudaMalloc(&p, bytes);
    if (rc != cudaSuccess) {
        cudaGetLastError(); /* an allocation failure is not sticky; clear it */
        err_set(e, ERR_NOMEM, "ops: cannot allocate %zu floats (%.1f MiB) on GPU %d: %s", count,
                (double)bytes / (1024.0 * 1024.0), c->device, cudaGetErrorString(rc));
        return NULL;
    }
    ops_cuda_check(cudaMemsetAsync(p, 0, bytes, c->stream), "ops_alloc zero");
    return (float *)p;
}

void ops_free(ops_ctx *c, void *p)
{
    if (!p) return;
    ops_cuda_enter(c);
    /* queued kernels may still use p */
    ops_cuda_check(cudaStreamSynchronize(c->stream), "ops_free");
    ops_cuda_lowp_forget(c, p);
    ops_cuda_check(cudaFree(p), "ops_free");
}

/* Synchronous, as on the CPU: the host buffer may be reused on return. */
void ops_upload(ops_ctx *c, float *dst, const float *host_src, size_t count)
{
    if (!count) return;
    ops_cuda_enter(c);
    ops_lowp_touch(&c->lowp, dst, count);
    ops_cuda_check(cudaMemcpyAsync(dst, host_src, count * sizeof(float), cudaMemcpyHostToDevice, c->stream), "ops_upload");
    ops_cuda_check(cudaStreamSynchronize(c->stream), "ops_upload");
}

void ops_download(ops_ctx *c, float *host_dst, const float *src, size_t count)
{
    if (!count) return;
    ops_cuda_enter(c);
    ops_cuda_check(cudaMemcpyAsync(host_dst, src, count * sizeof(float), cudaMemcpyDeviceToHost, c->stream),
                   "ops_download");
    ops_cuda_check(cudaStreamSynchronize(c->stream), "ops_download");
}

__global__ void k_fill(float *x, float v, size_t n)
{
    OPS_GRID_LOOP(i, n) x[i] = v;
}

void ops_fill(ops_ctx *c, float *x, float value, size_t count)
{
    if (!count) return;
    ops_cuda_enter(c);
    ops_lowp_touch(&c->lowp, x, count);
    k_fill<<<ops_cuda_blocks(count, OPS_CUDA_THREADS), OPS_CUDA_THREADS, 0, c->stream>>>(x, value, count);
    ops_cuda_check_launch("ops_fill");
}

void ops_copy(ops_ctx *c, float *dst, const float *src, size_t count)
{
    if (!count || dst == src) return;
    ops_cuda_enter(c);
    ops_lowp_touch(&c->lowp, dst, count);
    const size_t bytes = count * sizeof(float);
    if (dst < src + count && src < dst + count) { /* memmove: through scratch */
        float *tmp = ops_cuda_work(c, count);
        ops_cuda_check(cudaMemcpyAsync(tmp, src, bytes, cudaMemcpyDeviceToDevice, c->stream), "ops_copy");
        src = tmp;
    }
    ops_cuda_check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, c->stream), "ops_copy");
}

/* ---- scratch ---- */

/* Make *buf hold at least n elements of size sz (contents not kept). */
static void *grow(ops_ctx *c, void **buf, size_t *cap, size_t n, size_t sz, const char *what)
{
    if (n <= *cap && *buf) return *buf;
    ops_cuda_check(cudaStreamSynchronize(c->stream), what); /* no queued kernel reads the old one */
    ops_cuda_check(cudaFree(*buf), what);
    *buf = NULL;
    *cap = 0;
    size_t want = n < 1024 ? 1024 : n + n / 2;
    ops_cuda_check(cudaMalloc(buf, want * sz), what);
    *cap = want;
    return *buf;
}

const int32_t *ops_cuda_stage_ids(ops_ctx *c, const int32_t *a, size_t na, const int32_t *b, size_t nb,
                                  const int32_t **b_dev)
{
    /* b starts on a 64-element boundary, keeping both aligned */
    size_t off = (na + 63) & ~(size_t)63;
    int32_t *d = (int32_t *)grow(c, (void **)&c->idx, &c->idx_cap, off + nb, sizeof(int32_t), "index staging");
    /* Pageable host memory: the copy returns once the values are staged, so
     * the caller may reuse its array; the kernel that reads them is queued
     * after the copy on the same stream. */
    if (na) ops_cuda_check(cudaMemcpyAsync(d, a, na * sizeof(int32_t), cudaMemcpyHostToDevice, c->stream), "index staging");
    if (b && nb)
        ops_cuda_check(cudaMemcpyAsync(d + off, b, nb * sizeof(int32_t), cudaMemcpyHostToDevice, c->stream),
                       "index staging");
    if (b_dev) *b_dev = d + off;
    return d;
}

float *ops_cuda_work(ops_ctx *c, size_t n)
{
    return (float *)grow(c, (void **)&c->work, &c->work_cap, n, sizeof(float), "work scratch");
}

const float *ops_cuda_ones(ops_ctx *c, size_t n)
{
    if (n <= c->ones_cap && c->ones) return c->ones;
    float *o = (float *)grow(c, (void **)&c->ones, &c->ones_cap, n, sizeof(float), "ones vector");
    k_fill<<<ops_cuda_blocks(c->ones_cap, OPS_CUDA_THREADS), OPS_CUDA_THREADS, 0, c->stream>>>(o, 1.0f, c->ones_cap);
    ops_cuda_check_launch("ones vector");
    return o;
}

double *ops_cuda_red(ops_ctx *c, size_t n)
{
    if (n <= c->red_cap && c->red) return c->red;
    size_t before = c->red_cap;
    double *r = (double *)grow(c, (void **)&c->red, &c->red_cap, n, sizeof(double), "reduction scratch");
    if (c->red_cap != before || !c->red_host) {
        ops_cuda_check(cudaFreeHost(c->red_host), "reduction scratch");
        c->red_host = NULL;
        ops_cuda_check(cudaMallocHost((void **)&c->red_host, c->red_cap * sizeof(double)), "reduction scratch");
    }
    return r;
}

/* Copy the first n partials of c->red to the host and wait for them. */
static const double *read_red(ops_ctx *c, size_t n, const char *what)
{
    ops_cuda_check(cudaMemcpyAsync(c->red_host, c->red, n * sizeof(double), cudaMemcpyDeviceToHost, c->stream), what);
    ops_cuda_check(cudaStreamSynchronize(c->stream), what);
    return c->red_host;
}

/* ---- GEMM ---- */

void ops_cuda_gemm(ops_ctx *c, int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
                   const float *B, int ldb, float beta, float *C, int ldc)
{
    if (M <= 0 || N <= 0) return;
    /* column-major Cᵀ[N,M] = op(B)ᵀ·op(A)ᵀ: the row-major buffers read as
     * column-major are already the transposes */
    ops_cuda_check_blas(cublasSgemm(c->blas, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, trans_a ? CUBLAS_OP_T : CUBLAS_OP_N,
                                    N, M, K, &alpha, B, ldb, A, lda, &beta, C, ldc),
                        "cublasSgemm");
}

__global__ void k_bias_rows(float *out, const float *bias, size_t total, int N)
{
    OPS_GRID_LOOP(i, total) out[i] = bias[i % (size_t)N];
}

void ops_matmul(ops_ctx *c, float *out, const float *in, const float *w, const float *bias, int M, int K, int N,
                enum ops_weight_layout layout)
{
    if (M <= 0 || N <= 0) return;
    ops_cuda_enter(c);
    const size_t total = (size_t)M * N;
    float beta = 0.0f;
    if (bias) { /* seed with the bias, the GEMM adds onto it */
        k_bias_rows<<<ops_cuda_blocks(total, OPS_CUDA_THREADS), OPS_CUDA_THREADS, 0, c->stream>>>(out, bias, total, N);
        ops_cuda_check_launch("ops_matmul bias");
        beta = 1.0f;
    }
    if (K <= 0) {
        if (!bias) ops_fill(c, out, 0.0f, total);
        return;
    }
    if (layout == OPS_W_NK)
        ops_cuda_gemm_prec(c, 0, 1, M, N, K, in, K, w, K, beta, out, N);
    else
        ops_cuda_gemm_prec(c, 0, 0, M, N, K, in, K, w, N, beta, out, N);
}

/* ---- LayerNorm: one warp per row ---- */

#define LN_WARPS 4

__global__ void k_layernorm(float *out, float *mean, float *rstd, const float *in, const float *g, const float *b,
                            int M, int C, float eps)
{
    const int row = blockIdx.x * LN_WARPS + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    if (row >= M) return; /* the whole warp leaves together */
    const float *x = in + (size_t)row * C;
    float *y = out + (size_t)row * C;
    float s = 0.0f;
    for (int i = lane; i < C; i += 32) s += x[i];
    const float m = ops_warp_sum(s) / (float)C;
    float v = 0.0f; /* centred second pass, as on the CPU */
    for (int i = lane; i < C; i += 32) {
        float d = x[i] - m;
        v += d * d;
    }
    const float r = 1.0f / sqrtf(ops_warp_sum(v) / (float)C + eps);
    for (int i = lane; i < C; i += 32) y[i] = (x[i] - m) * r * g[i] + b[i];
    if (lane == 0) {
        if (mean) mean[row] = m;
        if (rstd) rstd[row] = r;
    }
}

void ops_layernorm(ops_ctx *c, float *out, float *mean, float *rstd, const float *in, const float *g, const float *b,
                   int M, int C, float eps)
{
    if (M <= 0 || C <= 0) return;
    ops_cuda_enter(c);
    k_layernorm<<<(M + LN_WARPS - 1) / LN_WARPS, 32 * LN_WARPS, 0, c->stream>>>(out, mean, rstd, in, g, b, M, C, eps);
    ops_cuda_check_launch("ops_layernorm");
}

/* ---- elementwise ---- */

template <typename F> __global__ void k_map(float *out, const float *in, size_t n, F f)
{
    OPS_GRID_LOOP(i, n) out[i] = f(in[i]);
}

template <typename F> static void map(ops_ctx *c, float *out, const float *in, size_t n, F f, const char *what)
{
    if (!n) return;
    ops_cuda_enter(c);
    k_map<<<ops_cuda_blocks(n, OPS_CUDA_THREADS), OPS_CUDA_THREADS, 0, c->stream>>>(out, in, n, f);
    ops_cuda_check_launch(what);
}

struct f_gelu_tanh { /* 0.5·x·(1 + tanh(u)) = x·σ(2u), the CPU's form */
    __device__ float operator()(float x) const
    {
        const float k = 0.7978845608028654f;
        return x / (1.0f + expf(-2.0f * k * (x + 0.044715f * x * x * x)));
    }
};
struct f_quick_gelu {
    __device__ float operator()(float x) const { return x / (1.0f + expf(-1.702f * x)); }
};
struct f_gelu_erf {
    __device__ float operator()(float x) const { return 0.5f * x * (1.0f + erff(x * 0.7071067811865476f)); }
};
struct f_tanh {
    __device__ float operator()(float x) const { return tanhf(x); }
};
struct f_relu {
    __device__ float operator()(float x) const { return x > 0.0f ? x : 0.0f; }
};
struct f_scale {
    float s;
    __device__ float operator()(float x) const { return x * s; }
};

void ops_gelu_tanh(ops_ctx *c, float *out, const float *in, size_t n) { map(c, out, in, n, f_gelu_tanh(), "ops_gelu_tanh"); }
void ops_quick_gelu(ops_ctx *c, float *out, const float *in, size_t n) { map(c, out, in, n, f_quick_gelu(), "ops_quick_gelu"); }
void ops_gelu_erf(ops_ctx *c, float *out, const float *in, size_t n) { map(c, out, in, n, f_gelu_erf(), "ops_gelu_erf"); }
void ops_tanh(ops_ctx *c, float *out, const float *in, size_t n) { map(c, out, in, n, f_tanh(), "ops_tanh"); }
void ops_relu(ops_ctx *c, float *out, const float *in, size_t n) { map(c, out, in, n, f_relu(), "ops_relu"); }
void ops_scale(ops_ctx *c, float *x, float s, size_t n)
{
    ops_lowp_touch(&c->lowp, x, n);
    map(c, x, x, n, f_scale{s}, "ops_scale");
}

__global__ void k_add(float *out, const float *a, const float *b, size_t n)
{
    OPS_GRID_LOOP(i, n) out[i] = a[i] + b[i];
}

void ops_add(ops_ctx *c, float *out, const float *a, const float *b, size_t n)
{
    if (!n) return;
    ops_cuda_enter(c);
    k_add<<<ops_cuda_blocks(n, OPS_CUDA_THREADS), OPS_CUDA_THREADS, 0, c->stream>>>(out, a, b, n);
    ops_cuda_check_launch("ops_add");
}

/* ---- gathers ---- */

__global__ void k_gather_rows(float *out, const float *table, const int32_t *ids, size_t total, int C)
{
    OPS_GRID_LOOP(i, total) out[i] = table[(size_t)ids[i / (size_t)C] * C + i % (size_t)C];
}

void ops_gather_rows(ops_ctx *c, float *out, const float *table, const int32_t *ids, int n, int C)
{
    if (n <= 0 || C <= 0) return;
    ops_cuda_enter(c);
    const int32_t *d = ops_cuda_stage_ids(c, ids, (size_t)n, NULL, 0, NULL);
    const size_t total = (size_t)n * C;
    k_gather_rows<<<ops_cuda_blocks(total, OPS_CUDA_THREADS), OPS_CUDA_THREADS, 0, c->stream>>>(out, table, d, total, C);
    ops_cuda_check_launch("ops_gather_rows");
}

__global__ void k_scatter_rows(float *dst, size_t dst_stride, const int32_t *rows, const float *src, size_t src_stride,
                               size_t total, int C)
{
    OPS_GRID_LOOP(i, total)
    {
        const size_t r = i / (size_t)C, col = i % (size_t)C;
        dst[(size_t)rows[r] * dst_stride + col] = src[r * src_stride + col];
    }
}

void ops_scatter_rows(ops_ctx *c, float *dst, size_t dst_stride, const int32_t *rows, const float *src,
                      size_t src_stride, int n, int C)
{
    if (n <= 0 || C <= 0) return;
    ops_cuda_enter(c);
    const int32_t *d = ops_cuda_stage_ids(c, rows, (size_t)n, NULL, 0, NULL);
    const size_t total = (size_t)n * C;
    k_scatter_rows<<<ops_cuda_blocks(total, OPS_CUDA_THREADS), OPS_CUDA_THREADS, 0, c->stream>>>(
        dst, dst_stride, d, src, src_stride, total, C);
    ops_cuda_check_launch("ops_scatter_rows");
}

__global__ void k_im2patch(float *out, const float *images, size_t total, int S, int P)
{
    const int G = S / P, L = G * G, F = 3 * P * P;
    OPS_GRID_LOOP(i, total)
    {
        size_t bp = i / F;
        int f = (int)(i % F);
        int ch = f / (P * P), r = (f / P) % P, col = f % P;
        size_t b = bp / L;
        int patch = (int)(bp % L), py = patch / G, px = patch % G;
        out[i] = images[((b * 3 + ch) * S + (size_t)py * P + r) * S + (size_t)px * P + col];
    }
}

void ops_im2patch(ops_ctx *c, float *out, const float *images, int B, int S, int P)
{
    const int G = S / P;
    const size_t total = (size_t)B * G * G * 3 * P * P;
    if (!total) return;
    ops_cuda_enter(c);
    k_im2patch<<<ops_cuda_blocks(total, OPS_CUDA_THREADS), OPS_CUDA_THREADS, 0, c->stream>>>(out, images, total, S, P);
    ops_cuda_check_launch("ops_im2patch");
}

/* ---- cross-entropy: one block per row ---- */

#define XENT_THREADS 256

__global__ void k_cross_entropy(float *losses, double *row_loss, const float *logits, const int32_t *targets, int V)
{
    __shared__ float shf[32];
    __shared__ double shd[32];
    const int i = blockIdx.x, t = targets[i];
    if (t < 0) { /* the whole block leaves together */
        if (threadIdx.x == 0) losses[i] = 0.0f, row_loss[i] = 0.0;
        return;
    }
    const float *x = logits + (size_t)i * V;
    float m = -INFINITY;
    for (int j = threadIdx.x; j < V; j += blockDim.x) m = fmaxf(m, x[j]);
    m = ops_block_reduce(m, ops_max_op(), shf);
    /* the normaliser in double, as on the CPU: V is 50257 for GPT-2 */
    double s = 0.0;
    for (int j = threadIdx.x; j < V; j += blockDim.x) s += (double)expf(x[j] - m);
    s = ops_block_reduce(s, ops_sum_op(), shd);
    if (threadIdx.x == 0) {
        double loss = log(s) + m - x[t];
        losses[i] = (float)loss;
        row_loss[i] = loss;
    }
}

float ops_cross_entropy(ops_ctx *c, float *losses, const float *logits, const int32_t *targets, int M, int V)
{
    if (M <= 0) return 0.0f;
    ops_cuda_enter(c);
    const int32_t *t = ops_cuda_stage_ids(c, targets, (size_t)M, NULL, 0, NULL);
    double *rl = ops_cuda_red(c, (size_t)M);
    k_cross_entropy<<<M, XENT_THREADS, 0, c->stream>>>(losses, rl, logits, t, V);
    ops_cuda_check_launch("ops_cross_entropy");
    const double *h = read_red(c, (size_t)M, "ops_cross_entropy");
    double total = 0.0;
    long counted = 0;
    for (int i = 0; i < M; i++)
        if (targets[i] >= 0) total += h[i], counted++;
    return counted ? (float)(total / (double)counted) : 0.0f;
}

/* ---- optimiser and reductions ---- */

__global__ void k_adamw(float *params, const float *grads, float *m, float *v, size_t n, float beta1, float beta2,
                        float eps, float step_size, float bc2_sqrt, float decay)
{
    OPS_GRID_LOOP(i, n)
    {
        float g = grads[i];
        float mi = beta1 * m[i] + (1.0f - beta1) * g;
        float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
        m[i] = mi;
        v[i] = vi;
        params[i] = params[i] * decay - step_size * mi / (sqrtf(vi) / bc2_sqrt + eps);
    }
}

void ops_adamw(ops_ctx *c, float *params, const float *grads, float *m, float *v, size_t n, float lr, float beta1,
               float beta2, float eps, float weight_decay, int step)
{
    if (!n) return;
    ops_cuda_enter(c);
    ops_lowp_touch(&c->lowp, params, n);
    /* the bias corrections exactly as the CPU backend computes them */
    const float bc1 = 1.0f - powf(beta1, (float)step);
    const float bc2 = 1.0f - powf(beta2, (float)step);
    k_adamw<<<ops_cuda_blocks(n, OPS_CUDA_THREADS), OPS_CUDA_THREADS, 0, c->stream>>>(
        params, grads, m, v, n, beta1, beta2, eps, lr / bc1, sqrtf(bc2), 1.0f - lr * weight_decay);
    ops_cuda_check_launch("ops_adamw");
}

#define SUMSQ_BLOCKS 1024

__global__ void k_sum_squares(double *partial, const float *x, size_t n)
{
    __shared__ double sh[32];
    double s = 0.0;
    OPS_GRID_LOOP(i, n) s += (double)x[i] * x[i];
    s = ops_block_reduce(s, ops_sum_op(), sh);
    if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

double ops_sum_squares(ops_ctx *c, const float *x, size_t n)
{
    if (!n) return 0.0;
    ops_cuda_enter(c);
    unsigned blocks = ops_cuda_blocks(n, OPS_CUDA_THREADS);
    if (blocks > SUMSQ_BLOCKS) blocks = SUMSQ_BLOCKS;
    double *p = ops_cuda_red(c, blocks);
    k_sum_squares<<<blocks, OPS_CUDA_THREADS, 0, c->stream>>>(p, x, n);
    ops_cuda_check_launch("ops_sum_squares");
    const double *h = read_red(c, blocks, "ops_sum_squares");
    double s = 0.0; /* in block order: the same bits every run */
    for (unsigned i = 0; i < blocks; i++) s += h[i];
    return s;
}
