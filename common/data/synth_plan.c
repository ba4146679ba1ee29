#include "data/synth_plan.h"
#include "data/synth_encode.h"
#include "data/synth_rng.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

/* The purposes synth_seed_mix separates: one stream each. */
enum { PURPOSE_PERMUTATIONS = 1, PURPOSE_SIZE, PURPOSE_SCENE, PURPOSE_CC };

static const int tiny_sizes[][2] = {{1, 1}, {3, 5}, {17, 9}, {2, 31}, {31, 2}, {8, 8}};
static const int large_sizes[][2] = {{2500, 1800}, {1800, 2500}, {3000, 2000}, {2048, 2048}};
enum { N_TINY = 6, N_LARGE_SIZES = 4 };

static const char *const bad_names[SYNTH_N_BAD] = {
    "good", "missing_image", "empty_caption", "duplicate_id", "truncated_image",
    "zero_length", "wrong_extension", "non_utf8_caption", "failed_download"};
static const char *const ks_names[SYNTH_N_KS] = {"train", "restval", "val", "test"};

const char *synth_bad_name(int kind) { return kind >= 0 && kind < SYNTH_N_BAD ? bad_names[kind] : "?"; }
const char *synth_karpathy_split_name(int split) { return split >= 0 && split < SYNTH_N_KS ? ks_names[split] : "?"; }
const char *synth_coco_split_name(const synth_record_t *r) { return r->val2014 ? "val2014" : "train2014"; }

const char *synth_record_ext(const synth_record_t *r)
{
    return r->bad == SYNTH_BAD_WRONG_EXTENSION ? "jpg" : synth_format_info(r->format)->ext;
}

