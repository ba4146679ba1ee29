#include "data/train_data.h"
#include "core/comm.h"
#include "core/mpictx.h"
#include "core/progress.h"
#include "data/manifest.h"
#include "data/manifest_tokens.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* dim[] markers of the store check (a real dim is 1..STORE_MAX_DIM) */
#define DIM_ABSENT 0u
#define DIM_FAILED UINT32_MAX

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

/* Kept image k's shard and index inside it. */
static const manifest_tokens *image_of(const train_data *d, size_t k, uint64_t *local)
{
    uint64_t g = d->img[k];
    int lo = 0, hi = d->n_shards; /* shard_base[lo] <= g < shard_base[hi] */
    while (hi - lo > 1) {
        int mid = lo + (hi - lo) / 2;
        if (d->shard_base[mid] <= g) lo = mid;
        else hi = mid;
    }
    *local = g - d->shard_base[lo];
    return &d->shards[lo];
}

const char *train_data_key(const train_data *d, size_t k)
{
    uint64_t i;
    const manifest_tokens *t = image_of(d, k, &i);
    return t->keys + t->key_off[i];
}

/* Map every shard's token file and list the images of the selected splits. */
static int read_manifest(train_data *d, const char *dir, const char *splits, int max_len, err_t *e)
{
    manifest_t *m = NULL;
    int rc = manifest_open(&m, dir, e);
    if (rc) return rc;
    uint64_t L = manifest_token_stats(m)->max_seq_len;
    d->L = max_len > 0 ? max_len : L > INT_MAX ? INT_MAX : (int)L;
    d->n_shards = manifest_num_shards(m);
    if (d->L < 1) rc = err_set(e, ERR_FORMAT, "%s: max_seq_len is 0 (no tokenised captions)", dir);
    else if (manifest_num_images(m) >= UINT32_MAX)
        rc = err_set(e, ERR_LIMIT, "%s: more than %u images", dir, UINT32_MAX - 1);
    d->shards = calloc((size_t)d->n_shards, sizeof *d->shards);
    d->shard_base = calloc((size_t)d->n_shards + 1, sizeof *d->shard_base);
    size_t cap = (size_t)manifest_num_images(m);
    d->img = malloc((cap ? cap : 1) * sizeof *d->img);
    d->ex_first = malloc((cap + 1) * sizeof *d->ex_first);
    if (!rc && (!d->shards || !d->shard_base || !d->img || !d->ex_first))
        rc = err_set(e, ERR_NOMEM, "out of memory for %zu images", cap);
    uint64_t base = 0;
    if (!rc) d->ex_first[0] = 0;
    for (int s = 0; s < d->n_shards && !rc; s++) {
        manifest_tokens *t = &d->shards[s];
        if ((rc = manifest_tokens_open(t, m, s, e))) break;
        d->shard_base[s] = base;
        uint8_t want[MANIFEST_TOKENS_MAX_SPLITS] = {0};
        for (uint32_t j = 0; j < t->n_splits; j++)
            want[j] = (uint8_t)split_selected(splits, manifest_tokens_split_name(t, j));
        for (uint64_t i = 0; i < t->images; i++) {
            uint64_t nc = t->cap_first[i + 1] - t->cap_first[i];
            if (!want[t->split[i]] || !nc) continue;
            if (nc > UINT32_MAX - d->ex_first[d->n_images]) {
                rc = err_set(e, ERR_LIMIT, "%s: more than %u captions in the selected splits (examples are 32-bit)",
                             dir, UINT32_MAX);
                break;
            }
            d->img[d->n_images] = (uint32_t)(base + i);
            d->ex_first[d->n_images + 1] = d->ex_first[d->n_images] + (uint32_t)nc;
            d->n_images++;
        }
        base += t->images;
    }
    if (!rc) d->shard_base[d->n_shards] = base;
    if (!rc && base != manifest_num_images(m))
        rc = err_set(e, ERR_FORMAT, "%s: token files hold %llu images, index.json %llu", dir, (unsigned long long)base,
                     (unsigned long long)manifest_num_images(m));
    manifest_close(m);
    if (rc) return rc;
    d->n_examples = (size_t)d->ex_first[d->n_images];
    if (!d->n_examples) return err_set(e, ERR_NOTFOUND, "%s: no captions in the selected splits", dir);
    return 0;
}

