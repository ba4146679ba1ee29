/* `clipcap synth` as a library call: generate the synthetic data set in
 * every layout (synth_layout.h) for options o.
 *
 * Work is split by CC shard: rank r owns shards s with s % size == r and
 * writes those records' COCO images, CC files and tar shard; rank 0 also
 * writes every metadata file. Within a rank, OpenMP threads draw and encode
 * a chunk of records at a time and one thread writes them in record order.
 * Since every record is a pure function of (seed, index), the tree is
 * byte-identical for any rank and thread count. */
#ifndef CLIPCAP_SYNTH_H
#define CLIPCAP_SYNTH_H

#include <stddef.h>
#include <stdint.h>
#include "core/log.h"
#include "data/synth_layout.h"
#include "data/synth_plan.h"

/* The bytes stored as the record's image file: the encoded image, cut in
 * half or emptied for those bad kinds; *image NULL when the record has no
 * image file (missing, failed download). Free with free(). */
int synth_render(const synth_record_t *r, uint8_t **image, size_t *len, err_t *e);

/* Everything; s (rank 0 only) receives the counts for the summary. */
int synth_generate(const synth_opts_t *o, synth_summary_t *s, err_t *e);

#endif
