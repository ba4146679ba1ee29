/* CLIP image tower against a plain-PyTorch reference of the hub model
 * (tests/gen/gen_clip_fixtures.py → tests/fixtures/clip/):
 * - tiny random CLIP directories: F32; F16/BF16 tensors; hidden_act "gelu";
 *   each with text_model.* and position_ids that the loader must skip; the
 *   same weights as pytorch_model.bin (torch.save zip);
 * - a ViT-B/32-shaped model whose weights and images come from the
 *   splitmix64 stream documented in the generator and docs/nn.md: this test
 *   regenerates them (350 MB, written to a scratch safetensors and loaded
 *   like a hub directory) and compares with the committed torch output;
 * - loader errors name the tensor; batch bounds; the fingerprint.
 *
 * Tolerance: per image, max|ours - torch| / max|torch| <= 1e-4. Both sides
 * are float32 and differ only in summation order (BLAS blocking, SIMD
 * reductions); over 12 layers that drifts by ~1e-6 of the vector's scale.
 * Normalising by the vector's largest magnitude (not per element) is what
 * matters downstream (the mapper and cosine similarity see the vector), and
 * it does not blow up on elements that happen to be near zero. */
#include "check.h"
#include "core/fsutil.h"
#include "io/safetensors.h"
#include "nn/clip_vit.h"

static ops_ctx *ops;

static float *fixture(st_file *f, const char *name, size_t *count)
{
    const st_tensor *t = st_find(f, name);
    CHECK_MSG(t != NULL, "fixture tensor %s missing", name);
    if (!t) return NULL;
    size_t n = 1;
    for (int d = 0; d < t->ndim; d++) n *= (size_t)t->shape[d];
    float *buf = malloc(n * sizeof(float));
    err_t e = {0};
    CHECK_OK(st_read_f32(f, t, buf, n, &e), &e);
    if (count) *count = n;
    return buf;
}

static double rel_err(const float *ours, const float *ref, size_t n)
{
    double diff = 0.0, scale = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)ours[i] - ref[i]);
        diff = d > diff ? d : diff;
        scale = fabs(ref[i]) > scale ? fabs(ref[i]) : scale;
    }
    return scale > 0.0 ? diff / scale : diff;
}

static void expect_embeddings(const char *what, const float *ours, const float *ref, int B, int E)
{
    for (int b = 0; b < B; b++) {
        double r = rel_err(ours + (size_t)b * E, ref + (size_t)b * E, (size_t)E);
        CHECK_MSG(r <= 1e-4, "%s: image %d: max|diff|/max|ref| = %.3g", what, b, r);
        fprintf(stderr, "  %s: image %d: max|diff|/max|ref| = %.2e\n", what, b, r);
    }
}

/* Load dir, embed the fixture images one batch at a time and one by one. */
static void check_tiny(const char *dir_rel, const char *ref_name, char fp_out[33])
{
    char dir[4096], io[4096];
    err_t e = {0};
    st_file *f = NULL;
    CHECK_OK(st_open(&f, check_fixture(io, sizeof io, "clip/tiny_io.safetensors"), &e), &e);
    if (!f) return;
    size_t n = 0;
    float *images = fixture(f, "images", &n), *ref = fixture(f, ref_name, NULL);
    clip_vit *m = NULL;
    CHECK_OK(clip_vit_load(&m, ops, check_fixture(dir, sizeof dir, dir_rel), 3, &e), &e);
    if (m && images && ref) {
        CHECK(clip_vit_image_size(m) == 32 && clip_vit_embed_dim(m) == 16);
        float out[3 * 16];
        CHECK_OK(clip_vit_forward(m, images, 3, out, &e), &e);
        expect_embeddings(dir_rel, out, ref, 3, 16);
        /* a batch of one gives the same as the same image inside a batch */
        for (int b = 0; b < 3; b++) CHECK_OK(clip_vit_forward(m, images + (size_t)b * 3 * 32 * 32, 1, out + b * 16, &e), &e);
        expect_embeddings(dir_rel, out, ref, 3, 16);
        CHECK(clip_vit_forward(m, images, 4, out, &e) == ERR_ARG);
        CHECK(clip_vit_forward(m, images, 0, out, &e) == ERR_ARG);
        const char *fp = clip_vit_fingerprint(m);
        CHECK(strlen(fp) == 32);
        snprintf(fp_out, 33, "%s", fp);
    }
    clip_vit_free(m);
    free(images), free(ref);
    st_close(f);
}