static uint64_t gcd(uint64_t a, uint64_t b)
{
    while (b) {
        uint64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* A multiplier coprime to n and an offset: i -> (a*i + b) mod n is then a
 * permutation of [0, n) that needs no memory. */
static void affine(synth_rng_t *r, uint64_t n, uint64_t *a, uint64_t *b)
{
    *a = 1;
    *b = 0;
    if (n < 2) return;
    do *a = 1 + synth_rng_next(r) % (n - 1);
    while (gcd(*a, n) != 1);
    *b = synth_rng_next(r) % n;
}

static uint64_t affine_apply(uint64_t a, uint64_t b, uint64_t i, uint64_t n)
{
    return (uint64_t)(((unsigned __int128)a * i + b) % n);
}

int synth_plan_init(synth_plan_t *p, const synth_opts_t *o, err_t *e)
{
    memset(p, 0, sizeof *p);
    if (o->count < 1 || o->count > SYNTH_COUNT_MAX)
        return err_set(e, ERR_ARG, "--count %llu: must be 1..%llu", (unsigned long long)o->count, SYNTH_COUNT_MAX);
    if (o->large > o->count)
        return err_set(e, ERR_ARG, "--large %u: more than --count %llu", o->large, (unsigned long long)o->count);
    if (o->per_shard < 1 || o->per_shard > SYNTH_SHARD_MAX)
        return err_set(e, ERR_ARG, "--per-shard %u: must be 1..%u (img2dataset keys hold 4 digits per shard)",
                       o->per_shard, SYNTH_SHARD_MAX);
    if (!o->layouts || (o->layouts & ~(unsigned)SYNTH_LAYOUT_ALL)) return err_set(e, ERR_ARG, "no valid layout selected");
    p->o = *o;
    p->total = o->count + (o->bad ? SYNTH_N_BAD - 1 : 0);
    synth_rng_t r;
    synth_rng_init(&r, synth_seed_mix(o->seed, 0, PURPOSE_PERMUTATIONS));
    affine(&r, o->count, &p->role_a, &p->role_b);
    affine(&r, o->count, &p->split_a, &p->split_b);
    p->format_offset = (int)synth_rng_below(&r, SYNTH_N_FORMATS);
    return 0;
}

void synth_plan_record(const synth_plan_t *p, uint64_t i, synth_record_t *r)
{
    const synth_opts_t *o = &p->o;
    memset(r, 0, sizeof *r);
    r->index = i;
    r->coco_id = i + 1;
    r->shard = i / o->per_shard;
    r->cc_key = r->shard * SYNTH_SHARD_MAX + i % o->per_shard;
    synth_rng_t rng;
    synth_rng_init(&rng, synth_seed_mix(o->seed, i, PURPOSE_CC));
    r->cc_phrasing = (int)synth_rng_below(&rng, SYNTH_N_PHRASINGS);
    synth_rng_init(&rng, synth_seed_mix(o->seed, i, PURPOSE_SIZE));
    if (i < o->count) {
        uint64_t role = affine_apply(p->role_a, p->role_b, i, o->count);
        r->format = (int)((role + (uint64_t)p->format_offset) % SYNTH_N_FORMATS);
        if (role < o->large) {
            r->width = large_sizes[role % N_LARGE_SIZES][0];
            r->height = large_sizes[role % N_LARGE_SIZES][1];
        } else if (role - o->large < N_TINY) {
            r->width = tiny_sizes[role - o->large][0];
            r->height = tiny_sizes[role - o->large][1];
        } else {
            r->width = 32 + (int)synth_rng_below(&rng, 353);
            r->height = 32 + (int)synth_rng_below(&rng, 353);
            /* Drawn either way, so that --square changes nothing else. */
            if (o->square) r->height = r->width;
        }
        /* Five of eight go to train2014 ("train"); val2014 splits into
         * Karpathy's val, test and restval, as in the real split. */
        uint64_t s = affine_apply(p->split_a, p->split_b, i, o->count) % 8;
        r->karpathy_split = s < 5 ? SYNTH_KS_TRAIN : s == 5 ? SYNTH_KS_VAL : s == 6 ? SYNTH_KS_TEST : SYNTH_KS_RESTVAL;
        r->val2014 = s >= 5;
        r->in_coco = r->in_cc = 1;
    } else {
        r->bad = (int)(i - o->count) + 1;
        r->format = r->bad == SYNTH_BAD_WRONG_EXTENSION ? SYNTH_PNG_RGB : SYNTH_JPEG_BASELINE;
        r->width = 64;
        r->height = 48;
        r->karpathy_split = SYNTH_KS_TRAIN;
        /* COCO JSON is UTF-8 by definition and has no download status; CC
         * has no image ids to duplicate. */
        r->in_coco = r->bad != SYNTH_BAD_NON_UTF8 && r->bad != SYNTH_BAD_FAILED_DOWNLOAD;
        r->in_cc = r->bad != SYNTH_BAD_DUPLICATE_ID;
    }
    const synth_format_info_t *fi = synth_format_info(r->format);
    synth_scene_make(&r->scene, synth_seed_mix(o->seed, i, PURPOSE_SCENE), fi->grey, fi->alpha);
}

size_t synth_record_coco_caption(const synth_record_t *r, int k, char *out, size_t cap)
{
    if (r->bad == SYNTH_BAD_EMPTY_CAPTION && k == 0) {
        out[0] = 0;
        return 0;
    }
    size_t n = synth_caption(&r->scene, k, out, cap);
    out[0] = (char)toupper((unsigned char)out[0]);
    if (n + 1 < cap) {
        out[n++] = '.';
        out[n] = 0;
    }
    return n;
}

size_t synth_record_cc_caption(const synth_record_t *r, char *out, size_t cap)
{
    if (r->bad == SYNTH_BAD_EMPTY_CAPTION) {
        out[0] = 0;
        return 0;
    }
    size_t n = synth_caption(&r->scene, r->cc_phrasing, out, cap);
    if (r->bad == SYNTH_BAD_NON_UTF8 && n + 5 < cap) {
        /* " été" in Latin-1: 0xe9 is never valid UTF-8 before 't'. */
        memcpy(out + n, " \xe9t\xe9", 5);
        n += 4;
    }
    return n;
}
