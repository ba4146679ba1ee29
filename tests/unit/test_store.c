/* store: the record codec round-trips (fp32 bit-exact; fp16 equal to a
 * reference computed from the IEEE definition with ldexp/rint) and reads
 * version 1 records, every kind of damage is reported, the map grows from a
 * tiny size, failures and embeddings replace each other, consolidation
 * resolves each key of several environments and the pack to its newest
 * entry (in sorted order), drops what it supersedes and removes what it
 * merged, and the pack stays within 1.15x the payload's bytes on disk; a
 * data.mdb cut at any page is refused before LMDB maps it (it used to die
 * of SIGBUS). */
#include "check.h"
#include "core/fsutil.h"
#include "store/store.h"
#include "store/store_envfile.h"

#include <dirent.h>
#include <lmdb.h>
#include <unistd.h>
#include <stdint.h>
#include <sys/stat.h>
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

static const char FP_A[] = "0123456789abcdef0123456789abcdef";
static const char FP_B[] = "fedcba9876543210fedcba9876543210";
static const char HASH[] = "00112233445566778899aabbccddeeff";

static void fill_meta(store_record *r, enum store_dtype dt, uint32_t dim, uint64_t gen, const char *fp)
{
    memset(r, 0, sizeof *r);
    r->dtype = dt;
    r->dim = dim;
    r->width = 640;
    r->height = 480;
    r->generation = gen;
    snprintf(r->model, sizeof r->model, "%s", fp);
    snprintf(r->content_hash, sizeof r->content_hash, "%s", HASH);
}

/* binary16 rounding from its definition: 11 significant bits, exponent
 * >= -14 (below that a fixed quantum of 2^-24), round half to even (rint in
 * the default rounding mode), overflow to infinity from 65520 up. */
static float ref_to_half(float f)
{
    double a = fabs((double)f);
    if (a >= 65520.0) return copysignf(INFINITY, f);
    if (a == 0) return f;
    int ex = ilogb(a);
    if (ex < -14) ex = -14;
    double q = ldexp(1.0, ex - 10);
    return (float)copysign(rint(a / q) * q, (double)f);
}

/* A half's value from its fields. */
static float ref_half_value(uint16_t h)
{
    int sign = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    double v = e == 31 ? INFINITY : e == 0 ? ldexp(m, -24) : ldexp(1024 + m, e - 25);
    return (float)(sign ? -v : v);
}

static float test_value(uint32_t i, uint64_t seed)
{
    /* A spread of magnitudes, signs, subnormal-in-fp16 values and ties. */
    uint64_t x = (i + 1) * 0x9E3779B97F4A7C15ull ^ seed;
    x ^= x >> 29;
    x *= 0xBF58476D1CE4E5B9ull;
    x ^= x >> 32;
    float mant = (float)(x & 0xffffff) / (float)0xffffff - 0.5f;
    int ex = (int)((x >> 24) % 40) - 28;
    return ldexpf(mant, ex);
}

static void test_codec_roundtrip(void)
{
    err_t e = {0};
    enum { D = 777 };
    float emb[D], back[D];
    for (uint32_t i = 0; i < D; i++) emb[i] = test_value(i, 1);
    emb[0] = 0.0f, emb[1] = -0.0f, emb[2] = 65504.0f, emb[3] = 70000.0f, emb[4] = 5.960464477539063e-08f;
    emb[5] = 2.98023223876953125e-08f; /* exactly half the smallest fp16 subnormal: ties to 0 */
    emb[6] = 1.0f + 0x1p-10f + 0x1p-11f; /* ties between fp16 normals: rounds up to even */
    emb[7] = 1.0f + 0x1p-11f;            /* ... and down to even */
    emb[8] = -5 * 0x1p-25f;              /* a tie between fp16 subnormals: down to even */
    emb[9] = 65519.0f;                   /* the largest finite fp16 */
    uint8_t buf[STORE_RECORD_HEADER + 4 * D];
    for (int dt = STORE_FP32; dt <= STORE_FP16; dt++) {
        store_record meta, rec;
        fill_meta(&meta, (enum store_dtype)dt, D, 42, FP_A);
        size_t n = store_record_size(meta.dtype, D);
        CHECK(n == STORE_RECORD_HEADER + (dt == STORE_FP32 ? 4u : 2u) * D);
        CHECK_OK(store_record_encode(&meta, emb, buf, sizeof buf, &e), &e);
        CHECK_OK(store_record_decode(buf, n, &rec, &e), &e);
        CHECK(rec.dim == D && (int)rec.dtype == dt && rec.width == 640 && rec.height == 480 && rec.generation == 42);
        CHECK(!strcmp(rec.model, FP_A) && !strcmp(rec.content_hash, HASH));
        store_record_embedding(&rec, back);
        int bad = 0;
        for (uint32_t i = 0; i < D; i++) {
            float want = dt == STORE_FP32 ? emb[i] : ref_to_half(emb[i]);
            if (memcmp(&want, &back[i], 4) != 0 && bad++ < 5)
                fprintf(stderr, "  value %u: %a -> %a, want %a\n", i, emb[i], back[i], want);
        }
        CHECK_MSG(bad == 0, "%d values differ for %s", bad, store_dtype_name(meta.dtype));
    }
}

