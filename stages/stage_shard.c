/* `clipcap shard`: read a caption data set as users have it (COCO, the
 * Karpathy split, Conceptual Captions from img2dataset files or webdataset
 * tars), tokenise every caption with GPT-2's BPE and write the manifest the
 * later stages read (common/data/manifest.h, schemas/manifest.md).
 *
 * MPI and memory: rank 0 reads the data set through a spill (data/ds_spill.h)
 * that keeps a bounded part of it in memory, sorts and finalizes it on disk
 * bucket by bucket, and cuts the sorted file into shards; the other ranks
 * receive the shard count and byte ranges. Rank r then loads, tokenises and
 * writes the shards s with s % size == r, one at a time; the token-length
 * sums are exact integers reduced over ranks; rank 0 gathers the shard
 * checksums and writes index.json last (the commit point), rejects.jsonl,
 * summary.json and annotation files. Nothing written depends on the number
 * of ranks or threads, or on the spill sizes. */
#include <getopt.h>
#include <limits.h>
#include <malloc.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/cli.h"
#include "core/comm.h"
#include "core/fsutil.h"
#include "core/mpictx.h"
#include "core/progress.h"
#include "data/dataset.h"
#include "data/ds_spill.h"
#include "data/manifest.h"
#include "data/manifest_write.h"
#include "data/reader_cc.h"
#include "data/reader_coco.h"
#include "data/reader_karpathy.h"
#include "text/bpe.h"

const char stage_shard_summary[] = "read a caption data set, tokenise it, write manifest shards";

#define SHARD_MAX_INPUTS 64
#define SHARD_MAX_ANNOTATIONS 16
#define SHARD_MAX_SHARDS 99999
/* Default shard count: one shard per SHARD_AUTO_IMAGES images, at least
 * SHARD_AUTO_MIN. Shards are the unit the later stages hand out to ranks
 * (core/workq.h): Conceptual Captions' 3.3M images make 3,300 shards,
 * three or more per rank on 1,000 ranks, while a shard (1,000 images) is
 * still minutes of CPU extraction, so the hand-out costs nothing. */
#define SHARD_AUTO_IMAGES 1000
#define SHARD_AUTO_MIN 8
/* The record bytes finalized at once (data/ds_spill.h): with the
 * allocators' slack and ds_finalize's copies a bucket takes ~3x this on the
 * heap. Chunks, written while the CC TSV index is held too, are a quarter
 * of it (their size costs nothing else). CLIPCAP_SHARD_SPILL_BYTES=N
 * overrides it (the tests take the many-chunk, many-bucket path on small
 * corpora with N = 1). */
#define SHARD_SPILL_BYTES ((size_t)16 << 20)

typedef struct shard_opts {
    const char *format, *root, *gpt2, *out, *splits, *split;
    const char *inputs[SHARD_MAX_INPUTS];
    size_t n_inputs;
    char *ann_split[SHARD_MAX_ANNOTATIONS];
    const char *ann_path[SHARD_MAX_ANNOTATIONS];
    size_t n_ann;
    int shards, check_images, zstd_level;
} shard_opts;

