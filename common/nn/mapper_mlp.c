#include "nn/mapper_mlp.h"

#include "nn/param_spec.h"

#include <string.h>

static size_t hidden(const mapper_mlp_config *c) { return (size_t)c->n_embd * c->prefix_len / 2; }

static void specs(const mapper_mlp_config *c, param_spec s[4])
{
    int64_t h = (int64_t)hidden(c), o = (int64_t)c->n_embd * c->prefix_len;
    const param_spec t[4] = {
        {"clip_project.model.0.weight", 0, 2, {h, c->clip_dim}},
        {"clip_project.model.0.bias", 0, 1, {h}},
        {"clip_project.model.2.weight", 0, 2, {o, h}},
        {"clip_project.model.2.bias", 0, 1, {o}},
    };
    memcpy(s, t, sizeof t);
}

size_t mapper_mlp_param_count(const mapper_mlp_config *c)
{
    param_spec s[4];
    specs(c, s);
    return param_spec_total(s, 4, 0);
}

int mapper_mlp_tensor_entries(const mapper_mlp_config *c, float *base, st_entry *out, char (*names)[PARAM_NAME_MAX])
{
    param_spec s[4];
    specs(c, s);
    return param_spec_entries(s, 4, 0, "", "", base, out, names);
}

static void bind(mapper_mlp_params *p, const mapper_mlp_config *c, float *base)
{
    param_spec s[4];
    specs(c, s);
    float **const views[4] = {&p->w0, &p->b0, &p->w2, &p->b2};
    param_spec_bind(s, 4, 0, base, views);
}

void mapper_mlp_init(mapper_mlp *m, ops_ctx *ctx, const mapper_mlp_config *cfg, float *params, float *grads)
{
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    m->ctx = ctx;
    bind(&m->params, cfg, params);
    bind(&m->grads, cfg, grads);
}

void mapper_mlp_free(mapper_mlp *m)
{
    if (!m) return;
    ops_free(m->ctx, m->h);
    memset(m, 0, sizeof *m);
}

int mapper_mlp_forward(mapper_mlp *m, float *out, const float *clip, int B, err_t *e)
{
    const mapper_mlp_config *c = &m->cfg;
    size_t h = hidden(c), o = (size_t)c->n_embd * c->prefix_len;
    if (B > m->cap_B) {
        ops_free(m->ctx, m->h);
        m->cap_B = 0;
        m->h = ops_alloc(m->ctx, 3 * (size_t)B * h, e);
        if (!m->h) return err_wrap(e, "MLP mapper activations for B=%d", B);
        m->cap_B = B;
    }
    m->ht = m->h + (size_t)B * h;
    m->dht = m->ht + (size_t)B * h;
    m->B = B;
    const mapper_mlp_params *p = &m->params;
    ops_matmul(m->ctx, m->h, clip, p->w0, p->b0, B, c->clip_dim, (int)h, OPS_W_NK);
    ops_tanh(m->ctx, m->ht, m->h, (size_t)B * h);
    ops_matmul(m->ctx, out, m->ht, p->w2, p->b2, B, (int)h, (int)o, OPS_W_NK);
    return 0;
}

void mapper_mlp_backward(mapper_mlp *m, const float *dout, const float *clip)
{
    const mapper_mlp_config *c = &m->cfg;
    const mapper_mlp_params *p = &m->params, *g = &m->grads;
    size_t h = hidden(c), o = (size_t)c->n_embd * c->prefix_len;
    int B = m->B;
    ops_fill(m->ctx, m->dht, 0.0f, (size_t)B * h);
    ops_matmul_backward(m->ctx, m->dht, g->w2, g->b2, dout, m->ht, p->w2, B, (int)h, (int)o, OPS_W_NK);
    /* the pre-tanh gradient overwrites h, which backward no longer needs */
    ops_fill(m->ctx, m->h, 0.0f, (size_t)B * h);
    ops_tanh_backward(m->ctx, m->h, m->ht, m->dht, (size_t)B * h);
    ops_matmul_backward(m->ctx, NULL, g->w0, g->b0, m->h, clip, p->w0, B, c->clip_dim, (int)h, OPS_W_NK);
}
