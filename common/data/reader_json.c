#include "data/reader_json.h"

#include <stdio.h>

int reader_json_read(ds_t *ds, const char *path, reader_json_parse_fn parse, err_t *e)
{
    jscan_t doc;
    int rc = jscan_load(&doc, path, e);
    if (!rc) rc = parse(ds, &doc, path, e);
    jscan_free(&doc);
    return rc;
}

int reader_json_add_image(ds_t *ds, long long id, const char *split, const char *dir, const char *file,
                          const char *name, const char *record, size_t *idx, err_t *e)
{
    char key[32], path[4096];
    snprintf(key, sizeof key, "%lld", id);
    if (snprintf(path, sizeof path, "%s%s%s", dir, *dir ? "/" : "", file) >= (int)sizeof path) {
        int rc = ds_reject(ds, DS_MALFORMED_RECORD, name, record, "image path too long", e);
        return rc ? rc : 1;
    }
    return ds_add_image(ds, key, split, MANIFEST_LOC_FILE, path, 0, 0, name, record, idx, e);
}
