/* The CUDA backend's attention: ops_attention, ops_attention_backward and
 * ops_attention_cached (ops_ext.h).
 *
 * ops_attention (head width D <= 128, every model here has 64): one block
 * per (sequence, head, tile of ATT_TILE_ROWS query rows). Keys and values
 * pass through shared memory 32 at a time, keys transposed so that lane l
 * scores key l of the chunk reading a bank of its own, and every query row
 * of the tile reuses the chunk: the warp-per-row kernel below reads each
 * key row from global memory once per query row, 32 rows per load
 * instruction (by estimate, not profile, most of ViT-B/32's gap to PyTorch
 * on an H100). Two passes over the keys, as the warp-per-row kernel: the row
 * maximum first, then exp, sum and P·V, so the arithmetic (and the
 * probabilities) are the same.
 *
 * ops_attention_cached (one query row per sequence, ragged cache lengths)
 * and heads wider than 128 keep one warp per query row: a row's scores fit
 * the warp's lanes a few at a time and no score matrix in memory is needed.
 *
 * Arithmetic as on the CPU: scores scale·q·k_j, max-subtracted expf,
 * normalised by 1/Σ; masked keys get probability exactly 0. */
#include "nn/ops_cuda.h"

#include <math.h>

#define ATT_WARPS 4

/* One query row of one head, by one warp: o = softmax(scale·q·Kᵀ)·V over
 * keys 0..visible-1 (rows of k and v with stride kvs); p, when not NULL,
 * receives all Tk probabilities (0 beyond visible). NR·32 output columns
 * are accumulated in registers per pass; wider heads take several passes.
 * Lane l always handles keys j ≡ l (mod 32), so p can hold a lane's raw
 * scores between passes without any synchronisation. */
template <int NR>
__device__ void attend_row(float *o, float *p, const float *q, const float *k, const float *v, int visible, int Tk,
                           int D, int kvs, float scale)
{
    const int lane = threadIdx.x & 31;
    float m = -INFINITY;
    for (int j = lane; j < visible; j += 32) {
        const float *kj = k + (size_t)j * kvs;
        float s = 0.0f;
        for (int d = 0; d < D; d++) s += q[d] * kj[d];
        s *= scale;
        if (p) p[j] = s;
        m = fmaxf(m, s);
    }
    m = ops_warp_max(m);
    float inv = 0.0f;
    for (int d0 = 0; d0 < D; d0 += 32 * NR) {
        float acc[NR];
        for (int r = 0; r < NR; r++) acc[r] = 0.0f;
        float lsum = 0.0f;
        for (int c0 = 0; c0 < visible; c0 += 32) {
            const int j = c0 + lane;
            float e = 0.0f;
            if (j < visible) {
                float s;
                if (p) s = p[j];
                else {
                    const float *kj = k + (size_t)j * kvs;
                    s = 0.0f;
                    for (int d = 0; d < D; d++) s += q[d] * kj[d];
                    s *= scale;
                }
                e = expf(s - m);
            }
            lsum += e;
            const int n = visible - c0 < 32 ? visible - c0 : 32;
            for (int t = 0; t < n; t++) {
                const float pj = __shfl_sync(0xffffffffu, e, t);
                const float *vj = v + (size_t)(c0 + t) * kvs;
                for (int r = 0; r < NR; r++) {
                    const int d = d0 + lane + 32 * r;
                    if (d < D) acc[r] += pj * vj[d];
                }
            }
        }
        const float l = ops_warp_sum(lsum);
        inv = l > 0.0f ? 1.0f / l : 0.0f;
        for (int r = 0; r < NR; r++) {
            const int d = d0 + lane + 32 * r;
            if (d < D) o[d] = acc[r] * inv;
        }
    }
    if (p)
        for (int j = lane; j < Tk; j += 32) p[j] = j < visible ? expf(p[j] - m) * inv : 0.0f;
}