static void test_fp16_all_halves(void)
{
    /* Every binary16 bit pattern (except NaNs) has its defined value and
     * converts back to itself; NaN stays NaN. */
    int bad = 0;
    for (uint32_t h = 0; h < 0x10000; h++) {
        float f = store_f16_to_f32((uint16_t)h);
        if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff)) {
            if (!isnan(f) || !isnan(store_f16_to_f32(store_f32_to_f16(f)))) bad++;
            continue;
        }
        float want = ref_half_value((uint16_t)h);
        if (memcmp(&f, &want, 4) != 0) bad++;
        if (store_f32_to_f16(f) != h) bad++;
    }
    CHECK_MSG(bad == 0, "%d half patterns wrong", bad);
}

static void test_codec_damage(void)
{
    err_t e = {0};
    enum { D = 16 };
    float emb[D];
    for (int i = 0; i < D; i++) emb[i] = (float)i;
    store_record meta, rec;
    fill_meta(&meta, STORE_FP32, D, 1, FP_A);
    uint8_t buf[STORE_RECORD_HEADER + 4 * D], bad[sizeof buf];
    CHECK_OK(store_record_encode(&meta, emb, buf, sizeof buf, &e), &e);
    memcpy(bad, buf, sizeof buf);
    bad[STORE_RECORD_HEADER + 5] ^= 1; /* payload bit flip */
    CHECK(store_record_decode(bad, sizeof bad, &rec, &e) == ERR_FORMAT && strstr(e.msg, "checksum"));
    memcpy(bad, buf, sizeof buf);
    bad[0] = 'X';
    CHECK(store_record_decode(bad, sizeof bad, &rec, &e) == ERR_FORMAT && strstr(e.msg, "magic"));
    CHECK(store_record_decode(buf, sizeof buf - 1, &rec, &e) == ERR_FORMAT && strstr(e.msg, "needs"));
    CHECK(store_record_decode(buf, 10, &rec, &e) == ERR_FORMAT && strstr(e.msg, "header"));
    memcpy(bad, buf, sizeof buf);
    bad[4] = 9; /* version 9 */
    CHECK(store_record_decode(bad, sizeof bad, &rec, &e) == ERR_UNSUPPORTED && strstr(e.msg, "version 9"));
    CHECK(store_record_encode(&meta, emb, buf, 20, &e) == ERR_ARG);
    snprintf(meta.model, sizeof meta.model, "not-hex");
    CHECK(store_record_encode(&meta, emb, buf, sizeof buf, &e) == ERR_ARG);
    store_failure f;
    CHECK(store_failure_decode((const uint8_t *)"{\"v\":1}", 7, &f, &e) == ERR_FORMAT && strstr(e.msg, "generation"));
}

/* A version 1 record (104-byte header, no source fields), as the previous
 * format wrote it, decodes: what a consolidation of an old store reads. */
static void test_codec_version1(void)
{
    err_t e = {0};
    enum { D = 4 };
    float emb[D] = {1, -2, 3.5f, 0.25f}, out[D];
    store_record meta, rec;
    fill_meta(&meta, STORE_FP32, D, 7, FP_A);
    meta.src_size = 1234;
    meta.src_mtime_ns = 1700000000123456789LL;
    meta.src_offset = 512;
    uint8_t v2[STORE_RECORD_HEADER + 4 * D], v1[104 + 4 * D];
    CHECK_OK(store_record_encode(&meta, emb, v2, sizeof v2, &e), &e);
    CHECK_OK(store_record_decode(v2, sizeof v2, &rec, &e), &e);
    CHECK(rec.src_size == 1234 && rec.src_mtime_ns == 1700000000123456789LL && rec.src_offset == 512);
    memcpy(v1, v2, 104);
    memcpy(v1 + 104, v2 + STORE_RECORD_HEADER, 4 * D);
    v1[4] = 1;
    XXH3_state_t st;
    XXH3_64bits_reset(&st);
    XXH3_64bits_update(&st, v1, 96);
    XXH3_64bits_update(&st, v1 + 104, 4 * D);
    store_le_put(v1 + 96, XXH3_64bits_digest(&st), 8);
    CHECK_OK(store_record_decode(v1, sizeof v1, &rec, &e), &e);
    store_record_embedding(&rec, out);
    CHECK(rec.version == 1 && rec.dim == D && rec.generation == 7 && rec.src_size == 0 && rec.src_mtime_ns == 0 &&
          !memcmp(out, emb, sizeof emb) && !strcmp(rec.model, FP_A));
}