/* Rank r looks up images r, r+N, ...; MAX over ranks merges the markers
 * (each image is set by exactly one rank, 0 elsewhere). */
/* The model fingerprints one rank saw: the first, and the first other one. */
typedef struct fp_seen {
    char fp[2][33];
    int64_t image[2]; /* -1: none */
} fp_seen;

static void fp_note(fp_seen *s, const char *fp, size_t image)
{
    if (s->image[0] < 0) {
        snprintf(s->fp[0], sizeof s->fp[0], "%s", fp);
        s->image[0] = (int64_t)image;
    } else if (s->image[1] < 0 && strcmp(s->fp[0], fp)) {
        snprintf(s->fp[1], sizeof s->fp[1], "%s", fp);
        s->image[1] = (int64_t)image;
    }
}

/* Embeddings of two CLIPs (or two preprocessings) in one training set
 * would train the mapper on two input distributions: refuse, naming one
 * image of each. Every rank holds every rank's fp_seen here. */
static int check_fingerprints(train_data *d, const fp_seen *all, int n, err_t *e)
{
    fp_seen u = {.image = {-1, -1}};
    for (int r = 0; r < n; r++)
        for (int k = 0; k < 2; k++)
            if (all[r].image[k] >= 0) fp_note(&u, all[r].fp[k], (size_t)all[r].image[k]);
    if (u.image[1] >= 0)
        return err_set(e, ERR_FORMAT,
                       "%s: embeddings of more than one CLIP model: '%s' has model fingerprint %s, '%s' %s "
                       "(extract every image with one CLIP and one preprocessing)",
                       d->store_dir, train_data_key(d, (size_t)u.image[0]), u.fp[0],
                       train_data_key(d, (size_t)u.image[1]), u.fp[1]);
    snprintf(d->clip_fp, sizeof d->clip_fp, "%s", u.image[0] >= 0 ? u.fp[0] : "");
    return 0;
}

static int lookup_dims(train_data *d, uint32_t *dim, err_t *e)
{
    const int rank = mpictx_rank(), size = mpictx_size();
    progress_t prog;
    progress_start(&prog, "train: checking the store", "key", (d->n_images + (size_t)size - 1) / (size_t)size);
    int rc = 0;
    uint64_t done = 0;
    fp_seen seen = {.image = {-1, -1}};
    for (size_t i = (size_t)rank; i < d->n_images && !rc; i += (size_t)size) {
        store_entry ent;
        if ((rc = store_lookup(d->st, train_data_key(d, i), &ent, e))) break;
        dim[i] = ent.kind == STORE_ENTRY_EMBEDDING ? ent.rec.dim : ent.kind == STORE_ENTRY_FAILURE ? DIM_FAILED : DIM_ABSENT;
        if (ent.kind == STORE_ENTRY_EMBEDDING) fp_note(&seen, ent.rec.model, i);
        progress_update(&prog, ++done, 0);
    }
    progress_finish(&prog);
    if ((rc = mpictx_agree(rc, e))) return rc;
    fp_seen *all = calloc((size_t)size, sizeof *all);
    if (!all) rc = err_set(e, ERR_NOMEM, "out of memory");
    if (!rc) rc = comm_allgather_bytes(&seen, sizeof seen, all, e);
    if (!rc) rc = check_fingerprints(d, all, size, e);
    free(all);
    return rc ? rc : comm_allreduce(dim, d->n_images, COMM_U32, COMM_MAX, e);
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
                           train_data_key(d, i), dim[i], train_data_key(d, first_emb), dim[first_emb]);
    }
    if (absent)
        return err_set(e, ERR_NOTFOUND,
                       "%s: %zu of the %zu images the manifest needs are not in the store (first: '%s'); run "
                       "`clipcap extract` on this manifest first",
                       d->store_dir, absent, d->n_images, train_data_key(d, first_absent));
    if (first_emb == SIZE_MAX)
        return err_set(e, ERR_NOTFOUND, "%s: every image of the manifest failed extraction", d->store_dir);
    d->D = (int)dim[first_emb];
    /* drop the images that failed extraction, and their captions */
    size_t kept = 0;
    for (size_t i = 0; i < d->n_images; i++) {
        uint32_t nc = d->ex_first[i + 1] - d->ex_first[i];
        if (dim[i] == DIM_FAILED) {
            d->n_dropped_examples += nc;
            continue;
        }
        d->img[kept] = d->img[i];
        d->ex_first[kept + 1] = d->ex_first[kept] + nc;
        kept++;
    }
    d->n_dropped_images = d->n_images - kept;
    d->n_images = kept;
    d->n_examples = (size_t)d->ex_first[kept];
    if (d->n_dropped_images)
        log_msg(LOG_WARN, "%s: %zu images failed extraction: their %zu captions are skipped", d->store_dir,
                d->n_dropped_images, d->n_dropped_examples);
    return 0;
}

