#include "nn/clip_embed.h"

#include "core/fsutil.h"
#include "image/clip_preprocess.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

struct clip_embed {
    clip_vit *model;
    clip_preprocess_cfg pre;
    int max_batch, threads, dim;
    size_t img;    /* floats per preprocessed image: 3*S*S */
    float *pixels; /* [max_batch, 3, S, S] */
    float *emb;    /* [max_batch, dim]: the forward pass's rows */
    err_t *errs;   /* [max_batch]: why each file of the batch failed */
    int *slot;     /* [max_batch]: forward row -> file index */
};

int clip_embed_create(clip_embed **out, clip_vit *model, const clip_embed_cfg *cfg, err_t *e)
{
    *out = NULL;
    if (cfg->max_batch < 1) return err_set(e, ERR_ARG, "clip_embed: max_batch %d < 1", cfg->max_batch);
    clip_embed *ce = calloc(1, sizeof *ce);
    if (!ce) return err_set(e, ERR_NOMEM, "clip_embed: out of memory");
    const int S = clip_vit_image_size(model);
    ce->model = model;
    clip_preprocess_cfg_default(&ce->pre, S);
    ce->pre.fast_resize = cfg->fast_resize;
    ce->max_batch = cfg->max_batch;
    ce->threads = cfg->threads;
    ce->dim = clip_vit_embed_dim(model);
    ce->img = (size_t)3 * S * S;
    ce->pixels = malloc((size_t)ce->max_batch * ce->img * sizeof *ce->pixels);
    ce->emb = malloc((size_t)ce->max_batch * ce->dim * sizeof *ce->emb);
    ce->errs = calloc((size_t)ce->max_batch, sizeof *ce->errs);
    ce->slot = malloc((size_t)ce->max_batch * sizeof *ce->slot);
    if (!ce->pixels || !ce->emb || !ce->errs || !ce->slot) {
        clip_embed_free(ce);
        return err_set(e, ERR_NOMEM, "clip_embed: out of memory for a batch of %d images", cfg->max_batch);
    }
    *out = ce;
    return 0;
}

void clip_embed_free(clip_embed *ce)
{
    if (!ce) return;
    free(ce->pixels), free(ce->emb), free(ce->errs), free(ce->slot);
    free(ce);
}

/* Read and preprocess one file into dst; the error names the path. */
static int load_image(const char *path, const clip_preprocess_cfg *cfg, float *dst, err_t *e)
{
    uint8_t *data = NULL;
    size_t len = 0;
    int rc = fs_read_all(path, &data, &len, e);
    if (rc) return rc;
    rc = clip_preprocess(data, len, cfg, dst, NULL, e);
    free(data);
    return rc ? err_wrap(e, "%s", path) : 0;
}

int clip_embed_files(clip_embed *ce, char *const *paths, int n, float *out, int *status, err_t *e)
{
    const size_t img = ce->img, E = (size_t)ce->dim;
    int rc = 0;
    for (int start = 0; start < n && !rc; start += ce->max_batch) {
        const int count = n - start < ce->max_batch ? n - start : ce->max_batch;
        int *st = status + start;
        /* clip_preprocess is re-entrant; the forward pass is parallel inside the ops */
#pragma omp parallel for schedule(dynamic, 1) num_threads(ce->threads > 0 ? ce->threads : omp_get_max_threads())
        for (int i = 0; i < count; i++)
            st[i] = load_image(paths[start + i], &ce->pre, ce->pixels + (size_t)i * img, &ce->errs[i]);
        /* the forward pass takes the decoded images only, packed at the front */
        int good = 0;
        for (int i = 0; i < count; i++) {
            if (st[i]) {
                log_msg(LOG_ERROR, "%s", ce->errs[i].msg);
                memset(out + (size_t)(start + i) * E, 0, E * sizeof *out);
                continue;
            }
            if (good != i) memcpy(ce->pixels + (size_t)good * img, ce->pixels + (size_t)i * img, img * sizeof(float));
            ce->slot[good++] = start + i;
        }
        if (good) rc = clip_vit_forward(ce->model, ce->pixels, good, ce->emb, e);
        for (int g = 0; !rc && g < good; g++)
            memcpy(out + (size_t)ce->slot[g] * E, ce->emb + (size_t)g * E, E * sizeof *out);
    }
    return rc;
}
