/* Readers on tests/fixtures/data (written by tests/gen/gen_data_fixtures.py,
 * whose expected.json states, case by case and independently of this code,
 * which images and captions a reader following docs/manifest.md keeps and
 * how many records it rejects for each reason). Exact comparisons: these
 * are counts and strings, no tolerance applies. */
#include "check.h"
#include "data/dataset.h"
#include "data/jscan.h"
#include "data/reader_cc.h"
#include "data/reader_coco.h"
#include "data/reader_karpathy.h"
#include "io/json_util.h"

static json_t *expected;

static const json_t *exp_case(const char *name)
{
    const json_t *c = json_object_get(expected, name);
    CHECK_MSG(c != NULL, "expected.json has no case %s", name);
    return c;
}

/* Every kept key with its captions in order, every reject reason count, and
 * that every reject names a file and a record. */
static void check_ds(const ds_t *ds, const json_t *exp, const char *what)
{
    const json_t *keys = json_object_get(exp, "keys");
    CHECK_MSG(ds->n_images == json_object_size(keys), "%s: %zu images, expected %zu", what, ds->n_images,
              json_object_size(keys));
    for (size_t i = 0; i < ds->n_images; i++) {
        const ds_image_t *im = &ds->images[i];
        const json_t *caps = json_object_get(keys, ds_str(ds, im->key));
        CHECK_MSG(caps != NULL, "%s: unexpected key %s", what, ds_str(ds, im->key));
        if (!caps) continue;
        CHECK_MSG(im->n_captions == json_array_size(caps), "%s: key %s has %u captions", what, ds_str(ds, im->key),
                  im->n_captions);
        for (uint32_t c = 0; c < im->n_captions && c < json_array_size(caps); c++) {
            const ds_caption_t *cap = &ds->captions[im->first_caption + c];
            const char *want = json_string_value(json_array_get(caps, c));
            CHECK_MSG(cap->len == strlen(want) && !memcmp(ds_str(ds, cap->text), want, cap->len),
                      "%s: key %s caption %u is '%s', expected '%s'", what, ds_str(ds, im->key), c,
                      ds_str(ds, cap->text), want);
        }
        if (i) CHECK_MSG(ds_key_cmp(ds_str(ds, ds->images[i - 1].key), ds_str(ds, im->key)) < 0, "%s: key order", what);
    }
    const json_t *rej = json_object_get(exp, "rejects");
    uint64_t total = 0;
    for (int r = 0; r < DS_NUM_REASONS; r++) {
        json_t *v = json_object_get(rej, ds_reason_name(r));
        uint64_t want = v ? (uint64_t)json_integer_value(v) : 0;
        CHECK_MSG(ds->reason_count[r] == want, "%s: %llu rejects '%s', expected %llu", what,
                  (unsigned long long)ds->reason_count[r], ds_reason_name(r), (unsigned long long)want);
        total += ds->reason_count[r];
    }
    CHECK(total == ds->n_rejects);
    for (size_t i = 0; i < ds->n_rejects; i++) {
        CHECK(*ds_str(ds, ds->rejects[i].file) != 0);
        CHECK(*ds_str(ds, ds->rejects[i].record) != 0);
        CHECK(*ds_str(ds, ds->rejects[i].detail) != 0);
    }
    json_t *ir = json_object_get(exp, "input_records");
    CHECK_MSG(ds->input_records == (uint64_t)json_integer_value(ir), "%s: %llu input records", what,
              (unsigned long long)ds->input_records);
}

static void fixture(char *buf, size_t cap, const char *rel) { check_fixture(buf, cap, rel); }

/* A finalized data set over the COCO images (checked on disk) from the
 * fixture files rels[] (NULL-ended), read in order; splits NULL = all. */
