#include "io/safetensors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fsutil.h"
#include "io/json_util.h"
#include "io/zio.h"

/* A header larger than this is not a real checkpoint (the hub's own limit
 * is 100 MB); refusing it early bounds what a corrupt length can cost. */
#define ST_MAX_HEADER ((uint64_t)100 << 20)

struct st_file {
    char path[1024];
    const uint8_t *map; /* whole file */
    size_t map_len;
    int owns_map;
    const uint8_t *data; /* data area: map + 8 + header length */
    size_t data_len;
    json_t *header;
    st_tensor *tensors;
    int *by_name; /* indices sorted by name, for st_find */
    int n;
};

static const struct {
    const char *name;
    enum st_dtype dt;
    size_t size;
} st_dtypes[] = {
    {"F32", ST_F32, 4}, {"F16", ST_F16, 2}, {"BF16", ST_BF16, 2}, {"F64", ST_F64, 8},
    {"I64", ST_I64, 8}, {"I32", ST_I32, 4}, {"U8", ST_U8, 1},     {"BOOL", ST_BOOL, 1},
    {"I16", ST_I16, 2}, {"I8", ST_I8, 1},   {"U16", ST_U16, 2},   {"U32", ST_U32, 4},
    {"U64", ST_U64, 8},
};
#define ST_NDTYPES (int)(sizeof st_dtypes / sizeof st_dtypes[0])

/* Defined by the format but not handled here: a clear "unsupported" rather
 * than "unknown". */
static const char *st_spec_dtypes[] = {"F8_E4M3", "F8_E5M2"};

size_t st_dtype_size(enum st_dtype dt)
{
    for (int i = 0; i < ST_NDTYPES; i++)
        if (st_dtypes[i].dt == dt) return st_dtypes[i].size;
    return 0;
}

const char *st_dtype_name(enum st_dtype dt)
{
    for (int i = 0; i < ST_NDTYPES; i++)
        if (st_dtypes[i].dt == dt) return st_dtypes[i].name;
    return "?";
}

int st_dtype_is_float(enum st_dtype dt) { return dt == ST_F32 || dt == ST_F16 || dt == ST_BF16 || dt == ST_F64; }

