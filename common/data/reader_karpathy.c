#include "data/reader_karpathy.h"

#include <stdio.h>
#include <string.h>

#include "data/reader_json.h"

static int karpathy_key(const jscan_t *d, uint32_t im, long long *id, err_t *why)
{
    if (jscan_get(d, im, "cocoid")) return jscan_field_int(d, im, "cocoid", id, why);
    if (jscan_get(d, im, "imgid")) return jscan_field_int(d, im, "imgid", id, why);
    return err_set(why, ERR_FORMAT, "field 'cocoid' is missing");
}

static int karpathy_sentences(ds_t *ds, size_t idx, const jscan_t *d, uint32_t sents, const char *name,
                              const char *record, err_t *e)
{
    size_t j = 0;
    for (uint32_t s = jscan_first(d, sents); s < jscan_end(d, sents); s = jscan_after(d, s), j++) {
        char srec[600];
        snprintf(srec, sizeof srec, "%s sentence %zu", record, j);
        const char *raw = NULL;
        size_t len = 0;
        err_t why = {0};
        int rc = jscan_field_str(d, s, "raw", &raw, &len, &why)
                     ? ds_reject(ds, DS_MALFORMED_RECORD, name, srec, why.msg, e)
                     : ds_add_caption(ds, idx, raw, len, name, srec, e);
        if (rc < 0) return rc;
    }
    return 0;
}

int reader_karpathy_parse(ds_t *ds, const jscan_t *d, const char *name, err_t *e)
{
    uint32_t images = 0;
    if (jscan_field_array(d, 0, "images", &images, e)) return err_wrap(e, "%s: not a Karpathy split file", name);
    size_t i = 0;
    for (uint32_t im = jscan_first(d, images); im < jscan_end(d, images); im = jscan_after(d, im), i++) {
        char record[96];
        snprintf(record, sizeof record, "image %zu", i);
        int rc = ds_checkpoint(ds, 0, e); /* every image so far has its sentences */
        if (rc) return rc;
        ds->input_records++;
        long long id = 0;
        const char *filename = NULL, *filepath = "", *split = NULL;
        uint32_t sents = 0;
        err_t why = {0};
        if (karpathy_key(d, im, &id, &why) || jscan_field_str(d, im, "filename", &filename, NULL, &why) ||
            jscan_field_str(d, im, "split", &split, NULL, &why) || jscan_field_array(d, im, "sentences", &sents, &why) ||
            (jscan_get(d, im, "filepath") && jscan_field_str(d, im, "filepath", &filepath, NULL, &why))) {
            if ((rc = ds_reject(ds, DS_MALFORMED_RECORD, name, record, why.msg, e))) return rc;
            continue;
        }
        snprintf(record, sizeof record, "image %zu (cocoid %lld)", i, id);
        size_t idx;
        rc = reader_json_add_image(ds, id, split, filepath, filename, name, record, &idx, e);
        if (rc == 0) rc = karpathy_sentences(ds, idx, d, sents, name, record, e);
        if (rc < 0) return rc;
    }
    return 0;
}

int reader_karpathy_read(ds_t *ds, const char *path, err_t *e)
{
    return reader_json_read(ds, path, reader_karpathy_parse, e);
}
