/* The backend's forward ops against PyTorch (tests/gen/gen_clip_fixtures.py
 * → tests/fixtures/clip/ops_forward.safetensors): each op on the generator's
 * inputs must reproduce torch's output.
 *
 * Tolerance: per element |ours - torch| <= 1e-5 + 1e-5·|torch|. Both sides
 * are float32; what differs is summation order (BLAS blocking, SIMD
 * reductions) and libm vs torch's vectorised exp/tanh/erf, each worth a few
 * ulp on values of order 1 (inputs are randn-scaled, reductions are at most
 * 50 long). A wrong index, layout or formula is off by far more.
 *
 * Backend-agnostic: inputs are uploaded into ops_alloc memory and outputs
 * downloaded (index arrays stay on the host, as ops.h says), so the same
 * test checks the CUDA backend when built with CLIPCAP_CUDA. */
#include "check.h"
#include "io/safetensors.h"
#include "nn_fixture.h"
#include "nn/ops.h"
#include "nn/ops_ext.h"

static st_file *fx;
static ops_ctx *ops;

static float *dalloc(size_t n)
{
    err_t e = {0};
    float *d = ops_alloc(ops, n, &e);
    CHECK_MSG(d != NULL, "%s", e.msg);
    return d;
}

/* A fixture tensor as malloc'd floats (integer dtypes converted too). */
static float *get(const char *name, size_t *count) { return fx_st_floats(fx, name, count); }

/* The same in backend memory (free with ops_free). */
static float *dget(const char *name, size_t *count)
{
    size_t n = 0;
    float *h = get(name, &n);
    if (!h) return NULL;
    float *d = dalloc(n);
    ops_upload(ops, d, h, n);
    free(h);
    if (count) *count = n;
    return d;
}

static int32_t *get_i32(const char *name, size_t *count)
{
    float *f = get(name, count);
    int32_t *v = malloc(*count * sizeof(int32_t));
    for (size_t i = 0; i < *count; i++) v[i] = (int32_t)f[i];
    free(f);
    return v;
}

/* Compare n host floats of ours against the fixture tensor ref_name. */
static void expect_close_host(const char *what, const float *ours, const char *ref_name, size_t n)
{
    size_t rn = 0;
    float *ref = get(ref_name, &rn);
    if (!ref) return;
    CHECK_MSG(rn == n, "%s: %zu values, fixture has %zu", what, n, rn);
    size_t worst = 0;
    double worst_excess = -1.0;
    for (size_t i = 0; i < n && i < rn; i++) {
        double excess = fabs((double)ours[i] - ref[i]) - (1e-5 + 1e-5 * fabs(ref[i]));
        if (excess > worst_excess) worst_excess = excess, worst = i;
    }
    CHECK_MSG(worst_excess <= 0.0, "%s: element %zu is %.8g, torch says %.8g", what, worst, ours[worst], ref[worst]);
    free(ref);
}

/* The same for n floats of backend memory. */
static void expect_close(const char *what, const float *ours_dev, const char *ref_name, size_t n)
{
    float *h = malloc((n ? n : 1) * sizeof *h);
    ops_download(ops, h, ours_dev, n);
    expect_close_host(what, h, ref_name, n);
    free(h);
}

static void test_matmul_both_layouts(void)
{
    const int M = 13, K = 37, N = 19;
    float *in = dget("matmul.in", NULL), *wnk = dget("matmul.w_nk", NULL), *wkn = dget("matmul.w_kn", NULL);
    float *bias = dget("matmul.bias", NULL);
    float *out = dalloc((size_t)M * N);
    ops_matmul(ops, out, in, wnk, NULL, M, K, N, OPS_W_NK);
    expect_close("matmul NK", out, "matmul.out", (size_t)M * N);
    ops_matmul(ops, out, in, wkn, NULL, M, K, N, OPS_W_KN);
    expect_close("matmul KN", out, "matmul.out", (size_t)M * N);
    /* forward WRITES: stale values in out must not leak into the result */
    ops_fill(ops, out, 1e6f, (size_t)M * N);
    ops_matmul(ops, out, in, wnk, bias, M, K, N, OPS_W_NK);
    expect_close("matmul NK+bias", out, "matmul.out_bias", (size_t)M * N);
    ops_fill(ops, out, 1e6f, (size_t)M * N);
    ops_matmul(ops, out, in, wkn, bias, M, K, N, OPS_W_KN);
    expect_close("matmul KN+bias", out, "matmul.out_bias", (size_t)M * N);
    ops_free(ops, in), ops_free(ops, wnk), ops_free(ops, wkn), ops_free(ops, bias), ops_free(ops, out);
}

