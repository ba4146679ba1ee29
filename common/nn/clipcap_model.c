#include "nn/clipcap_model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn/ops_ext.h"
#include "nn/param_spec.h"

int clipcap_model_init(clipcap_model *m, ops_ctx *ctx, const clipcap_config *cfg, const gpt2_config *gcfg,
                       err_t *e)
{
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    m->ctx = ctx;
    const int E = gcfg->n_embd;
    if (cfg->clip_dim < 1 || cfg->prefix_len < 1)
        return err_set(e, ERR_ARG, "ClipCap model: clip_dim %d and prefix_len %d must be positive", cfg->clip_dim,
                       cfg->prefix_len);
    mapper_mlp_config mc = {cfg->clip_dim, E, cfg->prefix_len};
    mapper_tf_config tc = {cfg->clip_dim, E, cfg->prefix_len, cfg->clip_len, cfg->mapper_layers, 8};
    if (cfg->mapping == CLIPCAP_MAP_MLP) {
        if ((E * cfg->prefix_len) % 2)
            return err_set(e, ERR_ARG, "MLP mapper: n_embd·prefix_len = %d is odd", E * cfg->prefix_len);
        m->n_mapper = mapper_mlp_param_count(&mc);
    } else {
        if (E % tc.n_head || cfg->clip_len < 1 || cfg->mapper_layers < 1)
            return err_set(e, ERR_ARG,
                           "Transformer mapper: n_embd %d must be a multiple of its 8 heads, clip_len %d and "
                           "layers %d positive",
                           E, cfg->clip_len, cfg->mapper_layers);
        m->n_mapper = mapper_tf_param_count(&tc);
    }
    size_t n_gpt = gpt2_param_count(gcfg);
    m->n_params = m->n_mapper + n_gpt;
    m->n_trainable = m->n_mapper + (cfg->freeze_gpt2 ? 0 : n_gpt);
    m->params = ops_alloc(ctx, m->n_params, e);
    if (m->params && ops_register_weights(ctx, m->params, m->n_params, e)) {
        ops_free(ctx, m->params);
        m->params = NULL;
    }
    m->grads = m->params ? ops_alloc(ctx, m->n_trainable, e) : NULL;
    if (!m->grads) {
        clipcap_model_free(m);
        return err_wrap(e, "ClipCap model (%zu parameters)", m->n_params);
    }
    if (cfg->mapping == CLIPCAP_MAP_MLP)
        mapper_mlp_init(&m->mlp, ctx, &mc, m->params, m->grads);
    else
        mapper_tf_init(&m->tf, ctx, &tc, m->params, m->grads);
    gpt2_init(&m->gpt, ctx, gcfg, m->params + m->n_mapper, cfg->freeze_gpt2 ? NULL : m->grads + m->n_mapper);
    return 0;
}

void clipcap_model_free(clipcap_model *m)
{
    if (!m) return;
    mapper_mlp_free(&m->mlp);
    mapper_tf_free(&m->tf);
    gpt2_free(&m->gpt);
    ops_free(m->ctx, m->params);
    ops_free(m->ctx, m->grads);
    ops_free(m->ctx, m->batch_mem);
    free(m->targets);
    memset(m, 0, sizeof *m);
}

static int mapper_entries(const clipcap_model *m, float *base, st_entry *out, char (*names)[PARAM_NAME_MAX])
{
    if (m->cfg.mapping == CLIPCAP_MAP_MLP) return mapper_mlp_tensor_entries(&m->mlp.cfg, base, out, names);
    return mapper_tf_tensor_entries(&m->tf.cfg, base, out, names);
}

int clipcap_model_tensor_count(const clipcap_model *m, int include_gpt2)
{
    int n = mapper_entries(m, NULL, NULL, NULL);
    return include_gpt2 ? n + gpt2_tensor_entries(&m->gpt.cfg, "", NULL, NULL, NULL) : n;
}

int clipcap_model_tensor_entries(const clipcap_model *m, float *base, int include_gpt2, st_entry *out,
                                 char (*names)[PARAM_NAME_MAX])
{
    int n = mapper_entries(m, base, out, names);
    if (include_gpt2)
        n += gpt2_tensor_entries(&m->gpt.cfg, "gpt.transformer.", base + m->n_mapper, out + n, names + n);
    return n;
}

int clipcap_model_load_mapper(clipcap_model *m, const tensorfile *tf, err_t *e)
{
    int n = mapper_entries(m, NULL, NULL, NULL);
    st_entry *en = calloc((size_t)n, sizeof *en);
    char (*names)[PARAM_NAME_MAX] = calloc((size_t)n, sizeof *names);
    int rc = !en || !names ? err_set(e, ERR_NOMEM, "mapper load: out of memory") : 0;
    if (!rc) {
        mapper_entries(m, m->params, en, names);
        rc = param_entries_load(m->ctx, tf, en, n, e);
    }
    free(en);
    free(names);
    return rc;
}

