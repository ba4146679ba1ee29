/* The synthetic data set's random numbers: splitmix64 to derive seeds and
 * xoshiro256** to draw from them (both as published by Vigna). Never rand():
 * the same seed must give the same bytes on every libc, thread count and
 * rank count, so every image draws from its own generator seeded from
 * (data-set seed, image index, purpose) and nothing depends on call order
 * across images. */
#ifndef CLIPCAP_SYNTH_RNG_H
#define CLIPCAP_SYNTH_RNG_H

#include <stddef.h>
#include <stdint.h>

typedef struct synth_rng_t {
    uint64_t s[4];
} synth_rng_t;

/* One step of splitmix64: advances *state and returns the next output. */
uint64_t synth_splitmix64(uint64_t *state);
/* A seed for one purpose of one item: mixes the three words with splitmix64
 * so that nearby (seed, index, purpose) triples give unrelated streams. */
uint64_t synth_seed_mix(uint64_t seed, uint64_t index, uint64_t purpose);

void synth_rng_init(synth_rng_t *r, uint64_t seed);
uint64_t synth_rng_next(synth_rng_t *r);
/* Uniform in [0, n) without modulo bias; n > 0. */
uint32_t synth_rng_below(synth_rng_t *r, uint32_t n);
/* Uniform in [lo, hi). */
double synth_rng_uniform(synth_rng_t *r, double lo, double hi);
/* Fisher-Yates shuffle of a[0..n). */
void synth_rng_shuffle(synth_rng_t *r, uint32_t *a, size_t n);

#endif
