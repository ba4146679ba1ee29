#include "data/synth_rng.h"

uint64_t synth_splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

uint64_t synth_seed_mix(uint64_t seed, uint64_t index, uint64_t purpose)
{
    uint64_t st = seed;
    uint64_t a = synth_splitmix64(&st);
    st = a ^ index;
    uint64_t b = synth_splitmix64(&st);
    st = b ^ (purpose * 0xd1b54a32d192ed03ull);
    return synth_splitmix64(&st);
}

void synth_rng_init(synth_rng_t *r, uint64_t seed)
{
    /* splitmix64 fills the state as xoshiro's authors recommend: it never
     * yields the all-zero state for any seed. */
    uint64_t st = seed;
    for (int i = 0; i < 4; i++) r->s[i] = synth_splitmix64(&st);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t synth_rng_next(synth_rng_t *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

uint32_t synth_rng_below(synth_rng_t *r, uint32_t n)
{
    /* Lemire's multiply-shift with rejection: unbiased and needs no division
     * on the common path. */
    uint64_t m = (uint64_t)(uint32_t)(synth_rng_next(r) >> 32) * n;
    uint32_t low = (uint32_t)m;
    if (low < n) {
        uint32_t thresh = (uint32_t)(-n) % n;
        while (low < thresh) {
            m = (uint64_t)(uint32_t)(synth_rng_next(r) >> 32) * n;
            low = (uint32_t)m;
        }
    }
    return (uint32_t)(m >> 32);
}

double synth_rng_uniform(synth_rng_t *r, double lo, double hi)
{
    double u = (double)(synth_rng_next(r) >> 11) * 0x1.0p-53;
    return lo + (hi - lo) * u;
}

void synth_rng_shuffle(synth_rng_t *r, uint32_t *a, size_t n)
{
    for (size_t i = n; i > 1; i--) {
        uint32_t j = synth_rng_below(r, (uint32_t)i);
        uint32_t t = a[i - 1];
        a[i - 1] = a[j];
        a[j] = t;
    }
}