/* Write `count` embeddings key-%05d (dim D) in batches of `batch`. */
static int write_embeddings(store_env *env, int first, int count, int batch, uint32_t D, uint64_t gen,
                            const char *fp, err_t *e)
{
    float *emb = malloc(D * sizeof *emb);
    store_record *recs = malloc((size_t)batch * sizeof *recs);
    store_put *puts = malloc((size_t)batch * sizeof *puts);
    char (*keys)[32] = malloc((size_t)batch * sizeof *keys);
    int rc = 0;
    for (uint32_t i = 0; i < D; i++) emb[i] = (float)i * 0.5f;
    for (int b = first; !rc && b < first + count; b += batch) {
        int n = first + count - b < batch ? first + count - b : batch;
        for (int i = 0; i < n; i++) {
            snprintf(keys[i], sizeof keys[i], "key-%05d", b + i);
            fill_meta(&recs[i], STORE_FP32, D, gen, fp);
            puts[i] = (store_put){.key = keys[i], .rec = &recs[i], .embedding = emb};
        }
        rc = store_env_write(env, puts, (size_t)n, e);
    }
    free(emb), free(recs), free(puts), free(keys);
    return rc;
}

/* A new scratch dir NAME (its path into dir, 4096 bytes) holding the
 * environment of a one-rank run; NULL, with the CHECK failed, when it
 * cannot be created. */
static store_env *scratch_env(char *dir, const char *name, size_t initial_mapsize)
{
    check_tmpdir(dir, 4096, name);
    err_t e = {0};
    store_env *env = NULL;
    CHECK_OK(store_env_create(&env, dir, "rank-00000-of-00001", initial_mapsize, &e), &e);
    return env;
}

static void test_map_growth(void)
{
    char dir[4096];
    err_t e = {0};
    store_env *env = scratch_env(dir, "store-grow", 64 << 10);
    if (!env) return;
    size_t before = store_env_mapsize(env);
    /* 600 records of 2 KiB: ~1.3 MiB, twenty times the initial map. */
    CHECK_OK(write_embeddings(env, 0, 600, 50, 512, 1, FP_A, &e), &e);
    CHECK(store_env_mapsize(env) > before);
    store *s = NULL;
    CHECK_OK(store_open(&s, dir, env, &e), &e);
    store_env_info info;
    CHECK_OK(store_env_stat(env, &info, &e), &e);
    CHECK(info.embeddings == 600 && info.encoded_total == 600 && info.generation_max == 1);
    store_entry ent;
    CHECK_OK(store_lookup(s, "key-00599", &ent, &e), &e);
    CHECK(ent.kind == STORE_ENTRY_EMBEDDING && ent.rec.dim == 512);
    store_close(s);
    store_env_close(env);
    /* Reopening with a small requested map keeps the grown data. */
    CHECK_OK(store_env_create(&env, dir, "rank-00000-of-00001", 64 << 10, &e), &e);
    CHECK_OK(write_embeddings(env, 600, 10, 10, 512, 2, FP_A, &e), &e);
    CHECK_OK(store_env_stat(env, &info, &e), &e);
    CHECK(info.embeddings == 610 && info.encoded_total == 610);
    store_env_close(env);
}

/* Every page-aligned cut of a data file, and a few unaligned ones: a cut
 * shorter than the meta page's (last_pg + 1) pages is ERR_FORMAT naming
 * the file from store_check_env_file and from store_consolidate (which
 * LMDB would have turned into SIGBUS), a whole file passes. The required
 * size is read here with LMDB's own API, not our parser. */