static void load_json_ds(ds_t *ds, const char *splits, int (*read)(ds_t *, const char *, err_t *),
                         const char *const *rels)
{
    char root[4096], path[4200];
    err_t e = {0};
    fixture(root, sizeof root, "data/coco");
    CHECK_OK(ds_init(ds, root, 1, &e), &e);
    CHECK_OK(ds_select_splits(ds, splits, &e), &e);
    for (; *rels; rels++) CHECK_OK(read(ds, check_fixture(path, sizeof path, *rels), &e), &e);
    CHECK_OK(ds_finalize(ds, &e), &e);
}

static void test_coco(void)
{
    ds_t ds;
    load_json_ds(&ds, NULL, reader_coco_read, (const char *const[]){"data/coco/annotations/captions_train2014.json", NULL});
    const json_t *exp = exp_case("coco_train");
    check_ds(&ds, exp, "coco train");
    const json_t *paths = json_object_get(exp, "paths");
    for (size_t i = 0; i < ds.n_images; i++) {
        CHECK(!strcmp(ds_str(&ds, ds.images[i].split), "train2014"));
        const json_t *p = json_object_get(paths, ds_str(&ds, ds.images[i].key));
        CHECK(p && !strcmp(json_string_value(p), ds_str(&ds, ds.images[i].path)));
        CHECK(ds.images[i].kind == MANIFEST_LOC_FILE);
    }
    /* the file and the record are named in each reject */
    int saw_dup = 0;
    for (size_t i = 0; i < ds.n_rejects; i++) {
        CHECK(strstr(ds_str(&ds, ds.rejects[i].file), "captions_train2014.json") != NULL);
        if (ds.rejects[i].reason == DS_DUPLICATE_ANNOTATION)
            saw_dup = strstr(ds_str(&ds, ds.rejects[i].record), "annotation 9 (id 100)") != NULL;
    }
    CHECK(saw_dup);
    ds_free(&ds);
}

static void test_coco_two_files(void)
{
    ds_t ds;
    load_json_ds(&ds, NULL, reader_coco_read,
                 (const char *const[]){"data/coco/annotations/captions_val2014.json",
                                       "data/coco/annotations/captions_train2014.json", NULL});
    const json_t *tr = exp_case("coco_train"), *va = exp_case("coco_val");
    CHECK(ds.n_images == json_object_size(json_object_get(tr, "keys")) + json_object_size(json_object_get(va, "keys")));
    /* numeric key order across files: 1, 2, 10, 20, 21 */
    const char *order[] = {"1", "2", "10", "20", "21"};
    for (size_t i = 0; i < ds.n_images && i < 5; i++) CHECK(!strcmp(ds_str(&ds, ds.images[i].key), order[i]));
    CHECK(ds.n_images == 5 && !strcmp(ds_str(&ds, ds.images[3].split), "val2014"));
    ds_free(&ds);
}

static void test_coco_fatal(void)
{
    char root[4096], path[4200], want[64];
    fixture(root, sizeof root, "data/coco");
    ds_t ds;
    err_t e = {0};
    CHECK_OK(ds_init(&ds, root, 1, &e), &e);
    const json_t *m = exp_case("malformed");
    snprintf(want, sizeof want, "malformed.json:%lld:%lld:", json_integer_value(json_object_get(m, "line")),
             json_integer_value(json_object_get(m, "column")));
    fixture(path, sizeof path, "data/coco/annotations/malformed.json");
    CHECK(reader_coco_read(&ds, path, &e) == ERR_FORMAT);
    CHECK_MSG(strstr(e.msg, want) != NULL, "'%s' lacks '%s'", e.msg, want);
    snprintf(want, sizeof want, "latin1.json:%lld:", json_integer_value(json_object_get(exp_case("latin1"), "line")));
    fixture(path, sizeof path, "data/coco/annotations/latin1.json");
    CHECK(reader_coco_read(&ds, path, &e) == ERR_FORMAT);
    CHECK_MSG(strstr(e.msg, want) != NULL, "'%s' lacks '%s'", e.msg, want);
    fixture(path, sizeof path, "data/coco/annotations/not_coco.json");
    CHECK(reader_coco_read(&ds, path, &e) == ERR_FORMAT);
    CHECK(strstr(e.msg, "not_coco.json") && strstr(e.msg, "'annotations'"));
    fixture(path, sizeof path, "data/coco/annotations/absent.json");
    CHECK(reader_coco_read(&ds, path, &e) == ERR_IO);
    CHECK(strstr(e.msg, "absent.json") != NULL);
    ds_free(&ds);
}

