#include "nn/gpt2.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fsutil.h"
#include "io/json_util.h"
#include "nn/ops_ext.h"
#include "nn/param_spec.h"

/* ---- parameter layout ---- */

/* The checkpoint tensors in gpt2_params order (hub names; per-layer ones
 * follow "h.N."). Conv1D weights are [in, out]. */
static void gpt2_specs(const gpt2_config *c, param_spec s[GPT2_NUM_PARAM_TENSORS])
{
    int64_t E = c->n_embd;
    const param_spec t[GPT2_NUM_PARAM_TENSORS] = {
        {"wte.weight", 0, 2, {c->vocab_size, E}},
        {"wpe.weight", 0, 2, {c->n_positions, E}},
        {"ln_1.weight", 1, 1, {E}},
        {"ln_1.bias", 1, 1, {E}},
        {"attn.c_attn.weight", 1, 2, {E, 3 * E}},
        {"attn.c_attn.bias", 1, 1, {3 * E}},
        {"attn.c_proj.weight", 1, 2, {E, E}},
        {"attn.c_proj.bias", 1, 1, {E}},
        {"ln_2.weight", 1, 1, {E}},
        {"ln_2.bias", 1, 1, {E}},
        {"mlp.c_fc.weight", 1, 2, {E, 4 * E}},
        {"mlp.c_fc.bias", 1, 1, {4 * E}},
        {"mlp.c_proj.weight", 1, 2, {4 * E, E}},
        {"mlp.c_proj.bias", 1, 1, {E}},
        {"ln_f.weight", 0, 1, {E}},
        {"ln_f.bias", 0, 1, {E}},
    };
    memcpy(s, t, sizeof t);
}

size_t gpt2_param_count(const gpt2_config *cfg)
{
    param_spec s[GPT2_NUM_PARAM_TENSORS];
    gpt2_specs(cfg, s);
    return param_spec_total(s, GPT2_NUM_PARAM_TENSORS, cfg->n_layer);
}

void gpt2_bind(gpt2_params *p, const gpt2_config *cfg, float *base)
{
    param_spec s[GPT2_NUM_PARAM_TENSORS];
    gpt2_specs(cfg, s);
    float **const views[GPT2_NUM_PARAM_TENSORS] = {
        &p->wte,  &p->wpe,  &p->ln1w, &p->ln1b, &p->qkvw,    &p->qkvb,    &p->attprojw, &p->attprojb,
        &p->ln2w, &p->ln2b, &p->fcw,  &p->fcb,  &p->fcprojw, &p->fcprojb, &p->lnfw,     &p->lnfb,
    };
    param_spec_bind(s, GPT2_NUM_PARAM_TENSORS, cfg->n_layer, base, views);
}

void gpt2_layer_grads(const gpt2 *g, int l, float *ptr[GPT2_LAYER_TENSORS], size_t n[GPT2_LAYER_TENSORS])
{
    param_spec s[GPT2_NUM_PARAM_TENSORS];
    gpt2_specs(&g->cfg, s);
    const gpt2_params *gr = &g->grads;
    float *const base[GPT2_NUM_PARAM_TENSORS] = {
        gr->wte,  gr->wpe,  gr->ln1w, gr->ln1b, gr->qkvw,    gr->qkvb,    gr->attprojw, gr->attprojb,
        gr->ln2w, gr->ln2b, gr->fcw,  gr->fcb,  gr->fcprojw, gr->fcprojb, gr->lnfw,     gr->lnfb,
    };
    int k = 0;
    for (int i = 0; i < GPT2_NUM_PARAM_TENSORS; i++) {
        if (!s[i].layered) continue;
        n[k] = param_spec_elems(&s[i]);
        ptr[k] = base[i] + (size_t)l * n[k];
        k++;
    }
}

int gpt2_tensor_entries(const gpt2_config *cfg, const char *prefix, float *base, st_entry *out,
                        char (*names)[PARAM_NAME_MAX])
{
    param_spec s[GPT2_NUM_PARAM_TENSORS];
    gpt2_specs(cfg, s);
    return param_spec_entries(s, GPT2_NUM_PARAM_TENSORS, cfg->n_layer, prefix, "h.", base, out, names);
}

/* ---- config and loading ---- */

