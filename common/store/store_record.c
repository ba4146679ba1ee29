#include "store/store_record.h"
#include "core/fsutil.h"
#include "io/json_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t on the stack */
#include <xxhash.h>

static const char STORE_MAGIC[4] = {'C', 'C', 'F', 'R'};

const char *store_dtype_name(enum store_dtype d) { return d == STORE_FP16 ? "fp16" : "fp32"; }

int store_dtype_parse(const char *s, enum store_dtype *out, err_t *e)
{
    if (!strcmp(s, "fp32")) *out = STORE_FP32;
    else if (!strcmp(s, "fp16")) *out = STORE_FP16;
    else return err_set(e, ERR_ARG, "dtype '%s': expected fp32 or fp16", s);
    return 0;
}

size_t store_dtype_size(enum store_dtype d) { return d == STORE_FP16 ? 2 : 4; }

size_t store_record_size(enum store_dtype dtype, uint32_t dim)
{
    return STORE_RECORD_HEADER + (size_t)dim * store_dtype_size(dtype);
}

/* Explicit little-endian byte order: a store written on one machine reads
 * the same on any other. */
void store_le_put(uint8_t *p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++) p[i] = (uint8_t)(v >> (8 * i));
}

uint64_t store_le_get(const uint8_t *p, int bytes)
{
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static uint64_t store_checksum(const uint8_t *buf, size_t len)
{
    /* Everything but the checksum field itself (same rule for the 104-byte
     * version 1 header). */
    XXH3_state_t st;
    XXH3_64bits_reset(&st);
    XXH3_64bits_update(&st, buf, 96);
    XXH3_64bits_update(&st, buf + 104, len - 104);
    return XXH3_64bits_digest(&st);
}

static size_t store_header_size(int version) { return version == 1 ? 104 : STORE_RECORD_HEADER; }

static int is_hex32(const char *s)
{
    if (strlen(s) != 32) return 0;
    for (int i = 0; i < 32; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return 0;
    return 1;
}

uint16_t store_f32_to_f16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000u;
    uint32_t ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) /* inf or nan: keep nan a quiet nan */
        return (uint16_t)(sign | 0x7c00u | (ax > 0x7f800000u ? 0x200u | ((ax >> 13) & 0x3ffu) : 0));
    if (ax >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* rounds to >= 65520: inf */
    if (ax < 0x38800000u) {
        /* Subnormal half (or zero): the value in units of 2^-24, rounded to
         * nearest even on the bits shifted out. */
        if (ax < 0x33000000u) return (uint16_t)sign; /* < 2^-25: rounds to 0 */
        uint32_t mant = (ax & 0x7fffffu) | 0x800000u;
        int shift = 126 - (int)(ax >> 23); /* 14..24 */
        uint32_t v = mant >> shift;
        uint32_t rem = mant & ((1u << shift) - 1);
        uint32_t half = 1u << (shift - 1);
        if (rem > half || (rem == half && (v & 1))) v++;
        return (uint16_t)(sign | v);
    }
    uint32_t v = ((ax >> 13) - (112u << 10)); /* rebias exponent 127 -> 15 */
    uint32_t rem = ax & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (v & 1))) v++; /* carries into the exponent correctly */
    return (uint16_t)(sign | v);
}

float store_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu, x;
    if (exp == 0x1f) x = sign | 0x7f800000u | (mant << 13);
    else if (exp != 0) x = sign | ((exp + 112u) << 23) | (mant << 13);
    else if (mant == 0) x = sign;
    else {
        /* subnormal: normalise */
        int e = -1;
        do {
            e++;
            mant <<= 1;
        } while (!(mant & 0x400u));
        x = sign | ((uint32_t)(112 - e) << 23) | ((mant & 0x3ffu) << 13);
    }
    float f;
    memcpy(&f, &x, 4);
    return f;
}

