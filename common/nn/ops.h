/* The op interface: every tensor operation the models (CLIP ViT, GPT-2, the
 * two mappers, AdamW) perform. Models call these and never BLAS or CUDA
 * directly, so a backend is one implementation of this header chosen at
 * build time: the CPU backend (OpenBLAS cblas_sgemm + OpenMP,
 * ops_cpu_forward.c and ops_cpu_backward.c) always; a CUDA backend (cuBLAS)
 * when built with CLIPCAP_CUDA.
 *
 * Conventions (llm.c's):
 * - float32, row-major, pointers to backend memory (ops_alloc). On the CPU
 *   backend that is host memory.
 * - "M" counts rows (batch*time), "C"/"K"/"N" are widths.
 * - Backward functions ACCUMULATE (+=) into every gradient they write, so
 *   residual branches and shared weights (GPT-2's tied wte) just add up.
 *   Any gradient pointer may be NULL: that gradient is not computed at all
 *   (a frozen GPT-2 skips its weight gradients this way).
 * - Weights of a linear layer come in two layouts: OPS_W_NK ([out, in], as
 *   torch.nn.Linear and CLIP store them) and OPS_W_KN ([in, out], as GPT-2's
 *   Conv1D stores them). Models keep the checkpoint's layout; the op handles
 *   both, so loading needs no transpose. */
#ifndef CLIPCAP_OPS_H
#define CLIPCAP_OPS_H

#include <stddef.h>
#include <stdint.h>
#include "core/log.h"

typedef struct ops_ctx ops_ctx;

enum ops_weight_layout { OPS_W_NK = 0, OPS_W_KN = 1 };

/* threads <= 0: OpenMP's default (OMP_NUM_THREADS). */
int ops_create(ops_ctx **ctx, int threads, err_t *e);
void ops_destroy(ops_ctx *ctx);
const char *ops_backend_name(const ops_ctx *ctx); /* "cpu", "cuda" */

/* Backend memory, 64-byte aligned and zeroed. NULL + error on failure. */
float *ops_alloc(ops_ctx *ctx, size_t count, err_t *e);
void ops_free(ops_ctx *ctx, void *p);
void ops_upload(ops_ctx *ctx, float *dst, const float *host_src, size_t count);
void ops_download(ops_ctx *ctx, float *host_dst, const float *src, size_t count);
void ops_fill(ops_ctx *ctx, float *x, float value, size_t count);
void ops_copy(ops_ctx *ctx, float *dst, const float *src, size_t count);

/* ---- forward ---- */

/* out[M,N] = in[M,K] · Wᵀ (+ bias[N]); W is [N,K] (OPS_W_NK) or [K,N]
 * (OPS_W_KN). bias may be NULL. in and out do not alias. */
void ops_matmul(ops_ctx *ctx, float *out, const float *in, const float *w, const float *bias,
                int M, int K, int N, enum ops_weight_layout layout);

/* Per row of C: out = (in - mean) * rstd * g + b. mean and rstd [M] are
 * saved for the backward pass (may be NULL in inference). */
void ops_layernorm(ops_ctx *ctx, float *out, float *mean, float *rstd, const float *in,
                   const float *g, const float *b, int M, int C, float eps);

void ops_add(ops_ctx *ctx, float *out, const float *a, const float *b, size_t n); /* out may alias a or b */
void ops_gelu_tanh(ops_ctx *ctx, float *out, const float *in, size_t n);  /* GPT-2's gelu_new */
void ops_quick_gelu(ops_ctx *ctx, float *out, const float *in, size_t n); /* x·σ(1.702x), CLIP */
void ops_tanh(ops_ctx *ctx, float *out, const float *in, size_t n);
void ops_relu(ops_ctx *ctx, float *out, const float *in, size_t n);

