#include "nn/adamw.h"

#include <string.h>

void adamw_config_default(adamw_config *c)
{
    c->lr = 2e-5f;
    c->beta1 = 0.9f;
    c->beta2 = 0.999f;
    c->eps = 1e-6f;
    c->weight_decay = 0.0f;
    c->warmup_steps = 5000;
    c->total_steps = 0;
}

float adamw_lr_at(const adamw_config *c, long s)
{
    /* computed in double, as the reference's Python lambda is */
    double f;
    if (s < c->warmup_steps)
        f = (double)s / (double)(c->warmup_steps > 1 ? c->warmup_steps : 1);
    else {
        long span = c->total_steps - c->warmup_steps;
        f = (double)(c->total_steps - s) / (double)(span > 1 ? span : 1);
        if (f < 0.0) f = 0.0;
    }
    return (float)((double)c->lr * f);
}

int adamw_init(adamw *o, ops_ctx *ctx, const adamw_config *cfg, size_t n, err_t *e)
{
    memset(o, 0, sizeof *o);
    o->cfg = *cfg;
    o->ctx = ctx;
    o->n = n;
    o->m = ops_alloc(ctx, 2 * n, e); /* zeroed: PyTorch's initial moments */
    if (!o->m) return err_wrap(e, "AdamW state for %zu parameters", n);
    o->v = o->m + n;
    return 0;
}

void adamw_free(adamw *o)
{
    if (!o) return;
    ops_free(o->ctx, o->m);
    memset(o, 0, sizeof *o);
}

float adamw_step(adamw *o, float *params, const float *grads)
{
    float lr = adamw_lr_at(&o->cfg, o->step);
    o->step++;
    ops_adamw(o->ctx, params, grads, o->m, o->v, o->n, lr, o->cfg.beta1, o->cfg.beta2, o->cfg.eps,
              o->cfg.weight_decay, (int)o->step);
    return lr;
}