int clipcap_model_load_gpt2(clipcap_model *m, const tensorfile *tf, err_t *e)
{
    return gpt2_load_weights(&m->gpt, tf, NULL, e);
}

/* splitmix64: a counter-based generator, identical on every platform */
static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static double uniform01(uint64_t *s) { return ((splitmix64(s) >> 11) + 0.5) * (1.0 / 9007199254740992.0); }

int clipcap_model_init_mapper(clipcap_model *m, uint64_t seed, err_t *e)
{
    int n = mapper_entries(m, NULL, NULL, NULL);
    st_entry *en = calloc((size_t)n, sizeof *en);
    char (*names)[PARAM_NAME_MAX] = calloc((size_t)n, sizeof *names);
    float *host = malloc(m->n_mapper * sizeof *host);
    if (!en || !names || !host) {
        free(en);
        free(names);
        free(host);
        return err_set(e, ERR_NOMEM, "mapper initialisation: out of memory");
    }
    mapper_entries(m, host, en, names);
    uint64_t s = seed;
    double fan_in = 1.0;
    for (int i = 0; i < n; i++) {
        float *d = (float *)en[i].data;
        size_t cnt = 1;
        for (int k = 0; k < en[i].ndim; k++) cnt *= (size_t)en[i].shape[k];
        int is_norm = strstr(en[i].name, ".norm") != NULL;
        int is_weight = strstr(en[i].name, ".weight") != NULL;
        if (strstr(en[i].name, "prefix_const")) {
            for (size_t j = 0; j < cnt; j++) /* Box-Muller */
                d[j] = (float)(sqrt(-2.0 * log(uniform01(&s))) * cos(2.0 * M_PI * uniform01(&s)));
        } else if (is_norm) {
            for (size_t j = 0; j < cnt; j++) d[j] = is_weight ? 1.0f : 0.0f;
        } else {
            /* a Linear's bias follows its weight and shares its fan-in */
            if (is_weight) fan_in = (double)en[i].shape[1];
            double bound = 1.0 / sqrt(fan_in);
            for (size_t j = 0; j < cnt; j++) d[j] = (float)((2.0 * uniform01(&s) - 1.0) * bound);
        }
    }
    ops_upload(m->ctx, m->params, host, m->n_mapper);
    free(en);
    free(names);
    free(host);
    return 0;
}

/* The head's rows are the counted targets padded up to a multiple of
 * HEAD_ROWS_STEP (with rows that count nothing), so that the head's GEMMs
 * come in few shapes (oneDNN builds a primitive per shape) and the
 * buffers sized for them grow rarely, however the padding of the batches
 * varies. */
#define HEAD_ROWS_STEP 64
static size_t head_rows_of(size_t n_targets, size_t rows)
{
    size_t padded = (n_targets + HEAD_ROWS_STEP - 1) / HEAD_ROWS_STEP * HEAD_ROWS_STEP;
    return padded < rows ? padded : rows;
}

/* Buffers for a batch of B captions of L tokens, the head's part for the
 * most rows such a batch can count (B·L); they only grow. */
static int ensure_batch(clipcap_model *m, int B, int L, err_t *e)
{
    const size_t E = (size_t)m->gpt.cfg.n_embd, V = (size_t)m->gpt.cfg.vocab_size, k = (size_t)m->cfg.prefix_len;
    const size_t rows = (size_t)B * (k + (size_t)L), pk = (size_t)B * k * E;
    const size_t nh = head_rows_of((size_t)B * L, rows);
    const size_t need_f = rows * 2 * E + nh * (V + 1) + 2 * pk, need_i = 2 * rows + (size_t)B * L;
    if (need_f > m->cap_f || need_i > m->cap_i) {
        const size_t cap_f = need_f > m->cap_f ? need_f : m->cap_f, cap_i = need_i > m->cap_i ? need_i : m->cap_i;
        ops_free(m->ctx, m->batch_mem);
        free(m->targets);
        m->cap_f = m->cap_i = 0;
        m->batch_mem = ops_alloc(m->ctx, cap_f, e);
        m->targets = m->batch_mem ? malloc(cap_i * sizeof *m->targets) : NULL;
        if (!m->targets) {
            if (m->batch_mem) err_set(e, ERR_NOMEM, "out of memory");
            return err_wrap(e, "ClipCap batch buffers for B=%d L=%d", B, L);
        }
        m->cap_f = cap_f;
        m->cap_i = cap_i;
    }
    m->x = m->batch_mem;
    m->dx = m->x + rows * E;
    m->prefix = m->dx + rows * E;
    m->dprefix = m->prefix + pk;
    m->dlogits = m->dprefix + pk;
    m->losses = m->dlogits + nh * V;
    m->rows = m->targets + rows;
    m->ids = m->rows + rows;
    return 0;
}