int gpt2_config_load(gpt2_config *cfg, const char *dir, err_t *e)
{
    char path[4096];
    if (fs_join(path, sizeof path, dir, "config.json", e)) return e ? e->code : ERR_ARG;
    json_t *j = NULL;
    int rc = json_load_path(&j, path, e);
    if (rc) return rc;
    long long v[5];
    const char *keys[5] = {"vocab_size", "n_embd", "n_head", "n_layer", "n_positions"};
    for (int i = 0; i < 5; i++) {
        const char *key = keys[i];
        if (i == 4 && !json_object_get(j, key)) key = "n_ctx"; /* older configs */
        if ((rc = json_get_int(j, key, &v[i], e))) goto out;
        if (v[i] <= 0 || v[i] > (1 << 24)) {
            rc = err_set(e, ERR_FORMAT, "%s is %lld", key, v[i]);
            goto out;
        }
    }
    cfg->vocab_size = (int)v[0];
    cfg->n_embd = (int)v[1];
    cfg->n_head = (int)v[2];
    cfg->n_layer = (int)v[3];
    cfg->n_positions = (int)v[4];
    cfg->ln_eps = 1e-5f;
    if (json_object_get(j, "layer_norm_epsilon")) {
        double eps;
        if ((rc = json_get_real(j, "layer_norm_epsilon", &eps, e))) goto out;
        cfg->ln_eps = (float)eps;
    }
    float *const pdrop[3] = {&cfg->attn_pdrop, &cfg->resid_pdrop, &cfg->embd_pdrop};
    const char *pkeys[3] = {"attn_pdrop", "resid_pdrop", "embd_pdrop"};
    for (int i = 0; i < 3; i++) {
        double p = 0.1;
        if (json_object_get(j, pkeys[i]) && (rc = json_get_real(j, pkeys[i], &p, e))) goto out;
        if (!(p >= 0.0 && p < 1.0)) {
            rc = err_set(e, ERR_FORMAT, "%s is %g (a probability below 1)", pkeys[i], p);
            goto out;
        }
        *pdrop[i] = (float)p;
    }
    if (json_object_get(j, "activation_function")) {
        const char *act;
        if ((rc = json_get_str(j, "activation_function", &act, e))) goto out;
        if (strcmp(act, "gelu_new")) {
            rc = err_set(e, ERR_UNSUPPORTED, "activation_function '%s' (only gelu_new)", act);
            goto out;
        }
    }
    if (cfg->n_embd % cfg->n_head) rc = err_set(e, ERR_FORMAT, "n_embd %d is not a multiple of n_head %d", cfg->n_embd, cfg->n_head);
out:
    json_decref(j);
    if (rc) err_wrap(e, "%s", path);
    return rc;
}

void gpt2_init(gpt2 *g, ops_ctx *ctx, const gpt2_config *cfg, float *params, float *grads)
{
    memset(g, 0, sizeof *g);
    g->cfg = *cfg;
    g->ctx = ctx;
    gpt2_bind(&g->params, cfg, params);
    gpt2_bind(&g->grads, cfg, grads);
    g->frozen = grads == NULL;
}

