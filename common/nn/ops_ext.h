/* Ops that extend ops.h without changing it: forward-only ops that one
 * checkpoint family needs and the shared interface does not list. Same
 * conventions as ops.h (float32, backend memory, forward writes). Every
 * backend implements these too. */
#ifndef CLIPCAP_OPS_EXT_H
#define CLIPCAP_OPS_EXT_H

#include "nn/ops.h"

/* Exact GELU, 0.5·x·(1 + erf(x/√2)): hidden_act "gelu" of CLIP checkpoints
 * trained outside OpenAI (OpenCLIP/LAION); OpenAI's own use quick_gelu. */
void ops_gelu_erf(ops_ctx *ctx, float *out, const float *in, size_t n);

/* Incremental-decoding attention: one new query row per sequence against
 * that sequence's own key/value cache, lengths ragged (continuous batching
 * puts sequences of different lengths in one step).
 * q: B rows of H·D floats, row stride q_stride. Sequence b's cache is rows
 * 0 .. lens[b]-1 of kcache/vcache + slots[b]·slot_stride, row stride
 * kv_stride, and already holds the new token's own key and value (the
 * caller writes them first), so it attends to all lens[b] rows.
 * out: B rows of H·D, contiguous. slots and lens are HOST arrays (as every
 * int32 index array passed to an op); the CUDA backend stages them. */
void ops_attention_cached(ops_ctx *ctx, float *out, const float *q, int q_stride, const float *kcache,
                          const float *vcache, const int32_t *slots, const int32_t *lens, int B, int H,
                          int D, size_t slot_stride, int kv_stride, float scale);

/* Rows to scattered destinations: dst[rows[i]·dst_stride + c] =
 * src[i·src_stride + c] for i < n, c < C. rows is a HOST array of distinct
 * row indices; src and dst do not overlap. One op where n ops_copy calls
 * would each be a launch on a GPU: a decoding step writes every
 * sequence's new key and value row into its cache slot this way, and a
 * beam fork copies a slot's block of every layer. */
void ops_scatter_rows(ops_ctx *ctx, float *dst, size_t dst_stride, const int32_t *rows, const float *src,
                      size_t src_stride, int n, int C);

/* ---- dropout (training only; nn/ops_dropout_mask.h says which elements
 * drop: element i of a call is global element offset + i under key) ----
 * Kept elements are scaled by 1/(1-p) (computed in float), as PyTorch's
 * dropout does; 0 <= p < 1. */

/* out = mask(in); out may be in. */
void ops_dropout(ops_ctx *ctx, float *out, const float *in, size_t n, float p, uint64_t key, uint64_t offset);
/* din += mask(dout), the same mask as the forward call with (key, offset). */
void ops_dropout_backward(ops_ctx *ctx, float *din, const float *dout, size_t n, float p, uint64_t key,
                          uint64_t offset);
/* ops_attention with dropout on the attention probabilities (Hugging Face
 * GPT-2's attn_dropout): out = mask(softmax)·V. probs (required) keeps the
 * softmax BEFORE dropout, [B,H,Tq,Tk]; the mask indexes that layout, so
 * offset is (first sequence's global index)·H·Tq·Tk. */
void ops_attention_dropout(ops_ctx *ctx, float *out, float *probs, const float *q, const float *k, const float *v,
                           int B, int Tq, int Tk, int H, int D, int q_stride, int kv_stride, int causal, float scale,
                           float p, uint64_t key, uint64_t offset);
/* Its backward (ops_attention_backward's contract), given the same probs,
 * p, key and offset. */
void ops_attention_dropout_backward(ops_ctx *ctx, float *dq, float *dk, float *dv, const float *dout,
                                    const float *probs, const float *q, const float *k, const float *v, int B,
                                    int Tq, int Tk, int H, int D, int q_stride, int kv_stride, float scale, float p,
                                    uint64_t key, uint64_t offset);

/* ---- compute precision (docs/nn.md, "Precision") ----
 *
 * A context computes its GEMMs (ops_matmul, ops_matmul_backward) in one
 * precision: both operands rounded to it, products accumulated in float32,
 * results written as float32. Every other op (LayerNorm, softmax,
 * attention on the CPU, the loss, the optimiser) stays float32, and so do
 * all buffers the caller sees: precision is the backend's business.
 * OPS_FP32 (the default) is exactly the code path of a context that never
 * heard of precision. OPS_TF32 is float32 on the CPU and TF32 tensor cores
 * on CUDA. A backend without the instructions emulates BF16/FP16 (operands
 * rounded, float32 GEMM), so every precision runs everywhere. */
enum ops_precision { OPS_FP32 = 0, OPS_TF32 = 1, OPS_BF16 = 2, OPS_FP16 = 3 };

/* "fp32", "tf32", "bf16", "fp16" -> *p; anything else is ERR_ARG. */
int ops_precision_parse(const char *name, enum ops_precision *p, err_t *e);
const char *ops_precision_name(enum ops_precision p);

/* Before any ops_register_weights on the context. ERR_ARG after. */
int ops_set_precision(ops_ctx *ctx, enum ops_precision p, err_t *e);
enum ops_precision ops_get_precision(const ops_ctx *ctx);
/* How the context computes its precision, for logs and benches:
 * "fp32", "bf16 (oneDNN brg:avx512_core_bf16)", "fp16 (emulated)", ... */
const char *ops_precision_impl(const ops_ctx *ctx);

/* Declare [p, p+n) (backend memory from ops_alloc) a model's weights: the
 * backend keeps them once more in the compute precision and GEMMs read
 * that copy instead of rounding the weight on every call. The copy follows
 * writes made through ops (upload, copy, fill, scale, adamw): the part
 * written is converted again before its next use, so training updates the
 * float32 master weights and the next forward sees them. Nothing at
 * OPS_FP32/TF32. Dropped by ops_free(ctx, p). At most 16 ranges. */
int ops_register_weights(ops_ctx *ctx, const float *p, size_t n, err_t *e);

#endif
