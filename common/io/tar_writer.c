#include "io/tar_writer.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct tar_writer_t {
    FILE *f;
    char path[4096];
    char tmp[4200];
    uint64_t members;
};

int tar_writer_open(tar_writer_t **out, const char *path, err_t *e)
{
    *out = NULL;
    tar_writer_t *w = calloc(1, sizeof *w);
    if (!w) return err_set(e, ERR_NOMEM, "%s: cannot allocate a tar writer", path);
    if (snprintf(w->path, sizeof w->path, "%s", path) >= (int)sizeof w->path) {
        free(w);
        return err_set(e, ERR_ARG, "%s: path too long", path);
    }
    snprintf(w->tmp, sizeof w->tmp, "%s.tmp.%d", path, (int)getpid());
    w->f = fopen(w->tmp, "wb");
    if (!w->f) {
        int rc = err_set(e, ERR_IO, "%s: cannot create: %s", w->tmp, strerror(errno));
        free(w);
        return rc;
    }
    *out = w;
    return 0;
}

/* Octal, zero-padded to width-1 digits and NUL-terminated, as ustar asks. */
static void octal(char *field, size_t width, uint64_t v)
{
    field[width - 1] = 0;
    for (size_t i = width - 1; i-- > 0;) {
        field[i] = (char)('0' + (v & 7));
        v >>= 3;
    }
}

static int write_all(tar_writer_t *w, const void *p, size_t n, err_t *e)
{
    if (n && fwrite(p, 1, n, w->f) != n) return err_set(e, ERR_IO, "%s: write failed: %s", w->tmp, strerror(errno));
    return 0;
}

int tar_writer_add(tar_writer_t *w, const char *name, const void *data, size_t len, err_t *e)
{
    char h[512];
    memset(h, 0, sizeof h);
    size_t nl = strlen(name);
    if (nl == 0) return err_set(e, ERR_ARG, "%s: member %llu has an empty name", w->path, (unsigned long long)w->members);
    if (nl <= 100) {
        memcpy(h, name, nl);
    } else {
        /* ustar splits a long name at a '/' into prefix (155) and name (100). */
        const char *cut = NULL;
        for (const char *s = name; *s; s++)
            if (*s == '/' && (size_t)(s - name) <= 155 && nl - (size_t)(s - name) - 1 <= 100) cut = s;
        if (!cut || cut == name)
            return err_set(e, ERR_LIMIT, "%s: member name '%s' does not fit ustar's 100+155 bytes", w->path, name);
        memcpy(h + 345, name, (size_t)(cut - name));
        memcpy(h, cut + 1, nl - (size_t)(cut - name) - 1);
    }
    if ((uint64_t)len >= (1ull << 33))
        return err_set(e, ERR_LIMIT, "%s: member '%s' is %zu bytes, over ustar's 8 GiB", w->path, name, len);
    octal(h + 100, 8, 0644);
    octal(h + 108, 8, 0);
    octal(h + 116, 8, 0);
    octal(h + 124, 12, (uint64_t)len);
    octal(h + 136, 12, TAR_WRITER_MTIME);
    h[156] = '0';
    memcpy(h + 257, "ustar", 6); /* magic "ustar\0" */
    memcpy(h + 263, "00", 2);
    /* The checksum is computed with its own field read as eight spaces. */
    memset(h + 148, ' ', 8);
    unsigned sum = 0;
    for (int i = 0; i < 512; i++) sum += (unsigned char)h[i];
    octal(h + 148, 7, sum);
    h[155] = ' ';
    static const char zeros[512];
    int rc = write_all(w, h, sizeof h, e);
    if (!rc) rc = write_all(w, data, len, e);
    if (!rc && len % 512) rc = write_all(w, zeros, 512 - len % 512, e);
    if (rc) return err_wrap(e, "member '%s'", name);
    w->members++;
    return 0;
}

int tar_writer_close(tar_writer_t *w, err_t *e)
{
    static const char zeros[1024];
    int rc = write_all(w, zeros, sizeof zeros, e);
    if (fclose(w->f) != 0 && !rc) rc = err_set(e, ERR_IO, "%s: close failed: %s", w->tmp, strerror(errno));
    w->f = NULL;
    if (!rc && rename(w->tmp, w->path) != 0)
        rc = err_set(e, ERR_IO, "%s: cannot rename into place: %s", w->path, strerror(errno));
    if (rc) unlink(w->tmp);
    free(w);
    return rc;
}

void tar_writer_abort(tar_writer_t *w)
{
    if (!w) return;
    if (w->f) fclose(w->f);
    unlink(w->tmp);
    free(w);
}
