#include "nn/mapper_transformer.h"

#include <math.h>
#include <string.h>

static void specs(const mapper_tf_config *c, param_spec s[MAPPER_TF_NUM_TENSORS])
{
    int64_t E = c->n_embd;
    const param_spec t[MAPPER_TF_NUM_TENSORS] = {
        {"clip_project.linear.weight", 0, 2, {c->clip_len * E, c->clip_dim}},
        {"clip_project.linear.bias", 0, 1, {c->clip_len * E}},
        {"clip_project.prefix_const", 0, 2, {c->prefix_len, E}},
        {"norm1.weight", 1, 1, {E}},
        {"norm1.bias", 1, 1, {E}},
        {"attn.to_queries.weight", 1, 2, {E, E}},
        {"attn.to_keys_values.weight", 1, 2, {2 * E, E}},
        {"attn.project.weight", 1, 2, {E, E}},
        {"attn.project.bias", 1, 1, {E}},
        {"norm2.weight", 1, 1, {E}},
        {"norm2.bias", 1, 1, {E}},
        {"mlp.fc1.weight", 1, 2, {2 * E, E}},
        {"mlp.fc1.bias", 1, 1, {2 * E}},
        {"mlp.fc2.weight", 1, 2, {E, 2 * E}},
        {"mlp.fc2.bias", 1, 1, {E}},
    };
    memcpy(s, t, sizeof t);
}

size_t mapper_tf_param_count(const mapper_tf_config *c)
{
    param_spec s[MAPPER_TF_NUM_TENSORS];
    specs(c, s);
    return param_spec_total(s, MAPPER_TF_NUM_TENSORS, c->n_layer);
}

int mapper_tf_tensor_entries(const mapper_tf_config *c, float *base, st_entry *out, char (*names)[PARAM_NAME_MAX])
{
    param_spec s[MAPPER_TF_NUM_TENSORS];
    specs(c, s);
    return param_spec_entries(s, MAPPER_TF_NUM_TENSORS, c->n_layer, "", "clip_project.transformer.layers.", base,
                              out, names);
}

static void bind(mapper_tf_params *p, const mapper_tf_config *c, float *base)
{
    param_spec s[MAPPER_TF_NUM_TENSORS];
    specs(c, s);
    float **const views[MAPPER_TF_NUM_TENSORS] = {
        &p->linw, &p->linb, &p->prefix_const, &p->n1w, &p->n1b,  &p->qw,   &p->kvw,  &p->projw,
        &p->projb, &p->n2w, &p->n2b,          &p->fc1w, &p->fc1b, &p->fc2w, &p->fc2b,
    };
    param_spec_bind(s, MAPPER_TF_NUM_TENSORS, c->n_layer, base, views);
}

void mapper_tf_init(mapper_tf *m, ops_ctx *ctx, const mapper_tf_config *cfg, float *params, float *grads)
{
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    m->ctx = ctx;
    bind(&m->params, cfg, params);
    bind(&m->grads, cfg, grads);
}

void mapper_tf_free(mapper_tf *m)
{
    if (!m) return;
    ops_free(m->ctx, m->mem);
    memset(m, 0, sizeof *m);
}

#define NUM_ACTS 24
static size_t bind_acts(mapper_tf *m, int B, float *base)
{
    const mapper_tf_config *c = &m->cfg;
    size_t T = (size_t)c->clip_len + c->prefix_len, M = (size_t)B * T, E = c->n_embd, L = c->n_layer;
    const size_t sizes[NUM_ACTS] = {
        (size_t)B * c->clip_len * E, M * E,                                      /* lin, x0 */
        L * M * E, L * M, L * M, L * M * E, L * M * 2 * E,                      /* ln1.., q, kv */
        L * (size_t)B * c->n_head * T * T, L * M * E, L * M * E,                /* att, atty, res2 */
        L * M * E, L * M, L * M, L * M * 2 * E, L * M * 2 * E, L * M * E,      /* ln2.., fc1, relu, res3 */
        M * E, M * E, M * E, M * E, M * 2 * E, M * 2 * E, M * 2 * E,            /* scratch */
        (size_t)B * c->clip_len * E,
    };
    mapper_tf_acts *a = &m->acts;
    float **const views[NUM_ACTS] = {
        &a->lin, &a->x0, &a->ln1, &a->ln1_mean, &a->ln1_rstd, &a->q, &a->kv, &a->att, &a->atty, &a->res2, &a->ln2,
        &a->ln2_mean, &a->ln2_rstd, &a->fc1, &a->fc1_relu, &a->res3, &a->dres, &a->dln, &a->datty, &a->dq, &a->dkv,
        &a->dfc1, &a->dfc1_relu, &a->dlin,
    };
    size_t total = 0;
    for (int i = 0; i < NUM_ACTS; i++) {
        if (base) *views[i] = base + total;
        total += sizes[i];
    }
    return total;
}

