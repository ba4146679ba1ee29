/* GPT-2 in training mode (dropout, nn/gpt2.h) against PyTorch
 * (tests/gen/gen_dropout_fixtures.py: the same masks applied where Hugging
 * Face's GPT-2 applies dropout, train/dropout.safetensors):
 * - logits and the gradients of sum(logits·r) w.r.t. the input and every
 *   weight, with embd 0.1, attn 0.2 and resid 0.3 (a site given another
 *   site's probability fails); tolerances as unit.clipcap_train_step: logits
 *   1e-5 relative to the tensor's max, gradients 1e-4 (fp32 sums in another
 *   order);
 * - eval mode (all probabilities 0) gives the no-dropout logits;
 * - a batch split 1 + 2 with row0 0 and 1 (two ranks) gives the whole
 *   batch's logits and gradients, so ranks drop what one process would;
 * - the ops: drop rate and scale on 2^20 elements (|rate - p| < 5σ), masks
 *   under another key or offset are other masks, and an offset shifts the
 *   mask exactly. */
#include <stdint.h>

#include "io/safetensors.h"
#include "nn/gpt2.h"
#include "nn/ops.h"
#include "nn/ops_dropout_mask.h"
#include "nn/ops_ext.h"
#include "nn_fixture.h"

#define B 3
#define T 7

typedef struct fixture {
    st_file *f;
    gpt2_dropout drop;
} fixture;

static float *fx_tensor(const fixture *fx, const char *name, size_t *n)
{
    const st_tensor *t = st_find(fx->f, name);
    CHECK_MSG(t != NULL, "dropout.safetensors: %s missing", name);
    if (!t) return NULL;
    size_t cnt = 1;
    for (int d = 0; d < t->ndim; d++) cnt *= (size_t)t->shape[d];
    float *v = malloc(cnt * sizeof *v);
    err_t e = {0};
    CHECK_OK(st_read_f32(fx->f, t, v, cnt, &e), &e);
    if (n) *n = cnt;
    return v;
}

static const char *md(const fixture *fx, const char *k)
{
    const char *v = json_string_value(json_object_get(st_metadata(fx->f), k));
    return v ? v : "0";
}

/* A trainable GPT-2 with the fixture's weights: params + grads buffers. */
typedef struct model {
    gpt2 g;
    float *params, *grads;
    size_t n;
} model;

static int model_open(model *m, ops_ctx *ctx, err_t *e)
{
    gpt2 frozen;
    char dir[4096];
    int rc = gpt2_open(&frozen, ctx, check_fixture(dir, sizeof dir, "train/gpt2_prefixed"), e);
    if (rc) return rc;
    m->n = gpt2_param_count(&frozen.cfg);
    m->params = ops_alloc(ctx, m->n, e);
    m->grads = ops_alloc(ctx, m->n, e);
    ops_copy(ctx, m->params, frozen.params.wte, m->n);
    gpt2_init(&m->g, ctx, &frozen.cfg, m->params, m->grads);
    gpt2_free(&frozen);
    return 0;
}

static void model_close(model *m)
{
    ops_ctx *ctx = m->g.ctx;
    gpt2_free(&m->g);
    ops_free(ctx, m->params);
    ops_free(ctx, m->grads);
}

/* Forward + backward of sum(logits·r) for sequences [b0, b0+nb) of x;
 * logits into logits_out (host, nb·T·V); dx accumulated into dx_out. */
