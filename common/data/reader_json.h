/* What the JSON caption readers (reader_coco, reader_karpathy) share:
 * loading the file into a jscan document for the reader's parse function,
 * and adding one image record as a FILE image keyed by its numeric id. */
#ifndef CLIPCAP_READER_JSON_H
#define CLIPCAP_READER_JSON_H

#include <stddef.h>
#include "data/dataset.h"
#include "data/jscan.h"

/* reader_coco_parse, reader_karpathy_parse: name is the file path. */
typedef int (*reader_json_parse_fn)(ds_t *ds, const jscan_t *doc, const char *name, err_t *e);

/* Load path (ERR_IO when unreadable, ERR_FORMAT PATH:LINE:COL when not
 * JSON), run parse on it, free the document. */
int reader_json_read(ds_t *ds, const char *path, reader_json_parse_fn parse, err_t *e);

/* Add the image of a record: key = id in decimal, path = DIR/FILE under the
 * images root (FILE alone when dir is ""). 0 with *idx set; 1 when the path
 * does not fit, rejected as malformed_record; <0 on error. name and record
 * locate it for messages ("captions_val2014.json", "image 3 (id 42)"). */
int reader_json_add_image(ds_t *ds, long long id, const char *split, const char *dir, const char *file,
                          const char *name, const char *record, size_t *idx, err_t *e);

#endif