static void test_truncated_env(void)
{
    char dir[4096], data[4300], good[4300];
    err_t e = {0};
    store_env *env = scratch_env(dir, "store-cut", 0);
    if (!env) return;
    CHECK_OK(write_embeddings(env, 0, 200, 50, 64, 1, FP_A, &e), &e);
    store_env_close(env);
    snprintf(data, sizeof data, "%s/rank-00000-of-00001/data.mdb", dir);
    MDB_env *lm = NULL;
    MDB_envinfo info;
    MDB_stat st;
    char envdir[4300];
    snprintf(envdir, sizeof envdir, "%s/rank-00000-of-00001", dir);
    CHECK(mdb_env_create(&lm) == 0 && mdb_env_set_maxdbs(lm, 4) == 0 && mdb_env_open(lm, envdir, MDB_RDONLY, 0644) == 0);
    CHECK(mdb_env_info(lm, &info) == 0 && mdb_env_stat(lm, &st) == 0);
    mdb_env_close(lm);
    const uint64_t need = ((uint64_t)info.me_last_pgno + 1) * st.ms_psize;
    uint8_t *bytes = NULL;
    size_t len = 0;
    CHECK_OK(fs_read_all(data, &bytes, &len, &e), &e);
    CHECK(len >= need && need > 4 * (uint64_t)st.ms_psize);
    /* a second environment, whole */
    snprintf(good, sizeof good, "%s/rank-00000-of-00002", dir);
    CHECK_OK(fs_mkdirs(good, &e), &e);
    snprintf(good, sizeof good, "%s/rank-00000-of-00002/data.mdb", dir);
    CHECK_OK(fs_write_atomic(good, bytes, len, &e), &e);
    uint64_t cuts[64];
    int n = 0;
    for (uint64_t c = 2 * st.ms_psize; c < need && n < 56; c += st.ms_psize) cuts[n++] = c;
    cuts[n++] = 100;                 /* inside meta page 0 */
    cuts[n++] = st.ms_psize + 7;     /* inside meta page 1 */
    cuts[n++] = need - 1;
    cuts[n++] = need;
    for (int i = 0; i < n; i++) {
        CHECK_OK(fs_write_atomic(data, bytes, (size_t)cuts[i], &e), &e);
        int rc = store_check_env_file(data, &e);
        if (cuts[i] >= need) {
            CHECK_MSG(rc == 0, "cut at %llu of %llu needed: %s", (unsigned long long)cuts[i], (unsigned long long)need,
                      e.msg);
            continue;
        }
        CHECK_MSG(rc == ERR_FORMAT && strstr(e.msg, data), "cut at %llu: rc %d: %s", (unsigned long long)cuts[i], rc,
                  e.msg);
        /* consolidation is what opens environments now: it stops, publishing nothing */
        store_consolidation c;
        CHECK(store_consolidate(dir, &c, &e) == ERR_FORMAT && strstr(e.msg, "rank-00000-of-00001/data.mdb"));
        char cur[4300];
        snprintf(cur, sizeof cur, "%s/CURRENT", dir);
        CHECK(!fs_exists(cur));
    }
    bytes[0] ^= 0xff; /* a page number byte: harmless */
    bytes[sizeof(size_t) + 8] ^= 0xff; /* the magic, after the page header */
    CHECK_OK(fs_write_atomic(data, bytes, len, &e), &e);
    CHECK(store_check_env_file(data, &e) == ERR_FORMAT && strstr(e.msg, "not an LMDB meta page"));
    CHECK(unlink(data) == 0);
    CHECK_OK(store_check_env_file(data, &e), &e); /* absent: a new environment */
    free(bytes);
}

