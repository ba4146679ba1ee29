#include "data/manifest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fsutil.h"
#include "data/reader_cc.h"
#include "io/json_util.h"
#include "io/tar_reader.h"
#include "io/zio.h"

struct manifest_t {
    char dir[4096], root[4096], format[32];
    uint64_t images, captions;
    manifest_token_stats_t stats;
    int num_shards, num_splits;
    manifest_shard_info_t *shards;
    manifest_split_count_t *splits;
};

static int manifest_get_u64(const json_t *o, const char *key, uint64_t *out, err_t *e)
{
    long long v = 0;
    int rc = json_get_int(o, key, &v, e);
    if (rc) return rc;
    if (v < 0) return err_set(e, ERR_FORMAT, "field '%s' is negative", key);
    *out = (uint64_t)v;
    return 0;
}

static int manifest_copy_str(const json_t *o, const char *key, char *out, size_t cap, err_t *e)
{
    const char *s = NULL;
    int rc = json_get_str(o, key, &s, e);
    if (rc) return rc;
    if (snprintf(out, cap, "%s", s) >= (int)cap) return err_set(e, ERR_FORMAT, "field '%s' is too long", key);
    return 0;
}

static int manifest_parse_stats(manifest_t *m, const json_t *doc, err_t *e)
{
    json_t *t = NULL;
    uint64_t mx = 0, msl = 0;
    int rc = json_get_object(doc, "tokens", &t, e);
    if (!rc) rc = manifest_get_u64(t, "count", &m->stats.count, e);
    if (!rc) rc = json_get_real(t, "mean", &m->stats.mean, e);
    if (!rc) rc = json_get_real(t, "std", &m->stats.std, e);
    if (!rc) rc = manifest_get_u64(t, "max", &mx, e);
    if (!rc) rc = manifest_get_u64(t, "max_seq_len", &msl, e);
    if (rc) return err_wrap(e, "tokens");
    m->stats.max = (uint32_t)mx;
    m->stats.max_seq_len = (uint32_t)msl;
    return 0;
}

static int manifest_parse_shards(manifest_t *m, const json_t *doc, err_t *e)
{
    json_t *arr = NULL;
    long long n = 0;
    int rc = json_get_int(doc, "num_shards", &n, e);
    if (!rc) rc = json_get_array(doc, "shards", &arr, e);
    if (rc) return rc;
    if (n <= 0 || (size_t)n != json_array_size(arr))
        return err_set(e, ERR_FORMAT, "num_shards %lld does not match the %zu shards listed", n, json_array_size(arr));
    m->num_shards = (int)n;
    if (!(m->shards = calloc((size_t)n, sizeof *m->shards))) return err_set(e, ERR_NOMEM, "cannot allocate shards");
    for (int s = 0; s < m->num_shards; s++) {
        const json_t *o = json_array_get(arr, (size_t)s);
        manifest_shard_info_t *si = &m->shards[s];
        rc = manifest_copy_str(o, "file", si->file, sizeof si->file, e);
        if (!rc) rc = manifest_get_u64(o, "images", &si->images, e);
        if (!rc) rc = manifest_get_u64(o, "captions", &si->captions, e);
        if (!rc) rc = manifest_get_u64(o, "bytes", &si->bytes, e);
        if (!rc) rc = manifest_copy_str(o, "xxh128", si->xxh128, sizeof si->xxh128, e);
        if (!rc && json_object_get(o, "tokens_file")) {
            rc = manifest_copy_str(o, "tokens_file", si->tokens_file, sizeof si->tokens_file, e);
            if (!rc) rc = manifest_get_u64(o, "tokens_bytes", &si->tokens_bytes, e);
            if (!rc) rc = manifest_copy_str(o, "tokens_xxh128", si->tokens_xxh128, sizeof si->tokens_xxh128, e);
            if (!rc && strchr(si->tokens_file, '/'))
                rc = err_set(e, ERR_FORMAT, "tokens_file '%s' is not a plain name", si->tokens_file);
        }
        if (!rc && strchr(si->file, '/')) rc = err_set(e, ERR_FORMAT, "file '%s' is not a plain name", si->file);
        if (rc) return err_wrap(e, "shards[%d]", s);
    }
    return 0;
}

