#include "io/npy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fsutil.h"

/* The header dict as numpy writes it, padded with spaces and a '\n' so that
 * magic + lengths + header is a multiple of 64 bytes. */
int npy_header_f32(uint8_t out[NPY_HEADER_MAX], size_t *len, const int64_t *shape, int ndim, const char *path, err_t *e)
{
    if (ndim < 0 || ndim > NPY_MAX_DIMS) return err_set(e, ERR_ARG, "%s: %d dimensions (at most %d)", path, ndim, NPY_MAX_DIMS);
    char dict[512];
    int n = snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': False, 'shape': (");
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) return err_set(e, ERR_ARG, "%s: negative dimension %lld", path, (long long)shape[i]);
        n += snprintf(dict + n, sizeof dict - (size_t)n, "%lld%s", (long long)shape[i], ndim == 1 ? "," : (i + 1 < ndim ? ", " : ""));
    }
    n += snprintf(dict + n, sizeof dict - (size_t)n, "), }");
    size_t hlen = (size_t)n + 1; /* + '\n' */
    size_t total_head = 10 + hlen;
    size_t pad = (64 - total_head % 64) % 64;
    hlen += pad;
    memcpy(out, "\x93NUMPY\x01\x00", 8);
    out[8] = (uint8_t)(hlen & 0xff);
    out[9] = (uint8_t)(hlen >> 8);
    memcpy(out + 10, dict, (size_t)n);
    memset(out + 10 + n, ' ', pad);
    out[10 + hlen - 1] = '\n';
    *len = 10 + hlen;
    return 0;
}

int npy_write_f32(const char *path, const float *data, const int64_t *shape, int ndim, err_t *e)
{
    uint8_t head[NPY_HEADER_MAX];
    size_t hlen;
    int rc = npy_header_f32(head, &hlen, shape, ndim, path, e);
    if (rc) return rc;
    size_t count = 1;
    for (int i = 0; i < ndim; i++) count *= (size_t)shape[i];
    size_t bytes = hlen + count * sizeof(float);
    uint8_t *buf = malloc(bytes);
    if (!buf) return err_set(e, ERR_NOMEM, "%s: cannot allocate %zu bytes", path, bytes);
    memcpy(buf, head, hlen);
    /* The host is little-endian (x86-64, aarch64), as '<f4' requires. */
    if (count) memcpy(buf + hlen, data, count * sizeof(float));
    rc = fs_write_atomic(path, buf, bytes, e);
    free(buf);
    return rc;
}

/* Value of 'key': in the header dict, or NULL. */
static const char *npy_dict_value(const char *dict, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, "'%s':", key);
    const char *p = strstr(dict, pat);
    if (!p) return NULL;
    p += strlen(pat);
    while (*p == ' ') p++;
    return p;
}

static int npy_parse_header(const char *path, const char *dict, int64_t *shape, int *ndim, size_t *count, err_t *e)
{
    const char *descr = npy_dict_value(dict, "descr");
    const char *fo = npy_dict_value(dict, "fortran_order");
    const char *sh = npy_dict_value(dict, "shape");
    if (!descr || !fo || !sh) return err_set(e, ERR_FORMAT, "%s: header lacks descr, fortran_order or shape", path);
    if (strncmp(descr, "'<f4'", 5) != 0) return err_set(e, ERR_UNSUPPORTED, "%s: dtype %.8s is not '<f4' (little-endian float32)", path, descr);
    if (strncmp(fo, "False", 5) != 0) return err_set(e, ERR_UNSUPPORTED, "%s: Fortran-order arrays are not supported", path);
    if (*sh != '(') return err_set(e, ERR_FORMAT, "%s: shape is not a tuple", path);
    sh++;
    *ndim = 0;
    *count = 1;
    for (;;) {
        while (*sh == ' ' || *sh == ',') sh++;
        if (*sh == ')') break;
        char *end;
        long long v = strtoll(sh, &end, 10);
        if (end == sh || v < 0) return err_set(e, ERR_FORMAT, "%s: bad shape entry", path);
        if (*ndim == NPY_MAX_DIMS) return err_set(e, ERR_UNSUPPORTED, "%s: more than %d dimensions", path, NPY_MAX_DIMS);
        if (v > 0 && *count > SIZE_MAX / sizeof(float) / (size_t)v) return err_set(e, ERR_FORMAT, "%s: shape too large", path);
        shape[(*ndim)++] = v;
        *count *= (size_t)v;
        sh = end;
    }
    return 0;
}

int npy_read_f32(const char *path, float **data, int64_t *shape, int *ndim, err_t *e)
{
    *data = NULL;
    uint8_t *buf;
    size_t len;
    int rc = fs_read_all(path, &buf, &len, e);
    if (rc) return rc;
    size_t hstart, hlen;
    if (len < 10 || memcmp(buf, "\x93NUMPY", 6) != 0) {
        free(buf);
        return err_set(e, ERR_FORMAT, "%s: not a .npy file (bad magic)", path);
    }
    if (buf[6] == 1) {
        hstart = 10;
        hlen = buf[8] | (size_t)buf[9] << 8;
    } else if ((buf[6] == 2 || buf[6] == 3) && len >= 12) {
        hstart = 12;
        hlen = buf[8] | (size_t)buf[9] << 8 | (size_t)buf[10] << 16 | (size_t)buf[11] << 24;
    } else {
        free(buf);
        return err_set(e, ERR_UNSUPPORTED, "%s: .npy version %d.%d", path, buf[6], buf[7]);
    }
    if (hlen > len - hstart) {
        free(buf);
        return err_set(e, ERR_FORMAT, "%s: header length %zu exceeds file size %zu", path, hlen, len);
    }
    char *dict = malloc(hlen + 1);
    if (!dict) {
        free(buf);
        return err_set(e, ERR_NOMEM, "%s: header of %zu bytes", path, hlen);
    }
    memcpy(dict, buf + hstart, hlen);
    dict[hlen] = 0;
    size_t count = 0;
    rc = npy_parse_header(path, dict, shape, ndim, &count, e);
    free(dict);
    size_t off = hstart + hlen;
    if (!rc && len - off != count * sizeof(float))
        rc = err_set(e, ERR_FORMAT, "%s: data is %zu bytes, shape needs %zu", path, len - off, count * sizeof(float));
    if (!rc) {
        *data = malloc(count ? count * sizeof(float) : 1);
        if (!*data) rc = err_set(e, ERR_NOMEM, "%s: %zu floats", path, count);
        else memcpy(*data, buf + off, count * sizeof(float));
    }
    free(buf);
    return rc;
}
