#include "caption/caption_sink.h"
#include "core/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

/* A frame larger than this is not one of ours: treated as corrupt. */
#define SINK_MAX_FRAME_CONTENT ((unsigned long long)1 << 30)

struct caption_sink {
    int fd;
    int level;
    ZSTD_CCtx *cctx;
    char *pending; /* lines waiting for the next commit */
    size_t pending_len, pending_cap;
    uint8_t *frame; /* compressed frame buffer */
    size_t frame_cap;
    uint64_t size; /* committed file length */
    uint64_t frames, cut;
    char path[4096];
};

/* Size of the complete, valid frame at p (0 if there is none: the torn
 * tail). Its lines go to on_line. */
static int sink_scan_frame(caption_sink *s, ZSTD_DCtx *dctx, const uint8_t *p, size_t avail, uint8_t **buf,
                           size_t *cap, caption_sink_line_fn on_line, void *ctx, size_t *used, err_t *e)
{
    *used = 0;
    size_t fsize = ZSTD_findFrameCompressedSize(p, avail);
    if (ZSTD_isError(fsize)) return 0;
    unsigned long long content = ZSTD_getFrameContentSize(p, fsize);
    if (content == ZSTD_CONTENTSIZE_UNKNOWN || content == ZSTD_CONTENTSIZE_ERROR || content == 0 ||
        content > SINK_MAX_FRAME_CONTENT)
        return 0;
    if (content + 1 > *cap) {
        uint8_t *nb = realloc(*buf, (size_t)content + 1);
        if (!nb) return err_set(e, ERR_NOMEM, "%s: out of memory for a %llu-byte frame", s->path, content);
        *buf = nb;
        *cap = (size_t)content + 1;
    }
    size_t got = ZSTD_decompressDCtx(dctx, *buf, *cap, p, fsize);
    if (ZSTD_isError(got) || got != content || (*buf)[got - 1] != '\n') return 0;
    (*buf)[got] = 0;
    char *line = (char *)*buf;
    while (on_line && line < (char *)*buf + got) {
        char *nl = strchr(line, '\n');
        *nl = 0;
        int rc = on_line(ctx, line, (size_t)(nl - line), e);
        if (rc) return rc;
        line = nl + 1;
    }
    *used = fsize;
    return 0;
}

/* Keep the complete frames of the existing file, cut the rest. */
static int sink_recover(caption_sink *s, caption_sink_line_fn on_line, void *ctx, err_t *e)
{
    uint8_t *data = NULL, *buf = NULL;
    size_t len = 0, cap = 0, pos = 0;
    int rc = fs_read_all(s->path, &data, &len, e);
    if (rc) return rc;
    ZSTD_DCtx *dctx = ZSTD_createDCtx();
    if (!dctx) rc = err_set(e, ERR_NOMEM, "%s: cannot allocate zstd context", s->path);
    while (!rc && pos < len) {
        size_t used = 0;
        rc = sink_scan_frame(s, dctx, data + pos, len - pos, &buf, &cap, on_line, ctx, &used, e);
        if (rc || !used) break;
        pos += used;
        s->frames++;
    }
    ZSTD_freeDCtx(dctx);
    free(buf);
    free(data);
    if (rc) return rc;
    s->size = pos;
    if (pos < len) {
        s->cut = len - pos;
        log_msg(LOG_WARN, "%s: cut %zu bytes of an unfinished frame after %llu complete ones", s->path, len - pos,
                (unsigned long long)s->frames);
        if (ftruncate(s->fd, (off_t)pos) != 0 || fsync(s->fd) != 0)
            return err_set(e, ERR_IO, "%s: cannot cut the torn tail: %s", s->path, strerror(errno));
    }
    return 0;
}

