/* Caption decoding: GPT-2 with a key/value cache, batched over many
 * prefixes at once, greedy or beam search with the reference's exact
 * semantics (CLIPCAP_FACTS.md, "Generation"; docs/decoding.md).
 *
 * Contract:
 * - Input: n prefixes [n, k, E] in BACKEND memory (the mapper's output).
 *   Output: for each prefix, num_captions results, best first.
 * - Batching: up to max_batch sequences (greedy: one per prefix; beam: beam
 *   per prefix) are decoded together; a prefix whose captions are finished
 *   leaves the batch and the next waiting prefix is prefilled into its
 *   cache slots (continuous batching, ragged lengths), so throughput does
 *   not wait for the longest caption.
 * - Greedy: argmax each step; stop after stop_token (kept) or max_tokens.
 * - Beam: log-softmax scores; the first step takes the top `beam` tokens;
 *   a finished beam extends only with token 0 at no cost and stops growing
 *   in length; candidates ranked by total log-prob / length; stops when all
 *   beams have emitted stop_token or after max_tokens; results ranked by
 *   average log-prob, the length counting generated tokens.
 * - The tokens of a prefix do not depend on which other prefixes share its
 *   batch, up to the last bits of fp32 sums (which can flip an exact tie).
 * - One decoder is used by one thread at a time; it borrows the gpt2, which
 *   must outlive it. */
#ifndef CLIPCAP_DECODE_H
#define CLIPCAP_DECODE_H

#include <stdint.h>
#include "core/log.h"
#include "nn/gpt2.h"

typedef struct decode_config {
    int max_tokens;   /* 67 in the reference */
    int stop_token;   /* 13 ("."); < 0: never stop early */
    int beam;         /* 1 = greedy */
    int num_captions; /* 1 <= num_captions <= beam */
    int max_batch;    /* sequences decoded together (>= beam) */
} decode_config;

/* The reference's settings: 67 tokens, stop at ".", greedy, one caption. */
void decode_config_default(decode_config *cfg);

typedef struct decode_result {
    const int32_t *tokens; /* generated tokens, stop token included; owned by
                              the decoder, valid until the next decode_run */
    int n_tokens;
    double logprob; /* sum of the log-probs of the tokens (the reference's
                       running fp32 score) */
    double score;   /* what the ranking used: logprob / n_tokens (fp32) */
} decode_result;

typedef struct decoder decoder;

/* prefix_len = k. Allocates the key/value cache for max_batch sequences
 * (rounded down to a multiple of beam) of k + max_tokens - 1 positions (the
 * last token is never fed back; more than n_positions is ERR_ARG). */
int decoder_create(decoder **out, gpt2 *g, const decode_config *cfg, int prefix_len, err_t *e);
void decoder_free(decoder *d); /* NULL is allowed */

/* prefixes: backend memory [n, k, E]. results: n · num_captions entries;
 * prefix i's captions at [i·num_captions, (i+1)·num_captions). */
int decode_run(decoder *d, const float *prefixes, int n, decode_result *results, err_t *e);

#endif
