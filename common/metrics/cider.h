/* CIDEr-D exactly as the COCO caption toolkit (pycocoevalcap's
 * cider_scorer.py, n = 4, sigma = 6) computes it.
 *
 * Document frequency counts the images whose reference set holds an n-gram,
 * over the evaluated set only (so a sharded evaluation must gather all
 * images before scoring). Each caption becomes, per n, a vector of
 * tf * (log(N) - log(max(1, df))); the similarity of candidate and reference
 * per n is sum(min(c, r) * r) / (|c| |r|) times the Gaussian penalty
 * exp(-d^2 / (2 sigma^2)), where d is the difference of their numbers of
 * BIGRAMS (the toolkit's length, a quirk we match). An image scores the
 * mean over n, averaged over its references, times 10; the corpus score is
 * the mean over images. */
#ifndef CLIPCAP_CIDER_H
#define CLIPCAP_CIDER_H

#include "metrics/metric.h"

/* *mean over the images of the set g (metric_grams_build); per_image (NULL
 * or n doubles). Images are scored in parallel (OpenMP); the result does
 * not depend on the number of threads. */
int cider_d_score(const metric_grams_t *g, double *mean, double *per_image, err_t *e);

#endif
