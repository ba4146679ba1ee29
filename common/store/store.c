#include "store/store.h"
#include "core/fsutil.h"
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
    int n;
    store_env **envs;
    store_env *own; /* borrowed: not closed by store_close */
    int n_damaged;  /* store_open_readable: environments left out */
    char **damaged; /* their errors */
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
    } else if (version != STORE_FORMAT_VERSION) {
        rc = err_set(e, ERR_UNSUPPORTED, "%s: feature store format version %" PRIu64 ", this build reads version %d",
                     path, version, STORE_FORMAT_VERSION);
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
            encoded++;
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

/* ---- the union of all environments ---- */

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

static int store_list_envs(const char *dir, char ***names, int *count, err_t *e)
{
    *names = NULL;
    *count = 0;
    DIR *d = opendir(dir);
    if (!d) return err_set(e, errno == ENOENT ? ERR_NOTFOUND : ERR_IO, "%s: cannot open the store: %s", dir,
                           strerror(errno));
    int cap = 0, rc = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (!store_is_env_name(de->d_name)) continue;
        char data[4200];
        snprintf(data, sizeof data, "%s/%s/data.mdb", dir, de->d_name);
        struct stat st;
        if (stat(data, &st) != 0 || st.st_size == 0) continue; /* created, never initialised: holds nothing */
        if (*count == cap) {
            cap = cap ? 2 * cap : 8;
            char **nn = realloc(*names, (size_t)cap * sizeof *nn);
            if (!nn) {
                rc = err_set(e, ERR_NOMEM, "%s: cannot list environments", dir);
                break;
            }
            *names = nn;
        }
        if (!((*names)[*count] = strdup(de->d_name))) {
            rc = err_set(e, ERR_NOMEM, "%s: cannot list environments", dir);
            break;
        }
        (*count)++;
    }
    closedir(d);
    if (*count > 1) qsort(*names, (size_t)*count, sizeof **names, store_cmp_names);
    return rc;
}

void store_close(store *s)
{
    if (!s) return;
    for (int i = 0; i < s->n; i++)
        if (s->envs[i] != s->own) store_env_close(s->envs[i]);
    for (int i = 0; i < s->n_damaged; i++) free(s->damaged[i]);
    free(s->damaged);
    free(s->envs);
    free(s);
}

/* An environment that cannot be opened: kept as its error message. */
static int store_note_damaged(store *s, const char *msg, err_t *e)
{
    char **nd = realloc(s->damaged, (size_t)(s->n_damaged + 1) * sizeof *nd);
    if (!nd) return err_set(e, ERR_NOMEM, "cannot allocate");
    s->damaged = nd;
    if (!(s->damaged[s->n_damaged] = strdup(msg))) return err_set(e, ERR_NOMEM, "cannot allocate");
    s->n_damaged++;
    return 0;
}

static int store_open_impl(store **out, const char *dir, store_env *own, int keep_going, err_t *e)
{
    *out = NULL;
    char **names = NULL;
    int count = 0;
    int rc = store_list_envs(dir, &names, &count, e);
    store *s = calloc(1, sizeof *s);
    if (!rc && !s) rc = err_set(e, ERR_NOMEM, "%s: cannot allocate", dir);
    if (!rc && !(s->envs = calloc((size_t)count + 1, sizeof *s->envs)))
        rc = err_set(e, ERR_NOMEM, "%s: cannot allocate", dir);
    if (!rc) s->own = own;
    int own_listed = 0;
    for (int i = 0; !rc && i < count; i++) {
        if (own && !strcmp(names[i], own->name)) {
            s->envs[s->n++] = own;
            own_listed = 1;
            continue;
        }
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        rc = store_env_open_at(&s->envs[s->n], path, names[i], 0, 0, e);
        if (rc == ERR_NOTFOUND) {
            log_msg(LOG_WARN, "store: skipping %s", e ? e->msg : path);
            rc = 0;
        } else if (rc && rc != ERR_NOMEM && keep_going) {
            rc = store_note_damaged(s, e ? e->msg : path, e);
        } else if (!rc) {
            s->n++;
        }
    }
    if (!rc && own && !own_listed) s->envs[s->n++] = own;
    if (!rc && s->n == 0 && !s->n_damaged)
        rc = err_set(e, ERR_NOTFOUND, "%s: no feature store environments (rank-*-of-*) in this directory", dir);
    for (int i = 0; i < count; i++) free(names[i]);
    free(names);
    if (rc) {
        store_close(s);
        return rc;
    }
    *out = s;
    return 0;
}

