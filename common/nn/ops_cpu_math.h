/* Vectorisable float math shared by the CPU backend's forward and backward
 * halves: fast_expf, and the max and Σ exp of a logits row that
 * cross-entropy and its gradient both need. Inline, so that they compile
 * into the callers' target clones (core/target_clones.h): a call would not
 * vectorise. The callers compile with no-trapping-math (a float compare may
 * then go into a vector loop). */
#ifndef CLIPCAP_OPS_CPU_MATH_H
#define CLIPCAP_OPS_CPU_MATH_H

#include <stdint.h>
#include <string.h>

/* exp(x) for float, vectorisable (no call, no branch): Cody-Waite range
 * reduction x = n·ln2 + r, |r| <= ln2/2, a degree-6 polynomial for e^r and
 * 2^n assembled in the exponent bits. Within 1 ulp of the correctly rounded
 * e^x for every float in [-87, 88] with |x| >= 1e-3 (checked exhaustively
 * against double exp). The input is clamped to the normal range, so below
 * -87.3 (and for -inf) it returns about 1e-38 instead of a denormal or 0:
 * a softmax weight or sigmoid tail that small is 0 for every use here.
 * Above 88.37 (where n rounds to 128) it returns inf. */
static inline __attribute__((always_inline)) float fast_expf(float x)
{
    x = x < -87.33654f ? -87.33654f : x;
    x = x > 88.72283f ? 88.72283f : x;
    /* round to nearest by adding 1.5·2^23: no floorf call, so it vectorises
     * with plain SSE2 */
    float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23;
    float two_n;
    memcpy(&two_n, &bits, sizeof two_n);
    return p * two_n;
}

/* The largest of x[0..n), n >= 1. */
static inline __attribute__((always_inline)) float ops_cpu_row_max(const float *x, int n)
{
    float m = x[0];
#pragma omp simd reduction(max : m)
    for (int j = 1; j < n; j++) m = x[j] > m ? x[j] : m;
    return m;
}

/* Σ_j e^(x_j - m) over x[0..n), each term also stored in e[j] when e is
 * not NULL (a constant NULL folds away). The terms are fast_expf's floats;
 * the sum is in double, per SIMD lane, because a row is GPT-2's V = 50257
 * terms long, where a float sum drops the small terms' contribution (the
 * sum's rounding is then below n·2^-53 relative, far under the terms' own
 * ulp). The lanes make the order depend on the clone the CPU runs, never
 * on the thread count. */
static inline __attribute__((always_inline)) double ops_cpu_sum_exp(const float *x, int n, float m, float *e)
{
    double s = 0.0;
#pragma omp simd reduction(+ : s)
    for (int j = 0; j < n; j++) {
        float t = fast_expf(x[j] - m);
        if (e) e[j] = t;
        s += t;
    }
    return s;
}

#endif
