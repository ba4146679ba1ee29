/* The data set of `clipcap shard` on disk, so that no rank holds the whole
 * corpus (docs/manifest.md, "Memory"). Files live in a temporary folder
 * inside the manifest directory (DS_SPILL_DIR) and are removed at the end;
 * a crashed run's folder is emptied by the next run.
 *
 * Rank 0 reads with ds_spill as the data set's sink (data/dataset.h,
 * "Bounded memory"): each chunk of images goes, in reading order, to a
 * chunk file as compact records (key, split, path, file, record, location,
 * captions), its rejects as rejects.jsonl lines to a second file, and an
 * evenly spread sample of at most DS_SPILL_SAMPLE_MAX keys stays in memory.
 * ds_spill_finalize then cuts the key space at sampled keys into buckets
 * of about bucket_bytes (keys equal under ds_key_cmp always share a
 * bucket), copies every record into its bucket and runs ds_finalize on one
 * bucket after the other. Buckets
 * are in key order, so the survivors written bucket after bucket are the
 * manifest order, and the finalize rejects filed by reason (duplicate_key,
 * missing_image, no_captions) and appended in that order give the same
 * rejects.jsonl as one ds_finalize of the whole data set; their first
 * DS_LOG_REJECTS warnings are logged after the last bucket, in that order
 * too.
 *
 * ds_spill_plan cuts the sorted file into shards with the manifest rule
 * (data/manifest_write.h) as byte offsets; ds_spill_load (any rank) reads
 * the images between two offsets back into a finalized data set.
 *
 * One limit: ds_key_cmp is not a total order on key sets that mix all-digit
 * keys with others ("9" < "10" numerically, "10" < "1a" < "9" bytewise);
 * such a set's order may depend on where the buckets are cut (the spill
 * size), as before it depended on qsort's implementation. Integer ids
 * (COCO, Karpathy) and img2dataset keys are all digits.
 *
 * Memory: one chunk or one bucket at a time (bucket_bytes of records, ~2x
 * that once loaded and sorted), the key sample and the offsets. */
#ifndef CLIPCAP_DS_SPILL_H
#define CLIPCAP_DS_SPILL_H

#include <stddef.h>
#include <stdint.h>
#include "core/log.h"
#include "data/dataset.h"

#define DS_SPILL_DIR ".shard-tmp"  /* inside the manifest directory */
#define DS_SPILL_SORTED "sorted"   /* the survivors in manifest order, inside DS_SPILL_DIR */
/* Keys kept, evenly spread, to cut buckets: at least 8 per bucket at the
 * most buckets, ~300 KB. */
#define DS_SPILL_SAMPLE_MAX 8192

typedef struct ds_spill ds_spill;

/* Creates (or empties) dir and attaches the spill to ds as its sink;
 * chunk_bytes: the data set's size at which a chunk is written;
 * bucket_bytes: the record bytes finalized at once. */
int ds_spill_open(ds_spill **sp, ds_t *ds, const char *dir, size_t chunk_bytes, size_t bucket_bytes, err_t *e);
/* After the readers: writes what ds still holds, then sorts and finalizes
 * bucket by bucket. sum receives ds's counters and every bucket's. */
int ds_spill_finalize(ds_spill *sp, ds_t *ds, ds_summary_t *sum, err_t *e);
/* offsets[0..num_shards]: shard s is the sorted file's bytes
 * [offsets[s], offsets[s+1]). */
int ds_spill_plan(ds_spill *sp, int num_shards, uint64_t *offsets, err_t *e);
/* rejects.jsonl (reading rejects, then duplicate_key, missing_image,
 * no_captions), atomically. */
int ds_spill_write_rejects(ds_spill *sp, const char *path, err_t *e);
/* Removes the files and the folder. */
void ds_spill_close(ds_spill *sp);

/* The images of the sorted file `path` in bytes [begin, end) whose split is
 * `split` (NULL: all) are appended to ds (ds_init'ed), finalized: each
 * image's captions are first_caption .. + n_captions. */
int ds_spill_load(ds_t *ds, const char *path, uint64_t begin, uint64_t end, const char *split, err_t *e);

#endif
