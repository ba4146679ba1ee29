#include "store/store.h"
#include "core/fsutil.h"
#include "store/store_pack.h"
#include "store/store_envfile.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define STORE_DB_EMBEDDINGS "embeddings"
#define STORE_DB_FAILURES "failures"
#define STORE_DB_META "meta"
/* Doubling stops here: a store this large means something is wrong. */
#define STORE_MAX_MAPSIZE ((size_t)1 << 42)

struct store_env {
    MDB_env *env;
    MDB_dbi emb, fail, meta;
    int writable;
    char name[64];
    char path[4096];
};

struct store {
    int n; /* environments in the union: the caller's own, or (consolidating) every one */
    store_env **envs;
    store_env *own;   /* borrowed: not closed by store_close */
    store_pack *pack; /* CURRENT's generation; NULL when there is none yet */
    int pending;      /* writer environments in the directory that readers do not open */
};

void store_env_name(char *out, size_t cap, int rank, int size) { snprintf(out, cap, "rank-%05d-of-%05d", rank, size); }

/* LMDB turns a short write (the file system filled up during a commit)
 * into EIO and drops the errno: one block written next to the environment
 * shows what the file system says now (no space, quota exceeded). */
static int store_write_errno(const store_env *v, int rc)
{
    if (rc != EIO) return rc;
    int fd = open(v->path, O_TMPFILE | O_WRONLY, 0600);
    if (fd < 0) return rc;
    static const char block[4096];
    ssize_t n = write(fd, block, sizeof block);
    int err = n < 0 ? errno : (size_t)n < sizeof block ? ENOSPC : 0;
    close(fd);
    return err == ENOSPC || err == EDQUOT ? err : rc;
}

static int store_mdb_err(err_t *e, const store_env *v, int rc, const char *what)
{
    return err_set(e, ERR_STORE, "%s: %s: %s", v->path, what, mdb_strerror(store_write_errno(v, rc)));
}

/* Another process may have grown the map since we opened the environment:
 * adopt the new size (allowed because we hold no transaction here). */
static int store_txn_begin(store_env *v, unsigned flags, MDB_txn **txn, err_t *e)
{
    int rc = mdb_txn_begin(v->env, NULL, flags, txn);
    if (rc == MDB_MAP_RESIZED) {
        rc = mdb_env_set_mapsize(v->env, 0);
        if (rc == 0) rc = mdb_txn_begin(v->env, NULL, flags, txn);
    }
    return rc ? store_mdb_err(e, v, rc, "cannot begin a transaction") : 0;
}

static int store_meta_get_u64(store_env *v, MDB_txn *txn, const char *name, uint64_t *out, err_t *e)
{
    MDB_val k = {strlen(name), (void *)name}, d;
    *out = 0;
    int rc = mdb_get(txn, v->meta, &k, &d);
    if (rc == MDB_NOTFOUND) return 0;
    if (rc) return store_mdb_err(e, v, rc, "cannot read meta");
    char buf[32];
    if (d.mv_size == 0 || d.mv_size >= sizeof buf)
        return err_set(e, ERR_FORMAT, "%s: meta '%s': %zu bytes is not a number", v->path, name, d.mv_size);
    memcpy(buf, d.mv_data, d.mv_size);
    buf[d.mv_size] = 0;
    char *end = NULL;
    errno = 0;
    unsigned long long x = strtoull(buf, &end, 10);
    if (errno || *end) return err_set(e, ERR_FORMAT, "%s: meta '%s': '%s' is not a number", v->path, name, buf);
    *out = x;
    return 0;
}

/* Returns the LMDB code: the writer retries on MDB_MAP_FULL. */
static int store_meta_put_u64(store_env *v, MDB_txn *txn, const char *name, uint64_t x)
{
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%" PRIu64, x);
    MDB_val k = {strlen(name), (void *)name}, d = {(size_t)n, buf};
    return mdb_put(txn, v->meta, &k, &d, 0);
}

