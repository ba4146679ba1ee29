/* Image files → CLIP embeddings: read each file, decode and CLIP-preprocess
 * it (clip_preprocess), and run clip_vit_forward over the images that
 * decoded, max_batch files at a time. `clipcap embed` and
 * `clipcap caption --images` both embed through here, so the two give the
 * same bits for the same files and batches. (`clipcap extract` reads with
 * libuv and batches across a pipeline; it calls clip_preprocess itself.)
 *
 * A file that cannot be read or decoded is that file's failure, never the
 * call's: status[i] gets the negative ERR_* code, row i of out is zeroed,
 * and "PATH: reason" is logged at LOG_ERROR, in input order, after its
 * batch is decoded. The other files of its batch are still embedded. The
 * call returns an error only for what stops the run (the forward pass);
 * out and status are then unspecified.
 *
 * Batches: files [0, B), [B, 2B), ... in order; each batch's decoded images
 * go through one forward pass. BLAS's result for an image can differ in the
 * last bit with the batch around it, so a caller that splits a list between
 * ranks splits it at multiples of max_batch to get one process's bits.
 * Decoding runs on `threads` OpenMP threads (0: omp_get_max_threads()).
 *
 * The embedder owns one batch of buffers (max_batch x 3 x S x S floats)
 * and borrows the model, which must outlive it; like the model it runs one
 * call at a time. */
#ifndef CLIPCAP_CLIP_EMBED_H
#define CLIPCAP_CLIP_EMBED_H

#include "core/log.h"
#include "nn/clip_vit.h"

typedef struct clip_embed clip_embed;

typedef struct clip_embed_cfg {
    int max_batch;   /* >= 1 and <= the max_batch the model was loaded with */
    int fast_resize; /* clip_preprocess_cfg.fast_resize: 0 = exact */
    int threads;     /* decode threads; 0 = omp_get_max_threads() */
} clip_embed_cfg;

int clip_embed_create(clip_embed **ce, clip_vit *model, const clip_embed_cfg *cfg, err_t *e);
/* NULL is allowed. */
void clip_embed_free(clip_embed *ce);
/* paths[0..n), n >= 0 → out[n, clip_vit_embed_dim(model)] and status[n]
 * (0 = embedded, else the file's ERR_* code). */
int clip_embed_files(clip_embed *ce, char *const *paths, int n, float *out, int *status, err_t *e);

#endif
