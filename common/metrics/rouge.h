/* ROUGE-L exactly as the COCO caption toolkit (pycocoevalcap's rouge.py):
 * per image, the longest common subsequence of the candidate with each
 * reference (words from split(" ")), precision = lcs/|cand| and
 * recall = lcs/|ref| maximised independently over references,
 * F = (1 + b^2) P R / (R + b^2 P) with b = 1.2 (0 when P or R is 0), and the
 * mean over images. */
#ifndef CLIPCAP_ROUGE_H
#define CLIPCAP_ROUGE_H

#include "metrics/metric.h"

/* *mean over images; per_image (NULL or n doubles). */
int rouge_l_score(const metric_item_t *items, size_t n, double *mean, double *per_image, err_t *e);

#endif
