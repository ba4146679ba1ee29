#include "data/reader_coco.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/fsutil.h"
#include "data/reader_json.h"

void reader_coco_split_name(const char *path, char *out, size_t cap)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    if (!strncmp(base, "captions_", 9)) base += 9;
    size_t n = strlen(base);
    if (n > 5 && !strcmp(base + n - 5, ".json")) n -= 5;
    snprintf(out, cap, "%.*s", (int)n, base);
}

typedef struct coco_id {
    long long id;
    size_t idx; /* data set image index (images) or position (annotations) */
} coco_id;

static int coco_id_cmp(const void *pa, const void *pb)
{
    const coco_id *a = pa, *b = pb;
    if (a->id != b->id) return a->id < b->id ? -1 : 1;
    return a->idx < b->idx ? -1 : a->idx > b->idx;
}

/* Images of the file into the data set; ids[] gets (id, data set index). */
static int coco_images(ds_t *ds, const jscan_t *d, uint32_t images, const char *name, const char *split, int subdir,
                       coco_id *ids, size_t *n_ids, err_t *e)
{
    *n_ids = 0;
    size_t i = 0;
    for (uint32_t im = jscan_first(d, images); im < jscan_end(d, images); im = jscan_after(d, im), i++) {
        char record[64];
        snprintf(record, sizeof record, "image %zu", i);
        ds->input_records++;
        long long id = 0;
        const char *file_name = NULL;
        err_t why = {0};
        if (jscan_field_int(d, im, "id", &id, &why) || jscan_field_str(d, im, "file_name", &file_name, NULL, &why)) {
            int rc = ds_reject(ds, DS_MALFORMED_RECORD, name, record, why.msg, e);
            if (rc) return rc;
            continue;
        }
        snprintf(record, sizeof record, "image %zu (id %lld)", i, id);
        size_t idx;
        int rc = reader_json_add_image(ds, id, split, subdir ? split : "", file_name, name, record, &idx, e);
        if (rc < 0) return rc;
        if (rc == 0) ids[(*n_ids)++] = (coco_id){id, idx};
    }
    qsort(ids, *n_ids, sizeof *ids, coco_id_cmp);
    return 0;
}

static const coco_id *coco_find(const coco_id *ids, size_t n, long long id)
{
    size_t lo = 0, hi = n;
    while (lo < hi) { /* first entry with ids[k].id >= id */
        size_t mid = lo + (hi - lo) / 2;
        if (ids[mid].id < id) lo = mid + 1;
        else hi = mid;
    }
    return lo < n && ids[lo].id == id ? &ids[lo] : NULL;
}

/* Annotation tokens in order, and later annotations that reuse an id
 * marked in dup[]. */
static int coco_scan_annotations(const jscan_t *d, uint32_t anns, size_t n, uint32_t *tok, uint8_t *dup, err_t *e)
{
    coco_id *ids = malloc((n ? n : 1) * sizeof *ids);
    if (!ids) return err_set(e, ERR_NOMEM, "cannot allocate %zu annotation ids", n);
    size_t m = 0, i = 0;
    for (uint32_t a = jscan_first(d, anns); a < jscan_end(d, anns); a = jscan_after(d, a), i++) {
        tok[i] = a;
        long long id;
        if (!jscan_field_int(d, a, "id", &id, NULL)) ids[m++] = (coco_id){id, i};
    }
    qsort(ids, m, sizeof *ids, coco_id_cmp);
    for (size_t k = 1; k < m; k++)
        if (ids[k].id == ids[k - 1].id) dup[ids[k].idx] = 1;
    free(ids);
    return 0;
}

static int coco_annotations(ds_t *ds, const jscan_t *d, uint32_t anns, const char *name, const coco_id *ids,
                            size_t n_ids, err_t *e)
{
    size_t n = jscan_count(d, anns);
    uint8_t *dup = calloc(n ? n : 1, 1);
    uint32_t *tok = malloc((n ? n : 1) * sizeof *tok);
    int rc = (!dup || !tok) ? err_set(e, ERR_NOMEM, "cannot allocate %zu annotation flags", n)
                            : coco_scan_annotations(d, anns, n, tok, dup, e);
    for (size_t i = 0; i < n && !rc; i++) {
        uint32_t a = tok[i];
        char record[96];
        snprintf(record, sizeof record, "annotation %zu", i);
        ds->input_records++;
        long long id = 0, image_id = 0;
        const char *caption = NULL;
        size_t caption_len = 0;
        err_t why = {0};
        if (jscan_field_int(d, a, "id", &id, &why) || jscan_field_int(d, a, "image_id", &image_id, &why) ||
            jscan_field_str(d, a, "caption", &caption, &caption_len, &why)) {
            rc = ds_reject(ds, DS_MALFORMED_RECORD, name, record, why.msg, e);
            continue;
        }
        snprintf(record, sizeof record, "annotation %zu (id %lld)", i, id);
        char detail[128];
        if (dup[i]) {
            snprintf(detail, sizeof detail, "annotation id %lld is used twice", id);
            rc = ds_reject(ds, DS_DUPLICATE_ANNOTATION, name, record, detail, e);
            continue;
        }
        const coco_id *img = coco_find(ids, n_ids, image_id);
        if (!img) {
            snprintf(detail, sizeof detail, "image_id %lld is not in 'images'", image_id);
            rc = ds_reject(ds, DS_UNKNOWN_IMAGE, name, record, detail, e);
            continue;
        }
        int r = ds_add_caption(ds, img->idx, caption, caption_len, name, record, e);
        if (r < 0) rc = r;
    }
    free(dup);
    free(tok);
    return rc;
}

int reader_coco_parse(ds_t *ds, const jscan_t *doc, const char *name, err_t *e)
{
    uint32_t images = 0, anns = 0;
    if (jscan_field_array(doc, 0, "images", &images, e) || jscan_field_array(doc, 0, "annotations", &anns, e))
        return err_wrap(e, "%s: not a COCO caption file", name);
    char split[256], dir[8192];
    reader_coco_split_name(name, split, sizeof split);
    struct stat st;
    int subdir = !fs_join(dir, sizeof dir, ds->root, split, NULL) && stat(dir, &st) == 0 && S_ISDIR(st.st_mode);
    size_t n = jscan_count(doc, images);
    coco_id *ids = malloc((n ? n : 1) * sizeof *ids);
    if (!ids) return err_set(e, ERR_NOMEM, "%s: cannot allocate %zu image ids", name, n);
    size_t n_ids = 0;
    int rc = coco_images(ds, doc, images, name, split, subdir, ids, &n_ids, e);
    if (!rc) rc = coco_annotations(ds, doc, anns, name, ids, n_ids, e);
    free(ids);
    return rc;
}

int reader_coco_read(ds_t *ds, const char *path, err_t *e)
{
    return reader_json_read(ds, path, reader_coco_parse, e);
}
