/* readers (COCO, Karpathy) and the JSON scanner under them: any bytes either
 * fail to parse with ERR_FORMAT naming "fuzz.json:LINE:COL", or parse and
 * then read into a data set (bad records rejected, never a crash), which
 * finalizes and plans shards with every image in exactly one shard. */
#include "data/dataset.h"
#include "data/manifest_write.h"
#include "data/reader_coco.h"
#include "data/reader_karpathy.h"

#include <stdlib.h>
#include <string.h>

static void fuzz_read(const jscan_t *doc, int karpathy)
{
    ds_t ds;
    err_t e = {0};
    if (ds_init(&ds, "/nonexistent-fuzz-root", 0, &e)) abort();
    int rc = karpathy ? reader_karpathy_parse(&ds, doc, "fuzz.json", &e) : reader_coco_parse(&ds, doc, "captions_fuzz.json", &e);
    if (rc == 0 && ds_finalize(&ds, &e) == 0) {
        size_t bounds[4];
        manifest_plan_shards(&ds, 3, bounds);
        if (bounds[0] != 0 || bounds[3] != ds.n_images || bounds[1] > bounds[2]) abort();
        uint64_t caps = 0;
        for (size_t i = 0; i < ds.n_images; i++) caps += ds.images[i].n_captions;
        if (caps != ds.n_captions) abort();
    } else if (rc != 0 && rc != ERR_FORMAT) {
        abort();
    }
    ds_free(&ds);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size + 1);
    if (!buf) return 0;
    memcpy(buf, data, size);
    jscan_t doc;
    err_t e = {0};
    int rc = jscan_parse(&doc, buf, size, "fuzz.json", &e);
    if (rc == 0) {
        fuzz_read(&doc, 0);
        fuzz_read(&doc, 1);
    } else if (rc != ERR_FORMAT || strncmp(e.msg, "fuzz.json:", 10)) {
        abort();
    }
    jscan_free(&doc);
    free(buf);
    return 0;
}
