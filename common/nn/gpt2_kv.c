#include "nn/gpt2_kv.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn/ops_ext.h"

int gpt2_kv_create(gpt2_kv *kv, gpt2 *g, int slots, int max_len, int max_rows, err_t *e)
{
    memset(kv, 0, sizeof *kv);
    const gpt2_config *c = &g->cfg;
    if (slots < 1 || max_rows < 1 || max_len < 1 || max_len > c->n_positions)
        return err_set(e, ERR_ARG, "GPT-2 cache: slots=%d max_rows=%d max_len=%d (max_len must be in 1..%d)", slots,
                       max_rows, max_len, c->n_positions);
    const size_t E = (size_t)c->n_embd;
    kv->g = g;
    kv->slots = slots;
    kv->max_len = max_len;
    kv->max_rows = max_rows;
    kv->slot_stride = (size_t)max_len * 2 * E;
    const size_t cache = (size_t)c->n_layer * slots * kv->slot_stride;
    const size_t R = (size_t)max_rows;
    /* x, ln, qkv, atty, proj, fch, fchg */
    const size_t widths[7] = {E, E, 3 * E, E, E, 4 * E, 4 * E};
    size_t total = cache;
    for (int i = 0; i < 7; i++) total += R * widths[i];
    if (!(kv->mem = ops_alloc(g->ctx, total, e))) {
        gpt2_kv_free(kv);
        return err_wrap(e, "GPT-2 cache for %d sequences of %d positions, %d rows", slots, max_len, max_rows);
    }
    /* [0, R): row indices or attention lengths; then cache rows (R of a
     * forward, or one per layer for gpt2_kv_copy_slot) */
    const size_t rows = R > (size_t)c->n_layer ? R : (size_t)c->n_layer;
    if (!(kv->scratch = malloc((R + rows) * sizeof *kv->scratch))) {
        gpt2_kv_free(kv);
        return err_set(e, ERR_NOMEM, "GPT-2 cache: out of memory");
    }
    float **const views[7] = {&kv->x, &kv->ln, &kv->qkv, &kv->atty, &kv->proj, &kv->fch, &kv->fchg};
    kv->cache = kv->mem;
    float *p = kv->mem + cache;
    for (int i = 0; i < 7; i++) {
        *views[i] = p;
        p += R * widths[i];
    }
    return 0;
}

void gpt2_kv_free(gpt2_kv *kv)
{
    if (!kv) return;
    if (kv->g) ops_free(kv->g->ctx, kv->mem);
    free(kv->scratch);
    memset(kv, 0, sizeof *kv);
}

/* The transformer blocks over kv->x, B sequences of T rows each. Sequence
 * b's rows are positions pos0[b] .. pos0[b]+T-1 (pos0 NULL: 0): their keys
 * and values go into its slot first, then a single new row attends to its
 * whole cache, while a fresh multi-row sequence (pos0 0) attends causally
 * within its own rows, which hold everything it has. */