static int manifest_parse_splits(manifest_t *m, const json_t *doc, err_t *e)
{
    json_t *arr = NULL;
    int rc = json_get_array(doc, "splits", &arr, e);
    if (rc) return rc;
    m->num_splits = (int)json_array_size(arr);
    if (!(m->splits = calloc((size_t)m->num_splits + 1, sizeof *m->splits)))
        return err_set(e, ERR_NOMEM, "cannot allocate splits");
    for (int i = 0; i < m->num_splits; i++) {
        const json_t *o = json_array_get(arr, (size_t)i);
        manifest_split_count_t *sc = &m->splits[i];
        rc = manifest_copy_str(o, "name", sc->name, sizeof sc->name, e);
        if (!rc) rc = manifest_get_u64(o, "images", &sc->images, e);
        if (!rc) rc = manifest_get_u64(o, "captions", &sc->captions, e);
        if (rc) return err_wrap(e, "splits[%d]", i);
    }
    return 0;
}

static int manifest_parse_index(manifest_t *m, const json_t *doc, err_t *e)
{
    const char *fmt = NULL;
    long long version = 0;
    int rc = json_get_str(doc, "format", &fmt, e);
    if (!rc && strcmp(fmt, "clipcap-manifest")) rc = err_set(e, ERR_FORMAT, "format is '%s', not clipcap-manifest", fmt);
    if (!rc) rc = json_get_int(doc, "version", &version, e);
    if (!rc && version != MANIFEST_VERSION)
        rc = err_set(e, ERR_UNSUPPORTED, "manifest version %lld (this clipcap reads version %d)", version,
                     MANIFEST_VERSION);
    json_t *src = NULL;
    if (!rc) rc = json_get_object(doc, "source", &src, e);
    if (!rc) rc = manifest_copy_str(src, "format", m->format, sizeof m->format, e);
    if (!rc) rc = manifest_copy_str(doc, "root", m->root, sizeof m->root, e);
    if (!rc) rc = manifest_get_u64(doc, "images", &m->images, e);
    if (!rc) rc = manifest_get_u64(doc, "captions", &m->captions, e);
    if (!rc) rc = manifest_parse_stats(m, doc, e);
    if (!rc) rc = manifest_parse_splits(m, doc, e);
    if (!rc) rc = manifest_parse_shards(m, doc, e);
    return rc;
}

int manifest_open(manifest_t **out, const char *dir, err_t *e)
{
    *out = NULL;
    manifest_t *m = calloc(1, sizeof *m);
    if (!m) return err_set(e, ERR_NOMEM, "cannot allocate manifest");
    char path[4200];
    int rc = fs_join(m->dir, sizeof m->dir, "", dir, e);
    if (!rc) rc = fs_join(path, sizeof path, dir, MANIFEST_INDEX_NAME, e);
    json_t *doc = NULL;
    if (!rc) rc = json_load_path(&doc, path, e);
    if (!rc) {
        rc = manifest_parse_index(m, doc, e);
        if (rc) err_wrap(e, "%s", path);
    }
    json_decref(doc);
    if (rc) {
        manifest_close(m);
        return rc;
    }
    *out = m;
    return 0;
}

void manifest_close(manifest_t *m)
{
    if (!m) return;
    free(m->shards);
    free(m->splits);
    free(m);
}

const char *manifest_dir(const manifest_t *m) { return m->dir; }
const char *manifest_root(const manifest_t *m) { return m->root; }
const char *manifest_source_format(const manifest_t *m) { return m->format; }
int manifest_num_shards(const manifest_t *m) { return m->num_shards; }
uint64_t manifest_num_images(const manifest_t *m) { return m->images; }
uint64_t manifest_num_captions(const manifest_t *m) { return m->captions; }
const manifest_token_stats_t *manifest_token_stats(const manifest_t *m) { return &m->stats; }
int manifest_num_splits(const manifest_t *m) { return m->num_splits; }

