#include "caption/caption_corpus.h"
#include "caption/caption_sink.h"
#include "core/fsutil.h"
#include "core/mpictx.h"
#include "core/progress.h"
#include "core/workq.h"
#include "data/manifest.h"
#include "io/json_util.h"
#include "io/zio.h"
#include "store/store.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CC_FORMAT_VERSION 2
#define CC_MAX_SPLITS 32

void caption_corpus_options_default(caption_corpus_options *o)
{
    memset(o, 0, sizeof *o);
    o->batch = 64;
    o->zstd_level = 3;
}

static int cc_check_options(const caption_corpus_options *o, int need_out, err_t *e)
{
    if (!o->manifest || !o->store) return err_set(e, ERR_ARG, "a manifest and a feature store are required");
    if (need_out && !o->out) return err_set(e, ERR_ARG, "an output directory is required");
    if (o->batch < 1) return err_set(e, ERR_ARG, "batch must be at least 1 (got %d)", o->batch);
    if (o->zstd_level < 1 || o->zstd_level > 19)
        return err_set(e, ERR_ARG, "zstd level must be 1..19 (got %d)", o->zstd_level);
    return 0;
}

/* ---- split filter ---- */

typedef struct {
    char buf[1024];
    const char *name[CC_MAX_SPLITS];
    int n; /* 0 = every split */
} cc_splits;

static int cc_splits_parse(const char *s, cc_splits *f, err_t *e)
{
    f->n = 0;
    if (!s || !*s) return 0;
    if (snprintf(f->buf, sizeof f->buf, "%s", s) >= (int)sizeof f->buf)
        return err_set(e, ERR_ARG, "split list '%.40s...' is too long", s);
    for (char *save = NULL, *t = strtok_r(f->buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (f->n == CC_MAX_SPLITS) return err_set(e, ERR_ARG, "more than %d splits in '%s'", CC_MAX_SPLITS, s);
        f->name[f->n++] = t;
    }
    if (!f->n) return err_set(e, ERR_ARG, "split list '%s' names no split", s);
    return 0;
}

static int cc_splits_match(const cc_splits *f, const char *split)
{
    if (!f->n) return 1;
    for (int i = 0; i < f->n; i++)
        if (!strcmp(f->name[i], split)) return 1;
    return 0;
}

/* ---- captioning one batch ---- */

/* The embeddings of one batch of records: looked up by key; the ones with
 * an embedding are packed into clip[0..m). */
typedef struct {
    int D, K, cap;
    int n;                       /* records in the batch */
    char **key, **split;         /* owned copies */
    int *row;                    /* row in clip, or -1 */
    store_entry *ent;
    float *clip;                 /* [cap, D] */
    int m;                       /* rows with an embedding */
    captioner_caption *out;      /* m * K, owned by the captioner */
} cc_batch;

static int cc_batch_init(cc_batch *b, int D, int K, int cap, err_t *e)
{
    memset(b, 0, sizeof *b);
    b->D = D;
    b->K = K;
    b->cap = cap;
    b->key = calloc((size_t)cap, sizeof *b->key);
    b->split = calloc((size_t)cap, sizeof *b->split);
    b->row = calloc((size_t)cap, sizeof *b->row);
    b->ent = calloc((size_t)cap, sizeof *b->ent);
    b->clip = calloc((size_t)cap * (size_t)D, sizeof *b->clip);
    b->out = calloc((size_t)cap * (size_t)K, sizeof *b->out);
    if (!b->key || !b->split || !b->row || !b->ent || !b->clip || !b->out)
        return err_set(e, ERR_NOMEM, "out of memory for a batch of %d images", cap);
    return 0;
}

static void cc_batch_clear(cc_batch *b)
{
    for (int i = 0; i < b->n; i++) {
        free(b->key[i]);
        free(b->split[i]);
        b->key[i] = b->split[i] = NULL;
    }
    b->n = b->m = 0;
}

static void cc_batch_free(cc_batch *b)
{
    cc_batch_clear(b);
    free(b->key);
    free(b->split);
    free(b->row);
    free(b->ent);
    free(b->clip);
    free(b->out);
}

static int cc_batch_add(cc_batch *b, const manifest_record_t *rec, err_t *e)
{
    b->key[b->n] = strdup(rec->key);
    b->split[b->n] = strdup(rec->split);
    if (!b->key[b->n] || !b->split[b->n]) {
        b->n++;
        return err_set(e, ERR_NOMEM, "out of memory for key %s", rec->key);
    }
    b->n++;
    return 0;
}

/* Look every key up, then caption the ones with an embedding. */
static int cc_batch_run(cc_batch *b, store *st, const char *store_dir, captioner *c, err_t *e)
{
    b->m = 0;
    for (int i = 0; i < b->n; i++) {
        float *dst = b->clip + (size_t)b->m * (size_t)b->D;
        int rc = store_lookup_embedding(st, b->key[i], &b->ent[i], dst, (uint32_t)b->D, e);
        if (rc) return err_wrap(e, "%s", store_dir);
        b->row[i] = -1;
        if (b->ent[i].kind != STORE_ENTRY_EMBEDDING) continue;
        if (b->ent[i].rec.dim != (uint32_t)b->D)
            return err_set(e, ERR_FORMAT, "%s: key %s: embedding size %u, the model takes %d", store_dir, b->key[i],
                           b->ent[i].rec.dim, b->D);
        if (captioner_check_clip(c, b->ent[i].rec.model, b->key[i], e)) return err_wrap(e, "%s", store_dir);
        b->row[i] = b->m++;
    }
    return b->m ? captioner_run(c, b->clip, b->m, b->out, e) : 0;
}

/* ---- JSON lines ---- */

static int cc_dump_line(json_t *o, char **line, const char *what, err_t *e)
{
    *line = o ? json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(17)) : NULL;
    json_decref(o);
    return *line ? 0 : err_set(e, ERR_NOMEM, "cannot format the %s line", what);
}

