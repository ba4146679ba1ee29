/* Karpathy's split file (dataset_coco.json):
 *   {"images": [{"filepath", "filename", "split", "cocoid", "sentences": [{"raw", ...}]}]}
 * One data set image per entry; key = cocoid (or "imgid" when the file has
 * no cocoid, as the Flickr versions); split = the entry's split (train,
 * restval, val, test); image path = filepath/filename under the images root
 * (filename alone when filepath is absent). Each sentence's "raw" text is a
 * caption.
 *
 * Not JSON or no "images" array: fatal ERR_FORMAT (PATH:LINE:COL). Bad
 * entries and bad sentences are rejected into the data set. */
#ifndef CLIPCAP_READER_KARPATHY_H
#define CLIPCAP_READER_KARPATHY_H

#include "data/dataset.h"
#include "data/jscan.h"

int reader_karpathy_read(ds_t *ds, const char *path, err_t *e);
/* The same on a parsed document (name: the path used in messages). */
int reader_karpathy_parse(ds_t *ds, const jscan_t *doc, const char *name, err_t *e);

#endif
