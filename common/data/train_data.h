/* The trainer's examples: one per caption of the selected manifest splits,
 * in manifest order (images by shard, captions in record order), with the
 * CLIP embedding of the caption's image fetched from the feature store one
 * batch at a time (docs/training.md).
 *
 * Memory is what a rank needs to draw any batch, not the data set: the
 * manifest's token files (data/manifest_tokens.h: keys and 16-bit ids,
 * written by `clipcap shard`) are mmap'd, so their pages are page cache
 * shared by the ranks of a node; the heap holds 8 bytes per image (its
 * 32-bit index and its 32-bit first example) and a few per shard. An example x is found
 * by binary search over the images' first examples. No embedding is held:
 * train_data_batch looks each one up in the store. The same bits reach
 * the model as from a whole-store read (store_lookup_embedding widens
 * fp16 exactly as the iterator does).
 *
 * train_data_open checks the store BEFORE training starts, so a bad store
 * never fails mid-run: every image must have an entry. An image whose entry
 * is an extraction failure (the image could not be decoded) loses its
 * captions, with a warning; an image with no entry at all is an error (the
 * store is incomplete: run `clipcap extract` on this manifest); every
 * embedding must have the same size D, and D becomes the mapper's CLIP
 * size; every embedding must come from the same CLIP (one model
 * fingerprint, schemas/feature-store.md), which is kept in clip_fp. Under MPI the ranks split the lookups (image i is checked by rank
 * i mod N) and combine them, so every rank ends with the same example list.
 * Collective: every rank calls it. */
#ifndef CLIPCAP_TRAIN_DATA_H
#define CLIPCAP_TRAIN_DATA_H

#include <stddef.h>
#include <stdint.h>
#include "core/log.h"
#include "store/store.h"

struct manifest_tokens;

typedef struct train_data {
    int L;                  /* max_seq_len from the manifest header */
    int D;                  /* CLIP embedding size from the store */
    size_t n_images;        /* images with an embedding (others dropped) */
    size_t n_examples;
    size_t n_dropped_images, n_dropped_examples; /* extraction failures */
    int n_shards;
    struct manifest_tokens *shards; /* [n_shards] mapped token files */
    uint64_t *shard_base;   /* [n_shards + 1] first manifest image of each shard */
    uint32_t *img;          /* [n_images] manifest image index of each kept image */
    uint32_t *ex_first;     /* [n_images + 1] kept image k's examples are [ex_first[k], ex_first[k+1]);
                             * 32-bit: train_data_open refuses more than UINT32_MAX examples */
    store *st;              /* open for the per-batch lookups */
    char clip_fp[33];       /* the store's model fingerprint, the same for every embedding */
    const char *store_dir;  /* for error messages (the caller's string) */
} train_data;

/* splits: comma-separated manifest splits to use, NULL = all. */
int train_data_open(train_data *d, const char *manifest_dir, const char *splits, const char *store_dir, err_t *e);
/* The same with captions cut to max_len tokens instead of the manifest's
 * max_seq_len (max_len 0: the manifest's). */
int train_data_open_len(train_data *d, const char *manifest_dir, const char *splits, const char *store_dir,
                        int max_len, err_t *e);
/* Cut every example to at most L < d->L tokens (L becomes d->L); returns
 * how many examples are longer than L. */
size_t train_data_cut(train_data *d, int L);
void train_data_close(train_data *d); /* also after a failed open */

/* Examples ex[0..n): clip [n, D] receives their embeddings, tokens [n, L]
 * their ids padded with -1 (what clipcap_model_forward takes). */
int train_data_batch(train_data *d, const uint32_t *ex, int n, float *clip, int32_t *tokens, err_t *e);

/* The key of kept image k (< n_images). */
const char *train_data_key(const train_data *d, size_t k);

/* Bytes of heap the example set holds (the token files are mapped, not
 * counted). */
size_t train_data_bytes(const train_data *d);

#endif
