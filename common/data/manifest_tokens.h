/* The compact token file of a manifest shard (schemas/manifest.md,
 * "Token files", version MANIFEST_TOKENS_VERSION): the shard's keys,
 * splits and GPT-2 ids in flat little-endian arrays, written by `clipcap
 * shard` next to each JSONL shard so that training can mmap them instead
 * of parsing JSON on every rank. Its pages are page cache shared by the
 * ranks of a node, not per-rank heap.
 *
 * manifest_tokens_write: shard's images ds->images[first..end) with their
 * captions' ids (ids[c][0..n_ids[c]), ds caption index c), atomically;
 * reports the file's size and XXH3-128 for index.json. Ids above 65535
 * are refused (the file stores 16-bit ids; GPT-2 has 50257).
 *
 * manifest_tokens_open: maps shard s's file, checks its size and checksum
 * against index.json and every offset in it (a corrupt file is ERR_FORMAT
 * naming it, never an out-of-bounds read). A manifest written before token
 * files existed is ERR_NOTFOUND asking to re-run `clipcap shard`. */
#ifndef CLIPCAP_MANIFEST_TOKENS_H
#define CLIPCAP_MANIFEST_TOKENS_H

#include <stddef.h>
#include <stdint.h>
#include "core/log.h"
#include "data/dataset.h"
#include "data/manifest.h"

#define MANIFEST_TOKENS_VERSION 1
#define MANIFEST_TOKENS_MAX_SPLITS 256 /* distinct splits in one shard */

void manifest_tokens_file_name(int shard, int num_shards, char *out, size_t cap);
int manifest_tokens_write(const char *path, const ds_t *ds, int shard, int num_shards, size_t first, size_t end,
                          int32_t *const *ids, const uint32_t *n_ids, uint64_t *bytes, char xxh128[33], err_t *e);

typedef struct manifest_tokens {
    const uint8_t *map;
    size_t len;
    uint64_t images, captions, tokens;
    const uint64_t *cap_first; /* [images+1]: image i's captions are [cap_first[i], cap_first[i+1]) */
    const uint64_t *tok_first; /* [captions+1]: caption c's ids are tok[tok_first[c] .. tok_first[c+1]) */
    const uint64_t *key_off;   /* [images]: image i's key is keys + key_off[i] (NUL-terminated) */
    const uint16_t *split;     /* [images]: index into the shard's split names */
    const uint16_t *tok;
    const char *keys;
    uint32_t n_splits;
    const char *split_names;   /* n_splits NUL-terminated names, end to end */
} manifest_tokens;

int manifest_tokens_open(manifest_tokens *t, const manifest_t *m, int shard, err_t *e);
void manifest_tokens_close(manifest_tokens *t); /* also after a failed open */
/* The name of split j (< n_splits). */
const char *manifest_tokens_split_name(const manifest_tokens *t, uint32_t j);

#endif
