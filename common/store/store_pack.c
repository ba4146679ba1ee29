#include "store/store_pack.h"
#include "core/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t on the stack */
#include <xxhash.h>

#define PACK_MAGIC "CCPK"
#define PACK_HEADER_FIXED 104
#define PACK_MAX_MODELS 65535
#define PACK_KIND_EMBEDDING 1
#define PACK_KIND_FAILURE 2

enum { PACK_ENTRIES, PACK_KEYS, PACK_DATA, PACK_FAILURES, PACK_NFILES };
static const char *const pack_files[PACK_NFILES] = {"entries.bin", "keys.bin", "data.bin", "failures.bin"};

struct store_pack {
    store_pack_info info;
    char path[4096];
    const uint8_t *map[PACK_NFILES];
    size_t len[PACK_NFILES];
    uint32_t n_models;
    char (*models)[33];
};

void store_pack_name(char *out, size_t cap, uint64_t sequence)
{
    snprintf(out, cap, "gen-%012" PRIu64, sequence);
}

uint64_t store_pack_parse_name(const char *name)
{
    if (strncmp(name, "gen-", 4) != 0 || strlen(name) != 16) return 0;
    uint64_t v = 0;
    for (const char *p = name + 4; *p; p++) {
        if (*p < '0' || *p > '9') return 0;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    return v;
}

/* Low 32 bits of XXH3-64 over a then b. */
static uint32_t pack_sum32(const void *a, size_t alen, const void *b, size_t blen)
{
    XXH3_state_t st;
    XXH3_64bits_reset(&st);
    XXH3_64bits_update(&st, a, alen);
    XXH3_64bits_update(&st, b, blen);
    return (uint32_t)XXH3_64bits_digest(&st);
}

static int hexval(char c) { return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1; }

static void hash_to_bin(const char *hex, uint8_t out[16])
{
    for (int i = 0; i < 16; i++) out[i] = (uint8_t)(hexval(hex[2 * i]) << 4 | hexval(hex[2 * i + 1]));
}

static void hash_to_hex(const uint8_t in[16], char out[33])
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 16; i++) out[2 * i] = digits[in[i] >> 4], out[2 * i + 1] = digits[in[i] & 15];
    out[32] = 0;
}

/* ---- reading ---- */

void store_pack_close(store_pack *p)
{
    if (!p) return;
    for (int f = 0; f < PACK_NFILES; f++) fs_unmap(p->map[f], p->len[f]);
    free(p->models);
    free(p);
}

const store_pack_info *store_pack_get_info(const store_pack *p) { return &p->info; }
const char *store_pack_path(const store_pack *p) { return p->path; }

static int pack_parse_header(store_pack *p, const uint8_t *h, size_t n, uint64_t want[PACK_NFILES], err_t *e)
{
    if (n < PACK_HEADER_FIXED + 8 || memcmp(h, PACK_MAGIC, 4) != 0)
        return err_set(e, ERR_FORMAT, "%s/header.bin: not a feature store pack header", p->path);
    uint32_t version = (uint32_t)store_le_get(h + 4, 4);
    if (version != STORE_FORMAT_VERSION)
        return err_set(e, ERR_UNSUPPORTED, "%s: pack format version %u, this build reads version %d", p->path, version,
                       STORE_FORMAT_VERSION);
    p->n_models = (uint32_t)store_le_get(h + 96, 4);
    uint32_t entry = (uint32_t)store_le_get(h + 100, 4);
    if (p->n_models > PACK_MAX_MODELS || n != PACK_HEADER_FIXED + 32 * (size_t)p->n_models + 8 ||
        entry != STORE_PACK_ENTRY)
        return err_set(e, ERR_FORMAT, "%s/header.bin: %zu bytes do not match its %u model(s)", p->path, n,
                       p->n_models);
    if (store_le_get(h + n - 8, 8) != hash64(h, n - 8))
        return err_set(e, ERR_FORMAT, "%s/header.bin: checksum mismatch (corrupt header)", p->path);
    store_pack_info *in = &p->info;
    in->sequence = store_le_get(h + 8, 8);
    in->generation_max = store_le_get(h + 16, 8);
    in->keys = store_le_get(h + 24, 8);
    in->embeddings = store_le_get(h + 32, 8);
    in->failures = store_le_get(h + 40, 8);
    in->encoded_total = store_le_get(h + 48, 8);
    in->superseded = store_le_get(h + 56, 8);
    for (int f = 0; f < PACK_NFILES; f++) want[f] = store_le_get(h + 64 + 8 * f, 8);
    if (want[PACK_ENTRIES] / STORE_PACK_ENTRY != in->keys || want[PACK_ENTRIES] % STORE_PACK_ENTRY ||
        in->embeddings + in->failures != in->keys)
        return err_set(e, ERR_FORMAT, "%s/header.bin: counts do not add up", p->path);
    if (!(p->models = calloc(p->n_models + 1, sizeof *p->models)))
        return err_set(e, ERR_NOMEM, "%s: cannot allocate", p->path);
    for (uint32_t i = 0; i < p->n_models; i++) memcpy(p->models[i], h + PACK_HEADER_FIXED + 32 * i, 32);
    in->bytes = n;
    return 0;
}

