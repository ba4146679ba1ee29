#include "data/train_data.h"
#include "core/comm.h"
#include "core/mpictx.h"
#include "core/progress.h"
#include "data/manifest.h"

#include <stdlib.h>
#include <string.h>

/* dim[] markers of the store check (a real dim is 1..STORE_MAX_DIM) */
#define DIM_ABSENT 0u
#define DIM_FAILED UINT32_MAX

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap * 2 : 1024;
    while (c < need) c *= 2;
    void *q = realloc(*p, c * elem);
    if (!q) return ERR_NOMEM;
    *p = q;
    *cap = c;
    return 0;
}

static int split_selected(const char *splits, const char *split)
{
    if (!splits) return 1;
    size_t n = strlen(split);
    for (const char *p = splits; *p;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len == n && !strncmp(p, split, n)) return 1;
        p += len + (comma ? 1 : 0);
    }
    return 0;
}

typedef struct growth {
    size_t keys, key_off, ex_image, tok_off, tok;
} growth;

/* One manifest record's image and captions onto the example set. */
static int add_record(train_data *d, growth *g, const manifest_record_t *rec, err_t *e)
{
    size_t klen = strlen(rec->key) + 1, at = d->keys_len;
    if (d->n_images >= UINT32_MAX) return err_set(e, ERR_LIMIT, "more than %u images", UINT32_MAX - 1);
    if (grow((void **)&d->keys, &g->keys, at + klen, 1) ||
        grow((void **)&d->key_off, &g->key_off, d->n_images + 1, sizeof *d->key_off) ||
        grow((void **)&d->ex_image, &g->ex_image, d->n_examples + rec->n_captions, sizeof *d->ex_image) ||
        grow((void **)&d->tok_off, &g->tok_off, d->n_examples + rec->n_captions + 1, sizeof *d->tok_off))
        return err_set(e, ERR_NOMEM, "out of memory reading the captions");
    memcpy(d->keys + at, rec->key, klen);
    d->keys_len += klen;
    d->key_off[d->n_images] = at;
    for (size_t c = 0; c < rec->n_captions; c++) {
        size_t x = d->n_examples, n = rec->n_tokens[c] < (uint32_t)d->L ? rec->n_tokens[c] : (size_t)d->L;
        uint64_t t0 = d->tok_off[x];
        if (grow((void **)&d->tok, &g->tok, t0 + n, sizeof *d->tok))
            return err_set(e, ERR_NOMEM, "out of memory reading the captions");
        for (size_t j = 0; j < n; j++) {
            int32_t id = rec->tokens[c][j];
            if (id < 0 || id > UINT16_MAX)
                return err_set(e, ERR_UNSUPPORTED, "image '%s' caption %zu: token id %d is outside 0..%d",
                               rec->key, c, (int)id, UINT16_MAX);
            d->tok[t0 + j] = (uint16_t)id;
        }
        d->ex_image[x] = (uint32_t)d->n_images;
        d->tok_off[x + 1] = t0 + n;
        d->n_examples++;
    }
    d->n_images++;
    return 0;
}

static int read_manifest(train_data *d, const char *dir, const char *splits, err_t *e)
{
    manifest_t *m = NULL;
    int rc = manifest_open(&m, dir, e);
    if (rc) return rc;
    d->L = (int)manifest_token_stats(m)->max_seq_len;
    if (d->L < 1) {
        manifest_close(m);
        return err_set(e, ERR_FORMAT, "%s: max_seq_len is 0 (no tokenised captions)", dir);
    }
    growth g = {0};
    if (grow((void **)&d->tok_off, &g.tok_off, 1, sizeof *d->tok_off)) rc = err_set(e, ERR_NOMEM, "out of memory");
    else d->tok_off[0] = 0;
    for (int s = 0; s < manifest_num_shards(m) && !rc; s++) {
        manifest_shard_reader *r = NULL;
        if ((rc = manifest_shard_open(&r, m, s, e))) break;
        manifest_record_t rec;
        int more = 0;
        while (!rc && (more = manifest_shard_next(r, &rec, e)) == 1)
            if (split_selected(splits, rec.split) && rec.n_captions &&
                (rc = add_record(d, &g, &rec, e)))
                err_wrap(e, "%s/%s", dir, manifest_shard_info(m, s)->file);
        if (!rc && more < 0) rc = more;
        manifest_shard_close(r);
    }
    manifest_close(m);
    if (rc) return rc;
    if (!d->n_examples) return err_set(e, ERR_NOTFOUND, "%s: no captions in the selected splits", dir);
    return 0;
}

/* Rank r looks up images r, r+N, ...; MAX over ranks merges the markers
 * (each image is set by exactly one rank, 0 elsewhere). */
static int lookup_dims(train_data *d, uint32_t *dim, err_t *e)
{
    const int rank = mpictx_rank(), size = mpictx_size();
    progress_t prog;
    progress_start(&prog, "train: checking the store", "key", (d->n_images + (size_t)size - 1) / (size_t)size);
    int rc = 0;
    uint64_t done = 0;
    for (size_t i = (size_t)rank; i < d->n_images && !rc; i += (size_t)size) {
        store_entry ent;
        if ((rc = store_lookup(d->st, d->keys + d->key_off[i], &ent, e))) break;
        dim[i] = ent.kind == STORE_ENTRY_EMBEDDING ? ent.rec.dim : ent.kind == STORE_ENTRY_FAILURE ? DIM_FAILED : DIM_ABSENT;
        progress_update(&prog, ++done, 0);
    }
    progress_finish(&prog);
    if ((rc = mpictx_agree(rc, e))) return rc;
    return comm_allreduce(dim, d->n_images, COMM_U32, COMM_MAX, e);
}

