/* The feature store's values in the writers' LMDB environments (format:
 * schemas/feature-store.md, version 2; the read-only packs have their own
 * layout, store_pack.h).
 *
 * An embedding record is a fixed 128-byte little-endian header followed by
 * the embedding (dim values, float32 or IEEE binary16):
 *   0  "CCFR"            magic
 *   4  u16 version       STORE_FORMAT_VERSION
 *   6  u16 dtype         1 = fp32, 2 = fp16
 *   8  u32 dim
 *   12 u32 width         source image size as stored in the file
 *   16 u32 height
 *   20 u32 reserved      0
 *   24 char[32] model    model fingerprint (store_model_fingerprint), hex
 *   56 char[32] content  XXH3-128 of the source image bytes, hex
 *   88 u64 generation    the run that wrote it (newer wins across envs)
 *   96 u64 checksum      XXH3-64 of bytes [0,96) and [104,end)
 *   104 u64 src_size     the source file's size (the tar's for a member)
 *   112 i64 src_mtime_ns its modification time in ns since the epoch
 *   120 u64 src_offset   the member's offset in its tar (0 for a file)
 *   128 payload          dim * 4 or dim * 2 bytes
 * Version 1 records (written before the source fields existed) have a
 * 104-byte header and decode with zero source fields, which never match a
 * file's stat: their images are read and hashed once more.
 * A failure record is a JSON object {"v","generation","reason","message",
 * "content_hash"} (content_hash "" when the bytes could not be read).
 *
 * Decoding validates everything (magic, version, dtype, dim vs length,
 * checksum) and names what is wrong; callers add the store and the key. */
#ifndef CLIPCAP_STORE_RECORD_H
#define CLIPCAP_STORE_RECORD_H

#include <stddef.h>
#include <stdint.h>
#include "core/log.h"

#define STORE_FORMAT_VERSION 2
#define STORE_RECORD_HEADER 128
/* The model fingerprint's own version: unchanged by store format bumps, so
 * a new store format does not re-encode anything. */
#define STORE_FINGERPRINT_VERSION 1
#define STORE_MAX_DIM (1u << 20)
#define STORE_MAX_KEY 511 /* LMDB's default key size limit */

enum store_dtype { STORE_FP32 = 1, STORE_FP16 = 2 };

typedef struct store_record {
    int version;
    enum store_dtype dtype;
    uint32_t dim;
    uint32_t width, height;
    uint64_t generation;
    /* The source as it was read: an unchanged stat() means unchanged bytes
     * (extract's skip without reading; --rehash overrides). */
    uint64_t src_size, src_offset;
    int64_t src_mtime_ns;
    char model[33];        /* hex, NUL-terminated */
    char content_hash[33]; /* hex, NUL-terminated */
    const uint8_t *payload; /* decode: points into the buffer it decoded */
} store_record;

typedef struct store_failure {
    uint64_t generation;
    char reason[32];
    char message[512];
    char content_hash[33];
} store_failure;

/* Little-endian fields of `bytes` (1..8) bytes. */
void store_le_put(uint8_t *p, uint64_t v, int bytes);
uint64_t store_le_get(const uint8_t *p, int bytes);

const char *store_dtype_name(enum store_dtype d); /* "fp32", "fp16" */
/* "fp32"/"fp16" -> dtype; ERR_ARG otherwise. */
int store_dtype_parse(const char *s, enum store_dtype *out, err_t *e);
size_t store_dtype_size(enum store_dtype d); /* bytes per value */
size_t store_record_size(enum store_dtype dtype, uint32_t dim);
/* dim float32 values as dtype, little-endian, into out (dim * size bytes);
 * store_record_embedding reads them back (fp16 -> fp32 -> fp16 is exact). */
void store_payload_encode(enum store_dtype dtype, uint32_t dim, const float *embedding, uint8_t *out);

/* Writes store_record_size(...) bytes into out (cap checked), converting
 * the float32 embedding to the record's dtype. */
int store_record_encode(const store_record *meta, const float *embedding, uint8_t *out, size_t cap, err_t *e);
int store_record_decode(const uint8_t *buf, size_t len, store_record *rec, err_t *e);
/* The decoded record's embedding as float32 (out: rec->dim floats). */
void store_record_embedding(const store_record *rec, float *out);

/* The failure as a malloc'd JSON string (*len excludes the NUL). */
int store_failure_encode(const store_failure *f, char **out, size_t *len, err_t *e);
int store_failure_decode(const uint8_t *buf, size_t len, store_failure *f, err_t *e);

/* IEEE binary16 conversions, round to nearest even (as numpy's astype). */
uint16_t store_f32_to_f16(float f);
float store_f16_to_f32(uint16_t h);

/* The store's model fingerprint: XXH3-128 over the weights' fingerprint and
 * every preprocessing setting that changes the pixels the model sees. */
void store_model_fingerprint(const char *weights_fp, int image_size, int fast_resize, const float mean[3],
                             const float std[3], char out[33]);

#endif
