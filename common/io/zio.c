#include "io/zio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zstd.h>

#include "core/fsutil.h"

struct zio_writer {
    int fd;
    ZSTD_CCtx *cctx;
    uint8_t *out;
    size_t out_cap;
    char path[4096];
    char tmp[4200];
};

static int zio_writer_create(zio_writer **wp, const char *path, int compress, int level, err_t *e)
{
    *wp = NULL;
    zio_writer *w = calloc(1, sizeof *w);
    if (!w) return err_set(e, ERR_NOMEM, "%s: cannot allocate writer", path);
    w->fd = -1;
    if (snprintf(w->path, sizeof w->path, "%s", path) >= (int)sizeof w->path) {
        free(w);
        return err_set(e, ERR_ARG, "%s: path too long", path);
    }
    if (compress) {
        w->out_cap = ZSTD_CStreamOutSize();
        w->out = malloc(w->out_cap);
        w->cctx = ZSTD_createCCtx();
        if (!w->out || !w->cctx) {
            zio_writer_abort(w);
            return err_set(e, ERR_NOMEM, "%s: cannot allocate zstd context", path);
        }
        size_t zr = ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_compressionLevel, level);
        if (!ZSTD_isError(zr)) zr = ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_checksumFlag, 1);
        if (ZSTD_isError(zr)) {
            zio_writer_abort(w);
            return err_set(e, ERR_ARG, "%s: zstd level %d: %s", path, level, ZSTD_getErrorName(zr));
        }
    }
    int rc = fs_tmp_create(path, w->tmp, sizeof w->tmp, &w->fd, e);
    if (rc) {
        zio_writer_abort(w);
        return rc;
    }
    *wp = w;
    return 0;
}

int zio_writer_open(zio_writer **w, const char *path, int level, err_t *e)
{
    return zio_writer_create(w, path, 1, level, e);
}

int zio_writer_open_raw(zio_writer **w, const char *path, err_t *e)
{
    return zio_writer_create(w, path, 0, 0, e);
}

/* Feed input (possibly empty) with the given directive and write out all
 * compressed output; for ZSTD_e_end, loop until the frame is complete. */
static int zio_pump(zio_writer *w, const void *data, size_t len, ZSTD_EndDirective mode, err_t *e)
{
    if (!w->cctx) return fs_write_full(w->fd, data, len, w->tmp, e);
    ZSTD_inBuffer in = {data, len, 0};
    for (;;) {
        ZSTD_outBuffer out = {w->out, w->out_cap, 0};
        size_t left = ZSTD_compressStream2(w->cctx, &out, &in, mode);
        if (ZSTD_isError(left)) return err_set(e, ERR_INTERNAL, "%s: zstd: %s", w->path, ZSTD_getErrorName(left));
        int rc = fs_write_full(w->fd, w->out, out.pos, w->tmp, e);
        if (rc) return rc;
        if (mode == ZSTD_e_end ? left == 0 : in.pos == in.size) return 0;
    }
}

int zio_write(zio_writer *w, const void *data, size_t len, err_t *e)
{
    return zio_pump(w, data, len, ZSTD_e_continue, e);
}

int zio_writer_commit(zio_writer *w, err_t *e)
{
    int rc = zio_pump(w, NULL, 0, ZSTD_e_end, e);
    if (rc) {
        zio_writer_abort(w);
        return rc;
    }
    rc = fs_tmp_commit(w->fd, w->tmp, w->path, e);
    ZSTD_freeCCtx(w->cctx);
    free(w->out);
    free(w);
    return rc;
}

void zio_writer_abort(zio_writer *w)
{
    if (!w) return;
    if (w->fd >= 0) close(w->fd);
    unlink(w->tmp);
    ZSTD_freeCCtx(w->cctx);
    free(w->out);
    free(w);
}

/* Records are lines of JSON or TSV; a "line" this long means the file is not
 * what the caller thinks it is, and growing the buffer further only delays
 * running out of memory. */
#define ZIO_MAX_LINE ((size_t)256 << 20)

struct zio_reader {
    int fd;
    ZSTD_DCtx *dctx;
    uint8_t *in;
    size_t in_cap;
    ZSTD_inBuffer zin;
    size_t frame_left; /* last ZSTD_decompressStream hint: 0 = at a frame boundary */
    int eof;           /* input exhausted */
    int started;       /* any compressed byte seen */
    uint8_t *buf;      /* decompressed bytes not yet returned */
    size_t buf_start, buf_len, buf_cap;
    char path[4096];
};