/* A per-layer slice of a stacked tensor, or NULL for an absent gradient. */
static float *slice(float *base, int l, size_t n) { return base ? base + (size_t)l * n : NULL; }

int mapper_tf_forward(mapper_tf *m, float *out, const float *clip, int B, err_t *e)
{
    size_t need = bind_acts(m, B, NULL);
    if (need > m->cap) {
        ops_free(m->ctx, m->mem);
        m->cap = 0;
        m->mem = ops_alloc(m->ctx, need, e);
        if (!m->mem) return err_wrap(e, "Transformer mapper activations for B=%d", B);
        m->cap = need;
    }
    bind_acts(m, B, m->mem);
    m->B = B;
    ops_ctx *ctx = m->ctx;
    const mapper_tf_config *c = &m->cfg;
    const mapper_tf_params *p = &m->params;
    const mapper_tf_acts *a = &m->acts;
    const int E = c->n_embd, H = c->n_head, hd = E / H, T = c->clip_len + c->prefix_len;
    const size_t M = (size_t)B * T, ME = M * E, EE = (size_t)E * E, CE = (size_t)c->clip_len * E;
    const size_t KE = (size_t)c->prefix_len * E;

    ops_matmul(ctx, a->lin, clip, p->linw, p->linb, B, c->clip_dim, (int)CE, OPS_W_NK);
    for (int b = 0; b < B; b++) {
        ops_copy(ctx, a->x0 + (size_t)b * T * E, a->lin + (size_t)b * CE, CE);
        ops_copy(ctx, a->x0 + (size_t)b * T * E + CE, p->prefix_const, KE);
    }
    const float *x = a->x0;
    for (int l = 0; l < c->n_layer; l++) {
        float *ln1 = a->ln1 + l * ME, *q = a->q + l * ME, *kv = a->kv + l * ME * 2, *atty = a->atty + l * ME;
        float *att = a->att + (size_t)l * B * H * T * T, *res2 = a->res2 + l * ME, *ln2 = a->ln2 + l * ME;
        float *fc1 = a->fc1 + l * ME * 2, *relu = a->fc1_relu + l * ME * 2, *res3 = a->res3 + l * ME;
        ops_layernorm(ctx, ln1, a->ln1_mean + l * M, a->ln1_rstd + l * M, x, p->n1w + (size_t)l * E,
                      p->n1b + (size_t)l * E, (int)M, E, 1e-5f);
        ops_matmul(ctx, q, ln1, p->qw + l * EE, NULL, (int)M, E, E, OPS_W_NK);
        ops_matmul(ctx, kv, ln1, p->kvw + l * 2 * EE, NULL, (int)M, E, 2 * E, OPS_W_NK);
        ops_attention(ctx, atty, att, q, kv, kv + E, B, T, T, H, hd, E, 2 * E, 0, 1.0f / sqrtf((float)hd));
        ops_matmul(ctx, res2, atty, p->projw + l * EE, p->projb + (size_t)l * E, (int)M, E, E, OPS_W_NK);
        ops_add(ctx, res2, res2, x, ME);
        ops_layernorm(ctx, ln2, a->ln2_mean + l * M, a->ln2_rstd + l * M, res2, p->n2w + (size_t)l * E,
                      p->n2b + (size_t)l * E, (int)M, E, 1e-5f);
        ops_matmul(ctx, fc1, ln2, p->fc1w + l * 2 * EE, p->fc1b + (size_t)l * 2 * E, (int)M, E, 2 * E, OPS_W_NK);
        ops_relu(ctx, relu, fc1, ME * 2);
        ops_matmul(ctx, res3, relu, p->fc2w + l * 2 * EE, p->fc2b + (size_t)l * E, (int)M, 2 * E, E, OPS_W_NK);
        ops_add(ctx, res3, res3, res2, ME);
        x = res3;
    }
    for (int b = 0; b < B; b++) ops_copy(ctx, out + (size_t)b * KE, x + (size_t)b * T * E + CE, KE);
    return 0;
}

