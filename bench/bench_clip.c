/* clipcap side of bench/bench_clip.sh: loads the CLIP directory the Python
 * side wrote, encodes images.npy BATCHES times (after one warm-up pass) at
 * PRECISION (default fp32), prints images/s and the distance from torch's
 * float32 embeddings (torch.npy): max|diff| / max|torch| at fp32 (must be
 * <= 1e-4), the smallest cosine at other precisions (must be >= 0.999).
 * Then times the tower's largest GEMM shape (fc1: B·50 x 768 x 3072, the
 * weight registered as the model's are) through ops_matmul at the same
 * precision: the GEMM rate the tower's own rate compares with.
 *
 * usage: bench_clip OUTDIR BATCHES THREADS [PRECISION] */
#include "core/progress.h"
#include "io/npy.h"
#include "nn/clip_vit.h"
#include "nn/ops_ext.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* GFLOP/s of out[M,N] = in[M,K]·Wᵀ + b at the context's precision. */
static double gemm_rate(ops_ctx *ops, int M, int K, int N, err_t *e)
{
    float *in = ops_alloc(ops, (size_t)M * K, e), *w = ops_alloc(ops, (size_t)N * K, e);
    float *b = ops_alloc(ops, (size_t)N, e), *out = ops_alloc(ops, (size_t)M * N, e);
    double rate = -1.0;
    if (in && w && b && out && !ops_register_weights(ops, w, (size_t)N * K, e)) {
        ops_fill(ops, in, 0.5f, (size_t)M * K);
        ops_fill(ops, w, 0.25f, (size_t)N * K);
        ops_matmul(ops, out, in, w, b, M, K, N, OPS_W_NK);
        int reps = 0;
        double t0 = clock_now(), dt = 0.0;
        while (dt < 1.0) {
            ops_matmul(ops, out, in, w, b, M, K, N, OPS_W_NK);
            reps++;
            dt = clock_now() - t0;
        }
        rate = 2.0 * M * K * N * reps / dt / 1e9;
    }
    ops_free(ops, in), ops_free(ops, w), ops_free(ops, b), ops_free(ops, out);
    return rate;
}

int main(int argc, char **argv)
{
    if (argc != 4 && argc != 5) {
        fprintf(stderr, "usage: bench_clip OUTDIR BATCHES THREADS [PRECISION]\n");
        return 2;
    }
    const char *dir = argv[1];
    int batches = atoi(argv[2]), threads = atoi(argv[3]);
    char path[4096];
    err_t e = {0};
    float *images = NULL, *ref = NULL;
    int64_t shape[NPY_MAX_DIMS], rshape[NPY_MAX_DIMS];
    int ndim = 0, rndim = 0;
    ops_ctx *ops = NULL;
    clip_vit *m = NULL;
    enum ops_precision prec = OPS_FP32;
    if (argc == 5 && ops_precision_parse(argv[4], &prec, &e)) goto fail;
    snprintf(path, sizeof path, "%s/images.npy", dir);
    if (npy_read_f32(path, &images, shape, &ndim, &e)) goto fail;
    snprintf(path, sizeof path, "%s/torch.npy", dir);
    if (npy_read_f32(path, &ref, rshape, &rndim, &e)) goto fail;
    int B = (int)shape[0];
    snprintf(path, sizeof path, "%s/clip_b32", dir);
    if (ops_create(&ops, threads, &e) || ops_set_precision(ops, prec, &e) || clip_vit_load(&m, ops, path, B, &e))
        goto fail;
    int E = clip_vit_embed_dim(m);
    float *out = malloc((size_t)B * E * sizeof(float));
    if (clip_vit_forward(m, images, B, out, &e)) goto fail;
    double t0 = clock_now();
    for (int i = 0; i < batches; i++)
        if (clip_vit_forward(m, images, B, out, &e)) goto fail;
    double dt = clock_now() - t0;
    double diff = 0.0, scale = 0.0, cos_min = 1.0;
    for (int b = 0; b < B; b++) {
        double ab = 0, aa = 0, bb = 0;
        for (int i = 0; i < E; i++) {
            double x = out[(size_t)b * E + i], y = ref[(size_t)b * E + i];
            diff = fmax(diff, fabs(x - y));
            scale = fmax(scale, fabs(y));
            ab += x * y, aa += x * x, bb += y * y;
        }
        cos_min = fmin(cos_min, ab / sqrt(aa * bb));
    }
    printf("clipcap %s, %d threads: %.3f s for %d images, images/s: %.2f\n", ops_precision_impl(ops), threads, dt,
           B * batches, B * batches / dt);
    printf("vs torch fp32: max|diff|/max|torch| = %.2e, min cosine = %.7f\n", diff / scale, cos_min);
    double rate = gemm_rate(ops, B * 50, 768, 3072, &e);
    printf("GEMM %dx768x3072 through ops_matmul: GFLOP/s: %.1f\n", B * 50, rate);
    free(out);
    clip_vit_free(m);
    ops_destroy(ops);
    free(images), free(ref);
    return (prec == OPS_FP32 ? diff / scale <= 1e-4 : cos_min >= 0.999) ? 0 : 1;
fail:
    fprintf(stderr, "bench_clip: %s\n", e.msg);
    return 1;
}
