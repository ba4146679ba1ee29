/* GPT-2 loading and its forward/backward contracts. The numbers against
 * PyTorch are in test_clipcap_train_step (logits, every gradient); here:
 * - hub files with and without "transformer." (plus the attn.bias /
 *   masked_bias buffers, F32 and BOOL) load to identical parameters;
 * - an untied lm_head, a wrong shape and a missing tensor are errors that
 *   name the tensor;
 * - a frozen model computes the same input gradient as a tuned one and has
 *   no weight gradients;
 * - rows of a batch are independent (B=3 equals three B=1 runs);
 * - the input gradient matches central finite differences of Σ logits·R
 *   (h = 1e-2, tolerance 2e-3 relative: fp32 noise of the objective over
 *   2h, plus O(h²));
 * - gpt2_forward_rows computes the listed rows' logits, and its backward
 *   the gradients of the full pass whose other rows get zero dlogits (1e-5
 *   of each tensor's max: the head's GEMMs sum the same products over
 *   fewer rows, in another blocking); bad row lists are ERR_ARG.
 * Parameters, inputs and logits are backend memory: the test reads and
 * writes them through ops_upload/ops_download only. */
#include <stdint.h>

#include "io/safetensors.h"
#include "nn/gpt2.h"
#include "nn/ops.h"
#include "nn_fixture.h"

static uint64_t rng = 99;
static float frand(void)
{
    rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
    return (float)((rng >> 40) / 16777216.0) * 2.0f - 1.0f;
}

static int open_fixture(gpt2 *g, ops_ctx *ctx, const char *sub, err_t *e)
{
    char dir[4096];
    check_fixture(dir, sizeof dir, sub);
    return gpt2_open(g, ctx, dir, e);
}

static void test_load_both_namings(void)
{
    ops_ctx *ctx = NULL;
    err_t e = {0};
    CHECK_OK(ops_create(&ctx, 0, &e), &e);
    gpt2 a, b;
    CHECK_OK(open_fixture(&a, ctx, "train/gpt2_prefixed", &e), &e);
    CHECK_OK(open_fixture(&b, ctx, "train/gpt2_bare", &e), &e);
    CHECK(a.cfg.n_embd == 32 && a.cfg.n_layer == 2 && a.cfg.n_head == 4 && a.cfg.vocab_size == 64 &&
          a.cfg.n_positions == 64);
    size_t n = gpt2_param_count(&a.cfg);
    CHECK(n == 64 * 32 + 64 * 32 + 2 * (12 * 32 * 32 + 13 * 32) + 2 * 32);
    float *pa = fx_download(ctx, a.params.wte, n), *pb = fx_download(ctx, b.params.wte, n);
    CHECK(memcmp(pa, pb, n * sizeof(float)) == 0);
    free(pa);
    free(pb);
    CHECK(a.frozen && a.grads.wte == NULL);
    gpt2_free(&a);
    gpt2_free(&b);
    ops_destroy(ctx);
}

/* Write DIR/config.json (from cfg) and DIR/model.safetensors holding g's
 * tensors under "transformer." plus extra entries. */
static void write_model(const char *dir, const gpt2_config *cfg, gpt2 *g, const st_entry *extra, int n_extra)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f) return;
    fprintf(f, "{\"n_embd\": %d, \"n_head\": %d, \"n_layer\": %d, \"n_positions\": %d, \"vocab_size\": %d}\n",
            cfg->n_embd, cfg->n_head, cfg->n_layer, cfg->n_positions, cfg->vocab_size);
    fclose(f);
    int n = gpt2_tensor_entries(&g->cfg, "transformer.", NULL, NULL, NULL);
    st_entry *en = calloc((size_t)n + (size_t)n_extra, sizeof *en);
    char (*names)[PARAM_NAME_MAX] = calloc((size_t)n, sizeof *names);
    float *host = fx_download(g->ctx, g->params.wte, gpt2_param_count(&g->cfg));
    gpt2_tensor_entries(&g->cfg, "transformer.", host, en, names);
    for (int i = 0; i < n_extra; i++) en[n + i] = extra[i];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    err_t e = {0};
    CHECK_OK(st_write(path, en, n + n_extra, NULL, &e), &e);
    free(host);
    free(en);
    free(names);
}

