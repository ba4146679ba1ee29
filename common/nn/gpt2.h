/* GPT-2 (every hub size, config-driven) with an explicit forward and
 * backward pass, llm.c's train_gpt2.c layout.
 *
 * Contract:
 * - Input is a batch of INPUT EMBEDDINGS [B, T, E] (ClipCap feeds prefix
 *   vectors followed by token embeddings; gpt2_embed gathers the latter);
 *   gpt2_forward adds wpe and leaves logits [B, T, V] in acts.logits;
 *   gpt2_forward_rows computes the tied head only for the rows a loss
 *   reads and leaves logits [n_rows, V] in their order.
 * - gpt2_backward takes dlogits of the same shape and ACCUMULATES the gradient
 *   w.r.t. the input embeddings into dinp and, unless the model is frozen
 *   (grads == NULL at init), the weight gradients into the grads views; the
 *   tied head and the embedding lookup (gpt2_embed_backward) both add into
 *   grads.wte. A frozen model never computes or stores weight gradients.
 * - Parameters live in ONE buffer owned by the caller (so ClipCap can place
 *   mapper and GPT-2 in one flat buffer for one allreduce and one AdamW
 *   sweep); gpt2_bind gives named views. Per-layer tensors are stacked
 *   [L, ...] and keep the checkpoint's Conv1D layout [in, out] (OPS_W_KN).
 * - Activations are owned by the model, allocated for the largest B×T (and
 *   head rows) seen.
 *   Backward needs only one layer's worth of gradient scratch.
 * - Hub checkpoints: config.json + model.safetensors (or any file
 *   tensorfile_open reads); tensor names with or without "transformer."
 *   (or "gpt.transformer." in ClipCap checkpoints); h.N.attn.bias and
 *   h.N.attn.masked_bias buffers are ignored; lm_head.weight, if present,
 *   must equal wte (the head is tied). */
#ifndef CLIPCAP_GPT2_H
#define CLIPCAP_GPT2_H

#include <stddef.h>
#include <stdint.h>
#include "core/log.h"
#include "io/safetensors.h"
#include "io/tensorfile.h"
#include "nn/ops.h"
#include "nn/param_spec.h"

typedef struct gpt2_config {
    int vocab_size, n_positions, n_embd, n_head, n_layer;
    float ln_eps;
    /* config.json's dropout probabilities (a missing key is 0.1, as Hugging
     * Face reads it); used only when a trainer sets gpt2.drop */
    float attn_pdrop, resid_pdrop, embd_pdrop;
} gpt2_config;

/* Training mode: dropout where Hugging Face's GPT-2 applies it, on the
 * input embeddings after wpe is added (embd), on the attention
 * probabilities (attn), and on the outputs of attn.c_proj and mlp.c_proj
 * before their residual adds (resid). All probabilities 0 (gpt2_init's
 * default) is eval mode and computes exactly what it did without dropout.
 * Masks come from nn/ops_dropout_mask.h: call site s (0 = embd; layer l:
 * 1+3l attn, 2+3l after attn.c_proj, 3+3l after mlp.c_proj) uses the key
 * gpt2_dropout_site_key(key, s), and sequence b of the call is sequence
 * row0 + b of the global batch, so a batch split over ranks drops what the
 * whole batch would. The caller sets key (e.g. from the seed and step) before
 * each forward; backward reuses it. */
typedef struct gpt2_dropout {
    float embd, attn, resid;
    uint64_t key;
    int64_t row0;
} gpt2_dropout;
uint64_t gpt2_dropout_site_key(uint64_t key, int site);

#define GPT2_NUM_PARAM_TENSORS 16
typedef struct gpt2_params {
    float *wte;              /* [V, E], also the output head */
    float *wpe;              /* [P, E] */
    float *ln1w, *ln1b;      /* [L, E] */
    float *qkvw;             /* [L, E, 3E] */
    float *qkvb;             /* [L, 3E] */
    float *attprojw;         /* [L, E, E] */
    float *attprojb;         /* [L, E] */
    float *ln2w, *ln2b;      /* [L, E] */
    float *fcw;              /* [L, E, 4E] */
    float *fcb;              /* [L, 4E] */
    float *fcprojw;          /* [L, 4E, E] */
    float *fcprojb;          /* [L, E] */
    float *lnfw, *lnfb;      /* [E] */
} gpt2_params;

typedef struct gpt2_acts {
    float *encoded;             /* [B, T, E] input + wpe */
    float *ln1, *ln1_mean, *ln1_rstd; /* [L, B, T, E], [L, B, T] */
    float *qkv;                 /* [L, B, T, 3E] */
    float *atty;                /* [L, B, T, E] */
    float *att;                 /* [L, B, H, T, T] softmax probabilities */
    float *residual2;           /* [L, B, T, E] after the attention branch */
    float *ln2, *ln2_mean, *ln2_rstd;
    float *fch, *fch_gelu;      /* [L, B, T, 4E] */
    float *residual3;           /* [L, B, T, E] layer outputs */
    float *lnf, *lnf_mean, *lnf_rstd; /* [B, T, E], [B, T] */
    float *head_in;             /* [n_rows, E] the lnf rows of gpt2_forward_rows */
    float *logits;              /* [B, T, V], or [n_rows, V] */
} gpt2_acts;

