/* Every backward op of common/nn/ops.h against central finite differences
 * of its forward op, plus the accumulate (+=) and NULL-gradient contracts.
 *
 * Objective f = Σ out ⊙ R (R random), evaluated in double over the fp32
 * forward outputs; numeric gradient (f(x+h) − f(x−h)) / 2h with h = 1e-2.
 * Tolerance 2e-3 · max(1, |g|): fp32 rounding of f (~1e-7 relative over a
 * few hundred terms) divided by 2h gives ~1e-5 absolute noise, and the
 * O(h²) truncation error of the smooth ops is below 1e-3 at these scales.
 * ReLU inputs are kept away from the kink. The whole-model gradients are
 * checked against PyTorch in test_clipcap_train_step.
 *
 * Backend-agnostic: the op's inputs, outputs and gradients live in
 * ops_alloc memory (index arrays on the host, as ops.h says); the host keeps
 * copies, uploads each perturbed element and downloads each output. */
#include <stdint.h>

#include "check.h"
#include "nn/ops.h"

#define MAXIN 3

typedef struct op_case {
    const char *name;
    int n_in;
    size_t in_size[MAXIN];
    size_t out_size;
    void (*fwd)(ops_ctx *ctx, float *const *in, float *out, const void *arg);
    /* dout → d_in (accumulating; d_in[i] may be NULL) */
    void (*bwd)(ops_ctx *ctx, float *const *d_in, const float *dout, float *const *in, const float *out,
                const void *arg);
    const void *arg;
    float lo, hi; /* input range */
} op_case;

static uint64_t rng_state = 0x12345678;
static float frand(float lo, float hi)
{
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return lo + (hi - lo) * (float)((rng_state >> 40) / 16777216.0);
}

static ops_ctx *ops; /* two threads on the CPU backend */

static float *dalloc(size_t n)
{
    err_t e = {0};
    float *p = ops_alloc(ops, n, &e);
    CHECK_MSG(p != NULL, "%s", e.msg);
    return p;
}

static float *dcopy(const float *host, size_t n)
{
    float *p = dalloc(n);
    ops_upload(ops, p, host, n);
    return p;
}

/* f = Σ out ⊙ R; out is backend memory, out_h its host copy. */
static double objective(const op_case *c, float *const *in, float *out, float *out_h, const float *R)
{
    c->fwd(ops, in, out, c->arg);
    ops_download(ops, out_h, out, c->out_size);
    double f = 0;
    for (size_t i = 0; i < c->out_size; i++) f += (double)out_h[i] * R[i];
    return f;
}

static void check_case(const op_case *c)
{
    /* *_h: host copies; the rest backend memory */
    float *in_h[MAXIN] = {0}, *d_h[MAXIN] = {0}, *dacc_h[MAXIN] = {0};
    float *in[MAXIN] = {0}, *d[MAXIN] = {0}, *dacc[MAXIN] = {0};
    for (int i = 0; i < c->n_in; i++) {
        in_h[i] = malloc(c->in_size[i] * sizeof(float));
        d_h[i] = malloc(c->in_size[i] * sizeof(float));
        dacc_h[i] = malloc(c->in_size[i] * sizeof(float));
        for (size_t j = 0; j < c->in_size[i]; j++) {
            float x = frand(c->lo, c->hi);
            if (c->lo < 0 && fabsf(x) < 0.05f) x = x < 0 ? -0.05f - x : 0.05f + x; /* ReLU kink */
            in_h[i][j] = x;
            dacc_h[i][j] = 1.0f;
        }
        in[i] = dcopy(in_h[i], c->in_size[i]);
        d[i] = dalloc(c->in_size[i]); /* zeroed */
        dacc[i] = dcopy(dacc_h[i], c->in_size[i]);
    }
    float *out_h = malloc(c->out_size * sizeof(float)), *R = malloc(c->out_size * sizeof(float));
    for (size_t j = 0; j < c->out_size; j++) R[j] = frand(-1, 1);
    float *out = dalloc(c->out_size), *Rd = dcopy(R, c->out_size);
    objective(c, in, out, out_h, R);
    c->bwd(ops, d, Rd, in, out, c->arg);
    c->bwd(ops, dacc, Rd, in, out, c->arg); /* must add to the 1.0 already there */
    for (int i = 0; i < c->n_in; i++) {
        ops_download(ops, d_h[i], d[i], c->in_size[i]);
        ops_download(ops, dacc_h[i], dacc[i], c->in_size[i]);
    }
    const float h = 1e-2f;
    float worst = 0, worst_acc = 0;
    for (int i = 0; i < c->n_in; i++) {
        for (size_t j = 0; j < c->in_size[i]; j++) {
            float x = in_h[i][j], xp = x + h, xm = x - h;
            ops_upload(ops, in[i] + j, &xp, 1);
            double fp = objective(c, in, out, out_h, R);
            ops_upload(ops, in[i] + j, &xm, 1);
            double fm = objective(c, in, out, out_h, R);
            ops_upload(ops, in[i] + j, &x, 1);
            double num = (fp - fm) / (2.0 * h);
            float err = (float)(fabs(num - d_h[i][j]) / fmax(1.0, fabs(num)));
            worst = err > worst ? err : worst;
            float acc = fabsf(dacc_h[i][j] - 1.0f - d_h[i][j]);
            worst_acc = acc > worst_acc ? acc : worst_acc;
        }
    }
    CHECK_MSG(worst <= 2e-3f, "%s: gradient error %g vs finite differences", c->name, worst);
    CHECK_MSG(worst_acc <= 1e-5f, "%s: backward does not accumulate (error %g)", c->name, worst_acc);
    /* every gradient NULL: nothing is touched, nothing crashes */
    float *none[MAXIN] = {0};
    c->bwd(ops, none, Rd, in, out, c->arg);
    for (int i = 0; i < c->n_in; i++) {
        free(in_h[i]), free(d_h[i]), free(dacc_h[i]);
        ops_free(ops, in[i]), ops_free(ops, d[i]), ops_free(ops, dacc[i]);
    }
    free(out_h), free(R);
    ops_free(ops, out), ops_free(ops, Rd);
}