/* The captioner's text is valid UTF-8 (invalid bytes replaced as the
 * reference's tokenizer.decode does), which JSON needs; keys come from the
 * manifest's JSON. NULL if either cannot be a JSON string. */
static json_t *cc_caption_json(const captioner_caption *cap)
{
    json_t *toks = json_array();
    for (int t = 0; toks && t < cap->n_tokens; t++) json_array_append_new(toks, json_integer(cap->tokens[t]));
    return json_pack("{s:s, s:o, s:f}", "caption", cap->text, "tokens", toks, "logprob", cap->logprob);
}

/* One image's line: the best caption; with K > 1 the others follow in
 * "alternatives", best first. */
static int cc_caption_line(const cc_batch *b, int i, const char *fingerprint, char **line, err_t *e)
{
    const captioner_caption *caps = b->out + (size_t)b->row[i] * (size_t)b->K;
    json_t *o = json_pack("{s:s, s:s}", "key", b->key[i], "split", b->split[i]);
    json_t *alt = json_array();
    if (!alt) {
        json_decref(o);
        o = NULL;
    }
    for (int k = 0; o && k < b->K; k++) {
        json_t *c = cc_caption_json(&caps[k]);
        if (!c) {
            json_decref(o);
            o = NULL;
        } else if (k == 0) {
            json_object_update(o, c);
            json_decref(c);
        } else {
            json_array_append_new(alt, c);
        }
    }
    if (o) json_object_set_new(o, "fingerprint", json_string(fingerprint));
    if (o && b->K > 1) json_object_set(o, "alternatives", alt);
    json_decref(alt);
    if (!o) return err_set(e, ERR_FORMAT, "key %s: the caption or the key cannot be written as JSON", b->key[i]);
    return cc_dump_line(o, line, "caption", e);
}

static int cc_failure_line(const cc_batch *b, int i, char **line, err_t *e)
{
    const store_entry *x = &b->ent[i];
    int failed = x->kind == STORE_ENTRY_FAILURE;
    json_t *o = json_pack("{s:s, s:s, s:s, s:s}", "key", b->key[i], "split", b->split[i], "failure",
                          failed ? x->fail.reason : "not_in_store", "message",
                          failed ? x->fail.message : "no embedding in the feature store");
    return cc_dump_line(o, line, "failure", e);
}

/* ---- the dump ---- */

typedef struct {
    int shard, of;
    const char *manifest_shard;
    const char *manifest_xxh128; /* the shard's checksum in the manifest's index.json */
    const char *fingerprint;
    const char *splits;
    int num_captions;
} cc_header;

static json_t *cc_header_json(const cc_header *h)
{
    return json_pack("{s:i, s:i, s:i, s:s, s:s, s:s, s:o, s:i}", "clipcap_captions", CC_FORMAT_VERSION, "shard",
                     h->shard, "of", h->of, "manifest_shard", h->manifest_shard, "manifest_xxh128", h->manifest_xxh128,
                     "fingerprint", h->fingerprint, "splits",
                     h->splits && *h->splits ? json_string(h->splits) : json_null(), "num_captions", h->num_captions);
}

/* The manifest shard's checksum is the resume key: a dump continued on a
 * re-sharded manifest, or another data set's dump with the same shard
 * count, would count records that are not this manifest's as done. */
static int cc_manifest_changed(const char *path, const json_t *was, const cc_header *want, err_t *e)
{
    return err_set(e, ERR_ARG,
                   "%s: was written for manifest shard %s with xxh128 %s, the manifest's index.json now gives %s: the "
                   "manifest changed since (or this is another data set's dump); caption into a new output directory",
                   path, want->manifest_shard, json_is_string(was) ? json_string_value(was) : "(none)",
                   want->manifest_xxh128);
}

/* An existing header must describe the same work: same manifest shard,
 * same model, same selection. Otherwise mixing would put two models'
 * captions, or another manifest's records, in one dump. */
static int cc_header_check(const char *path, const json_t *got, const cc_header *want, err_t *e)
{
    json_t *w = cc_header_json(want);
    if (!w) return err_set(e, ERR_NOMEM, "out of memory");
    const char *fields[] = {"clipcap_captions", "shard", "of", "manifest_xxh128", "fingerprint", "splits", "num_captions"};
    int rc = 0;
    for (size_t f = 0; f < sizeof fields / sizeof *fields && !rc; f++) {
        const json_t *a = json_object_get(got, fields[f]);
        if (f == 3 && !json_equal((json_t *)a, json_object_get(w, fields[f]))) {
            rc = cc_manifest_changed(path, a, want, e);
        } else if (!a || !json_equal((json_t *)a, json_object_get(w, fields[f]))) {
            char *was = a ? json_dumps(a, JSON_ENCODE_ANY) : NULL;
            char *now = json_dumps(json_object_get(w, fields[f]), JSON_ENCODE_ANY);
            rc = err_set(e, ERR_ARG,
                         "%s: was written with %s = %s, this run has %s; use another output directory or the same "
                         "settings",
                         path, fields[f], was ? was : "(missing)", now ? now : "?");
            free(was);
            free(now);
        }
    }
    json_decref(w);
    return rc;
}

