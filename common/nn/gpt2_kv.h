/* GPT-2 inference with a key/value cache: the forward pass of common/nn/
 * gpt2 (same parameters, same ops, so every backend runs it) split into a
 * prefill of whole input sequences and single-token steps, each sequence
 * in a cache SLOT of its own, so sequences of different lengths share one
 * step (continuous batching).
 *
 * Contract:
 * - Cache layout: per layer [slots, max_len, 2E]; a row is one position's
 *   key (E floats, heads side by side as c_attn emits them) followed by its
 *   value, so one copy moves a position and a sequence's rows are one
 *   contiguous block per layer (gpt2_kv_copy_slot is L copies).
 * - gpt2_kv_prefill starts n sequences from their input embeddings (ClipCap
 *   prefixes) at positions 0..T-1; gpt2_kv_step feeds one token per
 *   sequence at a given position (its cache must hold positions
 *   0..pos-1). Both leave the final residual (before ln_f) of each
 *   sequence's LAST position in `last` [rows, E]; gpt2_kv_logits turns such
 *   rows into logits. Positions are absolute (wpe row = position).
 * - The numbers equal gpt2_forward's on the whole sequence up to fp32
 *   summation order (the GEMM shapes differ).
 * - slots and token ids are HOST arrays; every float pointer is backend
 *   memory. A gpt2_kv borrows its gpt2, which must outlive it. */
#ifndef CLIPCAP_GPT2_KV_H
#define CLIPCAP_GPT2_KV_H

#include <stdint.h>
#include "core/log.h"
#include "nn/gpt2.h"

typedef struct gpt2_kv {
    gpt2 *g;
    int slots, max_len;
    int max_rows;      /* rows one forward may process: n·T of a prefill, B of a step */
    size_t slot_stride; /* floats between two slots' rows in one layer: max_len·2E */
    float *cache;      /* [L, slots, max_len, 2E] */
    float *x, *ln, *qkv, *atty, *proj, *fch, *fchg; /* [max_rows, E|3E|4E] activations */
    float *mem;        /* the one allocation behind cache and activations */
    int32_t *scratch;  /* [max_rows + max(max_rows, n_layer)] host: row indices, attention lengths */
} gpt2_kv;

/* slots sequences of up to max_len positions (<= n_positions); forwards of
 * up to max_rows rows. ERR_ARG / ERR_NOMEM. */
int gpt2_kv_create(gpt2_kv *kv, gpt2 *g, int slots, int max_len, int max_rows, err_t *e);
void gpt2_kv_free(gpt2_kv *kv);

/* inp: [n, T, E] input embeddings; sequence i goes to slots[i], positions
 * 0..T-1 (n·T <= max_rows, T <= max_len). last: [n, E]. */
void gpt2_kv_prefill(gpt2_kv *kv, const float *inp, int n, int T, const int32_t *slots, float *last);

/* Sequence b (b < B <= max_rows) feeds token tokens[b] at position pos[b]
 * (< max_len) of slots[b]. last: [B, E]. */
void gpt2_kv_step(gpt2_kv *kv, const int32_t *tokens, const int32_t *pos, const int32_t *slots, int B, float *last);

/* logits [n, V] = ln_f(last) · wteᵀ, n <= max_rows. */
void gpt2_kv_logits(gpt2_kv *kv, const float *last, int n, float *logits);

/* Positions 0..len-1 of slot src into slot dst (a beam forking). */
void gpt2_kv_copy_slot(gpt2_kv *kv, int dst, int src, int len);

#endif