/* One layer's gradient scratch, reused layer after layer. */
typedef struct gpt2_grad_scratch {
    float *dresidual; /* [B, T, E] the running gradient of the residual stream */
    float *dln;       /* [B, T, E] */
    float *datty;     /* [B, T, E] */
    float *dqkv;      /* [B, T, 3E] */
    float *dfch, *dfch_gelu; /* [B, T, 4E] */
} gpt2_grad_scratch;

typedef struct gpt2 {
    gpt2_config cfg;
    ops_ctx *ctx;
    gpt2_params params;
    gpt2_params grads; /* every view NULL when frozen */
    int frozen;
    int B, T;          /* the shape of the last forward */
    const int32_t *head_rows; /* its row list (caller's, host), NULL: every row */
    int n_head_rows;
    size_t act_cap;    /* floats allocated for the activations */
    gpt2_acts acts;
    float *act_mem;
    gpt2_grad_scratch scratch;
    float *scratch_mem;
    size_t scratch_cap;
    float *own_params; /* set by gpt2_open, which owns its parameters */
    /* Optional (NULL after gpt2_init): called by gpt2_backward as soon as
     * layer l's weight gradients are final, l from L-1 down to 0, so a
     * data-parallel caller can start reducing them while the layers below
     * are still computing. A nonzero return stops backward and is returned. */
    int (*on_layer_grads)(void *user, int layer, err_t *e);
    void *on_layer_user;
    gpt2_dropout drop; /* zero: eval mode */
} gpt2;

/* Reads DIR/config.json (n_embd, n_head, n_layer, n_positions, vocab_size,
 * layer_norm_epsilon, attn_pdrop, resid_pdrop, embd_pdrop; activation_function
 * must be gelu_new if present). */
int gpt2_config_load(gpt2_config *cfg, const char *dir, err_t *e);
size_t gpt2_param_count(const gpt2_config *cfg);
void gpt2_bind(gpt2_params *p, const gpt2_config *cfg, float *base);

/* The checkpoint tensors as st_entry views into base (names "PREFIXwte.weight",
 * "PREFIXh.N.ln_1.weight", ...; names[i] holds entry i's name). Returns the
 * count, 4 + 12·L; with out == NULL only counts. */
int gpt2_tensor_entries(const gpt2_config *cfg, const char *prefix, float *base, st_entry *out,
                        char (*names)[PARAM_NAME_MAX]);

/* The per-layer gradient slices of layer l (GPT2_LAYER_TENSORS of them,
 * gpt2_params order): ptr[i] and n[i] floats. Only for a model that is not
 * frozen. */
#define GPT2_LAYER_TENSORS 12
void gpt2_layer_grads(const gpt2 *g, int l, float *ptr[GPT2_LAYER_TENSORS], size_t n[GPT2_LAYER_TENSORS]);

/* params and grads are views of caller buffers of gpt2_param_count floats;
 * grads == NULL freezes the model. */
void gpt2_init(gpt2 *g, ops_ctx *ctx, const gpt2_config *cfg, float *params, float *grads);
/* Fill the parameters from an open tensor file. prefix NULL detects
 * "", "transformer." or "gpt.transformer." from where wte.weight is. */
int gpt2_load_weights(gpt2 *g, const tensorfile *tf, const char *prefix, err_t *e);
/* A hub directory's weights file: model.safetensors, or pytorch_model.bin
 * (torch.save zip) where a snapshot has only that. path (cap bytes) gets
 * the file opened, for error messages. */
int gpt2_open_weights(tensorfile **tf, const char *dir, char *path, size_t cap, err_t *e);
/* config + weights (gpt2_open_weights) of a hub directory, frozen,
 * parameters owned. */
int gpt2_open(gpt2 *g, ops_ctx *ctx, const char *dir, err_t *e);
void gpt2_free(gpt2 *g);

/* x[i,:] = wte[ids[i],:] for i < n (ids must be in [0, V)). */
void gpt2_embed(gpt2 *g, float *x, const int32_t *ids, int n);
/* grads.wte[ids[i],:] += dx[i,:]; nothing when frozen. */
void gpt2_embed_backward(gpt2 *g, const float *dx, const int32_t *ids, int n);

/* inp: [B, T, E]; T <= n_positions. Logits in g->acts.logits. */
int gpt2_forward(gpt2 *g, const float *inp, int B, int T, err_t *e);
/* The same with logits [n_rows, V] for rows[0..n_rows) only (row b·T + t,
 * in [0, B·T); a repeated row gets the sum of its dlogits' gradients): a ClipCap loss reads only the caption positions,
 * and the head is the largest GEMM, so the prefix and padding rows are
 * skipped. rows is the caller's host array, read again by gpt2_backward. */
int gpt2_forward_rows(gpt2 *g, const float *inp, int B, int T, const int32_t *rows, int n_rows, err_t *e);
/* After gpt2_forward (uses its B, T, rows and activations). dinp may be
 * NULL. Fails only when the gradient scratch cannot be allocated. */
int gpt2_backward(gpt2 *g, const float *dlogits, float *dinp, err_t *e);

#endif
