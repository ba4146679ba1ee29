/* safetensors: a file written by an independent Python writer
 * (tests/gen/gen_io_fixtures.py, struct + json per the format spec) reads
 * back to the values numpy/torch computed (exact: every conversion to
 * float32 here is exact or correctly rounded on both sides); each corrupt
 * header is ERR_FORMAT naming the file and the problem; our writer
 * round-trips; tensorfile reports shape mismatches as documented. */
#include "check.h"
#include "io_fixture.h"
#include "io/npy.h"
#include "io/safetensors.h"
#include "io/tensorfile.h"

static void test_reference_file(void)
{
    char p[4096];
    err_t e = {0};
    json_t *exp = io_expected("ref.safetensors");
    st_file *f;
    CHECK_OK(st_open(&f, check_fixture(p, sizeof p, "io/ref.safetensors"), &e), &e);
    if (!f || !exp) return;
    CHECK(st_count(f) == (int)json_object_size(exp));
    const char *key;
    json_t *want;
    int i = 0;
    json_object_foreach(exp, key, want) {
        const st_tensor *t = st_find(f, key);
        CHECK_MSG(t != NULL, "%s missing", key);
        if (!t) continue;
        CHECK(st_tensor_at(f, i++) == t); /* header order kept */
        size_t n = io_numel(t->shape, t->ndim);
        float *v = malloc((n ? n : 1) * sizeof *v);
        CHECK_OK(st_read_f32(f, t, v, n, &e), &e);
        io_check_values(key, want, t->shape, t->ndim, v, n);
        CHECK(st_read_f32(f, t, v, n + 1, &e) == ERR_ARG);
        free(v);
    }
    CHECK(st_find(f, "nope") == NULL);
    CHECK(st_find(f, "c.bf16")->dtype == ST_BF16);
    const json_t *md = st_metadata(f);
    CHECK(md && !strcmp(json_string_value(json_object_get(md, "format")), "pt"));
    st_close(f);
    json_decref(exp);
}

/* All 65536 float16 patterns widen to the float32 bits numpy gives. */
static void test_f16_all_patterns(void)
{
    char p[4096], pn[4096];
    err_t e = {0};
    st_file *f;
    float *want = NULL, *got = malloc(65536 * sizeof *got);
    int64_t shape[NPY_MAX_DIMS];
    int ndim;
    CHECK_OK(npy_read_f32(check_fixture(pn, sizeof pn, "io/f16_all.npy"), &want, shape, &ndim, &e), &e);
    CHECK_OK(st_open(&f, check_fixture(p, sizeof p, "io/f16_all.safetensors"), &e), &e);
    if (f && want) {
        CHECK_OK(st_read_f32(f, st_find(f, "h"), got, 65536, &e), &e);
        int bad = 0;
        for (int i = 0; i < 65536; i++)
            if (memcmp(&got[i], &want[i], 4)) bad++;
        CHECK_MSG(bad == 0, "%d patterns differ", bad);
    }
    st_close(f);
    free(want);
    free(got);
}

static int try_st_open(const char *path, err_t *e)
{
    st_file *f = NULL;
    int rc = st_open(&f, path, e);
    CHECK(rc == 0 || f == NULL);
    st_close(f);
    return rc;
}

static void test_corrupt_files(void)
{
    static const struct {
        const char *file, *needle;
        int code;
    } cases[] = {
        {"bad_header_len", "header length", ERR_FORMAT},
        {"truncated", "outside the data area", ERR_FORMAT},
        {"too_short", "too short", ERR_FORMAT},
        {"bad_json", "bad_json.safetensors:1:", ERR_FORMAT},
        {"not_object", "not a JSON object", ERR_FORMAT},
        {"offsets_outside", "outside the data area", ERR_FORMAT},
        {"overlap", "overlap", ERR_FORMAT},
        {"unknown_dtype", "unknown dtype 'F33'", ERR_FORMAT},
        {"shape_mismatch", "tensor 'a.f32': shape x F32 size", ERR_FORMAT},
        {"negative_dim", "shape[0] is not a non-negative integer", ERR_FORMAT},
        {"backwards", "run backwards", ERR_FORMAT},
        {"missing_shape", "field 'shape' is missing", ERR_FORMAT},
        {"bad_metadata", "__metadata__ 'k' is not a string", ERR_FORMAT},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char rel[256], p[4096];
        snprintf(rel, sizeof rel, "io/corrupt/%s.safetensors", cases[i].file);
        io_expect_open_error(try_st_open, check_fixture(p, sizeof p, rel), cases[i].code, cases[i].needle);
    }
    io_expect_empty_and_dir_errors(try_st_open, "too short for a safetensors header");
}

static void test_write_round_trip(void)
{
    char dir[4096], path[4200];
    check_tmpdir(dir, sizeof dir, "safetensors");
    snprintf(path, sizeof path, "%s/out.safetensors", dir);
    float a[6] = {1, -2, 3.5f, 4, 5, 6e-8f}, b[1] = {42}, c[3] = {7, 8, 9};
    st_entry ents[3] = {
        {"layer.weight", a, 2, {2, 3}},
        {"scalar", b, 0, {0}},
        {"v", c, 1, {3}},
    };
    json_t *md = json_pack("{s:s}", "step", "12");
    err_t e = {0};
    CHECK_OK(st_write(path, ents, 3, md, &e), &e);
    json_decref(md);
    st_file *f;
    CHECK_OK(st_open(&f, path, &e), &e);
    if (!f) return;
    CHECK(st_count(f) == 3);
    for (int i = 0; i < 3; i++) {
        const st_tensor *t = st_tensor_at(f, i);
        CHECK(!strcmp(t->name, ents[i].name) && t->ndim == ents[i].ndim && t->dtype == ST_F32);
        float got[6];
        size_t n = io_numel(t->shape, t->ndim);
        CHECK_OK(st_read_f32(f, t, got, n, &e), &e);
        CHECK(!memcmp(got, ents[i].data, n * sizeof(float)));
    }
    CHECK(!strcmp(json_string_value(json_object_get(st_metadata(f), "step")), "12"));
    st_close(f);
    st_entry dup[2] = {{"x", a, 1, {1}}, {"x", b, 1, {1}}};
    CHECK(st_write(path, dup, 2, NULL, &e) == ERR_ARG);
}