static void run_karpathy(const char *splits, const char *case_name)
{
    ds_t ds;
    load_json_ds(&ds, splits, reader_karpathy_read, (const char *const[]){"data/karpathy/dataset_coco.json", NULL});
    const json_t *exp = exp_case(case_name);
    check_ds(&ds, exp, case_name);
    const json_t *sp = json_object_get(exp, "splits");
    for (size_t i = 0; sp && i < ds.n_images; i++) {
        const json_t *s = json_object_get(sp, ds_str(&ds, ds.images[i].key));
        CHECK(s && !strcmp(json_string_value(s), ds_str(&ds, ds.images[i].split)));
    }
    const json_t *ex = json_object_get(exp, "excluded_images");
    if (ex) {
        CHECK(ds.excluded_images == (uint64_t)json_integer_value(ex));
        CHECK(ds.excluded_captions == (uint64_t)json_integer_value(json_object_get(exp, "excluded_captions")));
    }
    ds_free(&ds);
}

static void test_karpathy(void)
{
    run_karpathy(NULL, "karpathy_all");
    run_karpathy("train,restval", "karpathy_train_restval");
    ds_t ds;
    err_t e = {0};
    CHECK_OK(ds_init(&ds, "", 1, &e), &e);
    CHECK(ds_select_splits(&ds, "train,,val", &e) == ERR_ARG);
    ds_free(&ds);
}

static void run_cc(int tar, const char *tsv_rel, const char *case_name)
{
    char root[4096], tsv[4200];
    fixture(root, sizeof root, tar ? "data/cc/wds" : "data/cc/files");
    if (tsv_rel) fixture(tsv, sizeof tsv, tsv_rel);
    ds_t ds;
    err_t e = {0};
    CHECK_OK(ds_init(&ds, root, 1, &e), &e);
    if (tar) CHECK_OK(reader_cc_tar_read(&ds, tsv_rel ? tsv : NULL, "train", &e), &e);
    else CHECK_OK(reader_cc_files_read(&ds, tsv_rel ? tsv : NULL, "train", &e), &e);
    CHECK_OK(ds_finalize(&ds, &e), &e);
    const json_t *exp = exp_case(case_name);
    check_ds(&ds, exp, case_name);
    const json_t *locs = json_object_get(exp, "tar");
    for (size_t i = 0; i < ds.n_images; i++) {
        const ds_image_t *im = &ds.images[i];
        CHECK(!strcmp(ds_str(&ds, im->split), "train"));
        CHECK(im->kind == (tar ? MANIFEST_LOC_TAR : MANIFEST_LOC_FILE));
        if (!locs) continue;
        const json_t *l = json_object_get(locs, ds_str(&ds, im->key));
        CHECK_MSG(l && !strcmp(json_string_value(json_object_get(l, "path")), ds_str(&ds, im->path)) &&
                      (uint64_t)json_integer_value(json_object_get(l, "offset")) == im->offset &&
                      (uint64_t)json_integer_value(json_object_get(l, "length")) == im->length,
                  "tar location of %s: %s %llu+%llu", ds_str(&ds, im->key), ds_str(&ds, im->path),
                  (unsigned long long)im->offset, (unsigned long long)im->length);
    }
    ds_free(&ds);
}

static void test_cc(void)
{
    run_cc(0, "data/cc/cc.tsv", "cc_files_tsv");
    run_cc(0, NULL, "cc_files_notsv");
    run_cc(1, NULL, "cc_tar_notsv");
}