static void test_failures_table(void)
{
    char dir[4096];
    err_t e = {0};
    store_env *env = scratch_env(dir, "store-fail", 0);
    if (!env) return;
    store_failure f = {.generation = 1};
    snprintf(f.reason, sizeof f.reason, "corrupt");
    snprintf(f.message, sizeof f.message, "a.jpg: \"bad\" Huffman table \xc3\xa9");
    store_put p = {.key = "img-1", .failure = &f};
    CHECK_OK(store_env_write(env, &p, 1, &e), &e);
    store *s = NULL;
    CHECK_OK(store_open(&s, dir, env, &e), &e);
    store_entry ent;
    CHECK_OK(store_lookup(s, "img-1", &ent, &e), &e);
    CHECK(ent.kind == STORE_ENTRY_FAILURE && !strcmp(ent.fail.reason, "corrupt") &&
          !strcmp(ent.fail.message, f.message) && ent.fail.content_hash[0] == 0);
    CHECK_OK(store_lookup(s, "img-2", &ent, &e), &e);
    CHECK(ent.kind == STORE_ENTRY_NONE);
    /* A later success replaces the failure in the same environment. */
    store_record rec;
    fill_meta(&rec, STORE_FP16, 4, 2, FP_A);
    float emb[4] = {1, 2, 3, 4};
    p = (store_put){.key = "img-1", .rec = &rec, .embedding = emb};
    CHECK_OK(store_env_write(env, &p, 1, &e), &e);
    CHECK_OK(store_lookup(s, "img-1", &ent, &e), &e);
    CHECK(ent.kind == STORE_ENTRY_EMBEDDING && ent.rec.dtype == STORE_FP16 && ent.shadowed == 0);
    store_env_info info;
    CHECK_OK(store_env_stat(env, &info, &e), &e);
    CHECK(info.embeddings == 1 && info.failures == 0 && info.encoded_total == 1 && info.generation_max == 2);
    /* And a later failure replaces the embedding. */
    f.generation = 3;
    p = (store_put){.key = "img-1", .failure = &f};
    CHECK_OK(store_env_write(env, &p, 1, &e), &e);
    CHECK_OK(store_env_stat(env, &info, &e), &e);
    CHECK(info.embeddings == 0 && info.failures == 1);
    /* Bad batches are refused before anything is written. */
    char longkey[600];
    memset(longkey, 'k', sizeof longkey - 1);
    longkey[sizeof longkey - 1] = 0;
    p = (store_put){.key = longkey, .failure = &f};
    CHECK(store_env_write(env, &p, 1, &e) == ERR_ARG);
    p = (store_put){.key = "x"};
    CHECK(store_env_write(env, &p, 1, &e) == ERR_ARG);
    store_close(s);
    store_env_close(env);
}

static int count_entries(const char *dir, const char *prefix)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL) n += !strncmp(de->d_name, prefix, strlen(prefix));
    if (d) closedir(d);
    return n;
}