static void test_tiny_variants(void)
{
    char fp32[33] = "", fphalf[33] = "", fpgelu[33] = "", again[33] = "";
    check_tiny("clip/tiny", "embed", fp32);
    check_tiny("clip/tiny_half", "embed_half", fphalf);
    check_tiny("clip/tiny_gelu", "embed_gelu", fpgelu);
    check_tiny("clip/tiny", "embed", again);
    CHECK(!strcmp(fp32, again));
    char fppt[33] = "";
    check_tiny("clip/tiny_pt", "embed", fppt); /* pytorch_model.bin only: same weights, same fingerprint */
    CHECK(!strcmp(fp32, fppt));
    CHECK(strcmp(fp32, fphalf) && strcmp(fp32, fpgelu));
}

/* openai's TorchScript file (tests/gen/gen_openai_clip.py): the
 * architecture comes from the shapes (W 128 → 2 heads, 2 layers, 64 px,
 * patch 16, D 32); it must give the bits of the hub directory holding the
 * same weights (same parameter buffer, same fingerprint) and openai's
 * module's embeddings within the float32 tolerance above: both run the
 * fp16 values converted exactly to float32. */
static void test_openai_torchscript(void)
{
    char io[4096], pt[4096], hub[4096];
    err_t e = {0};
    st_file *f = NULL;
    CHECK_OK(st_open(&f, check_fixture(io, sizeof io, "clip/openai/io.safetensors"), &e), &e);
    if (!f) return;
    float *images = fixture(f, "images", NULL), *ref = fixture(f, "embed", NULL);
    clip_vit *a = NULL, *b = NULL;
    CHECK_OK(clip_vit_load(&a, ops, check_fixture(pt, sizeof pt, "clip/openai/tiny.pt"), 3, &e), &e);
    CHECK_OK(clip_vit_load(&b, ops, check_fixture(hub, sizeof hub, "clip/openai/hub"), 3, &e), &e);
    if (a && b && images && ref) {
        CHECK(clip_vit_image_size(a) == 64 && clip_vit_embed_dim(a) == 32);
        CHECK(!strcmp(clip_vit_fingerprint(a), clip_vit_fingerprint(b)));
        float oa[3 * 32], ob[3 * 32];
        CHECK_OK(clip_vit_forward(a, images, 3, oa, &e), &e);
        CHECK_OK(clip_vit_forward(b, images, 3, ob, &e), &e);
        CHECK(!memcmp(oa, ob, sizeof oa));
        expect_embeddings("openai tiny.pt", oa, ref, 3, 32);
    }
    clip_vit_free(a), clip_vit_free(b);
    free(images), free(ref);
    st_close(f);
    /* a torch.save state dict of hub names is not openai's file: say what is expected */
    char other[4096];
    CHECK(clip_vit_load(&a, ops, check_fixture(other, sizeof other, "clip/tiny_pt/pytorch_model.bin"), 1, &e) == ERR_FORMAT);
    CHECK_MSG(strstr(e.msg, "openai") != NULL, "%s", e.msg);
}

static int write_file(const char *path, const char *text)
{
    err_t e = {0};
    return fs_write_atomic(path, text, strlen(text), &e);
}

/* Copy tiny's config with one substitution into a scratch dir next to a
 * link to tiny's weights. */
static void scratch_dir(char *dir, size_t cap, const char *name, const char *from, const char *to)
{
    char src[4096], path[4300];
    check_tmpdir(dir, cap, name);
    uint8_t *cfg = NULL;
    size_t len = 0;
    err_t e = {0};
    CHECK_OK(fs_read_all(check_fixture(src, sizeof src, "clip/tiny/config.json"), &cfg, &len, &e), &e);
    if (!cfg) return;
    char *at = strstr((char *)cfg, from);
    CHECK(at != NULL);
    char *out = malloc(len + strlen(to) + 1);
    size_t pre = at ? (size_t)(at - (char *)cfg) : len;
    memcpy(out, cfg, pre);
    strcpy(out + pre, to);
    if (at) strcat(out, at + strlen(from));
    snprintf(path, sizeof path, "%s/config.json", dir);
    CHECK(write_file(path, out) == 0);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    char *target = realpath(check_fixture(src, sizeof src, "clip/tiny/model.safetensors"), NULL);
    CHECK(target && symlink(target, path) == 0);
    free(target);
    free(cfg), free(out);
}