static void test_load_errors(void)
{
    ops_ctx *ctx = NULL;
    err_t e = {0};
    CHECK_OK(ops_create(&ctx, 0, &e), &e);
    gpt2 g, h;
    CHECK_OK(open_fixture(&g, ctx, "train/gpt2_prefixed", &e), &e);
    char dir[4096];
    check_tmpdir(dir, sizeof dir, "gpt2_load");

    /* untied head */
    size_t vocab = (size_t)g.cfg.vocab_size * g.cfg.n_embd;
    float *head = malloc(vocab * sizeof *head);
    ops_download(ctx, head, g.params.wte, vocab);
    head[5] += 1.0f;
    st_entry lm = {"lm_head.weight", head, 2, {g.cfg.vocab_size, g.cfg.n_embd}};
    write_model(dir, &g.cfg, &g, &lm, 1);
    CHECK(gpt2_open(&h, ctx, dir, &e) == ERR_UNSUPPORTED);
    CHECK_MSG(strstr(e.msg, "lm_head.weight") != NULL, "%s", e.msg);
    /* the tied head as hub files hold it loads */
    ops_download(ctx, head, g.params.wte, vocab);
    write_model(dir, &g.cfg, &g, &lm, 1);
    CHECK_OK(gpt2_open(&h, ctx, dir, &e), &e);
    gpt2_free(&h);

    /* a config that disagrees with the tensors: wrong shape, missing layer */
    gpt2_config bad = g.cfg;
    bad.n_positions = 32;
    write_model(dir, &bad, &g, NULL, 0);
    CHECK(gpt2_open(&h, ctx, dir, &e) == ERR_FORMAT);
    CHECK_MSG(strstr(e.msg, "wpe.weight") != NULL, "%s", e.msg);
    bad = g.cfg;
    bad.n_layer = 3;
    write_model(dir, &bad, &g, NULL, 0);
    CHECK(gpt2_open(&h, ctx, dir, &e) == ERR_NOTFOUND);
    CHECK_MSG(strstr(e.msg, "h.2.") != NULL, "%s", e.msg);

    free(head);
    gpt2_free(&g);
    ops_destroy(ctx);
}

enum { B = 3, T = 7 };

/* x: backend memory; R: host */
static double objective(gpt2 *g, const float *x, const float *R)
{
    CHECK(gpt2_forward(g, x, B, T, NULL) == 0);
    size_t n = (size_t)B * T * g->cfg.vocab_size;
    float *logits = fx_download(g->ctx, g->acts.logits, n);
    double f = 0;
    for (size_t i = 0; i < n; i++) f += (double)logits[i] * R[i];
    free(logits);
    return f;
}

