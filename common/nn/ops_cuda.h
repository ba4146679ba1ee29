/* The CUDA backend's context, shared by ops_cuda.cu (context, memory,
 * forward ops, optimiser, reductions), ops_cuda_attention.cu (the three
 * attention ops), ops_cuda_backward.cu and ops_cuda_comm.cu (the NCCL
 * allreduce). Built instead of the CPU backend with -DCLIPCAP_CUDA=ON.
 *
 * Every op runs in order on the context's one stream; only what returns a
 * value to the host (ops_download, ops_cross_entropy, ops_sum_squares)
 * waits for it. Index arrays (ids, targets, slots, lens, rows) arrive in host
 * memory and are copied into `idx` before the kernel that reads them; the
 * stream's order keeps the next op from overwriting them too early.
 *
 * Growing a scratch buffer first waits for the stream, so that no queued
 * kernel still reads the old one when it is freed.
 *
 * A CUDA failure inside a void op (a bad launch, a device fault) cannot be
 * returned through the op interface: it is logged with the op's name and
 * the process aborts, as llm.c does. Everything fallible at the interface
 * (ops_create, ops_alloc, ops_allreduce_sum) returns an error instead. */
#ifndef CLIPCAP_OPS_CUDA_H
#define CLIPCAP_OPS_CUDA_H

#include <cublas_v2.h>
#include <cuda_runtime.h>

#ifdef __cplusplus
extern "C" { /* the op interface is C; the .cu files define it */
#endif
#include "nn/ops.h"
#include "nn/ops_ext.h"
#include "nn/ops_lowp.h"
#ifdef __cplusplus
}
#endif

struct ops_ctx {
    int device;
    cudaStream_t stream;
    cublasHandle_t blas;
    int32_t *idx; /* staged host index arrays */
    size_t idx_cap;
    float *work; /* attention-backward scores, overlapping copies */
    size_t work_cap;
    float *ones; /* a vector of ones: bias gradients are GEMVs with it */
    size_t ones_cap;
    double *red; /* per-row or per-block partial sums read back by the host */
    size_t red_cap;
    double *red_host; /* their host copy (pinned) */
    /* The NCCL communicator, created by the first ops_allreduce_sum; freed
     * through comm_free so that code which never reduces never links NCCL. */
    void *comm;
    void (*comm_free)(void *comm);
    /* --precision (ops_cuda_lowp.cu): weight copies in bf16/fp16 and the
     * scratch other GEMM operands are converted into */
    ops_lowp lowp;
    void *lp_scratch[2];
    size_t lp_scratch_cap[2];
};

#ifdef __cplusplus
extern "C" {
#endif

/* Abort with "ops (what): <CUDA error>" when rc is not cudaSuccess. */
void ops_cuda_check(cudaError_t rc, const char *what);
/* The same after a kernel launch (cudaGetLastError). */
void ops_cuda_check_launch(const char *what);
void ops_cuda_check_blas(cublasStatus_t rc, const char *what);
/* Make the context's device current on the calling thread (a no-op on
 * device 0, every thread's default). */
void ops_cuda_enter(ops_ctx *c);

/* Device copies of n host int32 values each, placed one after the other
 * in c->idx; returns the device copy of `a` (and of `b` in *b_dev when b is
 * not NULL, count nb). */
const int32_t *ops_cuda_stage_ids(ops_ctx *c, const int32_t *a, size_t na, const int32_t *b, size_t nb,
                                  const int32_t **b_dev);
/* c->work with room for n floats / c->ones with n ones / c->red with n
 * doubles. */
float *ops_cuda_work(ops_ctx *c, size_t n);
const float *ops_cuda_ones(ops_ctx *c, size_t n);
double *ops_cuda_red(ops_ctx *c, size_t n);

/* Row-major C = alpha·op(A)·op(B) + beta·C with cblas_sgemm's arguments,
 * through cuBLAS's column-major GEMM (a row-major matrix is its column-major
 * transpose, so the operands swap). FP32 math throughout. */
void ops_cuda_gemm(ops_ctx *c, int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
                   const float *B, int ldb, float beta, float *C, int ldc);
/* The same (alpha 1) at the context's precision: TF32 tensor cores
 * (CUBLAS_COMPUTE_32F_FAST_TF32) on the float32 operands, or BF16/FP16
 * operands (registered weights from their copy, the rest converted into
 * scratch) with float32 accumulation and a float32 C (cublasGemmEx,
 * CUBLAS_COMPUTE_32F). */
void ops_cuda_gemm_prec(ops_ctx *c, int trans_a, int trans_b, int M, int N, int K, const float *A, int lda,
                        const float *B, int ldb, float beta, float *C, int ldc);
/* ops_free and ops_destroy's share of the precision state. */
void ops_cuda_lowp_forget(ops_ctx *c, void *p);
void ops_cuda_lowp_destroy(ops_ctx *c);

#ifdef __cplusplus
}
#endif

#ifdef __CUDACC__
/* Launch geometry shared by the .cu files. */
#define OPS_CUDA_THREADS 256
static inline unsigned ops_cuda_blocks(size_t n, unsigned threads)
{
    size_t b = (n + threads - 1) / threads;
    return (unsigned)(b < 65535u * 32u ? (b ? b : 1) : 65535u * 32u); /* grid-stride loops cover the rest */
}

/* Every element of [0, n) once, whatever the grid. */
#define OPS_GRID_LOOP(i, n) \
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (n); i += (size_t)gridDim.x * blockDim.x)

/* Butterfly reductions: every lane ends with the same bits (each step adds
 * a pair in both lanes, and a + b == b + a exactly). */
__device__ __forceinline__ float ops_warp_sum(float v)
{
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float ops_warp_max(float v)
{
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

struct ops_sum_op {
    template <typename T> __device__ T operator()(T a, T b) const { return a + b; }
};
struct ops_max_op {
    __device__ float operator()(float a, float b) const { return fmaxf(a, b); }
};

/* A whole block's reduction, the result in every thread. The warps'
 * partials are combined in warp order by every thread, so the result does
 * not depend on scheduling. sh: __shared__ T[32]; blockDim.x a multiple of
 * 32. */
template <typename T, typename Op> __device__ T ops_block_reduce(T v, Op op, T *sh)
{
    for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
    __syncthreads(); /* sh may still be read by a previous reduction */
    if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = v;
    __syncthreads();
    v = sh[0];
    for (int w = 1; w < (int)(blockDim.x >> 5); w++) v = op(v, sh[w]);
    return v;
}
#endif

#endif
