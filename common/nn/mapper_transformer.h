/* ClipCap's Transformer mapper (the "frozen GPT-2" model):
 * Linear(D → clip_len·E) read as clip_len × E, followed by the learned
 * prefix_const [k, E] → L pre-norm layers (x += attn(norm1(x));
 * x += mlp(norm2(x)); 8 heads, no mask, scale 1/sqrt(E/heads); queries
 * Linear(E→E) and keys+values Linear(E→2E) without bias, keys in the first
 * E outputs; project Linear(E→E) with bias; mlp Linear(E→2E) → ReLU →
 * Linear(2E→E); LayerNorm eps 1e-5) → the last k rows are the prefix.
 * Checkpoint names clip_project.linear.*, clip_project.prefix_const,
 * clip_project.transformer.layers.N.{norm1,norm2,attn.to_queries,
 * attn.to_keys_values,attn.project,mlp.fc1,mlp.fc2}.*, Linear layout
 * [out, in] (OPS_W_NK).
 *
 * Parameters and gradients are views of caller buffers; activations are
 * owned, sized for the largest batch seen. Backward ACCUMULATES. */
#ifndef CLIPCAP_MAPPER_TRANSFORMER_H
#define CLIPCAP_MAPPER_TRANSFORMER_H

#include <stddef.h>
#include "core/log.h"
#include "io/safetensors.h"
#include "nn/ops.h"
#include "nn/param_spec.h"

typedef struct mapper_tf_config {
    int clip_dim, n_embd, prefix_len, clip_len, n_layer, n_head;
} mapper_tf_config;

#define MAPPER_TF_NUM_TENSORS 15
typedef struct mapper_tf_params {
    float *linw, *linb;       /* [clip_len·E, D], [clip_len·E] */
    float *prefix_const;      /* [k, E] */
    float *n1w, *n1b;         /* [L, E] */
    float *qw;                /* [L, E, E] */
    float *kvw;               /* [L, 2E, E] */
    float *projw, *projb;     /* [L, E, E], [L, E] */
    float *n2w, *n2b;         /* [L, E] */
    float *fc1w, *fc1b;       /* [L, 2E, E], [L, 2E] */
    float *fc2w, *fc2b;       /* [L, E, 2E], [L, E] */
} mapper_tf_params;

typedef struct mapper_tf_acts {
    float *lin;                        /* [B, clip_len·E] */
    float *x0;                         /* [B, T, E], T = clip_len + k */
    float *ln1, *ln1_mean, *ln1_rstd;  /* [L, B, T, E], [L, B, T] */
    float *q;                          /* [L, B, T, E] */
    float *kv;                         /* [L, B, T, 2E] */
    float *att;                        /* [L, B, H, T, T] */
    float *atty, *res2;                /* [L, B, T, E] */
    float *ln2, *ln2_mean, *ln2_rstd;
    float *fc1, *fc1_relu;             /* [L, B, T, 2E] */
    float *res3;                       /* [L, B, T, E] */
    /* backward scratch, one layer */
    float *dres, *dln, *datty, *dq;    /* [B, T, E] */
    float *dkv, *dfc1, *dfc1_relu;     /* [B, T, 2E] */
    float *dlin;                       /* [B, clip_len·E] */
} mapper_tf_acts;

typedef struct mapper_tf {
    mapper_tf_config cfg;
    ops_ctx *ctx;
    mapper_tf_params params, grads; /* grads views NULL when not trained */
    int B;
    size_t cap;
    mapper_tf_acts acts;
    float *mem;
} mapper_tf;

size_t mapper_tf_param_count(const mapper_tf_config *cfg);
/* Checkpoint tensors as views into base; returns the count (3 + 12·L). */
int mapper_tf_tensor_entries(const mapper_tf_config *cfg, float *base, st_entry *out,
                             char (*names)[PARAM_NAME_MAX]);
void mapper_tf_init(mapper_tf *m, ops_ctx *ctx, const mapper_tf_config *cfg, float *params, float *grads);
void mapper_tf_free(mapper_tf *m);
/* clip [B, D] → out [B, k, E] */
int mapper_tf_forward(mapper_tf *m, float *out, const float *clip, int B, err_t *e);
/* After forward with the same clip batch. */
void mapper_tf_backward(mapper_tf *m, const float *dout, const float *clip);

#endif