/* Sizes where the GEMM is split across threads, by columns and by rows. */
static void test_matmul_split(void)
{
    static const struct {
        const char *tag;
        int M, K, N;
    } cases[] = {{"wide", 70, 64, 300}, {"tall", 300, 64, 40}};
    for (int c = 0; c < 2; c++) {
        char name[64], ref[64];
        const int M = cases[c].M, K = cases[c].K, N = cases[c].N;
        snprintf(name, sizeof name, "matmul_%s.in", cases[c].tag);
        float *in = dget(name, NULL);
        snprintf(name, sizeof name, "matmul_%s.w_nk", cases[c].tag);
        float *wnk = dget(name, NULL);
        snprintf(name, sizeof name, "matmul_%s.w_kn", cases[c].tag);
        float *wkn = dget(name, NULL);
        snprintf(name, sizeof name, "matmul_%s.bias", cases[c].tag);
        float *bias = dget(name, NULL);
        snprintf(ref, sizeof ref, "matmul_%s.out_bias", cases[c].tag);
        float *out = dalloc((size_t)M * N);
        ops_matmul(ops, out, in, wnk, bias, M, K, N, OPS_W_NK);
        expect_close(ref, out, ref, (size_t)M * N);
        ops_matmul(ops, out, in, wkn, bias, M, K, N, OPS_W_KN);
        expect_close(ref, out, ref, (size_t)M * N);
        ops_free(ops, in), ops_free(ops, wnk), ops_free(ops, wkn), ops_free(ops, bias), ops_free(ops, out);
    }
}

static void test_layernorm(void)
{
    const int M = 6, C = 50;
    float *in = dget("ln.in", NULL), *g = dget("ln.g", NULL), *b = dget("ln.b", NULL);
    float *out = dalloc((size_t)M * C), *mean = dalloc(M), *rstd = dalloc(M);
    ops_layernorm(ops, out, mean, rstd, in, g, b, M, C, 1e-5f);
    expect_close("layernorm", out, "ln.out", (size_t)M * C);
    expect_close("layernorm mean", mean, "ln.mean", M);
    expect_close("layernorm rstd", rstd, "ln.rstd", M);
    ops_layernorm(ops, out, NULL, NULL, in, g, b, M, C, 1e-5f); /* inference: no saved stats */
    expect_close("layernorm (no stats)", out, "ln.out", (size_t)M * C);
    ops_free(ops, in), ops_free(ops, g), ops_free(ops, b), ops_free(ops, out), ops_free(ops, mean), ops_free(ops, rstd);
}

static void test_elementwise(void)
{
    size_t n = 0;
    float *x = dget("ew.x", &n), *y = dget("ew.y", NULL);
    float *out = dalloc(n);
    ops_add(ops, out, x, y, n);
    expect_close("add", out, "ew.add", n);
    static const struct {
        const char *name, *want;
        void (*fn)(ops_ctx *, float *, const float *, size_t);
    } unary[] = {
        {"gelu_tanh", "ew.gelu_tanh", ops_gelu_tanh}, {"gelu_erf", "ew.gelu_erf", ops_gelu_erf},
        {"quick_gelu", "ew.quick_gelu", ops_quick_gelu}, {"tanh", "ew.tanh", ops_tanh},
        {"relu", "ew.relu", ops_relu},
    };
    for (size_t i = 0; i < sizeof unary / sizeof unary[0]; i++) {
        unary[i].fn(ops, out, x, n);
        expect_close(unary[i].name, out, unary[i].want, n);
    }
    ops_copy(ops, out, x, n);
    ops_scale(ops, out, 0.37f, n);
    expect_close("scale", out, "ew.scale", n);
    float ss = (float)ops_sum_squares(ops, x, n);
    expect_close_host("sum_squares", &ss, "ew.sum_squares", 1);
    /* in-place add (out aliases a) */
    ops_copy(ops, out, x, n);
    ops_add(ops, out, out, y, n);
    expect_close("add in place", out, "ew.add", n);
    ops_free(ops, x), ops_free(ops, y), ops_free(ops, out);
}