int gpt2_load_weights(gpt2 *g, const tensorfile *tf, const char *prefix, err_t *e)
{
    static const char *const prefixes[] = {"", "transformer.", "gpt.transformer."};
    char probe[160];
    for (size_t i = 0; !prefix && i < sizeof prefixes / sizeof *prefixes; i++) {
        snprintf(probe, sizeof probe, "%swte.weight", prefixes[i]);
        if (tensorfile_find(tf, probe) >= 0) prefix = prefixes[i];
    }
    if (!prefix) return err_set(e, ERR_NOTFOUND, "no GPT-2 tensor wte.weight (with or without transformer.)");
    const gpt2_config *c = &g->cfg;
    int n = gpt2_tensor_entries(c, prefix, NULL, NULL, NULL);
    st_entry *en = calloc((size_t)n, sizeof *en);
    char (*names)[PARAM_NAME_MAX] = calloc((size_t)n, sizeof *names);
    size_t vocab = (size_t)c->vocab_size * c->n_embd;
    float *tmp = NULL;
    int rc = 0;
    if (!en || !names) {
        rc = err_set(e, ERR_NOMEM, "GPT-2 load: out of memory");
        goto out;
    }
    gpt2_tensor_entries(c, prefix, g->params.wte, en, names);
    if ((rc = param_entries_load(g->ctx, tf, en, n, e))) goto out;
    /* The head is tied to wte: a separate lm_head must be the same matrix. */
    const char *heads[] = {"lm_head.weight", "gpt.lm_head.weight"};
    for (int h = 0; h < 2; h++) {
        if (tensorfile_find(tf, heads[h]) < 0) continue;
        int64_t shape[2] = {c->vocab_size, c->n_embd};
        if (!tmp && !(tmp = malloc(2 * vocab * sizeof *tmp))) {
            rc = err_set(e, ERR_NOMEM, "GPT-2 load: out of memory");
            goto out;
        }
        if ((rc = tensorfile_load(tf, heads[h], shape, 2, tmp, e))) goto out;
        ops_download(g->ctx, tmp + vocab, g->params.wte, vocab);
        if (memcmp(tmp, tmp + vocab, vocab * sizeof *tmp)) {
            rc = err_set(e, ERR_UNSUPPORTED, "%s differs from wte.weight (an untied output head)", heads[h]);
            goto out;
        }
    }
out:
    free(en);
    free(names);
    free(tmp);
    return rc;
}

int gpt2_open_weights(tensorfile **tf, const char *dir, char *path, size_t cap, err_t *e)
{
    static const char *const files[] = {"model.safetensors", "pytorch_model.bin"};
    *tf = NULL;
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        int rc = fs_join(path, cap, dir, files[i], e);
        if (rc) return rc;
        if (fs_exists(path) || i + 1 == sizeof files / sizeof *files) break;
    }
    return tensorfile_open(tf, path, e);
}

int gpt2_open(gpt2 *g, ops_ctx *ctx, const char *dir, err_t *e)
{
    gpt2_config cfg;
    int rc = gpt2_config_load(&cfg, dir, e);
    if (rc) return rc;
    float *p = ops_alloc(ctx, gpt2_param_count(&cfg), e);
    if (!p) return e ? e->code : ERR_NOMEM;
    if ((rc = ops_register_weights(ctx, p, gpt2_param_count(&cfg), e))) {
        ops_free(ctx, p);
        return rc;
    }
    gpt2_init(g, ctx, &cfg, p, NULL);
    g->own_params = p;
    char path[4096];
    tensorfile *tf = NULL;
    if ((rc = gpt2_open_weights(&tf, dir, path, sizeof path, e)) || (rc = gpt2_load_weights(g, tf, NULL, e))) {
        /* tensorfile's own errors already start with the path */
        if (tf && e && strncmp(e->msg, path, strlen(path))) err_wrap(e, "%s", path);
        tensorfile_close(tf);
        gpt2_free(g);
        return rc;
    }
    tensorfile_close(tf);
    return 0;
}

void gpt2_free(gpt2 *g)
{
    if (!g) return;
    ops_free(g->ctx, g->act_mem);
    ops_free(g->ctx, g->scratch_mem);
    ops_free(g->ctx, g->own_params);
    memset(g, 0, sizeof *g);
}

/* ---- activations ---- */

#define NUM_ACTS 20
/* head_rows: the rows the head computes; gathered: they are a subset
 * copied to head_in (gpt2_forward_rows) */
static void act_sizes(const gpt2_config *c, int B, int T, size_t head_rows, int gathered, size_t s[NUM_ACTS])
{
    size_t M = (size_t)B * T, E = c->n_embd, L = c->n_layer;
    size_t i = 0;
    s[i++] = M * E;                              /* encoded */
    s[i++] = L * M * E;                          /* ln1 */
    s[i++] = L * M;                              /* ln1_mean */
    s[i++] = L * M;                              /* ln1_rstd */
    s[i++] = L * M * 3 * E;                      /* qkv */
    s[i++] = L * M * E;                          /* atty */
    s[i++] = L * (size_t)B * c->n_head * T * T;  /* att */
    s[i++] = L * M * E;                          /* residual2 */
    s[i++] = L * M * E;                          /* ln2 */
    s[i++] = L * M;                              /* ln2_mean */
    s[i++] = L * M;                              /* ln2_rstd */
    s[i++] = L * M * 4 * E;                      /* fch */
    s[i++] = L * M * 4 * E;                      /* fch_gelu */
    s[i++] = L * M * E;                          /* residual3 */
    s[i++] = M * E;                              /* lnf */
    s[i++] = M;                                  /* lnf_mean */
    s[i++] = M;                                  /* lnf_rstd */
    s[i++] = gathered ? head_rows * E : 0;       /* head_in */
    s[i++] = head_rows * c->vocab_size;          /* logits */
    s[i++] = 0;
}