const manifest_shard_info_t *manifest_shard_info(const manifest_t *m, int shard)
{
    return shard >= 0 && shard < m->num_shards ? &m->shards[shard] : NULL;
}

const manifest_split_count_t *manifest_split(const manifest_t *m, int i)
{
    return i >= 0 && i < m->num_splits ? &m->splits[i] : NULL;
}

int manifest_rank_shards(int num_shards, int rank, int size, int *out, int cap)
{
    int n = 0;
    for (int s = 0; s < num_shards; s++) {
        if (manifest_shard_owner(s, size) != rank) continue;
        if (n < cap) out[n] = s;
        n++;
    }
    return n;
}

static int manifest_shard_path(const manifest_t *m, int shard, char *path, size_t cap, err_t *e)
{
    if (shard < 0 || shard >= m->num_shards)
        return err_set(e, ERR_ARG, "%s: shard %d out of range (%d shards)", m->dir, shard, m->num_shards);
    return fs_join(path, cap, m->dir, m->shards[shard].file, e);
}

int manifest_verify_shard(const manifest_t *m, int shard, err_t *e)
{
    char path[8192];
    int rc = manifest_shard_path(m, shard, path, sizeof path, e);
    if (rc) return rc;
    char hex[33];
    uint64_t len = 0;
    if ((rc = fs_hash_file128(path, hex, &len, e))) return rc;
    const manifest_shard_info_t *si = &m->shards[shard];
    if (len != si->bytes || strcmp(hex, si->xxh128))
        return err_set(e, ERR_FORMAT,
                       "%s: checksum %s (%llu bytes), %s/" MANIFEST_INDEX_NAME " says %s (%llu bytes): the shard "
                       "changed after `clipcap shard` wrote it (shard again)",
                       path, hex, (unsigned long long)len, m->dir, si->xxh128, (unsigned long long)si->bytes);
    return 0;
}

struct manifest_shard_reader {
    const manifest_t *m;
    zio_reader *z;
    char path[8192];
    uint64_t line, images, expected;
    json_t *doc;                 /* the current record's JSON */
    char loc_path[8192];
    const char **captions;
    const int32_t **tokens;
    uint32_t *n_tokens;
    int32_t *ids;
    size_t cap_captions, cap_tokens, cap_ntokens, cap_ids;
};

static int shard_read_header(manifest_shard_reader *r, int shard, err_t *e)
{
    const char *line = NULL;
    size_t len = 0;
    int rc = zio_read_line(r->z, &line, &len, e);
    if (rc < 0) return rc;
    if (rc == 0) return err_set(e, ERR_FORMAT, "%s: empty shard file (no header line)", r->path);
    r->line = 1;
    json_t *h = NULL;
    if ((rc = json_load_buffer(&h, line, len, r->path, e))) return rc;
    const char *fmt = NULL;
    long long s = -1, v = 0;
    rc = json_get_str(h, "format", &fmt, e);
    if (!rc && strcmp(fmt, "clipcap-manifest-shard")) rc = err_set(e, ERR_FORMAT, "format is '%s'", fmt);
    if (!rc) rc = json_get_int(h, "version", &v, e);
    if (!rc && v != MANIFEST_VERSION) rc = err_set(e, ERR_UNSUPPORTED, "shard version %lld", v);
    if (!rc) rc = json_get_int(h, "shard", &s, e);
    if (!rc && s != shard) rc = err_set(e, ERR_FORMAT, "header says shard %lld, the index lists it as %d", s, shard);
    if (!rc) rc = manifest_get_u64(h, "images", &r->expected, e);
    json_decref(h);
    if (rc) return err_wrap(e, "%s: header", r->path);
    return 0;
}

