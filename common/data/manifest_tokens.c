#include "data/manifest_tokens.h"
#include "core/fsutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOK_MAGIC "CCTOKENS"
#define TOK_HEADER 64

static size_t pad8(size_t n) { return (n + 7) & ~(size_t)7; }

/* Byte offsets of the sections, from the header's counts. */
typedef struct {
    size_t cap_first, tok_first, key_off, split, tok, keys, split_names, end;
} tok_layout;

static int tok_layout_of(uint64_t images, uint64_t captions, uint64_t tokens, uint64_t keys_bytes,
                         uint64_t splits_bytes, tok_layout *l)
{
    /* bounds that keep every product below in size_t on any 64-bit host */
    const uint64_t lim = (uint64_t)1 << 56;
    if (images >= lim || captions >= lim || tokens >= lim || keys_bytes >= lim || splits_bytes >= lim) return -1;
    l->cap_first = TOK_HEADER;
    l->tok_first = l->cap_first + (images + 1) * 8;
    l->key_off = l->tok_first + (captions + 1) * 8;
    l->split = l->key_off + images * 8;
    l->tok = pad8(l->split + images * 2);
    l->keys = pad8(l->tok + tokens * 2);
    l->split_names = pad8(l->keys + keys_bytes);
    l->end = l->split_names + splits_bytes;
    return 0;
}

void manifest_tokens_file_name(int shard, int num_shards, char *out, size_t cap)
{
    snprintf(out, cap, "shard-%05d-of-%05d.tokens", shard, num_shards);
}

static void put_u32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static void put_u64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }

int manifest_tokens_write(const char *path, const ds_t *ds, int shard, int num_shards, size_t first, size_t end,
                          int32_t *const *ids, const uint32_t *n_ids, uint64_t *bytes, char xxh128[33], err_t *e)
{
    /* the shard's split names in order of first appearance */
    uint64_t split_off[MANIFEST_TOKENS_MAX_SPLITS];
    uint32_t n_splits = 0;
    uint64_t captions = 0, tokens = 0, keys_bytes = 0, splits_bytes = 0;
    for (size_t i = first; i < end; i++) {
        const ds_image_t *im = &ds->images[i];
        uint32_t j = 0;
        while (j < n_splits && strcmp(ds_str(ds, split_off[j]), ds_str(ds, im->split))) j++;
        if (j == n_splits) {
            if (n_splits == MANIFEST_TOKENS_MAX_SPLITS) return err_set(e, ERR_LIMIT, "%s: more than %d splits", path, MANIFEST_TOKENS_MAX_SPLITS);
            split_off[n_splits++] = im->split;
            splits_bytes += strlen(ds_str(ds, im->split)) + 1;
        }
        keys_bytes += strlen(ds_str(ds, im->key)) + 1;
        captions += im->n_captions;
        for (uint32_t c = 0; c < im->n_captions; c++) tokens += n_ids[im->first_caption + c];
    }
    uint64_t images = end - first;
    tok_layout l;
    if (tok_layout_of(images, captions, tokens, keys_bytes, splits_bytes, &l))
        return err_set(e, ERR_LIMIT, "%s: shard too large for a token file", path);
    uint8_t *buf = calloc(1, l.end);
    if (!buf) return err_set(e, ERR_NOMEM, "%s: cannot allocate %zu bytes", path, l.end);
    memcpy(buf, TOK_MAGIC, 8);
    put_u32(buf + 8, MANIFEST_TOKENS_VERSION);
    put_u32(buf + 12, (uint32_t)shard);
    put_u32(buf + 16, (uint32_t)num_shards);
    put_u32(buf + 20, n_splits);
    put_u64(buf + 24, images);
    put_u64(buf + 32, captions);
    put_u64(buf + 40, tokens);
    put_u64(buf + 48, keys_bytes);
    put_u64(buf + 56, splits_bytes);
    uint64_t c_at = 0, t_at = 0, k_at = 0;
    int rc = 0;
    for (size_t i = first; i < end && !rc; i++) {
        const ds_image_t *im = &ds->images[i];
        size_t x = i - first;
        uint16_t j = 0;
        while (strcmp(ds_str(ds, split_off[j]), ds_str(ds, im->split))) j++;
        put_u64(buf + l.cap_first + x * 8, c_at);
        put_u64(buf + l.key_off + x * 8, k_at);
        memcpy(buf + l.split + x * 2, &j, 2);
        size_t klen = strlen(ds_str(ds, im->key)) + 1;
        memcpy(buf + l.keys + k_at, ds_str(ds, im->key), klen);
        k_at += klen;
        for (uint32_t c = 0; c < im->n_captions && !rc; c++, c_at++) {
            size_t ci = im->first_caption + c;
            put_u64(buf + l.tok_first + c_at * 8, t_at);
            for (uint32_t k = 0; k < n_ids[ci]; k++, t_at++) {
                if (ids[ci][k] < 0 || ids[ci][k] > UINT16_MAX) {
                    rc = err_set(e, ERR_UNSUPPORTED, "%s: image '%s': token id %d does not fit 16 bits", path,
                                 ds_str(ds, im->key), (int)ids[ci][k]);
                    break;
                }
                uint16_t id = (uint16_t)ids[ci][k];
                memcpy(buf + l.tok + t_at * 2, &id, 2);
            }
        }
    }
    put_u64(buf + l.cap_first + images * 8, c_at);
    put_u64(buf + l.tok_first + captions * 8, t_at);
    size_t s_at = l.split_names;
    for (uint32_t j = 0; j < n_splits; j++) {
        size_t n = strlen(ds_str(ds, split_off[j])) + 1;
        memcpy(buf + s_at, ds_str(ds, split_off[j]), n);
        s_at += n;
    }
    if (!rc) rc = fs_write_atomic(path, buf, l.end, e);
    if (!rc) {
        *bytes = l.end;
        hash_hex128(buf, l.end, xxh128);
    }
    free(buf);
    return rc;
}