static int store_env_open_at(store_env **out, const char *path, const char *name, int writable, size_t mapsize,
                             err_t *e)
{
    *out = NULL;
    store_env *v = calloc(1, sizeof *v);
    if (!v) return err_set(e, ERR_NOMEM, "%s: cannot allocate", path);
    snprintf(v->path, sizeof v->path, "%s", path);
    snprintf(v->name, sizeof v->name, "%s", name);
    v->writable = writable;
    MDB_txn *txn = NULL;
    int rc = mdb_env_create(&v->env);
    if (rc) {
        v->env = NULL;
        rc = store_mdb_err(e, v, rc, "cannot create an LMDB environment");
        goto fail;
    }
    if ((rc = mdb_env_set_maxdbs(v->env, 4)) != 0 ||
        (writable && (rc = mdb_env_set_mapsize(v->env, mapsize ? mapsize : STORE_DEFAULT_MAPSIZE)) != 0)) {
        rc = store_mdb_err(e, v, rc, "cannot configure the environment");
        goto fail;
    }
    char data[4200];
    snprintf(data, sizeof data, "%s/data.mdb", path);
    if ((rc = store_check_env_file(data, e)) != 0) goto fail;
    /* MDB_NOTLS: read transactions are not tied to a thread (the extractor's
     * event loop may run callbacks on its own thread). Default sync flags:
     * a committed batch survives a crash. */
    rc = mdb_env_open(v->env, path, MDB_NOTLS | (writable ? 0 : MDB_RDONLY), 0644);
    if (rc) {
        rc = store_mdb_err(e, v, rc, "cannot open the LMDB environment");
        goto fail;
    }
    if (writable) {
        /* Reader slots of killed processes would pin old pages forever and
         * make the file grow; clear them before writing. */
        int dead = 0;
        if ((rc = mdb_reader_check(v->env, &dead)) != 0) {
            rc = store_mdb_err(e, v, rc, "cannot check stale readers");
            goto fail;
        }
        if (dead) log_msg(LOG_DEBUG, "%s: cleared %d stale reader slot(s)", path, dead);
    }
    if ((rc = store_txn_begin(v, writable ? 0 : MDB_RDONLY, &txn, e)) != 0) goto fail;
    unsigned dflags = writable ? MDB_CREATE : 0;
    if ((rc = mdb_dbi_open(txn, STORE_DB_EMBEDDINGS, dflags, &v->emb)) != 0 ||
        (rc = mdb_dbi_open(txn, STORE_DB_FAILURES, dflags, &v->fail)) != 0 ||
        (rc = mdb_dbi_open(txn, STORE_DB_META, dflags, &v->meta)) != 0) {
        /* Missing databases in a read-only open: the writer was killed
         * between creating the environment and its first commit. */
        rc = rc == MDB_NOTFOUND
                 ? err_set(e, ERR_NOTFOUND, "%s: holds no committed data (named databases missing)", path)
                 : store_mdb_err(e, v, rc, "cannot open the named databases");
        goto fail;
    }
    uint64_t version = 0;
    if ((rc = store_meta_get_u64(v, txn, "format_version", &version, e)) != 0) goto fail;
    if (version == 0 && writable) {
        if ((rc = store_meta_put_u64(v, txn, "format_version", STORE_FORMAT_VERSION)) != 0) {
            rc = store_mdb_err(e, v, rc, "cannot write the format version");
            goto fail;
        }
    } else if (writable ? version != STORE_FORMAT_VERSION : version < 1 || version > STORE_FORMAT_VERSION) {
        /* Version 1 environments are read (by consolidation), never extended. */
        rc = err_set(e, ERR_UNSUPPORTED, "%s: feature store format version %" PRIu64 ", this build %s version %d",
                     path, version, writable ? "writes" : "reads up to", STORE_FORMAT_VERSION);
        goto fail;
    }
    rc = mdb_txn_commit(txn);
    txn = NULL;
    if (rc) {
        rc = store_mdb_err(e, v, rc, "cannot commit");
        goto fail;
    }
    *out = v;
    return 0;
fail:
    if (txn) mdb_txn_abort(txn);
    store_env_close(v);
    return rc;
}

int store_env_create(store_env **out, const char *dir, const char *name, size_t initial_mapsize, err_t *e)
{
    char path[4096];
    if (fs_join(path, sizeof path, dir, name, e) != 0) return e ? e->code : ERR_ARG;
    if (fs_mkdirs(path, e) != 0) return e ? e->code : ERR_IO;
    return store_env_open_at(out, path, name, 1, initial_mapsize, e);
}

void store_env_close(store_env *v)
{
    if (!v) return;
    if (v->env) mdb_env_close(v->env);
    free(v);
}

size_t store_env_mapsize(store_env *v)
{
    MDB_envinfo info;
    if (mdb_env_info(v->env, &info) != 0) return 0;
    return info.me_mapsize;
}

const char *store_env_path(const store_env *v) { return v->path; }

static int store_check_key(const char *key, err_t *e)
{
    size_t n = strlen(key);
    if (n == 0 || n > STORE_MAX_KEY)
        return err_set(e, ERR_ARG, "key '%.64s': length %zu outside 1..%d bytes", key, n, STORE_MAX_KEY);
    return 0;
}

