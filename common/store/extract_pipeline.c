#include "store/extract_pipeline.h"
#include "core/fsutil.h"
#include "core/progress.h"
#include "core/workq.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <uv.h>

typedef struct ex_pipe ex_pipe;
typedef struct ex_batch ex_batch;
typedef struct ex_stat_work ex_stat_work;

/* One record from the moment a slot is taken until its pixels are copied
 * into a batch (or it is skipped or fails). */
typedef struct ex_job {
    ex_pipe *p;
    uv_fs_t req;
    uv_work_t work;
    char *key, *path;
    int is_tar;
    uint64_t offset, length; /* the record's member data */
    size_t hdr;              /* 512: a tar member's header block is read with its data */
    uv_file fd;
    uint8_t *data;
    size_t len, got;
    float *pixels; /* the slot */
    char hash[33];
    store_entry prev; /* the key's entry in the store when the record was started */
    uint64_t src_size; /* the source's stat() when it was opened */
    int64_t src_mtime_ns;
    int same_source;   /* the skip check's stat() matched the stored one */
    image_info info;
    const char *reason; /* non-NULL: the record failed */
    char msg[900];
    double t_start, t_decode;
    ex_batch *batch;
    int slot; /* the record's row in its batch: its index in the shard mod B */
} ex_job;

/* Fixed batch slots: record i of a shard is always row i % B of that
 * shard's batch i / B, and every forward pass runs B rows (rows of skipped
 * or failed records are zeros). OpenBLAS's result for a row depends on the
 * GEMM's shape and on the row's place in it, so this is what makes an
 * embedding independent of the rank count, of where a killed run resumed
 * and of which batch-mates failed (docs/store.md, Determinism). A batch is
 * complete once it is closed (B records, or its shard ended) and every
 * record in it is resolved (ready, skipped or failed). */
struct ex_batch {
    int started, resolved, ready, closed;
    ex_job **jobs; /* [B]: the ready records by row, NULL elsewhere */
};

typedef struct ex_item { /* an image in the batch being encoded */
    char *key;
    char hash[33];
    int width, height, row;
    uint64_t src_size, src_offset;
    int64_t src_mtime_ns;
} ex_item;

/* Written with the next batch: a failure, or (emb != NULL) an embedding
 * already stored whose source changed its stat() but not its bytes. */
typedef struct ex_pending {
    char *key;
    store_failure f;
    store_record rec;
    float *emb;
} ex_pending;

struct ex_pipe {
    const extract_cfg *cfg;
    extract_stats *st;
    uv_loop_t loop;
    uv_async_t async;
    size_t px_floats;
    float *slot_mem;
    float **free_px;
    int n_free;
    int inflight; /* reading or decoding */
    /* batches being filled, oldest first; a pool of n_batch_cap structs */
    ex_batch *batch_mem, **open, **free_batch;
    ex_job **job_mem;
    int n_open, n_free_batch, n_batch_cap;
    int shard, rec_i, input_done; /* shard: the unit being read */
    ex_stat_work *stat_fill; /* skip checks waiting to be sent to the pool */
    manifest_shard_reader *reader;
    ex_pending *pending;
    int n_pending;
    /* the batch: touched by the loop only while the encoder is idle */
    float *batch_in, *batch_out;
    ex_item *items;
    int n_items, enc_busy;
    store_record *recs;
    store_put *puts;
    /* loop <-> encoder thread, under mu */
    uv_thread_t thread;
    uv_mutex_t mu;
    uv_cond_t cv;
    int has_work, done, quit, enc_rc;
    err_t enc_err;
    double enc_time;
    int fatal, closing;
    err_t err;
    progress_t prog;
};

static void ex_kick(ex_pipe *p);

static void ex_set_fatal(ex_pipe *p, const err_t *e)
{
    if (p->fatal) return;
    p->fatal = e->code ? e->code : ERR_INTERNAL;
    p->err = *e;
}

static void ex_progress(ex_pipe *p)
{
    const extract_stats *st = p->st;
    progress_update(&p->prog, st->encoded + st->skipped + st->failed, st->failed);
}

static void ex_free_pending(ex_pipe *p)
{
    for (int i = 0; i < p->n_pending; i++) free(p->pending[i].key), free(p->pending[i].emb);
    p->n_pending = 0;
}