static void bind_views(float **const *views, int n, const size_t *sizes, float *base)
{
    for (int i = 0; i < n; i++) {
        *views[i] = base;
        base += sizes[i];
    }
}

static int ensure_acts(gpt2 *g, int B, int T, size_t head_rows, int gathered, err_t *e)
{
    size_t s[NUM_ACTS], total = 0;
    act_sizes(&g->cfg, B, T, head_rows, gathered, s);
    for (int i = 0; i < NUM_ACTS; i++) total += s[i];
    if (total > g->act_cap) {
        ops_free(g->ctx, g->act_mem);
        g->act_cap = 0;
        g->act_mem = ops_alloc(g->ctx, total, e);
        if (!g->act_mem) return err_wrap(e, "GPT-2 activations for B=%d T=%d", B, T);
        g->act_cap = total;
    }
    gpt2_acts *a = &g->acts;
    float **const views[NUM_ACTS - 1] = {
        &a->encoded, &a->ln1, &a->ln1_mean, &a->ln1_rstd, &a->qkv, &a->atty, &a->att, &a->residual2, &a->ln2,
        &a->ln2_mean, &a->ln2_rstd, &a->fch, &a->fch_gelu, &a->residual3, &a->lnf, &a->lnf_mean, &a->lnf_rstd,
        &a->head_in, &a->logits,
    };
    bind_views(views, NUM_ACTS - 1, s, g->act_mem);
    g->B = B;
    g->T = T;
    return 0;
}

/* The gradient scratch is allocated by the first backward pass, so that
 * inference never pays for it. */
static void bind_scratch(gpt2 *g, float *base)
{
    size_t M = (size_t)g->B * g->T, E = g->cfg.n_embd;
    size_t s[6] = {M * E, M * E, M * E, M * 3 * E, M * 4 * E, M * 4 * E};
    gpt2_grad_scratch *d = &g->scratch;
    float **const views[6] = {&d->dresidual, &d->dln, &d->datty, &d->dqkv, &d->dfch, &d->dfch_gelu};
    bind_views(views, 6, s, base);
}


/* A per-layer slice of a stacked tensor, or NULL for an absent gradient. */
static float *slice(float *base, int l, size_t n) { return base ? base + (size_t)l * n : NULL; }

int gpt2_forward(gpt2 *g, const float *inp, int B, int T, err_t *e)
{
    return gpt2_forward_rows(g, inp, B, T, NULL, 0, e);
}

