/* The extraction pipeline of one rank: manifest records → image bytes →
 * preprocessed pixels → CLIP embeddings → the rank's store environment.
 *
 *   event loop (libuv, this thread)     worker pool (UV_THREADPOOL_SIZE)
 *   next record → open/fstat/read  ───▶ (file reads run on the pool)
 *   hash bytes, look the key up:
 *     up to date → skipped
 *     else ─────────────────────────────▶ decode + clip_preprocess into a slot
 *   ready slots ◀───────────────────────  (after_work on the loop)
 *   batch complete → copy its rows ─────▶ encoder thread: clip_vit_forward
 *   write batch (+ failures) in one  ◀──  (uv_async on completion)
 *   LMDB transaction; free the slots; read more
 *
 * Fixed batch slots: record i of a shard is row i % B of the shard's batch
 * i / B, and every forward pass runs B rows (zeros where a record was
 * skipped or failed), so an embedding's bits do not depend on the rank
 * count, the resume point or the decode order (docs/store.md,
 * Determinism). They still depend on B and on the model's thread count.
 *
 * Memory is bounded by the slot count (a slot = one image's bytes while
 * read, then its 3xSxS floats), never by the corpus: a record is only read
 * when a slot is free. The encoder works on batch k while the pool reads
 * and decodes later batches into other slots.
 *
 * A record is "up to date" when the store holds an embedding for its key
 * with this run's model fingerprint and dtype, and either its source's
 * stat() (size, mtime in ns, tar member offset) equals the one recorded
 * with it (the file is not even opened; --rehash turns this off) or its
 * bytes hash (XXH3-128) to the recorded content hash (the embedding is then
 * written again with the new stat(), so the next run need not read it).
 * Up-to-date records are skipped without decoding. Failed records are
 * retried on every run; a failure identical to the stored one is not
 * written again. A bad sample (missing, unreadable, truncated, too large,
 * corrupt, unsupported) becomes a failure entry with its reason, never a crash. */
#ifndef CLIPCAP_EXTRACT_PIPELINE_H
#define CLIPCAP_EXTRACT_PIPELINE_H

#include <jansson.h>
#include <stdint.h>
#include "core/log.h"
#include "core/workq.h"
#include "data/manifest.h"
#include "image/clip_preprocess.h"
#include "nn/clip_vit.h"
#include "store/store.h"

typedef struct extract_cfg {
    const manifest_t *manifest;
    workq *units;      /* hands out the shards this rank reads (core/workq.h) */
    clip_vit *model;
    clip_preprocess_cfg pre;
    store *reader;     /* the union (includes writer) */
    store_env *writer; /* this rank's environment */
    const char *model_fp; /* store_model_fingerprint */
    enum store_dtype dtype;
    uint64_t generation;
    int batch;          /* B: the model must be loaded for B (every pass runs B rows) */
    int rehash;         /* read and hash every source, whatever its stat() */
    int slots;          /* images in flight; 0 = 2*batch + 16 */
    size_t max_failures_listed; /* entries kept in the failures array */
} extract_cfg;

typedef struct extract_stats {
    uint64_t images, encoded, skipped, failed, batches;
    uint64_t skipped_unread;   /* of skipped: recognised by stat(), never opened */
    uint64_t metadata_updated; /* of skipped: same bytes, new stat(), written again */
    double t_read, t_decode, t_encode, t_write, t_wall; /* seconds; phases overlap */
    json_t *failures_by_reason; /* {"corrupt": n, ...} */
    json_t *failures;           /* [{"key","reason","message"}] (at most max_failures_listed) */
    json_t *shards;             /* the shards this rank took, in the order taken */
} extract_stats;

/* Runs until cfg->units has no shard left. Bad samples are counted, not
 * returned; the return is an error only for what stops the whole rank
 * (unreadable manifest, store write failure, encoder failure). st's JSON
 * members are new references (extract_stats_free). */
int extract_run(const extract_cfg *cfg, extract_stats *st, err_t *e);
void extract_stats_free(extract_stats *st);

#endif
