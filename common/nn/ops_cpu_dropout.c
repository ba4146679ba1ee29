/* The CPU backend's dropout ops (nn/ops_ext.h). The mask is recomputed from
 * (key, index) wherever it is needed (nn/ops_dropout_mask.h), so nothing is
 * stored and the result does not depend on the thread count. */
#include "nn/ops_cpu.h"
#include "nn/ops_dropout_mask.h"
#include "nn/ops_ext.h"

#include <cblas.h>

void ops_dropout(ops_ctx *ctx, float *out, const float *in, size_t n, float p, uint64_t key, uint64_t offset)
{
    const float s = 1.0f / (1.0f - p);
#pragma omp parallel for num_threads(ctx->threads) if (n >= OPS_CPU_PAR_MIN) schedule(static)
    for (size_t i = 0; i < n; i++) out[i] = ops_dropout_kept(key, offset + i, p) ? in[i] * s : 0.0f;
}

void ops_dropout_backward(ops_ctx *ctx, float *din, const float *dout, size_t n, float p, uint64_t key,
                          uint64_t offset)
{
    const float s = 1.0f / (1.0f - p);
#pragma omp parallel for num_threads(ctx->threads) if (n >= OPS_CPU_PAR_MIN) schedule(static)
    for (size_t i = 0; i < n; i++)
        if (ops_dropout_kept(key, offset + i, p)) din[i] += dout[i] * s;
}

/* The probabilities from ops_attention, then out = mask(P)·V again per
 * (sequence, head) in tiles of query rows. */
#define ATT_DROP_TILE 16384

void ops_attention_dropout(ops_ctx *ctx, float *out, float *probs, const float *q, const float *k, const float *v,
                           int B, int Tq, int Tk, int H, int D, int q_stride, int kv_stride, int causal, float scale,
                           float p, uint64_t key, uint64_t offset)
{
    ops_attention(ctx, out, probs, q, k, v, B, Tq, Tk, H, D, q_stride, kv_stride, causal, scale);
    if (B <= 0 || Tq <= 0 || Tk <= 0) return;
    const int C = H * D, rows = Tk >= ATT_DROP_TILE ? 1 : ATT_DROP_TILE / Tk;
    const float s = 1.0f / (1.0f - p);
#pragma omp parallel num_threads(ctx->threads) if ((size_t)B * H * Tq * Tk * D >= OPS_CPU_PAR_MIN)
    {
        float pd[(size_t)rows * Tk];
#pragma omp for collapse(2) schedule(static)
        for (int b = 0; b < B; b++)
            for (int h = 0; h < H; h++)
                for (int i0 = 0; i0 < Tq; i0 += rows) {
                    const int n = Tq - i0 < rows ? Tq - i0 : rows;
                    const size_t at = (((size_t)b * H + h) * Tq + i0) * Tk;
                    for (size_t x = 0; x < (size_t)n * Tk; x++)
                        pd[x] = ops_dropout_kept(key, offset + at + x, p) ? probs[at + x] * s : 0.0f;
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, D, Tk, 1.0f, pd, Tk,
                                v + (size_t)b * Tk * kv_stride + (size_t)h * D, kv_stride, 0.0f,
                                out + ((size_t)b * Tq + i0) * C + (size_t)h * D, C);
                }
    }
}

void ops_attention_dropout_backward(ops_ctx *ctx, float *dq, float *dk, float *dv, const float *dout,
                                    const float *probs, const float *q, const float *k, const float *v, int B,
                                    int Tq, int Tk, int H, int D, int q_stride, int kv_stride, float scale, float p,
                                    uint64_t key, uint64_t offset)
{
    ops_cpu_attention_backward(ctx, dq, dk, dv, dout, probs, q, k, v, B, Tq, Tk, H, D, q_stride, kv_stride, scale, p,
                               key, offset);
}
