/* common/caption/captioner against tests/fixtures/caption (written by
 * tests/gen/gen_caption_fixtures.py in plain PyTorch):
 * - configuration inferred from tensor shapes for both mappers, from .pt
 *   and safetensors; bad shapes are errors naming the file and the tensor;
 * - greedy captions of six CLIP embeddings equal the reference generate2's
 *   tokens and text EXACTLY, for every checkpoint file of a model (the .pt
 *   in the reference's layout with buffers and a shared lm_head, the
 *   safetensors as `clipcap train` writes it, the Transformer .pt that also
 *   holds GPT-2), with normalize_prefix, with stop_text, in one batch and
 *   one image at a time. Exact, because the generator only keeps
 *   embeddings whose every argmax wins by >= 2e-3 in logit while fp32
 *   differences between the implementations are ~1e-5;
 * - logprob equals the reference's sum of log_softmax along the path to
 *   2e-5 per token (fp32 log-softmax of 64 logits, summed over <= 67
 *   steps), score = logprob / tokens to 1e-6 relative (the decoder
 *   divides in fp32 as the reference does);
 * - captioner_utf8_replace equals Python's bytes.decode("utf-8", "replace");
 * - one model in both formats has one fingerprint; other settings another. */
#include "caption/captioner.h"
#include "check.h"
#include "io/npy.h"
#include "io/tensorfile.h"

#include <jansson.h>

static char gpt2_dir[4096];

/* A hub directory: the fixture GPT-2 with the real tokenizer files. */
static void make_gpt2_dir(void)
{
    char fx[4096], src[4400], dst[4400];
    check_tmpdir(gpt2_dir, sizeof gpt2_dir, "captioner_gpt2");
    const char *files[][2] = {{"caption/gpt2", "config.json"},
                              {"caption/gpt2", "model.safetensors"},
                              {"gpt2", "vocab.json"},
                              {"gpt2", "merges.txt"}};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        check_fixture(fx, sizeof fx, files[i][0]);
        snprintf(src, sizeof src, "%s/%s", fx, files[i][1]);
        snprintf(dst, sizeof dst, "%s/%s", gpt2_dir, files[i][1]);
        CHECK_MSG(symlink(src, dst) == 0, "symlink %s", dst);
    }
}

static const char *fx(const char *name)
{
    static char buf[4096];
    char rel[256];
    snprintf(rel, sizeof rel, "caption/%s", name);
    return check_fixture(buf, sizeof buf, rel);
}

static int infer(const char *file, clipcap_config *cfg, err_t *e)
{
    tensorfile *tf = NULL;
    int rc = tensorfile_open(&tf, fx(file), e);
    if (!rc) rc = captioner_infer_config(tf, fx(file), 16, cfg, e);
    tensorfile_close(tf);
    return rc;
}

static void test_infer_mlp(void)
{
    const char *files[] = {"mlp_tuned.pt", "mlp_tuned.safetensors"};
    for (int i = 0; i < 2; i++) {
        clipcap_config c;
        err_t e = {0};
        CHECK_OK(infer(files[i], &c, &e), &e);
        CHECK(c.mapping == CLIPCAP_MAP_MLP);
        CHECK(c.clip_dim == 16 && c.prefix_len == 4);
        CHECK(!c.freeze_gpt2);
    }
}

static void test_infer_transformer(void)
{
    const char *files[] = {"tf_frozen.pt", "tf_frozen.safetensors", "tf_withgpt.pt"};
    for (int i = 0; i < 3; i++) {
        clipcap_config c;
        err_t e = {0};
        CHECK_OK(infer(files[i], &c, &e), &e);
        CHECK(c.mapping == CLIPCAP_MAP_TRANSFORMER);
        CHECK(c.clip_dim == 16 && c.prefix_len == 5 && c.clip_len == 3 && c.mapper_layers == 2);
        CHECK(c.freeze_gpt2 == (i < 2));
    }
}