static void test_attention_fused_qkv(void)
{
    const int B = 2, H = 3, D = 8, T = 5, C = H * D;
    float *qkv = dget("attn.qkv", NULL);
    float *out = dalloc((size_t)B * T * C), *probs = dalloc((size_t)B * H * T * T);
    ops_attention(ops, out, probs, qkv, qkv + C, qkv + 2 * C, B, T, T, H, D, 3 * C, 3 * C, 0,
                  1.0f / sqrtf((float)D));
    expect_close("attention out", out, "attn.out", (size_t)B * T * C);
    expect_close("attention probs", probs, "attn.probs", (size_t)B * H * T * T);
    ops_attention(ops, out, NULL, qkv, qkv + C, qkv + 2 * C, B, T, T, H, D, 3 * C, 3 * C, 0, 1.0f / sqrtf((float)D));
    expect_close("attention out (no probs)", out, "attn.out", (size_t)B * T * C);
    ops_free(ops, qkv), ops_free(ops, out), ops_free(ops, probs);
}

static void test_attention_causal_cache(void)
{
    /* 3 queries appended after 4 cached positions: query i sees keys <= i+4 */
    const int B = 2, H = 3, D = 8, Tq = 3, Tk = 7, C = H * D;
    float *q = dget("attnc.q", NULL), *kv = dget("attnc.kv", NULL);
    float *out = dalloc((size_t)B * Tq * C), *probs = dalloc((size_t)B * H * Tq * Tk);
    ops_fill(ops, probs, 7.0f, (size_t)B * H * Tq * Tk);
    ops_attention(ops, out, probs, q, kv, kv + C, B, Tq, Tk, H, D, C, 2 * C, 1, 1.0f / sqrtf((float)D));
    expect_close("causal attention out", out, "attnc.out", (size_t)B * Tq * C);
    expect_close("causal attention probs", probs, "attnc.probs", (size_t)B * H * Tq * Tk);
    ops_free(ops, q), ops_free(ops, kv), ops_free(ops, out), ops_free(ops, probs);
}

static void test_attention_long(void)
{
    const int H = 2, D = 16, T = 300, C = H * D;
    float *q = dget("attnl.q", NULL), *kv = dget("attnl.kv", NULL);
    float *out = dalloc((size_t)T * C), *probs = dalloc((size_t)H * T * T);
    for (int causal = 0; causal < 2; causal++) {
        char ref[32];
        snprintf(ref, sizeof ref, "attnl.out%d", causal);
        ops_attention(ops, out, NULL, q, kv, kv + C, 1, T, T, H, D, C, 2 * C, causal, 1.0f / sqrtf((float)D));
        expect_close("long attention (chunked)", out, ref, (size_t)T * C);
        ops_attention(ops, out, probs, q, kv, kv + C, 1, T, T, H, D, C, 2 * C, causal, 1.0f / sqrtf((float)D));
        expect_close("long attention (probs)", out, ref, (size_t)T * C);
    }
    ops_free(ops, q), ops_free(ops, kv), ops_free(ops, out), ops_free(ops, probs);
}

static void test_gather_im2patch(void)
{
    size_t n = 0;
    float *table = dget("gather.table", NULL);
    int32_t *ids = get_i32("gather.ids", &n);
    float *out = dalloc(n * 6);
    ops_gather_rows(ops, out, table, ids, (int)n, 6);
    expect_close("gather_rows", out, "gather.out", n * 6);
    ops_free(ops, table), free(ids), ops_free(ops, out);

    float *img = dget("im2patch.images", NULL);
    float *patches = dalloc(2 * 16 * 48);
    ops_im2patch(ops, patches, img, 2, 16, 4);
    expect_close("im2patch", patches, "im2patch.out", 2 * 16 * 48);
    ops_free(ops, img), ops_free(ops, patches);
}

/* A pure copy, so the reference is the definition itself: row i of src
 * (stride 7, 5 floats used) lands at row rows[i] of dst (stride 6), every
 * other float of dst keeps its fill. */