/* One owned manifest shard. */
typedef struct {
    int shard;
    char final_path[4096], failures_path[4096], partial_path[4096];
    const cc_header *want;
    caption_sink *sink;
    uint64_t lines;          /* committed records (captions + failures) */
    uint64_t captions, failures;
    char *last_key;          /* of the last committed record */
    int header_seen;
} cc_shard;

static int cc_recover_line(void *ctx, const char *line, size_t len, err_t *e)
{
    cc_shard *s = ctx;
    json_t *o = NULL;
    int rc = json_load_buffer(&o, line, len, s->partial_path, e);
    if (rc) return rc;
    if (!s->header_seen) {
        rc = cc_header_check(s->partial_path, o, s->want, e);
        s->header_seen = 1;
        json_decref(o);
        return rc;
    }
    const char *key = NULL;
    rc = json_get_str(o, "key", &key, e);
    if (!rc) {
        free(s->last_key);
        s->last_key = strdup(key);
        if (!s->last_key) rc = err_set(e, ERR_NOMEM, "out of memory");
        s->lines++;
        if (json_object_get(o, "caption")) s->captions++;
        else s->failures++;
    }
    json_decref(o);
    return rc ? err_wrap(e, "%s: record %llu", s->partial_path, (unsigned long long)s->lines + 1) : 0;
}

static int cc_paths(cc_shard *s, const char *out, int shard, int of, err_t *e)
{
    char name[128];
    snprintf(name, sizeof name, "captions-%05d-of-%05d.jsonl.zst", shard, of);
    int rc = fs_join(s->final_path, sizeof s->final_path, out, name, e);
    snprintf(name, sizeof name, "partial/captions-%05d-of-%05d.jsonl.zst", shard, of);
    if (!rc) rc = fs_join(s->partial_path, sizeof s->partial_path, out, name, e);
    snprintf(name, sizeof name, "failures-%05d-of-%05d.jsonl.zst", shard, of);
    if (!rc) rc = fs_join(s->failures_path, sizeof s->failures_path, out, name, e);
    return rc;
}

/* A finished shard: its header (first line) gives the counts. */
static int cc_read_final(cc_shard *s, err_t *e)
{
    zio_reader *r = NULL;
    const char *line;
    size_t len;
    json_t *o = NULL;
    int rc = zio_reader_open(&r, s->final_path, e);
    if (!rc) {
        rc = zio_read_line(r, &line, &len, e);
        rc = rc == 1 ? json_load_buffer(&o, line, len, s->final_path, e)
             : rc == 0 ? err_set(e, ERR_FORMAT, "%s: empty file (no header)", s->final_path)
                       : rc;
    }
    zio_reader_close(r);
    if (!rc) rc = cc_header_check(s->final_path, o, s->want, e);
    long long caps = 0, fails = 0;
    if (!rc && (json_get_int(o, "captions", &caps, e) || json_get_int(o, "failures", &fails, e)))
        rc = err_wrap(e, "%s: header", s->final_path);
    json_decref(o);
    s->captions = (uint64_t)caps;
    s->failures = (uint64_t)fails;
    s->lines = s->captions + s->failures;
    return rc;
}

/* Open (or recover) the partial file; a new one starts with its header. */
static int cc_shard_begin(cc_shard *s, int level, err_t *e)
{
    int rc = caption_sink_open(&s->sink, s->partial_path, level, cc_recover_line, s, e);
    if (rc) return rc;
    if (s->header_seen) {
        if (s->lines)
            log_msg(LOG_INFO, "%s: resuming after %llu images", s->partial_path, (unsigned long long)s->lines);
        return 0;
    }
    char *line = NULL;
    rc = cc_dump_line(cc_header_json(s->want), &line, "header", e);
    if (!rc) rc = caption_sink_add(s->sink, line, strlen(line), e);
    if (!rc) rc = caption_sink_commit(s->sink, e);
    free(line);
    s->header_seen = 1;
    return rc;
}

/* Split the partial file into the final captions shard (header with the
 * counts, then the captions) and the failures file. The captions shard is
 * renamed into place last: its presence is what marks the shard done. */
static int cc_shard_finish(cc_shard *s, int level, err_t *e)
{
    caption_sink_close(s->sink);
    s->sink = NULL;
    zio_reader *r = NULL;
    zio_writer *wc = NULL, *wf = NULL;
    int rc = zio_reader_open(&r, s->partial_path, e);
    if (!rc) rc = zio_writer_open(&wc, s->final_path, level, e);
    if (!rc) rc = zio_writer_open(&wf, s->failures_path, level, e);
    const char *line;
    size_t len;
    int more = 0;
    uint64_t n = 0;
    if (!rc) {
        json_t *h = cc_header_json(s->want);
        json_object_set_new(h, "captions", json_integer((json_int_t)s->captions));
        json_object_set_new(h, "failures", json_integer((json_int_t)s->failures));
        char *hl = NULL;
        rc = cc_dump_line(h, &hl, "header", e);
        if (!rc) rc = zio_write(wc, hl, strlen(hl), e);
        if (!rc) rc = zio_write(wc, "\n", 1, e);
        free(hl);
    }
    while (!rc && (more = zio_read_line(r, &line, &len, e)) == 1) {
        if (n++ == 0) continue; /* the partial's header */
        json_t *o = NULL;
        if ((rc = json_load_buffer(&o, line, len, s->partial_path, e))) break;
        int failure = json_object_get(o, "failure") != NULL;
        json_decref(o);
        rc = zio_write(failure ? wf : wc, line, len, e);
        if (!rc) rc = zio_write(failure ? wf : wc, "\n", 1, e);
    }
    if (!rc && more < 0) rc = more;
    if (!rc && n != s->lines + 1)
        rc = err_set(e, ERR_INTERNAL, "%s: %llu records, expected %llu", s->partial_path, (unsigned long long)n - 1,
                     (unsigned long long)s->lines);
    zio_reader_close(r);
    if (!rc) {
        rc = zio_writer_commit(wf, e);
        wf = NULL;
    }
    if (!rc) {
        rc = zio_writer_commit(wc, e);
        wc = NULL;
    }
    zio_writer_abort(wf);
    zio_writer_abort(wc);
    if (!rc && unlink(s->partial_path) != 0)
        log_msg(LOG_WARN, "%s: cannot remove: %s (the shard is complete; it is removed on the next run)", s->partial_path,
                strerror(errno));
    return rc;
}

