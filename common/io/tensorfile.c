#include "io/tensorfile.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/safetensors.h"
#include "io/torch_pt.h"

/* Exactly one of st / pt is set; every accessor maps to that reader. */
struct tensorfile {
    char path[1024];
    st_file *st;
    pt_file *pt;
};

int tensorfile_open(tensorfile **tfp, const char *path, err_t *e)
{
    *tfp = NULL;
    uint8_t magic[4] = {0};
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return err_set(e, ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    ssize_t got = read(fd, magic, sizeof magic);
    close(fd);
    if (got < 0) return err_set(e, ERR_IO, "%s: cannot read: %s", path, strerror(errno));
    tensorfile *tf = calloc(1, sizeof *tf);
    if (!tf) return err_set(e, ERR_NOMEM, "%s: cannot allocate", path);
    snprintf(tf->path, sizeof tf->path, "%s", path);
    /* A zip (or a legacy pickle, which pt_open rejects by name) is a .pt;
     * anything else must be safetensors, whose first 8 bytes are a length.
     * The legacy check needs torch's 4-byte magic (PROTO 2, LONG1 of 10
     * bytes): a safetensors header length can start with 0x80 too. */
    static const uint8_t legacy[4] = {0x80, 0x02, 0x8a, 0x0a};
    int rc = (got >= 4 && (!memcmp(magic, "PK", 2) || !memcmp(magic, legacy, 4))) ? pt_open(&tf->pt, path, e) : st_open(&tf->st, path, e);
    if (rc) {
        free(tf);
        return rc;
    }
    *tfp = tf;
    return 0;
}

void tensorfile_close(tensorfile *tf)
{
    if (!tf) return;
    st_close(tf->st);
    pt_close(tf->pt);
    free(tf);
}

const char *tensorfile_metadata(const tensorfile *tf, const char *key)
{
    const json_t *md = tf->st ? st_metadata(tf->st) : NULL;
    return md ? json_string_value(json_object_get(md, key)) : NULL;
}

int tensorfile_count(const tensorfile *tf) { return tf->st ? st_count(tf->st) : pt_count(tf->pt); }

/* The fields tensorfile needs, from either reader. */
typedef struct tf_view {
    const char *name;
    int ndim;
    const int64_t *shape;
    enum st_dtype dtype;
} tf_view;

static int tf_view_at(const tensorfile *tf, int i, tf_view *v)
{
    if (tf->st) {
        const st_tensor *t = st_tensor_at(tf->st, i);
        if (!t) return -1;
        *v = (tf_view){t->name, t->ndim, t->shape, t->dtype};
    } else {
        const pt_tensor *t = pt_tensor_at(tf->pt, i);
        if (!t) return -1;
        *v = (tf_view){t->name, t->ndim, t->shape, t->dtype};
    }
    return 0;
}

const char *tensorfile_name(const tensorfile *tf, int i)
{
    tf_view v;
    return tf_view_at(tf, i, &v) ? NULL : v.name;
}

int tensorfile_find(const tensorfile *tf, const char *name)
{
    if (tf->st) {
        const st_tensor *t = st_find(tf->st, name);
        return t ? (int)(t - st_tensor_at(tf->st, 0)) : -1;
    }
    const pt_tensor *t = pt_find(tf->pt, name);
    return t ? (int)(t - pt_tensor_at(tf->pt, 0)) : -1;
}

int tensorfile_shape(const tensorfile *tf, int i, int64_t *shape, int *ndim)
{
    tf_view v;
    if (tf_view_at(tf, i, &v)) return ERR_ARG;
    memcpy(shape, v.shape, (size_t)v.ndim * sizeof *shape);
    *ndim = v.ndim;
    return 0;
}

static void tf_shape_str(char *buf, size_t cap, const int64_t *shape, int ndim)
{
    size_t n = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && n < cap; i++) n += (size_t)snprintf(buf + n, cap - n, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (n < cap) snprintf(buf + n, cap - n, "]");
}

int tensorfile_load(const tensorfile *tf, const char *name, const int64_t *shape, int ndim, float *dst, err_t *e)
{
    int i = tensorfile_find(tf, name);
    if (i < 0) return err_set(e, ERR_NOTFOUND, "%s: tensor %s not found", tf->path, name);
    tf_view v;
    if (tf_view_at(tf, i, &v)) return err_set(e, ERR_INTERNAL, "%s: tensor %s: index %d out of range", tf->path, name, i);
    int same = v.ndim == ndim;
    size_t count = 1;
    for (int d = 0; same && d < ndim; d++) {
        same = v.shape[d] == shape[d];
        count *= (size_t)shape[d];
    }
    if (!same) {
        char have[256], want[256];
        tf_shape_str(have, sizeof have, v.shape, v.ndim);
        tf_shape_str(want, sizeof want, shape, ndim);
        return err_set(e, ERR_FORMAT, "%s: tensor %s has shape %s, expected %s", tf->path, name, have, want);
    }
    /* An integer tensor converts to floats without complaint, and a weight
     * of ~1e9 (or a NaN) only shows much later as nonsense output: refuse
     * both here, where every model loader passes. */
    if (!st_dtype_is_float(v.dtype))
        return err_set(e, ERR_FORMAT, "%s: tensor '%s': dtype %s is not a float type (weights must be F32, F16, BF16 or F64)",
                       tf->path, name, st_dtype_name(v.dtype));
    int rc = tf->st ? st_read_f32(tf->st, st_tensor_at(tf->st, i), dst, count, e) : pt_read_f32(tf->pt, pt_tensor_at(tf->pt, i), dst, count, e);
    if (rc) return rc;
    size_t bad = 0, first = 0;
    for (size_t k = 0; k < count; k++)
        if (!isfinite(dst[k]) && !bad++) first = k;
    if (bad)
        return err_set(e, ERR_FORMAT, "%s: tensor '%s': %zu non-finite values (first at index %zu)", tf->path, name, bad,
                       first);
    return 0;
}
