/* Which synthetic record is what: size, format, split, ids, scene and
 * captions of record i, computed from (seed, i) alone.
 *
 * Nothing here depends on which rank or thread asks or in what order, which
 * is what makes `clipcap synth` byte-identical under any rank and thread
 * count: each rank recomputes the records it owns, rank 0 recomputes all of
 * them for the metadata files.
 *
 * Records 0..count-1 are good images. Roles are spread with affine
 * permutations of the index (r = (a*i + b) mod count, a coprime to count, a
 * and b from the seed): role r < large is a multi-megapixel image, the next
 * few are tiny (1x1, 3x5, 17x9, ...), the format is (r + offset) mod
 * SYNTH_N_FORMATS, so any count >= SYNTH_N_FORMATS holds every format in
 * every layout. A second permutation picks the split. With --bad, records
 * count.. count+SYNTH_N_BAD-2 are one bad record of each kind. */
#ifndef CLIPCAP_SYNTH_PLAN_H
#define CLIPCAP_SYNTH_PLAN_H

#include <stdint.h>
#include "core/log.h"
#include "data/synth_scene.h"

enum synth_layout_bit {
    SYNTH_LAYOUT_COCO = 1,
    SYNTH_LAYOUT_KARPATHY = 2,
    SYNTH_LAYOUT_CC_TSV = 4,
    SYNTH_LAYOUT_CC_FILES = 8,
    SYNTH_LAYOUT_CC_TAR = 16,
    SYNTH_LAYOUT_ALL = 31,
};

enum synth_bad_kind {
    SYNTH_GOOD,
    SYNTH_BAD_MISSING_IMAGE,   /* listed, with captions, but no image file */
    SYNTH_BAD_EMPTY_CAPTION,   /* one caption is "" */
    SYNTH_BAD_DUPLICATE_ID,    /* COCO/Karpathy list the image twice */
    SYNTH_BAD_TRUNCATED,       /* the first half of a valid JPEG */
    SYNTH_BAD_ZERO_LENGTH,     /* an empty image file */
    SYNTH_BAD_WRONG_EXTENSION, /* PNG bytes in a .jpg file */
    SYNTH_BAD_NON_UTF8,        /* CC: caption bytes are Latin-1, not UTF-8 */
    SYNTH_BAD_FAILED_DOWNLOAD, /* CC: status "failed_to_download", no image */
    SYNTH_N_BAD
};

enum synth_karpathy_split { SYNTH_KS_TRAIN, SYNTH_KS_RESTVAL, SYNTH_KS_VAL, SYNTH_KS_TEST, SYNTH_N_KS };

typedef struct synth_opts_t {
    const char *out;      /* output directory */
    uint64_t count;       /* good images */
    uint64_t seed;
    unsigned layouts;     /* enum synth_layout_bit */
    int bad;              /* also write the bad records */
    uint32_t large;       /* how many multi-megapixel images */
    uint32_t per_shard;   /* CC samples per shard (<= 10000) */
    int square;           /* the 32-384 px images are square (CLIP's centre crop then keeps every shape) */
} synth_opts_t;

typedef struct synth_plan_t {
    synth_opts_t o;
    uint64_t total;       /* count plus the bad records */
    uint64_t role_a, role_b, split_a, split_b;
    int format_offset;
} synth_plan_t;

typedef struct synth_record_t {
    uint64_t index;
    int bad;              /* enum synth_bad_kind */
    int format;           /* enum synth_format of the bytes written */
    int width, height;
    uint64_t coco_id;
    int val2014;          /* COCO split: 0 train2014, 1 val2014 */
    int karpathy_split;   /* enum synth_karpathy_split */
    uint64_t shard;       /* CC shard */
    uint64_t cc_key;      /* img2dataset key: shard * 10000 + index in shard */
    int in_coco;          /* appears in COCO and Karpathy */
    int in_cc;            /* appears in the CC layouts */
    int cc_phrasing;      /* which caption CC gets */
    synth_scene_t scene;
} synth_record_t;

#define SYNTH_COUNT_MAX 100000000ull
#define SYNTH_SHARD_MAX 10000u

int synth_plan_init(synth_plan_t *p, const synth_opts_t *o, err_t *e);
void synth_plan_record(const synth_plan_t *p, uint64_t i, synth_record_t *r);

/* Caption k (0..SYNTH_N_PHRASINGS-1) as COCO and Karpathy store it
 * ("A red circle above a blue square."), "" for an empty-caption record. */
size_t synth_record_coco_caption(const synth_record_t *r, int k, char *out, size_t cap);
/* The CC caption bytes (lower case, no period); Latin-1 for the non-UTF-8
 * record, "" for the empty one. */
size_t synth_record_cc_caption(const synth_record_t *r, char *out, size_t cap);

const char *synth_bad_name(int kind);
const char *synth_karpathy_split_name(int split);
/* "train2014" / "val2014" */
const char *synth_coco_split_name(const synth_record_t *r);
/* File extension of the record's image (the wrong one for that bad kind). */
const char *synth_record_ext(const synth_record_t *r);

#endif
