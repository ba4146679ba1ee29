/* json_util: syntax errors carry PATH:LINE:COL, checked against the position
 * Python's json module reports for the same file (tests/gen/gen_io_fixtures.py);
 * getters give the documented messages and codes. */
#include "check.h"
#include "io/json_util.h"

static void test_syntax_error_position(void)
{
    char p[4096], pe[4096];
    json_t *exp = NULL, *j = NULL;
    err_t e = {0};
    CHECK_OK(json_load_path(&exp, check_fixture(pe, sizeof pe, "io/expected.json"), &e), &e);
    json_t *want;
    long long line = 0, col = 0;
    CHECK_OK(json_get_object(exp, "bad.json", &want, &e), &e);
    CHECK_OK(json_get_int(want, "line", &line, &e), &e);
    CHECK_OK(json_get_int(want, "col", &col, &e), &e);
    check_fixture(p, sizeof p, "io/bad.json");
    CHECK(json_load_path(&j, p, &e) == ERR_FORMAT);
    CHECK(j == NULL);
    char prefix[4200];
    snprintf(prefix, sizeof prefix, "%s:%lld:%lld: ", p, line, col);
    CHECK_MSG(!strncmp(e.msg, prefix, strlen(prefix)), "got '%s', want prefix '%s'", e.msg, prefix);
    json_decref(exp);
}

static void test_missing_file_is_io(void)
{
    json_t *j;
    err_t e = {0};
    CHECK(json_load_path(&j, "/nonexistent/x.json", &e) == ERR_IO);
    CHECK(strstr(e.msg, "/nonexistent/x.json") != NULL);
}

static void test_getters(void)
{
    const char *txt = "{\"s\": \"hi\", \"i\": 42, \"r\": 1.5, \"b\": true, \"a\": [1], \"o\": {}}";
    json_t *j, *a, *o;
    err_t e = {0};
    CHECK_OK(json_load_buffer(&j, txt, strlen(txt), "t.json", &e), &e);
    const char *s;
    long long i;
    double r;
    int b;
    CHECK_OK(json_get_str(j, "s", &s, &e), &e);
    CHECK(!strcmp(s, "hi"));
    CHECK_OK(json_get_int(j, "i", &i, &e), &e);
    CHECK(i == 42);
    CHECK_OK(json_get_real(j, "r", &r, &e), &e);
    CHECK(r == 1.5);
    CHECK_OK(json_get_real(j, "i", &r, &e), &e); /* integers are numbers */
    CHECK(r == 42.0);
    CHECK_OK(json_get_bool(j, "b", &b, &e), &e);
    CHECK(b == 1);
    CHECK_OK(json_get_array(j, "a", &a, &e), &e);
    CHECK(json_array_size(a) == 1);
    CHECK_OK(json_get_object(j, "o", &o, &e), &e);
    CHECK(json_get_str(j, "missing", &s, &e) == ERR_FORMAT);
    CHECK(!strcmp(e.msg, "field 'missing' is missing"));
    CHECK(json_get_str(j, "i", &s, &e) == ERR_FORMAT);
    CHECK(!strcmp(e.msg, "field 'i' is not a string"));
    CHECK(json_get_int(j, "r", &i, &e) == ERR_FORMAT);
    CHECK(json_get_array(j, "o", &a, &e) == ERR_FORMAT);
    CHECK(json_get_object(j, "a", &o, &e) == ERR_FORMAT);
    json_decref(j);
}

static void test_duplicate_keys_rejected(void)
{
    const char *txt = "{\"k\": 1,\n \"k\": 2}";
    json_t *j;
    err_t e = {0};
    CHECK(json_load_buffer(&j, txt, strlen(txt), "dup.json", &e) == ERR_FORMAT);
    CHECK(!strncmp(e.msg, "dup.json:2:", 11));
}

int main(void)
{
    CHECK_RUN(test_syntax_error_position);
    CHECK_RUN(test_missing_file_is_io);
    CHECK_RUN(test_getters);
    CHECK_RUN(test_duplicate_keys_rejected);
    return check_summary();
}