static void test_consolidate(void)
{
    char dir[4096], packs[4200];
    check_tmpdir(dir, sizeof dir, "store-union");
    snprintf(packs, sizeof packs, "%s/packs", dir);
    err_t e = {0};
    store *s = NULL;
    store_consolidation c;
    CHECK(store_open(&s, dir, NULL, &e) == ERR_NOTFOUND && strstr(e.msg, dir));
    /* Run 1 with two ranks: keys 0..9 in rank 0, 10..19 in rank 1. */
    store_env *a = NULL, *b = NULL, *c1 = NULL, *d = NULL;
    CHECK_OK(store_env_create(&a, dir, "rank-00000-of-00002", 0, &e), &e);
    CHECK_OK(store_env_create(&b, dir, "rank-00001-of-00002", 0, &e), &e);
    if (!a || !b) return;
    CHECK_OK(write_embeddings(a, 0, 10, 4, 8, 100, FP_A, &e), &e);
    CHECK_OK(write_embeddings(b, 10, 10, 4, 8, 100, FP_A, &e), &e);
    store_env_close(a);
    store_env_close(b);
    /* Readers never open writer environments: without a pack they say what to do. */
    CHECK(store_open(&s, dir, NULL, &e) == ERR_UNSUPPORTED && strstr(e.msg, "clipcap store consolidate"));
    /* Run 2 with one rank re-encodes keys 5..14 with another model. */
    CHECK_OK(store_env_create(&c1, dir, "rank-00000-of-00001", 0, &e), &e);
    if (!c1) return;
    CHECK_OK(write_embeddings(c1, 5, 10, 3, 8, 200, FP_B, &e), &e);
    store_env_close(c1);
    /* Leftovers of writers killed before their first commit (an empty
     * data.mdb, an LMDB without the named databases) and names that are not
     * environments. */
    char junk[4200];
    snprintf(junk, sizeof junk, "%s/rank-1-of-2", dir);
    CHECK_OK(fs_mkdirs(junk, &e), &e);
    snprintf(junk, sizeof junk, "%s/rank-00002-of-00003", dir);
    CHECK_OK(fs_mkdirs(junk, &e), &e);
    snprintf(junk, sizeof junk, "%s/rank-00002-of-00003/data.mdb", dir);
    CHECK_OK(fs_write_atomic(junk, "", 0, &e), &e);
    snprintf(junk, sizeof junk, "%s/rank-00001-of-00003", dir);
    CHECK_OK(fs_mkdirs(junk, &e), &e);
    MDB_env *m = NULL;
    CHECK(mdb_env_create(&m) == 0 && mdb_env_open(m, junk, 0, 0644) == 0);
    mdb_env_close(m);

    CHECK_OK(store_consolidate(dir, &c, &e), &e);
    CHECK(c.published && c.environments == 3 && c.superseded == 10 && c.pack.sequence == 1 && c.pack.keys == 20 &&
          c.pack.encoded_total == 30 && c.pack.generation_max == 200);
    CHECK_MSG(count_entries(dir, "rank-") == 1, "environments left: %d", count_entries(dir, "rank-")); /* rank-1-of-2 */
    CHECK_OK(store_open(&s, dir, NULL, &e), &e);
    if (!s) return;
    uint64_t gmax = 0;
    CHECK_OK(store_generation_max(s, &gmax, &e), &e);
    CHECK(gmax == 200);
    store_entry ent;
    CHECK_OK(store_lookup(s, "key-00003", &ent, &e), &e);
    CHECK(ent.kind == STORE_ENTRY_EMBEDDING && !strcmp(ent.rec.model, FP_A) && ent.rec.generation == 100);
    CHECK_OK(store_lookup(s, "key-00012", &ent, &e), &e);
    CHECK(ent.kind == STORE_ENTRY_EMBEDDING && !strcmp(ent.rec.model, FP_B) && ent.shadowed == 0);
    CHECK_OK(store_lookup(s, "key-0001", &ent, &e), &e);
    CHECK(ent.kind == STORE_ENTRY_NONE);
    store_iter *it = NULL;
    CHECK_OK(store_iter_open(&it, s, &e), &e);
    const char *key;
    const float *emb;
    int n = 0, order_ok = 1, models_ok = 1;
    char prev[64] = "";
    while (it && store_iter_next(it, &key, &ent, &emb, &e) == 1) {
        if (strcmp(prev, key) >= 0) order_ok = 0;
        snprintf(prev, sizeof prev, "%s", key);
        int k = atoi(key + 4);
        const char *want = k >= 5 && k < 15 ? FP_B : FP_A;
        if (ent.kind != STORE_ENTRY_EMBEDDING || strcmp(ent.rec.model, want) || !emb || emb[3] != 1.5f)
            models_ok = 0;
        n++;
    }
    CHECK(n == 20 && order_ok && models_ok);
    store_iter_close(it);
    store_close(s);

    /* Run 3 writes keys 0..2 (its own environment in the union with the
     * pack), and a failure for key 19. */
    CHECK_OK(store_env_create(&d, dir, "rank-00000-of-00001", 0, &e), &e);
    if (!d) return;
    CHECK_OK(write_embeddings(d, 0, 3, 3, 8, 300, FP_B, &e), &e);
    store_failure f = {.generation = 300};
    snprintf(f.reason, sizeof f.reason, "corrupt");
    store_put p = {.key = "key-00019", .failure = &f};
    CHECK_OK(store_env_write(d, &p, 1, &e), &e);
    CHECK_OK(store_open(&s, dir, d, &e), &e);
    if (!s) return;
    CHECK_OK(store_lookup(s, "key-00001", &ent, &e), &e);
    CHECK(ent.kind == STORE_ENTRY_EMBEDDING && !strcmp(ent.rec.model, FP_B) && ent.shadowed == 1);
    CHECK_OK(store_generation_max(s, &gmax, &e), &e);
    CHECK(gmax == 300);
    store_close(s);
    store_env_close(d);
    /* Keep a copy of the environment, as if a consolidation were killed
     * after publishing but before removing it. */
    char cmd[9000];
    snprintf(cmd, sizeof cmd, "cp -r '%s/rank-00000-of-00001' '%s/saved'", dir, dir);
    CHECK(system(cmd) == 0);
    CHECK_OK(store_consolidate(dir, &c, &e), &e);
    CHECK(c.published && c.environments == 1 && c.superseded == 4 && c.pack.sequence == 2 && c.pack.keys == 20 &&
          c.pack.embeddings == 19 && c.pack.failures == 1 && c.pack.encoded_total == 33);
    CHECK(count_entries(packs, "gen-") == 1); /* the superseded generation is gone */
    snprintf(cmd, sizeof cmd, "mv '%s/saved' '%s/rank-00000-of-00001'", dir, dir);
    CHECK(system(cmd) == 0);
    CHECK_OK(store_consolidate(dir, &c, &e), &e);
    CHECK_MSG(!c.published && c.pack.sequence == 2 && c.pack.encoded_total == 33,
              "an already merged environment was merged again");
    CHECK(count_entries(dir, "rank-0") == 0);
    /* An unfinished generation (killed while writing) is ignored by readers
     * and removed by the next consolidation; a generation published without
     * CURRENT being switched is not reused. */
    snprintf(junk, sizeof junk, "%s/gen-000000000003.tmp-1", packs);
    CHECK_OK(fs_mkdirs(junk, &e), &e);
    snprintf(junk, sizeof junk, "%s/gen-000000000005", packs);
    CHECK_OK(fs_mkdirs(junk, &e), &e);
    CHECK_OK(store_open(&s, dir, NULL, &e), &e);
    if (s) CHECK(!strcmp(store_current_pack(s)->name, "gen-000000000002"));
    store_close(s);
    CHECK_OK(store_env_create(&d, dir, "rank-00000-of-00001", 0, &e), &e);
    if (!d) return;
    CHECK_OK(write_embeddings(d, 3, 1, 1, 8, 400, FP_B, &e), &e);
    store_env_close(d);
    CHECK_OK(store_consolidate(dir, &c, &e), &e);
    CHECK(c.published && c.pack.sequence == 6 && count_entries(packs, "gen-") == 1);
}

