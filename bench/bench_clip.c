/* clipcap side of bench/bench_clip.sh: loads the CLIP directory the Python
 * side wrote, encodes images.npy BATCHES times (after one warm-up pass),
 * prints images/s and the largest difference from torch.npy relative to
 * the largest torch value.
 *
 * usage: bench_clip OUTDIR BATCHES THREADS */
#include "core/progress.h"
#include "io/npy.h"
#include "nn/clip_vit.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: bench_clip OUTDIR BATCHES THREADS\n");
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
    snprintf(path, sizeof path, "%s/images.npy", dir);
    if (npy_read_f32(path, &images, shape, &ndim, &e)) goto fail;
    snprintf(path, sizeof path, "%s/torch.npy", dir);
    if (npy_read_f32(path, &ref, rshape, &rndim, &e)) goto fail;
    int B = (int)shape[0];
    snprintf(path, sizeof path, "%s/clip_b32", dir);
    if (ops_create(&ops, threads, &e) || clip_vit_load(&m, ops, path, B, &e)) goto fail;
    int E = clip_vit_embed_dim(m);
    float *out = malloc((size_t)B * E * sizeof(float));
    if (clip_vit_forward(m, images, B, out, &e)) goto fail;
    double t0 = clock_now();
    for (int i = 0; i < batches; i++)
        if (clip_vit_forward(m, images, B, out, &e)) goto fail;
    double dt = clock_now() - t0;
    double diff = 0.0, scale = 0.0;
    for (size_t i = 0; i < (size_t)B * E; i++) {
        diff = fmax(diff, fabs((double)out[i] - ref[i]));
        scale = fmax(scale, fabs((double)ref[i]));
    }
    printf("clipcap %d threads: %.3f s for %d images, images/s: %.2f\n", threads, dt, B * batches, B * batches / dt);
    printf("max|clipcap - torch| / max|torch| = %.2e\n", diff / scale);
    free(out);
    clip_vit_free(m);
    ops_destroy(ops);
    free(images), free(ref);
    return diff / scale <= 1e-4 ? 0 : 1;
fail:
    fprintf(stderr, "bench_clip: %s\n", e.msg);
    return 1;
}