static void test_scatter_rows(void)
{
    enum { N = 4, C = 5, SS = 7, DS = 6, DR = 9 };
    const int32_t rows[N] = {7, 0, 3, 8};
    float src[N * SS], want[DR * DS], got[DR * DS];
    for (int i = 0; i < N * SS; i++) src[i] = (float)(i + 1);
    for (int i = 0; i < DR * DS; i++) want[i] = -7.0f;
    for (int i = 0; i < N; i++)
        for (int c = 0; c < C; c++) want[rows[i] * DS + c] = src[i * SS + c];
    float *dsrc = dalloc(N * SS), *ddst = dalloc(DR * DS);
    ops_upload(ops, dsrc, src, N * SS);
    ops_fill(ops, ddst, -7.0f, DR * DS);
    ops_scatter_rows(ops, ddst, DS, rows, dsrc, SS, N, C);
    ops_download(ops, got, ddst, DR * DS);
    CHECK_MSG(!memcmp(got, want, sizeof want), "scatter_rows: dst differs from the rows it was given");
    ops_free(ops, dsrc), ops_free(ops, ddst);
}

static void test_cross_entropy(void)
{
    size_t m = 0;
    float *logits = dget("ce.logits", NULL);
    int32_t *tg = get_i32("ce.targets", &m);
    float *losses = dalloc(6);
    float mean = ops_cross_entropy(ops, losses, logits, tg, (int)m, 11);
    expect_close("cross_entropy losses", losses, "ce.losses", m);
    expect_close_host("cross_entropy mean", &mean, "ce.mean", 1);
    int32_t none[6] = {-1, -1, -1, -1, -1, -1};
    CHECK(ops_cross_entropy(ops, losses, logits, none, 6, 11) == 0.0f);
    ops_free(ops, logits), free(tg), ops_free(ops, losses);
}

static void test_adamw(void)
{
    size_t n = 0;
    float *p = dget("adamw.p0", &n), *grads = dget("adamw.grads", NULL);
    float *m = dalloc(n), *v = dalloc(n); /* zeroed */
    for (int s = 0; s < 3; s++) ops_adamw(ops, p, grads + s * n, m, v, n, 1e-2f, 0.9f, 0.999f, 1e-6f, 0.1f, s + 1);
    expect_close("adamw params", p, "adamw.p3", n);
    expect_close("adamw m", m, "adamw.m3", n);
    expect_close("adamw v", v, "adamw.v3", n);
    ops_free(ops, p), ops_free(ops, grads), ops_free(ops, m), ops_free(ops, v);
}

static void test_memory(void)
{
    err_t e = {0};
    float *a = ops_alloc(ops, 1000, &e);
    CHECK(a != NULL && ((uintptr_t)a % 64) == 0);
    float *h = malloc(1000 * sizeof *h);
    ops_download(ops, h, a, 1000);
    int zero = 1;
    for (int i = 0; i < 1000; i++) zero &= h[i] == 0.0f;
    CHECK(zero);
    free(h);
    float host[4] = {1, 2, 3, 4}, back[4] = {0};
    ops_upload(ops, a, host, 4);
    ops_download(ops, back, a, 4);
    CHECK(!memcmp(host, back, sizeof host));
    ops_free(ops, a);
    CHECK(ops_alloc(ops, SIZE_MAX / 2, &e) == NULL && e.code == ERR_NOMEM);
    CHECK(!strcmp(ops_backend_name(ops), "cpu") || !strcmp(ops_backend_name(ops), "cuda"));
}

int main(void)
{
    char path[4096];
    err_t e = {0};
    if (st_open(&fx, check_fixture(path, sizeof path, "clip/ops_forward.safetensors"), &e) != 0 ||
        ops_create(&ops, 0, &e) != 0) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    CHECK_RUN(test_matmul_both_layouts);
    CHECK_RUN(test_matmul_split);
    CHECK_RUN(test_layernorm);
    CHECK_RUN(test_elementwise);
    CHECK_RUN(test_attention_fused_qkv);
    CHECK_RUN(test_attention_causal_cache);
    CHECK_RUN(test_attention_long);
    CHECK_RUN(test_gather_im2patch);
    CHECK_RUN(test_scatter_rows);
    CHECK_RUN(test_cross_entropy);
    CHECK_RUN(test_adamw);
    CHECK_RUN(test_memory);
    ops_destroy(ops);
    st_close(fx);
    return check_summary();
}