/* Bytes on disk (allocated blocks of every file and directory) under path. */
static uint64_t disk_bytes(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0) return 0;
    uint64_t n = (uint64_t)st.st_blocks * 512;
    DIR *d = S_ISDIR(st.st_mode) ? opendir(path) : NULL;
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        char sub[4400];
        snprintf(sub, sizeof sub, "%s/%s", path, de->d_name);
        n += disk_bytes(sub);
    }
    if (d) closedir(d);
    return n;
}

/* The store as users keep it after extract (its consolidated pack) costs at
 * most 1.15x the payload (dim x dtype + key) per 512-d embedding, and the
 * embeddings lie densely in data.bin (reading one touches only its bytes'
 * pages). The previous format took 2.02x (one 4 KiB LMDB page per fp32
 * record). At 3000 keys the directories and small files still add ~1%;
 * docs/store.md has the 100k measurement. */
static void test_bytes_per_embedding(void)
{
    enum { N = 3000, D = 512 };
    for (int dt = STORE_FP32; dt <= STORE_FP16; dt++) {
        char dir[4096], data[4300];
        err_t e = {0};
        store_env *env = scratch_env(dir, dt == STORE_FP32 ? "store-size32" : "store-size16", (size_t)64 << 20);
        if (!env) return;
        store_record *recs = calloc(N, sizeof *recs);
        float *emb = malloc((size_t)D * sizeof *emb);
        store_put *puts = calloc(N, sizeof *puts);
        char(*keys)[16] = calloc(N, sizeof *keys);
        if (!recs || !emb || !puts || !keys) return;
        for (int i = 0; i < D; i++) emb[i] = (float)i / D;
        for (int i = 0; i < N; i++) {
            snprintf(keys[i], sizeof keys[i], "%09d", 100000 + i); /* COCO-like ids */
            fill_meta(&recs[i], (enum store_dtype)dt, D, 1, FP_A);
            puts[i] = (store_put){.key = keys[i], .rec = &recs[i], .embedding = emb};
        }
        CHECK_OK(store_env_write(env, puts, N, &e), &e);
        store_env_close(env);
        store_consolidation c;
        CHECK_OK(store_consolidate(dir, &c, &e), &e);
        uint64_t payload = (uint64_t)N * (D * store_dtype_size((enum store_dtype)dt) + 9);
        uint64_t disk = disk_bytes(dir);
        CHECK_MSG(disk <= payload * 115 / 100, "%s: %llu bytes on disk for %llu of payload (%.3fx)",
                  store_dtype_name((enum store_dtype)dt), (unsigned long long)disk, (unsigned long long)payload,
                  (double)disk / (double)payload);
        snprintf(data, sizeof data, "%s/packs/%s/data.bin", dir, c.pack.name);
        struct stat st;
        CHECK(stat(data, &st) == 0 && (uint64_t)st.st_size == (uint64_t)N * D * store_dtype_size((enum store_dtype)dt));
        free(recs), free(emb), free(puts), free(keys);
    }
}

/* A damaged environment stops consolidation (naming it and the key) and
 * leaves CURRENT as it was; a damaged or truncated pack is reported naming
 * the pack and the key, never read as data. */