template <int NR>
__global__ void k_attention(float *out, float *probs, const float *q, const float *k, const float *v, int B, int Tq,
                            int Tk, int H, int D, int q_stride, int kv_stride, int causal, float scale)
{
    const long rows = (long)B * H * Tq;
    const long r = (long)blockIdx.x * ATT_WARPS + (threadIdx.x >> 5);
    if (r >= rows) return; /* the whole warp leaves together */
    const int i = (int)(r % Tq), h = (int)((r / Tq) % H), b = (int)(r / ((long)Tq * H));
    int visible = causal ? i + (Tk - Tq) + 1 : Tk;
    visible = visible > Tk ? Tk : visible < 0 ? 0 : visible;
    const size_t C = (size_t)H * D;
    attend_row<NR>(out + ((size_t)b * Tq + i) * C + (size_t)h * D,
                   probs ? probs + (((size_t)b * H + h) * Tq + i) * Tk : NULL,
                   q + ((size_t)b * Tq + i) * q_stride + (size_t)h * D, k + (size_t)b * Tk * kv_stride + (size_t)h * D,
                   v + (size_t)b * Tk * kv_stride + (size_t)h * D, visible, Tk, D, kv_stride, scale);
}

/* ---- ops_attention: query tiles with keys and values in shared memory ---- */

#define ATT_TILE_WARPS 4
#define ATT_ROWS_PER_WARP 4
#define ATT_TILE_ROWS (ATT_TILE_WARPS * ATT_ROWS_PER_WARP)
#define ATT_KPAD 33 /* transposed key chunk [D][33]: lane l reads bank (d + l) % 32 */

static size_t att_tile_smem(int D)
{
    return ((size_t)D * ATT_KPAD + 32 * (size_t)D + (size_t)ATT_TILE_ROWS * D) * sizeof(float);
}

/* Keys c0 .. c0+31 of one (sequence, head) into ks (transposed, zero past
 * the last key) and, when vs is not NULL, their values into vs [32][D]. */
__device__ void att_load_chunk(float *ks, float *vs, const float *k, const float *v, int c0, int Tk, int D, int kvs)
{
    for (int idx = threadIdx.x; idx < 32 * D; idx += blockDim.x) {
        const int jj = idx / D, d = idx % D, j = c0 + jj;
        const bool in = j < Tk;
        ks[d * ATT_KPAD + jj] = in ? k[(size_t)j * kvs + d] : 0.0f;
        if (vs) vs[idx] = in ? v[(size_t)j * kvs + d] : 0.0f;
    }
}

/* Lane's scores for key c0 + lane against the warp's query rows (qs rows
 * warp + ATT_TILE_WARPS·r): each key element read from shared memory once
 * serves every row, each sum still runs over d in order. */
__device__ __forceinline__ void att_scores(float s[ATT_ROWS_PER_WARP], const float *qs, const float *ks, int D,
                                           float scale)
{
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    for (int r = 0; r < ATT_ROWS_PER_WARP; r++) s[r] = 0.0f;
    for (int d = 0; d < D; d++) {
        const float kd = ks[d * ATT_KPAD + lane];
        for (int r = 0; r < ATT_ROWS_PER_WARP; r++) s[r] += qs[(warp + ATT_TILE_WARPS * r) * D + d] * kd;
    }
    for (int r = 0; r < ATT_ROWS_PER_WARP; r++) s[r] *= scale;
}

