/* The ClipCap model for training: a mapper (MLP or Transformer) turns a
 * batch of CLIP embeddings into k prefix vectors, GPT-2 reads
 * [prefix, caption token embeddings], and the loss is the cross-entropy of
 * the logits at positions k-1 … k+L-2 against the L caption tokens.
 *
 * Decisions (docs/training.md):
 * - Padding (token id < 0 in the caller's [B, L] token matrix) is embedded
 *   as id 0, as the reference does, and ignored in the loss. Real "!" tokens
 *   (id 0) count, unlike the reference, which ignores every target 0;
 *   cfg.ignore_bang = 1 reproduces the reference's rule.
 * - No attention mask beyond the causal one: pads sit after every real
 *   token, so no position the loss sees can attend to them.
 * - Parameters are ONE buffer [mapper | GPT-2] and gradients ONE buffer
 *   [mapper | GPT-2 when tuned]: the trainable parameters are exactly
 *   params[0..n_trainable) with gradients grads[0..n_trainable), so one
 *   allreduce and one AdamW sweep cover the model. A frozen GPT-2 has no
 *   gradient storage at all.
 * - The loss is a SUM over counted targets plus the count; backward takes
 *   the scale (1 / global count), so data-parallel ranks reproduce the
 *   single-process mean exactly. */
#ifndef CLIPCAP_CLIPCAP_MODEL_H
#define CLIPCAP_CLIPCAP_MODEL_H

#include <stddef.h>
#include <stdint.h>
#include "core/log.h"
#include "io/safetensors.h"
#include "io/tensorfile.h"
#include "nn/gpt2.h"
#include "nn/mapper_mlp.h"
#include "nn/mapper_transformer.h"
#include "nn/ops.h"

enum clipcap_mapping { CLIPCAP_MAP_MLP = 0, CLIPCAP_MAP_TRANSFORMER = 1 };

typedef struct clipcap_config {
    enum clipcap_mapping mapping;
    int clip_dim;      /* D */
    int prefix_len;    /* k */
    int clip_len;      /* Transformer mapper only */
    int mapper_layers; /* Transformer mapper only (8 in the reference) */
    int freeze_gpt2;
    int ignore_bang;   /* ignore target id 0 as the reference does */
} clipcap_config;

typedef struct clipcap_model {
    clipcap_config cfg;
    ops_ctx *ctx;
    gpt2 gpt;
    mapper_mlp mlp;
    mapper_tf tf;
    float *params, *grads;
    size_t n_params, n_mapper, n_trainable;
    /* the last batch */
    int B, L, T;
    size_t cap_f, cap_i;
    const float *clip;
    float *prefix, *dprefix; /* [B, k, E] */
    float *x, *dx;           /* [B, T, E] */
    float *dlogits;          /* [n_rows, V] */
    float *losses;           /* [n_rows] */
    float *batch_mem;
    int n_rows;              /* the rows GPT-2's head computes: the counted
                                targets, in order, then padding (clipcap_model.c) */
    int32_t *rows;           /* [n_rows] their positions b·T + t */
    int32_t *targets;        /* [n_rows] their token ids; -1 on padding */
    int32_t *ids;            /* [B·L] token ids to embed */
} clipcap_model;

/* Allocates parameters (zero) and, for the trainable part, gradients. */
int clipcap_model_init(clipcap_model *m, ops_ctx *ctx, const clipcap_config *cfg, const gpt2_config *gcfg,
                       err_t *e);
void clipcap_model_free(clipcap_model *m);

/* The checkpoint tensors of base (m->params or m->grads): clip_project.*
 * then, when include_gpt2, gpt.transformer.*. names must hold
 * clipcap_model_tensor_count entries. Returns the count. */
int clipcap_model_tensor_count(const clipcap_model *m, int include_gpt2);
int clipcap_model_tensor_entries(const clipcap_model *m, float *base, int include_gpt2, st_entry *out,
                                 char (*names)[PARAM_NAME_MAX]);
/* Load the mapper's clip_project.* tensors from tf. */
int clipcap_model_load_mapper(clipcap_model *m, const tensorfile *tf, err_t *e);
/* Load GPT-2 from tf (hub file or a ClipCap checkpoint's gpt.transformer.*). */
int clipcap_model_load_gpt2(clipcap_model *m, const tensorfile *tf, err_t *e);
/* PyTorch's default initialisation of a fresh mapper (Linear weights and
 * biases U(±1/sqrt(in)), LayerNorm 1 and 0, prefix_const N(0, 1)), from a
 * seed, deterministic on every backend. */
int clipcap_model_init_mapper(clipcap_model *m, uint64_t seed, err_t *e);

/* clip [B, D] (kept by pointer until backward), tokens [B, L] host ints with
 * -1 for padding. Fills *loss_sum (sum over counted targets) and *count. */
int clipcap_model_forward(clipcap_model *m, const float *clip, const int32_t *tokens, int B, int L,
                          double *loss_sum, long *count, err_t *e);
/* Counted targets of a token matrix (what forward will count), so ranks
 * can agree on the global count before the forward pass. */
long clipcap_model_count_targets(const clipcap_model *m, const int32_t *tokens, int B, int L);
/* Accumulates into m->grads the gradient of scale · loss_sum. */
int clipcap_model_backward(clipcap_model *m, float scale, err_t *e);
void clipcap_model_zero_grad(clipcap_model *m);

#endif