static void test_corrupt(void)
{
    char dir[4096], path[4200];
    err_t e = {0};
    store_env *env = scratch_env(dir, "store-corrupt", 0);
    if (!env) return;
    CHECK_OK(write_embeddings(env, 0, 3, 3, 8, 1, FP_A, &e), &e);
    store_env_close(env);
    store_consolidation c;
    CHECK_OK(store_consolidate(dir, &c, &e), &e);
    CHECK_OK(store_env_create(&env, dir, "rank-00000-of-00001", 0, &e), &e);
    if (!env) return;
    CHECK_OK(write_embeddings(env, 0, 3, 3, 8, 2, FP_B, &e), &e);
    store_env_close(env);
    /* Damage key-00001's value behind the store's back, with raw LMDB. */
    snprintf(path, sizeof path, "%s/rank-00000-of-00001", dir);
    MDB_env *m = NULL;
    MDB_txn *t = NULL;
    MDB_dbi dbi = 0;
    CHECK(mdb_env_create(&m) == 0 && mdb_env_set_maxdbs(m, 4) == 0 && mdb_env_open(m, path, 0, 0644) == 0);
    CHECK(mdb_txn_begin(m, NULL, 0, &t) == 0 && mdb_dbi_open(t, "embeddings", 0, &dbi) == 0);
    MDB_val k = {9, "key-00001"}, d = {5, "junk!"};
    CHECK(mdb_put(t, dbi, &k, &d, 0) == 0 && mdb_txn_commit(t) == 0);
    mdb_env_close(m);
    CHECK(store_consolidate(dir, &c, &e) == ERR_FORMAT);
    CHECK_MSG(strstr(e.msg, "rank-00000-of-00001") && strstr(e.msg, "key-00001") && strstr(e.msg, "header"), "%s",
              e.msg);
    store *s = NULL;
    CHECK_OK(store_open(&s, dir, NULL, &e), &e);
    if (!s) return;
    CHECK(store_pending_envs(s) == 1 && !strcmp(store_current_pack(s)->name, "gen-000000000001"));
    store_entry ent;
    float emb[8];
    CHECK_OK(store_lookup_embedding(s, "key-00001", &ent, emb, 8, &e), &e);
    CHECK(ent.kind == STORE_ENTRY_EMBEDDING && !strcmp(ent.rec.model, FP_A));
    store_close(s);
    /* Flip a byte of key-00001's embedding in the pack. */
    snprintf(path, sizeof path, "%s/packs/gen-000000000001/data.bin", dir);
    FILE *f = fopen(path, "r+b");
    CHECK(f && fseek(f, 8 * 4 + 5, SEEK_SET) == 0 && fputc(0x5a, f) != EOF && fclose(f) == 0);
    CHECK_OK(store_open(&s, dir, NULL, &e), &e);
    if (!s) return;
    CHECK_OK(store_lookup(s, "key-00001", &ent, &e), &e); /* metadata only: the entry is intact */
    CHECK(store_lookup_embedding(s, "key-00001", &ent, emb, 8, &e) == ERR_FORMAT);
    CHECK_MSG(strstr(e.msg, "gen-000000000001") && strstr(e.msg, "key-00001") && strstr(e.msg, "checksum"), "%s",
              e.msg);
    store_iter *it = NULL;
    CHECK_OK(store_iter_open(&it, s, &e), &e);
    const char *key;
    const float *v;
    int rc, n = 0;
    while ((rc = store_iter_next(it, &key, &ent, &v, &e)) == 1) n++;
    CHECK(n == 1 && rc == ERR_FORMAT && strstr(e.msg, "key-00001"));
    store_iter_close(it);
    store_close(s);
    /* A truncated data file is refused at open. */
    CHECK(truncate(path, 40) == 0);
    CHECK(store_open(&s, dir, NULL, &e) == ERR_FORMAT && strstr(e.msg, "data.bin") && strstr(e.msg, "truncated"));
}

static void test_model_fingerprint(void)
{
    const float mean[3] = {0.48145466f, 0.4578275f, 0.40821073f}, sd[3] = {0.26862954f, 0.26130258f, 0.27577711f};
    char a[33], b[33], c[33], d[33];
    store_model_fingerprint(FP_A, 224, 0, mean, sd, a);
    store_model_fingerprint(FP_A, 224, 1, mean, sd, b);
    store_model_fingerprint(FP_A, 336, 0, mean, sd, c);
    store_model_fingerprint(FP_B, 224, 0, mean, sd, d);
    CHECK(strlen(a) == 32 && strcmp(a, b) && strcmp(a, c) && strcmp(a, d));
    store_model_fingerprint(FP_A, 224, 0, mean, sd, b);
    CHECK(!strcmp(a, b));
}

int main(void)
{
    CHECK_RUN(test_codec_roundtrip);
    CHECK_RUN(test_fp16_all_halves);
    CHECK_RUN(test_codec_damage);
    CHECK_RUN(test_codec_version1);
    CHECK_RUN(test_map_growth);
    CHECK_RUN(test_truncated_env);
    CHECK_RUN(test_failures_table);
    CHECK_RUN(test_consolidate);
    CHECK_RUN(test_bytes_per_embedding);
    CHECK_RUN(test_corrupt);
    CHECK_RUN(test_model_fingerprint);
    return check_summary();
}