template <int NR>
__global__ void k_attention_tiled(float *out, float *probs, const float *q, const float *k, const float *v, int Tq,
                                  int Tk, int H, int D, int q_stride, int kv_stride, int causal, float scale)
{
    extern __shared__ float sm[];
    float *ks = sm, *vs = ks + (size_t)D * ATT_KPAD, *qs = vs + 32 * (size_t)D;
    const int tiles = (Tq + ATT_TILE_ROWS - 1) / ATT_TILE_ROWS;
    const long bh = blockIdx.x / tiles;
    const int i0 = (int)(blockIdx.x % tiles) * ATT_TILE_ROWS, h = (int)(bh % H), b = (int)(bh / H);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const size_t C = (size_t)H * D;
    const float *kb = k + (size_t)b * Tk * kv_stride + (size_t)h * D;
    const float *vb = v + (size_t)b * Tk * kv_stride + (size_t)h * D;
    for (int idx = threadIdx.x; idx < ATT_TILE_ROWS * D; idx += blockDim.x) {
        const int rr = idx / D, d = idx % D, i = i0 + rr;
        qs[idx] = i < Tq ? q[((size_t)b * Tq + i) * q_stride + (size_t)h * D + d] : 0.0f;
    }
    /* The warp's rows i0 + warp + ATT_TILE_WARPS·r (interleaved, so that
     * causal rows of every length spread over the warps); visible 0 for
     * rows past Tq. The block's widest row bounds the chunk loops, the
     * same for every thread, so the barriers inside are uniform. */
    int vis[ATT_ROWS_PER_WARP];
    for (int r = 0; r < ATT_ROWS_PER_WARP; r++) {
        const int i = i0 + warp + ATT_TILE_WARPS * r;
        int n = i >= Tq ? 0 : causal ? i + (Tk - Tq) + 1 : Tk;
        vis[r] = n > Tk ? Tk : n < 0 ? 0 : n;
    }
    const int last = (i0 + ATT_TILE_ROWS < Tq ? i0 + ATT_TILE_ROWS : Tq) - 1;
    int span = causal ? last + (Tk - Tq) + 1 : Tk;
    span = span > Tk ? Tk : span;
    /* pass 1: each row's maximum score */
    float m[ATT_ROWS_PER_WARP];
    for (int r = 0; r < ATT_ROWS_PER_WARP; r++) m[r] = -INFINITY;
    for (int c0 = 0; c0 < span; c0 += 32) {
        __syncthreads(); /* the previous chunk is no longer read */
        att_load_chunk(ks, NULL, kb, vb, c0, Tk, D, kv_stride);
        __syncthreads();
        float sc[ATT_ROWS_PER_WARP];
        att_scores(sc, qs, ks, D, scale);
        for (int r = 0; r < ATT_ROWS_PER_WARP; r++)
            if (c0 + lane < vis[r]) m[r] = fmaxf(m[r], sc[r]);
    }
    for (int r = 0; r < ATT_ROWS_PER_WARP; r++) m[r] = ops_warp_max(m[r]);
    /* pass 2: e = exp(s - max), Σe and Σ e·v; probs get e, normalised below */
    float acc[ATT_ROWS_PER_WARP][NR], lsum[ATT_ROWS_PER_WARP];
    for (int r = 0; r < ATT_ROWS_PER_WARP; r++) {
        lsum[r] = 0.0f;
        for (int u = 0; u < NR; u++) acc[r][u] = 0.0f;
    }
    for (int c0 = 0; c0 < span; c0 += 32) {
        __syncthreads();
        att_load_chunk(ks, vs, kb, vb, c0, Tk, D, kv_stride);
        __syncthreads();
        float sc[ATT_ROWS_PER_WARP];
        att_scores(sc, qs, ks, D, scale);
        for (int r = 0; r < ATT_ROWS_PER_WARP; r++) {
            if (c0 >= vis[r]) continue; /* uniform across the warp */
            const int rr = warp + ATT_TILE_WARPS * r;
            const float e = c0 + lane < vis[r] ? expf(sc[r] - m[r]) : 0.0f;
            lsum[r] += e;
            if (probs && c0 + lane < vis[r]) probs[(((size_t)b * H + h) * Tq + i0 + rr) * Tk + c0 + lane] = e;
            const int n = vis[r] - c0 < 32 ? vis[r] - c0 : 32;
            for (int t = 0; t < n; t++) {
                const float pj = __shfl_sync(0xffffffffu, e, t);
                for (int u = 0; u < NR; u++) {
                    const int d = lane + 32 * u;
                    if (d < D) acc[r][u] += pj * vs[t * D + d];
                }
            }
        }
    }
    for (int r = 0; r < ATT_ROWS_PER_WARP; r++) {
        const int i = i0 + warp + ATT_TILE_WARPS * r;
        if (i >= Tq) break;
        const float l = ops_warp_sum(lsum[r]), inv = l > 0.0f ? 1.0f / l : 0.0f;
        float *o = out + ((size_t)b * Tq + i) * C + (size_t)h * D;
        for (int u = 0; u < NR; u++) {
            const int d = lane + 32 * u;
            if (d < D) o[d] = acc[r][u] * inv;
        }
        if (probs) { /* a lane rescales the entries it wrote itself */
            float *p = probs + (((size_t)b * H + h) * Tq + i) * Tk;
            for (int j = lane; j < Tk; j += 32) p[j] = j < vis[r] ? p[j] * inv : 0.0f;
        }
    }
}

template <int NR>
__global__ void k_attention_cached(float *out, const float *q, int q_stride, const float *kcache, const float *vcache,
                                   const int32_t *slots, const int32_t *lens, int B, int H, int D, size_t slot_stride,
                                   int kv_stride, float scale)
{
    const long r = (long)blockIdx.x * ATT_WARPS + (threadIdx.x >> 5);
    if (r >= (long)B * H) return;
    const int b = (int)(r / H), h = (int)(r % H);
    const size_t base = (size_t)slots[b] * slot_stride + (size_t)h * D;
    attend_row<NR>(out + (size_t)b * H * D + (size_t)h * D, NULL, q + (size_t)b * q_stride + (size_t)h * D,
                   kcache + base, vcache + base, lens[b], lens[b], D, kv_stride, scale);
}

