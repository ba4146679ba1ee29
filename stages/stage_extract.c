/* `clipcap extract`: CLIP embeddings of every image of a manifest into the
 * feature store (docs/store.md, schemas/feature-store.md).
 *
 * Rank 0 first consolidates what a killed run left (store_consolidate);
 * then the ranks take shards from a shared work queue (core/workq.h), run
 * the extraction pipeline (common/store/extract_pipeline.h) on each and
 * write their own LMDB environment STORE/rank-R-of-N, looking keys up in
 * the consolidated pack (and their own environment), so re-runs with any N
 * encode only what is new, changed or from another model. After every rank
 * has closed its environment, rank 0 consolidates them into the next pack.
 * A run's generation (what makes its entries win over older copies) is the
 * larger of rank 0's clock in microseconds and one more than the largest
 * generation already stored. */
#include "core/cli.h"
#include "core/comm.h"
#include "core/fsutil.h"
#include "core/log.h"
#include "core/mpictx.h"
#include "core/progress.h"
#include "core/workq.h"
#include "data/manifest.h"
#include "io/json_util.h"
#include "image/clip_preprocess.h"
#include "nn/clip_vit.h"
#include "nn/ops.h"
#include "nn/ops_ext.h"
#include "store/extract_pipeline.h"
#include "store/store.h"
#include "store/store_lock.h"

#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

const char stage_extract_summary[] = "CLIP embeddings of a manifest's images into the feature store";

static void extract_usage(FILE *out)
{
    fprintf(out,
            "usage: clipcap extract --manifest DIR --clip DIR --store DIR [options]\n"
            "       mpirun -np N clipcap extract ...\n\n"
            "Reads every image of the manifest (the ranks take shards one at a time, so a\n"
            "slow rank takes fewer),\n"
            "preprocesses it as CLIP does, runs the CLIP image tower on batches and writes\n"
            "one embedding per image key into the feature store. Re-running on the same\n"
            "store encodes only images that are new, whose bytes changed (XXH3-128), or\n"
            "that were encoded with another model fingerprint (weights + image size +\n"
            "--fast-resize) or --dtype; an image whose size and mtime (and tar member\n"
            "offset) equal the ones recorded is not even opened. Each rank writes its\n"
            "own LMDB environment; at the end rank 0 consolidates them into the store's\n"
            "read-only pack (see `clipcap store`). Bad images (missing, unreadable, truncated, too\n"
            "large, corrupt, unsupported) are recorded in the store's failures table with\n"
            "their reason, listed in the summary, and retried by the next run.\n\n"
            "options:\n"
            "  --manifest DIR    manifest written by `clipcap shard`\n"
            "  --clip PATH       CLIP model: a Hugging Face hub directory (config.json +\n"
            "                    model.safetensors) or openai's file (ViT-B-32.pt, ...)\n"
            "  --store DIR       feature store directory (created); rank R of N writes\n"
            "                    DIR/rank-R-of-N/ until the run ends, readers see\n"
            "                    the consolidated pack DIR/packs/gen-S/ CURRENT names\n"
            "  --rehash          read and hash every image even when its size and mtime\n"
            "                    are unchanged (for file systems with coarse mtimes, or\n"
            "                    tools that restore mtimes after writing)\n"
            "  --batch B         images per forward pass (default 32); record i of a\n"
            "                    shard is always row i %% B of a B-row pass, so for the\n"
            "                    same B and --encoder-threads the embeddings are\n"
            "                    byte-identical whatever N or wherever a run resumed\n"
            "  --dtype T         fp32 (default) or fp16 embeddings\n"
            "  --fast-resize     decode JPEGs at a reduced DCT scale (faster, not\n"
            "                    bit-exact with Pillow; a different model fingerprint)\n"
            "  --threads T       decode workers (libuv pool) per rank (default:\n"
            "                    OMP_NUM_THREADS, else 2)\n"
            "  --encoder-threads E  OpenMP/BLAS threads of the CLIP forward (default T);\n"
            "                    see docs/operations.md for sharing cores with decoding\n"
            "  --precision P     GEMM precision of the CLIP forward: fp32 (default), tf32,\n"
            "                    bf16 or fp16 (fp32 accumulation; another model\n"
            "                    fingerprint unless fp32; docs/nn.md \"Precision\")\n"
            "  --max-pixels P    refuse images with more than P pixels (default %llu)\n"
            "  --map-size MIB    initial LMDB map size in MiB (default 64; grows by doubling)\n"
            "  --max-failure-rate R  exit 1 when more than this fraction of the images\n"
            "                    failed (0..1; default 1 = never; what was encoded stays\n"
            "                    committed)\n"
            "  -h, --help        this help\n\n"
            "Prints progress per rank on stderr (images/s, ETA, errors) and, on rank 0, a\n"
            "JSON summary on stdout (encoded, skipped_unchanged, failed, failures by\n"
            "reason, seconds per phase), also written to DIR/extract-summary.json and\n"
            "per rank to DIR/extract-summary-rank-R-of-N.json. The exit status is 1 when\n"
            "every image failed (none encoded, none already up to date) or the failures\n"
            "exceed --max-failure-rate. One extract at a time per store: a second one\n"
            "stops at once naming the first (DIR/extract.lock). A --batch or\n"
            "--encoder-threads other than the store's previous run is a warning: the\n"
            "embeddings encoded now differ from the earlier ones in their last bits.\n",
            (unsigned long long)IMAGE_DEFAULT_MAX_PIXELS);
}