void store_payload_encode(enum store_dtype dtype, uint32_t dim, const float *embedding, uint8_t *out)
{
    for (uint32_t i = 0; i < dim; i++) {
        if (dtype == STORE_FP16) {
            store_le_put(out + 2 * i, store_f32_to_f16(embedding[i]), 2);
        } else {
            uint32_t bits;
            memcpy(&bits, &embedding[i], 4);
            store_le_put(out + 4 * i, bits, 4);
        }
    }
}

int store_record_encode(const store_record *meta, const float *embedding, uint8_t *out, size_t cap, err_t *e)
{
    if (meta->dtype != STORE_FP32 && meta->dtype != STORE_FP16)
        return err_set(e, ERR_ARG, "record: unknown dtype %d", (int)meta->dtype);
    if (meta->dim == 0 || meta->dim > STORE_MAX_DIM)
        return err_set(e, ERR_ARG, "record: dim %u out of range 1..%u", meta->dim, STORE_MAX_DIM);
    if (!is_hex32(meta->model) || !is_hex32(meta->content_hash))
        return err_set(e, ERR_ARG, "record: model and content hash must be 32 lowercase hex characters");
    size_t n = store_record_size(meta->dtype, meta->dim);
    if (cap < n) return err_set(e, ERR_ARG, "record: buffer of %zu bytes, need %zu", cap, n);
    memset(out, 0, STORE_RECORD_HEADER);
    memcpy(out, STORE_MAGIC, 4);
    store_le_put(out + 4, STORE_FORMAT_VERSION, 2);
    store_le_put(out + 6, (uint16_t)meta->dtype, 2);
    store_le_put(out + 8, meta->dim, 4);
    store_le_put(out + 12, meta->width, 4);
    store_le_put(out + 16, meta->height, 4);
    memcpy(out + 24, meta->model, 32);
    memcpy(out + 56, meta->content_hash, 32);
    store_le_put(out + 88, meta->generation, 8);
    store_le_put(out + 104, meta->src_size, 8);
    store_le_put(out + 112, (uint64_t)meta->src_mtime_ns, 8);
    store_le_put(out + 120, meta->src_offset, 8);
    store_payload_encode(meta->dtype, meta->dim, embedding, out + STORE_RECORD_HEADER);
    store_le_put(out + 96, store_checksum(out, n), 8);
    return 0;
}

int store_record_decode(const uint8_t *buf, size_t len, store_record *rec, err_t *e)
{
    memset(rec, 0, sizeof *rec);
    if (len < 104) return err_set(e, ERR_FORMAT, "record of %zu bytes is shorter than any header", len);
    if (memcmp(buf, STORE_MAGIC, 4) != 0) return err_set(e, ERR_FORMAT, "record: bad magic (not a feature record)");
    rec->version = (int)store_le_get(buf + 4, 2);
    if (rec->version < 1 || rec->version > STORE_FORMAT_VERSION)
        return err_set(e, ERR_UNSUPPORTED, "record: format version %d, this build reads versions 1 to %d",
                       rec->version, STORE_FORMAT_VERSION);
    size_t head = store_header_size(rec->version);
    uint16_t dt = (uint16_t)store_le_get(buf + 6, 2);
    if (dt != STORE_FP32 && dt != STORE_FP16) return err_set(e, ERR_FORMAT, "record: unknown dtype code %u", dt);
    rec->dtype = (enum store_dtype)dt;
    rec->dim = (uint32_t)store_le_get(buf + 8, 4);
    if (rec->dim == 0 || rec->dim > STORE_MAX_DIM)
        return err_set(e, ERR_FORMAT, "record: dim %u out of range 1..%u", rec->dim, STORE_MAX_DIM);
    size_t want = head + (size_t)rec->dim * store_dtype_size(rec->dtype);
    if (len != want)
        return err_set(e, ERR_FORMAT, "record: %zu bytes, but dim %u of %s needs %zu", len, rec->dim,
                       store_dtype_name(rec->dtype), want);
    if (store_le_get(buf + 96, 8) != store_checksum(buf, len))
        return err_set(e, ERR_FORMAT, "record: checksum mismatch (corrupt record)");
    rec->width = (uint32_t)store_le_get(buf + 12, 4);
    rec->height = (uint32_t)store_le_get(buf + 16, 4);
    memcpy(rec->model, buf + 24, 32);
    memcpy(rec->content_hash, buf + 56, 32);
    rec->generation = store_le_get(buf + 88, 8);
    if (rec->version > 1) {
        rec->src_size = store_le_get(buf + 104, 8);
        rec->src_mtime_ns = (int64_t)store_le_get(buf + 112, 8);
        rec->src_offset = store_le_get(buf + 120, 8);
    }
    rec->payload = buf + head;
    return 0;
}