static void blocks(gpt2_kv *kv, int B, int T, const int32_t *slots, const int32_t *pos0)
{
    gpt2 *g = kv->g;
    ops_ctx *ctx = g->ctx;
    const gpt2_config *c = &g->cfg;
    const gpt2_params *p = &g->params;
    const int E = c->n_embd, H = c->n_head, hd = E / H, M = B * T;
    const size_t ME = (size_t)M * E, EE = (size_t)E * E;
    const float scale = 1.0f / sqrtf((float)hd);
    int32_t *lens = kv->scratch, *rows = kv->scratch + kv->max_rows;
    for (int b = 0; T == 1 && b < B; b++) lens[b] = (pos0 ? pos0[b] : 0) + 1;
    /* row (b, t)'s key and value go to cache row slots[b]·max_len + pos0[b]
     * + t of each layer (rows of 2E): one scatter per layer, not B·T copies */
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) rows[b * T + t] = slots[b] * kv->max_len + (pos0 ? pos0[b] : 0) + t;
    for (int l = 0; l < c->n_layer; l++) {
        float *cl = kv->cache + (size_t)l * kv->slots * kv->slot_stride;
        ops_layernorm(ctx, kv->ln, NULL, NULL, kv->x, p->ln1w + (size_t)l * E, p->ln1b + (size_t)l * E, M, E, c->ln_eps);
        ops_matmul(ctx, kv->qkv, kv->ln, p->qkvw + l * 3 * EE, p->qkvb + (size_t)l * 3 * E, M, E, 3 * E, OPS_W_KN);
        ops_scatter_rows(ctx, cl, 2 * E, rows, kv->qkv + E, 3 * E, M, 2 * E);
        if (T == 1)
            ops_attention_cached(ctx, kv->atty, kv->qkv, 3 * E, cl, cl + E, slots, lens, B, H, hd, kv->slot_stride,
                                 2 * E, scale);
        else
            ops_attention(ctx, kv->atty, NULL, kv->qkv, kv->qkv + E, kv->qkv + 2 * E, B, T, T, H, hd, 3 * E, 3 * E, 1,
                          scale);
        ops_matmul(ctx, kv->proj, kv->atty, p->attprojw + l * EE, p->attprojb + (size_t)l * E, M, E, E, OPS_W_KN);
        ops_add(ctx, kv->x, kv->x, kv->proj, ME);
        ops_layernorm(ctx, kv->ln, NULL, NULL, kv->x, p->ln2w + (size_t)l * E, p->ln2b + (size_t)l * E, M, E, c->ln_eps);
        ops_matmul(ctx, kv->fch, kv->ln, p->fcw + l * 4 * EE, p->fcb + (size_t)l * 4 * E, M, E, 4 * E, OPS_W_KN);
        ops_gelu_tanh(ctx, kv->fchg, kv->fch, ME * 4);
        ops_matmul(ctx, kv->proj, kv->fchg, p->fcprojw + l * 4 * EE, p->fcprojb + (size_t)l * E, M, 4 * E, E, OPS_W_KN);
        ops_add(ctx, kv->x, kv->x, kv->proj, ME);
    }
}

void gpt2_kv_prefill(gpt2_kv *kv, const float *inp, int n, int T, const int32_t *slots, float *last)
{
    ops_ctx *ctx = kv->g->ctx;
    const size_t TE = (size_t)T * kv->g->cfg.n_embd;
    ops_copy(ctx, kv->x, inp, (size_t)n * TE);
    for (int i = 0; i < n; i++) ops_add(ctx, kv->x + i * TE, kv->x + i * TE, kv->g->params.wpe, TE);
    blocks(kv, n, T, slots, NULL);
    int32_t *rows = kv->scratch;
    for (int i = 0; i < n; i++) rows[i] = i * T + T - 1;
    ops_gather_rows(ctx, last, kv->x, rows, n, kv->g->cfg.n_embd);
}

void gpt2_kv_step(gpt2_kv *kv, const int32_t *tokens, const int32_t *pos, const int32_t *slots, int B, float *last)
{
    ops_ctx *ctx = kv->g->ctx;
    const int E = kv->g->cfg.n_embd;
    ops_gather_rows(ctx, kv->x, kv->g->params.wte, tokens, B, E);
    ops_gather_rows(ctx, kv->proj, kv->g->params.wpe, pos, B, E);
    ops_add(ctx, kv->x, kv->x, kv->proj, (size_t)B * E);
    blocks(kv, B, 1, slots, pos);
    ops_copy(ctx, last, kv->x, (size_t)B * E);
}

void gpt2_kv_logits(gpt2_kv *kv, const float *last, int n, float *logits)
{
    gpt2 *g = kv->g;
    const gpt2_config *c = &g->cfg;
    ops_layernorm(g->ctx, kv->ln, NULL, NULL, last, g->params.lnfw, g->params.lnfb, n, c->n_embd, c->ln_eps);
    ops_matmul(g->ctx, logits, kv->ln, g->params.wte, NULL, n, c->n_embd, c->vocab_size, OPS_W_NK);
}

void gpt2_kv_copy_slot(gpt2_kv *kv, int dst, int src, int len)
{
    if (dst == src) return;
    const int L = kv->g->cfg.n_layer;
    const size_t layer = (size_t)kv->slots * kv->slot_stride;
    /* layer l's block is "row" l at a stride of one layer: one op for all */
    int32_t *rows = kv->scratch + kv->max_rows;
    for (int l = 0; l < L; l++) rows[l] = l;
    ops_scatter_rows(kv->g->ctx, kv->cache + (size_t)dst * kv->slot_stride, layer, rows,
                     kv->cache + (size_t)src * kv->slot_stride, layer, L, len * 2 * kv->g->cfg.n_embd);
}