static int pack_open_gen(store_pack **out, const char *dir, const char *name, err_t *e)
{
    store_pack *p = calloc(1, sizeof *p);
    if (!p) return err_set(e, ERR_NOMEM, "%s: cannot allocate", dir);
    snprintf(p->info.name, sizeof p->info.name, "%s", name);
    snprintf(p->path, sizeof p->path, "%s/packs/%s", dir, name);
    char path[4200];
    snprintf(path, sizeof path, "%s/header.bin", p->path);
    uint8_t *h = NULL;
    size_t n = 0;
    uint64_t want[PACK_NFILES];
    int rc = fs_read_all(path, &h, &n, e);
    if (!rc) rc = pack_parse_header(p, h, n, want, e);
    free(h);
    /* Sizes checked before use: a truncated file is an error, not a SIGBUS. */
    for (int f = 0; !rc && f < PACK_NFILES; f++) {
        snprintf(path, sizeof path, "%s/%s", p->path, pack_files[f]);
        rc = fs_map_file(path, &p->map[f], &p->len[f], e);
        if (!rc && p->len[f] != want[f])
            rc = err_set(e, ERR_FORMAT, "%s: %zu bytes, its header says %" PRIu64 " (truncated or replaced pack)",
                         path, p->len[f], want[f]);
        p->info.bytes += p->len[f];
    }
    if (rc) {
        store_pack_close(p);
        return rc;
    }
    *out = p;
    return 0;
}

int store_pack_open_current(store_pack **out, const char *dir, err_t *e)
{
    *out = NULL;
    char cur[4200];
    if (fs_join(cur, sizeof cur, dir, "CURRENT", e) != 0) return e ? e->code : ERR_ARG;
    /* A consolidation may publish a new generation and delete this one
     * between our reading CURRENT and opening its files: read it again. */
    for (int attempt = 0;; attempt++) {
        uint8_t *text = NULL;
        size_t n = 0;
        if (!fs_exists(cur)) return err_set(e, ERR_NOTFOUND, "%s: no CURRENT pack", dir);
        int rc = fs_read_all(cur, &text, &n, e);
        if (rc) return rc;
        while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r')) text[--n] = 0;
        if (!store_pack_parse_name((const char *)text)) {
            rc = err_set(e, ERR_FORMAT, "%s: '%.40s' is not a pack name (gen-NNNNNNNNNNNN)", cur, (const char *)text);
            free(text);
            return rc;
        }
        rc = pack_open_gen(out, dir, (const char *)text, e);
        free(text);
        if (rc != ERR_NOTFOUND && rc != ERR_IO) return rc;
        if (attempt == 3) return rc;
    }
}

