/* A caption data set as the readers find it, before tokenisation: images
 * (one per key) with their captions, and every input record that was
 * rejected, with the file, the record and the reason.
 *
 * Readers add images and captions in input order (ds_add_image,
 * ds_add_caption) and report bad records with ds_reject; they return an
 * error only for a fatal input problem (unparseable file). ds_finalize then
 * applies the rules every format shares, in this order:
 *   1. images are sorted by key (numerically when both keys are all digits,
 *      else bytewise); of several images with one key the first added is
 *      kept, the others are rejected as duplicate_key;
 *   2. images whose split is not in the selected list are excluded
 *      (counted, not rejected);
 *   3. FILE images whose file is missing, empty or unreadable are rejected
 *      as missing_image (when image checking is on);
 *   4. captions are grouped per image in the order they were added; images
 *      left without a caption are rejected as no_captions.
 * The result is deterministic for a given input: the manifest order.
 *
 * Strings live in one arena and are addressed by offset (ds_str).
 *
 * Bounded memory (`clipcap shard`, data/ds_spill.h): a data set may have a
 * sink. Readers call ds_checkpoint between records, at points where every
 * image added so far has all its captions (CC: between samples; Karpathy:
 * between images; COCO: between files, its captions follow all images);
 * once the data set holds sink_bytes, the sink takes its images, captions
 * and rejects, and they are cleared. The counters (reason_count,
 * input_records, rejects_total) keep counting the whole input. */
#ifndef CLIPCAP_DATASET_H
#define CLIPCAP_DATASET_H

#include <stddef.h>
#include <stdint.h>
#include "core/log.h"
#include "data/manifest.h"

/* Reject reasons (the "reason" of a rejects.jsonl line). */
#define DS_REASONS(X)                                                        \
    X(MALFORMED_RECORD, "malformed_record")       /* missing field, wrong type */ \
    X(EMPTY_CAPTION, "empty_caption")             /* empty or whitespace only */ \
    X(INVALID_UTF8, "invalid_utf8")               /* caption bytes not UTF-8 */ \
    X(DUPLICATE_KEY, "duplicate_key")             /* second image with a key */ \
    X(DUPLICATE_ANNOTATION, "duplicate_annotation_id")                      \
    X(UNKNOWN_IMAGE, "unknown_image")             /* caption for no image */ \
    X(MISSING_IMAGE, "missing_image")             /* file missing/empty/unreadable */ \
    X(NO_CAPTIONS, "no_captions")                 /* image without a valid caption */ \
    X(DOWNLOAD_FAILED, "download_failed")         /* img2dataset status != success */ \
    X(TRUNCATED_MEMBER, "truncated_tar_member")                              \
    X(BAD_TAR, "bad_tar")                         /* tar unreadable past a point */ \
    X(TSV_COLUMNS, "tsv_columns")                 /* wrong column count */ \
    X(NOT_DOWNLOADED, "not_downloaded")           /* TSV row with no sample */ \
    X(URL_MISMATCH, "url_mismatch")               /* sample's url != TSV row's */ \
    X(MISSING_CAPTION, "missing_caption")         /* sample without caption */

#define DS_REASON_ENUM(id, name) DS_##id,
enum ds_reason { DS_REASONS(DS_REASON_ENUM) DS_NUM_REASONS };
#undef DS_REASON_ENUM
const char *ds_reason_name(int reason);

typedef struct ds_image_t {
    uint64_t key, split, path; /* arena offsets; path relative to the root */
    uint64_t file, record;     /* arena offsets: where it came from */
    uint64_t offset, length;   /* TAR location */
    uint32_t first_caption, n_captions; /* valid after ds_finalize */
    uint8_t kind;              /* enum manifest_loc_kind */
    uint8_t dead;
} ds_image_t;

typedef struct ds_caption_t {
    uint64_t text;   /* arena offset */
    uint32_t len;
    uint32_t image;  /* index of the image (before finalize: as added) */
} ds_caption_t;

typedef struct ds_reject_t {
    uint64_t file, record, detail; /* arena offsets */
    int reason;
} ds_reject_t;

