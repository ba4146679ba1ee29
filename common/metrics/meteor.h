/* METEOR 1.5 through its jar, exactly as pycocoevalcap's meteor.py drives
 * it: `java -jar -Xmx2G meteor-1.5.jar - - -stdio -l en -norm`, then per
 * image one line "SCORE ||| ref 1 ||| ... ||| ref n ||| candidate" (the
 * candidate with "|||" removed and its first double spaces made single)
 * answered by one line of statistics, then one line
 * "EVAL ||| stats 1 ||| ... ||| stats N" answered by N per-image scores
 * and the corpus score, one a line. The corpus score is METEOR's own (not
 * the mean of the per-image scores), as in the toolkit. Captions are the
 * PTB-tokenized ones of metric_item_t. */
#ifndef CLIPCAP_METEOR_H
#define CLIPCAP_METEOR_H

#include "metrics/metric.h"

/* per_image: NULL or n doubles. */
int meteor_score(const char *jar, const metric_item_t *items, size_t n, double *score, double *per_image, err_t *e);

#endif
