/* The CPU backend's incremental-decoding ops (ops_ext.h):
 * ops_attention_cached and ops_scatter_rows.
 *
 * ops_attention_cached: one OpenMP thread per sequence, each running the
 * same row kernel as ops_attention (through ops_attention itself on a
 * one-thread context: a cached query is a one-row query block with every
 * key visible), so prefill and decode steps share one attention
 * implementation and its numbers. */
#include "nn/ops_cpu.h"
#include "nn/ops_ext.h"

#include <string.h>

void ops_attention_cached(ops_ctx *ctx, float *out, const float *q, int q_stride, const float *kcache,
                          const float *vcache, const int32_t *slots, const int32_t *lens, int B, int H,
                          int D, size_t slot_stride, int kv_stride, float scale)
{
    long work = 0;
    for (int b = 0; b < B; b++) work += lens[b];
    /* Each sequence's heads run on the thread that owns the sequence: an
     * inner team per sequence would fork B times per layer. */
    ops_ctx one = {.threads = 1};
#pragma omp parallel for num_threads(ctx->threads) if (work * H * D >= OPS_CPU_PAR_MIN) schedule(static)
    for (int b = 0; b < B; b++) {
        const size_t off = (size_t)slots[b] * slot_stride;
        ops_attention(&one, out + (size_t)b * H * D, NULL, q + (size_t)b * q_stride, kcache + off, vcache + off, 1, 1,
                      lens[b], H, D, q_stride, kv_stride, 0, scale);
    }
}

void ops_scatter_rows(ops_ctx *ctx, float *dst, size_t dst_stride, const int32_t *rows, const float *src,
                      size_t src_stride, int n, int C)
{
#pragma omp parallel for num_threads(ctx->threads) if ((size_t)n * C >= OPS_CPU_PAR_MIN) schedule(static)
    for (int i = 0; i < n; i++)
        memcpy(dst + (size_t)rows[i] * dst_stride, src + (size_t)i * src_stride, (size_t)C * sizeof(float));
}