int manifest_shard_open(manifest_shard_reader **out, const manifest_t *m, int shard, err_t *e)
{
    *out = NULL;
    manifest_shard_reader *r = calloc(1, sizeof *r);
    if (!r) return err_set(e, ERR_NOMEM, "cannot allocate shard reader");
    r->m = m;
    int rc = manifest_shard_path(m, shard, r->path, sizeof r->path, e);
    /* A shard rewritten after the index (other content, same name) would
     * otherwise be read as if the index described it. */
    if (!rc) rc = manifest_verify_shard(m, shard, e);
    if (!rc) rc = zio_reader_open(&r->z, r->path, e);
    if (!rc) rc = shard_read_header(r, shard, e);
    if (rc) {
        manifest_shard_close(r);
        return rc;
    }
    *out = r;
    return 0;
}

void manifest_shard_close(manifest_shard_reader *r)
{
    if (!r) return;
    zio_reader_close(r->z);
    json_decref(r->doc);
    free(r->captions);
    free(r->tokens);
    free(r->n_tokens);
    free(r->ids);
    free(r);
}

static int shard_grow(void **p, size_t *cap, size_t need, size_t sz, err_t *e)
{
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : 16;
    while (c < need) c *= 2;
    void *q = realloc(*p, c * sz);
    if (!q) return err_set(e, ERR_NOMEM, "cannot allocate %zu record entries", c);
    *p = q;
    *cap = c;
    return 0;
}

static int shard_parse_loc(manifest_shard_reader *r, const json_t *doc, manifest_loc_t *loc, err_t *e)
{
    json_t *l = NULL;
    const char *kind = NULL, *path = NULL;
    int rc = json_get_object(doc, "loc", &l, e);
    if (!rc) rc = json_get_str(l, "kind", &kind, e);
    if (!rc) rc = json_get_str(l, "path", &path, e);
    if (rc) return rc;
    memset(loc, 0, sizeof *loc);
    if (!strcmp(kind, "tar")) {
        loc->kind = MANIFEST_LOC_TAR;
        if ((rc = manifest_get_u64(l, "offset", &loc->offset, e)) || (rc = manifest_get_u64(l, "length", &loc->length, e)))
            return rc;
    } else if (strcmp(kind, "file")) {
        return err_set(e, ERR_FORMAT, "loc kind '%s' is neither file nor tar", kind);
    }
    if ((rc = fs_join(r->loc_path, sizeof r->loc_path, r->m->root, path, e))) return rc;
    loc->path = r->loc_path;
    return 0;
}

static int shard_parse_record(manifest_shard_reader *r, const json_t *doc, manifest_record_t *rec, err_t *e)
{
    json_t *caps = NULL, *toks = NULL;
    int rc = json_get_str(doc, "key", &rec->key, e);
    if (!rc) rc = json_get_str(doc, "split", &rec->split, e);
    if (!rc) rc = shard_parse_loc(r, doc, &rec->loc, e);
    if (!rc) rc = json_get_array(doc, "captions", &caps, e);
    if (!rc) rc = json_get_array(doc, "tokens", &toks, e);
    if (rc) return rc;
    size_t n = json_array_size(caps), total = 0;
    if (json_array_size(toks) != n)
        return err_set(e, ERR_FORMAT, "%zu captions but %zu token lists", n, json_array_size(toks));
    for (size_t i = 0; i < n; i++) {
        const json_t *t = json_array_get(toks, i);
        if (!json_is_array(t)) return err_set(e, ERR_FORMAT, "tokens[%zu] is not an array", i);
        total += json_array_size(t);
    }
    if ((rc = shard_grow((void **)&r->captions, &r->cap_captions, n, sizeof *r->captions, e)) ||
        (rc = shard_grow((void **)&r->tokens, &r->cap_tokens, n, sizeof *r->tokens, e)) ||
        (rc = shard_grow((void **)&r->n_tokens, &r->cap_ntokens, n, sizeof *r->n_tokens, e)))
        return rc;
    if ((rc = shard_grow((void **)&r->ids, &r->cap_ids, total ? total : 1, sizeof *r->ids, e))) return rc;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        const json_t *c = json_array_get(caps, i), *t = json_array_get(toks, i);
        if (!json_is_string(c)) return err_set(e, ERR_FORMAT, "captions[%zu] is not a string", i);
        r->captions[i] = json_string_value(c);
        r->tokens[i] = r->ids + at;
        r->n_tokens[i] = (uint32_t)json_array_size(t);
        for (size_t k = 0; k < json_array_size(t); k++) {
            const json_t *v = json_array_get(t, k);
            if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > INT32_MAX)
                return err_set(e, ERR_FORMAT, "tokens[%zu][%zu] is not a token id", i, k);
            r->ids[at++] = (int32_t)json_integer_value(v);
        }
    }
    rec->n_captions = n;
    rec->captions = r->captions;
    rec->tokens = r->tokens;
    rec->n_tokens = r->n_tokens;
    return 0;
}