static void test_backward(void)
{
    ops_ctx *ctx = NULL;
    err_t e = {0};
    CHECK_OK(ops_create(&ctx, 0, &e), &e);
    gpt2 frozen, tuned;
    CHECK_OK(open_fixture(&frozen, ctx, "train/gpt2_bare", &e), &e);
    const gpt2_config *c = &frozen.cfg;
    size_t np = gpt2_param_count(c), nx = (size_t)B * T * c->n_embd, nl = (size_t)B * T * c->vocab_size;
    float *p = ops_alloc(ctx, np, &e), *gr = ops_alloc(ctx, np, &e);
    ops_copy(ctx, p, frozen.params.wte, np);
    gpt2_init(&tuned, ctx, c, p, gr);
    CHECK(!tuned.frozen && tuned.grads.wte == gr);

    /* host copies x, R; backend copies xd, Rd, dd1, dd2 */
    float *x = malloc(nx * sizeof *x), *R = malloc(nl * sizeof *R);
    for (size_t i = 0; i < nx; i++) x[i] = frand();
    for (size_t i = 0; i < nl; i++) R[i] = frand();
    float *xd = ops_alloc(ctx, nx, &e), *Rd = ops_alloc(ctx, nl, &e);
    float *dd1 = ops_alloc(ctx, nx, &e), *dd2 = ops_alloc(ctx, nx, &e);
    ops_upload(ctx, xd, x, nx);
    ops_upload(ctx, Rd, R, nl);

    CHECK_OK(gpt2_forward(&frozen, xd, B, T, &e), &e);
    CHECK_OK(gpt2_backward(&frozen, Rd, dd1, &e), &e);
    CHECK_OK(gpt2_forward(&tuned, xd, B, T, &e), &e);
    CHECK_OK(gpt2_backward(&tuned, Rd, dd2, &e), &e);
    float *d1 = fx_download(ctx, dd1, nx), *d2 = fx_download(ctx, dd2, nx);
    CHECK(memcmp(d1, d2, nx * sizeof *d1) == 0);
    CHECK(ops_sum_squares(ctx, gr, np) > 0.0);

    /* rows are independent */
    float *full = fx_download(ctx, tuned.acts.logits, nl);
    float worst = 0;
    size_t row = (size_t)T * c->vocab_size;
    for (int b = 0; b < B; b++) {
        CHECK_OK(gpt2_forward(&tuned, xd + (size_t)b * T * c->n_embd, 1, T, &e), &e);
        float *one = fx_download(ctx, tuned.acts.logits, row);
        float d = fx_max_abs_diff(one, full + b * row, row);
        free(one);
        worst = d > worst ? d : worst;
    }
    CHECK_MSG(worst <= 1e-5f * fx_max_abs(full, nl), "batch rows differ by %g", worst);

    /* input gradient vs finite differences */
    const float h = 1e-2f;
    float fd_worst = 0;
    for (int k = 0; k < 24; k++) {
        size_t i = (size_t)(k * 7919) % nx;
        float v = x[i], vp = v + h, vm = v - h;
        ops_upload(ctx, xd + i, &vp, 1);
        double fp = objective(&frozen, xd, R);
        ops_upload(ctx, xd + i, &vm, 1);
        double fm = objective(&frozen, xd, R);
        ops_upload(ctx, xd + i, &v, 1);
        double num = (fp - fm) / (2.0 * h);
        float err = (float)(fabs(num - d1[i]) / fmax(1.0, fabs(num)));
        fd_worst = err > fd_worst ? err : fd_worst;
    }
    CHECK_MSG(fd_worst <= 2e-3f, "input gradient vs finite differences: %g", fd_worst);

    CHECK(gpt2_forward(&frozen, xd, 1, c->n_positions + 1, &e) == ERR_ARG);

    free(full);
    free(x);
    free(R);
    free(d1);
    free(d2);
    ops_free(ctx, xd);
    ops_free(ctx, Rd);
    ops_free(ctx, dd1);
    ops_free(ctx, dd2);
    gpt2_free(&tuned);
    ops_free(ctx, p);
    ops_free(ctx, gr);
    gpt2_free(&frozen);
    ops_destroy(ctx);
}

/* Max |a - b| over n backend floats, against 1e-5 of max |a|. */
static void expect_same(ops_ctx *ctx, const float *ad, const float *bd, size_t n, const char *what)
{
    float *a = fx_download(ctx, ad, n), *b = fx_download(ctx, bd, n);
    float d = fx_max_abs_diff(a, b, n), m = fx_max_abs(a, n);
    CHECK_MSG(m > 0.0f && d <= 1e-5f * m, "%s: rows-only pass differs by %g (max %g)", what, d, m);
    free(a);
    free(b);
}

