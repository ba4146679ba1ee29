/* Conceptual Captions readers: the first byte picks the target, the rest
 * is its input:
 *   0: a TSV (rows, column checks, url index lookups);
 *   1: a webdataset tar file (members, truncation, sidecars);
 *   2: an img2dataset KEY.json sidecar (and the same bytes as KEY.txt) in a
 *      files-layout directory, with the TSV of case 0's fixture shape.
 * Files go to a per-process scratch directory. Nothing may crash; a reader
 * either succeeds (bad samples rejected) or fails with an error code. */
#include "core/fsutil.h"
#include "data/dataset.h"
#include "data/reader_cc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char fuzz_dir[512];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    snprintf(fuzz_dir, sizeof fuzz_dir, "/tmp/fuzz_readers_cc.%d", (int)getpid());
    err_t e = {0};
    char sub[600];
    snprintf(sub, sizeof sub, "%s/files/00000", fuzz_dir);
    if (fs_mkdirs(sub, &e)) abort();
    snprintf(sub, sizeof sub, "%s/wds", fuzz_dir);
    if (fs_mkdirs(sub, &e)) abort();
    snprintf(sub, sizeof sub, "%s/files/00000/000000000.jpg", fuzz_dir);
    if (fs_write_atomic(sub, "\xff\xd8\xff", 3, &e)) abort();
    snprintf(sub, sizeof sub, "%s/cc.tsv", fuzz_dir);
    const char tsv[] = "caption\turl\nA cat\thttp://x/0.jpg\nbad\n";
    if (fs_write_atomic(sub, tsv, sizeof tsv - 1, &e)) abort();
    return 0;
}

/* plain stdio: fs_write_atomic's fsync would dominate the fuzzing rate */
static void put(const char *rel, const uint8_t *data, size_t size)
{
    char path[700];
    snprintf(path, sizeof path, "%s/%s", fuzz_dir, rel);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, size, f) != size || fclose(f)) abort();
}

static void check_ds(ds_t *ds, int rc)
{
    err_t e = {0};
    if (rc == 0) rc = ds_finalize(ds, &e);
    if (rc == ERR_NOMEM || rc == ERR_INTERNAL) abort();
    for (size_t i = 0; rc == 0 && i < ds->n_images; i++)
        if (ds->images[i].n_captions == 0) abort();
    ds_free(ds);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    int mode = data[0] % 3;
    data++, size--;
    ds_t ds;
    err_t e = {0};
    char root[700], tsv[700];
    snprintf(tsv, sizeof tsv, "%s/cc.tsv", fuzz_dir);
    if (mode == 0) {
        if (ds_init(&ds, "", 0, &e)) abort();
        char *buf = malloc(size + 1);
        if (!buf) return 0;
        memcpy(buf, data, size);
        cc_tsv_t t;
        int rc = cc_tsv_parse(&t, &ds, buf, size, "fuzz.tsv", &e);
        if (rc == 0)
            for (size_t i = 0; i < t.n_rows; i++) {
                if (cc_tsv_is_bad(&t, i)) continue;
                cc_tsv_row r;
                cc_tsv_row_at(&t, i, &r);
                size_t k = cc_tsv_find(&t, r.url, r.url_len);
                if (k == SIZE_MAX || k > i) abort(); /* every good row's url is findable until taken */
                cc_tsv_take(&t, k);
            }
        cc_tsv_free(&t); /* frees buf */
        ds_free(&ds);
    } else if (mode == 1) {
        put("wds/00000.tar", data, size);
        snprintf(root, sizeof root, "%s/wds", fuzz_dir);
        if (ds_init(&ds, root, 1, &e)) abort();
        check_ds(&ds, reader_cc_tar_read(&ds, size % 2 ? tsv : NULL, "train", &e));
    } else {
        put("files/00000/000000000.json", data, size);
        put("files/00000/000000000.txt", data, size);
        snprintf(root, sizeof root, "%s/files", fuzz_dir);
        if (ds_init(&ds, root, 1, &e)) abort();
        check_ds(&ds, reader_cc_files_read(&ds, size % 2 ? tsv : NULL, "train", &e));
    }
    return 0;
}