int caption_sink_open(caption_sink **out, const char *path, int level, caption_sink_line_fn on_line, void *ctx,
                      err_t *e)
{
    *out = NULL;
    caption_sink *s = calloc(1, sizeof *s);
    if (!s) return err_set(e, ERR_NOMEM, "%s: cannot allocate a writer", path);
    s->fd = -1;
    s->level = level;
    if (snprintf(s->path, sizeof s->path, "%s", path) >= (int)sizeof s->path) {
        free(s);
        return err_set(e, ERR_ARG, "%s: path too long", path);
    }
    int existed = fs_exists(path);
    int rc = 0;
    s->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (s->fd < 0) rc = err_set(e, ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (!rc && existed) rc = sink_recover(s, on_line, ctx, e);
    if (!rc && !existed) rc = fs_fsync_dir_of(path, e);
    if (!rc && lseek(s->fd, (off_t)s->size, SEEK_SET) < 0)
        rc = err_set(e, ERR_IO, "%s: seek failed: %s", path, strerror(errno));
    if (!rc) {
        s->cctx = ZSTD_createCCtx();
        if (!s->cctx) rc = err_set(e, ERR_NOMEM, "%s: cannot allocate zstd context", path);
    }
    if (!rc) {
        size_t zr = ZSTD_CCtx_setParameter(s->cctx, ZSTD_c_compressionLevel, level);
        if (!ZSTD_isError(zr)) zr = ZSTD_CCtx_setParameter(s->cctx, ZSTD_c_checksumFlag, 1);
        if (!ZSTD_isError(zr)) zr = ZSTD_CCtx_setParameter(s->cctx, ZSTD_c_contentSizeFlag, 1);
        if (ZSTD_isError(zr)) rc = err_set(e, ERR_ARG, "%s: zstd level %d: %s", path, level, ZSTD_getErrorName(zr));
    }
    if (rc) {
        caption_sink_close(s);
        return rc;
    }
    *out = s;
    return 0;
}

uint64_t caption_sink_recovered_frames(const caption_sink *s) { return s->frames; }
uint64_t caption_sink_cut_bytes(const caption_sink *s) { return s->cut; }

int caption_sink_add(caption_sink *s, const char *line, size_t len, err_t *e)
{
    if (memchr(line, '\n', len)) return err_set(e, ERR_INTERNAL, "%s: a line holds a newline", s->path);
    if (s->pending_len + len + 1 > s->pending_cap) {
        size_t cap = s->pending_cap ? s->pending_cap : 4096;
        while (cap < s->pending_len + len + 1) cap *= 2;
        char *p = realloc(s->pending, cap);
        if (!p) return err_set(e, ERR_NOMEM, "%s: out of memory for %zu buffered bytes", s->path, cap);
        s->pending = p;
        s->pending_cap = cap;
    }
    memcpy(s->pending + s->pending_len, line, len);
    s->pending[s->pending_len + len] = '\n';
    s->pending_len += len + 1;
    return 0;
}

int caption_sink_commit(caption_sink *s, err_t *e)
{
    if (!s->pending_len) return 0;
    size_t bound = ZSTD_compressBound(s->pending_len);
    if (bound > s->frame_cap) {
        uint8_t *f = realloc(s->frame, bound);
        if (!f) return err_set(e, ERR_NOMEM, "%s: out of memory for a %zu-byte frame", s->path, bound);
        s->frame = f;
        s->frame_cap = bound;
    }
    size_t n = ZSTD_compress2(s->cctx, s->frame, s->frame_cap, s->pending, s->pending_len);
    if (ZSTD_isError(n)) return err_set(e, ERR_INTERNAL, "%s: zstd: %s", s->path, ZSTD_getErrorName(n));
    int rc = fs_write_full(s->fd, s->frame, n, s->path, e);
    if (!rc && fdatasync(s->fd) != 0) rc = err_set(e, ERR_IO, "%s: fdatasync failed: %s", s->path, strerror(errno));
    if (rc) {
        /* A half-written frame would hide every later one from recovery. */
        if (ftruncate(s->fd, (off_t)s->size) != 0 || lseek(s->fd, (off_t)s->size, SEEK_SET) < 0)
            log_msg(LOG_WARN, "%s: cannot cut a failed write back: %s", s->path, strerror(errno));
        return rc;
    }
    s->size += n;
    s->frames++;
    s->pending_len = 0;
    return 0;
}

void caption_sink_close(caption_sink *s)
{
    if (!s) return;
    if (s->fd >= 0) close(s->fd);
    ZSTD_freeCCtx(s->cctx);
    free(s->pending);
    free(s->frame);
    free(s);
}