/* Puts one batch into txn. LMDB failures are ERR_STORE with the LMDB code
 * in *mdb_rc, so that the caller can grow the map on MDB_MAP_FULL. */
static int store_write_items(store_env *v, MDB_txn *txn, const store_put *items, size_t n, int *mdb_rc, err_t *e)
{
    uint64_t gen_max = 0, encoded = 0;
    int rc = 0;
    *mdb_rc = 0;
    if ((rc = store_meta_get_u64(v, txn, "generation_max", &gen_max, e)) != 0) return rc;
    if ((rc = store_meta_get_u64(v, txn, "encoded_total", &encoded, e)) != 0) return rc;
    for (size_t i = 0; i < n && !*mdb_rc; i++) {
        const store_put *it = &items[i];
        MDB_val k = {strlen(it->key), (void *)it->key};
        uint64_t gen;
        int del;
        if (it->rec) {
            size_t sz = store_record_size(it->rec->dtype, it->rec->dim);
            MDB_val d = {sz, NULL};
            if ((*mdb_rc = mdb_put(txn, v->emb, &k, &d, MDB_RESERVE)) != 0) break;
            if ((rc = store_record_encode(it->rec, it->embedding, d.mv_data, sz, e)) != 0)
                return err_wrap(e, "%s: key '%s'", v->path, it->key);
            del = mdb_del(txn, v->fail, &k, NULL);
            gen = it->rec->generation;
            if (!it->copied) encoded++;
        } else {
            char *json = NULL;
            size_t len = 0;
            if ((rc = store_failure_encode(it->failure, &json, &len, e)) != 0)
                return err_wrap(e, "%s: key '%s'", v->path, it->key);
            MDB_val d = {len, json};
            *mdb_rc = mdb_put(txn, v->fail, &k, &d, 0);
            free(json);
            if (*mdb_rc) break;
            del = mdb_del(txn, v->emb, &k, NULL);
            gen = it->failure->generation;
        }
        if (del && del != MDB_NOTFOUND) *mdb_rc = del;
        if (gen > gen_max) gen_max = gen;
    }
    if (!*mdb_rc) *mdb_rc = store_meta_put_u64(v, txn, "generation_max", gen_max);
    if (!*mdb_rc) *mdb_rc = store_meta_put_u64(v, txn, "encoded_total", encoded);
    return *mdb_rc ? store_mdb_err(e, v, *mdb_rc, "cannot write a batch") : 0;
}

int store_env_write(store_env *v, const store_put *items, size_t n, err_t *e)
{
    if (!v->writable) return err_set(e, ERR_ARG, "%s: opened read-only", v->path);
    for (size_t i = 0; i < n; i++) {
        if (store_check_key(items[i].key, e) != 0) return err_wrap(e, "%s", v->path);
        if (!items[i].rec && !items[i].failure)
            return err_set(e, ERR_ARG, "%s: key '%s': neither an embedding nor a failure", v->path, items[i].key);
    }
    for (;;) {
        MDB_txn *txn = NULL;
        int mdb_rc = 0;
        int rc = store_txn_begin(v, 0, &txn, e);
        if (rc) return rc;
        rc = store_write_items(v, txn, items, n, &mdb_rc, e);
        if (rc) {
            mdb_txn_abort(txn);
            if (mdb_rc != MDB_MAP_FULL) return rc;
        } else {
            mdb_rc = mdb_txn_commit(txn); /* frees txn either way */
            if (mdb_rc == 0) return 0;
            if (mdb_rc != MDB_MAP_FULL) return store_mdb_err(e, v, mdb_rc, "cannot commit a batch");
        }
        size_t cur = store_env_mapsize(v);
        if (cur == 0 || cur >= STORE_MAX_MAPSIZE)
            return err_set(e, ERR_STORE, "%s: map full at %zu bytes and cannot grow further", v->path, cur);
        if ((rc = mdb_env_set_mapsize(v->env, cur * 2)) != 0) return store_mdb_err(e, v, rc, "cannot grow the map");
        log_msg(LOG_DEBUG, "%s: map grown to %zu KiB", v->path, (cur * 2) >> 10);
    }
}

/* ---- the directory: environments and packs ---- */

static int store_is_env_name(const char *name)
{
    int r = -1, n = -1, end = 0;
    if (sscanf(name, "rank-%5d-of-%5d%n", &r, &n, &end) != 2 || name[end] != 0) return 0;
    char canon[64];
    store_env_name(canon, sizeof canon, r, n);
    return !strcmp(canon, name) && r >= 0 && r < n;
}