int zio_reader_open(zio_reader **rp, const char *path, err_t *e)
{
    *rp = NULL;
    zio_reader *r = calloc(1, sizeof *r);
    if (!r) return err_set(e, ERR_NOMEM, "%s: cannot allocate reader", path);
    snprintf(r->path, sizeof r->path, "%s", path);
    r->in_cap = ZSTD_DStreamInSize();
    r->in = malloc(r->in_cap);
    r->buf_cap = ZSTD_DStreamOutSize() * 2;
    r->buf = malloc(r->buf_cap);
    r->dctx = ZSTD_createDCtx();
    r->fd = -1;
    if (!r->in || !r->buf || !r->dctx) {
        zio_reader_close(r);
        return err_set(e, ERR_NOMEM, "%s: cannot allocate zstd context", path);
    }
    r->zin.src = r->in;
    r->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (r->fd < 0) {
        int rc = err_set(e, ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        zio_reader_close(r);
        return rc;
    }
    *rp = r;
    return 0;
}

/* Decompress more bytes onto the end of buf. Returns 1 when bytes were
 * added, 0 at a clean end of input, <0 on error. */
static int zio_fill(zio_reader *r, err_t *e)
{
    for (;;) {
        if (r->zin.pos == r->zin.size && !r->eof) {
            ssize_t n;
            do n = read(r->fd, r->in, r->in_cap);
            while (n < 0 && errno == EINTR);
            if (n < 0) return err_set(e, ERR_IO, "%s: read failed: %s", r->path, strerror(errno));
            if (n == 0) r->eof = 1;
            else r->started = 1;
            r->zin.size = (size_t)n;
            r->zin.pos = 0;
        }
        if (r->zin.pos == r->zin.size && r->eof) {
            if (!r->started) return err_set(e, ERR_FORMAT, "%s: empty file, not a zstd stream", r->path);
            if (r->frame_left != 0)
                return err_set(e, ERR_FORMAT, "%s: truncated zstd stream (file ends inside a frame)", r->path);
            return 0;
        }
        /* Compact, then make room for one full output block. */
        if (r->buf_start > 0) {
            memmove(r->buf, r->buf + r->buf_start, r->buf_len);
            r->buf_start = 0;
        }
        size_t want = r->buf_len + ZSTD_DStreamOutSize() + 1;
        if (want > r->buf_cap) {
            size_t cap = r->buf_cap * 2 > want ? r->buf_cap * 2 : want;
            uint8_t *nb = realloc(r->buf, cap);
            if (!nb) return err_set(e, ERR_NOMEM, "%s: line buffer of %zu bytes", r->path, cap);
            r->buf = nb;
            r->buf_cap = cap;
        }
        ZSTD_outBuffer out = {r->buf + r->buf_len, r->buf_cap - r->buf_len - 1, 0};
        size_t hint = ZSTD_decompressStream(r->dctx, &out, &r->zin);
        if (ZSTD_isError(hint))
            return err_set(e, ERR_FORMAT, "%s: corrupt zstd stream: %s", r->path, ZSTD_getErrorName(hint));
        r->frame_left = hint;
        r->buf_len += out.pos;
        if (out.pos > 0) return 1;
    }
}

int zio_read_line(zio_reader *r, const char **line, size_t *len, err_t *e)
{
    size_t scanned = 0;
    for (;;) {
        uint8_t *start = r->buf + r->buf_start;
        uint8_t *nl = memchr(start + scanned, '\n', r->buf_len - scanned);
        if (nl) {
            size_t n = (size_t)(nl - start);
            *nl = 0;
            *line = (const char *)start;
            *len = n;
            r->buf_start += n + 1;
            r->buf_len -= n + 1;
            return 1;
        }
        scanned = r->buf_len;
        if (scanned > ZIO_MAX_LINE)
            return err_set(e, ERR_LIMIT, "%s: a line longer than %zu bytes", r->path, ZIO_MAX_LINE);
        int rc = zio_fill(r, e);
        if (rc < 0) return rc;
        if (rc == 0) {
            if (r->buf_len == 0) return 0;
            /* zio_fill keeps one spare byte for this terminator. */
            start = r->buf + r->buf_start;
            start[r->buf_len] = 0;
            *line = (const char *)start;
            *len = r->buf_len;
            r->buf_start += r->buf_len;
            r->buf_len = 0;
            return 1;
        }
    }
}

void zio_reader_close(zio_reader *r)
{
    if (!r) return;
    if (r->fd >= 0) close(r->fd);
    ZSTD_freeDCtx(r->dctx);
    free(r->in);
    free(r->buf);
    free(r);
}

int zio_read_all(const char *path, uint8_t **data, size_t *len, err_t *e)
{
    *data = NULL;
    *len = 0;
    zio_reader *r;
    int rc = zio_reader_open(&r, path, e);
    if (rc) return rc;
    while ((rc = zio_fill(r, e)) > 0) {}
    if (rc == 0) {
        /* buf_start is 0: zio_fill compacts before every decompression. */
        r->buf[r->buf_len] = 0;
        *data = r->buf;
        *len = r->buf_len;
        r->buf = NULL;
    }
    zio_reader_close(r);
    return rc;
}
