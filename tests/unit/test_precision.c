/* Reduced precision (ops_ext.h) against PyTorch
 * (tests/gen/gen_precision_fixtures.py -> tests/fixtures/precision/):
 * one GEMM forward and backward and the tiny CLIP tower, at bf16 and fp16,
 * through the backend's native path where it has one and through the
 * emulation (CLIPCAP_LOWP=emulate) always, so every precision is tested on
 * any machine.
 *
 * Tolerances. GEMM: per element 1e-5 + 1e-5·|torch|, the float32 tests'
 * (test_ops_forward.c): both sides sum the same exact products of the same
 * rounded operands in float32, in different orders. Tower: per image
 * max|ours - torch| / max|torch| <= 1e-4 (bf16) and 1.5e-4 (fp16): our
 * float32 activations differ from torch's by ~1e-7, which moves a value
 * across a rounding boundary now and then, each such flip a change of one
 * bf16/fp16 step in one operand (measured: bf16 0 to 3e-8, fp16 0 to
 * 9.5e-5). Each check also asserts that the float32 result is farther from
 * the reference than that (measured 1.5e-3 to 1.7e-3 bf16, 2.3e-4 to 4.2e-4
 * fp16): the fixture tells the precisions apart.
 *
 * Accuracy against float32 (the bar, docs/nn.md): cosine of every
 * embedding with the float32 one >= 0.999 (bf16), >= 0.9999 (fp16). */
#include "check.h"
#include "io/safetensors.h"
#include "nn/clip_vit.h"
#include "nn/ops.h"
#include "nn/ops_ext.h"
#include "nn_fixture.h"

static st_file *fx;
static int cpu_backend;

/* A context at precision p, emulated or the backend's best. */
static ops_ctx *make_ctx(enum ops_precision p, int emulate)
{
    if (emulate) setenv("CLIPCAP_LOWP", "emulate", 1);
    ops_ctx *o = NULL;
    err_t e = {0};
    CHECK_OK(ops_create(&o, 2, &e), &e);
    if (o) CHECK_OK(ops_set_precision(o, p, &e), &e);
    unsetenv("CLIPCAP_LOWP");
    return o;
}

static int within(const float *a, const float *ref, size_t n, float atol, float rtol)
{
    for (size_t i = 0; i < n; i++)
        if (!(fabsf(a[i] - ref[i]) <= atol + rtol * fabsf(ref[i]))) return 0;
    return 1;
}

enum { M = 37, K = 70, N = 45 };

/* out = in·Wᵀ + b in both layouts, din and dW accumulated onto ones, and
 * the same again with W registered (its copy must follow a re-upload). */
