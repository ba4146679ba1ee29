/* The whole ClipCap training step against tests/gen/gen_train_fixtures.py
 * (plain PyTorch written from the facts file): (a) MLP mapper + GPT-2
 * tuned, GPT-2 file with "transformer." names; (b) Transformer mapper +
 * GPT-2 frozen, bare names. Logits, loss, every parameter gradient, the
 * prefix gradient, 3 AdamW steps with a warm-up/decay schedule, the
 * reference's attention mask (same loss => pads never matter), the
 * "ignore !" rule, and a batch split in two (what MPI ranks do) giving the
 * same gradients.
 *
 * Tolerances: fp32 with a different reduction order than PyTorch's (BLAS
 * blocking, our per-row loops) over sums of at most 4E = 128 terms:
 * logits and loss 1e-5 relative to the tensor's largest magnitude;
 * gradients 1e-4 relative (they go through ~10 more reductions).
 * Parameters after 3 AdamW steps (lr 1e-2): Adam divides by √v, so an
 * element with a tiny gradient turns a tiny absolute gradient error into a
 * large relative one; 2e-4 absolute (2% of lr) holds for every element
 * except the key biases of c_attn, whose gradient is zero in exact
 * arithmetic (softmax ignores a per-row constant q·b_k) and pure rounding
 * noise in both implementations: Adam normalises that noise to ±lr, so they
 * are only checked to stay within the total learning rate, 2·Σ lr. The
 * optimiser alone is checked exactly against torch.optim.AdamW with fixed
 * gradients (test_adamw_fixed_grads). Inputs, logits and parameters are
 * backend memory, read and written through ops_upload/ops_download. */
#include <stdint.h>

#include "nn/adamw.h"
#include "nn/clipcap_model.h"
#include "nn/ops.h"
#include "nn_fixture.h"

enum { B = 3, L = 6, D = 24, K = 4, CLIP_LEN = 3, MAP_LAYERS = 2 };

typedef struct variant {
    const char *name, *gpt2_dir;
    enum clipcap_mapping mapping;
    int freeze;
} variant;

static const variant variants[2] = {
    {"mlp", "train/gpt2_prefixed", CLIPCAP_MAP_MLP, 0},
    {"transformer", "train/gpt2_bare", CLIPCAP_MAP_TRANSFORMER, 1},
};

static int load_model(clipcap_model *m, ops_ctx *ctx, const variant *v, err_t *e)
{
    char dir[4096], path[4200];
    check_fixture(dir, sizeof dir, v->gpt2_dir);
    gpt2_config gc;
    int rc = gpt2_config_load(&gc, dir, e);
    if (rc) return rc;
    clipcap_config cc = {v->mapping, D, K, CLIP_LEN, MAP_LAYERS, v->freeze, 0};
    if ((rc = clipcap_model_init(m, ctx, &cc, &gc, e))) return rc;
    tensorfile *tf = NULL;
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if ((rc = tensorfile_open(&tf, path, e)) || (rc = clipcap_model_load_gpt2(m, tf, e))) goto out;
    tensorfile_close(tf);
    tf = NULL;
    char rel[128];
    snprintf(rel, sizeof rel, "train/mapper_%s.safetensors", v->name);
    check_fixture(path, sizeof path, rel);
    if ((rc = tensorfile_open(&tf, path, e)) || (rc = clipcap_model_load_mapper(m, tf, e))) goto out;
out:
    tensorfile_close(tf);
    return rc;
}

static void load_batch(float **clip, int32_t *tokens)
{
    size_t n = 0;
    *clip = fx_npy("clip.npy", &n);
    CHECK(*clip && n == (size_t)B * D);
    float *t = fx_npy("tokens.npy", &n);
    CHECK(t && n == (size_t)B * L);
    for (size_t i = 0; t && i < n; i++) tokens[i] = (int32_t)t[i];
    free(t);
}

/* Compare every trainable gradient, named as the fixture names them. */
/* Every trainable tensor of m, its view in base (m->params or m->grads),
 * against the safetensors fixture FILE: see fx_compare_entries. */
static void compare_tensors(clipcap_model *m, float *base, const char *file, float atol, float rtol, int key_bias_E)
{
    int tuned = !m->cfg.freeze_gpt2;
    int n = clipcap_model_tensor_count(m, tuned);
    st_entry *en = calloc((size_t)n, sizeof *en);
    char (*names)[PARAM_NAME_MAX] = calloc((size_t)n, sizeof *names);
    clipcap_model_tensor_entries(m, base, tuned, en, names);
    CHECK(fx_compare_entries(m->ctx, file, en, n, atol, rtol, key_bias_E) == n);
    free(en);
    free(names);
}

