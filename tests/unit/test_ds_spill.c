/* The spilled data set (data/ds_spill.h) against the in-memory one: the
 * same 3,000 generated records (duplicate keys, keys equal but for leading
 * zeros, excluded splits, missing image files, blank captions, images left
 * without captions) go once through ds_finalize and once through a spill
 * with tiny chunks and buckets. The shards the spill plans hold the same
 * images with the same captions as manifest_plan_shards' cut of the
 * in-memory result, the summaries are equal and so are the rejects files,
 * byte for byte. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "core/fsutil.h"
#include "data/dataset.h"
#include "data/ds_spill.h"
#include "data/manifest_write.h"

#define N_REC 3000
#define N_SHARDS 7

static uint32_t lcg(uint32_t *s)
{
    *s = *s * 1664525u + 1013904223u;
    return *s >> 8;
}

/* Record i into ds; ds_checkpoint between records, as a streaming reader. */
static void add_records(ds_t *ds, const char *root)
{
    err_t e = {0};
    uint32_t s = 12345;
    static const char *splits[] = {"train", "val", "test"};
    for (int i = 0; i < N_REC; i++) {
        CHECK_OK(ds_checkpoint(ds, 0, &e), &e);
        uint32_t r = lcg(&s);
        char key[32], path[64], record[64], cap[96];
        unsigned k = r % 2200;
        snprintf(key, sizeof key, r % 13 == 0 ? "00%u" : "%u", k);
        snprintf(path, sizeof path, "img%d.jpg", i);
        snprintf(record, sizeof record, "record %d", i);
        int file = i % 3 != 0;
        if (file && i % 17 != 0) { /* the others are missing on disk */
            char full[4200];
            snprintf(full, sizeof full, "%s/%s", root, path);
            FILE *f = fopen(full, "wb");
            CHECK(f != NULL);
            if (f) {
                fputs("x", f);
                fclose(f);
            }
        }
        size_t idx;
        enum manifest_loc_kind kind = file ? MANIFEST_LOC_FILE : MANIFEST_LOC_TAR;
        uint64_t offset = file ? 0 : 512u * (unsigned)i, length = file ? 0 : 100u + (unsigned)i;
        CHECK_OK(ds_add_image(ds, key, splits[r % 3], kind, path, offset, length, "gen.json", record, &idx, &e), &e);
        ds->input_records++;
        int n = (int)(lcg(&s) % 4); /* 0: no caption */
        for (int c = 0; c < n; c++) {
            int blank = lcg(&s) % 11 == 0;
            snprintf(cap, sizeof cap, blank ? "  " : "caption %d of record %d", c, i);
            CHECK(ds_add_caption(ds, idx, cap, strlen(cap), "gen.json", record, &e) >= 0);
        }
    }
}

static char *slurp(const char *path, size_t *len)
{
    uint8_t *d = NULL;
    err_t e = {0};
    CHECK_OK(fs_read_all(path, &d, len, &e), &e);
    return (char *)d;
}

static void test_spill_equals_memory(void)
{
    char dir[4096], root[4200], spill[4200], rej_a[4200], rej_b[4200];
    check_tmpdir(dir, sizeof dir, "ds_spill");
    snprintf(root, sizeof root, "%s/root", dir);
    snprintf(spill, sizeof spill, "%s/spill", dir);
    snprintf(rej_a, sizeof rej_a, "%s/rejects-a.jsonl", dir);
    snprintf(rej_b, sizeof rej_b, "%s/rejects-b.jsonl", dir);
    err_t e = {0};
    CHECK_OK(fs_mkdirs(root, &e), &e);

    ds_t a, b;
    CHECK_OK(ds_init(&a, root, 1, &e), &e);
    CHECK_OK(ds_select_splits(&a, "train,val", &e), &e);
    add_records(&a, root);
    CHECK_OK(ds_finalize(&a, &e), &e);
    ds_summary_t sa = {0}, sb = {0};
    CHECK_OK(ds_summary_add(&sa, &a, &e), &e);
    CHECK_OK(manifest_write_rejects(rej_a, &a, &e), &e);
    CHECK(a.reason_count[DS_DUPLICATE_KEY] && a.reason_count[DS_MISSING_IMAGE] && a.reason_count[DS_NO_CAPTIONS] &&
          a.reason_count[DS_EMPTY_CAPTION] && a.excluded_images);
    CHECK_MSG(a.n_images > 100 * N_SHARDS, "only %zu images survive: the comparison below would say little", a.n_images);

    ds_spill *sp = NULL;
    CHECK_OK(ds_init(&b, root, 1, &e), &e);
    CHECK_OK(ds_select_splits(&b, "train,val", &e), &e);
    CHECK_OK(ds_spill_open(&sp, &b, spill, 2000, 5000, &e), &e);
    add_records(&b, root);
    CHECK_OK(ds_spill_finalize(sp, &b, &sb, &e), &e);
    CHECK_OK(ds_spill_write_rejects(sp, rej_b, &e), &e);

    json_t *ja = manifest_summary_json(&sa), *jb = manifest_summary_json(&sb);
    CHECK(json_equal(ja, jb));
    json_decref(ja);
    json_decref(jb);
    size_t la, lb;
    char *ra = slurp(rej_a, &la), *rb = slurp(rej_b, &lb);
    CHECK(ra && rb && la == lb && !memcmp(ra, rb, la));
    free(ra);
    free(rb);

    size_t bounds[N_SHARDS + 1];
    uint64_t off[N_SHARDS + 1];
    manifest_plan_shards(&a, N_SHARDS, bounds);
    CHECK_OK(ds_spill_plan(sp, N_SHARDS, off, &e), &e);
    char sorted[4400];
    snprintf(sorted, sizeof sorted, "%s/%s", spill, DS_SPILL_SORTED);
    int bad = 0;
    for (int s = 0; s < N_SHARDS; s++) {
        ds_t x;
        CHECK_OK(ds_init(&x, "", 0, &e), &e);
        CHECK_OK(ds_spill_load(&x, sorted, off[s], off[s + 1], NULL, &e), &e);
        CHECK_MSG(x.n_images == bounds[s + 1] - bounds[s], "shard %d: %zu images, want %zu", s, x.n_images,
                  bounds[s + 1] - bounds[s]);
        for (size_t i = 0; i < x.n_images && i + bounds[s] < a.n_images; i++) {
            const ds_image_t *p = &x.images[i], *q = &a.images[bounds[s] + i];
            bad += strcmp(ds_str(&x, p->key), ds_str(&a, q->key)) ||
                   strcmp(ds_str(&x, p->split), ds_str(&a, q->split)) ||
                   strcmp(ds_str(&x, p->path), ds_str(&a, q->path)) || p->kind != q->kind ||
                   p->offset != q->offset || p->length != q->length || p->n_captions != q->n_captions;
            for (uint32_t c = 0; c < p->n_captions && c < q->n_captions; c++)
                bad += strcmp(ds_str(&x, x.captions[p->first_caption + c].text),
                              ds_str(&a, a.captions[q->first_caption + c].text)) != 0;
        }
        ds_free(&x);
    }
    CHECK_MSG(bad == 0, "%d fields differ", bad);
    ds_spill_close(sp);
    CHECK(!fs_exists(spill));
    ds_summary_free(&sa);
    ds_summary_free(&sb);
    ds_free(&a);
    ds_free(&b);
}

int main(void)
{
    CHECK_RUN(test_spill_equals_memory);
    return check_summary();
}