/* ---- matmul: in [M,K], w, bias [N] ---- */
typedef struct { int M, K, N; enum ops_weight_layout layout; } mm_arg;
static void mm_fwd(ops_ctx *ctx, float *const *in, float *out, const void *a)
{
    const mm_arg *m = a;
    ops_matmul(ctx, out, in[0], in[1], in[2], m->M, m->K, m->N, m->layout);
}
static void mm_bwd(ops_ctx *ctx, float *const *d, const float *dout, float *const *in, const float *out, const void *a)
{
    const mm_arg *m = a;
    ops_matmul_backward(ctx, d[0], d[1], d[2], dout, in[0], in[1], m->M, m->K, m->N, m->layout);
}

static void test_matmul(void)
{
    for (int layout = 0; layout < 2; layout++) {
        mm_arg a = {5, 7, 6, (enum ops_weight_layout)layout};
        op_case c = {layout ? "matmul KN" : "matmul NK", 3, {5 * 7, 7 * 6, 6}, 5 * 6, mm_fwd, mm_bwd, &a, -1, 1};
        check_case(&c);
    }
}

/* ---- layernorm: in [M,C], g, b ---- */
typedef struct { int M, C; float *mean, *rstd; } ln_arg; /* saved statistics in backend memory */
static void ln_fwd(ops_ctx *ctx, float *const *in, float *out, const void *a)
{
    ln_arg *l = (ln_arg *)a;
    ops_layernorm(ctx, out, l->mean, l->rstd, in[0], in[1], in[2], l->M, l->C, 1e-5f);
}
static void ln_bwd(ops_ctx *ctx, float *const *d, const float *dout, float *const *in, const float *out, const void *a)
{
    const ln_arg *l = a;
    ops_layernorm_backward(ctx, d[0], d[1], d[2], dout, in[0], in[1], l->mean, l->rstd, l->M, l->C);
}

static void test_layernorm(void)
{
    ln_arg a = {4, 9, dalloc(4), dalloc(4)};
    op_case c = {"layernorm", 3, {4 * 9, 9, 9}, 4 * 9, ln_fwd, ln_bwd, &a, -1, 1};
    check_case(&c);
    ops_free(ops, a.mean), ops_free(ops, a.rstd);
}

/* ---- elementwise ---- */
typedef struct { int kind; } ew_arg;
static void ew_fwd(ops_ctx *ctx, float *const *in, float *out, const void *a)
{
    int k = ((const ew_arg *)a)->kind;
    if (k == 0) ops_gelu_tanh(ctx, out, in[0], 40);
    if (k == 1) ops_tanh(ctx, out, in[0], 40);
    if (k == 2) ops_relu(ctx, out, in[0], 40);
}
static void ew_bwd(ops_ctx *ctx, float *const *d, const float *dout, float *const *in, const float *out, const void *a)
{
    int k = ((const ew_arg *)a)->kind;
    if (!d[0]) return; /* the elementwise ops have one, mandatory, gradient */
    if (k == 0) ops_gelu_tanh_backward(ctx, d[0], in[0], dout, 40);
    if (k == 1) ops_tanh_backward(ctx, d[0], out, dout, 40);
    if (k == 2) ops_relu_backward(ctx, d[0], in[0], dout, 40);
}