static void test_loader_errors(void)
{
    char dir[4096];
    err_t e = {0};
    clip_vit *m = NULL;
    scratch_dir(dir, sizeof dir, "clip_shape", "\"intermediate_size\": 48", "\"intermediate_size\": 40");
    CHECK(clip_vit_load(&m, ops, dir, 1, &e) == ERR_FORMAT && m == NULL);
    CHECK_MSG(strstr(e.msg, "vision_model.encoder.layers.0.mlp.fc1.weight has shape [48, 32], expected [40, 32]"),
              "%s", e.msg);
    scratch_dir(dir, sizeof dir, "clip_act", "\"patch_size\": 8,\n    \"hidden_act\": \"quick_gelu\"",
                "\"patch_size\": 8,\n    \"hidden_act\": \"relu\"");
    CHECK(clip_vit_load(&m, ops, dir, 1, &e) == ERR_UNSUPPORTED);
    CHECK_MSG(strstr(e.msg, "hidden_act") != NULL, "%s", e.msg);
    scratch_dir(dir, sizeof dir, "clip_layers", "\"num_hidden_layers\": 2", "\"num_hidden_layers\": 3");
    CHECK(clip_vit_load(&m, ops, dir, 1, &e) == ERR_NOTFOUND);
    CHECK_MSG(strstr(e.msg, "vision_model.encoder.layers.2.layer_norm1.weight not found") != NULL, "%s", e.msg);
    CHECK(clip_vit_load(&m, ops, "/nonexistent-clip-dir", 1, &e) == ERR_IO);
    CHECK(clip_vit_load(&m, ops, dir, 0, &e) == ERR_ARG);
}

/* ---- ViT-B/32 from the documented PRNG ---- */

static float *prng_fill(float *dst, uint64_t seed, uint64_t start, size_t count, float center, float scale)
{
    for (size_t i = 0; i < count; i++) {
        uint64_t z = seed + (start + i + 1) * 0x9E3779B97F4A7C15ull;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        z ^= z >> 31;
        float u = (float)(z >> 40) * (1.0f / 16777216.0f);
        dst[i] = center + scale * (2.0f * u - 1.0f);
    }
    return dst;
}

#define B32_W 768
#define B32_I 3072
#define B32_LAYERS 12
#define B32_P 32
#define B32_S 224
#define B32_E 512

/* Weights in the generator's order (vision_param_specs) and with its
 * (center, scale); written as one F32 safetensors file. */
static int write_b32(const char *dir, err_t *e)
{
    const int W = B32_W, I = B32_I, T = (B32_S / B32_P) * (B32_S / B32_P) + 1;
    enum { MAXN = 5 + 16 * B32_LAYERS + 3 };
    static char names[MAXN][96];
    st_entry ent[MAXN];
    float centers[MAXN], scales[MAXN];
    int n = 0;
#define ADD(nd, d0, d1, d2, d3, c, s, ...)                                        \
    do {                                                                         \
        snprintf(names[n], sizeof names[n], __VA_ARGS__);                        \
        int64_t dd[4] = {d0, d1, d2, d3};                                        \
        ent[n].name = names[n];                                                  \
        ent[n].ndim = nd;                                                        \
        for (int q_ = 0; q_ < 4; q_++) ent[n].shape[q_] = dd[q_];                \
        centers[n] = c, scales[n] = (float)(s);                                  \
        n++;                                                                     \
    } while (0)
    ADD(1, W, 0, 0, 0, 0.0f, 1.0, "vision_model.embeddings.class_embedding");
    ADD(4, W, 3, B32_P, B32_P, 0.0f, 1.0 / sqrt(3.0 * B32_P * B32_P), "vision_model.embeddings.patch_embedding.weight");
    ADD(2, T, W, 0, 0, 0.0f, 0.5, "vision_model.embeddings.position_embedding.weight");
    ADD(1, W, 0, 0, 0, 1.0f, 0.2, "vision_model.pre_layrnorm.weight");
    ADD(1, W, 0, 0, 0, 0.0f, 0.1, "vision_model.pre_layrnorm.bias");
    static const char *proj[4] = {"q_proj", "k_proj", "v_proj", "out_proj"};
    for (int l = 0; l < B32_LAYERS; l++) {
        ADD(1, W, 0, 0, 0, 1.0f, 0.2, "vision_model.encoder.layers.%d.layer_norm1.weight", l);
        ADD(1, W, 0, 0, 0, 0.0f, 0.1, "vision_model.encoder.layers.%d.layer_norm1.bias", l);
        for (int p = 0; p < 4; p++) {
            ADD(2, W, W, 0, 0, 0.0f, 1.0 / sqrt((double)W), "vision_model.encoder.layers.%d.self_attn.%s.weight", l, proj[p]);
            ADD(1, W, 0, 0, 0, 0.0f, 0.1, "vision_model.encoder.layers.%d.self_attn.%s.bias", l, proj[p]);
        }
        ADD(1, W, 0, 0, 0, 1.0f, 0.2, "vision_model.encoder.layers.%d.layer_norm2.weight", l);
        ADD(1, W, 0, 0, 0, 0.0f, 0.1, "vision_model.encoder.layers.%d.layer_norm2.bias", l);
        ADD(2, I, W, 0, 0, 0.0f, 1.0 / sqrt((double)W), "vision_model.encoder.layers.%d.mlp.fc1.weight", l);
        ADD(1, I, 0, 0, 0, 0.0f, 0.1, "vision_model.encoder.layers.%d.mlp.fc1.bias", l);
        ADD(2, W, I, 0, 0, 0.0f, 1.0 / sqrt((double)I), "vision_model.encoder.layers.%d.mlp.fc2.weight", l);
        ADD(1, W, 0, 0, 0, 0.0f, 0.1, "vision_model.encoder.layers.%d.mlp.fc2.bias", l);
    }
    ADD(1, W, 0, 0, 0, 1.0f, 0.2, "vision_model.post_layernorm.weight");
    ADD(1, W, 0, 0, 0, 0.0f, 0.1, "vision_model.post_layernorm.bias");
    ADD(2, B32_E, W, 0, 0, 0.0f, 1.0 / sqrt((double)W), "visual_projection.weight");
#undef ADD
    size_t total = 0, counts[MAXN];
    for (int i = 0; i < n; i++) {
        counts[i] = 1;
        for (int d = 0; d < ent[i].ndim; d++) counts[i] *= (size_t)ent[i].shape[d];
        total += counts[i];
    }
    float *all = malloc(total * sizeof(float));
    if (!all) return err_set(e, ERR_NOMEM, "b32 weights");
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        ent[i].data = prng_fill(all + off, 0x5EED0C11ull, off, counts[i], centers[i], scales[i]);
        off += counts[i];
    }
    char path[4200];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    int rc = st_write(path, ent, n, NULL, e);
    free(all);
    if (rc) return rc;
    char cfg[1024];
    snprintf(cfg, sizeof cfg,
             "{\"projection_dim\": %d, \"vision_config\": {\"hidden_size\": %d, \"intermediate_size\": %d, "
             "\"num_attention_heads\": 12, \"num_hidden_layers\": %d, \"image_size\": %d, \"patch_size\": %d, "
             "\"hidden_act\": \"quick_gelu\", \"layer_norm_eps\": 1e-05}}\n",
             B32_E, W, I, B32_LAYERS, B32_S, B32_P);
    snprintf(path, sizeof path, "%s/config.json", dir);
    return fs_write_atomic(path, cfg, strlen(cfg), e);
}

