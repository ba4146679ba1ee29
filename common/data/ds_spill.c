#include "data/ds_spill.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/fsutil.h"
#include "data/manifest_write.h"
#include "data/sbuf.h"

/* More buckets than this would mean as many open files while records are
 * copied; beyond it buckets grow instead. */
#define SPILL_MAX_BUCKETS 512
#define SPILL_IO_BUF (1u << 20)
/* the stdio buffer of each bucket file while records are copied: all of
 * them are open at once */
#define SPILL_BUCKET_IO_BUF (64u << 10)

/* The rejects files, in the order rejects.jsonl lists them. */
enum { REJ_READ, REJ_DUPLICATE, REJ_MISSING, REJ_NO_CAPTIONS, REJ_FILES };

struct ds_spill {
    char dir[4096];
    size_t bucket_bytes;
    FILE *chunks;            /* records in reading order */
    uint64_t chunk_bytes;    /* written to chunks */
    FILE *rejects[REJ_FILES];
    uint64_t images;         /* records spilled, for the sampling */
    uint64_t stride;         /* the keys of images 0, stride, 2 stride, ... are sampled */
    char **sample;
    size_t n_sample, cap_sample;
    uint64_t total_weight;   /* of the survivors */
    sbuf_t sb;
    /* finalize rejects per file, and the first ones to log once all
     * buckets are done, in rejects.jsonl order (a bucket logs nothing) */
    uint64_t n_rejects[REJ_FILES];
    char *held[REJ_FILES][DS_LOG_REJECTS + 1][3]; /* file, record, detail */
    int held_reason[REJ_FILES][DS_LOG_REJECTS + 1];
    size_t n_held[REJ_FILES];
};

/* ---- records ------------------------------------------------------------
 * u64 body length, then the body: u64 offset, u64 length, u8 kind,
 * u32 n_captions, 5 strings (key, split, path, file, record) and the
 * captions, each string as u32 length + bytes + NUL. Host byte order: the
 * files never leave the run. */

#define REC_STRINGS 5
#define REC_FIXED (8 + 8 + 1 + 4)

typedef struct spill_rec {
    uint64_t offset, length;
    uint8_t kind;
    uint32_t n_captions;
    const char *str[REC_STRINGS]; /* key, split, path, file, record */
    const uint8_t *caps;          /* n_captions strings */
    const uint8_t *end;
} spill_rec;

static void rec_put_str(sbuf_t *sb, const char *s, uint32_t n)
{
    sb_append(sb, &n, 4);
    sb_append(sb, s, n);
    sb_append(sb, "", 1);
}

/* Appends image im with its captions caps[0..n) (ds caption indices). */
static void rec_put(sbuf_t *sb, const ds_t *ds, const ds_image_t *im, const uint32_t *caps, uint32_t n)
{
    size_t at = sb->len;
    uint64_t body = 0;
    sb_append(sb, &body, 8);
    sb_append(sb, &im->offset, 8);
    sb_append(sb, &im->length, 8);
    sb_append(sb, &im->kind, 1);
    sb_append(sb, &n, 4);
    const uint64_t s[REC_STRINGS] = {im->key, im->split, im->path, im->file, im->record};
    for (int k = 0; k < REC_STRINGS; k++) rec_put_str(sb, ds_str(ds, s[k]), (uint32_t)strlen(ds_str(ds, s[k])));
    for (uint32_t c = 0; c < n; c++) {
        const ds_caption_t *cap = &ds->captions[caps ? caps[c] : im->first_caption + c];
        rec_put_str(sb, ds_str(ds, cap->text), cap->len);
    }
    if (!sb->failed) {
        body = sb->len - at - 8;
        memcpy(sb->data + at, &body, 8);
    }
}

/* The next string of a record at *p, or NULL when it overruns. */
static const char *rec_str(const uint8_t **p, const uint8_t *end, uint32_t *len)
{
    uint32_t n;
    if (end - *p < 4) return NULL;
    memcpy(&n, *p, 4);
    if ((uint64_t)(end - *p - 4) < (uint64_t)n + 1 || (*p)[4 + n]) return NULL;
    const char *s = (const char *)*p + 4;
    *p += 4 + (size_t)n + 1;
    if (len) *len = n;
    return s;
}