/* Multi-head scaled dot-product attention.
 * q: B×Tq rows of H·D floats, row stride q_stride floats (so q may be a view
 * into a fused qkv buffer); k, v: B×Tk rows with row stride kv_stride.
 * out: B×Tq×(H·D), contiguous. probs: [B,H,Tq,Tk] softmax output kept for
 * backward (may be NULL in inference).
 * causal: query i (0-based within Tq) sees keys j <= i + (Tk - Tq), which is
 * the usual causal mask when Tq == Tk and the right one for a query block
 * appended after a key/value cache. causal = 0: every key is visible. */
void ops_attention(ops_ctx *ctx, float *out, float *probs, const float *q, const float *k,
                   const float *v, int B, int Tq, int Tk, int H, int D, int q_stride,
                   int kv_stride, int causal, float scale);

/* out[i,:] = table[ids[i],:] for i < n; rows of C. */
void ops_gather_rows(ops_ctx *ctx, float *out, const float *table, const int32_t *ids, int n, int C);

/* Split an image batch [B,3,S,S] into patches [B, (S/P)², 3·P·P] in the
 * order (channel, row, col) of a PyTorch conv weight [W,3,P,P], so that the
 * patch embedding is ops_matmul with the conv weight viewed as [W, 3·P·P]. */
void ops_im2patch(ops_ctx *ctx, float *out, const float *images, int B, int S, int P);

/* Cross-entropy over rows of V logits. targets[i] < 0 means "ignore row".
 * losses[i] receives each row's loss (0 for ignored rows); returns the mean
 * over non-ignored rows (0 if none). */
float ops_cross_entropy(ops_ctx *ctx, float *losses, const float *logits, const int32_t *targets,
                        int M, int V);

/* ---- backward (accumulating; NULL gradients are skipped) ---- */

void ops_matmul_backward(ops_ctx *ctx, float *din, float *dw, float *dbias, const float *dout,
                         const float *in, const float *w, int M, int K, int N,
                         enum ops_weight_layout layout);
void ops_layernorm_backward(ops_ctx *ctx, float *din, float *dg, float *db, const float *dout,
                            const float *in, const float *g, const float *mean,
                            const float *rstd, int M, int C);
void ops_gelu_tanh_backward(ops_ctx *ctx, float *din, const float *in, const float *dout, size_t n);
void ops_tanh_backward(ops_ctx *ctx, float *din, const float *out, const float *dout, size_t n); /* uses the forward OUTPUT */
void ops_relu_backward(ops_ctx *ctx, float *din, const float *in, const float *dout, size_t n);
/* dq, dk, dv have the strides of q, k, v (they may be views into one fused
 * dqkv buffer). */
void ops_attention_backward(ops_ctx *ctx, float *dq, float *dk, float *dv, const float *dout,
                            const float *probs, const float *q, const float *k, const float *v,
                            int B, int Tq, int Tk, int H, int D, int q_stride, int kv_stride,
                            float scale);
/* dtable[ids[i],:] += dout[i,:] */
void ops_scatter_add_rows(ops_ctx *ctx, float *dtable, const float *dout, const int32_t *ids, int n, int C);
/* dlogits[i,:] += scale · (softmax(logits[i,:]) − onehot(targets[i])) for
 * non-ignored rows; scale is usually 1/(number of non-ignored rows). */
void ops_cross_entropy_backward(ops_ctx *ctx, float *dlogits, const float *logits,
                                const int32_t *targets, int M, int V, float scale);

/* ---- optimiser and reductions ---- */

/* One AdamW step over n parameters (PyTorch's torch.optim.AdamW with bias
 * correction; step counts from 1). */
void ops_adamw(ops_ctx *ctx, float *params, const float *grads, float *m, float *v, size_t n,
               float lr, float beta1, float beta2, float eps, float weight_decay, int step);
/* Σ x², in double precision, for gradient norms and drift checksums. */
double ops_sum_squares(ops_ctx *ctx, const float *x, size_t n);
void ops_scale(ops_ctx *ctx, float *x, float s, size_t n);

#endif
