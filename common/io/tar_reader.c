#include "io/tar_reader.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/fsutil.h"

/* Pax and GNU long-name payloads are names and a few numbers; anything this
 * large is corrupt. */
#define TAR_MAX_META (1u << 20)

struct tar_reader {
    int fd;              /* -1 when reading from buf */
    const uint8_t *buf;
    uint64_t file_size;
    uint64_t pos;        /* offset of the next header */
    int done;
    char path[1024];
};

static int tar_open_common(tar_reader **rp, int fd, const uint8_t *buf, uint64_t size, const char *path, err_t *e)
{
    tar_reader *r = calloc(1, sizeof *r);
    if (!r) return err_set(e, ERR_NOMEM, "%s: cannot allocate reader", path);
    r->fd = fd;
    r->buf = buf;
    r->file_size = size;
    snprintf(r->path, sizeof r->path, "%s", path);
    *rp = r;
    return 0;
}

int tar_open(tar_reader **rp, const char *path, err_t *e)
{
    *rp = NULL;
    int fd;
    uint64_t size;
    int rc = fs_open_regular(path, &fd, &size, e);
    if (rc) return rc;
    rc = tar_open_common(rp, fd, NULL, size, path, e);
    if (rc) close(fd);
    return rc;
}

int tar_open_buffer(tar_reader **rp, const uint8_t *data, size_t len, const char *name, err_t *e)
{
    *rp = NULL;
    return tar_open_common(rp, -1, data, len, name ? name : "<buffer>", e);
}

void tar_close(tar_reader *r)
{
    if (!r) return;
    if (r->fd >= 0) close(r->fd);
    free(r);
}

/* Read exactly n bytes at off; the caller has checked off + n <= file_size,
 * so a short read means the file changed underneath us. */
static int tar_pread(tar_reader *r, uint64_t off, void *dst, size_t n, err_t *e)
{
    if (r->fd < 0) {
        memcpy(dst, r->buf + off, n);
        return 0;
    }
    return fs_pread_exact(r->fd, dst, n, off, r->path, e);
}

/* Octal (NUL/space terminated) or GNU base-256 (high bit of the first byte). */
static int tar_number(const uint8_t *f, size_t n, uint64_t *out)
{
    uint64_t v = 0;
    if (f[0] & 0x80) {
        if (f[0] & 0x40) return -1; /* negative */
        v = f[0] & 0x3f;
        for (size_t i = 1; i < n; i++) {
            if (v >> 56) return -1;
            v = v << 8 | f[i];
        }
        *out = v;
        return 0;
    }
    size_t i = 0;
    while (i < n && f[i] == ' ') i++;
    int digits = 0;
    for (; i < n && f[i] >= '0' && f[i] <= '7'; i++, digits++) {
        if (v >> 61) return -1;
        v = v << 3 | (uint64_t)(f[i] - '0');
    }
    for (; i < n; i++)
        if (f[i] != ' ' && f[i] != 0) return -1;
    *out = v;
    return digits ? 0 : (f[0] == 0 || f[0] == 0x20 ? 0 : -1);
}

static int tar_checksum_ok(const uint8_t *h)
{
    uint64_t want;
    if (tar_number(h + 148, 8, &want)) return 0;
    uint64_t us = 0;
    int64_t ss = 0;
    for (int i = 0; i < 512; i++) {
        uint8_t c = (i >= 148 && i < 156) ? ' ' : h[i];
        us += c;
        ss += (int8_t)c;
    }
    /* Some old writers summed signed chars. */
    return us == want || (uint64_t)ss == want;
}

static int tar_is_zero(const uint8_t *h)
{
    for (int i = 0; i < 512; i++)
        if (h[i]) return 0;
    return 1;
}

/* Copy a field that may lack its NUL. */
static void tar_field(char *dst, const uint8_t *src, size_t n)
{
    size_t k = 0;
    while (k < n && src[k]) k++;
    memcpy(dst, src, k);
    dst[k] = 0;
}