static int store_cmp_names(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void store_free_names(char **names, int count)
{
    for (int i = 0; i < count; i++) free(names[i]);
    free(names);
}

/* Names in dir that keep() accepts, sorted. A missing dir is an empty list
 * when missing_ok, else ERR_NOTFOUND. */
static int store_list(const char *dir, int (*keep)(const char *dir, const char *name), int missing_ok, char ***names,
                      int *count, err_t *e)
{
    *names = NULL;
    *count = 0;
    DIR *d = opendir(dir);
    if (!d && errno == ENOENT && missing_ok) return 0;
    if (!d) return err_set(e, errno == ENOENT ? ERR_NOTFOUND : ERR_IO, "%s: cannot open the store: %s", dir,
                           strerror(errno));
    int cap = 0, rc = 0;
    struct dirent *de;
    while (!rc && (de = readdir(d)) != NULL) {
        if (!keep(dir, de->d_name)) continue;
        if (*count == cap) {
            cap = cap ? 2 * cap : 8;
            char **nn = realloc(*names, (size_t)cap * sizeof *nn);
            if (!nn) rc = err_set(e, ERR_NOMEM, "%s: cannot list the store", dir);
            else *names = nn;
        }
        if (!rc && !((*names)[*count] = strdup(de->d_name))) rc = err_set(e, ERR_NOMEM, "%s: cannot list", dir);
        if (!rc) (*count)++;
    }
    closedir(d);
    if (*count > 1) qsort(*names, (size_t)*count, sizeof **names, store_cmp_names);
    return rc;
}

/* A writer environment: its name, with a data file (one created but never
 * initialised holds nothing). */
static int store_keep_env(const char *dir, const char *name)
{
    if (!store_is_env_name(name)) return 0;
    char data[4200];
    struct stat st;
    snprintf(data, sizeof data, "%s/%s/data.mdb", dir, name);
    return stat(data, &st) == 0 && st.st_size > 0;
}

static int store_keep_any_env(const char *dir, const char *name) { return (void)dir, store_is_env_name(name); }

/* Generations and the temporary directories of unfinished ones. */
static int store_keep_pack_dir(const char *dir, const char *name)
{
    (void)dir;
    return store_pack_parse_name(name) || (!strncmp(name, "gen-", 4) && strstr(name, ".tmp-"));
}

/* ---- the reader: CURRENT's pack, plus the caller's own environment ---- */

void store_close(store *s)
{
    if (!s) return;
    for (int i = 0; i < s->n; i++)
        if (s->envs[i] != s->own) store_env_close(s->envs[i]);
    free(s->envs);
    store_pack_close(s->pack);
    free(s);
}

/* The pack (if any) and room for `envs` environments. */
static int store_new(store **out, const char *dir, int envs, err_t *e)
{
    store *s = calloc(1, sizeof *s);
    if (!s || !(s->envs = calloc((size_t)envs + 1, sizeof *s->envs))) {
        free(s);
        return err_set(e, ERR_NOMEM, "%s: cannot allocate", dir);
    }
    int rc = store_pack_open_current(&s->pack, dir, e);
    if (rc == ERR_NOTFOUND) rc = 0;
    if (rc) {
        store_close(s);
        return rc;
    }
    *out = s;
    return 0;
}

int store_open(store **out, const char *dir, store_env *own, err_t *e)
{
    *out = NULL;
    char **names = NULL;
    int count = 0;
    store *s = NULL;
    int rc = store_list(dir, store_keep_env, 0, &names, &count, e);
    if (!rc) rc = store_new(&s, dir, 1, e);
    if (!rc) {
        s->own = own;
        if (own) s->envs[s->n++] = own;
        for (int i = 0; i < count; i++) s->pending += !own || strcmp(names[i], own->name) != 0;
        if (!s->pack && !own)
            rc = s->pending ? err_set(e, ERR_UNSUPPORTED,
                                      "%s: %d writer environment(s) and no consolidated pack (a version 1 store, or "
                                      "an extract that did not finish): run `clipcap store consolidate --store %s`",
                                      dir, s->pending, dir)
                            : err_set(e, ERR_NOTFOUND, "%s: no feature store here (no CURRENT pack)", dir);
        else if (s->pending && !own)
            log_msg(LOG_WARN, "store: %s: %d writer environment(s) not consolidated yet (an extract is running or "
                    "was killed); reading %s without them", dir, s->pending, store_pack_get_info(s->pack)->name);
    }
    store_free_names(names, count);
    if (rc) {
        store_close(s);
        return rc;
    }
    *out = s;
    return 0;
}

const store_pack_info *store_current_pack(const store *s) { return s->pack ? store_pack_get_info(s->pack) : NULL; }

int store_pending_envs(const store *s) { return s->pending; }

int store_env_stat(store_env *v, store_env_info *out, err_t *e)
{
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "%s", v->name);
    MDB_txn *txn = NULL;
    int rc = store_txn_begin(v, MDB_RDONLY, &txn, e);
    if (rc) return rc;
    MDB_stat st;
    if ((rc = mdb_stat(txn, v->emb, &st)) == 0) {
        out->embeddings = st.ms_entries;
        if ((rc = mdb_stat(txn, v->fail, &st)) == 0) out->failures = st.ms_entries;
    }
    if (rc) rc = store_mdb_err(e, v, rc, "cannot stat");
    if (!rc) rc = store_meta_get_u64(v, txn, "encoded_total", &out->encoded_total, e);
    if (!rc) rc = store_meta_get_u64(v, txn, "generation_max", &out->generation_max, e);
    mdb_txn_abort(txn);
    out->mapsize = store_env_mapsize(v);
    return rc;
}