static void test_tsv_rows(void)
{
    ds_t ds;
    err_t e = {0};
    CHECK_OK(ds_init(&ds, "", 1, &e), &e);
    const char text[] = "caption\turl\nA\thttp://a\n\nB\thttp://b\tx\nC\thttp://a\r\nD\thttp://d";
    char *buf = malloc(sizeof text);
    memcpy(buf, text, sizeof text);
    cc_tsv_t t;
    CHECK_OK(cc_tsv_parse(&t, &ds, buf, sizeof text - 1, "mem.tsv", &e), &e);
    CHECK(t.n_rows == 5);
    CHECK(ds.reason_count[DS_TSV_COLUMNS] == 2);        /* the empty line and the 3-column line */
    CHECK(strstr(ds_str(&ds, ds.rejects[0].record), "line 3") != NULL);
    cc_tsv_row r;
    size_t i = cc_tsv_find(&t, "http://a", 8);
    CHECK(i == 0);
    cc_tsv_row_at(&t, i, &r);
    CHECK(r.line == 2);
    cc_tsv_take(&t, i);
    i = cc_tsv_find(&t, "http://a", 8);
    CHECK(i == 3);
    cc_tsv_row_at(&t, i, &r);
    CHECK(r.line == 5 && r.url_len == 8);             /* the \r is not part of the url */
    cc_tsv_take(&t, i);
    CHECK(cc_tsv_find(&t, "http://a", 8) == SIZE_MAX);
    i = cc_tsv_find(&t, "http://d", 8);                /* last line without \n */
    CHECK(i == 4);
    cc_tsv_row_at(&t, i, &r);
    CHECK(r.caption_len == 1 && r.caption[0] == 'D' && r.line == 6);
    CHECK(cc_tsv_find(&t, "http://b", 8) == SIZE_MAX);
    CHECK(cc_tsv_is_bad(&t, 1) && cc_tsv_is_bad(&t, 2) && !cc_tsv_is_bad(&t, 3));
    cc_tsv_free(&t);
    ds_free(&ds);
}

