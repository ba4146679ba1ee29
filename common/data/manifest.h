/* The manifest: what `clipcap shard` writes and every later stage reads
 * (format: schemas/manifest.md, version 1).
 *
 * A manifest is a directory:
 *   index.json                  the header: version, counts per split, the
 *                               caption token-length statistics (max_seq_len),
 *                               the shard list with per-shard counts, sizes
 *                               and XXH3-128 checksums. Written last and
 *                               atomically: a directory without it is not a
 *                               manifest.
 *   shard-SSSSS-of-NNNNN.jsonl.zst   one record per IMAGE per line (zstd
 *                               JSONL, a shard header object first).
 *   rejects.jsonl, summary.json the bad input records and the run summary.
 *
 * Reading: manifest_open() loads index.json; manifest_shard_open() streams
 * one shard in bounded memory (one record decoded at a time). A record and
 * everything it points to stay valid until the next manifest_shard_next()
 * or manifest_shard_close() on the same reader. Readers of different shards
 * are independent (one per thread is fine); a manifest_t is read-only after
 * open.
 *
 * `clipcap shard` writes shard s on rank s % size (manifest_rank_shards());
 * the stages that read shards take them dynamically (core/workq.h). */
#ifndef CLIPCAP_MANIFEST_H
#define CLIPCAP_MANIFEST_H

#include <stddef.h>
#include <stdint.h>
#include "core/log.h"

#define MANIFEST_VERSION 1
#define MANIFEST_INDEX_NAME "index.json"

enum manifest_loc_kind {
    MANIFEST_LOC_FILE = 0, /* a whole image file */
    MANIFEST_LOC_TAR = 1,  /* bytes [offset, offset+length) of a tar file */
};

typedef struct manifest_loc_t {
    enum manifest_loc_kind kind;
    /* Full path (the index's root joined with the stored relative path):
     * the image file, or the tar file holding the image member. */
    const char *path;
    uint64_t offset, length; /* TAR only (data offset and size of the member) */
} manifest_loc_t;

typedef struct manifest_record_t {
    const char *key;   /* stable id: COCO image id, img2dataset key */
    const char *split; /* "train2014", "train", "restval", "val", ... */
    manifest_loc_t loc;
    size_t n_captions;
    const char *const *captions;   /* UTF-8, NUL-terminated */
    const int32_t *const *tokens;  /* tokens[i]: GPT-2 ids of captions[i] */
    const uint32_t *n_tokens;      /* n_tokens[i]: how many */
} manifest_record_t;

/* Over every tokenised caption of the manifest (all splits). std is the
 * unbiased sample std (n-1); max_seq_len = min((int)(mean + 10*std), max),
 * ClipCap's padding length. */
typedef struct manifest_token_stats_t {
    uint64_t count;
    double mean, std;
    uint32_t max;
    uint32_t max_seq_len;
} manifest_token_stats_t;

typedef struct manifest_shard_info_t {
    char file[64];      /* name inside the manifest directory */
    uint64_t images, captions, bytes;
    char xxh128[33];    /* of the compressed file */
    /* the shard's token file (data/manifest_tokens.h); tokens_file is empty
     * in manifests written before token files existed */
    char tokens_file[64];
    uint64_t tokens_bytes;
    char tokens_xxh128[33];
} manifest_shard_info_t;

typedef struct manifest_split_count_t {
    char name[32];
    uint64_t images, captions;
} manifest_split_count_t;

typedef struct manifest_t manifest_t;

int manifest_open(manifest_t **out, const char *dir, err_t *e);
void manifest_close(manifest_t *m); /* NULL is allowed */

const char *manifest_dir(const manifest_t *m);
/* The directory image paths are relative to (as recorded by `shard`). */
const char *manifest_root(const manifest_t *m);
/* "coco", "karpathy", "cc-files", "cc-tar" */
const char *manifest_source_format(const manifest_t *m);
int manifest_num_shards(const manifest_t *m);
uint64_t manifest_num_images(const manifest_t *m);
uint64_t manifest_num_captions(const manifest_t *m);
const manifest_token_stats_t *manifest_token_stats(const manifest_t *m);
const manifest_shard_info_t *manifest_shard_info(const manifest_t *m, int shard);
int manifest_num_splits(const manifest_t *m);
const manifest_split_count_t *manifest_split(const manifest_t *m, int i);

/* The static rule `clipcap shard` writes with: shard s is owned by rank
 * s % size. Writes the owned shard numbers in
 * increasing order to out (cap entries at most) and returns how many a rank
 * owns (may exceed cap: then only cap are written). */
static inline int manifest_shard_owner(int shard, int size) { return size > 0 ? shard % size : 0; }
int manifest_rank_shards(int num_shards, int rank, int size, int *out, int cap);

/* Check a shard file's size and checksum against the index (reads it once). */
int manifest_verify_shard(const manifest_t *m, int shard, err_t *e);

typedef struct manifest_shard_reader manifest_shard_reader;
/* Verifies the shard (manifest_verify_shard: a shard whose size or
 * checksum is not the index's is ERR_FORMAT naming it and both values),
 * then opens it for streaming. */
int manifest_shard_open(manifest_shard_reader **r, const manifest_t *m, int shard, err_t *e);
/* 1 = a record in *rec, 0 = end of shard, <0 = error naming shard file and
 * line. The end is checked against the shard header's counts: a shard with
 * fewer records than its header says is ERR_FORMAT. */
int manifest_shard_next(manifest_shard_reader *r, manifest_record_t *rec, err_t *e);
void manifest_shard_close(manifest_shard_reader *r); /* NULL is allowed */

/* A tar record's bytes are found by offset only; a tar rewritten after
 * `shard` (members reordered, replaced) would hand a key another image's
 * bytes. header: the 512 bytes before rec->loc.offset (unused, may be
 * NULL, when the offset is under 512: refused). ERR_FORMAT naming
 * the tar, the offset and both names unless they are a valid header of a
 * regular member of rec->loc.length bytes whose name gives rec->key (the
 * webdataset rule, reader_cc_key). A name that fills its header field may
 * be cut (the whole one is in a pax or GNU header further back): then only
 * the checksum, type and size are checked. */
int manifest_check_tar_header(const manifest_record_t *rec, const uint8_t header[512], err_t *e);

/* The image's encoded bytes (JPEG/PNG/WebP), malloc'd: a whole-file read or
 * a tar range read (its header checked by manifest_check_tar_header).
 * Errors name the path (and the record key when given). */
int manifest_read_image(const manifest_record_t *rec, uint8_t **data, size_t *len, err_t *e);

#endif