static void shard_usage(FILE *out)
{
    fprintf(out,
            "usage: clipcap shard --format FMT --images-root DIR --gpt2 DIR --out DIR [options]\n"
            "       mpirun -np N clipcap shard ...   (same bytes as a single process)\n\n"
            "Reads a caption data set, tokenises every caption with GPT-2's BPE and writes a\n"
            "manifest: one record per image (key, image location, split, captions, token\n"
            "ids), split into --shards zstd JSONL files, plus index.json (counts, token\n"
            "length statistics incl. ClipCap's max_seq_len, shard checksums), rejects.jsonl\n"
            "(every bad input record with file, record and reason) and summary.json.\n\n"
            "options:\n"
            "  --format FMT         coco | karpathy | cc-files | cc-tar\n"
            "  --input PATH         caption file; repeat for several (coco: captions_*.json;\n"
            "                       karpathy: dataset_coco.json; cc-*: the caption<TAB>url TSV,\n"
            "                       optional: without it captions come from KEY.txt)\n"
            "  --images-root DIR    coco: the folder holding train2014/ val2014/;\n"
            "                       karpathy: the folder holding the 'filepath' folders;\n"
            "                       cc-files: the img2dataset output folder (00000/KEY.jpg...);\n"
            "                       cc-tar: the folder of webdataset .tar shards\n"
            "  --gpt2 DIR           GPT-2 tokenizer files (vocab.json + merges.txt), the model's\n"
            "                       hub directory or any other; --tokenizer DIR is the same\n"
            "  --out DIR            manifest directory (created)\n"
            "  --shards N           number of shard files (default: one per 1,000 images, at\n"
            "                       least 8); independent of ranks\n"
            "  --splits LIST        keep only these splits, e.g. train,restval\n"
            "  --split NAME         split name of cc-* samples (default train)\n"
            "  --write-annotations SPLIT:FILE\n"
            "                       write SPLIT's captions as a COCO annotation file (repeatable)\n"
            "  --no-image-check     do not stat image files (extract reports missing ones)\n"
            "  --zstd-level N       shard compression level (default 3)\n"
            "  -h, --help           this text\n\n"
            "examples:\n"
            "  # COCO 2014 as downloaded\n"
            "  clipcap shard --format coco --input annotations/captions_train2014.json \\\n"
            "      --input annotations/captions_val2014.json --images-root coco \\\n"
            "      --gpt2 gpt2 --shards 16 --out manifests/coco\n"
            "  # Karpathy split, ClipCap's training set and the test references\n"
            "  mpirun -np 4 clipcap shard --format karpathy --input dataset_coco.json \\\n"
            "      --images-root coco --splits train,restval,test --gpt2 gpt2 --out manifests/k \\\n"
            "      --write-annotations test:manifests/k/test_annotations.json\n"
            "  # Conceptual Captions downloaded by img2dataset (output_format files)\n"
            "  clipcap shard --format cc-files --input Train_GCC-training.tsv \\\n"
            "      --images-root cc_files --gpt2 gpt2 --shards 64 --out manifests/cc\n"
            "  # the same as webdataset tars\n"
            "  clipcap shard --format cc-tar --input Train_GCC-training.tsv \\\n"
            "      --images-root cc_tars --gpt2 gpt2 --shards 64 --out manifests/cc\n\n"
            "Prints a JSON summary on stdout (rank 0). Bad records never stop the run;\n"
            "an unreadable input file does, with one error line naming FILE:LINE:COL.\n");
}