static int rec_parse(const uint8_t *body, size_t len, spill_rec *r, const char *path, err_t *e)
{
    const uint8_t *p = body + REC_FIXED, *end = body + len;
    if (len < REC_FIXED) return err_set(e, ERR_FORMAT, "%s: damaged temporary record", path);
    memcpy(&r->offset, body, 8);
    memcpy(&r->length, body + 8, 8);
    r->kind = body[16];
    memcpy(&r->n_captions, body + 17, 4);
    for (int k = 0; k < REC_STRINGS; k++)
        if (!(r->str[k] = rec_str(&p, end, NULL))) return err_set(e, ERR_FORMAT, "%s: damaged temporary record", path);
    r->caps = p;
    r->end = end;
    return 0;
}

typedef struct spill_reader {
    FILE *f;
    const char *path;
    uint8_t *buf;
    size_t cap;
    uint64_t pos; /* file offset of the next record */
} spill_reader;

/* 1 with the next record's body in r->buf[0..*len), 0 at the end. */
static int reader_next(spill_reader *r, size_t *len, err_t *e)
{
    uint64_t n;
    size_t got = fread(&n, 1, 8, r->f);
    if (got == 0 && feof(r->f)) return 0;
    if (got != 8) return err_set(e, ERR_IO, "%s: cannot read a temporary record", r->path);
    if (n > SIZE_MAX / 2) return err_set(e, ERR_FORMAT, "%s: damaged temporary record", r->path);
    if (n > r->cap) {
        size_t c = r->cap ? r->cap : 4096;
        while (c < n) c *= 2;
        uint8_t *b = realloc(r->buf, c);
        if (!b) return err_set(e, ERR_NOMEM, "%s: cannot allocate a %llu-byte record", r->path, (unsigned long long)n);
        r->buf = b;
        r->cap = c;
    }
    if (fread(r->buf, 1, (size_t)n, r->f) != n)
        return err_set(e, ERR_IO, "%s: cannot read a temporary record", r->path);
    r->pos += 8 + n;
    *len = (size_t)n;
    return 1;
}

