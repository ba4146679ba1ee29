/* What `clipcap run` tells about a finished evaluation: the shuffled-
 * captions control and the summary printed at the end of a run.
 *
 * The control answers "does the score depend on the image?": each image
 * gets the generated caption of the NEXT image of the results file (the
 * last gets the first's), scored against its own references like the real
 * results. A captioner that ignores its input scores the same both ways. */
#ifndef CLIPCAP_RUN_SUMMARY_H
#define CLIPCAP_RUN_SUMMARY_H

#include <stdio.h>
#include "core/log.h"

/* results: COCO results file [{image_id, caption}]; writes the control's
 * results file (same image ids, captions rotated by one). */
int run_control_write(const char *results, const char *control, err_t *e);

/* From EVAL_DIR/{scores,control-scores,results}.json and the references:
 * BLEU-4, ROUGE-L and CIDEr-D next to the control's, then `examples`
 * held-out images with their generated and reference captions. Nothing is
 * printed when EVAL_DIR has no scores.json. */
int run_summary_print(const char *eval_dir, const char *annotations, int examples, FILE *out, err_t *e);

#endif