/* The target of row (b, t): the caption token t-k+1 for t in k-1 … k+L-2,
 * when it is a real token (and not a "!" under ignore_bang). */
static int32_t target_of(const clipcap_model *m, const int32_t *tokens, int L, int b, int t)
{
    int j = t - m->cfg.prefix_len + 1;
    if (j < 0 || j >= L) return -1;
    int32_t id = tokens[(size_t)b * L + j];
    if (id < 0 || (m->cfg.ignore_bang && id == 0)) return -1;
    return id;
}

long clipcap_model_count_targets(const clipcap_model *m, const int32_t *tokens, int B, int L)
{
    long n = 0;
    int T = m->cfg.prefix_len + L;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) n += target_of(m, tokens, L, b, t) >= 0;
    return n;
}

int clipcap_model_forward(clipcap_model *m, const float *clip, const int32_t *tokens, int B, int L,
                          double *loss_sum, long *count, err_t *e)
{
    const int E = m->gpt.cfg.n_embd, V = m->gpt.cfg.vocab_size, k = m->cfg.prefix_len, T = k + L;
    if (B < 1 || L < 1) return err_set(e, ERR_ARG, "ClipCap forward: batch %d x %d tokens", B, L);
    for (size_t i = 0; i < (size_t)B * L; i++)
        if (tokens[i] >= V)
            return err_set(e, ERR_ARG, "caption %zu: token %d is outside the vocabulary (%d)", i / (size_t)L,
                           tokens[i], V);
    int rc = ensure_batch(m, B, L, e);
    if (rc) return rc;
    m->B = B;
    m->L = L;
    m->T = T;
    m->clip = clip;
    rc = m->cfg.mapping == CLIPCAP_MAP_MLP ? mapper_mlp_forward(&m->mlp, m->prefix, clip, B, e)
                                          : mapper_tf_forward(&m->tf, m->prefix, clip, B, e);
    if (rc) return rc;
    for (size_t i = 0; i < (size_t)B * L; i++) m->ids[i] = tokens[i] < 0 ? 0 : tokens[i];
    for (int b = 0; b < B; b++) {
        float *xb = m->x + (size_t)b * T * E;
        ops_copy(m->ctx, xb, m->prefix + (size_t)b * k * E, (size_t)k * E);
        gpt2_embed(&m->gpt, xb + (size_t)k * E, m->ids + (size_t)b * L, L);
    }
    int n = 0;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            int32_t id = target_of(m, tokens, L, b, t);
            if (id < 0) continue;
            m->rows[n] = b * T + t;
            m->targets[n++] = id;
        }
    /* padding rows repeat the last counted row and count nothing: zero
     * gradient, added to that row's */
    m->n_rows = (int)head_rows_of((size_t)n, (size_t)B * T);
    for (int i = n; i < m->n_rows; i++) {
        m->rows[i] = m->rows[n - 1];
        m->targets[i] = -1;
    }
    if ((rc = gpt2_forward_rows(&m->gpt, m->x, B, T, m->rows, m->n_rows, e))) return rc;
    float mean = n ? ops_cross_entropy(m->ctx, m->losses, m->gpt.acts.logits, m->targets, m->n_rows, V) : 0.0f;
    *loss_sum = (double)mean * (double)n;
    *count = n;
    return 0;
}

int clipcap_model_backward(clipcap_model *m, float scale, err_t *e)
{
    const int E = m->gpt.cfg.n_embd, V = m->gpt.cfg.vocab_size, k = m->cfg.prefix_len;
    const int B = m->B, L = m->L, T = m->T;
    const size_t rows = (size_t)B * T;
    ops_fill(m->ctx, m->dlogits, 0.0f, (size_t)m->n_rows * V);
    if (m->n_rows)
        ops_cross_entropy_backward(m->ctx, m->dlogits, m->gpt.acts.logits, m->targets, m->n_rows, V, scale);
    ops_fill(m->ctx, m->dx, 0.0f, rows * E);
    int rc = gpt2_backward(&m->gpt, m->dlogits, m->dx, e);
    if (rc) return rc;
    for (int b = 0; b < B; b++) {
        const float *dxb = m->dx + (size_t)b * T * E;
        ops_copy(m->ctx, m->dprefix + (size_t)b * k * E, dxb, (size_t)k * E);
        gpt2_embed_backward(&m->gpt, dxb + (size_t)k * E, m->ids + (size_t)b * L, L);
    }
    if (m->cfg.mapping == CLIPCAP_MAP_MLP)
        mapper_mlp_backward(&m->mlp, m->dprefix, m->clip);
    else
        mapper_tf_backward(&m->tf, m->dprefix, m->clip);
    return 0;
}

void clipcap_model_zero_grad(clipcap_model *m) { ops_fill(m->ctx, m->grads, 0.0f, m->n_trainable); }
