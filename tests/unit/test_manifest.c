/* Manifest write -> read round trip (what goes in comes out: keys,
 * locations, captions with JSON-hostile characters, token ids), the
 * token-length statistics against a naive two-pass computation (tolerance
 * 1e-9 relative: the two formulas round differently in the last bits),
 * ClipCap's max_seq_len rule on both of its branches, the sharding rule's
 * properties, checksum verification, truncation detection, image reads from
 * files and tar ranges (bytes from the fixture generator). */
#include "check.h"
#include "core/fsutil.h"
#include "data/dataset.h"
#include "data/manifest.h"
#include "data/manifest_write.h"
#include "io/json_util.h"
#include "io/zio.h"

#define N_IMG 7

static const char *caps_of[N_IMG][3] = {
    {"A cat.", "Quote \" and backslash \\ and\nnewline\tand tab", NULL},
    {"caf\xc3\xa9 \xe2\x98\x95 \xf0\x9f\x98\x80", NULL, NULL},
    {"one", "two", "three"},
    {"ctrl \x01\x1f chars", NULL, NULL},
    {"x", NULL, NULL},
    {"a longer caption with many words in it for weight", "and another", NULL},
    {"last", NULL, NULL},
};

static void build_ds(ds_t *ds, int32_t ***ids, uint32_t **n_ids)
{
    err_t e = {0};
    CHECK_OK(ds_init(ds, "/data/root", 0, &e), &e);
    for (int i = N_IMG - 1; i >= 0; i--) { /* added in reverse: finalize sorts by key */
        char key[16], path[64];
        snprintf(key, sizeof key, "%d", i * 10);
        snprintf(path, sizeof path, i % 2 ? "shard%d.tar" : "dir/img %d.jpg", i);
        size_t idx;
        CHECK_OK(ds_add_image(ds, key, i < 4 ? "train" : "val", i % 2 ? MANIFEST_LOC_TAR : MANIFEST_LOC_FILE, path,
                              i % 2 ? 512u * (unsigned)i : 0, i % 2 ? 100u + (unsigned)i : 0, "mem", key, &idx, &e),
                 &e);
        for (int c = 0; c < 3 && caps_of[i][c]; c++)
            CHECK(ds_add_caption(ds, idx, caps_of[i][c], strlen(caps_of[i][c]), "mem", key, &e) == 0);
    }
    CHECK_OK(ds_finalize(ds, &e), &e);
    *ids = calloc(ds->n_captions, sizeof **ids);
    *n_ids = calloc(ds->n_captions, sizeof **n_ids);
    for (size_t c = 0; c < ds->n_captions; c++) {
        (*n_ids)[c] = (uint32_t)(c % 5 + 1);
        (*ids)[c] = malloc((*n_ids)[c] * sizeof ***ids);
        for (uint32_t k = 0; k < (*n_ids)[c]; k++) (*ids)[c][k] = (int32_t)(c * 1000 + k * 13 + 50000 * (k == 0));
    }
}

static void write_manifest(const char *dir, ds_t *ds, int32_t **ids, uint32_t *n_ids, int shards,
                           manifest_token_stats_t *st)
{
    err_t e = {0};
    size_t bounds[16];
    manifest_plan_shards(ds, shards, bounds);
    manifest_shard_info_t infos[16];
    uint64_t sum = 0, sumsq = 0;
    uint32_t mx = 0;
    for (size_t c = 0; c < ds->n_captions; c++) {
        sum += n_ids[c];
        sumsq += (uint64_t)n_ids[c] * n_ids[c];
        if (n_ids[c] > mx) mx = n_ids[c];
    }
    manifest_stats_from_sums(ds->n_captions, sum, sumsq, mx, st);
    for (int s = 0; s < shards; s++)
        CHECK_OK(manifest_write_shard(dir, ds, s, shards, bounds[s], bounds[s + 1], ids, n_ids, 3, &infos[s], &e), &e);
    const char *inputs[] = {"mem"};
    manifest_source_t src = {"coco", inputs, 1, "/data/root"};
    ds_summary_t summ = {0};
    CHECK_OK(ds_summary_add(&summ, ds, &e), &e);
    CHECK_OK(manifest_write_index(dir, &summ, &src, st, infos, shards, &e), &e);
    ds_summary_free(&summ);
}