int store_open(store **out, const char *dir, store_env *own, err_t *e)
{
    return store_open_impl(out, dir, own, 0, e);
}

int store_open_readable(store **out, const char *dir, err_t *e) { return store_open_impl(out, dir, NULL, 1, e); }

int store_num_damaged(const store *s) { return s->n_damaged; }

const char *store_damaged(const store *s, int i) { return s->damaged[i]; }

int store_num_envs(const store *s) { return s->n; }

int store_env_stat(store *s, int i, store_env_info *out, err_t *e)
{
    memset(out, 0, sizeof *out);
    store_env *v = s->envs[i];
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
    *out = 0;
    for (int i = 0; i < s->n; i++) {
        store_env_info info;
        int rc = store_env_stat(s, i, &info, e);
        if (rc) return rc;
        if (info.generation_max > *out) *out = info.generation_max;
    }
    return 0;
}

/* Decode one database value into a candidate entry. */
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

static uint64_t store_entry_generation(const store_entry *x)
{
    return x->kind == STORE_ENTRY_EMBEDDING ? x->rec.generation : x->fail.generation;
}

/* Keep the newest of best and cand; ties keep the earlier environment so
 * the answer does not depend on the order candidates are met in. */
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
            if (!emb || out->kind != STORE_ENTRY_EMBEDDING || out->env != i) continue;
            if (out->rec.dim > cap)
                rc = err_set(e, ERR_FORMAT, "%s: embeddings '%s': dim %u, more than the %u expected", v->path, key,
                             out->rec.dim, cap);
            else
                store_record_embedding(&out->rec, emb);
        }
        mdb_txn_abort(txn);
        if (rc) return rc;
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

/* ---- iteration: a merge of 2 sorted streams per environment ---- */

struct store_iter {
    store *s;
    int nstreams;
    MDB_txn **txns;
    MDB_cursor **cur;
    MDB_val *key, *val;
    int *live;
    char *keybuf;
    size_t keycap;
    float *emb;
    uint32_t embcap;
};

void store_iter_close(store_iter *it)
{
    if (!it) return;
    for (int i = 0; i < it->nstreams; i++)
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
    int ns = 2 * s->n;
    it->txns = calloc((size_t)s->n, sizeof *it->txns);
    it->cur = calloc((size_t)ns, sizeof *it->cur);
    it->key = calloc((size_t)ns, sizeof *it->key);
    it->val = calloc((size_t)ns, sizeof *it->val);
    it->live = calloc((size_t)ns, sizeof *it->live);
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
    for (int i = 0; i < it->nstreams; i++) {
        if (!it->live[i] || store_val_cmp(&it->key[i], &k) != 0) continue;
        store_entry cand;
        int rc = store_decode_entry(it->s->envs[i / 2], i / 2, it->keybuf, k.mv_size, i % 2, &it->val[i], &cand, e);
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
     * a read transaction keeps them valid, but the key buffer is ours). */
    for (int i = 0; i < it->nstreams; i++) {
        if (!it->live[i] || store_val_cmp(&it->key[i], &k) != 0) continue;
        int rc = store_iter_advance(it, i, MDB_NEXT, e);
        if (rc) return rc;
    }
    *key = it->keybuf;
    return 1;
}