static unsigned att_blocks(long rows) { return (unsigned)((rows + ATT_WARPS - 1) / ATT_WARPS); }

void ops_attention(ops_ctx *c, float *out, float *probs, const float *q, const float *k, const float *v, int B, int Tq,
                   int Tk, int H, int D, int q_stride, int kv_stride, int causal, float scale)
{
    const long rows = (long)B * H * Tq;
    if (rows <= 0 || D <= 0) return;
    ops_cuda_enter(c);
    if (D <= 128) {
        const long tiles = (long)B * H * ((Tq + ATT_TILE_ROWS - 1) / ATT_TILE_ROWS);
        const size_t sm = att_tile_smem(D); /* at most 41.5 KiB: under the 48 KiB default */
        const unsigned t = 32 * ATT_TILE_WARPS;
        if (D <= 32)
            k_attention_tiled<1><<<(unsigned)tiles, t, sm, c->stream>>>(out, probs, q, k, v, Tq, Tk, H, D, q_stride,
                                                                        kv_stride, causal, scale);
        else if (D <= 64)
            k_attention_tiled<2><<<(unsigned)tiles, t, sm, c->stream>>>(out, probs, q, k, v, Tq, Tk, H, D, q_stride,
                                                                        kv_stride, causal, scale);
        else
            k_attention_tiled<4><<<(unsigned)tiles, t, sm, c->stream>>>(out, probs, q, k, v, Tq, Tk, H, D, q_stride,
                                                                        kv_stride, causal, scale);
    } else {
        k_attention<4><<<att_blocks(rows), 32 * ATT_WARPS, 0, c->stream>>>(out, probs, q, k, v, B, Tq, Tk, H, D,
                                                                           q_stride, kv_stride, causal, scale);
    }
    ops_cuda_check_launch("ops_attention");
}

void ops_attention_cached(ops_ctx *c, float *out, const float *q, int q_stride, const float *kcache,
                          const float *vcache, const int32_t *slots, const int32_t *lens, int B, int H, int D,
                          size_t slot_stride, int kv_stride, float scale)
{
    if (B <= 0 || H <= 0 || D <= 0) return;
    ops_cuda_enter(c);
    const int32_t *dlens = NULL;
    const int32_t *dslots = ops_cuda_stage_ids(c, slots, (size_t)B, lens, (size_t)B, &dlens);
    const unsigned g = att_blocks((long)B * H), t = 32 * ATT_WARPS;
    if (D <= 32)
        k_attention_cached<1><<<g, t, 0, c->stream>>>(out, q, q_stride, kcache, vcache, dslots, dlens, B, H, D,
                                                      slot_stride, kv_stride, scale);
    else if (D <= 64)
        k_attention_cached<2><<<g, t, 0, c->stream>>>(out, q, q_stride, kcache, vcache, dslots, dlens, B, H, D,
                                                      slot_stride, kv_stride, scale);
    else
        k_attention_cached<4><<<g, t, 0, c->stream>>>(out, q, q_stride, kcache, vcache, dslots, dlens, B, H, D,
                                                      slot_stride, kv_stride, scale);
    ops_cuda_check_launch("ops_attention_cached");
}

/* Backward, in two kernels so that nothing is accumulated by two threads:
 * per query row (b, h, i), ds_ij = scale · p_ij (do_i·v_j − Σ_j p_ij do_i·v_j)
 * goes to scratch and dq_i += Σ_j ds_ij k_j; then per key row (b, h, j),
 * dk_j += Σ_i ds_ij q_i and dv_j += Σ_i p_ij do_i. Masked keys (p = 0) add
 * nothing, as on the CPU. */