/* Append one batch to the shard as one frame. */
static int cc_write_batch(cc_shard *s, const cc_batch *b, const char *fingerprint, err_t *e)
{
    int rc = 0;
    uint64_t caps = 0, fails = 0;
    for (int i = 0; i < b->n && !rc; i++) {
        char *line = NULL;
        rc = b->row[i] >= 0 ? cc_caption_line(b, i, fingerprint, &line, e) : cc_failure_line(b, i, &line, e);
        if (!rc) rc = caption_sink_add(s->sink, line, strlen(line), e);
        free(line);
        if (b->row[i] >= 0) caps++;
        else fails++;
    }
    if (!rc) rc = caption_sink_commit(s->sink, e);
    if (rc) return rc;
    s->lines += (uint64_t)b->n;
    s->captions += caps;
    s->failures += fails;
    free(s->last_key);
    s->last_key = b->n ? strdup(b->key[b->n - 1]) : NULL;
    if (b->n && !s->last_key) return err_set(e, ERR_NOMEM, "out of memory");
    return 0;
}

typedef struct {
    const caption_corpus_options *opt;
    const manifest_t *m;
    store *st;
    captioner *c;
    cc_splits splits;
    cc_batch b;
    progress_t prog;
    uint64_t done, failed; /* this run */
    uint64_t skipped;      /* eval with skip_failed: images left out */
} cc_run;

/* Skip the records the partial file already holds, checking that the
 * manifest still lists them in the same order. */
static int cc_skip_done(cc_run *x, cc_shard *s, manifest_shard_reader *r, const char *file, err_t *e)
{
    uint64_t seen = 0;
    manifest_record_t rec;
    while (seen < s->lines) {
        int more = manifest_shard_next(r, &rec, e);
        if (more < 0) return more;
        if (!more)
            return err_set(e, ERR_FORMAT, "%s holds %llu records but %s has only %llu of the selected splits",
                           s->partial_path, (unsigned long long)s->lines, file, (unsigned long long)seen);
        if (!cc_splits_match(&x->splits, rec.split)) continue;
        if (++seen == s->lines && strcmp(rec.key, s->last_key))
            return err_set(e, ERR_FORMAT, "%s: record %llu is key %s but %s lists %s there: the manifest changed",
                           s->partial_path, (unsigned long long)seen, s->last_key, file, rec.key);
    }
    return 0;
}

static int cc_flush(cc_run *x, cc_shard *s, err_t *e)
{
    if (!x->b.n) return 0;
    int rc = cc_batch_run(&x->b, x->st, x->opt->store, x->c, e);
    if (!rc) rc = cc_write_batch(s, &x->b, captioner_fingerprint(x->c), e);
    if (!rc) {
        x->done += (uint64_t)x->b.m;
        x->failed += (uint64_t)(x->b.n - x->b.m);
        progress_update(&x->prog, x->done + x->failed, x->failed);
    }
    cc_batch_clear(&x->b);
    return rc;
}

/* Work an earlier run did is not part of this run's rate and ETA. */
static void cc_progress_skip(cc_run *x, uint64_t n)
{
    x->prog.total -= n < x->prog.total ? n : x->prog.total;
}

static int cc_dump_shard(cc_run *x, cc_shard *s, err_t *e)
{
    const manifest_shard_info_t *info = manifest_shard_info(x->m, s->shard);
    if (fs_exists(s->final_path)) {
        int rc = cc_read_final(s, e);
        if (!rc && fs_exists(s->partial_path)) unlink(s->partial_path); /* left by a kill after the rename */
        if (!rc) cc_progress_skip(x, s->lines);
        return rc;
    }
    int rc = cc_shard_begin(s, x->opt->zstd_level, e);
    if (!rc) cc_progress_skip(x, s->lines);
    manifest_shard_reader *r = NULL;
    if (!rc) rc = manifest_shard_open(&r, x->m, s->shard, e);
    if (!rc) rc = cc_skip_done(x, s, r, info->file, e);
    manifest_record_t rec;
    int more = 0;
    while (!rc && (more = manifest_shard_next(r, &rec, e)) == 1) {
        if (!cc_splits_match(&x->splits, rec.split)) continue;
        rc = cc_batch_add(&x->b, &rec, e);
        if (!rc && x->b.n == x->b.cap) rc = cc_flush(x, s, e);
    }
    if (!rc && more < 0) rc = more;
    if (!rc) rc = cc_flush(x, s, e);
    manifest_shard_close(r);
    if (!rc) rc = cc_shard_finish(s, x->opt->zstd_level, e);
    cc_batch_clear(&x->b);
    caption_sink_close(s->sink);
    s->sink = NULL;
    return rc;
}