int store_generation_max(store *s, uint64_t *out, err_t *e)
{
    *out = s->pack ? store_pack_get_info(s->pack)->generation_max : 0;
    for (int i = 0; i < s->n; i++) {
        store_env_info info;
        int rc = store_env_stat(s->envs[i], &info, e);
        if (rc) return rc;
        if (info.generation_max > *out) *out = info.generation_max;
    }
    return 0;
}

/* Decode one environment value into a candidate entry. */
static int store_decode_entry(const store_env *v, int env_index, const char *key, size_t keylen, int is_failure,
                              const MDB_val *d, store_entry *ent, err_t *e)
{
    memset(ent, 0, sizeof *ent);
    ent->env = env_index;
    int rc;
    if (is_failure) {
        ent->kind = STORE_ENTRY_FAILURE;
        rc = store_failure_decode(d->mv_data, d->mv_size, &ent->fail, e);
    } else {
        ent->kind = STORE_ENTRY_EMBEDDING;
        rc = store_record_decode(d->mv_data, d->mv_size, &ent->rec, e);
    }
    if (rc) return err_wrap(e, "%s: %s '%.*s'", v->path, is_failure ? "failures" : "embeddings", (int)keylen, key);
    return 0;
}

/* The pack's entry i as a candidate; the pack ranks after every
 * environment on a tie (index s->n). */
static int store_pack_candidate(store *s, uint64_t i, int with_value, store_entry *ent, err_t *e)
{
    memset(ent, 0, sizeof *ent);
    store_pack_item item;
    int rc = store_pack_item_get(s->pack, i, with_value, &item, e);
    if (rc) return rc;
    ent->env = s->n;
    ent->kind = item.is_failure ? STORE_ENTRY_FAILURE : STORE_ENTRY_EMBEDDING;
    ent->rec = item.rec;
    ent->fail = item.fail;
    return 0;
}

static uint64_t store_entry_generation(const store_entry *x)
{
    return x->kind == STORE_ENTRY_EMBEDDING ? x->rec.generation : x->fail.generation;
}

/* Keep the newest of best and cand; ties keep the earlier source so the
 * answer does not depend on the order candidates are met in. */
static void store_pick(store_entry *best, const store_entry *cand)
{
    if (best->kind == STORE_ENTRY_NONE) {
        *best = *cand;
        return;
    }
    int shadowed = best->shadowed + 1;
    uint64_t gb = store_entry_generation(best), gc = store_entry_generation(cand);
    if (gc > gb || (gc == gb && cand->env < best->env)) *best = *cand;
    best->shadowed = shadowed;
}

static int store_check_emb(const store_entry *ent, const char *where, const char *key, uint32_t cap, err_t *e)
{
    if (ent->rec.dim <= cap) return 0;
    return err_set(e, ERR_FORMAT, "%s: embeddings '%s': dim %u, more than the %u expected", where, key, ent->rec.dim,
                   cap);
}

/* store_lookup, plus (emb != NULL) the newest embedding as float32,
 * converted while its environment's read transaction still holds it. */