void mapper_tf_backward(mapper_tf *m, const float *dout, const float *clip)
{
    ops_ctx *ctx = m->ctx;
    const mapper_tf_config *c = &m->cfg;
    const mapper_tf_params *p = &m->params, *g = &m->grads;
    const mapper_tf_acts *a = &m->acts;
    const int B = m->B, E = c->n_embd, H = c->n_head, hd = E / H, T = c->clip_len + c->prefix_len;
    const size_t M = (size_t)B * T, ME = M * E, EE = (size_t)E * E, CE = (size_t)c->clip_len * E;
    const size_t KE = (size_t)c->prefix_len * E;

    /* only the last k rows of each sequence reach the output */
    ops_fill(ctx, a->dres, 0.0f, ME);
    for (int b = 0; b < B; b++) ops_copy(ctx, a->dres + (size_t)b * T * E + CE, dout + (size_t)b * KE, KE);
    for (int l = c->n_layer - 1; l >= 0; l--) {
        const float *x = l == 0 ? a->x0 : a->res3 + (l - 1) * ME;
        const float *ln1 = a->ln1 + l * ME, *q = a->q + l * ME, *kv = a->kv + l * ME * 2, *atty = a->atty + l * ME;
        const float *att = a->att + (size_t)l * B * H * T * T, *res2 = a->res2 + l * ME, *ln2 = a->ln2 + l * ME;
        const float *fc1 = a->fc1 + l * ME * 2, *relu = a->fc1_relu + l * ME * 2;
        ops_fill(ctx, a->dfc1_relu, 0.0f, ME * 2);
        ops_matmul_backward(ctx, a->dfc1_relu, slice(g->fc2w, l, 2 * EE), slice(g->fc2b, l, E), a->dres, relu,
                            p->fc2w + l * 2 * EE, (int)M, 2 * E, E, OPS_W_NK);
        ops_fill(ctx, a->dfc1, 0.0f, ME * 2);
        ops_relu_backward(ctx, a->dfc1, fc1, a->dfc1_relu, ME * 2);
        ops_fill(ctx, a->dln, 0.0f, ME);
        ops_matmul_backward(ctx, a->dln, slice(g->fc1w, l, 2 * EE), slice(g->fc1b, l, 2 * (size_t)E), a->dfc1, ln2,
                            p->fc1w + l * 2 * EE, (int)M, E, 2 * E, OPS_W_NK);
        ops_layernorm_backward(ctx, a->dres, slice(g->n2w, l, E), slice(g->n2b, l, E), a->dln, res2,
                               p->n2w + (size_t)l * E, a->ln2_mean + l * M, a->ln2_rstd + l * M, (int)M, E);
        ops_fill(ctx, a->datty, 0.0f, ME);
        ops_matmul_backward(ctx, a->datty, slice(g->projw, l, EE), slice(g->projb, l, E), a->dres, atty,
                            p->projw + l * EE, (int)M, E, E, OPS_W_NK);
        ops_fill(ctx, a->dq, 0.0f, ME);
        ops_fill(ctx, a->dkv, 0.0f, ME * 2);
        ops_attention_backward(ctx, a->dq, a->dkv, a->dkv + E, a->datty, att, q, kv, kv + E, B, T, T, H, hd, E,
                               2 * E, 1.0f / sqrtf((float)hd));
        ops_fill(ctx, a->dln, 0.0f, ME);
        ops_matmul_backward(ctx, a->dln, slice(g->qw, l, EE), NULL, a->dq, ln1, p->qw + l * EE, (int)M, E, E,
                            OPS_W_NK);
        ops_matmul_backward(ctx, a->dln, slice(g->kvw, l, 2 * EE), NULL, a->dkv, ln1, p->kvw + l * 2 * EE, (int)M, E,
                            2 * E, OPS_W_NK);
        ops_layernorm_backward(ctx, a->dres, slice(g->n1w, l, E), slice(g->n1b, l, E), a->dln, x,
                               p->n1w + (size_t)l * E, a->ln1_mean + l * M, a->ln1_rstd + l * M, (int)M, E);
    }
    /* dres is now the gradient of x0 = [linear(clip) rows, prefix_const] */
    for (int b = 0; b < B; b++) {
        ops_copy(ctx, a->dlin + (size_t)b * CE, a->dres + (size_t)b * T * E, CE);
        if (g->prefix_const) ops_add(ctx, g->prefix_const, g->prefix_const, a->dres + (size_t)b * T * E + CE, KE);
    }
    ops_matmul_backward(ctx, NULL, g->linw, g->linb, a->dlin, clip, p->linw, B, c->clip_dim, (int)CE, OPS_W_NK);
}