static int reader_open(spill_reader *r, const char *path, uint64_t at, err_t *e)
{
    memset(r, 0, sizeof *r);
    r->path = path;
    r->pos = at;
    if (!(r->f = fopen(path, "rb"))) return err_set(e, ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    setvbuf(r->f, NULL, _IOFBF, SPILL_IO_BUF);
    if (at && fseeko(r->f, (off_t)at, SEEK_SET)) {
        fclose(r->f);
        r->f = NULL;
        return err_set(e, ERR_IO, "%s: cannot seek: %s", path, strerror(errno));
    }
    return 0;
}

static void reader_close(spill_reader *r)
{
    if (r->f) fclose(r->f);
    free(r->buf);
    memset(r, 0, sizeof *r);
}

/* Appends a record's image and captions to ds; the captions were checked
 * when they were read, so ds_add_caption accepts them again. */
static int rec_add(ds_t *ds, const spill_rec *r, const char *path, err_t *e)
{
    size_t idx;
    int rc = ds_add_image(ds, r->str[0], r->str[1], (enum manifest_loc_kind)r->kind, r->str[2], r->offset, r->length,
                          r->str[3], r->str[4], &idx, e);
    const uint8_t *p = r->caps;
    size_t first = ds->n_captions;
    for (uint32_t c = 0; c < r->n_captions && !rc; c++) {
        uint32_t n;
        const char *text = rec_str(&p, r->end, &n);
        if (!text) return err_set(e, ERR_FORMAT, "%s: damaged temporary record", path);
        rc = ds_add_caption(ds, idx, text, n, r->str[3], r->str[4], e);
        if (rc > 0) rc = err_set(e, ERR_INTERNAL, "%s: %s: a caption accepted once was rejected", r->str[3], r->str[4]);
    }
    if (!rc) {
        ds->images[idx].first_caption = (uint32_t)first;
        ds->images[idx].n_captions = (uint32_t)(ds->n_captions - first);
    }
    return rc;
}

/* ---- files ---------------------------------------------------------------- */

static int spill_path(const ds_spill *sp, const char *name, char *out, size_t cap, err_t *e)
{
    return fs_join(out, cap, sp->dir, name, e);
}

static int spill_fopen(const ds_spill *sp, const char *name, const char *mode, size_t buf, FILE **f, err_t *e)
{
    char path[8192];
    int rc = spill_path(sp, name, path, sizeof path, e);
    if (rc) return rc;
    if (!(*f = fopen(path, mode))) return err_set(e, ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    setvbuf(*f, NULL, _IOFBF, buf);
    return 0;
}

static int spill_write(ds_spill *sp, FILE *f, const char *what, err_t *e)
{
    if (sp->sb.failed) return err_set(e, ERR_NOMEM, "%s/%s: cannot allocate a record buffer", sp->dir, what);
    if (sp->sb.len && fwrite(sp->sb.data, 1, sp->sb.len, f) != sp->sb.len)
        return err_set(e, ERR_IO, "%s/%s: cannot write: %s", sp->dir, what, strerror(errno));
    sb_reset(&sp->sb);
    return 0;
}

static const char *const rej_names[REJ_FILES] = {"rejects-read", "rejects-duplicate", "rejects-missing",
                                                 "rejects-no-captions"};

/* ---- reading: the sink ------------------------------------------------------ */

/* Keeps image `images`'s key when it falls on the stride; a full sample
 * drops every other key and doubles the stride, so the sample stays
 * between DS_SPILL_SAMPLE_MAX/2 and DS_SPILL_SAMPLE_MAX keys spread evenly
 * over the input, whatever its size. */
static int spill_sample(ds_spill *sp, const char *key, err_t *e)
{
    if (sp->images % sp->stride) return 0;
    if (sp->n_sample == DS_SPILL_SAMPLE_MAX) {
        for (size_t i = 0; i < sp->n_sample; i++) {
            if (i % 2) free(sp->sample[i]);
            else sp->sample[i / 2] = sp->sample[i];
        }
        sp->n_sample = (sp->n_sample + 1) / 2;
        sp->stride *= 2;
        if (sp->images % sp->stride) return 0;
    }
    if (sp->n_sample == sp->cap_sample) {
        size_t c = sp->cap_sample ? sp->cap_sample * 2 : 1024;
        char **p = realloc(sp->sample, c * sizeof *p);
        if (!p) return err_set(e, ERR_NOMEM, "cannot allocate the key sample");
        sp->sample = p;
        sp->cap_sample = c;
    }
    if (!(sp->sample[sp->n_sample] = strdup(key))) return err_set(e, ERR_NOMEM, "cannot allocate the key sample");
    sp->n_sample++;
    return 0;
}

/* The chunk ds holds: rejects to the reading rejects file, images with
 * their captions (grouped per image in added order, as ds_finalize groups
 * them) to the chunk file. */
static int spill_sink(ds_t *ds, void *user, err_t *e)
{
    ds_spill *sp = user;
    for (size_t i = 0; i < ds->n_rejects; i++) manifest_reject_line(&sp->sb, ds, &ds->rejects[i]);
    int rc = spill_write(sp, sp->rejects[REJ_READ], rej_names[REJ_READ], e);
    if (rc) return rc;
    /* counting sort of the captions by image, stable */
    size_t n = ds->n_images;
    uint32_t *first = calloc(n + 1, sizeof *first);
    uint32_t *order = malloc((ds->n_captions ? ds->n_captions : 1) * sizeof *order);
    if (!first || !order) rc = err_set(e, ERR_NOMEM, "cannot allocate %zu caption positions", ds->n_captions);
    for (size_t c = 0; c < ds->n_captions && !rc; c++) first[ds->captions[c].image + 1]++;
    for (size_t i = 0; i < n && !rc; i++) first[i + 1] += first[i];
    for (size_t c = 0; c < ds->n_captions && !rc; c++) order[first[ds->captions[c].image]++] = (uint32_t)c;
    /* first[i] is now image i's end; its start is the previous image's end */
    for (size_t i = 0; i < n && !rc; i++) {
        uint32_t begin = i ? first[i - 1] : 0;
        rec_put(&sp->sb, ds, &ds->images[i], order + begin, first[i] - begin);
        rc = spill_sample(sp, ds_str(ds, ds->images[i].key), e);
        sp->images++;
        if (!rc && sp->sb.len >= SPILL_IO_BUF) {
            sp->chunk_bytes += sp->sb.len;
            rc = spill_write(sp, sp->chunks, "chunks", e);
        }
    }
    sp->chunk_bytes += sp->sb.len;
    if (!rc) rc = spill_write(sp, sp->chunks, "chunks", e);
    free(first);
    free(order);
    return rc;
}

int ds_spill_open(ds_spill **out, ds_t *ds, const char *dir, size_t chunk_bytes, size_t bucket_bytes, err_t *e)
{
    /* checked before the spill exists, so that closing it never empties a
     * cut-off path */
    *out = NULL;
    if (strlen(dir) >= sizeof((ds_spill *)0)->dir) return err_set(e, ERR_ARG, "%s: path too long", dir);
    ds_spill *sp = calloc(1, sizeof *sp);
    *out = sp;
    if (!sp) return err_set(e, ERR_NOMEM, "cannot allocate the spill");
    snprintf(sp->dir, sizeof sp->dir, "%s", dir);
    sp->bucket_bytes = bucket_bytes ? bucket_bytes : 1;
    sp->stride = 1;
    int rc = fs_mkdirs(dir, e);
    if (!rc) rc = fs_empty_dir(dir, e);
    if (!rc) rc = spill_fopen(sp, "chunks", "w+b", SPILL_IO_BUF, &sp->chunks, e);
    for (int k = 0; k < REJ_FILES && !rc; k++)
        rc = spill_fopen(sp, rej_names[k], "w+b", SPILL_BUCKET_IO_BUF, &sp->rejects[k], e);
    if (rc) return rc;
    ds->sink = spill_sink;
    ds->sink_user = sp;
    ds->sink_bytes = chunk_bytes;
    return 0;
}

/* ---- sorting and finalizing -------------------------------------------------- */

static int sample_cmp(const void *a, const void *b) { return ds_key_cmp(*(char *const *)a, *(char *const *)b); }

/* The bucket of a key: how many cuts are <= it. */
static size_t bucket_of(char *const *cuts, size_t n_cuts, const char *key)
{
    size_t lo = 0, hi = n_cuts;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ds_key_cmp(cuts[mid], key) <= 0) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

/* Copies every chunk record into its bucket file; *n_buckets receives the
 * count. The cuts are sampled keys at equal ranks of the sample. */
static int spill_partition(ds_spill *sp, size_t *n_buckets, err_t *e)
{
    size_t want = (size_t)(sp->chunk_bytes / sp->bucket_bytes) + 1;
    if (want > SPILL_MAX_BUCKETS) want = SPILL_MAX_BUCKETS;
    if (want > sp->n_sample) want = sp->n_sample ? sp->n_sample : 1;
    qsort(sp->sample, sp->n_sample, sizeof *sp->sample, sample_cmp);
    char **cuts = malloc(want * sizeof *cuts);
    if (!cuts) return err_set(e, ERR_NOMEM, "cannot allocate %zu bucket bounds", want);
    size_t n_cuts = 0;
    for (size_t k = 1; k < want; k++) {
        char *c = sp->sample[k * sp->n_sample / want];
        if (!n_cuts || ds_key_cmp(cuts[n_cuts - 1], c) < 0) cuts[n_cuts++] = c;
    }
    *n_buckets = n_cuts + 1;
    FILE **b = calloc(*n_buckets, sizeof *b);
    int rc = b ? 0 : err_set(e, ERR_NOMEM, "cannot allocate %zu buckets", *n_buckets);
    for (size_t k = 0; k < *n_buckets && !rc; k++) {
        char name[32];
        snprintf(name, sizeof name, "bucket-%05zu", k);
        rc = spill_fopen(sp, name, "wb", SPILL_BUCKET_IO_BUF, &b[k], e);
    }
    char path[8192];
    spill_reader r = {0};
    if (!rc) rc = spill_path(sp, "chunks", path, sizeof path, e);
    if (!rc && fflush(sp->chunks)) rc = err_set(e, ERR_IO, "%s: cannot write", path);
    if (!rc) rc = reader_open(&r, path, 0, e);
    size_t len;
    int got = 0;
    while (!rc && (got = reader_next(&r, &len, e)) == 1) {
        spill_rec rec;
        if ((rc = rec_parse(r.buf, len, &rec, path, e))) break;
        uint64_t n = len;
        FILE *f = b[bucket_of(cuts, n_cuts, rec.str[0])];
        if (fwrite(&n, 1, 8, f) != 8 || fwrite(r.buf, 1, len, f) != len)
            rc = err_set(e, ERR_IO, "%s: cannot write a bucket: %s", sp->dir, strerror(errno));
    }
    if (!rc && got < 0) rc = got;
    reader_close(&r);
    for (size_t k = 0; b && k < *n_buckets; k++)
        if (b[k] && fclose(b[k]) && !rc) rc = err_set(e, ERR_IO, "%s: cannot write a bucket", sp->dir);
    free(b);
    free(cuts);
    for (size_t i = 0; i < sp->n_sample; i++) free(sp->sample[i]);
    free(sp->sample);
    sp->sample = NULL;
    sp->n_sample = 0;
    if (!rc) {
        fclose(sp->chunks);
        sp->chunks = NULL;
        unlink(path);
    }
    return rc;
}

static int reject_file(int reason)
{
    return reason == DS_DUPLICATE_KEY ? REJ_DUPLICATE : reason == DS_MISSING_IMAGE ? REJ_MISSING : REJ_NO_CAPTIONS;
}

/* Bucket k: load, ds_finalize, survivors to the sorted file, rejects to
 * their files, counts into sum. */
static int spill_bucket(ds_spill *sp, ds_t *ds, size_t k, FILE *sorted, ds_summary_t *sum, err_t *e)
{
    char name[32], path[8192];
    snprintf(name, sizeof name, "bucket-%05zu", k);
    int rc = spill_path(sp, name, path, sizeof path, e);
    ds_t b;
    if (!rc) rc = ds_init(&b, ds->root, ds->check_images, e);
    if (rc) return rc;
    /* the reading data set's settings; its split list is borrowed */
    b.splits = ds->splits;
    b.n_splits = ds->n_splits;
    spill_reader r;
    size_t len;
    int got = 0;
    rc = reader_open(&r, path, 0, e);
    while (!rc && (got = reader_next(&r, &len, e)) == 1) {
        spill_rec rec;
        if (!(rc = rec_parse(r.buf, len, &rec, path, e))) rc = rec_add(&b, &rec, path, e);
    }
    if (!rc && got < 0) rc = got;
    reader_close(&r);
    if (!rc) rc = ds_finalize(&b, e);
    for (size_t i = 0; i < b.n_rejects && !rc; i++) {
        const ds_reject_t *rj = &b.rejects[i];
        int f = reject_file(rj->reason);
        manifest_reject_line(&sp->sb, &b, rj);
        rc = spill_write(sp, sp->rejects[f], rej_names[f], e);
        sp->n_rejects[f]++;
        if (!rc && ds->log_rejects && sp->n_held[f] <= DS_LOG_REJECTS) {
            char **h = sp->held[f][sp->n_held[f]];
            sp->held_reason[f][sp->n_held[f]++] = rj->reason;
            const uint64_t str[3] = {rj->file, rj->record, rj->detail};
            for (int k = 0; k < 3 && !rc; k++)
                if (!(h[k] = strdup(ds_str(&b, str[k])))) rc = err_set(e, ERR_NOMEM, "cannot allocate a reject");
        }
    }
    for (size_t i = 0; i < b.n_images && !rc; i++) {
        const ds_image_t *im = &b.images[i];
        sp->total_weight += manifest_ds_image_weight(&b, im);
        rec_put(&sp->sb, &b, im, NULL, im->n_captions);
        if (sp->sb.len >= SPILL_IO_BUF || i + 1 == b.n_images) rc = spill_write(sp, sorted, DS_SPILL_SORTED, e);
    }
    if (!rc) rc = ds_summary_add(sum, &b, e);
    b.splits = NULL;
    b.n_splits = 0;
    ds_free(&b);
    if (!rc) unlink(path);
    return rc;
}

int ds_spill_finalize(ds_spill *sp, ds_t *ds, ds_summary_t *sum, err_t *e)
{
    int rc = ds_checkpoint(ds, 1, e);
    if (!rc) rc = ds_summary_add(sum, ds, e); /* reading counters; its images went to the chunks */
    size_t n_buckets = 0;
    if (!rc) rc = spill_partition(sp, &n_buckets, e);
    FILE *sorted = NULL;
    if (!rc) rc = spill_fopen(sp, DS_SPILL_SORTED, "wb", SPILL_IO_BUF, &sorted, e);
    for (size_t k = 0; k < n_buckets && !rc; k++) rc = spill_bucket(sp, ds, k, sorted, sum, e);
    /* the finalize rejects' log lines in rejects.jsonl order */
    for (int f = REJ_DUPLICATE; f < REJ_FILES && !rc; f++) {
        for (size_t i = 0; i < sp->n_held[f]; i++)
            ds_log_reject(ds, sp->held_reason[f][i], sp->held[f][i][0], sp->held[f][i][1], sp->held[f][i][2]);
        ds->rejects_total += sp->n_rejects[f] - sp->n_held[f];
    }
    if (!rc)
        log_msg(LOG_INFO, "sorted %llu images (%.1f MiB of records) in %zu bucket(s) under %s",
                (unsigned long long)sp->images, (double)sp->chunk_bytes / (1 << 20), n_buckets, sp->dir);
    if (sorted && fclose(sorted) && !rc) rc = err_set(e, ERR_IO, "%s/%s: cannot write", sp->dir, DS_SPILL_SORTED);
    return rc;
}

int ds_spill_plan(ds_spill *sp, int num_shards, uint64_t *off, err_t *e)
{
    char path[8192];
    int rc = spill_path(sp, DS_SPILL_SORTED, path, sizeof path, e);
    spill_reader r;
    if (!rc) rc = reader_open(&r, path, 0, e);
    if (rc) return rc;
    int s = 0, got;
    uint64_t cum = 0, at = 0;
    size_t len;
    off[0] = 0;
    while ((got = reader_next(&r, &len, e)) == 1) {
        spill_rec rec;
        if ((rc = rec_parse(r.buf, len, &rec, path, e))) break;
        uint64_t bytes = 0;
        const uint8_t *p = rec.caps;
        for (uint32_t c = 0; c < rec.n_captions && !rc; c++) {
            uint32_t n = 0;
            if (!rec_str(&p, rec.end, &n)) rc = err_set(e, ERR_FORMAT, "%s: damaged temporary record", path);
            bytes += n;
        }
        if (rc) break;
        uint64_t w = manifest_image_weight(rec.n_captions, bytes);
        int target = manifest_shard_of(cum, w, sp->total_weight, num_shards);
        while (s < target) off[++s] = at;
        cum += w;
        at = r.pos;
    }
    if (!rc && got < 0) rc = got;
    while (s < num_shards) off[++s] = at;
    reader_close(&r);
    return rc;
}

int ds_spill_load(ds_t *ds, const char *path, uint64_t begin, uint64_t end, const char *split, err_t *e)
{
    spill_reader r;
    int rc = reader_open(&r, path, begin, e), got = 1;
    size_t len;
    while (!rc && r.pos < end && (got = reader_next(&r, &len, e)) == 1) {
        spill_rec rec;
        if (!(rc = rec_parse(r.buf, len, &rec, path, e)) && (!split || !strcmp(split, rec.str[1])))
            rc = rec_add(ds, &rec, path, e);
    }
    if (!rc && got < 0) rc = got;
    if (!rc && r.pos != end) rc = err_set(e, ERR_FORMAT, "%s: ends before byte %llu", path, (unsigned long long)end);
    reader_close(&r);
    return rc;
}

int ds_spill_write_rejects(ds_spill *sp, const char *path, err_t *e)
{
    char tmp[8400];
    int fd = -1;
    int rc = fs_tmp_create(path, tmp, sizeof tmp, &fd, e);
    if (rc) return rc;
    char *buf = malloc(SPILL_IO_BUF);
    if (!buf) rc = err_set(e, ERR_NOMEM, "%s: cannot allocate a copy buffer", path);
    for (int k = 0; k < REJ_FILES && !rc; k++) {
        FILE *f = sp->rejects[k];
        if (fflush(f) || fseeko(f, 0, SEEK_SET))
            rc = err_set(e, ERR_IO, "%s/%s: cannot read back", sp->dir, rej_names[k]);
        size_t n;
        while (!rc && (n = fread(buf, 1, SPILL_IO_BUF, f)) > 0) rc = fs_write_full(fd, buf, n, path, e);
        if (!rc && ferror(f)) rc = err_set(e, ERR_IO, "%s/%s: cannot read back", sp->dir, rej_names[k]);
    }
    free(buf);
    if (rc) {
        close(fd);
        unlink(tmp);
        return rc;
    }
    return fs_tmp_commit(fd, tmp, path, e);
}

void ds_spill_close(ds_spill *sp)
{
    if (!sp) return;
    if (sp->chunks) fclose(sp->chunks);
    for (int k = 0; k < REJ_FILES; k++)
        if (sp->rejects[k]) fclose(sp->rejects[k]);
    for (size_t i = 0; i < sp->n_sample; i++) free(sp->sample[i]);
    free(sp->sample);
    for (int f = 0; f < REJ_FILES; f++)
        for (size_t i = 0; i < sp->n_held[f]; i++)
            for (int k = 0; k < 3; k++) free(sp->held[f][i][k]);
    sb_free(&sp->sb);
    err_t ignore = {0};
    if (!fs_empty_dir(sp->dir, &ignore)) rmdir(sp->dir);
    free(sp);
}
