/* cocoeval: loading, matching and scoring COCO results / annotations.
 * Parity: the fixture's results.json / annotations.json (captions as people
 * write them) score per image as the plain-Python transcription of the
 * toolkit says (tests/fixtures/metrics/expected_per_image.json, written by
 * tests/gen/gen_metric_fixtures.py), to 1e-9 (doubles on both sides, only
 * the order of sums differs). Errors: the record named in a message is the
 * one the input was built to break, also when the break is a JSON syntax
 * error inside nested values and strings holding , [ ] { }. */
#include "check.h"
#include "metrics/cocoeval.h"

#include <limits.h>

static void test_fixture_per_image(void)
{
    char rpath[4096], apath[4096], wpath[4096];
    cocoeval_captions_t res, ann;
    cocoeval_set_t set;
    cocoeval_scores_t s;
    cocoeval_opts_t o = {.per_image = 1};
    err_t e = {0};
    CHECK_OK(cocoeval_load_results(&res, check_fixture(rpath, sizeof rpath, "metrics/results.json"), &e), &e);
    CHECK_OK(cocoeval_load_annotations(&ann, check_fixture(apath, sizeof apath, "metrics/annotations.json"), &e), &e);
    CHECK_OK(cocoeval_match(&set, &res, &ann, 0, &e), &e);
    CHECK(set.n == 300);
    CHECK_OK(cocoeval_score(&set, &o, &s, &e), &e);
    json_error_t je;
    json_t *want = json_load_file(check_fixture(wpath, sizeof wpath, "metrics/expected_per_image.json"), 0, &je);
    json_t *got = cocoeval_scores_json(&set, &s);
    CHECK(want && got && json_is_null(json_object_get(got, "METEOR")) && json_is_null(json_object_get(got, "SPICE")));
    json_t *per = json_object_get(got, "per_image");
    CHECK(json_object_size(per) == json_object_size(want) && json_object_size(want) == 300);
    const char *id;
    json_t *w;
    json_object_foreach(want, id, w) {
        json_t *g = json_object_get(per, id);
        CHECK_MSG(g != NULL, "image %s missing", id);
        if (!g) continue;
        const char *k;
        json_t *v;
        json_object_foreach(w, k, v) {
            double d = fabs(json_number_value(json_object_get(g, k)) - json_number_value(v));
            CHECK_MSG(json_is_real(json_object_get(g, k)) && d <= 1e-9, "image %s %s: off by %g", id, k, d);
        }
        CHECK(json_is_null(json_object_get(g, "METEOR")) && json_is_null(json_object_get(g, "SPICE")));
    }
    json_decref(want);
    json_decref(got);
    cocoeval_scores_free(&s);
    cocoeval_set_free(&set);
    cocoeval_captions_free(&res);
    cocoeval_captions_free(&ann);
}

/* Loading text fails with a message holding want. */
static void load_fails(const char *text, int is_results, const char *want)
{
    cocoeval_captions_t c;
    err_t e = {0};
    int rc = cocoeval_load_buffer(&c, text, strlen(text), "f.json", is_results, &e);
    CHECK_MSG(rc == ERR_FORMAT && strstr(e.msg, want), "%s: got '%s', want '%s'", text, e.msg, want);
    CHECK(c.n == 0 && c.c == NULL && c.doc.buf == NULL);
}

static void test_load_errors(void)
{
    load_fails("[{\"image_id\": 1, \"caption\": \"a, [b] {c}\", \"x\": [1, [2, 3]]},\n"
               " {\"image_id\": 2, \"caption\": \"\\\"q\\\", d\"}, {\"image_id\": 3, \"caption\": \"\xff\"}]",
               1, "f.json:2:70: entry 2: text is not UTF-8: unable to decode byte 0xff");
    load_fails("[{\"image_id\": 3, \"caption\": \"a\xc3\"}]", 1, "f.json:1:31: entry 0: text is not UTF-8: unable to decode byte 0xc3");
    load_fails("{\"info\": {\"v\": [1, 2], \"annotations\": 0}, \"annotations\": [{\"image_id\": 1, \"caption\": \"a\"},"
               " {\"image_id\": 1, \"caption\": \"b\", \"caption\": \"c\"}]}",
               0, "f.json:1:132: annotation 1: duplicate object key");
    load_fails("[{\"image_id\": 1, \"caption\": \"a\"}, {\"caption\": \"b\"}]", 1, "f.json: entry 1: field 'image_id' is missing");
    load_fails("[{\"image_id\": 1, \"caption\": \"a\"}, {\"image_id\": 2, \"caption\": ", 1, "f.json:1:61: entry 1: unexpected token near end of file");
    load_fails("{\"annotations\": 5}", 0, "f.json: field 'annotations' is not an array");
    /* columns count bytes, as shard's reader and Python's json (on ASCII) do: not jansson's characters */
    load_fails("[{\"image_id\": 1, \"caption\": \"\xc3\xa9\xc3\xa9\"}, x]", 1, "f.json:1:38: entry 1: invalid token");
    load_fails("[1", 1, "f.json:1:2: entry 0: ");
    load_fails("", 1, "f.json:1:1: ");
}

