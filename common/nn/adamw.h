/* The optimiser ClipCap was trained with: torch.optim.AdamW (bias
 * correction on) driven by transformers' get_linear_schedule_with_warmup.
 *
 * Schedule: the learning rate of the t-th step (t = 1, 2, ...) is
 * lr · λ(t − 1) with λ(s) = s / max(1, warmup) while s < warmup, then
 * max(0, (total − s) / max(1, total − warmup)). The scheduler is stepped
 * after the optimiser in the reference, hence λ(t − 1): the very first step
 * runs with learning rate 0 when warmup > 0, exactly as there.
 *
 * State: the first and second moments (one flat buffer each, n floats, in
 * backend memory) and the step count; adamw_state_* expose them for
 * checkpointing so that a resumed run continues bit-exactly. */
#ifndef CLIPCAP_ADAMW_H
#define CLIPCAP_ADAMW_H

#include <stddef.h>
#include "core/log.h"
#include "nn/ops.h"

typedef struct adamw_config {
    float lr, beta1, beta2, eps, weight_decay;
    long warmup_steps, total_steps;
} adamw_config;

typedef struct adamw {
    adamw_config cfg;
    ops_ctx *ctx;
    size_t n;
    float *m, *v;
    long step; /* steps taken */
} adamw;

/* The reference's values: lr 2e-5, betas (0.9, 0.999), eps 1e-6, weight
 * decay 0, 5000 warm-up steps; total_steps must be set by the caller
 * (epochs × steps per epoch). */
void adamw_config_default(adamw_config *c);
/* λ(s) · lr for s scheduler steps taken. */
float adamw_lr_at(const adamw_config *c, long s);
int adamw_init(adamw *o, ops_ctx *ctx, const adamw_config *cfg, size_t n, err_t *e);
void adamw_free(adamw *o);
/* One step over params[0..n) with grads; returns the learning rate used. */
float adamw_step(adamw *o, float *params, const float *grads);

#endif