static int ex_write(ex_pipe *p, size_t n_embeddings)
{
    const extract_cfg *cfg = p->cfg;
    size_t n = 0;
    for (size_t i = 0; i < n_embeddings; i++, n++) {
        store_record *r = &p->recs[i];
        memset(r, 0, sizeof *r);
        r->dtype = cfg->dtype;
        r->dim = (uint32_t)clip_vit_embed_dim(cfg->model);
        r->width = (uint32_t)p->items[i].width;
        r->height = (uint32_t)p->items[i].height;
        r->generation = cfg->generation;
        r->src_size = p->items[i].src_size;
        r->src_mtime_ns = p->items[i].src_mtime_ns;
        r->src_offset = p->items[i].src_offset;
        snprintf(r->model, sizeof r->model, "%s", cfg->model_fp);
        memcpy(r->content_hash, p->items[i].hash, 33);
        const float *emb = p->batch_out + (size_t)p->items[i].row * r->dim;
        p->puts[n] = (store_put){.key = p->items[i].key, .rec = r, .embedding = emb};
    }
    for (int i = 0; i < p->n_pending; i++, n++) {
        ex_pending *q = &p->pending[i];
        p->puts[n] = q->emb ? (store_put){.key = q->key, .rec = &q->rec, .embedding = q->emb, .copied = 1}
                            : (store_put){.key = q->key, .failure = &q->f};
    }
    if (n == 0) return 0;
    err_t e = {0};
    double t0 = clock_now();
    int rc = store_env_write(cfg->writer, p->puts, n, &e);
    p->st->t_write += clock_now() - t0;
    if (rc) {
        ex_set_fatal(p, &e);
        return rc;
    }
    ex_free_pending(p);
    return 0;
}

static void ex_release(ex_job *j)
{
    ex_pipe *p = j->p;
    p->free_px[p->n_free++] = j->pixels;
    free(j->key);
    free(j->path);
    free(j->data);
    free(j);
}

static void ex_job_failed(ex_job *j)
{
    ex_pipe *p = j->p;
    extract_stats *st = p->st;
    st->failed++;
    j->batch->resolved++;
    json_t *c = json_object_get(st->failures_by_reason, j->reason);
    json_object_set_new(st->failures_by_reason, j->reason, json_integer(c ? json_integer_value(c) + 1 : 1));
    if (json_array_size(st->failures) < p->cfg->max_failures_listed)
        json_array_append_new(st->failures,
                              json_pack("{s:s, s:s, s:s}", "key", j->key, "reason", j->reason, "message", j->msg));
    log_msg(LOG_WARN, "extract: %s: %s: %s", j->key, j->reason, j->msg);
    ex_pending *f = &p->pending[p->n_pending];
    memset(f, 0, sizeof *f);
    f->f.generation = p->cfg->generation;
    snprintf(f->f.reason, sizeof f->f.reason, "%s", j->reason);
    snprintf(f->f.message, sizeof f->f.message, "%s", j->msg);
    snprintf(f->f.content_hash, sizeof f->f.content_hash, "%s", j->hash);
    /* The same failure as last time changes nothing: not written, so an
     * unchanged re-run leaves the store as it was. */
    const store_failure *old = j->prev.kind == STORE_ENTRY_FAILURE ? &j->prev.fail : NULL;
    if (!old || strcmp(old->reason, f->f.reason) || strcmp(old->message, f->f.message) ||
        strcmp(old->content_hash, f->f.content_hash)) {
        f->key = j->key;
        j->key = NULL;
        p->n_pending++;
    }
    ex_release(j);
    /* Failures ride along with the next batch; a long run of bad samples
     * is written on its own so that the pending list stays bounded (the
     * writer is only used on this thread, so the encoder may be busy). */
    if (p->n_pending >= p->cfg->batch && !p->fatal) ex_write(p, 0);
}