static int shard_parse_args(int argc, char **argv, shard_opts *o, err_t *e)
{
    static const struct option longopts[] = {
        {"format", required_argument, 0, 'f'},   {"input", required_argument, 0, 'i'},
        {"images-root", required_argument, 0, 'r'}, {"gpt2", required_argument, 0, 'g'}, {"tokenizer", required_argument, 0, 'g'},
        {"out", required_argument, 0, 'o'},      {"shards", required_argument, 0, 'n'},
        {"splits", required_argument, 0, 's'},   {"split", required_argument, 0, 'S'},
        {"write-annotations", required_argument, 0, 'a'}, {"no-image-check", no_argument, 0, 'c'},
        {"zstd-level", required_argument, 0, 'z'}, {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    memset(o, 0, sizeof *o);
    o->shards = 0; /* auto, once the image count is known */
    o->check_images = 1;
    o->zstd_level = 3;
    o->split = "train";
    optind = 1;
    int c, rc = 0;
    while (!rc && (c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'f': o->format = optarg; break;
        case 'i':
            if (o->n_inputs == SHARD_MAX_INPUTS) return err_set(e, ERR_ARG, "at most %d --input", SHARD_MAX_INPUTS);
            o->inputs[o->n_inputs++] = optarg;
            break;
        case 'r': o->root = optarg; break;
        case 'g': o->gpt2 = optarg; break;
        case 'o': o->out = optarg; break;
        case 'n': rc = cli_parse_int("shards", optarg, 1, SHARD_MAX_SHARDS, &o->shards, e); break;
        case 's': o->splits = optarg; break;
        case 'S': o->split = optarg; break;
        case 'a': {
            char *colon = strchr(optarg, ':');
            if (!colon || colon == optarg || !colon[1])
                return err_set(e, ERR_ARG, "--write-annotations '%s': expected SPLIT:FILE", optarg);
            if (o->n_ann == SHARD_MAX_ANNOTATIONS)
                return err_set(e, ERR_ARG, "at most %d --write-annotations", SHARD_MAX_ANNOTATIONS);
            o->ann_split[o->n_ann] = strndup(optarg, (size_t)(colon - optarg));
            if (!o->ann_split[o->n_ann]) return err_set(e, ERR_NOMEM, "cannot allocate");
            o->ann_path[o->n_ann++] = colon + 1;
            break;
        }
        case 'c': o->check_images = 0; break;
        case 'z': rc = cli_parse_int("zstd-level", optarg, 1, 19, &o->zstd_level, e); break;
        case 'h': return 1;
        default: return err_set(e, ERR_ARG, "unknown option (see clipcap shard --help)");
        }
    }
    if (rc) return rc;
    if (optind < argc) return err_set(e, ERR_ARG, "unexpected argument '%s'", argv[optind]);
    if (!o->format) return err_set(e, ERR_ARG, "--format is required (coco, karpathy, cc-files, cc-tar)");
    int cc = !strcmp(o->format, "cc-files") || !strcmp(o->format, "cc-tar");
    if (!cc && strcmp(o->format, "coco") && strcmp(o->format, "karpathy"))
        return err_set(e, ERR_ARG, "--format '%s': expected coco, karpathy, cc-files or cc-tar", o->format);
    if (!cc && o->n_inputs == 0) return err_set(e, ERR_ARG, "--format %s needs --input", o->format);
    if (cc && o->n_inputs > 1) return err_set(e, ERR_ARG, "--format %s takes at most one --input TSV", o->format);
    if (!o->root) return err_set(e, ERR_ARG, "--images-root is required");
    if (!o->gpt2) return err_set(e, ERR_ARG, "--gpt2 is required");
    if (!o->out) return err_set(e, ERR_ARG, "--out is required");
    return 0;
}

static int shard_read_dataset(ds_t *ds, const shard_opts *o, err_t *e)
{
    int rc = 0;
    if (!strcmp(o->format, "cc-files"))
        return reader_cc_files_read(ds, o->n_inputs ? o->inputs[0] : NULL, o->split, e);
    if (!strcmp(o->format, "cc-tar"))
        return reader_cc_tar_read(ds, o->n_inputs ? o->inputs[0] : NULL, o->split, e);
    for (size_t i = 0; i < o->n_inputs && !rc; i++) {
        if (!strcmp(o->format, "coco")) rc = reader_coco_read(ds, o->inputs[i], e);
        else rc = reader_karpathy_read(ds, o->inputs[i], e);
        /* a COCO file's captions follow all its images: whole files only */
        if (!rc) rc = ds_checkpoint(ds, 0, e);
    }
    return rc;
}

/* Token ids of one shard's captions, and the running sums over the shards
 * of this rank. */
typedef struct shard_tokens {
    int32_t **ids;    /* per caption of the shard being written */
    uint32_t *n;
    uint64_t count, sum, sumsq;
    uint32_t max;
} shard_tokens;

static void shard_tokens_clear(shard_tokens *t, size_t n_captions)
{
    if (t->ids)
        for (size_t c = 0; c < n_captions; c++) free(t->ids[c]);
    free(t->ids);
    free(t->n);
    t->ids = NULL;
    t->n = NULL;
}

/* Tokenise every caption of ds (one shard). The first failure (lowest
 * caption index) is reported, whatever the thread count. */
static int shard_tokenise(const ds_t *ds, const bpe_t *bpe, shard_tokens *t, progress_t *prog, size_t *done, err_t *e)
{
    size_t nc = ds->n_captions;
    t->ids = calloc(nc ? nc : 1, sizeof *t->ids);
    t->n = calloc(nc ? nc : 1, sizeof *t->n);
    if (!t->ids || !t->n) return err_set(e, ERR_NOMEM, "cannot allocate token lists for %zu captions", nc);
    size_t fail_at = SIZE_MAX, base = *done;
    err_t fail_err = {0};
#pragma omp parallel
    {
        int32_t *buf = NULL;
        size_t cap = 0;
        err_t le = {0};
#pragma omp for schedule(dynamic, 256)
        for (size_t c = 0; c < nc; c++) {
            const ds_caption_t *cap_ = &ds->captions[c];
            size_t n = 0;
            int rc = bpe_encode(bpe, ds_str(ds, cap_->text), cap_->len, &buf, &n, &cap, &le);
            if (!rc) {
                t->ids[c] = malloc((n ? n : 1) * sizeof **t->ids);
                if (t->ids[c]) memcpy(t->ids[c], buf, n * sizeof *buf);
                else rc = err_set(&le, ERR_NOMEM, "cannot allocate %zu token ids", n);
                t->n[c] = (uint32_t)n;
            }
            if (rc) {
#pragma omp critical(shard_fail)
                if (c < fail_at) {
                    fail_at = c;
                    fail_err = le;
                }
            }
            size_t d;
#pragma omp atomic capture
            d = ++*done;
            if ((d & 1023) == 0 && omp_get_thread_num() == 0) progress_update(prog, d, 0);
        }
        free(buf);
    }
    progress_update(prog, base + nc, 0);
    if (fail_at != SIZE_MAX) {
        const ds_image_t *im = &ds->images[ds->captions[fail_at].image];
        return err_set(e, fail_err.code, "%s: %s: tokenising a caption: %s", ds_str(ds, im->file),
                       ds_str(ds, im->record), fail_err.msg);
    }
    for (size_t c = 0; c < nc; c++) {
        uint32_t n = t->n[c];
        t->count++;
        t->sum += n;
        t->sumsq += (uint64_t)n * n;
        if (n > t->max) t->max = n;
    }
    return 0;
}

/* Reduce the token sums over ranks: exact integers, so the statistics do
 * not depend on how the captions were divided. */
static int shard_reduce_stats(const shard_tokens *t, manifest_token_stats_t *st, err_t *e)
{
    uint64_t global[3] = {t->count, t->sum, t->sumsq};
    uint32_t gmx = t->max;
    int rc = comm_allreduce(global, 3, COMM_U64, COMM_SUM, e);
    if (!rc) rc = comm_allreduce(&gmx, 1, COMM_U32, COMM_MAX, e);
    if (rc) return rc;
    manifest_stats_from_sums(global[0], global[1], global[2], gmx, st);
    return 0;
}

/* Rank 0 receives every rank's table and keeps each shard's entry from its
 * owner. */
static int shard_gather_infos(manifest_shard_info_t *infos, int num_shards, err_t *e)
{
    int size = mpictx_size();
    if (!mpictx_active() || size == 1) return 0;
    size_t bytes = (size_t)num_shards * sizeof *infos;
    manifest_shard_info_t *all = mpictx_rank() == 0 ? malloc(bytes * (size_t)size) : NULL;
    if (mpictx_rank() == 0 && !all) return err_set(e, ERR_NOMEM, "cannot allocate shard table");
    if (bytes * (size_t)size > INT_MAX) {
        free(all);
        return err_set(e, ERR_LIMIT, "shard table too large to gather");
    }
    int rc = mpictx_check(MPI_Gather(infos, (int)bytes, MPI_BYTE, all, (int)bytes, MPI_BYTE, 0, mpictx_comm()),
                          "MPI_Gather(shard table)", e);
    if (!rc && all)
        for (int s = 0; s < num_shards; s++) infos[s] = all[(size_t)manifest_shard_owner(s, size) * num_shards + s];
    free(all);
    return rc;
}

/* Each owned shard in turn: its images from the sorted file, tokenised,
 * written; one shard's records and ids are held at a time. */
static int shard_write_owned(const shard_opts *o, const char *sorted, const uint64_t *off, const bpe_t *bpe,
                             shard_tokens *t, manifest_shard_info_t *infos, err_t *e)
{
    progress_t prog;
    progress_start(&prog, "shard: tokenise", "caption", 0);
    size_t done = 0;
    int rc = 0;
    for (int s = 0; s < o->shards && !rc; s++) {
        if (manifest_shard_owner(s, mpictx_size()) != mpictx_rank()) continue;
        ds_t ds;
        if ((rc = ds_init(&ds, "", 0, e))) break;
        rc = ds_spill_load(&ds, sorted, off[s], off[s + 1], NULL, e);
        if (!rc) rc = shard_tokenise(&ds, bpe, t, &prog, &done, e);
        if (!rc)
            rc = manifest_write_shard(o->out, &ds, s, o->shards, 0, ds.n_images, t->ids, t->n, o->zstd_level,
                                      &infos[s], e);
        shard_tokens_clear(t, ds.n_captions);
        ds_free(&ds);
    }
    progress_finish(&prog);
    return rc;
}

/* Rank 0's outputs after all shards exist: index.json last, as the commit. */
static int shard_write_rank0(const shard_opts *o, ds_spill *sp, const char *sorted, uint64_t sorted_end,
                             const ds_summary_t *sum, const manifest_token_stats_t *st,
                             const manifest_shard_info_t *infos, const char *root_abs, err_t *e)
{
    char path[8192];
    int rc = fs_join(path, sizeof path, o->out, "rejects.jsonl", e);
    if (!rc) rc = ds_spill_write_rejects(sp, path, e);
    for (size_t a = 0; a < o->n_ann && !rc; a++) {
        /* the split's images only: the references of an evaluation split */
        ds_t ds;
        size_t n = 0;
        if ((rc = ds_init(&ds, "", 0, e))) break;
        rc = ds_spill_load(&ds, sorted, 0, sorted_end, o->ann_split[a], e);
        if (!rc) rc = manifest_write_annotations(o->ann_path[a], &ds, o->ann_split[a], &n, e);
        ds_free(&ds);
        if (!rc) log_msg(LOG_INFO, "wrote %zu %s images' reference captions to %s", n, o->ann_split[a], o->ann_path[a]);
    }
    json_t *summary = rc ? NULL : manifest_summary_json(sum);
    if (summary) {
        json_object_set_new(summary, "tokens", json_pack("{s:I, s:f, s:f, s:i, s:i}", "count", (json_int_t)st->count,
                                                         "mean", st->mean, "std", st->std, "max", (int)st->max,
                                                         "max_seq_len", (int)st->max_seq_len));
        json_object_set_new(summary, "num_shards", json_integer(o->shards));
        json_object_set_new(summary, "out", json_string(o->out));
        char *text = json_dumps(summary, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17));
        if (!text) rc = err_set(e, ERR_NOMEM, "cannot serialise the summary");
        if (!rc) rc = fs_join(path, sizeof path, o->out, "summary.json", e);
        if (!rc) {
            size_t n = strlen(text);
            text[n] = '\n'; /* json_dumps' NUL becomes the newline; length passed explicitly */
            rc = fs_write_atomic(path, text, n + 1, e);
            text[n] = 0;
        }
        if (!rc) {
            char *one = json_dumps(summary, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17));
            if (one) printf("%s\n", one);
            free(one);
        }
        free(text);
        json_decref(summary);
    } else if (!rc) {
        rc = err_set(e, ERR_NOMEM, "cannot build the summary");
    }
    if (rc) return rc;
    manifest_source_t src = {o->format, o->inputs, o->n_inputs, root_abs};
    return manifest_write_index(o->out, sum, &src, st, infos, o->shards, e);
}