static void test_tensorfile_messages(void)
{
    char p[4096];
    err_t e = {0};
    tensorfile *tf;
    CHECK_OK(tensorfile_open(&tf, check_fixture(p, sizeof p, "io/ref.safetensors"), &e), &e);
    if (!tf) return;
    CHECK(tensorfile_count(tf) == 6);
    CHECK(tensorfile_find(tf, "c.bf16") == 2 && !strcmp(tensorfile_name(tf, 2), "c.bf16"));
    int64_t shape[TENSORFILE_MAX_DIMS];
    int ndim;
    CHECK_OK(tensorfile_shape(tf, 0, shape, &ndim), &e);
    CHECK(ndim == 2 && shape[0] == 2 && shape[1] == 3);
    float dst[6];
    int64_t want[2] = {3, 2};
    CHECK(tensorfile_load(tf, "a.f32", want, 2, dst, &e) == ERR_FORMAT);
    char msg[4300];
    snprintf(msg, sizeof msg, "%s: tensor a.f32 has shape [2, 3], expected [3, 2]", p);
    CHECK_MSG(!strcmp(e.msg, msg), "%s", e.msg);
    CHECK(tensorfile_load(tf, "zzz", want, 2, dst, &e) == ERR_NOTFOUND);
    CHECK(strstr(e.msg, "zzz") && strstr(e.msg, p));
    CHECK_OK(tensorfile_load(tf, "c.bf16", want, 2, dst, &e), &e);
    tensorfile_close(tf);
}

/* A raw safetensors file: header JSON + data, as any writer would make it. */
static void write_raw_st(const char *path, const char *header, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (!f) return;
    uint64_t hl = strlen(header);
    fwrite(&hl, 8, 1, f);
    fwrite(header, 1, hl, f);
    fwrite(data, 1, len, f);
    fclose(f);
}

/* Weights must be float and finite: an I32/I16 tensor or a NaN/inf value
 * is refused by name (issue 13 items 3 and 5), whatever the reader. */
static void test_tensorfile_refuses_non_weights(void)
{
    char dir[4096], path[4200];
    check_tmpdir(dir, sizeof dir, "tf_weights");
    snprintf(path, sizeof path, "%s/w.safetensors", dir);
    struct {
        float nan4[4];
        int32_t i32[2];
        int16_t i16[2];
        double big[1];
        float ok[2];
    } d = {{1.0f, NAN, INFINITY, 2.0f}, {1, 1000000000}, {3, 4}, {1e300}, {0.5f, -0.5f}};
    const char *hdr = "{\"nan\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [0, 16]},"
                      " \"int\": {\"dtype\": \"I32\", \"shape\": [2], \"data_offsets\": [16, 24]},"
                      " \"short\": {\"dtype\": \"I16\", \"shape\": [2], \"data_offsets\": [24, 28]},"
                      " \"big\": {\"dtype\": \"F64\", \"shape\": [1], \"data_offsets\": [32, 40]},"
                      " \"ok\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [40, 48]}}";
    write_raw_st(path, hdr, &d, sizeof d);
    err_t e = {0};
    tensorfile *tf = NULL;
    CHECK_OK(tensorfile_open(&tf, path, &e), &e);
    if (!tf) return;
    float dst[4];
    char msg[4400];
    int64_t s4[1] = {4}, s2[1] = {2}, s1[1] = {1};
    CHECK(tensorfile_load(tf, "nan", s4, 1, dst, &e) == ERR_FORMAT);
    snprintf(msg, sizeof msg, "%s: tensor 'nan': 2 non-finite values (first at index 1)", path);
    CHECK_MSG(!strcmp(e.msg, msg), "%s", e.msg);
    CHECK(tensorfile_load(tf, "big", s1, 1, dst, &e) == ERR_FORMAT);
    CHECK_MSG(strstr(e.msg, "tensor 'big': 1 non-finite values (first at index 0)"), "%s", e.msg);
    CHECK(tensorfile_load(tf, "int", s2, 1, dst, &e) == ERR_FORMAT);
    snprintf(msg, sizeof msg, "%s: tensor 'int': dtype I32 is not a float type (weights must be F32, F16, BF16 or F64)",
             path);
    CHECK_MSG(!strcmp(e.msg, msg), "%s", e.msg);
    CHECK(tensorfile_load(tf, "short", s2, 1, dst, &e) == ERR_FORMAT);
    CHECK_MSG(strstr(e.msg, "tensor 'short': dtype I16 is not a float type"), "%s", e.msg);
    CHECK_OK(tensorfile_load(tf, "ok", s2, 1, dst, &e), &e);
    CHECK(dst[0] == 0.5f && dst[1] == -0.5f);
    tensorfile_close(tf);
}

int main(void)
{
    CHECK_RUN(test_reference_file);
    CHECK_RUN(test_f16_all_patterns);
    CHECK_RUN(test_corrupt_files);
    CHECK_RUN(test_write_round_trip);
    CHECK_RUN(test_tensorfile_messages);
    CHECK_RUN(test_tensorfile_refuses_non_weights);
    return check_summary();
}