int manifest_shard_next(manifest_shard_reader *r, manifest_record_t *rec, err_t *e)
{
    json_decref(r->doc);
    r->doc = NULL;
    memset(rec, 0, sizeof *rec);
    const char *line = NULL;
    size_t len = 0;
    int rc = zio_read_line(r->z, &line, &len, e);
    if (rc < 0) return rc;
    if (rc == 0) {
        if (r->images != r->expected)
            return err_set(e, ERR_FORMAT, "%s: %llu records, the header says %llu", r->path,
                           (unsigned long long)r->images, (unsigned long long)r->expected);
        return 0;
    }
    r->line++;
    if ((rc = json_load_buffer(&r->doc, line, len, r->path, e))) return err_wrap(e, "line %llu", (unsigned long long)r->line);
    if ((rc = shard_parse_record(r, r->doc, rec, e)))
        return err_wrap(e, "%s: line %llu", r->path, (unsigned long long)r->line);
    r->images++;
    return 1;
}

int manifest_check_tar_header(const manifest_record_t *rec, const uint8_t header[512], err_t *e)
{
    const uint64_t at = rec->loc.offset - 512;
    tar_member m;
    int whole = 0;
    if (rec->loc.offset < 512 || tar_parse_header(header, at, rec->loc.path, &m, &whole, e) != 0)
        return err_set(e, ERR_FORMAT, "%s: no tar header before byte %llu: the tar changed after `clipcap shard` "
                       "(shard again)", rec->loc.path, (unsigned long long)rec->loc.offset);
    char key[256];
    reader_cc_key(m.name, key, sizeof key);
    if (m.type != '0' || m.size != rec->loc.length || (whole && strcmp(key, rec->key)))
        return err_set(e, ERR_FORMAT, "%s: the member at byte %llu is '%s' (%llu bytes), not key %s (%llu bytes): the "
                       "tar changed after `clipcap shard` (shard again)", rec->loc.path, (unsigned long long)at,
                       m.name, (unsigned long long)m.size, rec->key, (unsigned long long)rec->loc.length);
    return 0;
}

int manifest_read_image(const manifest_record_t *rec, uint8_t **data, size_t *len, err_t *e)
{
    *data = NULL;
    *len = 0;
    int rc;
    if (rec->loc.kind == MANIFEST_LOC_TAR) {
        uint8_t *block = NULL;
        /* the header and the bytes in one read */
        rc = rec->loc.offset < 512 ? manifest_check_tar_header(rec, NULL, e)
                                   : tar_read_range(rec->loc.path, rec->loc.offset - 512, rec->loc.length + 512, &block, e);
        if (!rc) rc = manifest_check_tar_header(rec, block, e);
        if (!rc) {
            memmove(block, block + 512, (size_t)rec->loc.length + 1); /* with tar_read_range's NUL */
            *data = block;
            *len = (size_t)rec->loc.length;
        } else {
            free(block);
        }
    } else {
        rc = fs_read_all(rec->loc.path, data, len, e);
    }
    if (rc && rec->key) err_wrap(e, "record %s", rec->key);
    return rc;
}
