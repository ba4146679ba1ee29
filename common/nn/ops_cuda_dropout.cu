/* The CUDA backend's dropout ops (nn/ops_ext.h), the same masks as the CPU
 * backend's (nn/ops_dropout_mask.h, evaluated per element on the device).
 * Attention with dropout on the probabilities: ops_attention's kernels give
 * the softmax, then mask(P)·V again; backward is the plain per-row form
 * (a warp per query row for dS and dQ, a warp per key row for dK and dV)
 * with mask(P) in the work buffer next to dS. Training only, so simplicity
 * over speed. */
#include "nn/ops_cuda.h"
#include "nn/ops_dropout_mask.h"

#define DROP_WARPS 4

__global__ void k_dropout(float *out, const float *in, size_t n, float p, float s, uint64_t key, uint64_t offset)
{
    OPS_GRID_LOOP(i, n) out[i] = ops_dropout_kept(key, offset + i, p) ? in[i] * s : 0.0f;
}

__global__ void k_dropout_backward(float *din, const float *dout, size_t n, float p, float s, uint64_t key,
                                   uint64_t offset)
{
    OPS_GRID_LOOP(i, n) if (ops_dropout_kept(key, offset + i, p)) din[i] += dout[i] * s;
}

void ops_dropout(ops_ctx *c, float *out, const float *in, size_t n, float p, uint64_t key, uint64_t offset)
{
    if (!n) return;
    ops_cuda_enter(c);
    k_dropout<<<ops_cuda_blocks(n, OPS_CUDA_THREADS), OPS_CUDA_THREADS, 0, c->stream>>>(out, in, n, p,
                                                                                       1.0f / (1.0f - p), key, offset);
    ops_cuda_check_launch("ops_dropout");
}

void ops_dropout_backward(ops_ctx *c, float *din, const float *dout, size_t n, float p, uint64_t key,
                          uint64_t offset)
{
    if (!n) return;
    ops_cuda_enter(c);
    k_dropout_backward<<<ops_cuda_blocks(n, OPS_CUDA_THREADS), OPS_CUDA_THREADS, 0, c->stream>>>(
        din, dout, n, p, 1.0f / (1.0f - p), key, offset);
    ops_cuda_check_launch("ops_dropout_backward");
}

/* out[b, i, h·D + d] = Σ_j pd[b, h, i, j] · v[b, j, h·D + d] */
__global__ void k_probs_v(float *out, const float *pd, const float *v, int B, int Tq, int Tk, int H, int D,
                          int kv_stride)
{
    const size_t C = (size_t)H * D, total = (size_t)B * Tq * C;
    OPS_GRID_LOOP(x, total)
    {
        const int d = (int)(x % D), h = (int)((x / D) % H), i = (int)((x / C) % Tq), b = (int)(x / (C * Tq));
        const float *p = pd + (((size_t)b * H + h) * Tq + i) * Tk;
        const float *vb = v + (size_t)b * Tk * kv_stride + (size_t)h * D + d;
        float s = 0.0f;
        for (int j = 0; j < Tk; j++) s += p[j] * vb[(size_t)j * kv_stride];
        out[x] = s;
    }
}

void ops_attention_dropout(ops_ctx *c, float *out, float *probs, const float *q, const float *k, const float *v,
                           int B, int Tq, int Tk, int H, int D, int q_stride, int kv_stride, int causal, float scale,
                           float p, uint64_t key, uint64_t offset)
{
    ops_attention(c, out, probs, q, k, v, B, Tq, Tk, H, D, q_stride, kv_stride, causal, scale);
    if (B <= 0 || Tq <= 0 || Tk <= 0 || H <= 0 || D <= 0) return;
    const size_t n = (size_t)B * H * Tq * Tk;
    float *pd = ops_cuda_work(c, n);
    ops_dropout(c, pd, probs, n, p, key, offset);
    k_probs_v<<<ops_cuda_blocks((size_t)B * Tq * H * D, OPS_CUDA_THREADS), OPS_CUDA_THREADS, 0, c->stream>>>(
        out, pd, v, B, Tq, Tk, H, D, kv_stride);
    ops_cuda_check_launch("ops_attention_dropout");
}

/* One warp per query row r = (b, h, i): dP'_j = dO_i·V_j, dS_j = (P'_j·dP'_j
 * − P_j·Σ_k P'_k·dP'_k)·scale, dQ_i += Σ_j dS_j·K_j. */
