/* npy: reads what numpy.save wrote; what we write is byte-identical to
 * numpy.save's file for the same array (same header text and padding). */
#include "check.h"
#include "core/fsutil.h"
#include "io/json_util.h"
#include "io/npy.h"

static void check_same_bytes(const char *a, const char *b)
{
    uint8_t *x, *y;
    size_t nx, ny;
    err_t e = {0};
    CHECK_OK(fs_read_all(a, &x, &nx, &e), &e);
    CHECK_OK(fs_read_all(b, &y, &ny, &e), &e);
    CHECK_MSG(nx == ny && !memcmp(x, y, nx), "%s and %s differ", a, b);
    free(x);
    free(y);
}

static void test_read_numpy_and_write_identically(void)
{
    char p[4096], pe[4096], dir[4096], out[4200];
    err_t e = {0};
    float *data;
    int64_t shape[NPY_MAX_DIMS];
    int ndim;
    CHECK_OK(npy_read_f32(check_fixture(p, sizeof p, "io/arr.npy"), &data, shape, &ndim, &e), &e);
    CHECK(ndim == 3 && shape[0] == 2 && shape[1] == 3 && shape[2] == 4);
    json_t *exp, *arr, *vals;
    CHECK_OK(json_load_path(&exp, check_fixture(pe, sizeof pe, "io/expected.json"), &e), &e);
    CHECK_OK(json_get_object(exp, "arr.npy", &arr, &e), &e);
    CHECK_OK(json_get_array(arr, "values", &vals, &e), &e);
    int bad = 0;
    for (size_t i = 0; i < 24; i++) /* exact: float32 -> JSON double -> float32 is lossless */
        if (data[i] != (float)json_real_value(json_array_get(vals, i))) bad++;
    CHECK(bad == 0 && json_array_size(vals) == 24);
    check_tmpdir(dir, sizeof dir, "npy");
    snprintf(out, sizeof out, "%s/arr.npy", dir);
    CHECK_OK(npy_write_f32(out, data, shape, ndim, &e), &e);
    check_same_bytes(out, p);
    free(data);
    json_decref(exp);

    float v[5] = {0, 1, 2, 3, 4};
    int64_t s1[1] = {5};
    snprintf(out, sizeof out, "%s/vec.npy", dir);
    CHECK_OK(npy_write_f32(out, v, s1, 1, &e), &e);
    check_same_bytes(out, check_fixture(p, sizeof p, "io/vec.npy"));
}

static void test_rejects_other_dtypes(void)
{
    char p[4096];
    err_t e = {0};
    float *data;
    int64_t shape[NPY_MAX_DIMS];
    int ndim;
    CHECK(npy_read_f32(check_fixture(p, sizeof p, "io/f64.npy"), &data, shape, &ndim, &e) == ERR_UNSUPPORTED);
    CHECK(strstr(e.msg, "f64.npy") && strstr(e.msg, "<f8"));
    CHECK(npy_read_f32(check_fixture(p, sizeof p, "io/bad.json"), &data, shape, &ndim, &e) == ERR_FORMAT);
}

int main(void)
{
    CHECK_RUN(test_read_numpy_and_write_identically);
    CHECK_RUN(test_rejects_other_dtypes);
    return check_summary();
}