static size_t shard_spill_bytes(void)
{
    const char *v = getenv("CLIPCAP_SHARD_SPILL_BYTES");
    long long n = v ? atoll(v) : 0;
    return n > 0 ? (size_t)n : SHARD_SPILL_BYTES;
}

/* Rank 0: read the input through the spill, sort and finalize it bucket by
 * bucket, choose the shard count and cut the sorted file into shards. */
static int shard_read_rank0(shard_opts *o, const char *root_abs, ds_spill **sp, const char *tmp, ds_summary_t *sum,
                            uint64_t **off, double t0, err_t *e)
{
    ds_t ds;
    int rc = ds_init(&ds, root_abs, o->check_images, e);
    if (rc) return rc;
    ds.log_rejects = 1;
    rc = ds_select_splits(&ds, o->splits, e);
    if (!rc) rc = ds_spill_open(sp, &ds, tmp, shard_spill_bytes() / 4, shard_spill_bytes(), e);
    if (!rc) rc = shard_read_dataset(&ds, o, e);
    if (!rc) rc = ds_spill_finalize(*sp, &ds, sum, e);
    if (!rc) {
        uint64_t rejected = 0;
        for (int r = 0; r < DS_NUM_REASONS; r++) rejected += sum->reason_count[r];
        log_msg(LOG_INFO, "read %llu input records: %llu images, %llu captions, %llu rejected (%.1fs)",
                (unsigned long long)sum->input_records, (unsigned long long)sum->images,
                (unsigned long long)sum->captions, (unsigned long long)rejected, clock_now() - t0);
    }
    ds_free(&ds);
    if (!rc && sum->images == 0) rc = err_set(e, ERR_FORMAT, "no usable image in the input (see rejects in the log)");
    if (!rc && !o->shards) {
        uint64_t n = (sum->images + SHARD_AUTO_IMAGES - 1) / SHARD_AUTO_IMAGES;
        o->shards = n < SHARD_AUTO_MIN ? SHARD_AUTO_MIN : n > SHARD_MAX_SHARDS ? SHARD_MAX_SHARDS : (int)n;
    }
    if (!rc && !(*off = calloc((size_t)o->shards + 1, sizeof **off)))
        rc = err_set(e, ERR_NOMEM, "cannot allocate %d shards", o->shards);
    if (!rc) rc = ds_spill_plan(*sp, o->shards, *off, e);
    return rc;
}