static void run(model *m, const float *x, const float *r, int b0, int nb, float *logits_out, float *dx_out)
{
    ops_ctx *ctx = m->g.ctx;
    const int E = m->g.cfg.n_embd, V = m->g.cfg.vocab_size;
    const size_t nx = (size_t)nb * T * E, nl = (size_t)nb * T * V;
    float *dx = fx_upload(ctx, x + (size_t)b0 * T * E, nx), *dxg = ops_alloc(ctx, nx, NULL);
    float *rr = fx_upload(ctx, r + (size_t)b0 * T * V, nl);
    err_t e = {0};
    m->g.drop.row0 = b0;
    CHECK_OK(gpt2_forward(&m->g, dx, nb, T, &e), &e);
    ops_download(ctx, logits_out, m->g.acts.logits, nl);
    CHECK_OK(gpt2_backward(&m->g, rr, dxg, &e), &e);
    float *h = fx_download(ctx, dxg, nx);
    for (size_t i = 0; i < nx; i++) dx_out[(size_t)b0 * T * E + i] += h[i];
    free(h);
    ops_free(ctx, dx);
    ops_free(ctx, dxg);
    ops_free(ctx, rr);
}

static void compare(const char *what, const float *ours, const float *ref, size_t n, float rtol)
{
    float err = fx_max_abs_diff(ours, ref, n), tol = rtol * fx_max_abs(ref, n);
    CHECK_MSG(err <= tol, "%s: max abs error %g > %g", what, err, tol);
}

static void compare_grads(model *m, const fixture *fx)
{
    int n = gpt2_tensor_entries(&m->g.cfg, "grad.", NULL, NULL, NULL);
    st_entry *en = calloc((size_t)n, sizeof *en);
    char (*names)[PARAM_NAME_MAX] = calloc((size_t)n, sizeof *names);
    gpt2_tensor_entries(&m->g.cfg, "grad.", m->grads, en, names);
    for (int i = 0; i < n; i++) {
        size_t cnt = 0;
        float *ref = fx_tensor(fx, en[i].name, &cnt), *ours = fx_download(m->g.ctx, en[i].data, cnt);
        if (ref && ours) compare(en[i].name, ours, ref, cnt, 1e-4f);
        free(ref);
        free(ours);
    }
    free(en);
    free(names);
}

static void test_against_pytorch(void)
{
    ops_ctx *ctx = NULL;
    err_t e = {0};
    fixture fx = {0};
    char path[4096];
    CHECK_OK(st_open(&fx.f, check_fixture(path, sizeof path, "train/dropout.safetensors"), &e), &e);
    CHECK_OK(ops_create(&ctx, 0, &e), &e);
    model m;
    CHECK_OK(model_open(&m, ctx, &e), &e);
    if (!fx.f || !ctx) return;
    const int E = m.g.cfg.n_embd, V = m.g.cfg.vocab_size;
    size_t nx = 0, nl = 0;
    float *x = fx_tensor(&fx, "x", &nx), *r = fx_tensor(&fx, "r", &nl);
    float *want_logits = fx_tensor(&fx, "logits", NULL), *want_dx = fx_tensor(&fx, "dx", NULL);
    float *want_eval = fx_tensor(&fx, "logits_eval", NULL);
    CHECK(nx == (size_t)B * T * E && nl == (size_t)B * T * V);
    float *logits = calloc(nl, sizeof *logits), *dx = calloc(nx, sizeof *dx);

    /* eval mode: the no-dropout reference */
    run(&m, x, r, 0, B, logits, dx);
    compare("eval logits", logits, want_eval, nl, 1e-5f);

    /* training mode, the whole batch */
    const gpt2_dropout drop = {strtof(md(&fx, "embd"), NULL), strtof(md(&fx, "attn"), NULL),
                               strtof(md(&fx, "resid"), NULL), strtoull(md(&fx, "key"), NULL, 10), 0};
    CHECK(drop.embd == 0.1f && drop.attn == 0.2f && drop.resid == 0.3f);
    m.g.drop = drop;
    memset(dx, 0, nx * sizeof *dx);
    ops_fill(ctx, m.grads, 0.0f, m.n);
    run(&m, x, r, 0, B, logits, dx);
    compare("logits", logits, want_logits, nl, 1e-5f);
    compare("dx", dx, want_dx, nx, 1e-4f);
    compare_grads(&m, &fx);
    float *diff = fx_max_abs_diff(logits, want_eval, nl) > 1e-2f ? logits : NULL;
    CHECK_MSG(diff != NULL, "dropout changed nothing");

    /* the batch as two ranks would see it: sequences 0 and 1..2 */
    memset(dx, 0, nx * sizeof *dx);
    ops_fill(ctx, m.grads, 0.0f, m.n);
    run(&m, x, r, 0, 1, logits, dx);
    run(&m, x, r, 1, 2, logits + (size_t)T * V, dx);
    compare("split logits", logits, want_logits, nl, 1e-5f);
    compare("split dx", dx, want_dx, nx, 1e-4f);
    compare_grads(&m, &fx);

    free(x);
    free(r);
    free(want_logits);
    free(want_dx);
    free(want_eval);
    free(logits);
    free(dx);
    model_close(&m);
    ops_destroy(ctx);
    st_close(fx.f);
}