int train_data_open(train_data *d, const char *manifest_dir, const char *splits, const char *store_dir, err_t *e)
{
    return train_data_open_len(d, manifest_dir, splits, store_dir, 0, e);
}

size_t train_data_cut(train_data *d, int L)
{
    if (L < 1 || L >= d->L) return 0;
    size_t longer = 0;
    for (size_t k = 0; k < d->n_images; k++) {
        uint64_t i;
        const manifest_tokens *t = image_of(d, k, &i);
        for (uint64_t c = t->cap_first[i]; c < t->cap_first[i + 1]; c++)
            longer += t->tok_first[c + 1] - t->tok_first[c] > (uint64_t)L;
    }
    d->L = L; /* train_data_batch cuts at d->L */
    return longer;
}

int train_data_open_len(train_data *d, const char *manifest_dir, const char *splits, const char *store_dir,
                        int max_len, err_t *e)
{
    memset(d, 0, sizeof *d);
    d->store_dir = store_dir;
    int rc = read_manifest(d, manifest_dir, splits, max_len, e);
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
    for (int s = 0; d->shards && s < d->n_shards; s++) manifest_tokens_close(&d->shards[s]);
    free(d->shards);
    free(d->shard_base);
    free(d->img);
    free(d->ex_first);
    memset(d, 0, sizeof *d);
}

int train_data_batch(train_data *d, const uint32_t *ex, int n, float *clip, int32_t *tokens, err_t *e)
{
    for (int b = 0; b < n; b++) {
        size_t x = ex[b];
        if (x >= d->n_examples)
            return err_set(e, ERR_INTERNAL, "example %zu of %zu requested", x, d->n_examples);
        size_t lo = 0, hi = d->n_images; /* ex_first[lo] <= x < ex_first[hi] */
        while (hi - lo > 1) {
            size_t mid = lo + (hi - lo) / 2;
            if (d->ex_first[mid] <= x) lo = mid;
            else hi = mid;
        }
        uint64_t i;
        const manifest_tokens *t = image_of(d, lo, &i);
        const char *key = t->keys + t->key_off[i];
        store_entry ent;
        int rc = store_lookup_embedding(d->st, key, &ent, clip + (size_t)b * d->D, (uint32_t)d->D, e);
        if (rc) return rc;
        if (ent.kind != STORE_ENTRY_EMBEDDING || (int)ent.rec.dim != d->D)
            return err_set(e, ERR_FORMAT, "%s: the embedding of '%s' changed since training started", d->store_dir,
                           key);
        uint64_t c = t->cap_first[i] + (x - d->ex_first[lo]);
        const uint16_t *ids = t->tok + t->tok_first[c];
        uint64_t len = t->tok_first[c + 1] - t->tok_first[c];
        int32_t *row = tokens + (size_t)b * d->L;
        for (int j = 0; j < d->L; j++) row[j] = (uint64_t)j < len ? ids[j] : -1;
    }
    return 0;
}

size_t train_data_bytes(const train_data *d)
{
    return (size_t)d->n_shards * (sizeof *d->shards + sizeof *d->shard_base) + sizeof *d->shard_base +
           d->n_images * sizeof *d->img + (d->n_images + 1) * sizeof *d->ex_first;
}