static int pack_key_cmp(const char *a, size_t alen, const uint8_t *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    if (c) return c;
    return alen < blen ? -1 : alen > blen;
}

static int pack_entry_key(const store_pack *p, const uint8_t *ent, const uint8_t **key, size_t *keylen)
{
    uint64_t off = store_le_get(ent, 8);
    uint32_t len = (uint32_t)store_le_get(ent + 16, 4);
    if (off > p->len[PACK_KEYS] || len > p->len[PACK_KEYS] - off || len == 0 || len > STORE_MAX_KEY) return -1;
    *key = p->map[PACK_KEYS] + off;
    *keylen = len;
    return 0;
}

int64_t store_pack_find(const store_pack *p, const char *key, size_t keylen)
{
    uint64_t lo = 0, hi = p->info.keys;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        const uint8_t *k;
        size_t kl;
        /* a damaged entry reads as absent here; store_pack_item_get names it */
        if (pack_entry_key(p, p->map[PACK_ENTRIES] + mid * STORE_PACK_ENTRY, &k, &kl) != 0) return -1;
        int c = pack_key_cmp(key, keylen, k, kl);
        if (c == 0) return (int64_t)mid;
        if (c < 0) hi = mid;
        else lo = mid + 1;
    }
    return -1;
}

int store_pack_item_get(const store_pack *p, uint64_t i, int with_value, store_pack_item *out, err_t *e)
{
    memset(out, 0, sizeof *out);
    if (i >= p->info.keys) return err_set(e, ERR_INTERNAL, "%s: entry %" PRIu64 " out of range", p->path, i);
    const uint8_t *ent = p->map[PACK_ENTRIES] + i * STORE_PACK_ENTRY, *key;
    size_t keylen;
    if (pack_entry_key(p, ent, &key, &keylen) != 0)
        return err_set(e, ERR_FORMAT, "%s: entry %" PRIu64 ": key outside keys.bin (corrupt pack)", p->path, i);
    out->key = (const char *)key;
    out->keylen = keylen;
    if ((uint32_t)store_le_get(ent + 88, 4) != pack_sum32(ent, 88, key, keylen))
        return err_set(e, ERR_FORMAT, "%s: key '%.*s': entry checksum mismatch (corrupt pack)", p->path, (int)keylen,
                       key);
    int kind = ent[28];
    uint64_t voff = store_le_get(ent + 8, 8);
    uint32_t vlen = (uint32_t)store_le_get(ent + 20, 4);
    int file = kind == PACK_KIND_FAILURE ? PACK_FAILURES : PACK_DATA;
    const char *bad = NULL;
    if (kind != PACK_KIND_EMBEDDING && kind != PACK_KIND_FAILURE) bad = "unknown entry kind";
    else if (voff > p->len[file] || vlen > p->len[file] - voff) bad = "value outside its file";
    if (bad) return err_set(e, ERR_FORMAT, "%s: key '%.*s': %s (corrupt pack)", p->path, (int)keylen, key, bad);
    const uint8_t *val = p->map[file] + voff;
    if ((with_value || kind == PACK_KIND_FAILURE) && (uint32_t)store_le_get(ent + 92, 4) != pack_sum32(val, vlen, "", 0))
        return err_set(e, ERR_FORMAT, "%s: key '%.*s': value checksum mismatch (corrupt pack)", p->path, (int)keylen,
                       key);
    if (kind == PACK_KIND_FAILURE) {
        out->is_failure = 1;
        if (store_failure_decode(val, vlen, &out->fail, e) != 0)
            return err_wrap(e, "%s: failures '%.*s'", p->path, (int)keylen, key);
        return 0;
    }
    store_record *r = &out->rec;
    r->version = STORE_FORMAT_VERSION;
    r->dtype = (enum store_dtype)ent[29];
    r->dim = (uint32_t)store_le_get(ent + 24, 4);
    uint32_t model = (uint32_t)store_le_get(ent + 30, 2);
    if (r->dtype != STORE_FP32 && r->dtype != STORE_FP16) bad = "unknown dtype";
    else if (r->dim == 0 || r->dim > STORE_MAX_DIM || (size_t)r->dim * store_dtype_size(r->dtype) != vlen)
        bad = "dim does not match the value's length";
    else if (model >= p->n_models) bad = "model index outside the header's table";
    if (bad) return err_set(e, ERR_FORMAT, "%s: key '%.*s': %s (corrupt pack)", p->path, (int)keylen, key, bad);
    r->width = (uint32_t)store_le_get(ent + 32, 4);
    r->height = (uint32_t)store_le_get(ent + 36, 4);
    r->generation = store_le_get(ent + 40, 8);
    hash_to_hex(ent + 48, r->content_hash);
    r->src_size = store_le_get(ent + 64, 8);
    r->src_mtime_ns = (int64_t)store_le_get(ent + 72, 8);
    r->src_offset = store_le_get(ent + 80, 8);
    memcpy(r->model, p->models[model], 33);
    r->payload = val;
    return 0;
}