/* jscan reads the files; these documents it accepts and jansson refuses
 * must fail as before, with jansson's message: a duplicate key in an
 * ignored field (in a small object and in one of over 16 keys), numbers
 * beyond 64-bit integers and doubles where nothing reads them, a scalar
 * document. */
static void test_load_errors_jansson_words(void)
{
    load_fails("[{\"image_id\": 1, \"caption\": \"a\", \"x\": {\"k\": 1, \"k\": 2}}]", 1,
               "f.json:1:50: entry 0: duplicate object key");
    char big[1024] = "{\"annotations\": [{\"image_id\": 1, \"caption\": \"a\"}], \"x\": {";
    for (int k = 0; k < 20; k++) sprintf(big + strlen(big), "\"k%d\": 0, ", k);
    strcat(big, "\"k7\": 1}}");
    load_fails(big, 0, "duplicate object key near '\"k7\"'");
    load_fails("[{\"image_id\": 1, \"caption\": \"a\", \"n\": 99999999999999999999}]", 1,
               "f.json:1:58: entry 0: too big integer");
    load_fails("[{\"image_id\": 1, \"caption\": \"a\", \"s\": -1e400}]", 1, "entry 0: real number overflow");
    load_fails("5", 1, "f.json:1:1: '[' or '{' expected");
    cocoeval_captions_t c;
    err_t e = {0};
    const char *fine = "[{\"image_id\": -9223372036854775808, \"caption\": \"a\", \"s\": 1.7e308, \"t\": 1e-400}]";
    CHECK_OK(cocoeval_load_buffer(&c, fine, strlen(fine), "f.json", 1, &e), &e);
    CHECK(c.n == 1 && c.c[0].id_int == LLONG_MIN && !c.c[0].id_str && !strcmp(c.c[0].tokens, "a"));
    cocoeval_captions_free(&c);
}

static int load(cocoeval_captions_t *c, const char *text, int is_results)
{
    err_t e = {0};
    int rc = cocoeval_load_buffer(c, text, strlen(text), is_results ? "r.json" : "a.json", is_results, &e);
    CHECK_OK(rc, &e);
    return rc;
}

static void test_match(void)
{
    cocoeval_captions_t ann, res, dup, str;
    cocoeval_set_t set;
    err_t e = {0};
    if (load(&ann, "{\"annotations\": [{\"image_id\": 9, \"caption\": \"A dog.\"}, {\"image_id\": 4, \"caption\": \"x\"},"
                   " {\"image_id\": 9, \"caption\": \"Dogs don't\"}, {\"image_id\": 2, \"caption\": \"y\"}]}", 0) ||
        load(&res, "[{\"image_id\": 9, \"caption\": \"The dog's\"}, {\"image_id\": 2, \"caption\": \"z\"}]", 1) ||
        load(&dup, "[{\"image_id\": 4, \"caption\": \"a\"}, {\"image_id\": 9, \"caption\": \"b\"},"
                   " {\"image_id\": 4, \"caption\": \"c\"}, {\"image_id\": 9, \"caption\": \"d\"}]", 1) ||
        load(&str, "[{\"image_id\": \"9\", \"caption\": \"a\"}]", 1))
        return;
    CHECK(cocoeval_match(&set, &res, &ann, 0, &e) == ERR_FORMAT &&
          strstr(e.msg, "a.json: annotation 1: image_id 4 has no entry in r.json (1 annotated images have none"));
    CHECK_OK(cocoeval_match(&set, &res, &ann, 1, &e), &e);
    CHECK(set.n == 2 && set.items[0].n_refs == 1 && set.items[1].n_refs == 2);
    CHECK(!strcmp(set.items[1].cand, "the dog 's") && !strcmp(set.items[1].refs[0], "a dog") &&
          !strcmp(set.items[1].refs[1], "dogs do n't"));
    cocoeval_set_free(&set);
    CHECK(cocoeval_match(&set, &dup, &ann, 1, &e) == ERR_FORMAT &&
          strstr(e.msg, "r.json: entry 2: image_id 4 already has a caption (entry 0)"));
    CHECK(cocoeval_match(&set, &str, &ann, 1, &e) == ERR_FORMAT &&
          strstr(e.msg, "r.json: entry 0: image_id \"9\" is not in the annotations (a.json has no caption for it)"));
    cocoeval_captions_free(&ann);
    cocoeval_captions_free(&res);
    cocoeval_captions_free(&dup);
    cocoeval_captions_free(&str);
}

static void test_missing_jar(void)
{
    cocoeval_opts_t o = {.meteor_jar = "/nonexistent/meteor-1.5.jar"};
    err_t e = {0};
    CHECK(cocoeval_check_opts(&o, &e) == ERR_IO && strstr(e.msg, "--meteor-jar /nonexistent/meteor-1.5.jar: No such file"));
}

int main(void)
{
    CHECK_RUN(test_fixture_per_image);
    CHECK_RUN(test_load_errors);
    CHECK_RUN(test_load_errors_jansson_words);
    CHECK_RUN(test_match);
    CHECK_RUN(test_missing_jar);
    return check_summary();
}