/* Records of the selected splits in a shard, for the ETA. */
static int cc_count_shard(cc_run *x, int shard, uint64_t *count, err_t *e)
{
    *count = 0;
    if (!x->splits.n) {
        *count = manifest_shard_info(x->m, shard)->images;
        return 0;
    }
    manifest_shard_reader *r = NULL;
    int rc = manifest_shard_open(&r, x->m, shard, e), more;
    manifest_record_t rec;
    while (!rc && (more = manifest_shard_next(r, &rec, e)) == 1) *count += cc_splits_match(&x->splits, rec.split);
    if (!rc && more < 0) rc = more;
    manifest_shard_close(r);
    return rc;
}

/* What produced the captions: the model's shape, the decode settings,
 * the batch (which can flip exact fp32 ties), and the caller's extras. */
static int cc_settings(const cc_run *x, json_t **out, err_t *e)
{
    const clipcap_config *m = captioner_config(x->c);
    const decode_config *d = captioner_decode_config(x->c);
    json_t *s = json_pack("{s:{s:s, s:i, s:i, s:i, s:i}, s:{s:i, s:i, s:i, s:i}, s:i}", "architecture", "mapping",
                          m->mapping == CLIPCAP_MAP_MLP ? "mlp" : "transformer", "clip_dim", m->clip_dim,
                          "prefix_len", m->prefix_len, "clip_len", m->clip_len, "mapper_layers", m->mapper_layers,
                          "decode", "max_tokens", d->max_tokens, "stop_token", d->stop_token, "beam", d->beam,
                          "num_captions", d->num_captions, "batch", x->opt->batch);
    if (!s) return err_set(e, ERR_NOMEM, "cannot format the settings");
    json_t *extra = NULL;
    int rc = 0;
    if (x->opt->settings) {
        rc = json_load_buffer(&extra, x->opt->settings, strlen(x->opt->settings), "settings", e);
        if (!rc && !json_is_object(extra)) rc = err_set(e, ERR_ARG, "settings: not a JSON object");
        if (!rc) json_object_update(s, extra);
        json_decref(extra);
    }
    if (rc) {
        json_decref(s);
        return rc;
    }
    *out = s;
    return 0;
}

static int cc_write_index(const cc_run *x, const uint64_t *caps, const uint64_t *fails, err_t *e)
{
    int N = manifest_num_shards(x->m);
    json_t *shards = json_array();
    uint64_t tc = 0, tf = 0;
    char name[128];
    for (int s = 0; s < N; s++) {
        json_t *o = json_object();
        json_object_set_new(o, "shard", json_integer(s));
        snprintf(name, sizeof name, "captions-%05d-of-%05d.jsonl.zst", s, N);
        json_object_set_new(o, "file", json_string(name));
        snprintf(name, sizeof name, "failures-%05d-of-%05d.jsonl.zst", s, N);
        json_object_set_new(o, "failures_file", json_string(name));
        json_object_set_new(o, "manifest_xxh128", json_string(manifest_shard_info(x->m, s)->xxh128));
        json_object_set_new(o, "captions", json_integer((json_int_t)caps[s]));
        json_object_set_new(o, "failures", json_integer((json_int_t)fails[s]));
        json_array_append_new(shards, o);
        tc += caps[s];
        tf += fails[s];
    }
    json_t *settings = NULL;
    int rc = cc_settings(x, &settings, e);
    if (rc) {
        json_decref(shards);
        return rc;
    }
    json_t *idx = json_pack("{s:i, s:s, s:s, s:s, s:o, s:i, s:o, s:I, s:I, s:o}", "clipcap_captions", CC_FORMAT_VERSION,
                            "manifest", x->opt->manifest, "store", x->opt->store, "fingerprint",
                            captioner_fingerprint(x->c), "splits",
                            x->splits.n ? json_string(x->opt->splits) : json_null(), "num_captions", x->b.K,
                            "settings", settings, "captions", (json_int_t)tc, "failures", (json_int_t)tf, "shards",
                            shards);
    char *text = idx ? json_dumps(idx, JSON_INDENT(1) | JSON_REAL_PRECISION(17)) : NULL;
    json_decref(idx);
    if (!text) return err_set(e, ERR_NOMEM, "cannot format the index");
    char path[4096];
    rc = fs_join(path, sizeof path, x->opt->out, "index.json", e);
    size_t len = strlen(text);
    text[len] = '\n'; /* json_dumps's NUL becomes the final newline */
    if (!rc) rc = fs_write_atomic(path, text, len + 1, e);
    free(text);
    if (!rc)
        log_msg(LOG_INFO, "%s: %llu captions, %llu failures in %d shards", path, (unsigned long long)tc,
                (unsigned long long)tf, N);
    return rc;
}

/* Sum the per-shard counts on rank 0 (each shard has one owner, the other
 * ranks contribute zeros). */
static int cc_gather_counts(uint64_t *caps, uint64_t *fails, int N, err_t *e)
{
    if (!mpictx_active() || mpictx_size() == 1) return 0;
    int rank = mpictx_rank();
    int rc = mpictx_check(MPI_Reduce(rank ? caps : MPI_IN_PLACE, caps, N, MPI_UINT64_T, MPI_SUM, 0, mpictx_comm()),
                          "MPI_Reduce(captions)", e);
    if (!rc)
        rc = mpictx_check(MPI_Reduce(rank ? fails : MPI_IN_PLACE, fails, N, MPI_UINT64_T, MPI_SUM, 0, mpictx_comm()),
                          "MPI_Reduce(failures)", e);
    return rc;
}