struct ds_t;
typedef int (*ds_sink_fn)(struct ds_t *ds, void *user, err_t *e);

typedef struct ds_t {
    char *arena;
    size_t arena_len, arena_cap;
    ds_image_t *images;
    size_t n_images, cap_images;
    ds_caption_t *captions;
    size_t n_captions, cap_captions;
    ds_reject_t *rejects;
    size_t n_rejects, cap_rejects;
    uint64_t reason_count[DS_NUM_REASONS];
    uint64_t excluded_images, excluded_captions; /* by the split selection */
    uint64_t input_records;                      /* records read, all files */
    uint64_t rejects_total;                      /* rejects so far, also those a sink took */
    /* settings */
    char root[4096];        /* images / tar root */
    int check_images;       /* stat FILE images in ds_finalize */
    int log_rejects;        /* log the first rejects at warn level */
    char **splits;          /* NULL = all splits */
    size_t n_splits;
    ds_sink_fn sink;        /* NULL: everything stays in memory */
    void *sink_user;
    size_t sink_bytes;
} ds_t;

/* Per-split and total counts of a manifest (summary.json, index.json),
 * summed over data sets with ds_summary_add: a data set contributes its
 * counters and its images after ds_finalize. Splits are in order of first
 * appearance. */
typedef struct ds_summary_split {
    char *name;
    uint64_t images, captions;
} ds_summary_split;

typedef struct ds_summary_t {
    uint64_t images, captions, input_records, excluded_images, excluded_captions;
    uint64_t reason_count[DS_NUM_REASONS];
    ds_summary_split *splits;
    size_t n_splits;
} ds_summary_t;

int ds_summary_add(ds_summary_t *s, const ds_t *ds, err_t *e);
void ds_summary_free(ds_summary_t *s);

/* root: directory image paths are relative to. */
int ds_init(ds_t *ds, const char *root, int check_images, err_t *e);
void ds_free(ds_t *ds);
/* Select splits from a comma-separated list ("train,restval"); NULL = all. */
int ds_select_splits(ds_t *ds, const char *csv, err_t *e);

static inline const char *ds_str(const ds_t *ds, uint64_t off) { return ds->arena + off; }
/* Copy n bytes (plus a NUL) into the arena; *off receives their offset. */
int ds_intern(ds_t *ds, const char *s, size_t n, uint64_t *off, err_t *e);

/* Returns the new image's index in *idx. file/record describe the source
 * ("captions_train2014.json", "image 17 (id 391895)"). */
int ds_add_image(ds_t *ds, const char *key, const char *split, enum manifest_loc_kind kind,
                 const char *path, uint64_t offset, uint64_t length, const char *file,
                 const char *record, size_t *idx, err_t *e);
/* Validates the caption (UTF-8, not blank): returns 0 when added, 1 when
 * rejected (recorded with file and record), <0 on allocation failure. */
int ds_add_caption(ds_t *ds, size_t image, const char *text, size_t len, const char *file,
                   const char *record, err_t *e);
/* How many rejects are logged one by one before only the count is. */
#define DS_LOG_REJECTS 20

/* Record a rejected input record; detail is the human message. */
int ds_reject(ds_t *ds, int reason, const char *file, const char *record, const char *detail, err_t *e);
/* What ds_reject logs: counts the reject in rejects_total and, with
 * log_rejects, logs the first DS_LOG_REJECTS at warn level (data/ds_spill.h
 * replays the finalize rejects of its buckets through it, in rejects.jsonl
 * order). */
void ds_log_reject(ds_t *ds, int reason, const char *file, const char *record, const char *detail);
int ds_finalize(ds_t *ds, err_t *e);
/* See "Bounded memory" above: hands the data set to its sink when it holds
 * sink_bytes or more (force: whatever it holds), then clears it. */
int ds_checkpoint(ds_t *ds, int force, err_t *e);

/* 1 when s[0..n) is valid UTF-8 (no overlongs, no surrogates, <= U+10FFFF). */
int utf8_valid(const char *s, size_t n);
/* Numeric-aware key order used for the manifest (see above). */
int ds_key_cmp(const char *a, const char *b);

#endif
