/* Writing a manifest (schemas/manifest.md) from a finalized data set and
 * its captions' token ids. Used by `clipcap shard`; everything written is
 * a pure function of its arguments, so equal inputs give equal bytes.
 *
 * Sharding rule: images stay in manifest order (ds_finalize's key order)
 * and are cut into num_shards CONTIGUOUS runs of about equal weight, where
 * an image weighs 64 + its captions' bytes + 16 per caption (a proxy for
 * its record's size and its tokenisation cost). An image belongs to the
 * shard in which the middle of its weight falls. Contiguity keeps the
 * members of one tar file together, so extraction reads tars in order. */
#ifndef CLIPCAP_MANIFEST_WRITE_H
#define CLIPCAP_MANIFEST_WRITE_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "data/dataset.h"
#include "data/manifest.h"
#include "data/sbuf.h"

/* bounds[s]..bounds[s+1] are shard s's images; bounds has num_shards+1. */
void manifest_plan_shards(const ds_t *ds, int num_shards, size_t *bounds);
/* The rule itself, for callers that stream the images in manifest order
 * (data/ds_spill.h): an image's weight, and the shard of an image of
 * weight w after images of total weight cum, out of total. */
uint64_t manifest_image_weight(uint32_t n_captions, uint64_t caption_bytes);
/* The same for an image of a finalized data set. */
uint64_t manifest_ds_image_weight(const ds_t *ds, const ds_image_t *im);
int manifest_shard_of(uint64_t cum, uint64_t w, uint64_t total, int num_shards);
void manifest_shard_file_name(int shard, int num_shards, char *out, size_t cap);

/* Token-length statistics from exact integer sums (so any split of the
 * work over ranks gives the same numbers). */
void manifest_stats_from_sums(uint64_t count, uint64_t sum, uint64_t sumsq, uint32_t max,
                              manifest_token_stats_t *st);

/* Writes shard `shard`, the finalized images ds->images[first..end), with
 * zio and fills info (file, counts, bytes, checksum). ids[c]/n_ids[c] are
 * caption c's tokens (ds caption index). */
int manifest_write_shard(const char *dir, const ds_t *ds, int shard, int num_shards, size_t first, size_t end,
                         int32_t *const *ids, const uint32_t *n_ids, int zstd_level, manifest_shard_info_t *info,
                         err_t *e);

typedef struct manifest_source_t {
    const char *format;        /* "coco", "karpathy", "cc-files", "cc-tar" */
    const char *const *inputs; /* as given on the command line */
    size_t n_inputs;
    const char *root;          /* absolute images / tars root */
} manifest_source_t;

/* The run summary as a JSON object (counts per split, rejects by reason);
 * also embedded in index.json. Caller json_decref's. */
json_t *manifest_summary_json(const ds_summary_t *sum);
/* index.json, atomically. */
int manifest_write_index(const char *dir, const ds_summary_t *sum, const manifest_source_t *src,
                         const manifest_token_stats_t *st, const manifest_shard_info_t *shards, int num_shards,
                         err_t *e);
/* rejects.jsonl: {"file", "record", "reason", "detail"} per line, in the
 * order the rejects were found. Atomic. */
int manifest_write_rejects(const char *path, const ds_t *ds, err_t *e);
/* One rejects.jsonl line (with its newline) appended to sb. */
void manifest_reject_line(sbuf_t *sb, const ds_t *ds, const ds_reject_t *r);
/* The captions of one split as a COCO caption annotation file: images
 * {"id", "file_name"} and annotations {"id", "image_id", "caption"}, image
 * id = the key as an integer, annotation ids 1.. in manifest order. Keys
 * that are not integers are ERR_UNSUPPORTED. Returns the number of images
 * in *n_images (0 when the split is empty: then nothing is written and the
 * call fails with ERR_NOTFOUND). Atomic. */
int manifest_write_annotations(const char *path, const ds_t *ds, const char *split, size_t *n_images, err_t *e);

#endif