/* The test data set written as a manifest of `shards` shards in dir. */
typedef struct {
    ds_t ds;
    int32_t **ids;
    uint32_t *n_ids;
    manifest_token_stats_t st;
} manifest_fixture;

static void fixture_write(manifest_fixture *f, const char *dir, int shards)
{
    build_ds(&f->ds, &f->ids, &f->n_ids);
    write_manifest(dir, &f->ds, f->ids, f->n_ids, shards, &f->st);
}

static void fixture_free(manifest_fixture *f)
{
    for (size_t c = 0; c < f->ds.n_captions; c++) free(f->ids[c]);
    free(f->ids);
    free(f->n_ids);
    ds_free(&f->ds);
}

static void test_round_trip(void)
{
    char dir[4096];
    check_tmpdir(dir, sizeof dir, "manifest_rt");
    ds_t ds;
    int32_t **ids;
    uint32_t *n_ids;
    build_ds(&ds, &ids, &n_ids);
    CHECK(ds.n_images == N_IMG);
    manifest_token_stats_t st;
    write_manifest(dir, &ds, ids, n_ids, 3, &st);

    manifest_t *m = NULL;
    err_t e = {0};
    CHECK_OK(manifest_open(&m, dir, &e), &e);
    if (!m) return;
    CHECK(manifest_num_shards(m) == 3);
    CHECK(manifest_num_images(m) == N_IMG && manifest_num_captions(m) == ds.n_captions);
    CHECK(manifest_token_stats(m)->max_seq_len == st.max_seq_len);
    CHECK(fabs(manifest_token_stats(m)->std - st.std) <= 1e-15 * st.std);
    CHECK(!strcmp(manifest_root(m), "/data/root") && !strcmp(manifest_source_format(m), "coco"));
    CHECK(manifest_num_splits(m) == 2 && !strcmp(manifest_split(m, 0)->name, "train") &&
          manifest_split(m, 0)->images == 4 && manifest_split(m, 1)->images == 3);
    size_t seen = 0;
    for (int s = 0; s < 3; s++) {
        CHECK_OK(manifest_verify_shard(m, s, &e), &e);
        manifest_shard_reader *r = NULL;
        CHECK_OK(manifest_shard_open(&r, m, s, &e), &e);
        if (!r) continue;
        manifest_record_t rec;
        int rc;
        while ((rc = manifest_shard_next(r, &rec, &e)) == 1) {
            const ds_image_t *im = &ds.images[seen];
            CHECK(!strcmp(rec.key, ds_str(&ds, im->key)));
            CHECK(!strcmp(rec.split, ds_str(&ds, im->split)));
            char want[256];
            snprintf(want, sizeof want, "/data/root/%s", ds_str(&ds, im->path));
            CHECK_MSG(!strcmp(rec.loc.path, want), "%s vs %s", rec.loc.path, want);
            CHECK(rec.loc.kind == im->kind && rec.loc.offset == im->offset && rec.loc.length == im->length);
            CHECK(rec.n_captions == im->n_captions);
            for (size_t c = 0; c < rec.n_captions; c++) {
                size_t ci = im->first_caption + c;
                CHECK(!strcmp(rec.captions[c], ds_str(&ds, ds.captions[ci].text)));
                CHECK(rec.n_tokens[c] == n_ids[ci] && !memcmp(rec.tokens[c], ids[ci], n_ids[ci] * sizeof(int32_t)));
            }
            seen++;
        }
        CHECK_OK(rc, &e);
        manifest_shard_close(r);
    }
    CHECK(seen == N_IMG);
    /* keys come out in numeric order although added in reverse */
    CHECK(!strcmp(ds_str(&ds, ds.images[0].key), "0") && !strcmp(ds_str(&ds, ds.images[N_IMG - 1].key), "60"));
    manifest_close(m);
    for (size_t c = 0; c < ds.n_captions; c++) free(ids[c]);
    free(ids);
    free(n_ids);
    ds_free(&ds);
}