/* ---- writing ---- */

struct store_pack_writer {
    char dir[4096], tmp[4200], final[4200];
    FILE *f[PACK_NFILES];
    uint64_t off[PACK_NFILES];
    uint64_t sequence, generation_max, keys, embeddings, failures;
    uint32_t n_models, cap_models;
    char (*models)[33];
    char *last; /* the previous key, for the order check */
    size_t lastlen, lastcap;
    uint8_t *buf;
    size_t bufcap;
};

/* A generation's directory is ours alone: every file in it goes (also the
 * header's temporary file when a writer was killed in fs_write_atomic). */
void store_pack_remove_dir(const char *path)
{
    err_t e = {0};
    if (fs_empty_dir(path, &e)) log_msg(LOG_WARN, "store: %s", e.msg);
    if (rmdir(path) != 0 && errno != ENOENT) log_msg(LOG_WARN, "store: cannot remove %s: %s", path, strerror(errno));
}

void store_pack_writer_abort(store_pack_writer *w)
{
    if (!w) return;
    for (int f = 0; f < PACK_NFILES; f++)
        if (w->f[f]) fclose(w->f[f]);
    store_pack_remove_dir(w->tmp);
    free(w->models);
    free(w->last);
    free(w->buf);
    free(w);
}

int store_pack_writer_open(store_pack_writer **out, const char *dir, uint64_t sequence, err_t *e)
{
    *out = NULL;
    store_pack_writer *w = calloc(1, sizeof *w);
    if (!w) return err_set(e, ERR_NOMEM, "%s: cannot allocate a pack writer", dir);
    snprintf(w->dir, sizeof w->dir, "%s", dir);
    char name[32];
    store_pack_name(name, sizeof name, sequence);
    snprintf(w->final, sizeof w->final, "%s/packs/%s", dir, name);
    snprintf(w->tmp, sizeof w->tmp, "%s.tmp-%d", w->final, (int)getpid());
    w->sequence = sequence;
    int rc = fs_mkdirs(w->tmp, e);
    for (int f = 0; !rc && f < PACK_NFILES; f++) {
        char path[4300];
        snprintf(path, sizeof path, "%s/%s", w->tmp, pack_files[f]);
        if (!(w->f[f] = fopen(path, "wbx")))
            rc = err_set(e, ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    }
    if (rc) {
        store_pack_writer_abort(w);
        return rc;
    }
    *out = w;
    return 0;
}

static int pack_write(store_pack_writer *w, int f, const void *data, size_t n, err_t *e)
{
    if (n && fwrite(data, 1, n, w->f[f]) != n)
        return err_set(e, ERR_IO, "%s/%s: write failed: %s", w->tmp, pack_files[f], strerror(errno));
    w->off[f] += n;
    return 0;
}

static int pack_model_index(store_pack_writer *w, const char *model, uint16_t *out, err_t *e)
{
    for (uint32_t i = 0; i < w->n_models; i++) {
        if (!strcmp(w->models[i], model)) {
            *out = (uint16_t)i;
            return 0;
        }
    }
    if (w->n_models == PACK_MAX_MODELS)
        return err_set(e, ERR_LIMIT, "%s: more than %d model fingerprints in one store", w->tmp, PACK_MAX_MODELS);
    if (w->n_models == w->cap_models) {
        uint32_t cap = w->cap_models ? 2 * w->cap_models : 4;
        char(*m)[33] = realloc(w->models, cap * sizeof *m);
        if (!m) return err_set(e, ERR_NOMEM, "%s: cannot allocate", w->tmp);
        w->models = m;
        w->cap_models = cap;
    }
    snprintf(w->models[w->n_models], 33, "%s", model);
    *out = (uint16_t)w->n_models++;
    return 0;
}

int store_pack_writer_add(store_pack_writer *w, const char *key, size_t keylen, const store_record *rec,
                          const float *emb, const store_failure *f, err_t *e)
{
    if (keylen == 0 || keylen > STORE_MAX_KEY)
        return err_set(e, ERR_ARG, "%s: key '%.*s': length %zu outside 1..%d", w->tmp, (int)(keylen < 64 ? keylen : 64),
                       key, keylen, STORE_MAX_KEY);
    if (w->keys && pack_key_cmp(key, keylen, (const uint8_t *)w->last, w->lastlen) <= 0)
        return err_set(e, ERR_INTERNAL, "%s: key '%.*s' out of order", w->tmp, (int)keylen, key);
    uint8_t ent[STORE_PACK_ENTRY] = {0};
    const void *val;
    size_t vlen;
    char *json = NULL;
    int file, rc;
    uint64_t gen;
    if (rec) {
        size_t esz = store_dtype_size(rec->dtype);
        vlen = (size_t)rec->dim * esz;
        if (vlen > w->bufcap) {
            uint8_t *b = realloc(w->buf, vlen);
            if (!b) return err_set(e, ERR_NOMEM, "%s: cannot allocate", w->tmp);
            w->buf = b;
            w->bufcap = vlen;
        }
        store_payload_encode(rec->dtype, rec->dim, emb, w->buf);
        val = w->buf;
        file = PACK_DATA;
        /* aligned to the element size: the values read in place */
        static const uint8_t zeros[8] = {0};
        if ((rc = pack_write(w, PACK_DATA, zeros, (esz - w->off[PACK_DATA] % esz) % esz, e)) != 0) return rc;
        uint16_t model = 0;
        if ((rc = pack_model_index(w, rec->model, &model, e)) != 0) return rc;
        ent[28] = PACK_KIND_EMBEDDING;
        ent[29] = (uint8_t)rec->dtype;
        store_le_put(ent + 24, rec->dim, 4);
        store_le_put(ent + 30, model, 2);
        store_le_put(ent + 32, rec->width, 4);
        store_le_put(ent + 36, rec->height, 4);
        hash_to_bin(rec->content_hash, ent + 48);
        store_le_put(ent + 64, rec->src_size, 8);
        store_le_put(ent + 72, (uint64_t)rec->src_mtime_ns, 8);
        store_le_put(ent + 80, rec->src_offset, 8);
        gen = rec->generation;
        w->embeddings++;
    } else {
        if ((rc = store_failure_encode(f, &json, &vlen, e)) != 0) return err_wrap(e, "%s: key '%.*s'", w->tmp, (int)keylen, key);
        val = json;
        file = PACK_FAILURES;
        ent[28] = PACK_KIND_FAILURE;
        gen = f->generation;
        w->failures++;
    }
    store_le_put(ent, w->off[PACK_KEYS], 8);
    store_le_put(ent + 8, w->off[file], 8);
    store_le_put(ent + 16, keylen, 4);
    store_le_put(ent + 20, vlen, 4);
    store_le_put(ent + 40, gen, 8);
    store_le_put(ent + 88, pack_sum32(ent, 88, key, keylen), 4);
    store_le_put(ent + 92, pack_sum32(val, vlen, "", 0), 4);
    rc = pack_write(w, file, val, vlen, e);
    free(json);
    if (!rc) rc = pack_write(w, PACK_KEYS, key, keylen, e);
    if (!rc) rc = pack_write(w, PACK_ENTRIES, ent, sizeof ent, e);
    if (rc) return rc;
    if (gen > w->generation_max) w->generation_max = gen;
    if (keylen > w->lastcap) {
        char *l = realloc(w->last, keylen);
        if (!l) return err_set(e, ERR_NOMEM, "%s: cannot allocate", w->tmp);
        w->last = l;
        w->lastcap = keylen;
    }
    memcpy(w->last, key, keylen);
    w->lastlen = keylen;
    w->keys++;
    return 0;
}

static int pack_sync_close(FILE **fp, const char *path, err_t *e)
{
    FILE *f = *fp;
    *fp = NULL;
    int rc = 0;
    if (fflush(f) != 0 || fsync(fileno(f)) != 0) rc = err_set(e, ERR_IO, "%s: cannot sync: %s", path, strerror(errno));
    if (fclose(f) != 0 && !rc) rc = err_set(e, ERR_IO, "%s: cannot close: %s", path, strerror(errno));
    return rc;
}

int store_pack_writer_commit(store_pack_writer *w, uint64_t encoded_total, uint64_t superseded, err_t *e)
{
    char path[4300];
    int rc = 0;
    for (int f = 0; !rc && f < PACK_NFILES; f++) {
        snprintf(path, sizeof path, "%s/%s", w->tmp, pack_files[f]);
        rc = pack_sync_close(&w->f[f], path, e);
    }
    size_t hlen = PACK_HEADER_FIXED + 32 * (size_t)w->n_models + 8;
    uint8_t *h = rc ? NULL : calloc(1, hlen);
    if (!rc && !h) rc = err_set(e, ERR_NOMEM, "%s: cannot allocate the header", w->tmp);
    if (!rc) {
        memcpy(h, PACK_MAGIC, 4);
        store_le_put(h + 4, STORE_FORMAT_VERSION, 4);
        const uint64_t fields[] = {w->sequence,    w->generation_max, w->keys,        w->embeddings,
                                   w->failures,    encoded_total,     superseded,     w->off[PACK_ENTRIES],
                                   w->off[PACK_KEYS], w->off[PACK_DATA], w->off[PACK_FAILURES]};
        for (size_t i = 0; i < sizeof fields / sizeof *fields; i++) store_le_put(h + 8 + 8 * i, fields[i], 8);
        store_le_put(h + 96, w->n_models, 4);
        store_le_put(h + 100, STORE_PACK_ENTRY, 4);
        for (uint32_t i = 0; i < w->n_models; i++) memcpy(h + PACK_HEADER_FIXED + 32 * i, w->models[i], 32);
        store_le_put(h + hlen - 8, hash64(h, hlen - 8), 8);
        snprintf(path, sizeof path, "%s/header.bin", w->tmp);
        rc = fs_write_atomic(path, h, hlen, e); /* also fsyncs the temporary directory */
    }
    free(h);
    /* The generation is complete and durable before it gets its name, and
     * has its name before CURRENT points at it. */
    if (!rc && rename(w->tmp, w->final) != 0)
        rc = err_set(e, ERR_IO, "%s: cannot rename to %s: %s", w->tmp, w->final, strerror(errno));
    if (!rc) rc = fs_fsync_dir_of(w->final, e);
    if (!rc) {
        char cur[4200], text[40];
        int n = snprintf(text, sizeof text, "%s\n", strrchr(w->final, '/') + 1);
        snprintf(cur, sizeof cur, "%s/CURRENT", w->dir);
        rc = fs_write_atomic(cur, text, (size_t)n, e);
    }
    if (rc) {
        store_pack_writer_abort(w);
        return rc;
    }
    free(w->models);
    free(w->last);
    free(w->buf);
    free(w);
    return 0;
}
