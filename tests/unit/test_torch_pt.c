/* torch_pt: files written by torch.save (tests/gen/gen_io_fixtures.py, torch
 * 1.13, pickle protocols 2 and 4) read back to the values torch printed,
 * exactly (f16/bf16 widen to float32 exactly; storage offsets, shared
 * storages, parameters, 0-dim and empty tensors, uint8/bool buffers
 * included). Non-contiguous, wrapped, legacy, foreign-callable and
 * unknown-opcode files fail with the documented codes and messages. */
#include "check.h"
#include "core/fsutil.h"
#include "io_fixture.h"
#include "io/tensorfile.h"
#include "io/torch_pt.h"

static void check_against_expected(const char *file)
{
    char p[4096], rel[256];
    err_t e = {0};
    /* the protocol-4 and zip64 files hold the same dict as state_dict.pt */
    json_t *exp = io_expected(strncmp(file, "state_dict", 10) ? file : "state_dict.pt");
    snprintf(rel, sizeof rel, "io/%s", file);
    pt_file *f = NULL;
    CHECK_OK(pt_open(&f, check_fixture(p, sizeof p, rel), &e), &e);
    if (!f || !exp) {
        json_decref(exp);
        pt_close(f);
        return;
    }
    CHECK_MSG(pt_count(f) == (int)json_object_size(exp), "%s: %d tensors", file, pt_count(f));
    const char *key;
    json_t *want;
    int i = 0;
    json_object_foreach(exp, key, want) {
        const pt_tensor *t = pt_tensor_at(f, i++);
        CHECK_MSG(t && !strcmp(t->name, key), "%s: tensor %d is not %s", file, i - 1, key);
        if (!t) continue;
        size_t n = io_numel(t->shape, t->ndim);
        float *v = malloc((n ? n : 1) * sizeof *v);
        CHECK_OK(pt_read_f32(f, t, v, n, &e), &e);
        io_check_values(key, want, t->shape, t->ndim, v, n);
        free(v);
    }
    pt_close(f);
    json_decref(exp);
}

static void test_state_dict(void) { check_against_expected("state_dict.pt"); }
static void test_state_dict_protocol4(void) { check_against_expected("state_dict_p4.pt"); }
static void test_state_dict_zip64(void) { check_against_expected("state_dict_zip64.pt"); }
static void test_module_state_dict(void) { check_against_expected("module.pt"); }

static void test_dtypes_and_offsets(void)
{
    char p[4096];
    err_t e = {0};
    pt_file *f;
    CHECK_OK(pt_open(&f, check_fixture(p, sizeof p, "io/state_dict.pt"), &e), &e);
    if (!f) return;
    CHECK(pt_find(f, "half")->dtype == ST_F16);
    CHECK(pt_find(f, "bf16")->dtype == ST_BF16);
    CHECK(pt_find(f, "gpt.transformer.h.0.attn.bias")->dtype == ST_U8);
    CHECK(pt_find(f, "mask_bool")->dtype == ST_BOOL);
    CHECK(pt_find(f, "step")->dtype == ST_I64);
    /* tied shares the storage of the first weight */
    CHECK(pt_find(f, "tied")->data == pt_find(f, "clip_project.model.0.weight")->data);
    CHECK(pt_find(f, "gpt.transformer.h.0.attn.masked_bias")->ndim == 0);
    pt_close(f);
}

static int try_pt_open(const char *path, err_t *e)
{
    pt_file *f = NULL;
    int rc = pt_open(&f, path, e);
    CHECK(rc == 0 || f == NULL);
    pt_close(f);
    return rc;
}

static void test_rejections(void)
{
    static const struct {
        const char *file, *needle;
        int code;
    } cases[] = {
        {"noncontig.pt", "tensor 't' is not contiguous", ERR_UNSUPPORTED},
        {"wrapped.pt", "not a state dict: value of 'model' is not a tensor", ERR_FORMAT},
        {"list.pt", "not a state dict", ERR_FORMAT},
        {"legacy.pt", "legacy", ERR_UNSUPPORTED},
        {"evil.pt", "call of posix.system", ERR_UNSUPPORTED},
        {"bad_opcode.pt", "unsupported pickle opcode 0xff at byte 5", ERR_UNSUPPORTED},
        {"ref.safetensors", "not a torch.save zip", ERR_FORMAT},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char rel[256], p[4096];
        snprintf(rel, sizeof rel, "io/%s", cases[i].file);
        io_expect_open_error(try_pt_open, check_fixture(p, sizeof p, rel), cases[i].code, cases[i].needle);
    }
    io_expect_empty_and_dir_errors(try_pt_open, "empty file");
}

