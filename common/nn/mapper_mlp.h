/* ClipCap's MLP mapper (the "MLP + GPT-2 tuning" model): Linear(D → E·k/2)
 * → tanh → Linear(E·k/2 → E·k), the output read as k prefix vectors of
 * width E. Checkpoint names clip_project.model.0.{weight,bias} and
 * clip_project.model.2.{weight,bias}, torch.nn.Linear layout [out, in]
 * (OPS_W_NK).
 *
 * Parameters and gradients are views of caller buffers (see gpt2.h for
 * why); activations are owned and sized for the largest batch seen.
 * Backward ACCUMULATES weight gradients; CLIP embeddings get none. */
#ifndef CLIPCAP_MAPPER_MLP_H
#define CLIPCAP_MAPPER_MLP_H

#include <stddef.h>
#include "core/log.h"
#include "io/safetensors.h"
#include "nn/ops.h"
#include "nn/param_spec.h"

typedef struct mapper_mlp_config {
    int clip_dim, n_embd, prefix_len;
} mapper_mlp_config;

typedef struct mapper_mlp_params {
    float *w0, *b0; /* [E·k/2, D], [E·k/2] */
    float *w2, *b2; /* [E·k, E·k/2], [E·k] */
} mapper_mlp_params;

typedef struct mapper_mlp {
    mapper_mlp_config cfg;
    ops_ctx *ctx;
    mapper_mlp_params params, grads; /* grads views NULL when not trained */
    int B, cap_B;
    float *h, *ht;     /* [B, E·k/2] pre- and post-tanh */
    float *dht;        /* [B, E·k/2] backward scratch */
} mapper_mlp;

size_t mapper_mlp_param_count(const mapper_mlp_config *cfg);
/* Checkpoint tensors as views into base; returns the count (4). */
int mapper_mlp_tensor_entries(const mapper_mlp_config *cfg, float *base, st_entry *out, char (*names)[PARAM_NAME_MAX]);
void mapper_mlp_init(mapper_mlp *m, ops_ctx *ctx, const mapper_mlp_config *cfg, float *params, float *grads);
void mapper_mlp_free(mapper_mlp *m);
/* clip [B, D] → out [B, k, E] */
int mapper_mlp_forward(mapper_mlp *m, float *out, const float *clip, int B, err_t *e);
/* After forward with the same clip batch. */
void mapper_mlp_backward(mapper_mlp *m, const float *dout, const float *clip);

#endif
