/* Helpers shared by the model tests (test_gpt2, test_mappers,
 * test_clipcap_train_step, test_decode): .npy fixtures (tests/fixtures/train
 * is written by tests/gen/gen_train_fixtures.py) and llm.c-style per-tensor
 * comparison. */
#ifndef CLIPCAP_NN_FIXTURE_H
#define CLIPCAP_NN_FIXTURE_H

#include "check.h"
#include "io/npy.h"
#include "io/safetensors.h"
#include "nn/ops.h"

/* The fixture AREA/NAME.npy as floats (malloc'd); *count its element
 * count. NULL, after printing why, when it cannot be read. */
static inline float *fx_npy_in(const char *area, const char *name, size_t *count)
{
    char rel[256], path[4096];
    snprintf(rel, sizeof rel, "%s/%s", area, name);
    check_fixture(path, sizeof path, rel);
    float *d = NULL;
    int64_t shape[NPY_MAX_DIMS];
    int nd = 0;
    err_t e = {0};
    if (npy_read_f32(path, &d, shape, &nd, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return NULL;
    }
    size_t n = 1;
    for (int i = 0; i < nd; i++) n *= (size_t)shape[i];
    if (count) *count = n;
    return d;
}

/* train/NAME.npy, see fx_npy_in. */
static inline float *fx_npy(const char *name, size_t *count) { return fx_npy_in("train", name, count); }

/* Tensor NAME of an open safetensors fixture as malloc'd floats (any
 * dtype st_read_f32 converts); *count (may be NULL) its element count.
 * NULL, after a failed CHECK, when it is missing or unreadable. */
static inline float *fx_st_floats(st_file *f, const char *name, size_t *count)
{
    const st_tensor *t = st_find(f, name);
    CHECK_MSG(t != NULL, "fixture tensor %s missing", name);
    if (!t) return NULL;
    size_t n = 1;
    for (int d = 0; d < t->ndim; d++) n *= (size_t)t->shape[d];
    float *buf = malloc((n ? n : 1) * sizeof(float));
    err_t e = {0};
    int rc = buf ? st_read_f32(f, t, buf, n, &e) : -1;
    CHECK_MSG(rc == 0, "%s: %s", name, buf ? e.msg : "out of memory");
    if (rc) {
        free(buf);
        return NULL;
    }
    if (count) *count = n;
    return buf;
}

/* A malloc'd host copy of n floats of backend memory. */
static inline float *fx_download(ops_ctx *ctx, const float *dev, size_t n)
{
    float *h = malloc((n ? n : 1) * sizeof *h);
    if (h) ops_download(ctx, h, dev, n);
    return h;
}

/* A backend copy of n host floats (free with ops_free). */
static inline float *fx_upload(ops_ctx *ctx, const float *host, size_t n)
{
    float *d = ops_alloc(ctx, n, NULL);
    if (d) ops_upload(ctx, d, host, n);
    return d;
}

/* Max |a - b| over n floats. */
static inline float fx_max_abs_diff(const float *a, const float *b, size_t n)
{
    float m = 0.0f;
    for (size_t i = 0; i < n; i++) {
        float d = fabsf(a[i] - b[i]);
        if (!(d <= m)) m = d; /* NaN propagates as a failure */
    }
    return m;
}

static inline float fx_max_abs(const float *a, size_t n)
{
    float m = 0.0f;
    for (size_t i = 0; i < n; i++) m = fabsf(a[i]) > m ? fabsf(a[i]) : m;
    return m;
}

/* GPT-2's c_attn bias [3E]: the key part [E, 2E) has a zero gradient in
 * exact arithmetic, so after AdamW it holds normalised rounding noise (see
 * test_clipcap_train_step.c); with key_bias_E > 0 that slice is only
 * checked against 0.03 (2·Σ lr of that test's schedule). */
static inline float fx_entry_error(const char *name, const float *a, const float *ref, size_t cnt, int key_bias_E)
{
    if (key_bias_E > 0 && strstr(name, "attn.c_attn.bias") && cnt == (size_t)3 * key_bias_E) {
        float k = fx_max_abs_diff(a + key_bias_E, ref + key_bias_E, (size_t)key_bias_E);
        CHECK_MSG(k <= 0.03f, "%s key-bias error %g", name, k);
        float q = fx_max_abs_diff(a, ref, (size_t)key_bias_E);
        float v = fx_max_abs_diff(a + 2 * key_bias_E, ref + 2 * key_bias_E, (size_t)key_bias_E);
        return q > v ? q : v;
    }
    return fx_max_abs_diff(a, ref, cnt);
}

/* Every entry of ours (data in ctx's backend memory) against the tensor
 * of the same name in the safetensors fixture train/FILE: max abs error
 * <= atol + rtol · max|ref| per tensor (llm.c's test style). Entries absent
 * from the file fail. key_bias_E: see fx_entry_error (0 = compare
 * everything alike). Returns how many tensors were compared. */
static inline int fx_compare_entries(ops_ctx *ctx, const char *file, const st_entry *en, int n, float atol,
                                     float rtol, int key_bias_E)
{
    char rel[256], path[4096];
    snprintf(rel, sizeof rel, "train/%s", file);
    check_fixture(path, sizeof path, rel);
    st_file *f = NULL;
    err_t e = {0};
    CHECK_OK(st_open(&f, path, &e), &e);
    if (!f) return 0;
    int compared = 0;
    for (int i = 0; i < n; i++) {
        const st_tensor *t = st_find(f, en[i].name);
        CHECK_MSG(t != NULL, "%s: %s missing", file, en[i].name);
        if (!t) continue;
        size_t cnt = 1;
        for (int d = 0; d < en[i].ndim; d++) cnt *= (size_t)en[i].shape[d];
        float *ref = malloc(cnt * sizeof *ref), *ours = fx_download(ctx, en[i].data, cnt);
        CHECK_OK(st_read_f32(f, t, ref, cnt, &e), &e);
        float err = fx_entry_error(en[i].name, ours, ref, cnt, key_bias_E), tol = atol + rtol * fx_max_abs(ref, cnt);
        CHECK_MSG(err <= tol, "%s: %s max abs error %g > %g", file, en[i].name, err, tol);
        compared++;
        free(ref);
        free(ours);
    }
    st_close(f);
    return compared;
}

#endif