static int cc_open(cc_run *x, const caption_corpus_options *opt, captioner *c, manifest_t **m, err_t *e)
{
    memset(x, 0, sizeof *x);
    x->opt = opt;
    x->c = c;
    int rc = cc_splits_parse(opt->splits, &x->splits, e);
    if (!rc) rc = manifest_open(m, opt->manifest, e);
    x->m = *m;
    if (!rc) rc = store_open(&x->st, opt->store, NULL, e);
    if (!rc) rc = cc_batch_init(&x->b, captioner_clip_dim(c), captioner_decode_config(c)->num_captions, opt->batch, e);
    return rc;
}

static void cc_close(cc_run *x, manifest_t *m)
{
    cc_batch_free(&x->b);
    store_close(x->st);
    manifest_close(m);
}

/* One shard the work queue handed to this rank. */
static int cc_dump_unit(cc_run *x, int shard, uint64_t *caps, uint64_t *fails, err_t *e)
{
    int N = manifest_num_shards(x->m);
    const manifest_shard_info_t *si = manifest_shard_info(x->m, shard);
    cc_header want = {shard, N, si->file, si->xxh128, captioner_fingerprint(x->c),
                      x->splits.n ? x->opt->splits : NULL, x->b.K};
    cc_shard sh = {.shard = shard, .want = &want};
    uint64_t count = 0;
    int rc = cc_count_shard(x, shard, &count, e);
    if (!rc) {
        x->prog.total += count;
        rc = cc_paths(&sh, x->opt->out, shard, N, e);
    }
    if (!rc) rc = cc_dump_shard(x, &sh, e);
    if (!rc) {
        caps[shard] = sh.captions;
        fails[shard] = sh.failures;
    }
    caption_sink_close(sh.sink);
    free(sh.last_key);
    return rc;
}

static int cc_dump(cc_run *x, err_t *e)
{
    const caption_corpus_options *opt = x->opt;
    int N = manifest_num_shards(x->m), rank = mpictx_rank();
    uint64_t *caps = calloc((size_t)N + 1, sizeof *caps), *fails = calloc((size_t)N + 1, sizeof *fails);
    char partial_dir[4096];
    int rc = caps && fails ? 0 : err_set(e, ERR_NOMEM, "out of memory for %d shards", N);
    if (!rc) rc = fs_join(partial_dir, sizeof partial_dir, opt->out, "partial", e);
    if (!rc) rc = fs_mkdirs(partial_dir, e);
    rc = mpictx_agree(rc, e);
    workq *units = NULL;
    if (!rc) rc = workq_open(&units, N, "caption shards", e);
    if (!rc) {
        /* the total grows as shards are taken: the ETA is that of the work in hand */
        progress_start(&x->prog, "caption", "caption", 0);
        int shard, more;
        while ((more = workq_next(units, &shard, e)) == 1 && !(rc = cc_dump_unit(x, shard, caps, fails, e))) {}
        if (!rc && more < 0) rc = more;
        if (!rc) progress_finish(&x->prog);
        err_t ce = {0};
        int crc = workq_close(units, &ce);
        if (crc && !rc) rc = crc, *e = ce;
    }
    workq_free(units);
    rc = mpictx_agree(rc, e);
    if (!rc) rc = mpictx_agree(cc_gather_counts(caps, fails, N, e), e);
    if (!rc && rank == 0) rc = cc_write_index(x, caps, fails, e);
    /* Every shard is final now; an empty partial/ would only puzzle users. */
    if (!rc && rank == 0 && rmdir(partial_dir) != 0 && errno != ENOENT)
        log_msg(LOG_WARN, "%s: cannot remove: %s", partial_dir, strerror(errno));
    rc = mpictx_agree(rc, e);
    free(caps);
    free(fails);
    return rc;
}

int caption_corpus_run(const caption_corpus_options *opt, captioner *c, err_t *e)
{
    cc_run x;
    manifest_t *m = NULL;
    memset(&x, 0, sizeof x);
    int rc = cc_check_options(opt, 1, e);
    if (!rc) rc = fs_mkdirs(opt->out, e);
    if (!rc) rc = cc_open(&x, opt, c, &m, e);
    /* Every rank must reach the collectives of the dump, failed or not. */
    rc = mpictx_agree(rc, e);
    if (!rc) rc = cc_dump(&x, e);
    cc_close(&x, m);
    return rc;
}

/* ---- eval: generate, gather on rank 0 ---- */

/* An evaluated image whose entry is not an embedding: a failure suggests
 * --skip-failed, an absent key extract. */
static int cc_no_embedding(const char *store_dir, const char *key, const char *split, const store_entry *ent, err_t *e)
{
    if (ent->kind == STORE_ENTRY_FAILURE)
        return err_set(e, ERR_NOTFOUND, "%s: image %s (split %s): extraction failed (%s: %s); --skip-failed leaves "
                       "such images out", store_dir, key, split, ent->fail.reason, ent->fail.message);
    return err_set(e, ERR_NOTFOUND, "%s: image %s (split %s) has no embedding (not_in_store): every evaluated image "
                   "needs one; run `clipcap extract` for it", store_dir, key, split);
}