void store_record_embedding(const store_record *rec, float *out)
{
    for (uint32_t i = 0; i < rec->dim; i++) {
        if (rec->dtype == STORE_FP16) {
            out[i] = store_f16_to_f32((uint16_t)store_le_get(rec->payload + 2 * i, 2));
        } else {
            uint32_t bits = (uint32_t)store_le_get(rec->payload + 4 * i, 4);
            memcpy(&out[i], &bits, 4);
        }
    }
}

int store_failure_encode(const store_failure *f, char **out, size_t *len, err_t *e)
{
    json_t *o = json_pack("{s:i, s:I, s:s, s:s, s:s}", "v", STORE_FORMAT_VERSION, "generation",
                          (json_int_t)f->generation, "reason", f->reason, "message", f->message, "content_hash",
                          f->content_hash);
    if (!o) return err_set(e, ERR_NOMEM, "failure record: cannot build JSON (invalid UTF-8 in the message?)");
    *out = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!*out) return err_set(e, ERR_NOMEM, "failure record: cannot serialise JSON");
    *len = strlen(*out);
    return 0;
}

int store_failure_decode(const uint8_t *buf, size_t len, store_failure *f, err_t *e)
{
    memset(f, 0, sizeof *f);
    json_t *o = NULL;
    if (json_load_buffer(&o, (const char *)buf, len, "failure record", e) != 0) return e ? e->code : ERR_FORMAT;
    long long v = 0, gen = 0;
    const char *reason = NULL, *msg = NULL, *hash = NULL;
    int rc = json_get_int(o, "v", &v, e);
    if (!rc && (v < 1 || v > STORE_FORMAT_VERSION))
        rc = err_set(e, ERR_UNSUPPORTED, "format version %lld, this build reads versions 1 to %d", v,
                     STORE_FORMAT_VERSION);
    if (!rc) rc = json_get_int(o, "generation", &gen, e);
    if (!rc) rc = json_get_str(o, "reason", &reason, e);
    if (!rc) rc = json_get_str(o, "message", &msg, e);
    if (!rc) rc = json_get_str(o, "content_hash", &hash, e);
    if (!rc) {
        f->generation = (uint64_t)gen;
        snprintf(f->reason, sizeof f->reason, "%s", reason);
        snprintf(f->message, sizeof f->message, "%s", msg);
        snprintf(f->content_hash, sizeof f->content_hash, "%s", hash);
    } else {
        err_wrap(e, "failure record");
    }
    json_decref(o);
    return rc;
}

void store_model_fingerprint(const char *weights_fp, int image_size, int fast_resize, const float mean[3],
                             const float std[3], char out[33])
{
    char buf[512];
    int n = snprintf(buf, sizeof buf,
                     "clipcap-feature-v%d|weights=%s|image_size=%d|fast_resize=%d|mean=%a,%a,%a|std=%a,%a,%a",
                     STORE_FINGERPRINT_VERSION, weights_fp, image_size, fast_resize, (double)mean[0], (double)mean[1],
                     (double)mean[2], (double)std[0], (double)std[1], (double)std[2]);
    hash_hex128(buf, (size_t)n, out);
}