int gpt2_forward_rows(gpt2 *g, const float *inp, int B, int T, const int32_t *rows, int n_rows, err_t *e)
{
    const gpt2_config *c = &g->cfg;
    if (B < 1 || T < 1 || T > c->n_positions)
        return err_set(e, ERR_ARG, "GPT-2 forward: B=%d T=%d (T must be in 1..%d)", B, T, c->n_positions);
    if (rows && (n_rows < 0 || (size_t)n_rows > (size_t)B * T))
        return err_set(e, ERR_ARG, "GPT-2 forward: %d head rows for B=%d T=%d", n_rows, B, T);
    for (int i = 0; rows && i < n_rows; i++)
        if (rows[i] < 0 || (size_t)rows[i] >= (size_t)B * T)
            return err_set(e, ERR_ARG, "GPT-2 forward: head row %d is outside B=%d T=%d", rows[i], B, T);
    int rc = ensure_acts(g, B, T, rows ? (size_t)n_rows : (size_t)B * T, rows != NULL, e);
    if (rc) return rc;
    ops_ctx *ctx = g->ctx;
    const gpt2_params *p = &g->params;
    const gpt2_acts *a = &g->acts;
    const int E = c->n_embd, H = c->n_head, hd = E / H;
    const size_t M = (size_t)B * T, ME = M * E;
    for (int b = 0; b < B; b++)
        ops_add(ctx, a->encoded + (size_t)b * T * E, inp + (size_t)b * T * E, p->wpe, (size_t)T * E);
    const gpt2_dropout *dr = &g->drop;
    /* offsets of this call's first sequence in the global batch's [B,T,E]
     * and [B,H,T,T] tensors */
    const uint64_t off_te = (uint64_t)dr->row0 * T * E, off_att = (uint64_t)dr->row0 * H * T * T;
    if (dr->embd > 0.0f) ops_dropout(ctx, a->encoded, a->encoded, ME, dr->embd, gpt2_dropout_site_key(dr->key, 0), off_te);
    const float *residual = a->encoded;
    for (int l = 0; l < c->n_layer; l++) {
        float *ln1 = a->ln1 + l * ME, *qkv = a->qkv + l * ME * 3, *atty = a->atty + l * ME;
        float *att = a->att + (size_t)l * B * H * T * T, *res2 = a->residual2 + l * ME;
        float *ln2 = a->ln2 + l * ME, *fch = a->fch + l * ME * 4, *fchg = a->fch_gelu + l * ME * 4;
        float *res3 = a->residual3 + l * ME;
        ops_layernorm(ctx, ln1, a->ln1_mean + l * M, a->ln1_rstd + l * M, residual, p->ln1w + (size_t)l * E,
                      p->ln1b + (size_t)l * E, (int)M, E, c->ln_eps);
        ops_matmul(ctx, qkv, ln1, p->qkvw + (size_t)l * E * 3 * E, p->qkvb + (size_t)l * 3 * E, (int)M, E, 3 * E, OPS_W_KN);
        if (dr->attn > 0.0f)
            ops_attention_dropout(ctx, atty, att, qkv, qkv + E, qkv + 2 * E, B, T, T, H, hd, 3 * E, 3 * E, 1,
                                  1.0f / sqrtf((float)hd), dr->attn, gpt2_dropout_site_key(dr->key, 1 + 3 * l), off_att);
        else
            ops_attention(ctx, atty, att, qkv, qkv + E, qkv + 2 * E, B, T, T, H, hd, 3 * E, 3 * E, 1,
                          1.0f / sqrtf((float)hd));
        ops_matmul(ctx, res2, atty, p->attprojw + (size_t)l * E * E, p->attprojb + (size_t)l * E, (int)M, E, E, OPS_W_KN);
        if (dr->resid > 0.0f) ops_dropout(ctx, res2, res2, ME, dr->resid, gpt2_dropout_site_key(dr->key, 2 + 3 * l), off_te);
        ops_add(ctx, res2, res2, residual, ME);
        ops_layernorm(ctx, ln2, a->ln2_mean + l * M, a->ln2_rstd + l * M, res2, p->ln2w + (size_t)l * E,
                      p->ln2b + (size_t)l * E, (int)M, E, c->ln_eps);
        ops_matmul(ctx, fch, ln2, p->fcw + (size_t)l * E * 4 * E, p->fcb + (size_t)l * 4 * E, (int)M, E, 4 * E, OPS_W_KN);
        ops_gelu_tanh(ctx, fchg, fch, ME * 4);
        ops_matmul(ctx, res3, fchg, p->fcprojw + (size_t)l * 4 * E * E, p->fcprojb + (size_t)l * E, (int)M, 4 * E, E,
                   OPS_W_KN);
        if (dr->resid > 0.0f) ops_dropout(ctx, res3, res3, ME, dr->resid, gpt2_dropout_site_key(dr->key, 3 + 3 * l), off_te);
        ops_add(ctx, res3, res3, res2, ME);
        residual = res3;
    }
    ops_layernorm(ctx, a->lnf, a->lnf_mean, a->lnf_rstd, residual, p->lnfw, p->lnfb, (int)M, E, c->ln_eps);
    g->head_rows = rows;
    g->n_head_rows = rows ? n_rows : (int)M;
    if (rows) ops_gather_rows(ctx, a->head_in, a->lnf, rows, n_rows, E);
    if (g->n_head_rows > 0)
        ops_matmul(ctx, a->logits, rows ? a->head_in : a->lnf, p->wte, NULL, g->n_head_rows, E, c->vocab_size,
                   OPS_W_NK);
    return 0;
}

