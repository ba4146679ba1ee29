/* Decode + CLIP preprocessing throughput of clipcap (images/s), the C side
 * of bench_preprocess.sh. Files are read into memory first, so the number
 * is decode + resize + normalise, not disk. T threads take the next image
 * from a shared counter (as a decode worker pool would). Prints images per
 * wall-clock second and images per CPU second of the process.
 * usage: bench_preprocess --size S --threads T --passes P [--fast-resize[=K]] FILE... */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/fsutil.h"
#include "image/clip_preprocess.h"

typedef struct bench {
    uint8_t **data;
    size_t *len;
    int n, passes, threads;
    clip_preprocess_cfg cfg;
    atomic_int next; /* next job: pass * n + image */
} bench;

typedef struct worker {
    bench *b;
    int id, failures;
} worker;

static void *work(void *arg)
{
    worker *w = arg;
    bench *b = w->b;
    int S = b->cfg.image_size;
    float *out = malloc(sizeof(float) * 3 * (size_t)S * S);
    for (int job; (job = atomic_fetch_add(&b->next, 1)) < b->n * b->passes;) {
        int i = job % b->n;
        err_t e = {0};
        if (clip_preprocess(b->data[i], b->len[i], &b->cfg, out, NULL, &e)) {
            w->failures++;
            fprintf(stderr, "image %d: %s\n", i, e.msg);
        }
    }
    free(out);
    return NULL;
}

int main(int argc, char **argv)
{
    bench b = {0};
    int size = 224, fast = 0, a = 1;
    b.threads = 1;
    b.passes = 10;
    for (; a < argc && argv[a][0] == '-'; a++) {
        if (!strcmp(argv[a], "--size") && a + 1 < argc) size = atoi(argv[++a]);
        else if (!strcmp(argv[a], "--threads") && a + 1 < argc) b.threads = atoi(argv[++a]);
        else if (!strcmp(argv[a], "--passes") && a + 1 < argc) b.passes = atoi(argv[++a]);
        else if (!strncmp(argv[a], "--fast-resize=", 14)) fast = atoi(argv[a] + 14);
        else if (!strcmp(argv[a], "--fast-resize")) fast = 1;
        else {
            fprintf(stderr, "usage: bench_preprocess --size S --threads T --passes P [--fast-resize[=K]] FILE...\n");
            return 2;
        }
    }
    b.n = argc - a;
    if (b.n <= 0 || b.threads <= 0 || b.threads > 64 || b.passes <= 0) return 2;
    b.data = calloc((size_t)b.n, sizeof *b.data);
    b.len = calloc((size_t)b.n, sizeof *b.len);
    for (int i = 0; i < b.n; i++) {
        err_t e = {0};
        if (fs_read_all(argv[a + i], &b.data[i], &b.len[i], &e)) {
            fprintf(stderr, "%s\n", e.msg);
            return 1;
        }
    }
    clip_preprocess_cfg_default(&b.cfg, size);
    b.cfg.fast_resize = fast;
    atomic_init(&b.next, 0);
    pthread_t th[64];
    worker w[64];
    struct timespec t0, t1, c0, c1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
    for (int t = 0; t < b.threads; t++) {
        w[t] = (worker){&b, t, 0};
        pthread_create(&th[t], NULL, work, &w[t]);
    }
    int failures = 0;
    for (int t = 0; t < b.threads; t++) {
        pthread_join(th[t], NULL);
        failures += w[t].failures;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    double cpu = (double)(c1.tv_sec - c0.tv_sec) + 1e-9 * (double)(c1.tv_nsec - c0.tv_nsec);
    /* images per wall second, and per CPU second (robust on a shared machine) */
    printf("%.2f %.2f\n", (double)b.n * b.passes / secs, (double)b.n * b.passes / cpu);
    for (int i = 0; i < b.n; i++) free(b.data[i]);
    free(b.data);
    free(b.len);
    return failures ? 1 : 0;
}