static int tar_set_name(tar_reader *r, char *dst, const char *src, size_t n, err_t *e)
{
    if (n >= sizeof ((tar_member *)0)->name)
        return err_set(e, ERR_LIMIT, "%s: member name of %zu bytes at byte %llu (at most %zu)", r->path, n,
                       (unsigned long long)r->pos, sizeof ((tar_member *)0)->name - 1);
    memcpy(dst, src, n);
    dst[n] = 0;
    return 0;
}

/* Apply the records "LEN key=value\n" of a pax header: path and size. */
static int tar_parse_pax(tar_reader *r, const char *p, size_t n, char *name, int *has_name, uint64_t *size, int *has_size, err_t *e)
{
    size_t i = 0;
    while (i < n) {
        size_t len = 0, j = i;
        while (j < n && p[j] >= '0' && p[j] <= '9' && len < n) len = len * 10 + (size_t)(p[j++] - '0');
        if (j == i || j >= n || p[j] != ' ' || len < (j - i) + 3 || len > n - i || p[i + len - 1] != '\n')
            return err_set(e, ERR_FORMAT, "%s: malformed pax record at byte %llu", r->path, (unsigned long long)r->pos);
        const char *kv = p + j + 1, *end = p + i + len - 1;
        const char *eq = memchr(kv, '=', (size_t)(end - kv));
        if (!eq) return err_set(e, ERR_FORMAT, "%s: pax record without '=' at byte %llu", r->path, (unsigned long long)r->pos);
        size_t klen = (size_t)(eq - kv), vlen = (size_t)(end - eq - 1);
        if (klen == 4 && !memcmp(kv, "path", 4)) {
            int rc = tar_set_name(r, name, eq + 1, vlen, e);
            if (rc) return rc;
            *has_name = 1;
        } else if (klen == 4 && !memcmp(kv, "size", 4)) {
            uint64_t v = 0;
            if (vlen == 0 || vlen > 19) return err_set(e, ERR_FORMAT, "%s: bad pax size at byte %llu", r->path, (unsigned long long)r->pos);
            for (size_t k = 0; k < vlen; k++) {
                char c = eq[1 + k];
                if (c < '0' || c > '9') return err_set(e, ERR_FORMAT, "%s: bad pax size at byte %llu", r->path, (unsigned long long)r->pos);
                v = v * 10 + (uint64_t)(c - '0');
            }
            *size = v;
            *has_size = 1;
        }
        i += len;
    }
    return 0;
}

int tar_parse_header(const uint8_t h[512], uint64_t pos, const char *path, tar_member *m, int *name_whole, err_t *e)
{
    char hname[101];
    tar_field(hname, h, 100);
    if (!tar_checksum_ok(h))
        return err_set(e, ERR_FORMAT, "%s: member '%s': bad header checksum at byte %llu", path, hname,
                       (unsigned long long)pos);
    if (tar_number(h + 124, 12, &m->size))
        return err_set(e, ERR_FORMAT, "%s: member '%s': bad size field at byte %llu", path, hname,
                       (unsigned long long)pos);
    m->type = h[156] ? (char)h[156] : '0';
    m->data_offset = pos + 512;
    /* ustar splits long names into prefix "/" name; GNU's magic "ustar  "
     * uses that area for other fields. */
    int prefixed = !memcmp(h + 257, "ustar\0", 6) && h[345];
    if (prefixed) {
        char prefix[156];
        tar_field(prefix, h + 345, 155);
        snprintf(m->name, sizeof m->name, "%s/%s", prefix, hname);
    } else {
        memcpy(m->name, hname, strlen(hname) + 1);
    }
    *name_whole = prefixed || memchr(h, 0, 100) != NULL;
    return 0;
}