static void test_elementwise(void)
{
    const char *names[3] = {"gelu_tanh", "tanh", "relu"};
    for (int k = 0; k < 3; k++) {
        ew_arg a = {k};
        op_case c = {names[k], 1, {40}, 40, ew_fwd, ew_bwd, &a, -3, 3};
        check_case(&c);
    }
}

/* ---- attention: q [B,Tq,qs], kv [B,Tk,kvs] with k at column 0 and v at
 * column H·D of the same rows (the Transformer mapper's fused layout) ---- */
typedef struct { int B, Tq, Tk, H, D, qs, kvs, causal; float *probs; } att_arg; /* probs: backend memory */
static void att_fwd(ops_ctx *ctx, float *const *in, float *out, const void *a)
{
    att_arg *t = (att_arg *)a;
    ops_attention(ctx, out, t->probs, in[0], in[1], in[1] + t->H * t->D, t->B, t->Tq, t->Tk, t->H, t->D, t->qs,
                  t->kvs, t->causal, 0.7f);
}
static void att_bwd(ops_ctx *ctx, float *const *d, const float *dout, float *const *in, const float *out,
                    const void *a)
{
    const att_arg *t = a;
    float *dk = d[1], *dv = d[1] ? d[1] + t->H * t->D : NULL;
    ops_attention_backward(ctx, d[0], dk, dv, dout, t->probs, in[0], in[1], in[1] + t->H * t->D, t->B, t->Tq, t->Tk,
                           t->H, t->D, t->qs, t->kvs, 0.7f);
}

static void test_attention(void)
{
    /* causal self-attention, no mask, and a query block after a cache */
    att_arg cases[3] = {
        {2, 5, 5, 2, 3, 7, 12, 1, NULL},
        {2, 5, 5, 2, 3, 6, 12, 0, NULL},
        {2, 2, 5, 2, 3, 6, 12, 1, NULL},
    };
    const char *names[3] = {"attention causal", "attention full", "attention cached"};
    for (int i = 0; i < 3; i++) {
        att_arg *t = &cases[i];
        t->probs = dalloc((size_t)t->B * t->H * t->Tq * t->Tk);
        op_case c = {names[i], 2,  {(size_t)t->B * t->Tq * t->qs, (size_t)t->B * t->Tk * t->kvs},
                     (size_t)t->B * t->Tq * t->H * t->D, att_fwd, att_bwd, t, -1.5f, 1.5f};
        check_case(&c);
        ops_free(ops, t->probs);
    }
}

/* ---- gather rows (embedding) ---- */
static const int32_t gather_ids[6] = {3, 1, 3, 0, 4, 1};
static void ga_fwd(ops_ctx *ctx, float *const *in, float *out, const void *a)
{
    ops_gather_rows(ctx, out, in[0], gather_ids, 6, 5);
}
static void ga_bwd(ops_ctx *ctx, float *const *d, const float *dout, float *const *in, const float *out, const void *a)
{
    if (d[0]) ops_scatter_add_rows(ctx, d[0], dout, gather_ids, 6, 5);
}

static void test_scatter_add(void)
{
    op_case c = {"gather/scatter_add", 1, {5 * 5}, 6 * 5, ga_fwd, ga_bwd, NULL, -1, 1};
    check_case(&c);
}

/* ---- cross-entropy: out = per-row losses, one row ignored ---- */
static const int32_t ce_targets[4] = {2, -1, 0, 6};
static void ce_fwd(ops_ctx *ctx, float *const *in, float *out, const void *a)
{
    ops_cross_entropy(ctx, out, in[0], ce_targets, 4, 7);
}
static void ce_bwd(ops_ctx *ctx, float *const *d, const float *dout, float *const *in, const float *out, const void *a)
{
    /* f = Σ_i R_i loss_i: row i's gradient is R_i · (softmax − onehot) */
    if (!d[0]) return;
    float r[4]; /* the scales are host floats */
    ops_download(ctx, r, dout, 4);
    for (int i = 0; i < 4; i++) {
        int32_t t = ce_targets[i];
        ops_cross_entropy_backward(ctx, d[0] + i * 7, in[0] + i * 7, &t, 1, 7, r[i]);
    }
}

static void test_cross_entropy(void)
{
    op_case c = {"cross_entropy", 1, {4 * 7}, 4, ce_fwd, ce_bwd, NULL, -3, 3};
    check_case(&c);
}

int main(void)
{
    err_t e = {0};
    if (ops_create(&ops, 2, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    CHECK_RUN(test_matmul);
    CHECK_RUN(test_layernorm);
    CHECK_RUN(test_elementwise);
    CHECK_RUN(test_attention);
    CHECK_RUN(test_scatter_add);
    CHECK_RUN(test_cross_entropy);
    ops_destroy(ops);
    return check_summary();
}
