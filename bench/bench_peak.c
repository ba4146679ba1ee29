/* The CPU's measured arithmetic peak: fp32 FMA and, where the CPU has
 * AVX512-BF16, bf16 dot products (vdpbf16ps), on THREADS OpenMP threads.
 * Twelve independent accumulator chains per thread hide the instructions'
 * latency, so the loop runs at the issue rate. A formula (cores × FLOP per
 * cycle × clock) cannot stand in for this: Zen 4 executes 512-bit
 * instructions on 256-bit units, and the clock under turbo is unknown.
 * bench_clip.sh and docs/nn.md hold GEMM and tower rates against these.
 *
 *   bench_peak [THREADS]   prints "fp32 FMA peak: X GFLOP/s" and
 *                          "bf16 dot peak: Y GFLOP/s" (or "none") */
#include <immintrin.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define CHAINS 12
#define ITERS 40000000L

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Twelve named accumulators (an array would live in memory). The empty
 * asm makes each opaque, so the compiler can neither merge the identical
 * chains nor drop the loop. */
#define ACC_DECLARE(T, set1)                                                                            \
    T a0 = set1(0), a1 = set1(1), a2 = set1(2), a3 = set1(3), a4 = set1(4), a5 = set1(5), a6 = set1(6), \
      a7 = set1(7), a8 = set1(8), a9 = set1(9), a10 = set1(10), a11 = set1(11)
#define ACC_STEP(op)                                                                                    \
    do {                                                                                                \
        __asm__ volatile("" : "+v"(a0), "+v"(a1), "+v"(a2), "+v"(a3), "+v"(a4), "+v"(a5), "+v"(a6),  \
                         "+v"(a7), "+v"(a8), "+v"(a9), "+v"(a10), "+v"(a11));                          \
        a0 = op(a0); a1 = op(a1); a2 = op(a2); a3 = op(a3); a4 = op(a4); a5 = op(a5);                   \
        a6 = op(a6); a7 = op(a7); a8 = op(a8); a9 = op(a9); a10 = op(a10); a11 = op(a11);               \
    } while (0)
#define ACC_SUM(add) add(add(add(add(a0, a1), add(a2, a3)), add(add(a4, a5), add(a6, a7))), \
                         add(add(a8, a9), add(a10, a11)))

/* One kernel per instruction: iters rounds of twelve independent ops. */
#define PEAK_KERNEL(name, isa, T, set1, add, op, fold)              \
    __attribute__((target(isa))) static float name(long iters)      \
    {                                                               \
        ACC_DECLARE(T, set1);                                       \
        for (long i = 0; i < iters; i++) ACC_STEP(op);              \
        return fold(ACC_SUM(add));                                  \
    }
#define FMA512(a) _mm512_fmadd_ps(_mm512_set1_ps(1e-7f), _mm512_set1_ps(1.0f), a)
#define FMA256(a) _mm256_fmadd_ps(_mm256_set1_ps(1e-7f), _mm256_set1_ps(1.0f), a)
#define BF16_ONE ((__m512bh)_mm512_set1_epi16(0x3f80))
#define DPBF16(a) _mm512_dpbf16_ps(a, BF16_ONE, BF16_ONE)

__attribute__((target("avx"))) static float sum256(__m256 v)
{
    float lanes[8], s = 0;
    _mm256_storeu_ps(lanes, v);
    for (int j = 0; j < 8; j++) s += lanes[j];
    return s;
}

PEAK_KERNEL(fma512, "avx512f", __m512, _mm512_set1_ps, _mm512_add_ps, FMA512, _mm512_reduce_add_ps)
PEAK_KERNEL(fma256, "avx2,fma", __m256, _mm256_set1_ps, _mm256_add_ps, FMA256, sum256)
PEAK_KERNEL(dpbf16, "avx512f,avx512bf16", __m512, _mm512_set1_ps, _mm512_add_ps, DPBF16, _mm512_reduce_add_ps)

/* GFLOP/s of kernel on every thread at once; flop_per_op counts one
 * instruction's multiplies and adds. The best of three runs. */
static double peak(float (*kernel)(long), double flop_per_op, int threads)
{
    double best = 0;
    volatile float sink = 0;
    for (int rep = 0; rep < 3; rep++) {
        float s = 0;
        double t0 = now();
#pragma omp parallel num_threads(threads) reduction(+ : s)
        s += kernel(ITERS);
        double rate = (double)threads * CHAINS * ITERS * flop_per_op / (now() - t0) / 1e9;
        best = rate > best ? rate : best;
        sink += s;
    }
    return best;
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : omp_get_max_threads();
    if (threads < 1) {
        fprintf(stderr, "bench_peak: THREADS must be a positive integer, got '%s'\n", argv[1]);
        return 1;
    }
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f"))
        printf("fp32 FMA peak: %.1f GFLOP/s (%d threads, 512-bit)\n", peak(fma512, 16 * 2, threads), threads);
    else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        printf("fp32 FMA peak: %.1f GFLOP/s (%d threads, 256-bit)\n", peak(fma256, 8 * 2, threads), threads);
    else
        printf("fp32 FMA peak: none (no FMA)\n");
    if (__builtin_cpu_supports("avx512bf16"))
        printf("bf16 dot peak: %.1f GFLOP/s (%d threads)\n", peak(dpbf16, 32 * 2, threads), threads);
    else
        printf("bf16 dot peak: none (no AVX512-BF16)\n");
    return 0;
}