static int shard_run(shard_opts *o, err_t *e)
{
    double t0 = clock_now();
    char root_abs[PATH_MAX], index[8192], tmp[8192], sorted[8400];
    int rc = 0;
    if (!realpath(o->root, root_abs)) rc = err_set(e, ERR_IO, "%s: images root not found", o->root);
    if (!rc) rc = fs_join(tmp, sizeof tmp, o->out, DS_SPILL_DIR, e);
    if (!rc) rc = fs_join(sorted, sizeof sorted, tmp, DS_SPILL_SORTED, e);
    /* Rank 0 removes a previous index first: a manifest directory is never
     * valid while its shards are being replaced. */
    if (!rc && mpictx_rank() == 0) {
        rc = fs_mkdirs(o->out, e);
        if (!rc) rc = fs_join(index, sizeof index, o->out, MANIFEST_INDEX_NAME, e);
        if (!rc && fs_exists(index) && unlink(index) != 0) rc = err_set(e, ERR_IO, "%s: cannot remove", index);
    }
    if ((rc = mpictx_agree(rc, e))) return rc;

    bpe_t *bpe = NULL;
    ds_spill *sp = NULL;
    ds_summary_t sum = {0};
    uint64_t *off = NULL;
    manifest_shard_info_t *infos = NULL;
    shard_tokens tok = {0};
    rc = bpe_load(&bpe, o->gpt2, e);
    /* the tokenizer's load freed a few MB of small JSON blocks: give them
     * back, or they sit under the reading phase's peak (docs/scale.md) */
    malloc_trim(0);
    if (!rc && mpictx_rank() == 0) rc = shard_read_rank0(o, root_abs, &sp, tmp, &sum, &off, t0, e);
    /* the other ranks learn the shard count and boundaries from rank 0 */
    rc = mpictx_agree(rc, e);
    if (!rc) rc = comm_bcast_int(&o->shards, 1, e);
    if (!rc && !off && !(off = calloc((size_t)o->shards + 1, sizeof *off)))
        rc = err_set(e, ERR_NOMEM, "cannot allocate %d shards", o->shards);
    rc = mpictx_agree(rc, e);
    if (!rc) rc = comm_bcast_bytes(off, ((size_t)o->shards + 1) * sizeof *off, e);
    if (!rc && !(infos = calloc((size_t)o->shards, sizeof *infos)))
        rc = err_set(e, ERR_NOMEM, "cannot allocate %d shards", o->shards);
    if (!rc) rc = shard_write_owned(o, sorted, off, bpe, &tok, infos, e);
    rc = mpictx_agree(rc, e);
    manifest_token_stats_t st = {0};
    if (!rc) rc = shard_reduce_stats(&tok, &st, e);
    if (!rc) rc = shard_gather_infos(infos, o->shards, e);
    if (!rc && mpictx_rank() == 0) rc = shard_write_rank0(o, sp, sorted, off[o->shards], &sum, &st, infos, root_abs, e);
    if (!rc && mpictx_rank() == 0)
        log_msg(LOG_INFO, "manifest %s: %llu images, %llu captions in %d shards, max_seq_len %u (%.1fs)", o->out,
                (unsigned long long)sum.images, (unsigned long long)sum.captions, o->shards, st.max_seq_len,
                clock_now() - t0);
    ds_spill_close(sp); /* rank 0, after every rank has read its shards */
    ds_summary_free(&sum);
    free(off);
    free(infos);
    bpe_free(bpe);
    return rc;
}

int stage_shard_main(int argc, char **argv)
{
    shard_opts o;
    err_t e = {0};
    int rc = shard_parse_args(argc, argv, &o, &e);
    if (rc == 1) shard_usage(stdout);
    if (rc == 0) rc = shard_run(&o, &e);
    for (size_t a = 0; a < o.n_ann; a++) free(o.ann_split[a]);
    if (rc == 1) return 0;
    return rc ? err_report("shard", &e) : 0;
}