void gpt2_embed(gpt2 *g, float *x, const int32_t *ids, int n)
{
    ops_gather_rows(g->ctx, x, g->params.wte, ids, n, g->cfg.n_embd);
}

void gpt2_embed_backward(gpt2 *g, const float *dx, const int32_t *ids, int n)
{
    if (g->grads.wte) ops_scatter_add_rows(g->ctx, g->grads.wte, dx, ids, n, g->cfg.n_embd);
}

static int ensure_scratch(gpt2 *g, err_t *e)
{
    size_t need = (size_t)g->B * g->T * g->cfg.n_embd * 14;
    if (need > g->scratch_cap) {
        ops_free(g->ctx, g->scratch_mem);
        g->scratch_cap = 0;
        g->scratch_mem = ops_alloc(g->ctx, need, e);
        if (!g->scratch_mem) return err_wrap(e, "GPT-2 gradient scratch for B=%d T=%d", g->B, g->T);
        g->scratch_cap = need;
    }
    bind_scratch(g, g->scratch_mem);
    return 0;
}

uint64_t gpt2_dropout_site_key(uint64_t key, int site)
{
    uint64_t z = key + (uint64_t)(site + 1) * 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* The gradient before the dropout at call site `site` (embd or a resid
 * site), given the gradient after it. It goes into scratch.dln, which is
 * free at every such point (each branch refills it before its own use). */
static const float *dropped_grad(gpt2 *g, const float *dafter, int site, uint64_t offset)
{
    const gpt2_dropout *dr = &g->drop;
    const float p = site == 0 ? dr->embd : dr->resid;
    if (!(p > 0.0f)) return dafter;
    const size_t n = (size_t)g->B * g->T * g->cfg.n_embd;
    ops_fill(g->ctx, g->scratch.dln, 0.0f, n);
    ops_dropout_backward(g->ctx, g->scratch.dln, dafter, n, p, gpt2_dropout_site_key(dr->key, site), offset);
    return g->scratch.dln;
}

int gpt2_backward(gpt2 *g, const float *dlogits, float *dinp, err_t *e)
{
    int rc = ensure_scratch(g, e);
    if (rc) return rc;
    ops_ctx *ctx = g->ctx;
    const gpt2_config *c = &g->cfg;
    const gpt2_params *p = &g->params, *gr = &g->grads;
    const gpt2_acts *a = &g->acts;
    const gpt2_grad_scratch *d = &g->scratch;
    const int B = g->B, T = g->T, E = c->n_embd, H = c->n_head, hd = E / H, L = c->n_layer;
    const size_t M = (size_t)B * T, ME = M * E;
    const float scale = 1.0f / sqrtf((float)hd);
    const gpt2_dropout *dr = &g->drop;
    const uint64_t off_te = (uint64_t)dr->row0 * T * E, off_att = (uint64_t)dr->row0 * H * T * T;

    ops_fill(ctx, d->dresidual, 0.0f, ME);
    ops_fill(ctx, d->dln, 0.0f, ME);
    if (g->head_rows) {
        /* the listed rows' gradient goes through datty, unused until the
         * last layer's attention branch refills it */
        const size_t nE = (size_t)g->n_head_rows * E;
        ops_fill(ctx, d->datty, 0.0f, nE);
        if (nE)
            ops_matmul_backward(ctx, d->datty, gr->wte, NULL, dlogits, a->head_in, p->wte, g->n_head_rows, E,
                                c->vocab_size, OPS_W_NK);
        ops_scatter_add_rows(ctx, d->dln, d->datty, g->head_rows, g->n_head_rows, E);
    } else {
        ops_matmul_backward(ctx, d->dln, gr->wte, NULL, dlogits, a->lnf, p->wte, (int)M, E, c->vocab_size, OPS_W_NK);
    }
    ops_layernorm_backward(ctx, d->dresidual, gr->lnfw, gr->lnfb, d->dln, a->residual3 + (L - 1) * ME, p->lnfw,
                           a->lnf_mean, a->lnf_rstd, (int)M, E);
    for (int l = L - 1; l >= 0; l--) {
        const float *res_in = l == 0 ? a->encoded : a->residual3 + (l - 1) * ME;
        const float *ln1 = a->ln1 + l * ME, *qkv = a->qkv + l * ME * 3, *atty = a->atty + l * ME;
        const float *att = a->att + (size_t)l * B * H * T * T, *res2 = a->residual2 + l * ME;
        const float *ln2 = a->ln2 + l * ME, *fch = a->fch + l * ME * 4, *fchg = a->fch_gelu + l * ME * 4;
        const size_t EE = (size_t)E * E;
        /* MLP branch; dresidual is the gradient of this layer's output */
        ops_fill(ctx, d->dfch_gelu, 0.0f, ME * 4);
        ops_matmul_backward(ctx, d->dfch_gelu, slice(gr->fcprojw, l, 4 * EE), slice(gr->fcprojb, l, E),
                            dropped_grad(g, d->dresidual, 3 + 3 * l, off_te), fchg, p->fcprojw + l * 4 * EE, (int)M,
                            4 * E, E, OPS_W_KN);
        ops_fill(ctx, d->dfch, 0.0f, ME * 4);
        ops_gelu_tanh_backward(ctx, d->dfch, fch, d->dfch_gelu, ME * 4);
        ops_fill(ctx, d->dln, 0.0f, ME);
        ops_matmul_backward(ctx, d->dln, slice(gr->fcw, l, 4 * EE), slice(gr->fcb, l, 4 * (size_t)E), d->dfch, ln2,
                            p->fcw + l * 4 * EE, (int)M, E, 4 * E, OPS_W_KN);
        ops_layernorm_backward(ctx, d->dresidual, slice(gr->ln2w, l, E), slice(gr->ln2b, l, E), d->dln, res2,
                               p->ln2w + (size_t)l * E, a->ln2_mean + l * M, a->ln2_rstd + l * M, (int)M, E);
        /* attention branch; dresidual is now the gradient of residual2 */
        ops_fill(ctx, d->datty, 0.0f, ME);
        ops_matmul_backward(ctx, d->datty, slice(gr->attprojw, l, EE), slice(gr->attprojb, l, E),
                            dropped_grad(g, d->dresidual, 2 + 3 * l, off_te), atty, p->attprojw + l * EE, (int)M, E, E,
                            OPS_W_KN);
        ops_fill(ctx, d->dqkv, 0.0f, ME * 3);
        if (dr->attn > 0.0f)
            ops_attention_dropout_backward(ctx, d->dqkv, d->dqkv + E, d->dqkv + 2 * E, d->datty, att, qkv, qkv + E,
                                           qkv + 2 * E, B, T, T, H, hd, 3 * E, 3 * E, scale, dr->attn,
                                           gpt2_dropout_site_key(dr->key, 1 + 3 * l), off_att);
        else
            ops_attention_backward(ctx, d->dqkv, d->dqkv + E, d->dqkv + 2 * E, d->datty, att, qkv, qkv + E,
                                   qkv + 2 * E, B, T, T, H, hd, 3 * E, 3 * E, scale);
        ops_fill(ctx, d->dln, 0.0f, ME);
        ops_matmul_backward(ctx, d->dln, slice(gr->qkvw, l, 3 * EE), slice(gr->qkvb, l, 3 * (size_t)E), d->dqkv, ln1,
                            p->qkvw + l * 3 * EE, (int)M, E, 3 * E, OPS_W_KN);
        ops_layernorm_backward(ctx, d->dresidual, slice(gr->ln1w, l, E), slice(gr->ln1b, l, E), d->dln, res_in,
                               p->ln1w + (size_t)l * E, a->ln1_mean + l * M, a->ln1_rstd + l * M, (int)M, E);
        if (g->on_layer_grads && !g->frozen && (rc = g->on_layer_grads(g->on_layer_user, l, e))) return rc;
    }
    /* encoded = embd-dropout(inp + wpe) */
    const float *denc = dr->embd > 0.0f ? dropped_grad(g, d->dresidual, 0, off_te) : d->dresidual;
    if (dinp) ops_add(ctx, dinp, dinp, denc, ME);
    if (gr->wpe)
        for (int b = 0; b < B; b++) ops_add(ctx, gr->wpe, gr->wpe, denc + (size_t)b * T * E, (size_t)T * E);
    return 0;
}