/* Validity per RFC 8259, decided by hand for each document. */
static void test_jscan(void)
{
    static const struct { const char *doc; int ok; } cases[] = {
        {"{}", 1}, {"[]", 1}, {" [1, -0, 2.5e-3, true, false, null, \"x\"] ", 1}, {"{\"a\": {\"b\": []}}", 1},
        {"", 0}, {"[1,]", 0}, {"{\"a\" 1}", 0}, {"{\"a\": 1,}", 0}, {"[01]", 0}, {"[1.]", 0}, {"[.5]", 0},
        {"[+1]", 0}, {"[tru]", 0}, {"\"a\tb\"", 0}, {"\"\\x\"", 0}, {"\"\\ud800\"", 0}, {"\"\\udc00\"", 0},
        {"\"\\u0000\"", 0}, {"[1] [2]", 0}, {"{\"a\":1}}", 0}, {"[\"\xc3\"]", 0}, {"\"\\u12\"", 0}, {"{1: 2}", 0},
        {"\"\\ud83d\\ude00\"", 1}, {"[[[[[[[[[[1]]]]]]]]]]", 1}, {"{\"a\":1,\"a\":2}", 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *buf = strdup(cases[i].doc);
        jscan_t d;
        err_t e = {0};
        int rc = jscan_parse(&d, buf, strlen(buf), "t.json", &e);
        CHECK_MSG((rc == 0) == cases[i].ok, "case %zu '%s': rc %d %s", i, cases[i].doc, rc, e.msg);
        if (rc) CHECK(rc == ERR_FORMAT && !strncmp(e.msg, "t.json:1:", 9));
        jscan_free(&d);
        free(buf);
    }
    /* decoding in place, navigation, integer range */
    char doc[] = "{\"s\": \"caf\\u00e9 \\ud83d\\ude00 \\\"q\\\" \\n\", \"n\": [1, 2, 3], \"big\": 9223372036854775807,\n"
                 " \"huge\": 9223372036854775808, \"neg\": -9223372036854775808, \"r\": 1.5, \"s\": \"second\"}";
    jscan_t d;
    err_t e = {0};
    CHECK_OK(jscan_parse(&d, doc, strlen(doc), "t.json", &e), &e);
    const char *s;
    size_t n;
    CHECK_OK(jscan_field_str(&d, 0, "s", &s, &n, &e), &e);
    CHECK(n == strlen("caf\xc3\xa9 \xf0\x9f\x98\x80 \"q\" \n") && !strcmp(s, "caf\xc3\xa9 \xf0\x9f\x98\x80 \"q\" \n"));
    uint32_t arr;
    CHECK_OK(jscan_field_array(&d, 0, "n", &arr, &e), &e);
    CHECK(jscan_count(&d, arr) == 3 && jscan_count(&d, 0) == 7);
    long long v;
    CHECK_OK(jscan_field_int(&d, 0, "big", &v, &e), &e);
    CHECK(v == 9223372036854775807LL);
    CHECK(jscan_field_int(&d, 0, "huge", &v, &e) == ERR_FORMAT && strstr(e.msg, "'huge'"));
    CHECK_OK(jscan_field_int(&d, 0, "neg", &v, &e), &e);
    CHECK(v == (-9223372036854775807LL - 1));
    CHECK(jscan_field_int(&d, 0, "r", &v, &e) == ERR_FORMAT && strstr(e.msg, "not an integer"));
    CHECK(jscan_field_int(&d, 0, "absent", &v, &e) == ERR_FORMAT && strstr(e.msg, "missing"));
    CHECK(jscan_field_str(&d, 0, "n", &s, &n, &e) == ERR_FORMAT && strstr(e.msg, "not a string"));
    jscan_free(&d);
    /* positions count the file's lines, not the newlines that escapes
     * decode to: the error is on line 3, column 5 */
    char bad[] = "[\"a\\nb\\nc\",\n \"x\",\n  1 2]";
    CHECK(jscan_parse(&d, bad, strlen(bad), "t.json", &e) == ERR_FORMAT);
    CHECK_MSG(strstr(e.msg, "t.json:3:5:") != NULL, "%s", e.msg);
    jscan_free(&d);
}

static void test_utf8_and_keys(void)
{
    CHECK(utf8_valid("plain", 5));
    CHECK(utf8_valid("caf\xc3\xa9 \xe2\x98\x95 \xf0\x9f\x98\x80", 15));
    CHECK(!utf8_valid("caf\xe9", 4));
    CHECK(!utf8_valid("\xc0\xaf", 2));          /* overlong '/' */
    CHECK(!utf8_valid("\xed\xa0\x80", 3));      /* surrogate */
    CHECK(!utf8_valid("\xf4\x90\x80\x80", 4));  /* > U+10FFFF */
    CHECK(!utf8_valid("\xe2\x98", 2));          /* cut */
    CHECK(ds_key_cmp("9", "10") < 0);
    CHECK(ds_key_cmp("000000009", "10") < 0);
    CHECK(ds_key_cmp("10", "10") == 0);
    CHECK(ds_key_cmp("a10", "a9") < 0);         /* not all digits: bytewise */
}

int main(void)
{
    char path[4096];
    err_t e = {0};
    if (json_load_path(&expected, check_fixture(path, sizeof path, "data/expected.json"), &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    CHECK_RUN(test_coco);
    CHECK_RUN(test_coco_two_files);
    CHECK_RUN(test_coco_fatal);
    CHECK_RUN(test_karpathy);
    CHECK_RUN(test_cc);
    CHECK_RUN(test_tsv_rows);
    CHECK_RUN(test_utf8_and_keys);
    CHECK_RUN(test_jscan);
    json_decref(expected);
    return check_summary();
}