/* The optimiser of gen_train_fixtures.py: AdamW lr 1e-2, decay 0.01,
 * warm-up 2 of 4 steps. */
static int fixture_adamw(adamw *opt, ops_ctx *ctx, size_t n, err_t *e)
{
    adamw_config ac;
    adamw_config_default(&ac);
    ac.lr = 1e-2f;
    ac.weight_decay = 0.01f;
    ac.warmup_steps = 2;
    ac.total_steps = 4;
    return adamw_init(opt, ctx, &ac, n, e);
}

static void run_variant(const variant *v)
{
    ops_ctx *ctx = NULL;
    err_t e = {0};
    CHECK_OK(ops_create(&ctx, 0, &e), &e);
    clipcap_model m;
    CHECK_OK(load_model(&m, ctx, v, &e), &e);
    float *clip_h = NULL;
    int32_t tokens[B * L];
    load_batch(&clip_h, tokens);
    float *clip = fx_upload(ctx, clip_h, (size_t)B * D); /* the model reads backend memory */
    char name[128];

    /* frozen GPT-2: no gradient storage at all */
    if (v->freeze) {
        CHECK(m.gpt.grads.wte == NULL && m.gpt.grads.qkvw == NULL);
        CHECK(m.n_trainable == m.n_mapper);
    } else {
        CHECK(m.n_trainable == m.n_params);
    }

    /* forward: logits and loss */
    double loss_sum = 0;
    long count = 0;
    CHECK_OK(clipcap_model_forward(&m, clip, tokens, B, L, &loss_sum, &count, &e), &e);
    CHECK(count == 6 + 3 + 2);
    snprintf(name, sizeof name, "%s_loss.npy", v->name);
    float *ref_loss = fx_npy(name, NULL);
    CHECK_MSG(fabs(loss_sum / count - ref_loss[0]) <= 1e-5 * fabs(ref_loss[0]), "%s loss %.7f vs %.7f", v->name,
              loss_sum / count, ref_loss[0]);
    const int T = K + L, V = m.gpt.cfg.vocab_size;
    size_t nl = 0;
    snprintf(name, sizeof name, "%s_logits.npy", v->name);
    float *ref_logits = fx_npy(name, &nl);
    CHECK(nl == (size_t)B * T * V);
    /* GPT-2's head ran on the counted rows only, in order: each must be a
     * position whose next token is a real caption token, and match the
     * reference's logits there, with and without the reference's mask */
    CHECK_MSG(m.n_rows >= count && m.n_rows <= B * T, "%s: %d head rows for %ld targets", v->name, m.n_rows, count);
    for (int i = (int)count; i < m.n_rows; i++) /* padding: counts nothing */
        CHECK(m.targets[i] == -1 && m.rows[i] >= 0 && m.rows[i] < B * T);
    float *logits = fx_download(ctx, m.gpt.acts.logits, (size_t)m.n_rows * V);
    snprintf(name, sizeof name, "%s_logits_hfmask.npy", v->name);
    size_t nm = 0;
    float *ref_masked = fx_npy(name, &nm);
    CHECK(nm == nl);
    float err = 0, merr = 0;
    for (int i = 0; i < (int)count; i++) {
        int r = m.rows[i], b = r / T, t = r % T;
        CHECK_MSG(i == 0 || r > m.rows[i - 1], "%s head rows out of order at %d", v->name, i);
        CHECK_MSG(t >= K - 1 && t < T - 1 && tokens[b * L + t - K + 1] >= 0, "%s head row %d (b %d t %d) has no target",
                  v->name, i, b, t);
        CHECK(m.targets[i] == tokens[b * L + t - K + 1]);
        float d = fx_max_abs_diff(logits + (size_t)i * V, ref_logits + (size_t)r * V, (size_t)V);
        float dm = fx_max_abs_diff(logits + (size_t)i * V, ref_masked + (size_t)r * V, (size_t)V);
        err = d > err ? d : err;
        merr = dm > merr ? dm : merr;
    }
    CHECK_MSG(err <= 1e-5f * fx_max_abs(ref_logits, nl), "%s logits max abs error %g", v->name, err);
    CHECK_MSG(merr <= 1e-5f * fx_max_abs(ref_masked, nl), "%s masked logits max abs error %g", v->name, merr);

    /* backward */
    clipcap_model_zero_grad(&m);
    CHECK_OK(clipcap_model_backward(&m, 1.0f / (float)count, &e), &e);
    snprintf(name, sizeof name, "%s_grads.safetensors", v->name);
    compare_tensors(&m, m.grads, name, 1e-7f, 1e-4f, 0);
    snprintf(name, sizeof name, "%s_dprefix.npy", v->name);
    float *ref_dp = fx_npy(name, &nl);
    CHECK(nl == (size_t)B * K * m.gpt.cfg.n_embd);
    float *dprefix = fx_download(ctx, m.dprefix, nl);
    err = fx_max_abs_diff(dprefix, ref_dp, nl);
    free(dprefix);
    CHECK_MSG(err <= 1e-4f * fx_max_abs(ref_dp, nl), "%s dprefix max abs error %g", v->name, err);

    /* the batch split over two "ranks": same global-mean gradients */
    long c0 = clipcap_model_count_targets(&m, tokens, 1, L);
    long c1 = clipcap_model_count_targets(&m, tokens + L, 2, L);
    CHECK(c0 + c1 == count);
    clipcap_model_zero_grad(&m);
    double s0 = 0, s1 = 0;
    long n0 = 0, n1 = 0;
    CHECK_OK(clipcap_model_forward(&m, clip, tokens, 1, L, &s0, &n0, &e), &e);
    CHECK_OK(clipcap_model_backward(&m, 1.0f / (float)count, &e), &e);
    CHECK_OK(clipcap_model_forward(&m, clip + D, tokens + L, 2, L, &s1, &n1, &e), &e);
    CHECK_OK(clipcap_model_backward(&m, 1.0f / (float)count, &e), &e);
    CHECK(fabs((s0 + s1) / count - loss_sum / count) <= 1e-6 * fabs(loss_sum / count));
    snprintf(name, sizeof name, "%s_grads.safetensors", v->name);
    compare_tensors(&m, m.grads, name, 1e-7f, 1e-4f, 0);

    /* the reference's rule: target "!" (id 0) ignored */
    m.cfg.ignore_bang = 1;
    CHECK_OK(clipcap_model_forward(&m, clip, tokens, B, L, &loss_sum, &count, &e), &e);
    CHECK(count == 10);
    CHECK_MSG(fabs(loss_sum / count - ref_loss[1]) <= 1e-5 * fabs(ref_loss[1]), "%s ignore-! loss %.7f vs %.7f",
              v->name, loss_sum / count, ref_loss[1]);
    m.cfg.ignore_bang = 0;

    /* 3 AdamW steps from the fixture weights */
    clipcap_model_free(&m);
    CHECK_OK(load_model(&m, ctx, v, &e), &e);
    adamw opt;
    CHECK_OK(fixture_adamw(&opt, ctx, m.n_trainable, &e), &e);
    snprintf(name, sizeof name, "%s_step_losses.npy", v->name);
    float *ref_steps = fx_npy(name, NULL);
    const float lrs[3] = {0.0f, 5e-3f, 1e-2f}; /* λ(0), λ(1), λ(2) with warm-up 2 of 4 */
    for (int s = 0; s < 3; s++) {
        clipcap_model_zero_grad(&m);
        CHECK_OK(clipcap_model_forward(&m, clip, tokens, B, L, &loss_sum, &count, &e), &e);
        CHECK_OK(clipcap_model_backward(&m, 1.0f / (float)count, &e), &e);
        float lr = adamw_step(&opt, m.params, m.grads);
        CHECK_MSG(fabsf(lr - lrs[s]) <= 1e-9f, "step %d lr %g", s, lr);
        CHECK_MSG(fabs(loss_sum / count - ref_steps[s]) <= 1e-5 * fabs(ref_steps[s]), "%s step %d loss %.7f vs %.7f",
                  v->name, s, loss_sum / count, ref_steps[s]);
    }
    snprintf(name, sizeof name, "%s_params_after.safetensors", v->name);
    compare_tensors(&m, m.params, name, 2e-4f, 0.0f, v->freeze ? 0 : m.gpt.cfg.n_embd);

    adamw_free(&opt);
    free(ref_steps);
    free(ref_dp);
    free(ref_masked);
    free(ref_logits);
    free(ref_loss);
    free(logits);
    free(clip_h);
    ops_free(ctx, clip);
    clipcap_model_free(&m);
    ops_destroy(ctx);
}