static int store_lookup_into(store *s, const char *key, store_entry *out, float *emb, uint32_t cap, err_t *e)
{
    memset(out, 0, sizeof *out);
    if (store_check_key(key, e) != 0) return e ? e->code : ERR_ARG;
    MDB_val k = {strlen(key), (void *)key};
    for (int i = 0; i < s->n; i++) {
        store_env *v = s->envs[i];
        MDB_txn *txn = NULL;
        int rc = store_txn_begin(v, MDB_RDONLY, &txn, e);
        if (rc) return rc;
        for (int f = 0; f < 2 && !rc; f++) {
            MDB_val d;
            int g = mdb_get(txn, f ? v->fail : v->emb, &k, &d);
            if (g == MDB_NOTFOUND) continue;
            if (g) {
                rc = store_mdb_err(e, v, g, "cannot read");
                break;
            }
            store_entry cand;
            rc = store_decode_entry(v, i, key, k.mv_size, f, &d, &cand, e);
            if (rc) break;
            store_pick(out, &cand);
            if (emb && out->kind == STORE_ENTRY_EMBEDDING && out->env == i &&
                !(rc = store_check_emb(out, v->path, key, cap, e)))
                store_record_embedding(&out->rec, emb);
        }
        mdb_txn_abort(txn);
        if (rc) return rc;
    }
    int64_t at = s->pack ? store_pack_find(s->pack, key, k.mv_size) : -1;
    if (at >= 0) {
        store_entry cand;
        int rc = store_pack_candidate(s, (uint64_t)at, emb != NULL, &cand, e);
        if (rc) return rc;
        store_pick(out, &cand);
        if (emb && out->kind == STORE_ENTRY_EMBEDDING && out->env == s->n) {
            if ((rc = store_check_emb(out, store_pack_path(s->pack), key, cap, e)) != 0) return rc;
            store_record_embedding(&out->rec, emb);
        }
    }
    out->rec.payload = NULL;
    return 0;
}

int store_lookup(store *s, const char *key, store_entry *out, err_t *e)
{
    return store_lookup_into(s, key, out, NULL, 0, e);
}

int store_lookup_embedding(store *s, const char *key, store_entry *out, float *emb, uint32_t cap, err_t *e)
{
    return store_lookup_into(s, key, out, emb, cap, e);
}

/* ---- iteration: a merge of 2 sorted streams per environment and the pack's ---- */

struct store_iter {
    store *s;
    int nstreams; /* 2 per environment, then the pack's */
    MDB_txn **txns;
    MDB_cursor **cur;
    MDB_val *key, *val;
    int *live;
    uint64_t pack_i;
    char *keybuf;
    size_t keycap;
    float *emb;
    uint32_t embcap;
};

void store_iter_close(store_iter *it)
{
    if (!it) return;
    for (int i = 0; i < 2 * it->s->n; i++)
        if (it->cur && it->cur[i]) mdb_cursor_close(it->cur[i]);
    for (int i = 0; it->txns && i < it->s->n; i++)
        if (it->txns[i]) mdb_txn_abort(it->txns[i]);
    free(it->txns);
    free(it->cur);
    free(it->key);
    free(it->val);
    free(it->live);
    free(it->keybuf);
    free(it->emb);
    free(it);
}

static int store_iter_advance(store_iter *it, int i, MDB_cursor_op op, err_t *e)
{
    if (i == 2 * it->s->n) { /* the pack */
        if (op == MDB_NEXT) it->pack_i++;
        it->live[i] = it->pack_i < store_pack_get_info(it->s->pack)->keys;
        if (!it->live[i]) return 0;
        store_pack_item item;
        int rc = store_pack_item_get(it->s->pack, it->pack_i, 0, &item, e);
        it->key[i] = (MDB_val){item.keylen, (void *)item.key};
        return rc;
    }
    int rc = mdb_cursor_get(it->cur[i], &it->key[i], &it->val[i], op);
    it->live[i] = rc == 0;
    if (rc == 0 || rc == MDB_NOTFOUND) return 0;
    return store_mdb_err(e, it->s->envs[i / 2], rc, "cannot iterate");
}