static void check_gemm(ops_ctx *o, const char *prec, int expect_match)
{
    char name[64];
    float *x = fx_st_floats(fx, "mm.in", NULL), *wnk = fx_st_floats(fx, "mm.w_nk", NULL), *wkn = fx_st_floats(fx, "mm.w_kn", NULL);
    float *b = fx_st_floats(fx, "mm.bias", NULL), *dout = fx_st_floats(fx, "mm.dout", NULL);
    snprintf(name, sizeof name, "mm.%s.out", prec);
    float *ref_out = fx_st_floats(fx, name, NULL);
    snprintf(name, sizeof name, "mm.%s.din", prec);
    float *ref_din = fx_st_floats(fx, name, NULL);
    float *ref_dw[2];
    snprintf(name, sizeof name, "mm.%s.dw_nk", prec);
    ref_dw[0] = fx_st_floats(fx, name, NULL);
    snprintf(name, sizeof name, "mm.%s.dw_kn", prec);
    ref_dw[1] = fx_st_floats(fx, name, NULL);
    if (!x || !wnk || !wkn || !b || !dout || !ref_out || !ref_din || !ref_dw[0] || !ref_dw[1]) return;
    float *dx = fx_upload(o, x, M * K), *db = fx_upload(o, b, N), *ddout = fx_upload(o, dout, M * N);
    float *dout_ = ops_alloc(o, M * N, NULL), *din = ops_alloc(o, M * K, NULL), *dw = ops_alloc(o, N * K, NULL);
    float h_out[M * N], h_din[M * K], h_dw[N * K], ones[N * K];
    for (int i = 0; i < N * K; i++) ones[i] = 1.0f;
    for (int reg = 0; reg < 2; reg++)
        for (int layout = 0; layout < 2; layout++) {
            const float *w = layout == OPS_W_NK ? wnk : wkn;
            float *dwt = ops_alloc(o, N * K, NULL);
            err_t e = {0};
            if (reg) {
                CHECK_OK(ops_register_weights(o, dwt, N * K, &e), &e);
                /* a first use with other values, then the real ones */
                ops_fill(o, dwt, 0.5f, N * K);
                ops_matmul(o, dout_, dx, dwt, db, M, K, N, (enum ops_weight_layout)layout);
            }
            ops_upload(o, dwt, w, N * K);
            ops_matmul(o, dout_, dx, dwt, db, M, K, N, (enum ops_weight_layout)layout);
            ops_download(o, h_out, dout_, M * N);
            ops_upload(o, din, ones, M * K);
            ops_upload(o, dw, ones, N * K);
            ops_matmul_backward(o, din, dw, NULL, ddout, dx, dwt, M, K, N, (enum ops_weight_layout)layout);
            ops_download(o, h_din, din, M * K);
            ops_download(o, h_dw, dw, N * K);
            for (int i = 0; i < M * K; i++) h_din[i] -= 1.0f;
            for (int i = 0; i < N * K; i++) h_dw[i] -= 1.0f;
            int ok_out = within(h_out, ref_out, M * N, 1e-5f, 1e-5f);
            /* the accumulation onto 1 costs the +=-ed value an ulp of 1 */
            int ok_din = within(h_din, ref_din, M * K, 1e-5f + 1.2e-7f, 1e-5f);
            int ok_dw = within(h_dw, ref_dw[layout], N * K, 1e-5f + 1.2e-7f, 1e-5f);
            CHECK_MSG(ok_out == expect_match && ok_din == expect_match && ok_dw == expect_match,
                      "%s (%s) layout %d registered %d: out %d din %d dw %d, expected %d", prec,
                      ops_precision_impl(o), layout, reg, ok_out, ok_din, ok_dw, expect_match);
            ops_free(o, dwt);
        }
    ops_free(o, dx), ops_free(o, db), ops_free(o, ddout), ops_free(o, dout_), ops_free(o, din), ops_free(o, dw);
    free(x), free(wnk), free(wkn), free(b), free(dout), free(ref_out), free(ref_din), free(ref_dw[0]), free(ref_dw[1]);
}

static void test_gemm(void)
{
    const struct {
        enum ops_precision p;
        const char *name;
    } precs[] = {{OPS_BF16, "bf16"}, {OPS_FP16, "fp16"}};
    for (int i = 0; i < 2; i++)
        for (int emulate = 0; emulate < 2; emulate++) {
            ops_ctx *o = make_ctx(precs[i].p, emulate);
            if (!o) continue;
            fprintf(stderr, "  %s\n", ops_precision_impl(o));
            check_gemm(o, precs[i].name, 1);
            ops_destroy(o);
        }
    /* float32 (and tf32, float32 on the CPU) must miss the rounded
     * reference: the fixture separates the precisions */
    for (int i = 0; i < 2; i++) {
        ops_ctx *o = make_ctx(OPS_FP32, 0);
        if (o) check_gemm(o, precs[i].name, 0);
        ops_destroy(o);
    }
}

static float cosine(const float *a, const float *b, int n)
{
    double ab = 0, aa = 0, bb = 0;
    for (int i = 0; i < n; i++) ab += (double)a[i] * b[i], aa += (double)a[i] * a[i], bb += (double)b[i] * b[i];
    return (float)(ab / sqrt(aa * bb));
}

/* The tiny tower at precision p; out [3,16]; fingerprint into fp. */
static int embed(enum ops_precision p, int emulate, const float *images, float *out, char fp[33], char impl[96])
{
    char dir[4096];
    err_t e = {0};
    ops_ctx *o = make_ctx(p, emulate);
    clip_vit *m = NULL;
    int rc = o ? clip_vit_load(&m, o, check_fixture(dir, sizeof dir, "clip/tiny"), 3, &e) : -1;
    CHECK_OK(rc, &e);
    if (!rc) rc = clip_vit_forward(m, images, 3, out, &e);
    if (!rc) snprintf(fp, 33, "%s", clip_vit_fingerprint(m));
    if (o) snprintf(impl, 96, "%s", ops_precision_impl(o));
    clip_vit_free(m);
    ops_destroy(o);
    return rc;
}

