/* The caption tokenisation of the COCO caption evaluation toolkit
 * (pycocoevalcap's PTBTokenizer: Stanford PTBTokenizer 3.4.1 run with
 * -preserveLines -lowerCase, then the toolkit drops the tokens
 * '' ' `` ` -LRB- -RRB- -LCB- -RCB- . ? ! , : - -- ... ;).
 *
 * A C re-implementation of the PTB rules that matter for captions: words
 * split at whitespace and punctuation, contractions split ("don't" ->
 * "do n't", "man's" -> "man 's"), internal hyphens, periods, slashes and
 * digit commas kept ("well-known", "3.5", "1,000"), a final period split
 * unless the word is an abbreviation ("u.s.", "mr."), brackets escaped
 * (-lrb- ...), / and * escaped (\/ \*), ASCII lower-cased. Java lower-cases
 * after escaping, so "-LRB-" reaches the toolkit's filter as "-lrb-" and
 * survives it; we keep that. docs/metrics.md lists what is not covered. */
#ifndef CLIPCAP_PTB_H
#define CLIPCAP_PTB_H

#include <stddef.h>
#include "core/log.h"
#include "data/sbuf.h"

/* The tokenized caption appended to *out (NUL-terminated there, as sbuf
 * keeps it): tokens joined by single spaces, nothing when none is left.
 * Many captions share one buffer; out->failed (ERR_NOMEM) is an error. */
int ptb_tokenize(const char *text, size_t len, sbuf_t *out, err_t *e);

#endif