/* Each bad file fails with a message naming the file and the record. */
static void test_bad_checkpoints(void)
{
    const char *cases[][2] = {
        {"bad_mlp_rows.safetensors", "clip_project.model.2.weight"},
        {"bad_mlp_hidden.safetensors", "clip_project.model.0.weight"},
        {"bad_prefix_const.safetensors", "clip_project.prefix_const"},
        {"no_mapper.safetensors", "no ClipCap mapper"},
        {"bad_gpt_width.safetensors", "gpt.transformer.wte.weight"},
        {"not_a_state_dict.pt", "not_a_state_dict.pt"},
        {"nested_state_dict.pt", "nested_state_dict.pt"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        captioner_options o;
        captioner_options_default(&o);
        o.checkpoint = fx(cases[i][0]);
        o.gpt2_dir = gpt2_dir;
        ops_ctx *ctx = NULL;
        err_t e = {0};
        CHECK_OK(ops_create(&ctx, 1, &e), &e);
        captioner *c = NULL;
        int rc = captioner_open(&c, ctx, &o, &e);
        CHECK_MSG(rc < 0 && !c, "%s opened", cases[i][0]);
        CHECK_MSG(strstr(e.msg, cases[i][0]) && strstr(e.msg, cases[i][1]), "%s: message '%s'", cases[i][0], e.msg);
        CHECK_MSG(!strchr(e.msg, '\n'), "multi-line message '%s'", e.msg);
        captioner_free(c);
        ops_destroy(ctx);
    }
}

typedef struct run_case {
    const char *model;    /* expected.json models.NAME */
    const char *file;     /* checkpoint */
    int max_images;
    const char *stop_text;
} run_case;

static float *clip_fixture(int *n)
{
    float *d = NULL;
    int64_t shape[NPY_MAX_DIMS];
    int nd = 0;
    err_t e = {0};
    CHECK_OK(npy_read_f32(fx("clip.npy"), &d, shape, &nd, &e), &e);
    CHECK(nd == 2 && shape[1] == 16);
    *n = d ? (int)shape[0] : 0;
    return d;
}

/* Runs one case and returns its fingerprint (static buffer per call site). */
static void run_against_reference(const run_case *rc, json_t *models, char fp[33])
{
    json_t *m = json_object_get(models, rc->model);
    CHECK_MSG(m != NULL, "expected.json has no model %s", rc->model);
    if (!m) return;
    int n = 0;
    float *clip = clip_fixture(&n);
    captioner_options o;
    captioner_options_default(&o);
    o.checkpoint = fx(rc->file);
    o.gpt2_dir = gpt2_dir;
    o.max_images = rc->max_images;
    o.normalize_prefix = json_is_true(json_object_get(m, "normalize_prefix"));
    o.stop_text = rc->stop_text;
    ops_ctx *ctx = NULL;
    captioner *c = NULL;
    err_t e = {0};
    CHECK_OK(ops_create(&ctx, 2, &e), &e);
    CHECK_OK(captioner_open(&c, ctx, &o, &e), &e);
    captioner_caption *out = calloc((size_t)n, sizeof *out);
    if (c && clip && out) {
        CHECK(captioner_decode_config(c)->stop_token == json_integer_value(json_object_get(m, "stop_token")));
        CHECK_OK(captioner_run(c, clip, n, out, &e), &e);
        json_t *caps = json_object_get(m, "captions");
        CHECK((int)json_array_size(caps) == n);
        for (int i = 0; i < n && i < (int)json_array_size(caps); i++) {
            json_t *want = json_object_get(json_array_get(caps, i), "tokens");
            int same = (int)json_array_size(want) == out[i].n_tokens;
            for (int t = 0; same && t < out[i].n_tokens; t++)
                same = json_integer_value(json_array_get(want, t)) == out[i].tokens[t];
            CHECK_MSG(same, "%s %s image %d: %d tokens, reference %zu", rc->model, rc->file, i, out[i].n_tokens,
                      json_array_size(want));
            const char *text = json_string_value(json_object_get(json_array_get(caps, i), "text"));
            CHECK_MSG(text && !strcmp(text, out[i].text), "%s image %d: text '%s' vs '%s'", rc->model, i,
                      out[i].text, text ? text : "?");
            double lp = json_real_value(json_object_get(json_array_get(caps, i), "logprob"));
            CHECK_MSG(fabs(out[i].logprob - lp) <= 2e-5 * out[i].n_tokens, "%s image %d: logprob %.9g, reference %.9g",
                      rc->model, i, out[i].logprob, lp);
            double mean = out[i].logprob / out[i].n_tokens;
            CHECK_MSG(fabs(out[i].score - mean) <= 1e-6 * fabs(mean), "score %.9g vs %.9g", out[i].score, mean);
        }
        snprintf(fp, 33, "%s", captioner_fingerprint(c));
    }
    free(out);
    free(clip);
    captioner_free(c);
    ops_destroy(ctx);
}

static json_t *load_expected(void)
{
    json_error_t je;
    json_t *j = json_load_file(fx("expected.json"), 0, &je);
    CHECK_MSG(j != NULL, "expected.json: %s", je.text);
    return json_object_get(j, "models") ? j : NULL;
}

static void test_mlp_tuned_matches_reference(void)
{
    json_t *j = load_expected();
    if (!j) return;
    json_t *models = json_object_get(j, "models");
    char a[33] = "a", b[33] = "b", one[33] = "c", norm[33] = "d", stop[33] = "e";
    run_against_reference(&(run_case){"mlp_tuned", "mlp_tuned.pt", 4, NULL}, models, a);
    run_against_reference(&(run_case){"mlp_tuned", "mlp_tuned.safetensors", 64, NULL}, models, b);
    run_against_reference(&(run_case){"mlp_tuned", "mlp_tuned.safetensors", 1, NULL}, models, one);
    run_against_reference(&(run_case){"mlp_tuned_normalized", "mlp_tuned.pt", 3, NULL}, models, norm);
    run_against_reference(&(run_case){"mlp_tuned_stop_T", "mlp_tuned.safetensors", 2, "T"}, models, stop);
    CHECK_MSG(!strcmp(a, b) && !strcmp(a, one), "fingerprints %s %s %s", a, b, one);
    CHECK(strcmp(a, norm) && strcmp(a, stop) && strcmp(norm, stop));
    json_decref(j);
}

static void test_transformer_matches_reference(void)
{
    json_t *j = load_expected();
    if (!j) return;
    json_t *models = json_object_get(j, "models");
    char a[33] = "a", b[33] = "b", g[33] = "c";
    run_against_reference(&(run_case){"tf_frozen", "tf_frozen.pt", 6, NULL}, models, a);
    run_against_reference(&(run_case){"tf_frozen", "tf_frozen.safetensors", 1, NULL}, models, b);
    run_against_reference(&(run_case){"tf_frozen", "tf_withgpt.pt", 5, NULL}, models, g);
    /* tf_withgpt holds the hub's GPT-2 as gpt.transformer.*: the same model */
    CHECK_MSG(!strcmp(a, b) && !strcmp(a, g), "fingerprints %s %s %s", a, b, g);
    json_decref(j);
}

static void test_gpt2_source(void)
{
    const char *files[] = {"mlp_tuned.pt", "tf_frozen.pt"};
    for (int i = 0; i < 2; i++) {
        captioner_options o;
        captioner_options_default(&o);
        o.checkpoint = fx(files[i]);
        o.gpt2_dir = gpt2_dir;
        ops_ctx *ctx = NULL;
        captioner *c = NULL;
        err_t e = {0};
        CHECK_OK(ops_create(&ctx, 1, &e), &e);
        CHECK_OK(captioner_open(&c, ctx, &o, &e), &e);
        if (c) {
            const char *src = captioner_gpt2_source(c);
            CHECK_MSG(i == 0 ? strstr(src, "mlp_tuned.pt") != NULL
                             : strstr(src, "captioner_gpt2") && strstr(src, "/model.safetensors"),
                      "GPT-2 from %s", src);
            CHECK(captioner_clip_dim(c) == 16 && captioner_gpt2_config(c)->n_embd == 16);
        }
        captioner_free(c);
        ops_destroy(ctx);
    }
}

static void test_stop_text_must_be_one_token(void)
{
    captioner_options o;
    captioner_options_default(&o);
    o.checkpoint = fx("tf_frozen.safetensors");
    o.gpt2_dir = gpt2_dir;
    o.stop_text = " end.";
    ops_ctx *ctx = NULL;
    captioner *c = NULL;
    err_t e = {0};
    CHECK_OK(ops_create(&ctx, 1, &e), &e);
    CHECK(captioner_open(&c, ctx, &o, &e) == ERR_ARG && !c);
    CHECK_MSG(strstr(e.msg, "' end.' is 2 GPT-2 tokens"), "message '%s'", e.msg);
    ops_destroy(ctx);
}

static void test_utf8_replace(void)
{
    json_t *j = load_expected();
    json_t *cases = j ? json_object_get(j, "utf8_replace") : NULL;
    CHECK(json_array_size(cases) > 5);
    for (size_t i = 0; i < json_array_size(cases); i++) {
        const char *hex = json_string_value(json_object_get(json_array_get(cases, i), "hex"));
        const char *want = json_string_value(json_object_get(json_array_get(cases, i), "text"));
        char bytes[64];
        size_t n = strlen(hex) / 2;
        for (size_t k = 0; k < n && k < sizeof bytes; k++) sscanf(hex + 2 * k, "%2hhx", (unsigned char *)&bytes[k]);
        char *got = captioner_utf8_replace(bytes, n);
        CHECK_MSG(got && !strcmp(got, want), "case %zu (%s): '%s' vs '%s'", i, hex, got ? got : "?", want);
        free(got);
    }
    json_decref(j);
}

int main(void)
{
    make_gpt2_dir();
    CHECK_RUN(test_infer_mlp);
    CHECK_RUN(test_infer_transformer);
    CHECK_RUN(test_bad_checkpoints);
    CHECK_RUN(test_gpt2_source);
    CHECK_RUN(test_stop_text_must_be_one_token);
    CHECK_RUN(test_utf8_replace);
    CHECK_RUN(test_mlp_tuned_matches_reference);
    CHECK_RUN(test_transformer_matches_reference);
    return check_summary();
}
