/* Helpers shared by the tensor-file tests (test_safetensors,
 * test_torch_pt): the values tests/gen/gen_io_fixtures.py wrote to
 * io/expected.json, compared exactly, and the check that opening a broken
 * fixture fails with the documented code and a message naming the file. */
#ifndef CLIPCAP_IO_FIXTURE_H
#define CLIPCAP_IO_FIXTURE_H

#include <stdint.h>
#include "check.h"
#include "io/json_util.h"

/* One section of io/expected.json (a new reference), or NULL. */
static inline json_t *io_expected(const char *section)
{
    char p[4096];
    err_t e = {0};
    json_t *exp = NULL, *sec = NULL;
    CHECK_OK(json_load_path(&exp, check_fixture(p, sizeof p, "io/expected.json"), &e), &e);
    if (exp) CHECK_OK(json_get_object(exp, section, &sec, &e), &e);
    if (sec) json_incref(sec);
    json_decref(exp);
    return sec;
}

static inline size_t io_numel(const int64_t *shape, int ndim)
{
    size_t n = 1;
    for (int d = 0; d < ndim; d++) n *= (size_t)shape[d];
    return n;
}

/* Shape and the n values of one tensor against its expected entry
 * {"shape", "values"}. */
static inline void io_check_values(const char *name, const json_t *want, const int64_t *shape, int ndim, const float *v,
                                   size_t n)
{
    json_t *ws = json_object_get(want, "shape"), *wv = json_object_get(want, "values");
    CHECK_MSG((size_t)ndim == json_array_size(ws), "%s: ndim %d", name, ndim);
    for (int d = 0; d < ndim && d < (int)json_array_size(ws); d++)
        CHECK_MSG(shape[d] == json_integer_value(json_array_get(ws, (size_t)d)), "%s: dim %d", name, d);
    CHECK_MSG(n == json_array_size(wv), "%s: %zu values, expected %zu", name, n, json_array_size(wv));
    int bad = 0;
    for (size_t i = 0; i < n && i < json_array_size(wv); i++)
        if (v[i] != (float)json_number_value(json_array_get(wv, i))) bad++;
    CHECK_MSG(bad == 0, "%s: %d values differ", name, bad);
}

/* Opens path with the reader under test; returns its code. Must leave
 * nothing open and check that a failed open hands out no object. */
typedef int (*io_open_fn)(const char *path, err_t *e);

/* Opening path must fail with code, naming the path and needle. */
static inline void io_expect_open_error(io_open_fn open_fn, const char *path, int code, const char *needle)
{
    err_t e = {0};
    int rc = open_fn(path, &e);
    CHECK_MSG(rc == code, "%s: rc %d (%s)", path, rc, e.msg);
    CHECK_MSG(strstr(e.msg, path) != NULL, "%s: message lacks the path: %s", path, e.msg);
    CHECK_MSG(strstr(e.msg, needle) != NULL, "%s: '%s' lacks '%s'", path, e.msg, needle);
}

/* An empty file under the scratch directory (the mapping special case) and
 * a directory (not a regular file) must fail naming themselves. */
static inline void io_expect_empty_and_dir_errors(io_open_fn open_fn, const char *empty_needle)
{
    char dir[4096], path[4200];
    check_tmpdir(dir, sizeof dir, "io-empty");
    snprintf(path, sizeof path, "%s/empty", dir);
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (f) fclose(f);
    io_expect_open_error(open_fn, path, ERR_FORMAT, empty_needle);
    io_expect_open_error(open_fn, dir, ERR_IO, "not a regular file");
}

#endif
