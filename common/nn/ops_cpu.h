/* The CPU backend's context, shared by ops_cpu_forward.c,
 * ops_cpu_backward.c and ops_cpu_lowp.c. The thread count, and for a
 * precision below float32 the weights' compute-precision copies and the
 * scratch that rounded GEMM operands pass through: every other piece of
 * state belongs to the caller, so a context is cheap and two models may
 * share one (one thread at a time). */
#ifndef CLIPCAP_OPS_CPU_H
#define CLIPCAP_OPS_CPU_H

#include "nn/ops.h"
#include "nn/ops_lowp.h"

struct ops_ctx {
    int threads; /* >= 1: the OpenMP team size */
    ops_lowp lowp;
    void *scratch[2]; /* rounded GEMM operands that are not registered weights */
    size_t scratch_cap[2];
    void *dnnl; /* oneDNN engine and stream when it computes the precision natively */
};

/* Row-major C = alpha·op(A)·op(B) + beta·C (cblas_sgemm's arguments), run
 * on the context's OpenMP threads: each thread calls a single-threaded
 * OpenBLAS GEMM on its own block of C's columns (or rows, when C is narrow
 * and tall). ops_create sets OpenBLAS to one thread, because two thread
 * pools on the same cores (OpenBLAS's and OpenMP's) spin-wait against each
 * other: measured as a third of the CLIP forward on two cores. Every CPU
 * GEMM should come through here; a direct cblas_sgemm runs on one core.
 * Bits: OpenBLAS picks its k blocking (and with it the order in which an
 * element's partial sums are added) from the shape it is given, so the last
 * bit of some elements changes with the thread count (the split changes the
 * shapes) and with the number of rows (the batch), never between two runs
 * with the same shape and threads. */
void ops_cpu_gemm(const ops_ctx *ctx, int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
                  int lda, const float *B, int ldb, float beta, float *C, int ldc);

/* ops_attention_backward with dropout p on the probabilities (mask
 * (key, offset), nn/ops_dropout_mask.h); p = 0 is ops_attention_backward. */
void ops_cpu_attention_backward(ops_ctx *ctx, float *dq, float *dk, float *dv, const float *dout, const float *probs,
                                const float *q, const float *k, const float *v, int B, int Tq, int Tk, int H, int D,
                                int q_stride, int kv_stride, float scale, float pdrop, uint64_t key, uint64_t offset);

/* ops_cpu_gemm at the context's precision (ops_ext.h): at BF16/FP16 both
 * operands are rounded (registered weights come from their copy) and the
 * product accumulated in float32, by oneDNN where the CPU has the
 * instructions and by ops_cpu_gemm on rounded floats elsewhere. alpha must
 * be 1 and beta 0 or 1 (all the backward and forward GEMMs need). */
void ops_cpu_gemm_prec(ops_ctx *ctx, int trans_a, int trans_b, int M, int N, int K, const float *A, int lda,
                       const float *B, int ldb, float beta, float *C, int ldc);
/* ops_free and ops_destroy's share of the precision state. */
void ops_cpu_lowp_forget(ops_ctx *ctx, void *p);
void ops_cpu_lowp_destroy(ops_ctx *ctx);

/* Elementwise loops shorter than this run on one thread: forking a team
 * costs more than it saves below a few thousand floats. */
#define OPS_CPU_PAR_MIN 8192

#endif