static void test_mlp_tuned(void) { run_variant(&variants[0]); }
static void test_transformer_frozen(void) { run_variant(&variants[1]); }

static void test_adamw_fixed_grads(void)
{
    ops_ctx *ctx = NULL;
    err_t e = {0};
    CHECK_OK(ops_create(&ctx, 0, &e), &e);
    size_t n = 0, ng = 0, n3 = 0;
    float *p_h = fx_npy("adamw_p0.npy", &n), *g_h = fx_npy("adamw_grads.npy", &ng), *ref = fx_npy("adamw_p3.npy", &n3);
    CHECK(p_h && g_h && ref && ng == 3 * n && n3 == n);
    float *p = fx_upload(ctx, p_h, n), *g = fx_upload(ctx, g_h, ng);
    adamw opt;
    CHECK_OK(fixture_adamw(&opt, ctx, n, &e), &e);
    for (int s = 0; s < 3; s++) adamw_step(&opt, p, g + (size_t)s * n);
    CHECK(opt.step == 3);
    /* same inputs, fp32 elementwise: only the last-bit rounding of pow/sqrt */
    ops_download(ctx, p_h, p, n);
    float err = fx_max_abs_diff(p_h, ref, n);
    CHECK_MSG(err <= 1e-6f, "AdamW params max abs error %g", err);
    adamw_free(&opt);
    ops_free(ctx, p);
    ops_free(ctx, g);
    free(p_h);
    free(g_h);
    free(ref);
    ops_destroy(ctx);
}