__global__ void k_attdrop_backward_q(float *ds, float *dq, const float *dout, const float *probs, const float *pd,
                                     const float *k, const float *v, int B, int Tq, int Tk, int H, int D,
                                     int q_stride, int kv_stride, float scale)
{
    const long rows = (long)B * H * Tq;
    const long r = (long)blockIdx.x * DROP_WARPS + (threadIdx.x >> 5);
    if (r >= rows) return;
    const int lane = threadIdx.x & 31;
    const int i = (int)(r % Tq), h = (int)((r / Tq) % H), b = (int)(r / ((long)Tq * H));
    const size_t C = (size_t)H * D;
    const float *p = probs + (size_t)r * Tk, *pk = pd + (size_t)r * Tk;
    float *dsr = ds + (size_t)r * Tk;
    const float *doi = dout + ((size_t)b * Tq + i) * C + (size_t)h * D;
    const float *kb = k + (size_t)b * Tk * kv_stride + (size_t)h * D;
    const float *vb = v + (size_t)b * Tk * kv_stride + (size_t)h * D;
    float part = 0.0f;
    for (int j = lane; j < Tk; j += 32) {
        const float *vj = vb + (size_t)j * kv_stride;
        float dp = 0.0f;
        for (int d = 0; d < D; d++) dp += doi[d] * vj[d];
        dsr[j] = dp;
        part += pk[j] * dp;
    }
    const float dsum = ops_warp_sum(part);
    for (int j = lane; j < Tk; j += 32) dsr[j] = (pk[j] * dsr[j] - p[j] * dsum) * scale;
    if (!dq) return;
    __syncwarp();
    float *dqi = dq + ((size_t)b * Tq + i) * q_stride + (size_t)h * D;
    for (int d = lane; d < D; d += 32) {
        float s = 0.0f;
        for (int j = 0; j < Tk; j++) s += dsr[j] * kb[(size_t)j * kv_stride + d];
        dqi[d] += s;
    }
}

/* One warp per key row (b, h, j): dK_j += Σ_i dS_ij·Q_i, dV_j += Σ_i P'_ij·dO_i. */
__global__ void k_attdrop_backward_kv(float *dk, float *dv, const float *ds, const float *pd, const float *dout,
                                      const float *q, int B, int Tq, int Tk, int H, int D, int q_stride,
                                      int kv_stride)
{
    const long rows = (long)B * H * Tk;
    const long r = (long)blockIdx.x * DROP_WARPS + (threadIdx.x >> 5);
    if (r >= rows) return;
    const int lane = threadIdx.x & 31;
    const int j = (int)(r % Tk), h = (int)((r / Tk) % H), b = (int)(r / ((long)Tk * H));
    const size_t C = (size_t)H * D, bh = (size_t)b * H + h;
    const float *pj = pd + bh * Tq * Tk + j, *dsj = ds + bh * Tq * Tk + j; /* column j, stride Tk */
    const float *qb = q + (size_t)b * Tq * q_stride + (size_t)h * D;
    const float *dob = dout + (size_t)b * Tq * C + (size_t)h * D;
    float *dkj = dk ? dk + ((size_t)b * Tk + j) * kv_stride + (size_t)h * D : NULL;
    float *dvj = dv ? dv + ((size_t)b * Tk + j) * kv_stride + (size_t)h * D : NULL;
    for (int d = lane; d < D; d += 32) {
        float sk = 0.0f, sv = 0.0f;
        for (int i = 0; i < Tq; i++) {
            sk += dsj[(size_t)i * Tk] * qb[(size_t)i * q_stride + d];
            sv += pj[(size_t)i * Tk] * dob[(size_t)i * C + d];
        }
        if (dkj) dkj[d] += sk;
        if (dvj) dvj[d] += sv;
    }
}

void ops_attention_dropout_backward(ops_ctx *c, float *dq, float *dk, float *dv, const float *dout,
                                    const float *probs, const float *q, const float *k, const float *v, int B,
                                    int Tq, int Tk, int H, int D, int q_stride, int kv_stride, float scale, float p,
                                    uint64_t key, uint64_t offset)
{
    if ((!dq && !dk && !dv) || B <= 0 || Tq <= 0 || Tk <= 0 || H <= 0 || D <= 0) return;
    ops_cuda_enter(c);
    const size_t n = (size_t)B * H * Tq * Tk;
    float *pd = ops_cuda_work(c, 2 * n), *ds = pd + n;
    ops_dropout(c, pd, probs, n, p, key, offset);
    const unsigned t = 32 * DROP_WARPS;
    k_attdrop_backward_q<<<(unsigned)(((long)B * H * Tq + DROP_WARPS - 1) / DROP_WARPS), t, 0, c->stream>>>(
        ds, dq, dout, probs, pd, k, v, B, Tq, Tk, H, D, q_stride, kv_stride, scale);
    ops_cuda_check_launch("ops_attention_dropout_backward (queries)");
    if (!dk && !dv) return;
    k_attdrop_backward_kv<<<(unsigned)(((long)B * H * Tk + DROP_WARPS - 1) / DROP_WARPS), t, 0, c->stream>>>(
        dk, dv, ds, pd, dout, q, B, Tq, Tk, H, D, q_stride, kv_stride);
    ops_cuda_check_launch("ops_attention_dropout_backward (keys, values)");
}
