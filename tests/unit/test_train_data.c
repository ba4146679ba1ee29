/* train_data (the trainer's example set) and store_lookup_embedding:
 * examples come out in manifest order with their token ids cut to
 * max_seq_len and padded with -1, and each batch's embeddings are the
 * newest across environments (an fp16 record in a newer environment
 * shadows an fp32 one; a newer extraction failure drops the image and its
 * captions). Expected values come from the inputs the test writes, not from
 * the code under test; embedding values are multiples of 1/4 below 64, so
 * fp16 holds them exactly and every comparison is exact. A store missing an
 * image, embeddings of two sizes and a too-small lookup buffer are refused
 * with the key named. */
#include "check.h"
#include "data/dataset.h"
#include "data/manifest_tokens.h"
#include "data/manifest_write.h"
#include "data/train_data.h"

#define N_IMG 6
#define CAPS 20 /* per image; caption 0 of image 5 is the long outlier */
#define DIM 5
#define LONG 40

static int32_t tok_id(int img, int cap, int j) { return 50000 + img * 1000 + cap * 7 + j; }
static int tok_len(int img, int cap) { return img == 5 && cap == 0 ? LONG : 3; }
static float emb_val(int img, int j, int newer) { return (float)(img * 8 + j) * 0.25f + (newer ? 20.0f : 0.0f); }

static void write_manifest(const char *dir)
{
    err_t e = {0};
    ds_t ds;
    CHECK_OK(ds_init(&ds, "/nowhere", 0, &e), &e);
    for (int i = 0; i < N_IMG; i++) {
        char key[8];
        snprintf(key, sizeof key, "a%d", i);
        size_t idx;
        CHECK_OK(ds_add_image(&ds, key, i == 4 ? "val" : "train", MANIFEST_LOC_FILE, key, 0, 0, "mem", key, &idx, &e),
                 &e);
        for (int c = 0; c < CAPS; c++) CHECK(ds_add_caption(&ds, idx, "caption", 7, "mem", key, &e) == 0);
    }
    CHECK_OK(ds_finalize(&ds, &e), &e);
    int32_t **ids = calloc(ds.n_captions, sizeof *ids);
    uint32_t *n_ids = calloc(ds.n_captions, sizeof *n_ids);
    uint64_t sum = 0, sumsq = 0;
    uint32_t mx = 0;
    for (size_t c = 0; c < ds.n_captions; c++) {
        int img = (int)(c / CAPS), cap = (int)(c % CAPS); /* keys a0..a5 sort as added */
        n_ids[c] = (uint32_t)tok_len(img, cap);
        ids[c] = malloc(n_ids[c] * sizeof **ids);
        for (uint32_t j = 0; j < n_ids[c]; j++) ids[c][j] = tok_id(img, cap, (int)j);
        sum += n_ids[c], sumsq += (uint64_t)n_ids[c] * n_ids[c], mx = n_ids[c] > mx ? n_ids[c] : mx;
    }
    manifest_token_stats_t st;
    manifest_stats_from_sums(ds.n_captions, sum, sumsq, mx, &st);
    size_t bounds[3];
    manifest_shard_info_t info[2];
    manifest_plan_shards(&ds, 2, bounds);
    for (int s = 0; s < 2; s++)
        CHECK_OK(manifest_write_shard(dir, &ds, s, 2, bounds[s], bounds[s + 1], ids, n_ids, 1, &info[s], &e), &e);
    const char *inputs[] = {"mem"};
    manifest_source_t src = {"coco", inputs, 1, "/nowhere"};
    ds_summary_t summ = {0};
    CHECK_OK(ds_summary_add(&summ, &ds, &e), &e);
    CHECK_OK(manifest_write_index(dir, &summ, &src, &st, info, 2, &e), &e);
    ds_summary_free(&summ);
    for (size_t c = 0; c < ds.n_captions; c++) free(ids[c]);
    free(ids);
    free(n_ids);
    ds_free(&ds);
}

/* images [from, to) as embeddings of dim dims[i] (0 = leave out, -1 = a
 * failure) into environment NAME with generation gen, then consolidated */