/* Every rank holds the same dim[] here, so every rank decides alike. */
static int apply_dims(train_data *d, const uint32_t *dim, err_t *e)
{
    size_t absent = 0, first_absent = 0, first_emb = SIZE_MAX;
    for (size_t i = 0; i < d->n_images; i++) {
        if (dim[i] == DIM_ABSENT && !absent++) first_absent = i;
        if (dim[i] == DIM_ABSENT || dim[i] == DIM_FAILED) continue;
        if (first_emb == SIZE_MAX) first_emb = i;
        else if (dim[i] != dim[first_emb])
            return err_set(e, ERR_FORMAT, "%s: embedding of '%s' has %u values, that of '%s' %u", d->store_dir,
                           d->keys + d->key_off[i], dim[i], d->keys + d->key_off[first_emb], dim[first_emb]);
    }
    if (absent)
        return err_set(e, ERR_NOTFOUND,
                       "%s: %zu of the %zu images the manifest needs are not in the store (first: '%s'); run "
                       "`clipcap extract` on this manifest first",
                       d->store_dir, absent, d->n_images, d->keys + d->key_off[first_absent]);
    if (first_emb == SIZE_MAX)
        return err_set(e, ERR_NOTFOUND, "%s: every image of the manifest failed extraction", d->store_dir);
    d->D = (int)dim[first_emb];
    /* drop the images that failed extraction, and their captions */
    uint32_t *renum = malloc(d->n_images * sizeof *renum);
    if (!renum) return err_set(e, ERR_NOMEM, "out of memory");
    size_t kept = 0;
    for (size_t i = 0; i < d->n_images; i++) {
        renum[i] = (uint32_t)kept;
        if (dim[i] != DIM_FAILED) d->key_off[kept++] = d->key_off[i];
    }
    d->n_dropped_images = d->n_images - kept;
    d->n_images = kept;
    size_t kx = 0;
    uint64_t kt = 0;
    for (size_t x = 0; x < d->n_examples; x++) {
        uint64_t t0 = d->tok_off[x], t1 = d->tok_off[x + 1];
        if (dim[d->ex_image[x]] == DIM_FAILED) continue;
        d->ex_image[kx] = renum[d->ex_image[x]];
        memmove(d->tok + kt, d->tok + t0, (size_t)(t1 - t0) * sizeof *d->tok);
        d->tok_off[kx] = kt;
        kt += t1 - t0;
        d->tok_off[++kx] = kt;
    }
    free(renum);
    d->n_dropped_examples = d->n_examples - kx;
    d->n_examples = kx;
    if (d->n_dropped_images)
        log_msg(LOG_WARN, "%s: %zu images failed extraction: their %zu captions are skipped", d->store_dir,
                d->n_dropped_images, d->n_dropped_examples);
    return 0;
}

int train_data_open(train_data *d, const char *manifest_dir, const char *splits, const char *store_dir, err_t *e)
{
    memset(d, 0, sizeof *d);
    d->store_dir = store_dir;
    int rc = read_manifest(d, manifest_dir, splits, e);
    if (!rc) rc = store_open(&d->st, store_dir, NULL, e);
    if ((rc = mpictx_agree(rc, e))) return rc;
    uint32_t *dim = calloc(d->n_images, sizeof *dim);
    rc = dim ? 0 : err_set(e, ERR_NOMEM, "out of memory for %zu images", d->n_images);
    if ((rc = mpictx_agree(rc, e))) return rc;
    rc = lookup_dims(d, dim, e);
    if (!rc) rc = apply_dims(d, dim, e);
    free(dim);
    return rc;
}

void train_data_close(train_data *d)
{
    store_close(d->st);
    free(d->keys);
    free(d->key_off);
    free(d->ex_image);
    free(d->tok_off);
    free(d->tok);
    memset(d, 0, sizeof *d);
}

int train_data_batch(train_data *d, const size_t *ex, int n, float *clip, int32_t *tokens, err_t *e)
{
    for (int b = 0; b < n; b++) {
        size_t x = ex[b];
        const char *key = d->keys + d->key_off[d->ex_image[x]];
        store_entry ent;
        int rc = store_lookup_embedding(d->st, key, &ent, clip + (size_t)b * d->D, (uint32_t)d->D, e);
        if (rc) return rc;
        if (ent.kind != STORE_ENTRY_EMBEDDING || (int)ent.rec.dim != d->D)
            return err_set(e, ERR_FORMAT, "%s: the embedding of '%s' changed since training started", d->store_dir,
                           key);
        const uint16_t *t = d->tok + d->tok_off[x];
        int len = (int)(d->tok_off[x + 1] - d->tok_off[x]);
        int32_t *row = tokens + (size_t)b * d->L;
        for (int j = 0; j < d->L; j++) row[j] = j < len ? t[j] : -1;
    }
    return 0;
}

size_t train_data_bytes(const train_data *d)
{
    return d->keys_len + d->n_images * sizeof *d->key_off + d->n_examples * sizeof *d->ex_image +
           (d->n_examples + 1) * sizeof *d->tok_off + (size_t)d->tok_off[d->n_examples] * sizeof *d->tok;
}