static float st_half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, mant = h & 0x3ff, bits;
    if (exp == 0x1f) bits = sign | 0x7f800000u | (mant << 13);
    else if (exp != 0) bits = sign | ((exp + 112) << 23) | (mant << 13);
    else if (mant == 0) bits = sign;
    else {
        /* subnormal: normalise the mantissa */
        exp = 113;
        while (!(mant & 0x400)) {
            mant <<= 1;
            exp--;
        }
        bits = sign | (exp << 23) | ((mant & 0x3ff) << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

/* Sources may be unaligned (the data area starts wherever the header ends),
 * so every element is read with memcpy. The host is little-endian. */
void st_convert_f32(enum st_dtype dt, const uint8_t *src, float *dst, size_t count)
{
    switch (dt) {
    case ST_F32: memcpy(dst, src, count * 4); break;
    case ST_F16:
        for (size_t i = 0; i < count; i++) {
            uint16_t h;
            memcpy(&h, src + 2 * i, 2);
            dst[i] = st_half_to_float(h);
        }
        break;
    case ST_BF16:
        for (size_t i = 0; i < count; i++) {
            uint16_t h;
            memcpy(&h, src + 2 * i, 2);
            uint32_t bits = (uint32_t)h << 16;
            memcpy(&dst[i], &bits, 4);
        }
        break;
    case ST_F64:
        for (size_t i = 0; i < count; i++) {
            double d;
            memcpy(&d, src + 8 * i, 8);
            dst[i] = (float)d;
        }
        break;
    case ST_I64:
        for (size_t i = 0; i < count; i++) {
            int64_t v;
            memcpy(&v, src + 8 * i, 8);
            dst[i] = (float)v;
        }
        break;
    case ST_I32:
        for (size_t i = 0; i < count; i++) {
            int32_t v;
            memcpy(&v, src + 4 * i, 4);
            dst[i] = (float)v;
        }
        break;
    case ST_U8:
        for (size_t i = 0; i < count; i++) dst[i] = (float)src[i];
        break;
    case ST_I8:
        for (size_t i = 0; i < count; i++) dst[i] = (float)(int8_t)src[i];
        break;
    case ST_I16:
    case ST_U16:
        for (size_t i = 0; i < count; i++) {
            uint16_t v;
            memcpy(&v, src + 2 * i, 2);
            dst[i] = dt == ST_I16 ? (float)(int16_t)v : (float)v;
        }
        break;
    case ST_U32:
        for (size_t i = 0; i < count; i++) {
            uint32_t v;
            memcpy(&v, src + 4 * i, 4);
            dst[i] = (float)v;
        }
        break;
    case ST_U64:
        for (size_t i = 0; i < count; i++) {
            uint64_t v;
            memcpy(&v, src + 8 * i, 8);
            dst[i] = (float)v;
        }
        break;
    case ST_BOOL:
        for (size_t i = 0; i < count; i++) dst[i] = src[i] ? 1.0f : 0.0f;
        break;
    }
}

static int st_parse_dtype(const char *path, const char *name, const char *s, enum st_dtype *dt, err_t *e)
{
    for (int i = 0; i < ST_NDTYPES; i++)
        if (!strcmp(s, st_dtypes[i].name)) {
            *dt = st_dtypes[i].dt;
            return 0;
        }
    for (size_t i = 0; i < sizeof st_spec_dtypes / sizeof st_spec_dtypes[0]; i++)
        if (!strcmp(s, st_spec_dtypes[i]))
            return err_set(e, ERR_UNSUPPORTED, "%s: tensor '%s': dtype %s is not supported", path, name, s);
    return err_set(e, ERR_FORMAT, "%s: tensor '%s': unknown dtype '%.32s'", path, name, s);
}

/* Offsets and shape entries are JSON integers; a non-negative one fits
 * uint64. */
static int st_get_uint(const json_t *v, uint64_t *out)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0) return -1;
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

static int st_parse_tensor(st_file *f, const char *name, const json_t *obj, st_tensor *t, err_t *e)
{
    const char *path = f->path;
    const char *dts;
    json_t *shape, *offs;
    int rc;
    if (!json_is_object(obj)) return err_set(e, ERR_FORMAT, "%s: tensor '%s': entry is not an object", path, name);
    if ((rc = json_get_str(obj, "dtype", &dts, e)) || (rc = json_get_array(obj, "shape", &shape, e)) ||
        (rc = json_get_array(obj, "data_offsets", &offs, e)))
        return err_wrap(e, "%s: tensor '%s'", path, name);
    if ((rc = st_parse_dtype(path, name, dts, &t->dtype, e))) return rc;
    t->name = name;
    size_t nd = json_array_size(shape);
    if (nd > ST_MAX_DIMS) return err_set(e, ERR_UNSUPPORTED, "%s: tensor '%s': %zu dimensions (at most %d)", path, name, nd, ST_MAX_DIMS);
    t->ndim = (int)nd;
    uint64_t numel = 1;
    int overflow = 0;
    for (size_t i = 0; i < nd; i++) {
        uint64_t d;
        if (st_get_uint(json_array_get(shape, i), &d))
            return err_set(e, ERR_FORMAT, "%s: tensor '%s': shape[%zu] is not a non-negative integer", path, name, i);
        t->shape[i] = (int64_t)d;
        if (d && numel > UINT64_MAX / d) overflow = 1;
        else numel *= d;
    }
    uint64_t begin, end;
    if (json_array_size(offs) != 2 || st_get_uint(json_array_get(offs, 0), &begin) ||
        st_get_uint(json_array_get(offs, 1), &end))
        return err_set(e, ERR_FORMAT, "%s: tensor '%s': data_offsets is not [begin, end] of non-negative integers", path, name);
    if (begin > end) return err_set(e, ERR_FORMAT, "%s: tensor '%s': data_offsets [%llu, %llu] run backwards", path, name, (unsigned long long)begin, (unsigned long long)end);
    if (end > f->data_len)
        return err_set(e, ERR_FORMAT, "%s: tensor '%s': data_offsets [%llu, %llu] outside the data area of %zu bytes", path, name,
                       (unsigned long long)begin, (unsigned long long)end, f->data_len);
    size_t es = st_dtype_size(t->dtype);
    if (overflow || numel > UINT64_MAX / es || numel * es != end - begin)
        return err_set(e, ERR_FORMAT, "%s: tensor '%s': shape x %s size is not the %llu bytes of data_offsets", path, name, dts,
                       (unsigned long long)(end - begin));
    t->offset = (size_t)begin;
    t->nbytes = (size_t)(end - begin);
    return 0;
}

/* qsort contexts cannot carry state portably: sort pointers instead. */
static int st_cmp_offset(const void *a, const void *b)
{
    const st_tensor *x = *(const st_tensor *const *)a, *y = *(const st_tensor *const *)b;
    if (x->offset != y->offset) return x->offset < y->offset ? -1 : 1;
    return x->nbytes < y->nbytes ? -1 : x->nbytes > y->nbytes;
}

static int st_check_overlap(st_file *f, err_t *e)
{
    if (f->n < 2) return 0;
    const st_tensor **order = malloc((size_t)f->n * sizeof *order);
    if (!order) return err_set(e, ERR_NOMEM, "%s: %d tensors", f->path, f->n);
    for (int i = 0; i < f->n; i++) order[i] = &f->tensors[i];
    qsort(order, (size_t)f->n, sizeof *order, st_cmp_offset);
    int rc = 0;
    const st_tensor *prev = NULL;
    for (int i = 0; i < f->n && !rc; i++) {
        if (order[i]->nbytes == 0) continue; /* empty tensors own no bytes */
        if (prev && order[i]->offset < prev->offset + prev->nbytes)
            rc = err_set(e, ERR_FORMAT, "%s: tensors '%s' and '%s' overlap", f->path, prev->name, order[i]->name);
        prev = order[i];
    }
    free(order);
    return rc;
}

static int st_name_cmp(const st_file *f, int a, const char *name)
{
    return strcmp(f->tensors[a].name, name);
}

static int st_parse(st_file *f, err_t *e)
{
    if (f->map_len < 8) return err_set(e, ERR_FORMAT, "%s: %zu bytes, too short for a safetensors header", f->path, f->map_len);
    uint64_t hlen;
    memcpy(&hlen, f->map, 8);
    if (hlen > f->map_len - 8)
        return err_set(e, ERR_FORMAT, "%s: header length %llu exceeds the file size %zu", f->path, (unsigned long long)hlen, f->map_len);
    if (hlen > ST_MAX_HEADER) return err_set(e, ERR_LIMIT, "%s: header length %llu over %llu bytes", f->path, (unsigned long long)hlen, (unsigned long long)ST_MAX_HEADER);
    f->data = f->map + 8 + hlen;
    f->data_len = f->map_len - 8 - (size_t)hlen;
    int rc = json_load_buffer(&f->header, (const char *)f->map + 8, (size_t)hlen, f->path, e);
    if (rc) return err_wrap(e, "safetensors header");
    if (!json_is_object(f->header)) return err_set(e, ERR_FORMAT, "%s: header is not a JSON object", f->path);
    size_t cap = json_object_size(f->header);
    f->tensors = calloc(cap ? cap : 1, sizeof *f->tensors);
    f->by_name = calloc(cap ? cap : 1, sizeof *f->by_name);
    if (!f->tensors || !f->by_name) return err_set(e, ERR_NOMEM, "%s: %zu tensors", f->path, cap);
    const char *key;
    json_t *val;
    json_object_foreach(f->header, key, val) {
        if (!strcmp(key, "__metadata__")) {
            if (!json_is_object(val)) return err_set(e, ERR_FORMAT, "%s: __metadata__ is not an object", f->path);
            const char *mk;
            json_t *mv;
            json_object_foreach(val, mk, mv) {
                if (!json_is_string(mv)) return err_set(e, ERR_FORMAT, "%s: __metadata__ '%s' is not a string", f->path, mk);
            }
            continue;
        }
        if ((rc = st_parse_tensor(f, key, val, &f->tensors[f->n], e))) return rc;
        f->n++;
    }
    /* Insertion sort by name: headers hold hundreds of tensors, once. */
    for (int i = 0; i < f->n; i++) {
        int j = i;
        while (j > 0 && st_name_cmp(f, f->by_name[j - 1], f->tensors[i].name) > 0) {
            f->by_name[j] = f->by_name[j - 1];
            j--;
        }
        f->by_name[j] = i;
    }
    return st_check_overlap(f, e);
}

int st_open_buffer(st_file **fp, const uint8_t *data, size_t len, const char *name, err_t *e)
{
    *fp = NULL;
    st_file *f = calloc(1, sizeof *f);
    if (!f) return err_set(e, ERR_NOMEM, "%s: cannot allocate", name);
    snprintf(f->path, sizeof f->path, "%s", name ? name : "<buffer>");
    f->map = data;
    f->map_len = len;
    int rc = st_parse(f, e);
    if (rc) {
        st_close(f);
        return rc;
    }
    *fp = f;
    return 0;
}

int st_open(st_file **fp, const char *path, err_t *e)
{
    *fp = NULL;
    const uint8_t *map;
    size_t len;
    int rc = fs_map_file(path, &map, &len, e);
    if (!rc) rc = st_open_buffer(fp, map, len, path, e);
    if (rc) {
        fs_unmap(map, len);
        return rc;
    }
    (*fp)->owns_map = 1;
    return 0;
}

void st_close(st_file *f)
{
    if (!f) return;
    if (f->owns_map) fs_unmap(f->map, f->map_len);
    json_decref(f->header);
    free(f->tensors);
    free(f->by_name);
    free(f);
}

int st_count(const st_file *f) { return f->n; }

const st_tensor *st_tensor_at(const st_file *f, int i) { return i >= 0 && i < f->n ? &f->tensors[i] : NULL; }

const st_tensor *st_find(const st_file *f, const char *name)
{
    int lo = 0, hi = f->n;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        int c = st_name_cmp(f, f->by_name[mid], name);
        if (c == 0) return &f->tensors[f->by_name[mid]];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

const json_t *st_metadata(const st_file *f) { return json_object_get(f->header, "__metadata__"); }

const uint8_t *st_data(const st_file *f, const st_tensor *t) { return f->data + t->offset; }

int st_read_f32(const st_file *f, const st_tensor *t, float *dst, size_t count, err_t *e)
{
    size_t numel = t->nbytes / st_dtype_size(t->dtype);
    if (count != numel)
        return err_set(e, ERR_ARG, "%s: tensor '%s' has %zu elements, caller asked for %zu", f->path, t->name, numel, count);
    st_convert_f32(t->dtype, f->data + t->offset, dst, count);
    return 0;
}

int st_write(const char *path, const st_entry *entries, int n, const json_t *metadata, err_t *e)
{
    json_t *hdr = json_object();
    if (!hdr) return err_set(e, ERR_NOMEM, "%s: header", path);
    int rc = 0;
    if (metadata) {
        const char *k;
        json_t *v;
        if (!json_is_object(metadata)) rc = err_set(e, ERR_ARG, "%s: metadata is not an object", path);
        else json_object_foreach((json_t *)metadata, k, v) {
            if (!json_is_string(v)) {
                rc = err_set(e, ERR_ARG, "%s: metadata '%s' is not a string", path, k);
                break;
            }
        }
        if (!rc) json_object_set(hdr, "__metadata__", (json_t *)metadata);
    }
    uint64_t off = 0;
    for (int i = 0; i < n && !rc; i++) {
        const st_entry *en = &entries[i];
        if (en->ndim < 0 || en->ndim > ST_MAX_DIMS) {
            rc = err_set(e, ERR_ARG, "%s: tensor '%s': %d dimensions", path, en->name, en->ndim);
            break;
        }
        json_t *shape = json_array();
        uint64_t numel = 1;
        for (int d = 0; d < en->ndim; d++) {
            if (en->shape[d] < 0) {
                rc = err_set(e, ERR_ARG, "%s: tensor '%s': negative dimension", path, en->name);
                break;
            }
            json_array_append_new(shape, json_integer(en->shape[d]));
            numel *= (uint64_t)en->shape[d];
        }
        if (rc) {
            json_decref(shape);
            break;
        }
        json_t *t = json_pack("{s:s, s:o, s:[I, I]}", "dtype", "F32", "shape", shape, "data_offsets", (json_int_t)off,
                              (json_int_t)(off + numel * 4));
        if (!t || json_object_get(hdr, en->name)) {
            json_decref(t);
            rc = err_set(e, ERR_ARG, "%s: tensor '%s' is duplicated or not encodable", path, en->name);
            break;
        }
        json_object_set_new(hdr, en->name, t);
        off += numel * 4;
    }
    char *text = rc ? NULL : json_dumps(hdr, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(hdr);
    if (rc) return rc;
    if (!text) return err_set(e, ERR_NOMEM, "%s: header text", path);
    /* Pad with spaces so the data area starts 8-byte aligned, as the
     * reference writer does. */
    size_t tl = strlen(text), hl = (tl + 7) & ~(size_t)7;
    uint8_t lenbuf[8];
    uint64_t hl64 = hl;
    memcpy(lenbuf, &hl64, 8);
    zio_writer *w = NULL;
    rc = zio_writer_open_raw(&w, path, e);
    if (!rc) rc = zio_write(w, lenbuf, 8, e);
    if (!rc) rc = zio_write(w, text, tl, e);
    if (!rc) rc = zio_write(w, "        ", hl - tl, e);
    for (int i = 0; i < n && !rc; i++) {
        size_t numel = 1;
        for (int d = 0; d < entries[i].ndim; d++) numel *= (size_t)entries[i].shape[d];
        rc = zio_write(w, entries[i].data, numel * 4, e);
    }
    free(text);
    if (rc) {
        if (w) zio_writer_abort(w);
        return rc;
    }
    return zio_writer_commit(w, e);
}
