/* Conceptual Captions as users have it after img2dataset:
 *
 *   TSV (optional)  caption<TAB>url per line (an optional first line
 *                   "caption<TAB>url" is a header). A sample is matched to
 *                   its row by the url in KEY.json (img2dataset's key
 *                   numbering depends on its shard size, the url does not);
 *                   a url listed several times matches its rows in order.
 *   cc-files        ROOT/NNNNN/KEY.{jpg,jpeg,png,webp} + KEY.txt + KEY.json
 *   cc-tar          ROOT/NAME.tar, webdataset: members KEY.jpg, KEY.txt, KEY.json
 *                   (location = tar file + member data offset + length)
 *
 * Without a TSV the caption is KEY.txt (else the "caption" of KEY.json).
 * Key = the sample's key; split = the caller's split name for every sample.
 * Rejected: samples whose KEY.json status is not "success"
 * (download_failed, with img2dataset's error_message), samples without an
 * image (missing_image) or caption (missing_caption), url mismatches, TSV
 * lines without exactly two columns (tsv_columns), TSV rows no sample was
 * found for (not_downloaded), tars that end inside a member
 * (truncated_tar_member: the rest of that tar) or are otherwise unreadable
 * (bad_tar). Samples are visited in sorted directory/tar order so the
 * rejects list is deterministic. */
#ifndef CLIPCAP_READER_CC_H
#define CLIPCAP_READER_CC_H

#include <stddef.h>
#include <stdint.h>
#include "data/dataset.h"

typedef struct cc_tsv_row {
    uint64_t caption, url;  /* offsets into the TSV buffer */
    uint32_t caption_len, url_len;
    uint32_t line;          /* 1-based line number */
    uint32_t next_same;     /* 1 + next row with the same url, 0 = none */
    uint8_t bad, seen;
} cc_tsv_row;

typedef struct cc_tsv_t {
    char name[4096];
    char *buf;              /* the whole file, owned */
    size_t len;
    cc_tsv_row *rows;
    size_t n_rows;
    uint32_t *slots;        /* url hash index: 1 + row, 0 = empty */
    size_t n_slots;
} cc_tsv_t;

/* Parse a TSV held in buf (taken over: freed by cc_tsv_free). Lines with a
 * wrong column count are rejected into ds right away. */
int cc_tsv_parse(cc_tsv_t *t, ds_t *ds, char *buf, size_t len, const char *name, err_t *e);
int cc_tsv_load(cc_tsv_t *t, ds_t *ds, const char *path, err_t *e);
void cc_tsv_free(cc_tsv_t *t);
/* The first row not yet marked seen whose url is url[0..n), or NULL. */
cc_tsv_row *cc_tsv_find(cc_tsv_t *t, const char *url, size_t n);

/* tsv may be NULL. Samples are read under ds->root. */
int reader_cc_files_read(ds_t *ds, const char *tsv, const char *split, err_t *e);
int reader_cc_tar_read(ds_t *ds, const char *tsv, const char *split, err_t *e);
/* The sample key of a member or file name, the webdataset rule: its
 * basename up to the first dot ("00001/000010003.jpg" -> "000010003"). */
void reader_cc_key(const char *name, char *key, size_t cap);

#endif