/* The published checkpoints' layout: a torch.save zip of the whole state
 * dict (gpt.transformer.*, the tied gpt.lm_head.weight sharing wte's
 * storage, attn.bias buffers) loads to exactly the same parameters. */
static void test_load_torch_checkpoint(void)
{
    ops_ctx *ctx = NULL;
    err_t e = {0};
    CHECK_OK(ops_create(&ctx, 0, &e), &e);
    clipcap_model ref, m;
    CHECK_OK(load_model(&ref, ctx, &variants[0], &e), &e);
    gpt2_config gc = ref.gpt.cfg;
    clipcap_config cc = ref.cfg;
    CHECK_OK(clipcap_model_init(&m, ctx, &cc, &gc, &e), &e);
    char path[4096];
    check_fixture(path, sizeof path, "train/clipcap_mlp.pt");
    tensorfile *tf = NULL;
    CHECK_OK(tensorfile_open(&tf, path, &e), &e);
    if (tf) {
        CHECK_OK(clipcap_model_load_mapper(&m, tf, &e), &e);
        CHECK_OK(clipcap_model_load_gpt2(&m, tf, &e), &e);
    }
    tensorfile_close(tf);
    CHECK(m.n_params == ref.n_params);
    float *a = fx_download(ctx, m.params, m.n_params), *b = fx_download(ctx, ref.params, ref.n_params);
    CHECK(memcmp(a, b, m.n_params * sizeof(float)) == 0);
    free(a);
    free(b);
    clipcap_model_free(&m);
    clipcap_model_free(&ref);
    ops_destroy(ctx);
}

static void test_schedule(void)
{
    adamw_config c;
    adamw_config_default(&c);
    CHECK(c.lr == 2e-5f && c.eps == 1e-6f && c.weight_decay == 0.0f && c.warmup_steps == 5000);
    c.total_steps = 10000;
    CHECK(adamw_lr_at(&c, 0) == 0.0f);
    CHECK(fabsf(adamw_lr_at(&c, 2500) - 1e-5f) < 1e-12f);
    CHECK(adamw_lr_at(&c, 5000) == 2e-5f);
    CHECK(fabsf(adamw_lr_at(&c, 7500) - 1e-5f) < 1e-12f);
    CHECK(adamw_lr_at(&c, 10000) == 0.0f);
    CHECK(adamw_lr_at(&c, 12000) == 0.0f);
}

int main(void)
{
    CHECK_RUN(test_schedule);
    CHECK_RUN(test_adamw_fixed_grads);
    CHECK_RUN(test_load_torch_checkpoint);
    CHECK_RUN(test_mlp_tuned);
    CHECK_RUN(test_transformer_frozen);
    return check_summary();
}