static void test_ops(void)
{
    ops_ctx *ctx = NULL;
    err_t e = {0};
    CHECK_OK(ops_create(&ctx, 0, &e), &e);
    if (!ctx) return;
    const size_t n = (size_t)1 << 20;
    const float p = 0.1f, s = 1.0f / (1.0f - p);
    float *one = ops_alloc(ctx, n, &e), *out = ops_alloc(ctx, n, &e), *out2 = ops_alloc(ctx, n, &e);
    ops_fill(ctx, one, 1.0f, n);
    ops_dropout(ctx, out, one, n, p, 42, 0);
    float *h = fx_download(ctx, out, n);
    size_t zeros = 0, bad = 0;
    for (size_t i = 0; i < n; i++) {
        zeros += h[i] == 0.0f;
        bad += h[i] != 0.0f && h[i] != s;
    }
    double rate = (double)zeros / (double)n, sigma = sqrt(p * (1.0 - p) / (double)n);
    CHECK_MSG(fabs(rate - p) < 5 * sigma, "drop rate %.5f, expected %.2f ± %.5f", rate, p, 5 * sigma);
    CHECK(bad == 0);
    /* another key: an independent mask (both dropped ≈ p²) */
    ops_dropout(ctx, out2, one, n, p, 43, 0);
    float *h2 = fx_download(ctx, out2, n);
    size_t both = 0;
    for (size_t i = 0; i < n; i++) both += h[i] == 0.0f && h2[i] == 0.0f;
    CHECK_MSG(fabs((double)both / (double)n - p * p) < 0.002, "both dropped: %zu", both);
    /* offset k is the same mask shifted by k */
    ops_dropout(ctx, out2, one, n - 1000, p, 42, 1000);
    free(h2);
    h2 = fx_download(ctx, out2, n - 1000);
    CHECK(!memcmp(h2, h + 1000, (n - 1000) * sizeof *h));
    /* backward: the same mask, accumulated */
    ops_fill(ctx, out2, 1.0f, n);
    ops_dropout_backward(ctx, out2, one, n, p, 42, 0);
    free(h2);
    h2 = fx_download(ctx, out2, n);
    bad = 0;
    for (size_t i = 0; i < n; i++) bad += h2[i] != 1.0f + h[i];
    CHECK(bad == 0);
    /* p = 0 keeps everything as it is */
    ops_dropout(ctx, out2, one, n, 0.0f, 42, 0);
    free(h2);
    h2 = fx_download(ctx, out2, n);
    bad = 0;
    for (size_t i = 0; i < n; i++) bad += h2[i] != 1.0f;
    CHECK(bad == 0);
    free(h);
    free(h2);
    ops_free(ctx, one);
    ops_free(ctx, out);
    ops_free(ctx, out2);
    ops_destroy(ctx);
}

int main(void)
{
    CHECK_RUN(test_ops);
    CHECK_RUN(test_against_pytorch);
    return check_summary();
}