static void write_env(const char *dir, const char *name, const int *dims, uint64_t gen, enum store_dtype dt)
{
    err_t e = {0};
    store_env *env = NULL;
    CHECK_OK(store_env_create(&env, dir, name, 0, &e), &e);
    if (!env) return;
    char keys[N_IMG][8];
    float embs[N_IMG][DIM + 1];
    store_record recs[N_IMG];
    store_failure fail = {.generation = gen};
    snprintf(fail.reason, sizeof fail.reason, "decode");
    store_put puts[N_IMG];
    size_t n = 0;
    for (int i = 0; i < N_IMG; i++) {
        if (!dims[i]) continue;
        snprintf(keys[i], sizeof keys[i], "a%d", i);
        for (int j = 0; j <= DIM; j++) embs[i][j] = emb_val(i, j, gen > 1);
        memset(&recs[i], 0, sizeof recs[i]);
        recs[i].dtype = dt;
        recs[i].dim = (uint32_t)(dims[i] > 0 ? dims[i] : DIM);
        recs[i].generation = gen;
        snprintf(recs[i].model, sizeof recs[i].model, "%032d", 0);
        snprintf(recs[i].content_hash, sizeof recs[i].content_hash, "%032d", i);
        puts[n++] = dims[i] > 0 ? (store_put){.key = keys[i], .rec = &recs[i], .embedding = embs[i]}
                                : (store_put){.key = keys[i], .failure = &fail};
    }
    CHECK_OK(store_env_write(env, puts, n, &e), &e);
    store_env_close(env);
    store_consolidation c;
    CHECK_OK(store_consolidate(dir, &c, &e), &e); /* readers see the pack, as after extract */
}

static void test_examples_and_batches(void)
{
    char man[4096], st[4096];
    check_tmpdir(man, sizeof man, "train-data-man");
    check_tmpdir(st, sizeof st, "train-data-store");
    write_manifest(man);
    /* older fp32 copies of everything; newer: a1 re-encoded as fp16, a2 failed */
    write_env(st, "rank-00000-of-00002", (const int[N_IMG]){DIM, DIM, DIM, DIM, DIM, DIM}, 1, STORE_FP32);
    write_env(st, "rank-00001-of-00002", (const int[N_IMG]){0, DIM, -1, 0, 0, 0}, 2, STORE_FP16);
    err_t e = {0};
    train_data d;
    CHECK_OK(train_data_open(&d, man, NULL, st, &e), &e);
    /* 119 lengths 3 and one 40: mean + 10 std = 37.08 (numpy), so L = 37 */
    CHECK_MSG(d.L == 37 && d.D == DIM, "L %d DIM %d", d.L, d.D);
    CHECK(d.n_images == N_IMG - 1 && d.n_dropped_images == 1 && d.n_dropped_examples == CAPS);
    CHECK(d.n_examples == (N_IMG - 1) * CAPS);
    size_t n = d.n_examples;
    uint32_t *ex = malloc(n * sizeof *ex);
    for (size_t x = 0; x < n; x++) ex[x] = (uint32_t)(n - 1 - x); /* any order: reversed */
    float *clip = malloc(n * DIM * sizeof *clip);
    int32_t *tok = malloc(n * (size_t)d.L * sizeof *tok);
    CHECK_OK(train_data_batch(&d, ex, (int)n, clip, tok, &e), &e);
    int bad = 0;
    for (size_t b = 0; b < n; b++) {
        size_t x = ex[b];
        int img = (int)(x / CAPS), cap = (int)(x % CAPS);
        if (img >= 2) img++; /* a2 was dropped */
        for (int j = 0; j < DIM; j++) bad += clip[b * DIM + (size_t)j] != emb_val(img, j, img == 1);
        int len = tok_len(img, cap) < d.L ? tok_len(img, cap) : d.L;
        for (int j = 0; j < d.L; j++) bad += tok[b * (size_t)d.L + (size_t)j] != (j < len ? tok_id(img, cap, j) : -1);
    }
    CHECK_MSG(bad == 0, "%d values differ", bad);
    /* the heap holds 4 + 4 bytes per kept image and the per-shard tables;
     * keys and ids stay in the mapped token files */
    CHECK(train_data_bytes(&d) ==
          (N_IMG - 1) * 8 + 4 + 2 * (sizeof(struct manifest_tokens) + 8) + 8);

    float small[DIM];
    store_entry ent;
    CHECK(store_lookup_embedding(d.st, "a0", &ent, small, DIM - 1, &e) == ERR_FORMAT && strstr(e.msg, "'a0'"));
    CHECK_OK(store_lookup_embedding(d.st, "a2", &ent, small, DIM, &e), &e);
    CHECK(ent.kind == STORE_ENTRY_FAILURE);
    CHECK_OK(store_lookup_embedding(d.st, "zz", &ent, small, DIM, &e), &e);
    CHECK(ent.kind == STORE_ENTRY_NONE);
    train_data_close(&d);

    /* --splits val: a4 alone */
    CHECK_OK(train_data_open(&d, man, "val", st, &e), &e);
    CHECK(d.n_images == 1 && d.n_examples == CAPS && !strcmp(train_data_key(&d, 0), "a4"));
    train_data_close(&d);
    free(ex);
    free(clip);
    free(tok);
}