int store_iter_open(store_iter **out, store *s, err_t *e)
{
    *out = NULL;
    store_iter *it = calloc(1, sizeof *it);
    if (!it) return err_set(e, ERR_NOMEM, "store iterator: cannot allocate");
    it->s = s;
    int ns = 2 * s->n + (s->pack != NULL);
    it->txns = calloc((size_t)s->n + 1, sizeof *it->txns);
    it->cur = calloc((size_t)ns + 1, sizeof *it->cur);
    it->key = calloc((size_t)ns + 1, sizeof *it->key);
    it->val = calloc((size_t)ns + 1, sizeof *it->val);
    it->live = calloc((size_t)ns + 1, sizeof *it->live);
    if (!it->txns || !it->cur || !it->key || !it->val || !it->live) {
        store_iter_close(it);
        return err_set(e, ERR_NOMEM, "store iterator: cannot allocate");
    }
    it->nstreams = ns;
    int rc = 0;
    for (int i = 0; !rc && i < s->n; i++) {
        store_env *v = s->envs[i];
        if ((rc = store_txn_begin(v, MDB_RDONLY, &it->txns[i], e)) != 0) break;
        for (int f = 0; f < 2 && !rc; f++) {
            int c = mdb_cursor_open(it->txns[i], f ? v->fail : v->emb, &it->cur[2 * i + f]);
            if (c) rc = store_mdb_err(e, v, c, "cannot open a cursor");
            else rc = store_iter_advance(it, 2 * i + f, MDB_FIRST, e);
        }
    }
    if (!rc && s->pack) rc = store_iter_advance(it, 2 * s->n, MDB_FIRST, e);
    if (rc) {
        store_iter_close(it);
        return rc;
    }
    *out = it;
    return 0;
}

static int store_val_cmp(const MDB_val *a, const MDB_val *b)
{
    size_t n = a->mv_size < b->mv_size ? a->mv_size : b->mv_size;
    int c = memcmp(a->mv_data, b->mv_data, n);
    if (c) return c;
    return a->mv_size < b->mv_size ? -1 : a->mv_size > b->mv_size;
}

int store_iter_next(store_iter *it, const char **key, store_entry *ent, const float **emb, err_t *e)
{
    memset(ent, 0, sizeof *ent);
    *emb = NULL;
    int min = -1;
    for (int i = 0; i < it->nstreams; i++)
        if (it->live[i] && (min < 0 || store_val_cmp(&it->key[i], &it->key[min]) < 0)) min = i;
    if (min < 0) return 0;
    MDB_val k = it->key[min];
    if (k.mv_size + 1 > it->keycap) {
        char *nb = realloc(it->keybuf, k.mv_size + 1);
        if (!nb) return err_set(e, ERR_NOMEM, "store iterator: cannot allocate a key");
        it->keybuf = nb;
        it->keycap = k.mv_size + 1;
    }
    memcpy(it->keybuf, k.mv_data, k.mv_size);
    it->keybuf[k.mv_size] = 0;
    const int pack_stream = 2 * it->s->n;
    for (int i = 0; i < it->nstreams; i++) {
        if (!it->live[i] || store_val_cmp(&it->key[i], &k) != 0) continue;
        store_entry cand;
        int rc = i == pack_stream
                     ? store_pack_candidate(it->s, it->pack_i, 1, &cand, e)
                     : store_decode_entry(it->s->envs[i / 2], i / 2, it->keybuf, k.mv_size, i % 2, &it->val[i], &cand, e);
        if (rc) return rc;
        store_pick(ent, &cand);
    }
    if (ent->kind == STORE_ENTRY_EMBEDDING) {
        if (ent->rec.dim > it->embcap) {
            float *nb = realloc(it->emb, (size_t)ent->rec.dim * sizeof *nb);
            if (!nb) return err_set(e, ERR_NOMEM, "store iterator: cannot allocate an embedding");
            it->emb = nb;
            it->embcap = ent->rec.dim;
        }
        store_record_embedding(&ent->rec, it->emb);
        *emb = it->emb;
    }
    ent->rec.payload = NULL;
    /* Advance every stream that was at this key (after using their values:
     * a read transaction or the pack's map keeps them valid, but the key
     * buffer is ours). */
    for (int i = 0; i < it->nstreams; i++) {
        if (!it->live[i] || store_val_cmp(&it->key[i], &k) != 0) continue;
        int rc = store_iter_advance(it, i, MDB_NEXT, e);
        if (rc) return rc;
    }
    *key = it->keybuf;
    return 1;
}

/* ---- consolidation ---- */

/* An environment directory holds LMDB's two files. */
static void store_remove_env(const char *dir, const char *name)
{
    char p[4300];
    snprintf(p, sizeof p, "%s/%s/data.mdb", dir, name);
    unlink(p);
    snprintf(p, sizeof p, "%s/%s/lock.mdb", dir, name);
    unlink(p);
    snprintf(p, sizeof p, "%s/%s", dir, name);
    if (rmdir(p) != 0 && errno != ENOENT) log_msg(LOG_WARN, "store: cannot remove %s: %s", p, strerror(errno));
}

/* Every generation but `keep`, and unfinished ones. Readers that still map
 * an old generation keep reading it (POSIX unlink semantics). */