static void test_corruption(void)
{
    char dir[4096], path[4300];
    check_tmpdir(dir, sizeof dir, "manifest_bad");
    manifest_fixture fx;
    fixture_write(&fx, dir, 2);
    manifest_t *m = NULL;
    err_t e = {0};
    CHECK_OK(manifest_open(&m, dir, &e), &e);
    /* flip one byte of shard 1 */
    snprintf(path, sizeof path, "%s/%s", dir, manifest_shard_info(m, 1)->file);
    uint8_t *data;
    size_t len;
    CHECK_OK(fs_read_all(path, &data, &len, &e), &e);
    data[len / 2] ^= 0x40;
    CHECK_OK(fs_write_atomic(path, data, len, &e), &e);
    CHECK(manifest_verify_shard(m, 1, &e) == ERR_FORMAT && strstr(e.msg, "checksum"));
    /* cut it short: the reader must fail, never report a clean end */
    CHECK_OK(fs_write_atomic(path, data, len / 2, &e), &e);
    manifest_shard_reader *r = NULL;
    int rc = manifest_shard_open(&r, m, 1, &e);
    if (!rc) {
        manifest_record_t rec;
        while ((rc = manifest_shard_next(r, &rec, &e)) == 1) {}
    }
    CHECK(rc < 0);
    CHECK(strstr(e.msg, "shard-00001-of-00002") != NULL);
    manifest_shard_close(r);
    free(data);
    CHECK(manifest_shard_open(&r, m, 7, &e) == ERR_ARG);
    manifest_close(m);
    /* an index of another version is refused */
    snprintf(path, sizeof path, "%s/index.json", dir);
    json_t *doc = NULL;
    CHECK_OK(json_load_path(&doc, path, &e), &e);
    json_object_set_new(doc, "version", json_integer(MANIFEST_VERSION + 1));
    json_dump_file(doc, path, 0);
    json_decref(doc);
    CHECK(manifest_open(&m, dir, &e) == ERR_UNSUPPORTED && strstr(e.msg, "index.json"));
    CHECK(m == NULL);
    fixture_free(&fx);
}

/* A shard re-compressed with other content (a valid zstd file, the same
 * header and record count: only a caption changed) is refused when opened,
 * naming the shard and both checksums; the index's own checksum of the
 * original passes. */
static void test_rewritten_shard(void)
{
    char dir[4096], path[4300];
    check_tmpdir(dir, sizeof dir, "manifest_rewritten");
    manifest_fixture fx;
    fixture_write(&fx, dir, 2);
    manifest_t *m = NULL;
    err_t e = {0};
    CHECK_OK(manifest_open(&m, dir, &e), &e);
    snprintf(path, sizeof path, "%s/%s", dir, manifest_shard_info(m, 0)->file);
    uint8_t *text;
    size_t len;
    CHECK_OK(zio_read_all(path, &text, &len, &e), &e);
    char *at = strstr((char *)text, "A cat.");
    CHECK(at != NULL);
    if (at) memcpy(at, "A dog.", 6);
    zio_writer *w = NULL;
    CHECK_OK(zio_writer_open(&w, path, 3, &e), &e);
    CHECK_OK(zio_write(w, text, len, &e), &e);
    CHECK_OK(zio_writer_commit(w, &e), &e);
    free(text);
    manifest_shard_reader *r = NULL;
    CHECK(manifest_shard_open(&r, m, 0, &e) == ERR_FORMAT);
    CHECK(r == NULL);
    CHECK_MSG(strstr(e.msg, manifest_shard_info(m, 0)->file) && strstr(e.msg, manifest_shard_info(m, 0)->xxh128) &&
                  strstr(e.msg, "checksum"),
              "%s", e.msg);
    CHECK_OK(manifest_shard_open(&r, m, 1, &e), &e); /* the untouched shard still opens */
    manifest_shard_close(r);
    manifest_close(m);
    fixture_free(&fx);
}

/* Naive two-pass mean and unbiased std in long double. */
static void naive_stats(const uint32_t *len, size_t n, double *mean, double *std, uint32_t *mx)
{
    long double s = 0, ss = 0;
    *mx = 0;
    for (size_t i = 0; i < n; i++) {
        s += len[i];
        if (len[i] > *mx) *mx = len[i];
    }
    long double mu = s / n;
    for (size_t i = 0; i < n; i++) ss += (len[i] - mu) * (len[i] - mu);
    *mean = (double)mu;
    *std = n > 1 ? (double)sqrtl(ss / (n - 1)) : 0.0;
}

