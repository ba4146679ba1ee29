/* The feature store (format: schemas/feature-store.md, version 2).
 *
 * Two forms, one per side:
 *
 * Writers (extract's ranks) each write their own LMDB environment,
 *   STORE/rank-RRRRR-of-NNNNN/{data.mdb,lock.mdb}
 * so rank R never waits on another rank and no environment is ever opened
 * by a process on another host. Each holds three named databases:
 *   embeddings  key = manifest image key, value = store_record
 *   failures    key = image key, value = store_failure (JSON)
 *   meta        "format_version", "generation_max", "encoded_total"
 *               (decimal text; encoded_total counts embeddings encoded,
 *               updated in the same transaction as they are)
 * Writes are batched: store_env_write() puts a whole batch in one write
 * transaction, so a kill at any moment leaves every committed batch and
 * nothing of the others (default LMDB sync; never MDB_NOSYNC). When the map
 * is full the transaction is aborted, the map doubled and the batch retried.
 *
 * Readers open the consolidated pack CURRENT names (store_pack.h) with
 * read-only mmap: no lock file, no write access needed, any number of hosts.
 * store_consolidate() merges the pack and every environment into the next
 * generation, each key resolved to its newest entry (highest generation:
 * every run's generation exceeds every generation already stored), then
 * removes the environments and the superseded generation. extract does it
 * before it starts (what a killed run left) and after its last batch.
 *
 * store_open(dir, own): the pack, plus own (may be NULL), the environment
 * this process writes. Other environments are never opened by readers.
 *
 * Threads: a store_env / store / store_iter is used from one thread at a
 * time. Read transactions are short (one per lookup) except an iterator's,
 * which holds one per environment until closed. */
#ifndef CLIPCAP_STORE_H
#define CLIPCAP_STORE_H

#include <stddef.h>
#include <stdint.h>
#include "core/log.h"
#include "store/store_pack.h"
#include "store/store_record.h"

#define STORE_DEFAULT_MAPSIZE ((size_t)64 << 20)

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
    /* an embedding already stored, written again with new source metadata
     * (size, mtime): not counted in encoded_total */
    int copied;
} store_put;

/* All items in one transaction; meta's generation_max and encoded_total are
 * updated in the same transaction. */
int store_env_write(store_env *env, const store_put *items, size_t n, err_t *e);

enum store_entry_kind { STORE_ENTRY_NONE = 0, STORE_ENTRY_EMBEDDING = 1, STORE_ENTRY_FAILURE = 2 };

typedef struct store_entry {
    enum store_entry_kind kind;
    store_record rec;  /* EMBEDDING: header fields (rec.payload is not kept) */
    store_failure fail; /* FAILURE */
    int env;           /* where it came from: an environment's index, or (the pack) their count */
    int shadowed;      /* older entries of the same key in other sources */
} store_entry;

typedef struct store store;

/* CURRENT's pack, plus own (may be NULL): an environment this process
 * writes, included in the union but still owned by the caller (store_close
 * does not close it). Without a pack: an empty store when own is given;
 * otherwise ERR_UNSUPPORTED when writer environments are there (a version 1
 * store or an unfinished extract: the message says to run `clipcap store
 * consolidate`), ERR_NOTFOUND when nothing is. */
int store_open(store **out, const char *dir, store_env *own, err_t *e);
void store_close(store *s); /* NULL is allowed */
/* The pack read (NULL: none yet). */
const store_pack_info *store_current_pack(const store *s);
/* Writer environments in the directory that store_open did not open. */
int store_pending_envs(const store *s);

typedef struct store_env_info {
    char name[64];
    uint64_t embeddings, failures; /* entries in this environment */
    uint64_t encoded_total, generation_max;
    size_t mapsize;
} store_env_info;
int store_env_stat(store_env *env, store_env_info *out, err_t *e);
/* Highest generation in the pack and the open environments (0 if empty). */
int store_generation_max(store *s, uint64_t *out, err_t *e);

typedef struct store_consolidation {
    int published;       /* a new generation was written */
    uint64_t environments; /* environments merged into it */
    uint64_t superseded;   /* older entries dropped */
    store_pack_info pack;  /* CURRENT afterwards (zeros: none) */
} store_consolidation;
/* Merge CURRENT's pack and every writer environment of dir into a new
 * generation, publish it, then remove the environments and every other
 * generation. Nothing new (no environment, or only ones an earlier
 * consolidation already merged): no new generation, the leftovers are
 * removed. No extract may be writing dir meanwhile. A kill -9 at any moment
 * leaves CURRENT's generation readable and loses nothing: the environments
 * go only after the new generation is published. */
int store_consolidate(const char *dir, store_consolidation *out, err_t *e);

/* The newest entry of key in the pack and the open environments (kind NONE
 * if absent). A corrupt record is ERR_FORMAT naming the environment or the
 * pack, and the key. */
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
