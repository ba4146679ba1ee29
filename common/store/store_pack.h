/* Packs: the feature store's read-only, consolidated form
 * (schemas/feature-store.md, version 2).
 *
 *   STORE/CURRENT                  "gen-SSSSSSSSSSSS\n": the pack readers use
 *   STORE/packs/gen-SSSSSSSSSSSS/  one immutable generation
 *     header.bin   counts, file sizes, model fingerprints, checksum
 *     entries.bin  n fixed 96-byte entries sorted by key (memcmp, shorter
 *                  first): key and value offsets, kind, dtype, dim, model,
 *                  size, generation, content hash, source size/mtime/offset,
 *                  checksums of the entry+key and of the value
 *     keys.bin     the keys, concatenated
 *     data.bin     the embeddings, densely packed in key order (dim x dtype
 *                  bytes each, no header: reading one touches only its pages)
 *     failures.bin failure records (JSON), concatenated
 *
 * Readers open CURRENT's generation with plain open + mmap(PROT_READ): no
 * lock file, nothing written, so a read-only mount or a user without write
 * permission reads it, from any number of hosts. A lookup is a binary
 * search of entries.bin; its cost does not depend on how many ranks or runs
 * wrote the store. Every file's size is checked against the header before
 * it is mapped (a truncated pack is an error, not a SIGBUS).
 *
 * A writer streams entries in key order into packs/gen-S.tmp-PID/ and
 * publishes it atomically: fsync every file and the directory, rename to
 * gen-S, fsync packs/, then replace CURRENT (fs_write_atomic). A kill -9 at
 * any moment leaves CURRENT naming the previous, complete generation.
 * Superseded generations are removed by the caller after publishing
 * (store_consolidate). */
#ifndef CLIPCAP_STORE_PACK_H
#define CLIPCAP_STORE_PACK_H

#include <stddef.h>
#include <stdint.h>
#include "core/log.h"
#include "store/store_record.h"

#define STORE_PACK_ENTRY 96

typedef struct store_pack store_pack;

typedef struct store_pack_info {
    char name[32]; /* gen-SSSSSSSSSSSS */
    uint64_t sequence, generation_max;
    uint64_t keys, embeddings, failures;
    uint64_t encoded_total; /* embeddings ever encoded into this store */
    uint64_t superseded;    /* entries dropped by the consolidation that wrote it */
    uint64_t bytes;         /* the pack's files together */
} store_pack_info;

/* One entry. For an embedding, rec is complete and rec.payload points into
 * the mapped data (checked against its checksum when with_value was set);
 * for a failure, fail is decoded (always: its JSON is the value). */
typedef struct store_pack_item {
    const char *key; /* not NUL-terminated */
    size_t keylen;
    int is_failure;
    store_record rec;
    store_failure fail;
} store_pack_item;

/* The generation CURRENT names. ERR_NOTFOUND (a message naming dir) when
 * the store has no CURRENT. */
int store_pack_open_current(store_pack **out, const char *dir, err_t *e);
void store_pack_close(store_pack *p); /* NULL is allowed */
const store_pack_info *store_pack_get_info(const store_pack *p);
const char *store_pack_path(const store_pack *p);

/* Index of key, or -1 when absent (nothing read but entries and keys). */
int64_t store_pack_find(const store_pack *p, const char *key, size_t keylen);
/* Entry i (0 <= i < keys). with_value: also verify an embedding's payload
 * checksum (failures are always read). Damage is ERR_FORMAT naming the
 * pack and the key. */
int store_pack_item_get(const store_pack *p, uint64_t i, int with_value, store_pack_item *out, err_t *e);

typedef struct store_pack_writer store_pack_writer;

/* Start generation `sequence` in dir/packs/ (created). */
int store_pack_writer_open(store_pack_writer **out, const char *dir, uint64_t sequence, err_t *e);
/* Keys strictly increasing. An embedding: rec (header fields; rec->payload
 * unused) and its float32 values, stored as rec->dtype; a failure: f. */
int store_pack_writer_add(store_pack_writer *w, const char *key, size_t keylen, const store_record *rec,
                          const float *emb, const store_failure *f, err_t *e);
/* Write the header, make everything durable and publish it as CURRENT.
 * The writer is freed either way. */
int store_pack_writer_commit(store_pack_writer *w, uint64_t encoded_total, uint64_t superseded, err_t *e);
/* Drop an unfinished generation (its temporary directory is removed). */
void store_pack_writer_abort(store_pack_writer *w);

/* Remove a generation's (or an unfinished one's) directory and files. */
void store_pack_remove_dir(const char *path);

/* "gen-%012llu" and its parse (0 when name is not exactly one). */
void store_pack_name(char *out, size_t cap, uint64_t sequence);
uint64_t store_pack_parse_name(const char *name);

#endif
