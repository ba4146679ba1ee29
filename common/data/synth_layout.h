/* The layouts users' data sets come in, written for synthetic records:
 *
 *   DIR/coco/annotations/captions_{train,val}2014.json, DIR/coco/{train,val}2014/COCO_*_%012d.EXT
 *   DIR/karpathy/dataset_coco.json              (images under DIR/coco)
 *   DIR/cc/Train_GCC-training.tsv               (caption<TAB>url, no header)
 *   DIR/cc/files/%05d/%09d.{EXT,txt,json}       (img2dataset "files")
 *   DIR/cc/wds/%05d.tar                         (img2dataset "webdataset")
 *   DIR/synth_index.json, DIR/synth_bad.json    (schemas/synth.md)
 *
 * Metadata files are written by one caller (rank 0) streaming over all
 * records; image, caption and sample files are written by whoever owns the
 * record. Paths in this API are relative to DIR. */
#ifndef CLIPCAP_SYNTH_LAYOUT_H
#define CLIPCAP_SYNTH_LAYOUT_H

#include <stddef.h>
#include <stdint.h>
#include "core/log.h"
#include "data/synth_encode.h"
#include "data/synth_plan.h"
#include "io/tar_writer.h"

typedef struct synth_summary_t {
    uint64_t records, bad;
    uint64_t per_format[SYNTH_N_FORMATS]; /* good images */
    uint64_t coco_images[2], coco_captions[2]; /* train2014, val2014 */
    uint64_t karpathy[SYNTH_N_KS];
    uint64_t cc_samples, cc_shards;
    uint64_t large, tiny;
} synth_summary_t;

/* Relative paths of a record's files ("" when the record has none there). */
void synth_coco_image_path(const synth_record_t *r, char *out, size_t cap);
void synth_cc_file_path(const synth_record_t *r, const char *ext, char *out, size_t cap);
void synth_cc_tar_path(uint64_t shard, char *out, size_t cap);

/* Create the directories every writer needs (idempotent, safe to race). */
int synth_layout_dirs(const synth_plan_t *p, err_t *e);

/* The shard's img2dataset directory (with cc-files); before its records. */
int synth_layout_shard_dir(const synth_plan_t *p, uint64_t shard, err_t *e);

/* All metadata files for all records, and the summary. */
int synth_layout_write_metadata(const synth_plan_t *p, synth_summary_t *s, err_t *e);

/* The record's own files: its COCO image and its CC files and tar members.
 * image/len are the bytes to store as the image (already cut or emptied for
 * the bad kinds), image NULL when the record has no image file. tar is the
 * open writer of the record's shard, or NULL without the tar layout. */
int synth_layout_write_record(const synth_plan_t *p, const synth_record_t *r, const uint8_t *image, size_t len,
                              tar_writer_t *tar, err_t *e);

#endif