__global__ void k_attention_backward_q(float *ds, float *dq, const float *dout, const float *probs, const float *q,
                                       const float *k, const float *v, int B, int Tq, int Tk, int H, int D,
                                       int q_stride, int kv_stride, float scale)
{
    const long rows = (long)B * H * Tq;
    const long r = (long)blockIdx.x * ATT_WARPS + (threadIdx.x >> 5);
    if (r >= rows) return;
    const int lane = threadIdx.x & 31;
    const int i = (int)(r % Tq), h = (int)((r / Tq) % H), b = (int)(r / ((long)Tq * H));
    const size_t C = (size_t)H * D;
    const float *p = probs + (size_t)r * Tk; /* r enumerates (b, h, i) in probs' order */
    float *dsr = ds + (size_t)r * Tk;
    const float *doi = dout + ((size_t)b * Tq + i) * C + (size_t)h * D;
    const float *kb = k + (size_t)b * Tk * kv_stride + (size_t)h * D;
    const float *vb = v + (size_t)b * Tk * kv_stride + (size_t)h * D;
    float part = 0.0f;
    for (int j = lane; j < Tk; j += 32) {
        float dp = 0.0f;
        if (p[j] != 0.0f) {
            const float *vj = vb + (size_t)j * kv_stride;
            for (int d = 0; d < D; d++) dp += doi[d] * vj[d];
        }
        dsr[j] = dp; /* a lane rereads only its own keys below */
        part += p[j] * dp;
    }
    const float dsum = ops_warp_sum(part);
    for (int j = lane; j < Tk; j += 32) dsr[j] = p[j] != 0.0f ? p[j] * (dsr[j] - dsum) * scale : 0.0f;
    if (!dq) return;
    __syncwarp(); /* every lane reads every key's ds below */
    float *dqi = dq + ((size_t)b * Tq + i) * q_stride + (size_t)h * D;
    for (int d = lane; d < D; d += 32) {
        float s = 0.0f;
        for (int j = 0; j < Tk; j++)
            if (p[j] != 0.0f) s += dsr[j] * kb[(size_t)j * kv_stride + d];
        dqi[d] += s;
    }
}

__global__ void k_attention_backward_kv(float *dk, float *dv, const float *ds, const float *dout, const float *probs,
                                        const float *q, int B, int Tq, int Tk, int H, int D, int q_stride,
                                        int kv_stride)
{
    const long rows = (long)B * H * Tk;
    const long r = (long)blockIdx.x * ATT_WARPS + (threadIdx.x >> 5);
    if (r >= rows) return;
    const int lane = threadIdx.x & 31;
    const int j = (int)(r % Tk), h = (int)((r / Tk) % H), b = (int)(r / ((long)Tk * H));
    const size_t C = (size_t)H * D, bh = (size_t)b * H + h;
    const float *p = probs + bh * Tq * Tk + j, *dsj = ds + bh * Tq * Tk + j; /* column j, stride Tk */
    const float *qb = q + (size_t)b * Tq * q_stride + (size_t)h * D;
    const float *dob = dout + (size_t)b * Tq * C + (size_t)h * D;
    float *dkj = dk ? dk + ((size_t)b * Tk + j) * kv_stride + (size_t)h * D : NULL;
    float *dvj = dv ? dv + ((size_t)b * Tk + j) * kv_stride + (size_t)h * D : NULL;
    for (int d = lane; d < D; d += 32) {
        float sk = 0.0f, sv = 0.0f;
        for (int i = 0; i < Tq; i++) {
            const float pij = p[(size_t)i * Tk];
            if (pij == 0.0f) continue;
            sk += dsj[(size_t)i * Tk] * qb[(size_t)i * q_stride + d];
            sv += pij * dob[(size_t)i * C + d];
        }
        if (dkj) dkj[d] += sk;
        if (dvj) dvj[d] += sv;
    }
}

void ops_attention_backward(ops_ctx *c, float *dq, float *dk, float *dv, const float *dout, const float *probs,
                            const float *q, const float *k, const float *v, int B, int Tq, int Tk, int H, int D,
                            int q_stride, int kv_stride, float scale)
{
    if ((!dq && !dk && !dv) || B <= 0 || Tq <= 0 || Tk <= 0 || H <= 0 || D <= 0) return;
    ops_cuda_enter(c);
    const unsigned t = 32 * ATT_WARPS;
    float *ds = ops_cuda_work(c, (size_t)B * H * Tq * Tk);
    k_attention_backward_q<<<att_blocks((long)B * H * Tq), t, 0, c->stream>>>(ds, dq, dout, probs, q, k, v, B, Tq, Tk,
                                                                             H, D, q_stride, kv_stride, scale);
    ops_cuda_check_launch("ops_attention_backward (queries)");
    if (!dk && !dv) return;
    k_attention_backward_kv<<<att_blocks((long)B * H * Tk), t, 0, c->stream>>>(dk, dv, ds, dout, probs, q, B, Tq, Tk,
                                                                              H, D, q_stride, kv_stride);
    ops_cuda_check_launch("ops_attention_backward (keys, values)");
}