static void test_refused(void)
{
    char man[4096], st[4096], st2[4096];
    check_tmpdir(man, sizeof man, "train-data-man2");
    check_tmpdir(st, sizeof st, "train-data-missing");
    check_tmpdir(st2, sizeof st2, "train-data-dims");
    write_manifest(man);
    write_env(st, "rank-00000-of-00001", (const int[N_IMG]){DIM, DIM, DIM, DIM, 0, DIM}, 1, STORE_FP32);
    write_env(st2, "rank-00000-of-00001", (const int[N_IMG]){DIM, DIM, DIM, DIM + 1, DIM, DIM}, 1, STORE_FP32);
    err_t e = {0};
    train_data d;
    CHECK(train_data_open(&d, man, NULL, st, &e) == ERR_NOTFOUND);
    CHECK_MSG(strstr(e.msg, "1 of the 6 images") && strstr(e.msg, "'a4'"), "%s", e.msg);
    train_data_close(&d);
    CHECK(train_data_open(&d, man, NULL, st2, &e) == ERR_FORMAT);
    CHECK_MSG(strstr(e.msg, "'a3' has 6 values"), "%s", e.msg);
    train_data_close(&d);
}

/* A token file that does not match index.json (a flipped byte, a manifest
 * from before token files) is refused naming it, before any lookup. */
static void test_token_file_checked(void)
{
    char man[4096], st[4096], path[8192], text[8192];
    check_tmpdir(man, sizeof man, "train-data-man3");
    check_tmpdir(st, sizeof st, "train-data-tok");
    write_manifest(man);
    write_env(st, "rank-00000-of-00001", (const int[N_IMG]){DIM, DIM, DIM, DIM, DIM, DIM}, 1, STORE_FP32);
    snprintf(path, sizeof path, "%s/shard-00001-of-00002.tokens", man);
    FILE *f = fopen(path, "r+b");
    CHECK(f != NULL);
    if (!f) return;
    int c = (fseek(f, 100, SEEK_SET), fgetc(f));
    fseek(f, 100, SEEK_SET);
    fputc(c ^ 1, f);
    fclose(f);
    err_t e = {0};
    train_data d;
    CHECK(train_data_open(&d, man, NULL, st, &e) == ERR_FORMAT);
    CHECK_MSG(strstr(e.msg, "shard-00001-of-00002.tokens") && strstr(e.msg, "checksum"), "%s", e.msg);
    train_data_close(&d);
    /* an index without token files: the manifest of an older `clipcap shard` */
    snprintf(path, sizeof path, "%s/index.json", man);
    f = fopen(path, "rb");
    size_t n = f ? fread(text, 1, sizeof text - 1, f) : 0;
    if (f) fclose(f);
    text[n] = 0;
    for (char *p = text; (p = strstr(p, "\"tokens_file\"")) != NULL;) memcpy(p + 1, "TOKENS", 6);
    f = fopen(path, "wb");
    if (f) fputs(text, f), fclose(f);
    CHECK(train_data_open(&d, man, NULL, st, &e) == ERR_NOTFOUND);
    CHECK_MSG(strstr(e.msg, "no token file") && strstr(e.msg, "clipcap shard"), "%s", e.msg);
    train_data_close(&d);
}

int main(void)
{
    CHECK_RUN(test_examples_and_batches);
    CHECK_RUN(test_refused);
    CHECK_RUN(test_token_file_checked);
    return check_summary();
}