static void test_b32_prng_model(void)
{
    char dir[4096], io[4096], path[4200];
    err_t e = {0};
    st_file *f = NULL;
    CHECK_OK(st_open(&f, check_fixture(io, sizeof io, "clip/b32_io.safetensors"), &e), &e);
    if (!f) return;
    float *ref = fixture(f, "embed", NULL), *w4 = fixture(f, "first_weights", NULL), *i4 = fixture(f, "first_images", NULL);
    /* The first values pin the PRNG down before 350 MB depend on it. */
    float mine[4];
    prng_fill(mine, 0x5EED0C11ull, 0, 4, 0.0f, 1.0f);
    CHECK(!memcmp(mine, w4, sizeof mine));
    prng_fill(mine, 0x1A6E5EEDull, 0, 4, 0.0f, 2.0f);
    CHECK(!memcmp(mine, i4, sizeof mine));

    check_tmpdir(dir, sizeof dir, "clip_b32");
    CHECK_OK(write_b32(dir, &e), &e);
    clip_vit *m = NULL;
    CHECK_OK(clip_vit_load(&m, ops, dir, 2, &e), &e);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    unlink(path); /* the loaded model no longer needs it; do not leave 350 MB behind */
    if (m && ref) {
        const size_t n = 2 * 3 * B32_S * B32_S;
        float *images = prng_fill(malloc(n * sizeof(float)), 0x1A6E5EEDull, 0, n, 0.0f, 2.0f);
        float out[2 * B32_E];
        CHECK_OK(clip_vit_forward(m, images, 2, out, &e), &e);
        expect_embeddings("ViT-B/32", out, ref, 2, B32_E);
        free(images);
    }
    clip_vit_free(m);
    free(ref), free(w4), free(i4);
    st_close(f);
}

int main(void)
{
    err_t e = {0};
    if (ops_create(&ops, 0, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    CHECK_RUN(test_tiny_variants);
    CHECK_RUN(test_openai_torchscript);
    CHECK_RUN(test_loader_errors);
    CHECK_RUN(test_b32_prng_model);
    ops_destroy(ops);
    return check_summary();
}