static int store_remove_old_packs(const char *dir, const char *keep, err_t *e)
{
    char packs[4200], **names = NULL;
    int count = 0;
    snprintf(packs, sizeof packs, "%s/packs", dir);
    int rc = store_list(packs, store_keep_pack_dir, 1, &names, &count, e);
    for (int i = 0; !rc && i < count; i++) {
        if (keep && !strcmp(names[i], keep)) continue;
        char p[4400];
        snprintf(p, sizeof p, "%s/%s", packs, names[i]);
        store_pack_remove_dir(p);
    }
    store_free_names(names, count);
    return rc;
}

static uint64_t store_next_sequence(const char *dir, const store *s, err_t *e)
{
    char packs[4200], **names = NULL;
    int count = 0;
    snprintf(packs, sizeof packs, "%s/packs", dir);
    uint64_t seq = s->pack ? store_pack_get_info(s->pack)->sequence : 0;
    if (store_list(packs, store_keep_pack_dir, 1, &names, &count, e) != 0) return 0;
    for (int i = 0; i < count; i++) {
        uint64_t v = store_pack_parse_name(names[i]);
        if (v > seq) seq = v;
    }
    store_free_names(names, count);
    return seq + 1;
}

/* Write the union's resolved entries as the next generation. */
static int store_write_pack(const char *dir, store *s, uint64_t encoded_total, store_consolidation *out, err_t *e)
{
    uint64_t seq = store_next_sequence(dir, s, e);
    if (seq == 0) return e ? e->code : ERR_IO;
    store_pack_writer *w = NULL;
    store_iter *it = NULL;
    int rc = store_pack_writer_open(&w, dir, seq, e), r = 0;
    if (!rc) rc = store_iter_open(&it, s, e);
    const char *key;
    store_entry ent;
    const float *emb;
    while (!rc && (r = store_iter_next(it, &key, &ent, &emb, e)) == 1) {
        out->superseded += (uint64_t)ent.shadowed;
        rc = store_pack_writer_add(w, key, strlen(key), ent.kind == STORE_ENTRY_EMBEDDING ? &ent.rec : NULL, emb,
                                   &ent.fail, e);
    }
    if (!rc && r < 0) rc = r;
    store_iter_close(it);
    if (rc) {
        store_pack_writer_abort(w);
        return rc;
    }
    return store_pack_writer_commit(w, encoded_total, out->superseded, e);
}

int store_consolidate(const char *dir, store_consolidation *out, err_t *e)
{
    memset(out, 0, sizeof *out);
    char **names = NULL, **all = NULL;
    int count = 0, n_all = 0;
    store *s = NULL;
    int rc = store_list(dir, store_keep_env, 0, &names, &count, e);
    if (!rc) rc = store_list(dir, store_keep_any_env, 0, &all, &n_all, e);
    if (!rc) rc = store_new(&s, dir, count, e);
    uint64_t pack_gen = s && s->pack ? store_pack_get_info(s->pack)->generation_max : 0;
    uint64_t encoded_total = s && s->pack ? store_pack_get_info(s->pack)->encoded_total : 0;
    /* An environment whose newest entry is not newer than the pack's was
     * merged by an earlier consolidation killed before it removed it: every
     * run's generation exceeds the pack's at its start. */
    for (int i = 0; !rc && i < count; i++) {
        store_env *v = NULL;
        char path[4200];
        store_env_info info;
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        rc = store_env_open_at(&v, path, names[i], 0, 0, e);
        if (rc == ERR_NOTFOUND) { /* killed before its first commit: holds nothing */
            rc = 0;
            continue;
        }
        if (!rc) rc = store_env_stat(v, &info, e);
        if (!rc && info.embeddings + info.failures > 0 && info.generation_max > pack_gen) {
            s->envs[s->n++] = v;
            encoded_total += info.encoded_total;
            out->environments++;
        } else {
            store_env_close(v);
        }
    }
    if (!rc && s->n > 0) rc = store_write_pack(dir, s, encoded_total, out, e);
    store_close(s);
    s = NULL;
    /* Published (or nothing to publish): what it supersedes goes. */
    if (!rc) rc = store_new(&s, dir, 0, e);
    if (!rc) {
        for (int i = 0; i < n_all; i++) store_remove_env(dir, all[i]);
        rc = store_remove_old_packs(dir, s->pack ? store_pack_get_info(s->pack)->name : NULL, e);
        out->published = out->environments > 0;
        if (s->pack) out->pack = *store_pack_get_info(s->pack);
    }
    store_close(s);
    store_free_names(names, count);
    store_free_names(all, n_all);
    return rc;
}
