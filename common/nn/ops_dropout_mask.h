/* Which elements dropout keeps: a pure function of (key, index), shared by
 * every backend (C and CUDA include it) so that they drop the same
 * elements, and by the test generators (tests/gen/clipcap_ref.py).
 *
 * Element idx of a call is kept when u >= p, where
 *   z = key + (idx + 1)·0x9E3779B97F4A7C15   (mod 2^64)
 *   z = splitmix64's finaliser of z
 *   u = (z >> 40) / 2^24                     (exact in float32)
 * Nothing is stored between forward and backward: backward recomputes the
 * mask. idx counts in a GLOBAL tensor (the caller adds its offset), so a
 * batch split over ranks drops exactly the elements the whole batch would. */
#ifndef CLIPCAP_OPS_DROPOUT_MASK_H
#define CLIPCAP_OPS_DROPOUT_MASK_H

#include <stdint.h>

#ifdef __CUDACC__
#define OPS_DROPOUT_HD __host__ __device__
#else
#define OPS_DROPOUT_HD
#endif

static inline OPS_DROPOUT_HD int ops_dropout_kept(uint64_t key, uint64_t idx, float p)
{
    uint64_t z = key + (idx + 1) * 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z ^= z >> 31;
    return (float)(z >> 40) * (1.0f / 16777216.0f) >= p;
}

#endif
