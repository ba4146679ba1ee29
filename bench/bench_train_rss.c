/* Helper of bench/bench_train_rss.sh: fills a feature store with a random
 * fp16 embedding of size DIM for every image key of a manifest (what
 * `clipcap extract` would write, without running CLIP), in batches of 1000.
 *
 * usage: bench_train_rss MANIFEST STORE DIM */
#include "data/manifest.h"
#include "store/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BATCH 1000

static int fill(const char *man, const char *dir, int dim, err_t *e)
{
    manifest_t *m = NULL;
    store_env *env = NULL;
    int rc = manifest_open(&m, man, e);
    if (!rc) rc = store_env_create(&env, dir, "rank-00000-of-00001", (size_t)1 << 30, e);
    char (*keys)[STORE_MAX_KEY + 1] = calloc(BATCH, sizeof *keys);
    float *emb = malloc((size_t)BATCH * dim * sizeof *emb);
    store_record rec = {.dtype = STORE_FP16, .dim = (uint32_t)dim, .width = 640, .height = 480, .generation = 1};
    snprintf(rec.model, sizeof rec.model, "%032d", 0);
    snprintf(rec.content_hash, sizeof rec.content_hash, "%032d", 0);
    store_put puts[BATCH];
    uint64_t s = 88172645463325252ULL;
    if (!rc && (!keys || !emb)) rc = err_set(e, ERR_NOMEM, "out of memory");
    for (int sh = 0; !rc && sh < manifest_num_shards(m); sh++) {
        manifest_shard_reader *r = NULL;
        if ((rc = manifest_shard_open(&r, m, sh, e))) break;
        manifest_record_t mr;
        int n = 0, more;
        while (!rc && (more = manifest_shard_next(r, &mr, e)) >= 0) {
            if (more == 1) {
                snprintf(keys[n], sizeof keys[n], "%s", mr.key);
                float *v = emb + (size_t)n * dim;
                for (int j = 0; j < dim; j++) {
                    s ^= s << 13, s ^= s >> 7, s ^= s << 17;
                    v[j] = (float)(s >> 40) / 16777216.0f - 0.5f;
                }
                puts[n] = (store_put){.key = keys[n], .rec = &rec, .embedding = v};
                n++;
            }
            if (n && (n == BATCH || more == 0)) {
                rc = store_env_write(env, puts, (size_t)n, e);
                n = 0;
            }
            if (more == 0) break;
        }
        manifest_shard_close(r);
    }
    free(keys);
    free(emb);
    store_env_close(env);
    manifest_close(m);
    store_consolidation c;
    if (!rc) rc = store_consolidate(dir, &c, e);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: bench_train_rss MANIFEST STORE DIM\n");
        return 2;
    }
    err_t e = {0};
    if (fill(argv[1], argv[2], atoi(argv[3]), &e)) {
        fprintf(stderr, "bench_train_rss: %s\n", e.msg);
        return 1;
    }
    return 0;
}