static void test_head_rows(void)
{
    ops_ctx *ctx = NULL;
    err_t e = {0};
    CHECK_OK(ops_create(&ctx, 0, &e), &e);
    gpt2 src, full, part;
    CHECK_OK(open_fixture(&src, ctx, "train/gpt2_bare", &e), &e);
    const gpt2_config *c = &src.cfg;
    const int V = c->vocab_size, E = c->n_embd;
    /* of B·T = 21, the last row included, row 6 twice (its gradients add) */
    const int32_t rows[] = {1, 2, 6, 9, 13, 20, 6};
    const int n = (int)(sizeof rows / sizeof rows[0]);
    size_t np = gpt2_param_count(c), nx = (size_t)B * T * E, nl = (size_t)B * T * V;
    float *gf = ops_alloc(ctx, np, &e), *gp = ops_alloc(ctx, np, &e);
    ops_fill(ctx, gf, 0.0f, np);
    ops_fill(ctx, gp, 0.0f, np);
    gpt2_init(&full, ctx, c, src.params.wte, gf);
    gpt2_init(&part, ctx, c, src.params.wte, gp);

    float *x = malloc(nx * sizeof *x), *R = calloc(nl, sizeof *R), *Rpart = malloc((size_t)n * V * sizeof *Rpart);
    for (size_t i = 0; i < nx; i++) x[i] = frand();
    for (int i = 0; i < n; i++)
        for (int v = 0; v < V; v++) {
            float r = frand();
            Rpart[(size_t)i * V + v] = r;
            R[(size_t)rows[i] * V + v] += r;
        }
    float *xd = ops_alloc(ctx, nx, &e), *Rd = ops_alloc(ctx, nl, &e), *Rpd = ops_alloc(ctx, (size_t)n * V, &e);
    float *dxf = ops_alloc(ctx, nx, &e), *dxp = ops_alloc(ctx, nx, &e);
    ops_upload(ctx, xd, x, nx);
    ops_upload(ctx, Rd, R, nl);
    ops_upload(ctx, Rpd, Rpart, (size_t)n * V);
    ops_fill(ctx, dxf, 0.0f, nx);
    ops_fill(ctx, dxp, 0.0f, nx);

    CHECK_OK(gpt2_forward(&full, xd, B, T, &e), &e);
    CHECK_OK(gpt2_backward(&full, Rd, dxf, &e), &e);
    CHECK_OK(gpt2_forward_rows(&part, xd, B, T, rows, n, &e), &e);
    for (int i = 0; i < n; i++) {
        char what[64];
        snprintf(what, sizeof what, "logits of row %d", rows[i]);
        expect_same(ctx, full.acts.logits + (size_t)rows[i] * V, part.acts.logits + (size_t)i * V, (size_t)V, what);
    }
    CHECK_OK(gpt2_backward(&part, Rpd, dxp, &e), &e);
    expect_same(ctx, dxf, dxp, nx, "input gradient");
    expect_same(ctx, full.grads.wte, part.grads.wte, (size_t)V * E, "wte gradient");
    expect_same(ctx, gf, gp, np, "all weight gradients");

    /* no rows: no logits, and nothing flows back from the head */
    ops_fill(ctx, dxp, 0.0f, nx);
    ops_fill(ctx, gp, 0.0f, np);
    CHECK_OK(gpt2_forward_rows(&part, xd, B, T, rows, 0, &e), &e);
    CHECK_OK(gpt2_backward(&part, Rpd, dxp, &e), &e);
    CHECK(ops_sum_squares(ctx, dxp, nx) == 0.0 && ops_sum_squares(ctx, gp, np) == 0.0);
    /* the same model back to every row: what the full pass computed */
    CHECK_OK(gpt2_forward(&part, xd, B, T, &e), &e);
    expect_same(ctx, full.acts.logits, part.acts.logits, nl, "logits after a rows-only pass");

    const int32_t outside[] = {0, B * T};
    CHECK(gpt2_forward_rows(&part, xd, B, T, outside, 2, &e) == ERR_ARG);
    CHECK(gpt2_forward_rows(&part, xd, B, T, rows, B * T + 1, &e) == ERR_ARG);

    free(x);
    free(R);
    free(Rpart);
    ops_free(ctx, xd);
    ops_free(ctx, Rd);
    ops_free(ctx, Rpd);
    ops_free(ctx, dxf);
    ops_free(ctx, dxp);
    gpt2_free(&full);
    gpt2_free(&part);
    ops_free(ctx, gf);
    ops_free(ctx, gp);
    gpt2_free(&src);
    ops_destroy(ctx);
}

int main(void)
{
    CHECK_RUN(test_load_both_namings);
    CHECK_RUN(test_load_errors);
    CHECK_RUN(test_backward);
    CHECK_RUN(test_head_rows);
    return check_summary();
}
