/* The CUDA backend's reduced precisions (ops_ext.h) on tensor cores:
 * TF32 as cuBLAS's CUBLAS_COMPUTE_32F_FAST_TF32 on the float32 buffers;
 * BF16 and FP16 as cublasGemmEx on 16-bit operands with float32
 * accumulation (CUBLAS_COMPUTE_32F) into the float32 output, the same
 * numbers as the CPU backend's (operands rounded to nearest even, exact
 * products, float32 sums) up to summation order. Registered weights keep a
 * 16-bit copy on the device, brought up to date before use after a write;
 * other operands are converted into scratch by one kernel per GEMM.
 * Attention, the softmax and the normalisations stay float32. */
#include "nn/ops_cuda.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdio.h>

static int half_type(const ops_ctx *c) { return c->lowp.prec == OPS_BF16 || c->lowp.prec == OPS_FP16; }

int ops_set_precision(ops_ctx *c, enum ops_precision p, err_t *e)
{
    if ((unsigned)p > OPS_FP16) return err_set(e, ERR_ARG, "ops: unknown precision %d", (int)p);
    if (c->lowp.nranges) return err_set(e, ERR_ARG, "ops: precision set after weights were registered");
    c->lowp.prec = p;
    c->lowp.native = p != OPS_FP32;
    if (p == OPS_FP32) snprintf(c->lowp.impl, sizeof c->lowp.impl, "fp32");
    else snprintf(c->lowp.impl, sizeof c->lowp.impl, "%s (cuBLAS tensor cores, fp32 accumulation)", ops_precision_name(p));
    return 0;
}

enum ops_precision ops_get_precision(const ops_ctx *c) { return c->lowp.prec; }

const char *ops_precision_impl(const ops_ctx *c) { return c->lowp.impl[0] ? c->lowp.impl : "fp32"; }

int ops_register_weights(ops_ctx *c, const float *p, size_t n, err_t *e)
{
    if (!half_type(c) || !n) return 0;
    ops_lowp_range *r = ops_lowp_add(&c->lowp, p, n, e);
    if (!r) return e ? e->code : ERR_LIMIT;
    ops_cuda_enter(c);
    cudaError_t rc = cudaMalloc(&r->shadow, n * 2);
    if (rc != cudaSuccess) {
        cudaGetLastError();
        ops_lowp_remove(&c->lowp, p);
        return err_set(e, ERR_NOMEM, "ops: cannot allocate the %s copy of %zu weights on GPU %d: %s",
                       ops_precision_name(c->lowp.prec), n, c->device, cudaGetErrorString(rc));
    }
    return 0;
}

/* The caller (ops_free, ops_destroy) has synchronised the stream. */
void ops_cuda_lowp_forget(ops_ctx *c, void *p) { cudaFree(ops_lowp_remove(&c->lowp, p)); }

void ops_cuda_lowp_destroy(ops_ctx *c)
{
    while (c->lowp.nranges) cudaFree(ops_lowp_remove(&c->lowp, c->lowp.r[0].base));
    cudaFree(c->lp_scratch[0]);
    cudaFree(c->lp_scratch[1]);
}

template <typename T> __device__ T to_half(float x);
template <> __device__ __nv_bfloat16 to_half<__nv_bfloat16>(float x) { return __float2bfloat16_rn(x); }
template <> __device__ __half to_half<__half>(float x) { return __float2half_rn(x); }

template <typename T> __global__ void k_convert(T *dst, const float *src, size_t n)
{
    OPS_GRID_LOOP(i, n) dst[i] = to_half<T>(src[i]);
}

static void convert(void *user, void *dst, const float *src, size_t n)
{
    ops_ctx *c = (ops_ctx *)user;
    const unsigned blocks = ops_cuda_blocks(n, OPS_CUDA_THREADS);
    if (c->lowp.prec == OPS_BF16)
        k_convert<__nv_bfloat16><<<blocks, OPS_CUDA_THREADS, 0, c->stream>>>((__nv_bfloat16 *)dst, src, n);
    else
        k_convert<__half><<<blocks, OPS_CUDA_THREADS, 0, c->stream>>>((__half *)dst, src, n);
    ops_cuda_check_launch("precision conversion");
}

/* The operand [p, p + n) in 16 bits: a registered weight's copy (brought
 * up to date first) or a conversion into scratch slot `slot`. */
static const void *operand(ops_ctx *c, int slot, const float *p, size_t n)
{
    const void *copy = ops_lowp_copy_of(&c->lowp, p, n, 2, convert, c);
    if (copy) return copy;
    if (n > c->lp_scratch_cap[slot]) {
        /* no queued GEMM still reads the old buffer */
        ops_cuda_check(cudaStreamSynchronize(c->stream), "precision scratch");
        ops_cuda_check(cudaFree(c->lp_scratch[slot]), "precision scratch");
        c->lp_scratch[slot] = NULL;
        c->lp_scratch_cap[slot] = 0;
        size_t want = n + n / 2;
        ops_cuda_check(cudaMalloc(&c->lp_scratch[slot], want * 2), "precision scratch");
        c->lp_scratch_cap[slot] = want;
    }
    convert(c, c->lp_scratch[slot], p, n);
    return c->lp_scratch[slot];
}

void ops_cuda_gemm_prec(ops_ctx *c, int trans_a, int trans_b, int M, int N, int K, const float *A, int lda,
                        const float *B, int ldb, float beta, float *C, int ldc)
{
    if (c->lowp.prec == OPS_FP32 || M <= 0 || N <= 0 || K <= 0) {
        ops_cuda_gemm(c, trans_a, trans_b, M, N, K, 1.0f, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    const float alpha = 1.0f;
    const cublasOperation_t opb = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, opa = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
    /* column-major Cᵀ[N,M] = op(B)ᵀ·op(A)ᵀ, as ops_cuda_gemm */
    if (c->lowp.prec == OPS_TF32) {
        ops_cuda_check_blas(cublasGemmEx(c->blas, opb, opa, N, M, K, &alpha, B, CUDA_R_32F, ldb, A, CUDA_R_32F, lda, &beta,
                                         C, CUDA_R_32F, ldc, CUBLAS_COMPUTE_32F_FAST_TF32, CUBLAS_GEMM_DEFAULT),
                            "cublasGemmEx (tf32)");
        return;
    }
    const cudaDataType_t t = c->lowp.prec == OPS_BF16 ? CUDA_R_16BF : CUDA_R_16F;
    const void *a = operand(c, 0, A, ops_lowp_extent(trans_a, M, K, lda));
    const void *b = operand(c, 1, B, ops_lowp_extent(trans_b, K, N, ldb));
    ops_cuda_check_blas(cublasGemmEx(c->blas, opb, opa, N, M, K, &alpha, b, t, ldb, a, t, lda, &beta, C, CUDA_R_32F, ldc,
                                     CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                        c->lowp.prec == OPS_BF16 ? "cublasGemmEx (bf16)" : "cublasGemmEx (fp16)");
}