static float rel_err(const float *a, const float *ref, int n)
{
    return fx_max_abs_diff(a, ref, (size_t)n) / fx_max_abs(ref, (size_t)n);
}

static void test_clip_tower(void)
{
    char io[4096], fp32fp[33] = "", fp[33] = "", impl[96] = "";
    err_t e = {0};
    st_file *f = NULL;
    CHECK_OK(st_open(&f, check_fixture(io, sizeof io, "clip/tiny_io.safetensors"), &e), &e);
    if (!f) return;
    float *images = fx_st_floats(f, "images", NULL), *ref32 = fx_st_floats(f, "embed", NULL);
    float e32[48], out[48];
    if (!images || !ref32 || embed(OPS_FP32, 0, images, e32, fp32fp, impl)) goto done;
    const struct {
        enum ops_precision p;
        const char *ref;
        float tol, cos_min;
    } precs[] = {{OPS_BF16, "clip.bf16", 1e-4f, 0.999f}, {OPS_FP16, "clip.fp16", 1.5e-4f, 0.9999f}};
    for (int i = 0; i < 2; i++) {
        float *ref = fx_st_floats(fx, precs[i].ref, NULL);
        if (!ref) continue;
        for (int emulate = 0; emulate < 2; emulate++) {
            if (embed(precs[i].p, emulate, images, out, fp, impl)) continue;
            CHECK_MSG(strcmp(fp, fp32fp) != 0, "%s: same fingerprint as fp32", impl);
            for (int b = 0; b < 3; b++) {
                float r = rel_err(out + b * 16, ref + b * 16, 16), r32 = rel_err(e32 + b * 16, ref + b * 16, 16);
                float c = cosine(out + b * 16, e32 + b * 16, 16);
                fprintf(stderr, "  %s image %d: vs torch %.2e (fp32 vs torch %.2e), cosine with fp32 %.7f\n", impl, b,
                        r, r32, c);
                CHECK_MSG(r <= precs[i].tol, "%s image %d: %.2e", impl, b, r);
                CHECK_MSG(r32 > precs[i].tol, "fp32 image %d within %s's tolerance: the fixture does not discriminate", b,
                          impl);
                CHECK_MSG(c >= precs[i].cos_min, "%s image %d: cosine %.7f", impl, b, c);
            }
        }
        free(ref);
    }
    /* tf32 on the CPU computes fp32 bit for bit, but is another fingerprint */
    if (!embed(OPS_TF32, 0, images, out, fp, impl)) {
        CHECK(strcmp(fp, fp32fp) != 0);
        if (cpu_backend) CHECK(memcmp(out, e32, sizeof out) == 0);
    }
done:
    free(images), free(ref32);
    st_close(f);
}

static void test_api(void)
{
    enum ops_precision p = OPS_FP32;
    err_t e = {0};
    const char *names[] = {"fp32", "tf32", "bf16", "fp16"};
    for (int i = 0; i < 4; i++) {
        CHECK(ops_precision_parse(names[i], &p, &e) == 0 && (int)p == i);
        CHECK(!strcmp(ops_precision_name(p), names[i]));
    }
    CHECK(ops_precision_parse("float16", &p, &e) == ERR_ARG && strstr(e.msg, "fp32, tf32, bf16 or fp16"));
    ops_ctx *o = make_ctx(OPS_BF16, 0);
    if (!o) return;
    float *w = ops_alloc(o, 64, &e);
    CHECK_OK(ops_register_weights(o, w, 64, &e), &e);
    CHECK(ops_set_precision(o, OPS_FP16, &e) == ERR_ARG); /* after registering */
    CHECK(ops_register_weights(o, w + 8, 8, &e) != 0);    /* overlaps */
    ops_free(o, w);
    CHECK_OK(ops_set_precision(o, OPS_FP16, &e), &e); /* ops_free dropped the range */
    ops_destroy(o);
}

int main(void)
{
    char path[4096];
    err_t e = {0};
    CHECK_OK(st_open(&fx, check_fixture(path, sizeof path, "precision/ref.safetensors"), &e), &e);
    if (!fx) return check_summary();
    ops_ctx *o = make_ctx(OPS_FP32, 0);
    cpu_backend = o && !strcmp(ops_backend_name(o), "cpu");
    ops_destroy(o);
    CHECK_RUN(test_api);
    CHECK_RUN(test_gemm);
    CHECK_RUN(test_clip_tower);
    st_close(fx);
    return check_summary();
}
