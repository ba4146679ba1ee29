/* COCO caption annotation files (captions_train2014.json, ...):
 *   {"images": [{"id", "file_name", ...}], "annotations": [{"id", "image_id", "caption"}]}
 * One data set image per COCO image; key = the image id in decimal; split =
 * SPLIT of "captions_SPLIT.json" (else the file name without ".json");
 * image path = SPLIT/file_name under the images root when that directory
 * exists (the COCO download layout), else file_name.
 *
 * A file that is not JSON, or has no "images"/"annotations" arrays, is a
 * fatal ERR_FORMAT (PATH:LINE:COL for syntax errors). Bad records (missing
 * or mistyped fields, duplicate annotation ids, annotations of unknown
 * images, bad captions) are rejected into the data set and reading goes
 * on. Invalid UTF-8 anywhere in a JSON file is a syntax error (RFC 8259). */
#ifndef CLIPCAP_READER_COCO_H
#define CLIPCAP_READER_COCO_H

#include "data/dataset.h"
#include "data/jscan.h"

int reader_coco_read(ds_t *ds, const char *path, err_t *e);
/* The same on an already parsed document; name is the file path used in
 * messages and for the split. */
int reader_coco_parse(ds_t *ds, const jscan_t *doc, const char *name, err_t *e);
/* "captions_val2014.json" -> "val2014"; out holds cap bytes. */
void reader_coco_split_name(const char *path, char *out, size_t cap);

#endif
