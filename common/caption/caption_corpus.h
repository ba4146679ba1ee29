/* Captioning a whole manifest with precomputed CLIP embeddings, over MPI
 * ranks: the corpus dump behind `clipcap caption --manifest` and the
 * generation behind `clipcap eval` (format: schemas/captions.md;
 * docs/caption-dump.md).
 *
 * Dump (caption_corpus_run):
 * - The ranks take manifest shards one at a time from a work queue
 *   (core/workq.h), so a slow rank takes fewer; shard s's captions go to OUT/captions-SSSSS-of-NNNNN.jsonl.zst, one line per
 *   image (key, caption, tokens, logprob, fingerprint), in manifest order;
 *   with decode.num_captions K > 1 the other K-1 follow in "alternatives".
 *   Images without an embedding in the store (absent, or a failure entry
 *   from extract) go to OUT/failures-SSSSS-of-NNNNN.jsonl.zst with the
 *   reason.
 * - Memory is bounded: records stream from the manifest one batch at a
 *   time and each embedding is looked up by key (store_lookup_embedding).
 * - Resumable: every batch is committed as one complete zstd frame
 *   appended to OUT/partial/..., then fsync'd. A run that was killed at
 *   any moment and is started again keeps the complete frames, cuts a torn
 *   tail, skips the images already written and carries on: no duplicate,
 *   no gap. A finished shard is renamed into place; a finished shard is
 *   never redone. Resuming with another model fingerprint or split filter
 *   is refused (ERR_ARG naming what differs).
 * - Rank 0 writes OUT/index.json (shards, counts, failures, fingerprint,
 *   settings) after every rank has finished (a gather), atomically: a
 *   directory without it is not a finished dump.
 * - The output is the same whatever the number of ranks.
 *
 * Eval (caption_corpus_collect): the ranks take manifest shards from a
 * work queue and caption their selected images in batches that never span
 * two shards (so a caption does not depend on the rank count); rank 0
 * receives the results one shard at a time in shard order, i.e. manifest
 * order, so it holds the item list and one shard's results in flight. Images without an embedding are an error there: a
 * score over a silently smaller set would not be comparable. With
 * skip_failed, images whose extraction failed are left out, each logged
 * with its key and reason, and the count is logged at the end. */
#ifndef CLIPCAP_CAPTION_CORPUS_H
#define CLIPCAP_CAPTION_CORPUS_H

#include <stddef.h>
#include "caption/captioner.h"
#include "core/log.h"

typedef struct caption_corpus_options {
    const char *manifest;  /* manifest directory (clipcap shard) */
    const char *store;     /* feature store directory (clipcap extract) */
    const char *out;       /* dump: output directory, created if needed */
    const char *splits;    /* comma-separated split names; NULL or "" = every split */
    int batch;             /* images per captioner_run call and per committed frame */
    int zstd_level;        /* output compression */
    const char *settings;  /* JSON object text added to index.json "settings" beside the
                              captioner's model and decode settings (e.g. the checkpoint
                              path); NULL = none */
    int skip_failed;       /* eval: an image whose extraction failed (a failure record in
                              the store, e.g. a corrupt file) is left out with a warning
                              instead of being an error; an image the store has never
                              seen stays an error */
} caption_corpus_options;

/* splits NULL, batch 64, zstd_level 3, settings NULL. */
void caption_corpus_options_default(caption_corpus_options *o);

/* The dump. Collective: every rank calls it; all return the same status. */
int caption_corpus_run(const caption_corpus_options *opt, captioner *c, err_t *e);

/* One generated caption for eval. */
typedef struct caption_corpus_item {
    char *key;     /* manifest key (COCO: the image id, decimal) */
    char *caption; /* the best caption */
} caption_corpus_item;

/* Eval generation. Collective. On rank 0 *items holds every selected image
 * in manifest order (*n of them); other ranks get NULL / 0. Free with
 * caption_corpus_items_free. */
int caption_corpus_collect(const caption_corpus_options *opt, captioner *c, caption_corpus_item **items, size_t *n,
                           err_t *e);
void caption_corpus_items_free(caption_corpus_item *items, size_t n);

/* Eval's checks before any captioning, on one rank (no collective): every
 * selected image has an embedding (an absent key, or an extract failure
 * without skip_failed, is the error caption_corpus_collect would stop on,
 * naming the store, key, split and reason), and the selection is not
 * empty. on_key gets the key of each image that will be captioned, in
 * manifest order; a non-zero return stops the walk. */
typedef int (*caption_corpus_key_fn)(void *ctx, const char *key, err_t *e);
int caption_corpus_check(const caption_corpus_options *opt, caption_corpus_key_fn on_key, void *ctx, err_t *e);

#endif