static void ex_fail(ex_job *j, const char *reason, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void ex_fail(ex_job *j, const char *reason, const char *fmt, ...)
{
    j->reason = reason;
    int n = snprintf(j->msg, sizeof j->msg, "%s: ", j->path);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(j->msg + n, sizeof j->msg - (size_t)n, fmt, ap);
    va_end(ap);
}

static const char *ex_decode_reason(int code)
{
    switch (code) {
    case ERR_FORMAT: return "corrupt";
    case ERR_UNSUPPORTED: return "unsupported";
    case ERR_LIMIT: return "too_large";
    case ERR_NOMEM: return "out_of_memory";
    default: return "decode_error";
    }
}

/* ---- decode on the worker pool ---- */

static void ex_decode_work(uv_work_t *w)
{
    ex_job *j = w->data;
    double t0 = clock_now();
    err_t e = {0};
    if (clip_preprocess(j->data, j->len, &j->p->cfg->pre, j->pixels, &j->info, &e) != 0)
        ex_fail(j, ex_decode_reason(e.code), "%s", e.msg);
    j->t_decode = clock_now() - t0;
}

static void ex_decode_done(uv_work_t *w, int status)
{
    ex_job *j = w->data;
    ex_pipe *p = j->p;
    p->inflight--;
    p->st->t_decode += j->t_decode;
    free(j->data);
    j->data = NULL;
    if (status != 0 && !j->reason) ex_fail(j, "decode_error", "worker cancelled: %s", uv_strerror(status));
    if (j->reason) {
        ex_job_failed(j);
    } else {
        j->batch->resolved++;
        j->batch->ready++;
        j->batch->jobs[j->slot] = j;
    }
    ex_progress(p);
    ex_kick(p);
}

/* ---- reading: open, fstat, read until full, close ---- */

/* The store holds this run's embedding of the key (same model and dtype),
 * for whichever bytes it was computed from. */
static int ex_encoded_here(const ex_pipe *p, const store_entry *ent)
{
    return ent->kind == STORE_ENTRY_EMBEDDING && !strcmp(ent->rec.model, p->cfg->model_fp) &&
           ent->rec.dtype == p->cfg->dtype;
}

/* The source's stat() equals the one recorded with the embedding: its bytes
 * are taken as unchanged without reading them (unless --rehash). Records
 * without source metadata (format version 1) never match. */
static int ex_same_source(const ex_job *j, uint64_t size, int64_t mtime_ns)
{
    const store_record *r = &j->prev.rec;
    return (r->src_size | (uint64_t)r->src_mtime_ns) != 0 && r->src_size == size && r->src_mtime_ns == mtime_ns &&
           r->src_offset == j->offset;
}

static int64_t ex_ns(int64_t sec, int64_t nsec) { return sec * 1000000000LL + nsec; }

static void ex_skip_quiet(ex_job *j)
{
    ex_pipe *p = j->p;
    p->st->skipped++;
    p->inflight--;
    j->batch->resolved++;
    ex_release(j);
}

static void ex_skip(ex_job *j)
{
    ex_pipe *p = j->p;
    ex_skip_quiet(j);
    ex_progress(p);
    ex_kick(p);
}

/* Unchanged bytes under a new stat(): the stored embedding is written again
 * with the new source metadata, so that the next run need not read them. */
static void ex_copy_forward(ex_job *j)
{
    ex_pipe *p = j->p;
    if (ex_same_source(j, j->src_size, j->src_mtime_ns)) return;
    ex_pending *q = &p->pending[p->n_pending];
    memset(q, 0, sizeof *q);
    err_t e = {0};
    uint32_t dim = j->prev.rec.dim;
    if (!(q->emb = malloc((size_t)dim * sizeof *q->emb))) {
        err_set(&e, ERR_NOMEM, "record %s: cannot allocate", j->key);
        ex_set_fatal(p, &e);
        return;
    }
    if (store_lookup_embedding(p->cfg->reader, j->key, &j->prev, q->emb, dim, &e) != 0) {
        free(q->emb);
        ex_set_fatal(p, &e);
        return;
    }
    q->rec = j->prev.rec;
    q->rec.generation = p->cfg->generation;
    q->rec.src_size = j->src_size;
    q->rec.src_mtime_ns = j->src_mtime_ns;
    q->rec.src_offset = j->offset;
    q->key = j->key;
    j->key = NULL;
    p->n_pending++;
    p->st->metadata_updated++;
    if (p->n_pending >= p->cfg->batch && !p->fatal) ex_write(p, 0);
}

/* The header in front of a tar member must still name the record's key;
 * then only the member's bytes are kept. */
static void ex_check_tar_member(ex_job *j)
{
    manifest_record_t rec = {.key = j->key};
    rec.loc = (manifest_loc_t){.kind = MANIFEST_LOC_TAR, .path = j->path, .offset = j->offset, .length = j->length};
    err_t e = {0};
    if (manifest_check_tar_header(&rec, j->hdr ? j->data : NULL, &e) != 0) {
        j->reason = "tar_mismatch";
        snprintf(j->msg, sizeof j->msg, "%s", e.msg);
        return;
    }
    memmove(j->data, j->data + j->hdr, j->len - j->hdr);
    j->len -= j->hdr;
}

static void ex_after_read(ex_job *j)
{
    ex_pipe *p = j->p;
    p->st->t_read += clock_now() - j->t_start;
    if (!j->reason && j->is_tar) ex_check_tar_member(j);
    if (!j->reason) {
        hash_hex128(j->data, j->len, j->hash);
        if (ex_encoded_here(p, &j->prev) && !strcmp(j->prev.rec.content_hash, j->hash)) {
            ex_copy_forward(j);
            ex_skip(j);
            return;
        }
        if (!p->fatal) {
            j->work.data = j;
            int rc = uv_queue_work(&p->loop, &j->work, ex_decode_work, ex_decode_done);
            if (rc == 0) return;
            ex_fail(j, "decode_error", "cannot queue the decode: %s", uv_strerror(rc));
        }
    }
    p->inflight--;
    if (j->reason) {
        ex_job_failed(j);
    } else {
        j->batch->resolved++;
        ex_release(j);
    }
    ex_progress(p);
    ex_kick(p);
}

static void ex_on_close(uv_fs_t *req)
{
    uv_fs_req_cleanup(req);
    ex_after_read(req->data);
}

static void ex_close(ex_job *j)
{
    j->req.data = j;
    if (uv_fs_close(&j->p->loop, &j->req, j->fd, ex_on_close) != 0) ex_after_read(j);
}

static void ex_read_more(ex_job *j);

static void ex_on_read(uv_fs_t *req)
{
    ex_job *j = req->data;
    ssize_t r = req->result;
    uv_fs_req_cleanup(req);
    if (r < 0) ex_fail(j, "read_error", "read failed at byte %zu: %s", j->got, uv_strerror((int)r));
    else if (r == 0) ex_fail(j, "truncated", "file ended after %zu of %zu bytes", j->got, j->len);
    else j->got += (size_t)r;
    if (j->reason || j->got == j->len) ex_close(j);
    else ex_read_more(j);
}

static void ex_read_more(ex_job *j)
{
    size_t want = j->len - j->got;
    if (want > ((size_t)1 << 30)) want = (size_t)1 << 30;
    uv_buf_t buf = uv_buf_init((char *)j->data + j->got, (unsigned)want);
    j->req.data = j;
    int rc = uv_fs_read(&j->p->loop, &j->req, j->fd, &buf, 1, (int64_t)(j->offset - j->hdr + j->got), ex_on_read);
    if (rc != 0) {
        ex_fail(j, "read_error", "cannot start a read: %s", uv_strerror(rc));
        ex_close(j);
    }
}

static void ex_on_stat(uv_fs_t *req)
{
    ex_job *j = req->data;
    ex_pipe *p = j->p;
    ssize_t r = req->result;
    uint64_t size = req->statbuf.st_size, mode = req->statbuf.st_mode;
    j->src_size = size;
    j->src_mtime_ns = ex_ns(req->statbuf.st_mtim.tv_sec, req->statbuf.st_mtim.tv_nsec);
    uv_fs_req_cleanup(req);
    size_t max_bytes = p->cfg->pre.limits.max_bytes ? p->cfg->pre.limits.max_bytes : IMAGE_DEFAULT_MAX_BYTES;
    if (r < 0) {
        ex_fail(j, "read_error", "cannot stat: %s", uv_strerror((int)r));
    } else if (!S_ISREG(mode)) {
        ex_fail(j, "read_error", "not a regular file");
    } else if (j->is_tar) {
        if (j->offset > size || j->length > size - j->offset)
            ex_fail(j, "truncated", "tar member [%llu, +%llu) is beyond the end of the %llu-byte file",
                    (unsigned long long)j->offset, (unsigned long long)j->length, (unsigned long long)size);
        j->len = (size_t)j->length;
    } else {
        j->len = (size_t)size;
    }
    if (!j->reason && j->len == 0) ex_fail(j, "corrupt", "empty image");
    if (!j->reason && j->len > max_bytes)
        ex_fail(j, "too_large", "%zu bytes exceeds the limit of %zu", j->len, max_bytes);
    if (!j->reason) j->len += j->hdr;
    if (!j->reason && !(j->data = malloc(j->len)))
        ex_fail(j, "out_of_memory", "cannot allocate %zu bytes", j->len);
    if (j->reason) ex_close(j);
    else ex_read_more(j);
}

static void ex_on_open(uv_fs_t *req)
{
    ex_job *j = req->data;
    ssize_t r = req->result;
    uv_fs_req_cleanup(req);
    if (r < 0) {
        ex_fail(j, r == UV_ENOENT ? "missing" : "read_error", "cannot open: %s", uv_strerror((int)r));
        ex_after_read(j);
        return;
    }
    j->fd = (uv_file)r;
    j->req.data = j;
    int rc = uv_fs_fstat(&j->p->loop, &j->req, j->fd, ex_on_stat);
    if (rc != 0) {
        ex_fail(j, "read_error", "cannot stat: %s", uv_strerror(rc));
        ex_close(j);
    }
}

static void ex_open(ex_job *j)
{
    j->req.data = j;
    /* O_NONBLOCK: a FIFO would block a pool thread forever in open(); the
     * stat refuses it, and reads of a regular file ignore the flag. */
    int rc = uv_fs_open(&j->p->loop, &j->req, j->path, O_RDONLY | O_CLOEXEC | O_NONBLOCK, 0, ex_on_open);
    if (rc != 0) {
        ex_fail(j, "read_error", "cannot open: %s", uv_strerror(rc));
        ex_after_read(j);
    }
}

/* The skip checks' stat() calls go to the pool in groups: one pool job per
 * record would cost two thread hand-offs for a microsecond of work, which
 * dominated an unchanged re-run. */
#define EX_STAT_GROUP 64
struct ex_stat_work {
    uv_work_t work;
    ex_pipe *p;
    int n;
    ex_job *jobs[EX_STAT_GROUP];
};

static void ex_stat_work_fn(uv_work_t *w)
{
    ex_stat_work *sw = w->data;
    struct stat st;
    int ok = 0;
    for (int i = 0; i < sw->n; i++) {
        ex_job *j = sw->jobs[i];
        /* a tar's members come in a row with the tar's path: one stat() */
        if (i == 0 || strcmp(j->path, sw->jobs[i - 1]->path)) ok = stat(j->path, &st) == 0;
        j->same_source = ok && ex_same_source(j, (uint64_t)st.st_size, ex_ns(st.st_mtim.tv_sec, st.st_mtim.tv_nsec));
    }
}

static void ex_stat_done(uv_work_t *w, int status)
{
    ex_stat_work *sw = w->data;
    ex_pipe *p = sw->p;
    for (int i = 0; i < sw->n; i++) {
        ex_job *j = sw->jobs[i];
        if (status == 0 && j->same_source) {
            p->st->skipped_unread++;
            ex_skip_quiet(j);
        } else {
            ex_open(j);
        }
    }
    free(sw);
    ex_progress(p);
    ex_kick(p);
}

static void ex_stat_flush(ex_pipe *p)
{
    ex_stat_work *sw = p->stat_fill;
    if (!sw) return;
    p->stat_fill = NULL;
    sw->work.data = sw;
    if (uv_queue_work(&p->loop, &sw->work, ex_stat_work_fn, ex_stat_done) == 0) return;
    for (int i = 0; i < sw->n; i++) ex_open(sw->jobs[i]);
    free(sw);
}

/* Queue j's skip check; false when it cannot be (then it is simply read). */
static int ex_stat_add(ex_pipe *p, ex_job *j)
{
    if (!p->stat_fill && !(p->stat_fill = calloc(1, sizeof *p->stat_fill))) return 0;
    p->stat_fill->p = p;
    p->stat_fill->jobs[p->stat_fill->n++] = j;
    if (p->stat_fill->n == EX_STAT_GROUP) ex_stat_flush(p);
    return 1;
}

static int ex_batch_complete(const ex_batch *b) { return b->closed && b->resolved == b->started; }

static void ex_batch_retire(ex_pipe *p, int i)
{
    p->free_batch[p->n_free_batch++] = p->open[i];
    memmove(p->open + i, p->open + i + 1, (size_t)(p->n_open - i - 1) * sizeof *p->open);
    p->n_open--;
}

/* Complete batches whose records were all skipped or failed need no
 * forward pass. */
static void ex_retire_empty(ex_pipe *p)
{
    for (int i = 0; i < p->n_open;) {
        if (ex_batch_complete(p->open[i]) && p->open[i]->ready == 0) ex_batch_retire(p, i);
        else i++;
    }
}

/* The batch the shard's next record belongs to (a new one every B records),
 * or NULL when every batch struct is in use: the reader then waits. That
 * only happens when every open batch is closed, so each one still has a
 * record in flight or waits for the encoder, and an event comes. */
static ex_batch *ex_batch_for_next(ex_pipe *p)
{
    if (p->rec_i % p->cfg->batch != 0) return p->open[p->n_open - 1];
    if (p->n_free_batch == 0) ex_retire_empty(p);
    if (p->n_free_batch == 0) return NULL;
    ex_batch *b = p->free_batch[--p->n_free_batch];
    ex_job **jobs = b->jobs;
    memset(jobs, 0, (size_t)p->cfg->batch * sizeof *jobs);
    *b = (ex_batch){.jobs = jobs};
    p->open[p->n_open++] = b;
    return b;
}

static void ex_start(ex_pipe *p, const manifest_record_t *rec, ex_batch *b)
{
    ex_job *j = calloc(1, sizeof *j);
    char *key = strdup(rec->key), *path = strdup(rec->loc.path);
    if (!j || !key || !path) {
        free(j), free(key), free(path);
        err_t e;
        err_set(&e, ERR_NOMEM, "record %s: cannot allocate", rec->key);
        ex_set_fatal(p, &e);
        return;
    }
    j->p = p;
    j->key = key;
    j->path = path;
    j->is_tar = rec->loc.kind == MANIFEST_LOC_TAR;
    j->offset = j->is_tar ? rec->loc.offset : 0;
    j->length = rec->loc.length;
    j->hdr = j->is_tar && j->offset >= 512 ? 512 : 0;
    j->pixels = p->free_px[--p->n_free];
    j->batch = b;
    j->slot = p->rec_i % p->cfg->batch;
    if (++b->started == p->cfg->batch) b->closed = 1;
    p->rec_i++;
    j->t_start = clock_now();
    p->inflight++;
    p->st->images++;
    err_t e = {0};
    if (store_lookup(p->cfg->reader, j->key, &j->prev, &e) != 0) {
        ex_set_fatal(p, &e);
        j->prev.kind = STORE_ENTRY_NONE;
    }
    j->req.data = j;
    /* Encoded by this model before: a stat() (no open) may be enough. */
    if (ex_encoded_here(p, &j->prev) && !p->cfg->rehash && !p->fatal && ex_stat_add(p, j)) return;
    ex_open(j);
}

/* Start reads while slots are free. */
static void ex_pump(ex_pipe *p)
{
    while (!p->fatal && !p->input_done && p->n_free > 0 && p->n_pending < p->cfg->batch) {
        err_t e = {0};
        if (!p->reader) {
            ex_stat_flush(p); /* not held back while the next shard is asked for */
            int more = workq_next(p->cfg->units, &p->shard, &e);
            if (more < 0) {
                ex_set_fatal(p, &e);
                break;
            }
            if (!more) {
                p->input_done = 1;
                break;
            }
            if (json_array_append_new(p->st->shards, json_integer(p->shard)) != 0) {
                err_set(&e, ERR_NOMEM, "extract: cannot record shard %d", p->shard);
                ex_set_fatal(p, &e);
                break;
            }
            p->prog.total += manifest_shard_info(p->cfg->manifest, p->shard)->images;
            if (manifest_shard_open(&p->reader, p->cfg->manifest, p->shard, &e) != 0) {
                ex_set_fatal(p, &e);
                break;
            }
        }
        /* before the record is consumed: it cannot be put back */
        ex_batch *b = ex_batch_for_next(p);
        if (!b) break;
        manifest_record_t rec;
        int rc = manifest_shard_next(p->reader, &rec, &e);
        if (rc < 0) {
            ex_set_fatal(p, &e);
            break;
        }
        if (rc == 0) {
            /* the shard's last batch is short: close it */
            if (p->rec_i % p->cfg->batch != 0) p->open[p->n_open - 1]->closed = 1;
            else ex_batch_retire(p, p->n_open - 1); /* opened above, holds nothing */
            manifest_shard_close(p->reader);
            p->reader = NULL;
            p->rec_i = 0;
            continue;
        }
        if (strlen(rec.key) == 0 || strlen(rec.key) > STORE_MAX_KEY) {
            err_set(&e, ERR_LIMIT, "%s: shard %d: key '%.64s...' is longer than the store's %d-byte limit",
                    manifest_dir(p->cfg->manifest), p->shard, rec.key, STORE_MAX_KEY);
            ex_set_fatal(p, &e);
            break;
        }
        ex_start(p, &rec, b);
    }
    ex_stat_flush(p); /* whatever stopped the pump, no check waits for more */
}


/* ---- the encoder thread ---- */

static void ex_encoder_main(void *arg)
{
    ex_pipe *p = arg;
    for (;;) {
        uv_mutex_lock(&p->mu);
        while (!p->has_work && !p->quit) uv_cond_wait(&p->cv, &p->mu);
        if (!p->has_work) {
            uv_mutex_unlock(&p->mu);
            return;
        }
        p->has_work = 0;
        uv_mutex_unlock(&p->mu);
        err_t e = {0};
        double t0 = clock_now();
        int rc = clip_vit_forward(p->cfg->model, p->batch_in, p->cfg->batch, p->batch_out, &e);
        double dt = clock_now() - t0;
        uv_mutex_lock(&p->mu);
        p->enc_rc = rc;
        p->enc_err = e;
        p->enc_time = dt;
        p->done = 1;
        uv_mutex_unlock(&p->mu);
        uv_async_send(&p->async);
    }
}

static void ex_on_encoded(uv_async_t *a)
{
    ex_pipe *p = a->data;
    uv_mutex_lock(&p->mu);
    int done = p->done, rc = p->enc_rc;
    err_t e = p->enc_err;
    p->done = 0;
    p->st->t_encode += done ? p->enc_time : 0;
    uv_mutex_unlock(&p->mu);
    if (!done) return;
    if (rc) {
        err_wrap(&e, "encoding a batch of %d images", p->n_items);
        ex_set_fatal(p, &e);
    } else if (ex_write(p, (size_t)p->n_items) == 0) {
        p->st->encoded += (uint64_t)p->n_items;
        p->st->batches++;
    }
    for (int i = 0; i < p->n_items; i++) free(p->items[i].key);
    p->n_items = 0;
    p->enc_busy = 0;
    ex_progress(p);
    ex_kick(p);
}

/* Retire complete batches with nothing to encode, then hand the oldest
 * complete batch to the encoder: ready rows copied, the others zeroed. */
static void ex_dispatch(ex_pipe *p)
{
    const int B = p->cfg->batch;
    ex_retire_empty(p);
    if (p->enc_busy || p->fatal) return;
    int i = 0;
    while (i < p->n_open && !ex_batch_complete(p->open[i])) i++;
    if (i == p->n_open) return;
    ex_batch *b = p->open[i];
    const size_t row_bytes = p->px_floats * sizeof(float);
    int n = 0;
    for (int r = 0; r < B; r++) {
        ex_job *j = b->jobs[r];
        float *dst = p->batch_in + (size_t)r * p->px_floats;
        if (!j) {
            memset(dst, 0, row_bytes);
            continue;
        }
        memcpy(dst, j->pixels, row_bytes);
        ex_item *it = &p->items[n++];
        it->key = j->key;
        j->key = NULL;
        memcpy(it->hash, j->hash, 33);
        it->width = j->info.width;
        it->height = j->info.height;
        it->row = r;
        it->src_size = j->src_size;
        it->src_mtime_ns = j->src_mtime_ns;
        it->src_offset = j->offset;
        ex_release(j);
    }
    ex_batch_retire(p, i);
    p->n_items = n;
    p->enc_busy = 1;
    uv_mutex_lock(&p->mu);
    p->has_work = 1;
    uv_cond_signal(&p->cv);
    uv_mutex_unlock(&p->mu);
}

/* After a fatal error: drop every ready record still waiting in a batch. */
static void ex_drop_batches(ex_pipe *p)
{
    while (p->n_open > 0) {
        ex_batch *b = p->open[p->n_open - 1];
        for (int r = 0; r < p->cfg->batch; r++)
            if (b->jobs[r]) ex_release(b->jobs[r]);
        ex_batch_retire(p, p->n_open - 1);
    }
}

static void ex_maybe_finish(ex_pipe *p)
{
    if (p->closing || !(p->input_done || p->fatal) || p->inflight > 0 || p->enc_busy) return;
    if (p->fatal) ex_drop_batches(p);
    if (p->n_open > 0) return;
    if (!p->fatal) ex_write(p, 0);
    p->closing = 1;
    uv_close((uv_handle_t *)&p->async, NULL);
}

static void ex_kick(ex_pipe *p)
{
    if (p->closing) return;
    ex_dispatch(p);
    ex_pump(p);
    ex_dispatch(p); /* the input may have just ended */
    ex_maybe_finish(p);
}

/* ---- setup ---- */

static void ex_free(ex_pipe *p)
{
    manifest_shard_close(p->reader);
    ex_free_pending(p);
    for (int i = 0; i < p->n_items; i++) free(p->items[i].key);
    free(p->pending);
    free(p->batch_mem);
    free(p->open);
    free(p->free_batch);
    free(p->job_mem);
    free(p->slot_mem);
    free(p->free_px);
    free(p->batch_in);
    free(p->batch_out);
    free(p->items);
    free(p->recs);
    free(p->puts);
}

void extract_stats_free(extract_stats *st)
{
    json_decref(st->failures_by_reason);
    json_decref(st->failures);
    json_decref(st->shards);
    st->failures_by_reason = st->failures = st->shards = NULL;
}

int extract_run(const extract_cfg *cfg, extract_stats *st, err_t *e)
{
    memset(st, 0, sizeof *st);
    st->failures_by_reason = json_object();
    st->failures = json_array();
    st->shards = json_array();
    if (cfg->batch < 1) return err_set(e, ERR_ARG, "extract: batch %d must be >= 1", cfg->batch);
    ex_pipe *p = calloc(1, sizeof *p);
    if (!p || !st->failures_by_reason || !st->failures || !st->shards) {
        free(p);
        return err_set(e, ERR_NOMEM, "extract: cannot allocate the pipeline");
    }
    p->cfg = cfg;
    p->st = st;
    int S = clip_vit_image_size(cfg->model), D = clip_vit_embed_dim(cfg->model);
    int slots = cfg->slots > 0 ? cfg->slots : 2 * cfg->batch + 16;
    if (slots < cfg->batch) slots = cfg->batch; /* a full batch must fit */
    p->px_floats = (size_t)3 * S * S;
    p->slot_mem = malloc((size_t)slots * p->px_floats * sizeof(float));
    p->free_px = malloc((size_t)slots * sizeof *p->free_px);
    p->batch_in = malloc((size_t)cfg->batch * p->px_floats * sizeof(float));
    p->batch_out = malloc((size_t)cfg->batch * D * sizeof(float));
    p->items = calloc((size_t)cfg->batch, sizeof *p->items);
    p->recs = calloc((size_t)cfg->batch, sizeof *p->recs);
    /* Pending failures are flushed at `batch`; after a failed flush the
     * slots still in flight may fail too, hence the extra room. */
    size_t pending_cap = (size_t)cfg->batch + (size_t)slots;
    p->puts = calloc((size_t)cfg->batch + pending_cap, sizeof *p->puts);
    p->pending = calloc(pending_cap, sizeof *p->pending);
    /* Open batches: the one being filled plus about two full batches of
     * slots waiting to be encoded (B pointers each, so not one per slot). */
    p->n_batch_cap = slots / cfg->batch + 2;
    p->batch_mem = calloc((size_t)p->n_batch_cap, sizeof *p->batch_mem);
    p->open = calloc((size_t)p->n_batch_cap, sizeof *p->open);
    p->free_batch = calloc((size_t)p->n_batch_cap, sizeof *p->free_batch);
    p->job_mem = calloc((size_t)p->n_batch_cap * (size_t)cfg->batch, sizeof *p->job_mem);
    if (!p->slot_mem || !p->free_px || !p->batch_in || !p->batch_out || !p->items || !p->recs || !p->puts ||
        !p->pending || !p->batch_mem || !p->open || !p->free_batch || !p->job_mem) {
        ex_free(p);
        free(p);
        return err_set(e, ERR_NOMEM, "extract: cannot allocate %d image slots of %dx%d", slots, S, S);
    }
    for (int i = 0; i < slots; i++) p->free_px[i] = p->slot_mem + (size_t)i * p->px_floats;
    p->n_free = slots;
    for (int i = 0; i < p->n_batch_cap; i++) {
        p->batch_mem[i].jobs = p->job_mem + (size_t)i * cfg->batch;
        p->free_batch[i] = &p->batch_mem[i];
    }
    p->n_free_batch = p->n_batch_cap;
    /* the total grows as shards are taken: the ETA is that of the work in hand */
    progress_start(&p->prog, "extract", "img", 0);
    double t0 = clock_now();
    int rc = uv_loop_init(&p->loop), stage = 0;
    if (rc == 0 && ++stage && (rc = uv_mutex_init(&p->mu)) == 0 && ++stage && (rc = uv_cond_init(&p->cv)) == 0 &&
        ++stage && (rc = uv_async_init(&p->loop, &p->async, ex_on_encoded)) == 0 && ++stage)
        rc = uv_thread_create(&p->thread, ex_encoder_main, p);
    if (rc == 0) {
        p->async.data = p;
        ex_kick(p);
        uv_run(&p->loop, UV_RUN_DEFAULT);
        uv_mutex_lock(&p->mu);
        p->quit = 1;
        uv_cond_signal(&p->cv);
        uv_mutex_unlock(&p->mu);
        uv_thread_join(&p->thread);
    } else {
        err_t te;
        err_set(&te, ERR_INTERNAL, "extract: cannot start the event loop or the encoder thread: %s", uv_strerror(rc));
        ex_set_fatal(p, &te);
        if (stage >= 4) {
            uv_close((uv_handle_t *)&p->async, NULL);
            uv_run(&p->loop, UV_RUN_DEFAULT);
        }
    }
    if (stage >= 3) uv_cond_destroy(&p->cv);
    if (stage >= 2) uv_mutex_destroy(&p->mu);
    if (stage >= 1) uv_loop_close(&p->loop);
    st->t_wall = clock_now() - t0;
    progress_finish(&p->prog);
    rc = p->fatal;
    if (rc && e) *e = p->err;
    ex_free(p);
    free(p);
    return rc;
}