/* One unit's results as "key\0caption\0" pairs, in manifest order. */
typedef struct {
    char *buf;
    size_t len, cap;
    size_t count;
    int taken; /* this rank captioned the unit (results may be empty) */
} cc_pairs;

static int cc_pairs_add(cc_pairs *p, const char *key, const char *caption, err_t *e)
{
    size_t a = strlen(key) + 1, b = strlen(caption) + 1;
    if (p->len + a + b > p->cap) {
        size_t cap = p->cap ? p->cap : 4096;
        while (cap < p->len + a + b) cap *= 2;
        char *nb = realloc(p->buf, cap);
        if (!nb) return err_set(e, ERR_NOMEM, "out of memory for %zu captions", p->count);
        p->buf = nb;
        p->cap = cap;
    }
    memcpy(p->buf + p->len, key, a);
    memcpy(p->buf + p->len + a, caption, b);
    p->len += a + b;
    p->count++;
    return 0;
}

static int cc_collect_flush(cc_run *x, cc_pairs *p, err_t *e)
{
    cc_batch *b = &x->b;
    int rc = b->n ? cc_batch_run(b, x->st, x->opt->store, x->c, e) : 0;
    for (int i = 0; i < b->n && !rc; i++) {
        if (b->row[i] < 0) {
            const store_entry *f = &b->ent[i];
            if (x->opt->skip_failed && f->kind == STORE_ENTRY_FAILURE) {
                log_msg(LOG_WARN, "%s: image %s (split %s) left out: extraction failed (%s: %s)", x->opt->store,
                        b->key[i], b->split[i], f->fail.reason, f->fail.message);
                x->skipped++;
                continue;
            }
            rc = cc_no_embedding(x->opt->store, b->key[i], b->split[i], f, e);
            break;
        }
        rc = cc_pairs_add(p, b->key[i], b->out[(size_t)b->row[i] * (size_t)b->K].text, e);
    }
    if (!rc && b->n) {
        x->done += (uint64_t)b->n;
        progress_update(&x->prog, x->done, 0);
    }
    cc_batch_clear(b);
    return rc;
}

int caption_corpus_check(const caption_corpus_options *opt, caption_corpus_key_fn on_key, void *ctx, err_t *e)
{
    cc_splits splits;
    manifest_t *m = NULL;
    store *st = NULL;
    uint64_t n = 0;
    int rc = cc_check_options(opt, 0, e);
    if (!rc) rc = cc_splits_parse(opt->splits, &splits, e);
    if (!rc) rc = manifest_open(&m, opt->manifest, e);
    if (!rc) rc = store_open(&st, opt->store, NULL, e);
    for (int s = 0; !rc && s < manifest_num_shards(m); s++) {
        manifest_shard_reader *r = NULL;
        manifest_record_t rec;
        int more = 0;
        rc = manifest_shard_open(&r, m, s, e);
        while (!rc && (more = manifest_shard_next(r, &rec, e)) == 1) {
            if (!cc_splits_match(&splits, rec.split)) continue;
            n++;
            store_entry ent;
            if ((rc = store_lookup(st, rec.key, &ent, e)) != 0) break;
            if (ent.kind == STORE_ENTRY_EMBEDDING) rc = on_key(ctx, rec.key, e);
            else if (ent.kind != STORE_ENTRY_FAILURE || !opt->skip_failed)
                rc = cc_no_embedding(opt->store, rec.key, rec.split, &ent, e);
        }
        if (!rc && more < 0) rc = more;
        manifest_shard_close(r);
    }
    if (!rc && n == 0)
        rc = err_set(e, ERR_NOTFOUND, "%s: no image of split(s) '%s'", opt->manifest, splits.n ? opt->splits : "(any)");
    store_close(st);
    manifest_close(m);
    return rc;
}

/* The selected images of one shard, in batches that never span shards, so
 * a caption does not depend on which rank took the shard. */
static int cc_collect_unit(cc_run *x, int shard, cc_pairs *p, err_t *e)
{
    uint64_t count = 0;
    int rc = cc_count_shard(x, shard, &count, e);
    x->prog.total += count;
    p->taken = 1;
    manifest_shard_reader *r = NULL;
    manifest_record_t rec;
    int more = 0;
    if (!rc) rc = manifest_shard_open(&r, x->m, shard, e);
    while (!rc && (more = manifest_shard_next(r, &rec, e)) == 1) {
        if (!cc_splits_match(&x->splits, rec.split)) continue;
        rc = cc_batch_add(&x->b, &rec, e);
        if (!rc && x->b.n == x->b.cap) rc = cc_collect_flush(x, p, e);
    }
    if (!rc && more < 0) rc = more;
    manifest_shard_close(r);
    if (!rc) rc = cc_collect_flush(x, p, e);
    cc_batch_clear(&x->b);
    return rc;
}

/* Rank 0: a unit's pairs onto the item list. */
static int cc_items_append(const char *buf, size_t len, int shard, caption_corpus_item **items, size_t *n,
                           size_t *cap, err_t *e)
{
    for (const char *p = buf, *end = buf + len; p < end;) {
        size_t a = strnlen(p, (size_t)(end - p));
        size_t b = p + a + 1 < end ? strnlen(p + a + 1, (size_t)(end - p - a - 1)) : 0;
        if (p + a + 1 + b + 1 > end) return err_set(e, ERR_INTERNAL, "shard %d: malformed results", shard);
        if (*n == *cap) {
            size_t nc = *cap ? *cap * 2 : 1024;
            caption_corpus_item *ni = realloc(*items, nc * sizeof *ni);
            if (!ni) return err_set(e, ERR_NOMEM, "out of memory for %zu captions", nc);
            *items = ni;
            *cap = nc;
        }
        caption_corpus_item *it = &(*items)[*n];
        it->key = strdup(p);
        it->caption = strdup(p + a + 1);
        (*n)++; /* freeable from here on */
        if (!it->key || !it->caption) return err_set(e, ERR_NOMEM, "out of memory");
        p += a + 1 + b + 1;
    }
    return 0;
}