int tar_next(tar_reader *r, tar_member *m, err_t *e)
{
    char long_name[sizeof m->name];
    int has_name = 0, has_size = 0;
    uint64_t pax_size = 0;
    if (r->done) return 0;
    for (;;) {
        uint8_t h[512];
        if (r->pos == r->file_size || r->file_size - r->pos < 512) {
            if (r->pos == r->file_size && !has_name && !has_size)
                return err_set(e, ERR_FORMAT, "%s: ends at byte %llu without the end-of-archive marker (truncated)", r->path,
                               (unsigned long long)r->pos);
            return err_set(e, ERR_FORMAT, "%s: truncated header at byte %llu", r->path, (unsigned long long)r->pos);
        }
        int rc = tar_pread(r, r->pos, h, 512, e);
        if (rc) return rc;
        if (tar_is_zero(h)) {
            if (has_name || has_size)
                return err_set(e, ERR_FORMAT, "%s: end of archive right after an extended header at byte %llu", r->path,
                               (unsigned long long)r->pos);
            r->done = 1;
            return 0;
        }
        int whole;
        if ((rc = tar_parse_header(h, r->pos, r->path, m, &whole, e)) != 0) return rc;
        uint64_t size = m->size;
        char type = m->type;
        if (has_size && type != 'x' && type != 'L' && type != 'g' && type != 'K') size = pax_size;
        uint64_t data_off = r->pos + 512;
        if (size > r->file_size - data_off)
            return err_set(e, ERR_FORMAT, "%s: member '%s': truncated (%llu bytes declared, %llu left in the file)", r->path,
                           has_name ? long_name : m->name, (unsigned long long)size, (unsigned long long)(r->file_size - data_off));
        uint64_t next = data_off + ((size + 511) & ~(uint64_t)511);
        if (next > r->file_size) next = r->file_size; /* the last member's padding may be missing; the next read says so */
        if (type == 'x' || type == 'L' || type == 'g' || type == 'K') {
            if (size > TAR_MAX_META)
                return err_set(e, ERR_FORMAT, "%s: extended header of %llu bytes at byte %llu", r->path, (unsigned long long)size,
                               (unsigned long long)r->pos);
            char *meta = malloc((size_t)size + 1);
            if (!meta) return err_set(e, ERR_NOMEM, "%s: extended header", r->path);
            rc = tar_pread(r, data_off, meta, (size_t)size, e);
            if (!rc && type == 'x') rc = tar_parse_pax(r, meta, (size_t)size, long_name, &has_name, &pax_size, &has_size, e);
            if (!rc && type == 'L') {
                meta[size] = 0;
                rc = tar_set_name(r, long_name, meta, strlen(meta), e);
                has_name = 1;
            }
            free(meta);
            if (rc) return rc;
            r->pos = next;
            continue;
        }
        if (has_name) memcpy(m->name, long_name, strlen(long_name) + 1);
        /* Directories end in '/' on disk; report them as tarfile does. */
        if (type == '5') {
            size_t nl = strlen(m->name);
            while (nl > 1 && m->name[nl - 1] == '/') m->name[--nl] = 0;
        }
        m->size = size;
        r->pos = next;
        return 1;
    }
}

int tar_read_range(const char *path, uint64_t offset, uint64_t size, uint8_t **data, err_t *e)
{
    *data = NULL;
    if (size > SIZE_MAX - 1) return err_set(e, ERR_LIMIT, "%s: range of %llu bytes", path, (unsigned long long)size);
    int fd;
    uint64_t file_size;
    int rc = fs_open_regular(path, &fd, &file_size, e);
    if (rc) return rc;
    /* Checked before reading so that a stale manifest entry costs no
     * allocation of its (possibly huge) size. */
    if (offset > file_size || size > file_size - offset)
        rc = err_set(e, ERR_FORMAT, "%s: short read: %llu bytes at byte %llu, file ends after %llu", path,
                     (unsigned long long)size, (unsigned long long)offset,
                     (unsigned long long)(offset > file_size ? 0 : file_size - offset));
    else
        rc = fs_pread_alloc(fd, offset, (size_t)size, path, data, e);
    close(fd);
    return rc;
}