static void test_tensorfile_pt(void)
{
    char p[4096];
    err_t e = {0};
    tensorfile *tf;
    CHECK_OK(tensorfile_open(&tf, check_fixture(p, sizeof p, "io/state_dict.pt"), &e), &e);
    if (!tf) return;
    int i = tensorfile_find(tf, "gpt.transformer.h.0.attn.bias");
    CHECK(i >= 0);
    int64_t shape[TENSORFILE_MAX_DIMS];
    int ndim;
    CHECK_OK(tensorfile_shape(tf, i, shape, &ndim), &e);
    CHECK(ndim == 4 && shape[2] == 4 && shape[3] == 4);
    float dst[16];
    int64_t want[4] = {1, 1, 4, 4};
    /* the mask buffer is listed, but it is no weight: tensorfile_load refuses it */
    CHECK(tensorfile_load(tf, "gpt.transformer.h.0.attn.bias", want, 4, dst, &e) == ERR_FORMAT);
    CHECK_MSG(strstr(e.msg, "tensor 'gpt.transformer.h.0.attn.bias': dtype U8 is not a float type"), "%s", e.msg);
    int64_t w2[2] = {2, 3};
    CHECK_OK(tensorfile_load(tf, "offset_view", w2, 2, dst, &e), &e);
    CHECK(dst[0] == 2.5f && dst[5] == 5.0f); /* arange(20)*0.5 from element 5 */
    CHECK(tensorfile_load(tf, "offset_view", w2, 1, dst, &e) == ERR_FORMAT);
    char msg[4300];
    snprintf(msg, sizeof msg, "%s: tensor offset_view has shape [2, 3], expected [2]", p);
    CHECK_MSG(!strcmp(e.msg, msg), "%s", e.msg);
    CHECK(tensorfile_load(tf, "missing.weight", w2, 2, dst, &e) == ERR_NOTFOUND);
    CHECK(tensorfile_shape(tf, 999, shape, &ndim) == ERR_ARG);
    tensorfile_close(tf);
    CHECK(tensorfile_open(&tf, check_fixture(p, sizeof p, "io/legacy.pt"), &e) == ERR_UNSUPPORTED);
}

/* parse_coco.py's plain pickle (tests/gen/gen_import_fixtures.py): the
 * caption records and the fp16 tensor rebuilt from _load_from_bytes, equal
 * to the generator's values; every truncation of the file is an error,
 * never a crash or a read past the end. */
static void test_plain_pickle(void)
{
    char p[4096], ex[4096], tmp[4096], cut[4300];
    err_t e = {0};
    pt_pickle *pk = NULL;
    CHECK_OK(pt_pickle_open(&pk, check_fixture(p, sizeof p, "import/features.pkl"), &e), &e);
    json_t *exp = NULL;
    CHECK_OK(json_load_path(&exp, check_fixture(ex, sizeof ex, "import/expected.json"), &e), &e);
    if (!pk || !exp) {
        pt_pickle_close(pk);
        json_decref(exp);
        return;
    }
    const pt_value *root = pt_pickle_root(pk), *caps = pt_dict_get(root, "captions");
    CHECK(pt_value_kind(root) == PT_DICT && pt_value_kind(caps) == PT_LIST && pt_value_len(caps) == 20);
    CHECK(pt_value_kind(pt_dict_get(root, "nope")) == PT_ABSENT);
    const pt_value *c0 = pt_value_at(caps, 0);
    CHECK(pt_value_int(pt_dict_get(c0, "image_id")) == 391895 && pt_value_int(pt_dict_get(c0, "id")) == 1000);
    CHECK(!strcmp(pt_value_str(pt_dict_get(c0, "caption")), "A red circle on a white background."));
    pt_tensor t;
    CHECK_OK(pt_value_tensor(pk, pt_dict_get(root, "clip_embedding"), "clip_embedding", &t, &e), &e);
    CHECK(t.dtype == ST_F16 && t.ndim == 2 && t.shape[0] == 20 && t.shape[1] == 32);
    float row[32];
    pt_tensor_f32(&t, 0, 32, row);
    const json_t *want = json_object_get(json_object_get(exp, "391895"), "embedding");
    for (size_t i = 0; i < 32; i++) CHECK(row[i] == (float)json_real_value(json_array_get(want, i)));
    CHECK(pt_value_tensor(pk, c0, "c0", &t, &e) == ERR_FORMAT);
    pt_pickle_close(pk);
    json_decref(exp);

    uint8_t *data = NULL;
    size_t len = 0;
    CHECK_OK(fs_read_all(p, &data, &len, &e), &e);
    check_tmpdir(tmp, sizeof tmp, "plain_pickle");
    snprintf(cut, sizeof cut, "%s/cut.pkl", tmp);
    for (size_t n = 1; data && n < len; n += n < 200 ? 1 : 37) {
        CHECK_OK(fs_write_atomic(cut, data, n, &e), &e);
        int rc = pt_pickle_open(&pk, cut, &e);
        CHECK_MSG(rc < 0 && pk == NULL, "a pickle cut at %zu bytes opened", n);
        pt_pickle_close(pk);
    }
    free(data);
}

int main(void)
{
    CHECK_RUN(test_state_dict);
    CHECK_RUN(test_state_dict_protocol4);
    CHECK_RUN(test_state_dict_zip64);
    CHECK_RUN(test_module_state_dict);
    CHECK_RUN(test_dtypes_and_offsets);
    CHECK_RUN(test_rejections);
    CHECK_RUN(test_tensorfile_pt);
    CHECK_RUN(test_plain_pickle);
    return check_summary();
}