static void check_stats_case(const uint32_t *len, size_t n)
{
    uint64_t sum = 0, sumsq = 0;
    uint32_t mx = 0;
    for (size_t i = 0; i < n; i++) {
        sum += len[i];
        sumsq += (uint64_t)len[i] * len[i];
        if (len[i] > mx) mx = len[i];
    }
    manifest_token_stats_t st;
    manifest_stats_from_sums(n, sum, sumsq, mx, &st);
    double mean, sd;
    uint32_t nmx;
    naive_stats(len, n, &mean, &sd, &nmx);
    CHECK(st.count == n && st.max == nmx);
    CHECK_MSG(fabs(st.mean - mean) <= 1e-9 * mean, "mean %.17g vs %.17g", st.mean, mean);
    CHECK_MSG(fabs(st.std - sd) <= 1e-9 * (sd + 1e-300), "std %.17g vs %.17g", st.std, sd);
    double lim = mean + 10 * sd;
    uint32_t want = lim < nmx ? (uint32_t)lim : nmx;
    CHECK_MSG(st.max_seq_len == want, "max_seq_len %u vs %u", st.max_seq_len, want);
}

static void test_stats(void)
{
    /* one outlier among many short captions: mean + 10 std < max */
    static uint32_t a[1001];
    for (int i = 0; i < 1000; i++) a[i] = 8 + (uint32_t)(i % 7);
    a[1000] = 400;
    check_stats_case(a, 1001);
    /* spread lengths: max wins */
    uint32_t b[] = {1, 5, 9, 13, 30};
    check_stats_case(b, 5);
    uint32_t c[] = {12};
    check_stats_case(c, 1);
    uint32_t d[] = {7, 7, 7, 7};
    check_stats_case(d, 4);
    manifest_token_stats_t st;
    manifest_stats_from_sums(0, 0, 0, 0, &st);
    CHECK(st.count == 0 && st.max_seq_len == 0);
    /* the first case's rule branch really is the mean + 10 std one */
    uint64_t s = 0, ss = 0;
    for (int i = 0; i < 1001; i++) { s += a[i]; ss += (uint64_t)a[i] * a[i]; }
    manifest_stats_from_sums(1001, s, ss, 400, &st);
    CHECK(st.max_seq_len < 400 && st.max_seq_len > 13);
}

static void test_plan(void)
{
    ds_t ds;
    err_t e = {0};
    CHECK_OK(ds_init(&ds, "", 0, &e), &e);
    uint64_t w[200], total = 0, wmax = 0;
    for (int i = 0; i < 200; i++) {
        char key[16], text[200];
        snprintf(key, sizeof key, "%d", i);
        size_t idx;
        CHECK_OK(ds_add_image(&ds, key, "train", MANIFEST_LOC_FILE, key, 0, 0, "f", key, &idx, &e), &e);
        int len = 5 + (i * 37) % 150;
        memset(text, 'a' + i % 26, (size_t)len);
        CHECK(ds_add_caption(&ds, idx, text, (size_t)len, "f", key, &e) == 0);
    }
    CHECK_OK(ds_finalize(&ds, &e), &e);
    for (size_t i = 0; i < ds.n_images; i++) {
        w[i] = 64 + 16 + ds.captions[ds.images[i].first_caption].len;
        total += w[i];
        if (w[i] > wmax) wmax = w[i];
    }
    for (int n = 1; n <= 9; n += 4) {
        size_t b[10], b2[10];
        manifest_plan_shards(&ds, n, b);
        manifest_plan_shards(&ds, n, b2);
        CHECK(!memcmp(b, b2, sizeof(size_t) * (size_t)(n + 1)));
        CHECK(b[0] == 0 && b[n] == ds.n_images);
        for (int s = 0; s < n; s++) {
            CHECK(b[s] <= b[s + 1]);
            uint64_t sw = 0;
            for (size_t i = b[s]; i < b[s + 1]; i++) sw += w[i];
            double ideal = (double)total / n;
            CHECK_MSG(fabs((double)sw - ideal) <= (double)wmax, "n=%d shard %d weight %llu ideal %.0f", n, s,
                      (unsigned long long)sw, ideal);
        }
    }
    size_t b[300];
    manifest_plan_shards(&ds, 250, b); /* more shards than images: some empty, all covered */
    CHECK(b[0] == 0 && b[250] == 200);
    for (int s = 0; s < 250; s++) CHECK(b[s] <= b[s + 1]);
    ds_free(&ds);
    int own[8];
    CHECK(manifest_rank_shards(5, 0, 2, own, 8) == 3 && own[0] == 0 && own[1] == 2 && own[2] == 4);
    CHECK(manifest_rank_shards(5, 1, 2, own, 8) == 2 && own[0] == 1 && own[1] == 3);
    CHECK(manifest_rank_shards(5, 0, 1, own, 2) == 5);
}

