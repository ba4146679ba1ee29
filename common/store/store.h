/* The LMDB feature store (format: schemas/feature-store.md, version 1).
 *
 * A store is a directory of LMDB environments, one per writer:
 *   STORE/rank-RRRRR-of-NNNNN/{data.mdb,lock.mdb}
 * LMDB allows one writer per environment, so rank R of an N-rank run writes
 * only its own environment and never waits on another rank. Each
 * environment holds three named databases:
 *   embeddings  key = manifest image key, value = store_record
 *   failures    key = image key, value = store_failure (JSON)
 *   meta        "format_version", "generation_max", "encoded_total"
 *               (decimal text; encoded_total counts embeddings committed,
 *               updated in the same transaction as they are)
 * Within one environment a key is in at most one of embeddings/failures.
 *
 * Readers see one logical store: store_open() opens EVERY environment in
 * the directory (whatever N wrote it; earlier runs with another N too), and
 * a key resolves to its entry with the highest generation (the run that
 * wrote it; a run's generation is greater than every generation already in
 * the store). So a re-run with a different N still sees earlier work, and a
 * re-encoded key shadows its older copy in another environment.
 *
 * Writes are batched: store_env_write() puts a whole batch in one write
 * transaction, so a kill at any moment leaves every committed batch and
 * nothing of the others (default LMDB sync; never MDB_NOSYNC). When the map
 * is full the transaction is aborted, the map doubled and the batch retried.
 *
 * Threads: a store_env / store / store_iter is used from one thread at a
 * time. Read transactions are short (one per lookup) except an iterator's,
 * which holds one per environment until closed. */
#ifndef CLIPCAP_STORE_H
#define CLIPCAP_STORE_H

#include <stddef.h>
#include <stdint.h>
#include "core/log.h"
#include "store/store_record.h"

#define STORE_DEFAULT_MAPSIZE ((size_t)64 << 20)
#define STORE_MAX_KEY 511 /* LMDB's default key size limit */

/* "rank-RRRRR-of-NNNNN" */
void store_env_name(char *out, size_t cap, int rank, int size);

typedef struct store_env store_env;

/* Create DIR/NAME if needed and open it for writing (the databases and the
 * format version are created on first open). initial_mapsize 0 = default;
 * an existing environment keeps at least its recorded size. */
int store_env_create(store_env **out, const char *dir, const char *name, size_t initial_mapsize, err_t *e);
void store_env_close(store_env *env); /* NULL is allowed */
size_t store_env_mapsize(store_env *env);
const char *store_env_path(const store_env *env);

/* One entry of a batch: an embedding (rec + embedding) or a failure. */
typedef struct store_put {
    const char *key;
    const store_record *rec; /* NULL for a failure */
    const float *embedding;
    const store_failure *failure;
} store_put;

/* All items in one transaction; meta's generation_max and encoded_total are
 * updated in the same transaction. */
int store_env_write(store_env *env, const store_put *items, size_t n, err_t *e);

enum store_entry_kind { STORE_ENTRY_NONE = 0, STORE_ENTRY_EMBEDDING = 1, STORE_ENTRY_FAILURE = 2 };

typedef struct store_entry {
    enum store_entry_kind kind;
    store_record rec;  /* EMBEDDING: header fields (rec.payload is not kept) */
    store_failure fail; /* FAILURE */
    int env;           /* index of the environment it came from */
    int shadowed;      /* older entries of the same key in other environments */
} store_entry;

typedef struct store store;

/* Open every environment under dir. own (may be NULL): an environment this
 * process writes, included in the union but still owned by the caller
 * (store_close does not close it). A directory with no environment is an
 * empty store when own is given, and ERR_NOTFOUND otherwise. */
int store_open(store **out, const char *dir, store_env *own, err_t *e);
/* An environment whose data file is damaged (store_check_env_file: cut
 * short, not LMDB) or that LMDB refuses is an error naming it: a union
 * without it would silently lack its keys. store_open_readable instead
 * opens the others and keeps each refused one's error (for `store stats`);
 * ERR_NOTFOUND only when the directory has no environment at all. */
int store_open_readable(store **out, const char *dir, err_t *e);
int store_num_damaged(const store *s);
const char *store_damaged(const store *s, int i);
void store_close(store *s); /* NULL is allowed */
int store_num_envs(const store *s);

typedef struct store_env_info {
    char name[64];
    uint64_t embeddings, failures; /* entries in this environment */
    uint64_t encoded_total, generation_max;
    size_t mapsize;
} store_env_info;
int store_env_stat(store *s, int i, store_env_info *out, err_t *e);
/* Highest generation in any environment (0 for an empty store). */
int store_generation_max(store *s, uint64_t *out, err_t *e);

/* The newest entry of key across all environments (kind NONE if absent).
 * A corrupt record is ERR_FORMAT naming the environment and the key. */
int store_lookup(store *s, const char *key, store_entry *out, err_t *e);
/* store_lookup, and when the entry is an embedding, emb (cap floats)
 * receives it as float32 (fp16 records widened exactly, as the iterator
 * does). An embedding longer than cap is ERR_FORMAT naming the key. emb
 * means nothing unless out->kind is EMBEDDING (an older copy may have been
 * written before a newer failure shadowed it). For random access by key,
 * e.g. a trainer fetching one batch at a time. */
int store_lookup_embedding(store *s, const char *key, store_entry *out, float *emb, uint32_t cap, err_t *e);

/* Every key of the union in byte order (memcmp), once, resolved as
 * store_lookup does. next: 1 with *key, *ent and (for embeddings) *emb as
 * float32, valid until the next call; 0 at the end; <0 on error. */
typedef struct store_iter store_iter;
int store_iter_open(store_iter **out, store *s, err_t *e);
int store_iter_next(store_iter *it, const char **key, store_entry *ent, const float **emb, err_t *e);
void store_iter_close(store_iter *it); /* NULL is allowed */

#endif
