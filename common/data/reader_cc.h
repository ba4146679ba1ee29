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

/* The TSV is mapped (page cache, not heap) and indexed compactly, so that
 * a 15M-row TSV costs ~8.8 bytes of heap per row: the rows' url hashes
 * with their row numbers, sorted (8 B), one line offset per
 * CC_TSV_STRIDE rows, and the bad and taken bits. Lookups confirm the url
 * bytes, so hash collisions cost time, never a wrong match. Row i is on
 * line i + 1, or i + 2 after a header. */
#define CC_TSV_STRIDE 16

typedef struct cc_tsv_row {   /* a row's fields, pointing into the file */
    const char *caption, *url;
    uint32_t caption_len, url_len;
    uint32_t line;            /* 1-based line number */
} cc_tsv_row;

typedef struct cc_tsv_t {
    char name[4096];
    const char *buf;          /* the whole file */
    size_t len;
    int mapped;               /* buf is fs_map_file's, else malloc'd */
    size_t n_rows;
    uint32_t header;          /* 1 when line 1 is the "caption<TAB>url" header */
    uint64_t *line_at;        /* [n_rows / CC_TSV_STRIDE + 1] start of row k * CC_TSV_STRIDE */
    uint64_t *index;          /* good rows as (url hash << 32 | row), sorted */
    size_t n_index;
    uint8_t *bad, *taken;     /* bitmaps by row */
} cc_tsv_t;

/* Parse a TSV held in buf (a malloc'd buffer, taken over: freed by
 * cc_tsv_free). Lines with a wrong column count are rejected into ds right
 * away. */
int cc_tsv_parse(cc_tsv_t *t, ds_t *ds, char *buf, size_t len, const char *name, err_t *e);
int cc_tsv_load(cc_tsv_t *t, ds_t *ds, const char *path, err_t *e);
void cc_tsv_free(cc_tsv_t *t);
/* The first row not yet taken whose url is url[0..n), or SIZE_MAX. */
size_t cc_tsv_find(const cc_tsv_t *t, const char *url, size_t n);
void cc_tsv_take(cc_tsv_t *t, size_t row);
int cc_tsv_is_bad(const cc_tsv_t *t, size_t row);
/* The fields of row (< n_rows, not bad). */
void cc_tsv_row_at(const cc_tsv_t *t, size_t row, cc_tsv_row *r);

/* tsv may be NULL. Samples are read under ds->root. */
int reader_cc_files_read(ds_t *ds, const char *tsv, const char *split, err_t *e);
int reader_cc_tar_read(ds_t *ds, const char *tsv, const char *split, err_t *e);
/* The sample key of a member or file name, the webdataset rule: its
 * basename up to the first dot ("00001/000010003.jpg" -> "000010003"). */
void reader_cc_key(const char *name, char *key, size_t cap);

#endif