static uint32_t get_u32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static int tok_monotone(const uint64_t *a, uint64_t n, uint64_t last)
{
    if (a[0] != 0 || a[n] != last) return 0;
    for (uint64_t i = 0; i < n; i++)
        if (a[i + 1] < a[i]) return 0;
    return 1;
}

/* Every offset the reader follows stays inside the mapping. */
static int tok_validate(manifest_tokens *t, const char *path, int shard, int num_shards,
                        const manifest_shard_info_t *info, err_t *e)
{
    const uint8_t *p = t->map;
    if (t->len < TOK_HEADER || memcmp(p, TOK_MAGIC, 8))
        return err_set(e, ERR_FORMAT, "%s: not a clipcap token file", path);
    if (get_u32(p + 8) != MANIFEST_TOKENS_VERSION)
        return err_set(e, ERR_UNSUPPORTED, "%s: token file version %u, this clipcap reads %d", path, get_u32(p + 8),
                       MANIFEST_TOKENS_VERSION);
    t->n_splits = get_u32(p + 20);
    if (t->n_splits > MANIFEST_TOKENS_MAX_SPLITS)
        return err_set(e, ERR_FORMAT, "%s: %u splits, at most %d", path, t->n_splits, MANIFEST_TOKENS_MAX_SPLITS);
    t->images = get_u64(p + 24);
    t->captions = get_u64(p + 32);
    t->tokens = get_u64(p + 40);
    uint64_t keys_bytes = get_u64(p + 48), splits_bytes = get_u64(p + 56);
    if (get_u32(p + 12) != (uint32_t)shard || get_u32(p + 16) != (uint32_t)num_shards || t->images != info->images ||
        t->captions != info->captions)
        return err_set(e, ERR_FORMAT, "%s: header says shard %u of %u, %llu images, %llu captions; index.json "
                       "says shard %d of %d, %llu, %llu",
                       path, get_u32(p + 12), get_u32(p + 16), (unsigned long long)t->images,
                       (unsigned long long)t->captions, shard, num_shards, (unsigned long long)info->images,
                       (unsigned long long)info->captions);
    tok_layout l;
    if (tok_layout_of(t->images, t->captions, t->tokens, keys_bytes, splits_bytes, &l) || l.end != t->len)
        return err_set(e, ERR_FORMAT, "%s: %zu bytes, the header's counts need %zu", path, t->len, l.end);
    t->cap_first = (const uint64_t *)(p + l.cap_first);
    t->tok_first = (const uint64_t *)(p + l.tok_first);
    t->key_off = (const uint64_t *)(p + l.key_off);
    t->split = (const uint16_t *)(p + l.split);
    t->tok = (const uint16_t *)(p + l.tok);
    t->keys = (const char *)(p + l.keys);
    t->split_names = (const char *)(p + l.split_names);
    if (!tok_monotone(t->cap_first, t->images, t->captions) || !tok_monotone(t->tok_first, t->captions, t->tokens))
        return err_set(e, ERR_FORMAT, "%s: caption or token offsets out of order", path);
    if (keys_bytes && t->keys[keys_bytes - 1]) return err_set(e, ERR_FORMAT, "%s: keys not NUL-terminated", path);
    uint64_t nul = 0;
    for (uint64_t i = 0; i < splits_bytes; i++) nul += t->split_names[i] == 0;
    if (nul != t->n_splits || (splits_bytes && t->split_names[splits_bytes - 1]))
        return err_set(e, ERR_FORMAT, "%s: split table does not hold %u names", path, t->n_splits);
    for (uint64_t i = 0; i < t->images; i++)
        if (t->key_off[i] >= keys_bytes || t->split[i] >= t->n_splits)
            return err_set(e, ERR_FORMAT, "%s: image %llu: key or split out of range", path, (unsigned long long)i);
    return 0;
}

int manifest_tokens_open(manifest_tokens *t, const manifest_t *m, int shard, err_t *e)
{
    memset(t, 0, sizeof *t);
    const manifest_shard_info_t *info = manifest_shard_info(m, shard);
    if (!info) return err_set(e, ERR_ARG, "%s: shard %d out of range", manifest_dir(m), shard);
    if (!info->tokens_file[0])
        return err_set(e, ERR_NOTFOUND, "%s: shard %d has no token file (written by an older `clipcap shard`): "
                       "run `clipcap shard` again", manifest_dir(m), shard);
    char path[4096];
    int rc = fs_join(path, sizeof path, manifest_dir(m), info->tokens_file, e);
    if (!rc) rc = fs_map_file(path, &t->map, &t->len, e);
    if (rc) return rc;
    char hex[33];
    hash_hex128(t->map, t->len, hex);
    if (t->len != info->tokens_bytes || strcmp(hex, info->tokens_xxh128))
        return err_set(e, ERR_FORMAT, "%s: %zu bytes with checksum %s, index.json says %llu bytes, %s", path,
                       t->len, hex, (unsigned long long)info->tokens_bytes, info->tokens_xxh128);
    return tok_validate(t, path, shard, manifest_num_shards(m), info, e);
}

void manifest_tokens_close(manifest_tokens *t)
{
    fs_unmap(t->map, t->len);
    memset(t, 0, sizeof *t);
}

const char *manifest_tokens_split_name(const manifest_tokens *t, uint32_t j)
{
    const char *s = t->split_names;
    while (j--) s += strlen(s) + 1;
    return s;
}
