/* Both ClipCap mappers alone against tests/gen/gen_train_fixtures.py (plain
 * PyTorch from the facts file): outputs for a batch of CLIP embeddings and
 * every parameter gradient for a fixed upstream gradient.
 * Tolerances: outputs 1e-5 and gradients 1e-4 relative to the tensor's
 * largest magnitude (fp32, a different reduction order than PyTorch's).
 * Mapper inputs and outputs are backend memory (uploaded/downloaded). */
#include "io/tensorfile.h"
#include "nn/mapper_mlp.h"
#include "nn/mapper_transformer.h"
#include "nn/ops.h"
#include "nn_fixture.h"

enum { B = 3, D = 24, E = 32, K = 4, CLIP_LEN = 3, LAYERS = 2 };

static int load(ops_ctx *ctx, const char *file, st_entry *en, int n)
{
    char rel[128], path[4096];
    snprintf(rel, sizeof rel, "train/%s", file);
    check_fixture(path, sizeof path, rel);
    tensorfile *tf = NULL;
    err_t e = {0};
    int rc = tensorfile_open(&tf, path, &e);
    if (!rc) rc = param_entries_load(ctx, tf, en, n, &e);
    CHECK_MSG(rc == 0, "%s", e.msg);
    tensorfile_close(tf);
    return rc;
}

/* forward, backward with the fixture's dout, compare */
static void check_mapper(const char *name, size_t n_params, int n_entries,
                         int (*entries)(const void *cfg, float *base, st_entry *out, char (*names)[PARAM_NAME_MAX]),
                         const void *cfg, void *m, int (*fwd)(void *m, float *out, const float *clip, int B),
                         void (*bwd)(void *m, const float *dout, const float *clip), float *params, float *grads,
                         ops_ctx *ctx)
{
    st_entry en[64];
    char names[64][PARAM_NAME_MAX];
    CHECK(entries(cfg, params, NULL, NULL) == n_entries);
    entries(cfg, params, en, names);
    char file[128];
    snprintf(file, sizeof file, "mapper_%s.safetensors", name);
    if (load(ctx, file, en, n_entries)) return;
    size_t n = 0;
    float *clip = fx_npy("clip.npy", &n), *dout = fx_npy("mapper_dout.npy", &n);
    snprintf(file, sizeof file, "mapper_%s_out.npy", name);
    float *ref = fx_npy(file, &n);
    CHECK(n == (size_t)B * K * E);
    float *clip_d = fx_upload(ctx, clip, (size_t)B * D), *dout_d = fx_upload(ctx, dout, n);
    float *out_d = ops_alloc(ctx, n, NULL);
    CHECK(fwd(m, out_d, clip_d, B) == 0);
    float *out = fx_download(ctx, out_d, n);
    float err = fx_max_abs_diff(out, ref, n);
    CHECK_MSG(err <= 1e-5f * fx_max_abs(ref, n), "%s mapper output max abs error %g", name, err);
    bwd(m, dout_d, clip_d);
    entries(cfg, grads, en, names);
    snprintf(file, sizeof file, "mapper_%s_grads.safetensors", name);
    CHECK(fx_compare_entries(ctx, file, en, n_entries, 1e-7f, 1e-4f, 0) == n_entries);
    (void)n_params;
    free(clip);
    free(dout);
    free(ref);
    free(out);
    ops_free(ctx, clip_d);
    ops_free(ctx, dout_d);
    ops_free(ctx, out_d);
}

/* adapters so both mappers go through one checker */
static int mlp_entries(const void *c, float *b, st_entry *o, char (*nm)[PARAM_NAME_MAX])
{
    return mapper_mlp_tensor_entries(c, b, o, nm);
}
static int mlp_fwd(void *m, float *out, const float *clip, int b) { return mapper_mlp_forward(m, out, clip, b, NULL); }
static void mlp_bwd(void *m, const float *dout, const float *clip) { mapper_mlp_backward(m, dout, clip); }
static int tf_entries(const void *c, float *b, st_entry *o, char (*nm)[PARAM_NAME_MAX])
{
    return mapper_tf_tensor_entries(c, b, o, nm);
}
static int tf_fwd(void *m, float *out, const float *clip, int b) { return mapper_tf_forward(m, out, clip, b, NULL); }
static void tf_bwd(void *m, const float *dout, const float *clip) { mapper_tf_backward(m, dout, clip); }

static void test_mlp(void)
{
    ops_ctx *ctx = NULL;
    err_t e = {0};
    CHECK_OK(ops_create(&ctx, 0, &e), &e);
    mapper_mlp_config c = {D, E, K};
    size_t n = mapper_mlp_param_count(&c);
    CHECK(n == (size_t)(E * K / 2) * D + E * K / 2 + (size_t)E * K * (E * K / 2) + E * K);
    float *p = ops_alloc(ctx, n, &e), *g = ops_alloc(ctx, n, &e);
    mapper_mlp m;
    mapper_mlp_init(&m, ctx, &c, p, g);
    check_mapper("mlp", n, 4, mlp_entries, &c, &m, mlp_fwd, mlp_bwd, p, g, ctx);
    mapper_mlp_free(&m);
    ops_free(ctx, p);
    ops_free(ctx, g);
    ops_destroy(ctx);
}

static void test_transformer(void)
{
    ops_ctx *ctx = NULL;
    err_t e = {0};
    CHECK_OK(ops_create(&ctx, 0, &e), &e);
    mapper_tf_config c = {D, E, K, CLIP_LEN, LAYERS, 8};
    size_t n = mapper_tf_param_count(&c);
    size_t per_layer = 4 * E + (size_t)E * E * 4 + E + (size_t)2 * E * E * 2 + 2 * E + E;
    CHECK(n == (size_t)CLIP_LEN * E * D + CLIP_LEN * E + K * E + LAYERS * per_layer);
    float *p = ops_alloc(ctx, n, &e), *g = ops_alloc(ctx, n, &e);
    mapper_tf m;
    mapper_tf_init(&m, ctx, &c, p, g);
    check_mapper("transformer", n, 3 + 12 * LAYERS, tf_entries, &c, &m, tf_fwd, tf_bwd, p, g, ctx);
    mapper_tf_free(&m);
    ops_free(ctx, p);
    ops_free(ctx, g);
    ops_destroy(ctx);
}

int main(void)
{
    CHECK_RUN(test_mlp);
    CHECK_RUN(test_transformer);
    return check_summary();
}