typedef struct extract_opts {
    const char *manifest, *clip, *store;
    int batch, threads, encoder_threads, fast_resize, rehash;
    enum store_dtype dtype;
    enum ops_precision precision;
    uint64_t max_pixels;
    size_t map_size;
    double max_failure_rate;
} extract_opts;

/* 0 = run, 1 = help printed, <0 = usage error. */
static int extract_parse(int argc, char **argv, extract_opts *o, err_t *e)
{
    static const struct option longopts[] = {
        {"manifest", required_argument, NULL, 'm'}, {"clip", required_argument, NULL, 'c'},
        {"store", required_argument, NULL, 's'},    {"batch", required_argument, NULL, 'b'},
        {"dtype", required_argument, NULL, 'd'},    {"fast-resize", no_argument, NULL, 'f'},
        {"threads", required_argument, NULL, 't'},  {"max-pixels", required_argument, NULL, 'p'},
        {"map-size", required_argument, NULL, 'z'}, {"encoder-threads", required_argument, NULL, 'e'},
        {"max-failure-rate", required_argument, NULL, 'r'}, {"precision", required_argument, NULL, 'Q'},
        {"rehash", no_argument, NULL, 'H'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    memset(o, 0, sizeof *o);
    o->batch = 32;
    o->dtype = STORE_FP32;
    const char *omp = getenv("OMP_NUM_THREADS");
    o->threads = omp && atoi(omp) > 0 ? atoi(omp) : 2;
    o->map_size = STORE_DEFAULT_MAPSIZE;
    o->max_failure_rate = 1;
    optind = 1;
    opterr = 0;
    int c, rc = 0;
    while (!rc && (c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'm': o->manifest = optarg; break;
        case 'c': o->clip = optarg; break;
        case 's': o->store = optarg; break;
        case 'f': o->fast_resize = 1; break;
        case 'H': o->rehash = 1; break;
        case 'd':
            if (store_dtype_parse(optarg, &o->dtype, e)) return err_wrap(e, "--dtype");
            break;
        case 'b': rc = cli_parse_int("batch", optarg, 1, 4096, &o->batch, e); break;
        case 't': rc = cli_parse_int("threads", optarg, 1, 1024, &o->threads, e); break;
        case 'e': rc = cli_parse_int("encoder-threads", optarg, 1, 1024, &o->encoder_threads, e); break;
        case 'p': rc = cli_parse_u64("max-pixels", optarg, 1, (uint64_t)1 << 40, &o->max_pixels, e); break;
        case 'z':
            rc = cli_parse_size("map-size", optarg, 1, (size_t)1 << 22, &o->map_size, e);
            if (!rc) o->map_size <<= 20;
            break;
        case 'r': rc = cli_parse_double("max-failure-rate", optarg, 0, 1, &o->max_failure_rate, e); break;
        case 'Q': rc = ops_precision_parse(optarg, &o->precision, e); break;
        case 'h': extract_usage(stdout); return 1;
        default: return err_set(e, ERR_ARG, "unknown or incomplete option '%s' (try --help)", argv[optind - 1]);
        }
    }
    if (rc) return rc;
    if (optind < argc) return err_set(e, ERR_ARG, "unexpected argument '%s'", argv[optind]);
    if (!o->encoder_threads) o->encoder_threads = o->threads;
    if (!o->manifest || !o->clip || !o->store)
        return err_set(e, ERR_ARG, "--manifest, --clip and --store are required (try --help)");
    return 0;
}

static json_t *extract_rank_summary(const extract_stats *st, const char *fp, const extract_opts *o,
                                    uint64_t generation, const char *env_name)
{
    double rate = st->t_wall > 0 ? (double)st->encoded / st->t_wall : 0;
    return json_pack("{s:i, s:i, s:s, s:O, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:O, s:O, s:{s:f, s:f, s:f, s:f, s:f}, "
                     "s:f, s:s, s:s, s:I, s:s}",
                     "rank", mpictx_rank(), "ranks", mpictx_size(), "store_env", env_name, "shards", st->shards,
                     "images",
                     (json_int_t)st->images, "encoded", (json_int_t)st->encoded, "skipped_unchanged",
                     (json_int_t)st->skipped, "skipped_unread", (json_int_t)st->skipped_unread,
                     "source_metadata_updated", (json_int_t)st->metadata_updated, "failed", (json_int_t)st->failed, "batches", (json_int_t)st->batches,
                     "failures_by_reason", st->failures_by_reason, "failures", st->failures, "seconds", "read",
                     st->t_read, "decode", st->t_decode, "encode", st->t_encode, "write", st->t_write, "wall",
                     st->t_wall, "encoded_per_second", rate, "model_fingerprint", fp, "dtype",
                     store_dtype_name(o->dtype), "generation", (json_int_t)generation, "store", o->store);
}

static int failure_key_cmp(const void *a, const void *b)
{
    const char *ka = json_string_value(json_object_get(*(json_t *const *)a, "key"));
    const char *kb = json_string_value(json_object_get(*(json_t *const *)b, "key"));
    return strcmp(ka ? ka : "", kb ? kb : "");
}

/* Rank 0: merge the ranks' summaries (counts and phase seconds add up, wall
 * is the slowest rank, failures are listed sorted by key). */
static json_t *extract_merge(json_t **ranks, int n)
{
    static const char *const counts[] = {"images",         "encoded", "skipped_unchanged", "skipped_unread",
                                         "source_metadata_updated", "failed",  "batches"};
    static const char *const phases[] = {"read", "decode", "encode", "write"};
    json_t *out = json_object(), *by = json_object(), *fails = json_array(), *sec = json_object();
    double wall = 0;
    for (size_t c = 0; c < sizeof counts / sizeof *counts; c++) {
        json_int_t sum = 0;
        for (int r = 0; r < n; r++) sum += json_integer_value(json_object_get(ranks[r], counts[c]));
        json_object_set_new(out, counts[c], json_integer(sum));
    }
    for (size_t ph = 0; ph < sizeof phases / sizeof *phases; ph++) {
        double sum = 0;
        for (int r = 0; r < n; r++) sum += json_real_value(json_object_get(json_object_get(ranks[r], "seconds"), phases[ph]));
        json_object_set_new(sec, phases[ph], json_real(sum));
    }
    for (int r = 0; r < n; r++) {
        double w = json_real_value(json_object_get(json_object_get(ranks[r], "seconds"), "wall"));
        if (w > wall) wall = w;
        const char *reason;
        json_t *v;
        json_object_foreach(json_object_get(ranks[r], "failures_by_reason"), reason, v)
        {
            json_t *cur = json_object_get(by, reason);
            json_object_set_new(by, reason, json_integer((cur ? json_integer_value(cur) : 0) + json_integer_value(v)));
        }
        json_array_extend(fails, json_object_get(ranks[r], "failures"));
    }
    size_t nf = json_array_size(fails);
    json_t **items = malloc((nf ? nf : 1) * sizeof *items);
    if (items) {
        for (size_t i = 0; i < nf; i++) items[i] = json_incref(json_array_get(fails, i));
        qsort(items, nf, sizeof *items, failure_key_cmp);
        json_array_clear(fails);
        for (size_t i = 0; i < nf; i++) json_array_append_new(fails, items[i]);
        free(items);
    }
    json_object_set_new(sec, "wall", json_real(wall));
    json_int_t enc = json_integer_value(json_object_get(out, "encoded"));
    json_object_set_new(out, "ranks", json_integer(n));
    json_object_set_new(out, "failures_by_reason", by);
    json_object_set_new(out, "failures", fails);
    json_object_set_new(out, "seconds", sec);
    json_object_set_new(out, "encoded_per_second", json_real(wall > 0 ? (double)enc / wall : 0));
    static const char *const copied[] = {"model_fingerprint", "dtype", "generation", "store"};
    for (size_t i = 0; i < sizeof copied / sizeof *copied; i++)
        json_object_set(out, copied[i], json_object_get(ranks[0], copied[i]));
    return out;
}

/* Every rank writes its own summary; rank 0 gathers them, writes the merged
 * one (with what the final consolidation did) and prints it. */
static int extract_summaries(json_t *mine, json_t *consolidated, const char *store_dir, const char *env_name,
                             err_t *e)
{
    char path[4200], name[128];
    char *text = json_dumps(mine, JSON_INDENT(2) | JSON_SORT_KEYS);
    if (!text) return err_set(e, ERR_NOMEM, "extract: cannot serialise the summary");
    snprintf(name, sizeof name, "extract-summary-%s.json", env_name);
    int rc = fs_join(path, sizeof path, store_dir, name, e);
    if (!rc) rc = fs_write_atomic(path, text, strlen(text), e);
    rc = mpictx_agree(rc, e);
    int len = (int)strlen(text) + 1, size = mpictx_size(), rank = mpictx_rank();
    int *lens = NULL, *displs = NULL;
    char *all = NULL;
    if (!rc && size > 1) {
        if (rank == 0) {
            lens = calloc((size_t)size, sizeof *lens);
            displs = calloc((size_t)size, sizeof *displs);
        }
        rc = mpictx_check(MPI_Gather(&len, 1, MPI_INT, lens, 1, MPI_INT, 0, mpictx_comm()), "MPI_Gather", e);
        size_t total = 0;
        for (int r = 0; !rc && rank == 0 && r < size; r++) displs[r] = (int)total, total += (size_t)lens[r];
        if (!rc && rank == 0 && !(all = malloc(total))) rc = err_set(e, ERR_NOMEM, "extract: cannot gather summaries");
        rc = mpictx_agree(rc, e);
        if (!rc)
            rc = mpictx_check(MPI_Gatherv(text, len, MPI_CHAR, all, lens, displs, MPI_CHAR, 0, mpictx_comm()),
                              "MPI_Gatherv", e);
    }
    if (!rc && rank == 0) {
        json_t **ranks = calloc((size_t)size, sizeof *ranks);
        for (int r = 0; ranks && !rc && r < size; r++) {
            const char *src = size > 1 ? all + displs[r] : text;
            rc = json_load_buffer(&ranks[r], src, strlen(src), "rank summary", e);
        }
        if (!ranks) rc = err_set(e, ERR_NOMEM, "extract: cannot merge summaries");
        if (!rc) {
            json_t *merged = extract_merge(ranks, size);
            json_object_set(merged, "consolidation", consolidated ? consolidated : json_null());
            char *out = json_dumps(merged, JSON_INDENT(2) | JSON_SORT_KEYS);
            rc = out ? fs_join(path, sizeof path, store_dir, "extract-summary.json", e)
                     : err_set(e, ERR_NOMEM, "extract: cannot serialise the summary");
            if (!rc) rc = fs_write_atomic(path, out, strlen(out), e);
            if (!rc) printf("%s\n", out);
            free(out);
            json_decref(merged);
        }
        for (int r = 0; ranks && r < size; r++) json_decref(ranks[r]);
        free(ranks);
    }
    free(lens);
    free(displs);
    free(all);
    free(text);
    return mpictx_agree(rc, e);
}

/* The batch and the encoder's thread count decide an embedding's last bits
 * (docs/store.md, Determinism) but not its fingerprint: a resumed or
 * incremental run with other values mixes bits silently, so say so.
 * STORE/extract-settings.json keeps the last run's values (rank 0, under
 * the store lock). */
static int extract_check_settings(const extract_opts *o, err_t *e)
{
    char path[4200];
    int rc = fs_join(path, sizeof path, o->store, "extract-settings.json", e);
    if (rc) return rc;
    if (fs_exists(path)) {
        json_t *was = NULL;
        long long batch = 0, threads = 0;
        rc = json_load_path(&was, path, e);
        if (!rc) rc = json_get_int(was, "batch", &batch, e);
        if (!rc) rc = json_get_int(was, "encoder_threads", &threads, e);
        json_decref(was);
        if (rc) return err_wrap(e, "%s", path);
        if (batch != o->batch || threads != o->encoder_threads)
            log_msg(LOG_WARN,
                    "extract: %s was written with --batch %lld --encoder-threads %lld, this run uses --batch %d "
                    "--encoder-threads %d: embeddings encoded now differ from the earlier ones in their last bits "
                    "(docs/store.md, Determinism); use the earlier values to stay byte-identical",
                    o->store, batch, threads, o->batch, o->encoder_threads);
    }
    char text[128];
    int n = snprintf(text, sizeof text, "{\"batch\": %d, \"encoder_threads\": %d}\n", o->batch, o->encoder_threads);
    return fs_write_atomic(path, text, (size_t)n, e);
}

/* After the summaries: exit 1 when every image failed, or more than
 * --max-failure-rate of them (the work done stays committed). */
static int extract_verdict(const extract_stats *st, const extract_opts *o, err_t *e)
{
    uint64_t t[4] = {st->images, st->encoded, st->skipped, st->failed};
    int rc = comm_allreduce(t, 4, COMM_U64, COMM_SUM, e);
    if (rc) return rc;
    double rate = t[0] ? (double)t[3] / (double)t[0] : 0;
    if (t[3] > 0 && t[1] == 0 && t[2] == 0)
        return err_set(e, ERR_FORMAT, "every one of the %llu images failed, none was encoded (reasons in %s/extract-summary.json)",
                       (unsigned long long)t[0], o->store);
    if (rate > o->max_failure_rate)
        return err_set(e, ERR_LIMIT, "%llu of %llu images failed (%.1f%%), more than --max-failure-rate %g; the %llu "
                       "encoded are committed (reasons in %s/extract-summary.json)",
                       (unsigned long long)t[3], (unsigned long long)t[0], 100 * rate, o->max_failure_rate,
                       (unsigned long long)t[1], o->store);
    return 0;
}

static uint64_t now_us(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (uint64_t)tv.tv_sec * 1000000u + (uint64_t)tv.tv_usec;
}

/* Rank 0 consolidates the store while the others wait (the whole step is
 * collective). The result goes into *out (rank 0) when out is not NULL. */
static int extract_consolidate(const char *dir, json_t **out, err_t *e)
{
    int rc = 0;
    if (mpictx_rank() == 0) {
        store_consolidation c;
        double t0 = clock_now();
        rc = store_consolidate(dir, &c, e);
        if (!rc && c.published)
            log_msg(LOG_INFO, "extract: consolidated %llu environment(s) into %s (%llu keys, %llu superseded dropped, "
                    "%.1f MiB) in %.2f s", (unsigned long long)c.environments, c.pack.name,
                    (unsigned long long)c.pack.keys, (unsigned long long)c.superseded, (double)c.pack.bytes / 1048576.0,
                    clock_now() - t0);
        if (!rc && out)
            *out = json_pack("{s:b, s:I, s:I, s:s, s:I, s:I, s:f}", "published", c.published, "environments",
                             (json_int_t)c.environments, "superseded", (json_int_t)c.superseded, "pack",
                             c.pack.name, "keys", (json_int_t)c.pack.keys, "bytes", (json_int_t)c.pack.bytes,
                             "seconds", clock_now() - t0);
    }
    return mpictx_agree(rc, e);
}

static int extract_main(const extract_opts *o, err_t *e)
{
    int rank = mpictx_rank(), size = mpictx_size();
    /* libuv sizes its pool on first use; decode workers = --threads. */
    char tp[16];
    snprintf(tp, sizeof tp, "%d", o->threads);
    setenv("UV_THREADPOOL_SIZE", tp, 1);

    manifest_t *man = NULL;
    ops_ctx *ops = NULL;
    clip_vit *model = NULL;
    store_env *own = NULL;
    store *reader = NULL;
    workq *units = NULL;
    json_t *summary = NULL, *consolidated = NULL;
    extract_stats st = {0};
    char env_name[64], fp[33];
    store_env_name(env_name, sizeof env_name, rank, size);

    /* before any work, so that a second run stops at once */
    int lock_fd = -1, rc = 0;
    if (rank == 0) rc = store_lock(o->store, &lock_fd, e);
    if (!rc && rank == 0) rc = extract_check_settings(o, e);
    rc = mpictx_agree(rc, e);
    if (!rc) rc = manifest_open(&man, o->manifest, e);
    if (!rc) rc = ops_create(&ops, o->encoder_threads, e);
    if (!rc) rc = ops_set_precision(ops, o->precision, e);
    if (!rc) rc = clip_vit_load(&model, ops, o->clip, o->batch, e);
    clip_preprocess_cfg pre;
    if (!rc) {
        clip_preprocess_cfg_default(&pre, clip_vit_image_size(model));
        pre.fast_resize = o->fast_resize;
        pre.limits.max_pixels = o->max_pixels;
        store_model_fingerprint(clip_vit_fingerprint(model), pre.image_size, pre.fast_resize, pre.mean, pre.std, fp);
    }
    /* What a killed run (or a version 1 store) left is consolidated before
     * any rank looks a key up: ranks read only the pack and their own
     * environment, never another's. */
    rc = mpictx_agree(rc, e);
    if (!rc) rc = extract_consolidate(o->store, NULL, e);
    if (!rc) rc = store_env_create(&own, o->store, env_name, o->map_size, e);
    if (!rc) rc = store_open(&reader, o->store, own, e);
    uint64_t gen = 0;
    if (!rc) rc = store_generation_max(reader, &gen, e);
    rc = mpictx_agree(rc, e);
    if (!rc) {
        gen++;
        if (rank == 0 && now_us() > gen) gen = now_us();
        rc = comm_allreduce(&gen, 1, COMM_U64, COMM_MAX, e);
    }
    if (!rc) rc = workq_open(&units, manifest_num_shards(man), "extract shards", e);
    if (!rc) {
        log_msg(LOG_INFO, "extract: %d shard(s) over %d rank(s), model %s, %s, %s, batch %d, %d decode + %d encoder "
                "thread(s), writing %s/%s",
                manifest_num_shards(man), size, fp, ops_precision_impl(ops), store_dtype_name(o->dtype), o->batch, o->threads,
                o->encoder_threads, o->store, env_name);
        extract_cfg cfg = {.manifest = man, .units = units, .model = model, .pre = pre, .reader = reader,
                           .writer = own, .model_fp = fp, .dtype = o->dtype, .generation = gen, .batch = o->batch,
                           .rehash = o->rehash, .max_failures_listed = 1000};
        rc = extract_run(&cfg, &st, e);
        err_t ce = {0};
        int crc = workq_close(units, &ce);
        if (crc && !rc) rc = crc, *e = ce;
    }
    store_close(reader);
    store_env_close(own);
    /* Every environment is closed before rank 0 merges them. */
    rc = mpictx_agree(rc, e);
    if (!rc) rc = extract_consolidate(o->store, &consolidated, e);
    if (!rc) {
        summary = extract_rank_summary(&st, fp, o, gen, env_name);
        rc = summary ? 0 : err_set(e, ERR_NOMEM, "extract: cannot build the summary");
        rc = mpictx_agree(rc, e);
    }
    if (!rc) rc = extract_summaries(summary, consolidated, o->store, env_name, e);
    if (!rc) rc = mpictx_agree(extract_verdict(&st, o, e), e);
    json_decref(summary);
    json_decref(consolidated);
    extract_stats_free(&st);
    workq_free(units);
    clip_vit_free(model);
    ops_destroy(ops);
    manifest_close(man);
    store_unlock(lock_fd);
    return rc;
}

int stage_extract_main(int argc, char **argv)
{
    err_t e = {0};
    extract_opts o;
    int rc = extract_parse(argc, argv, &o, &e);
    if (rc == 1) return 0;
    if (rc == 0) rc = extract_main(&o, &e);
    return rc ? err_report("extract", &e) : 0;
}