static void test_read_image(void)
{
    char path[4096], exp_path[4096];
    err_t e = {0};
    json_t *exp = NULL;
    CHECK_OK(json_load_path(&exp, check_fixture(exp_path, sizeof exp_path, "data/expected.json"), &e), &e);
    if (!exp) return;
    const char *hex = json_string_value(json_object_get(exp, "jpeg_bytes_hex"));
    size_t n = strlen(hex) / 2;
    uint8_t want[256];
    for (size_t i = 0; i < n; i++) sscanf(hex + 2 * i, "%2hhx", &want[i]);
    manifest_record_t rec = {.key = "1"};
    rec.loc.kind = MANIFEST_LOC_FILE;
    rec.loc.path = check_fixture(path, sizeof path, "data/coco/train2014/a1.jpg");
    uint8_t *data = NULL;
    size_t len = 0;
    CHECK_OK(manifest_read_image(&rec, &data, &len, &e), &e);
    CHECK(len == n && data && !memcmp(data, want, n));
    free(data);
    const json_t *loc = json_object_get(json_object_get(json_object_get(exp, "cc_tar_notsv"), "tar"), "000000000");
    rec.loc.kind = MANIFEST_LOC_TAR;
    rec.loc.path = check_fixture(path, sizeof path, "data/cc/wds/00000.tar");
    rec.loc.offset = (uint64_t)json_integer_value(json_object_get(loc, "offset"));
    rec.loc.length = (uint64_t)json_integer_value(json_object_get(loc, "length"));
    rec.key = "000000000"; /* the member's name gives the key */
    CHECK_OK(manifest_read_image(&rec, &data, &len, &e), &e);
    CHECK(len == n && data && !memcmp(data, want, n));
    free(data);
    /* the bytes at the offset belong to another key: refused, naming both */
    rec.key = "000000001";
    CHECK_MSG(manifest_read_image(&rec, &data, &len, &e) == ERR_FORMAT && !data && strstr(e.msg, "000000000.jpg") &&
                  strstr(e.msg, "not key 000000001"),
              "%s", e.msg);
    rec.key = "000000000";
    rec.loc.offset -= 512; /* not at a member's data */
    CHECK(manifest_read_image(&rec, &data, &len, &e) == ERR_FORMAT && !data && strstr(e.msg, "00000.tar"));
    rec.loc.offset = 1u << 30; /* past the end */
    rec.key = "1";
    CHECK(manifest_read_image(&rec, &data, &len, &e) < 0 && strstr(e.msg, "00000.tar") && strstr(e.msg, "record 1"));
    rec.loc.kind = MANIFEST_LOC_FILE;
    rec.loc.path = "/nonexistent/x.jpg";
    CHECK(manifest_read_image(&rec, &data, &len, &e) == ERR_IO && strstr(e.msg, "/nonexistent/x.jpg"));
    json_decref(exp);
}

int main(void)
{
    CHECK_RUN(test_round_trip);
    CHECK_RUN(test_corruption);
    CHECK_RUN(test_rewritten_shard);
    CHECK_RUN(test_stats);
    CHECK_RUN(test_plan);
    CHECK_RUN(test_read_image);
    return check_summary();
}
