/* BLEU-1..4 exactly as the COCO caption toolkit (pycocoevalcap's
 * bleu_scorer.py, option "closest") computes it.
 *
 * Per image: n-gram counts of the candidate clipped by the largest count in
 * any one reference; the reference length is the one closest to the
 * candidate's (ties to the shorter). Corpus score: clipped counts and
 * lengths summed over images, geometric mean of the precisions with the
 * toolkit's constants (tiny = 1e-15 added to counts, small = 1e-9 to
 * denominators), brevity penalty exp(1 - 1/ratio) when
 * ratio = (c + tiny) / (r + small) < 1. The per-image scores are the same
 * formula on one image's counts. */
#ifndef CLIPCAP_BLEU_H
#define CLIPCAP_BLEU_H

#include "metrics/metric.h"

/* corpus[k] = BLEU-(k+1) of the set g (metric_grams_build); per_image
 * (NULL or n*4 doubles, image-major) receives each image's BLEU-1..4.
 * Images are scored in parallel (OpenMP); the result does not depend on
 * the number of threads. */
int bleu_score(const metric_grams_t *g, double corpus[4], double *per_image, err_t *e);

#endif