/* Results travel to rank 0 one unit at a time in unit order: rank 0
 * receives unit u from the rank that took it, and every rank sends its own
 * units in increasing order, so the blocking sends cannot deadlock and rank
 * 0 never holds more than the item list plus one unit in flight. */
static int cc_gather_units(workq *units, int n_units, cc_pairs *mine, caption_corpus_item **items, size_t *n,
                           err_t *e)
{
    int rank = mpictx_rank(), rc = 0;
    size_t cap = 0;
    char *buf = NULL;
    for (int u = 0; u < n_units && !rc; u++) {
        if (rank != 0) {
            if (!mine[u].taken) continue;
            if (mine[u].len > (size_t)INT_MAX)
                return err_set(e, ERR_LIMIT, "shard %d: %zu bytes of captions exceed one message", u, mine[u].len);
            int len = (int)mine[u].len;
            rc = mpictx_check(MPI_Send(&len, 1, MPI_INT, 0, u, mpictx_comm()), "MPI_Send(result size)", e);
            if (!rc)
                rc = mpictx_check(MPI_Send(mine[u].buf, len, MPI_CHAR, 0, u, mpictx_comm()), "MPI_Send(results)", e);
            continue;
        }
        int owner = workq_owner(units, u);
        if (owner == 0 || owner < 0) {
            if (mine[u].len) rc = cc_items_append(mine[u].buf, mine[u].len, u, items, n, &cap, e);
            continue;
        }
        int len = 0;
        rc = mpictx_check(MPI_Recv(&len, 1, MPI_INT, owner, u, mpictx_comm(), MPI_STATUS_IGNORE),
                          "MPI_Recv(result size)", e);
        char *nb = rc ? NULL : realloc(buf, (size_t)len + 1);
        if (!rc && !nb) rc = err_set(e, ERR_NOMEM, "out of memory for %d bytes of captions", len);
        if (nb) buf = nb;
        if (!rc)
            rc = mpictx_check(MPI_Recv(buf, len, MPI_CHAR, owner, u, mpictx_comm(), MPI_STATUS_IGNORE),
                              "MPI_Recv(results)", e);
        if (!rc) rc = cc_items_append(buf, (size_t)len, u, items, n, &cap, e);
    }
    free(buf);
    return rc;
}

int caption_corpus_collect(const caption_corpus_options *opt, captioner *c, caption_corpus_item **items, size_t *n,
                           err_t *e)
{
    *items = NULL;
    *n = 0;
    cc_run x;
    manifest_t *m = NULL;
    cc_pairs *mine = NULL;
    workq *units = NULL;
    int n_units = 0;
    memset(&x, 0, sizeof x);
    int rc = cc_check_options(opt, 0, e);
    if (!rc) rc = cc_open(&x, opt, c, &m, e);
    if (!rc) {
        uint64_t selected = 0;
        for (int i = 0; i < manifest_num_splits(x.m); i++)
            if (cc_splits_match(&x.splits, manifest_split(x.m, i)->name)) selected += manifest_split(x.m, i)->images;
        if (!selected)
            rc = err_set(e, ERR_NOTFOUND, "%s: no image of split(s) '%s'", opt->manifest,
                         x.splits.n ? opt->splits : "(any)");
    }
    if (!rc) {
        n_units = manifest_num_shards(x.m);
        if (!(mine = calloc((size_t)n_units + 1, sizeof *mine))) rc = err_set(e, ERR_NOMEM, "out of memory");
    }
    rc = mpictx_agree(rc, e);
    if (!rc) rc = workq_open(&units, n_units, "eval shards", e);
    if (!rc) {
        progress_start(&x.prog, "eval captions", "caption", 0);
        int shard, more;
        while ((more = workq_next(units, &shard, e)) == 1 && !(rc = cc_collect_unit(&x, shard, &mine[shard], e))) {}
        if (!rc && more < 0) rc = more;
        if (!rc) progress_finish(&x.prog);
        if (!rc && x.skipped)
            log_msg(LOG_WARN, "eval: %llu image(s) of this rank left out (extraction failed)",
                    (unsigned long long)x.skipped);
        err_t ce = {0};
        int crc = workq_close(units, &ce);
        if (crc && !rc) rc = crc, *e = ce;
    }
    rc = mpictx_agree(rc, e);
    if (!rc) rc = mpictx_agree(cc_gather_units(units, n_units, mine, items, n, e), e);
    if (rc && *items) {
        caption_corpus_items_free(*items, *n);
        *items = NULL;
        *n = 0;
    }
    workq_free(units);
    for (int u = 0; mine && u < n_units; u++) free(mine[u].buf);
    free(mine);
    cc_close(&x, m);
    return rc;
}

void caption_corpus_items_free(caption_corpus_item *items, size_t n)
{
    if (!items) return;
    for (size_t i = 0; i < n; i++) {
        free(items[i].key);
        free(items[i].caption);
    }
    free(items);
}
