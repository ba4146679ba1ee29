/* `clipcap caption`: captions for users (docs/captioning.md).
 *
 * Inputs: image files (decode → CLIP preprocessing → CLIP ViT through
 * common/nn/clip_embed.h, as `clipcap embed`) or CLIP embeddings from the feature store
 * (every key, or --keys). Model: a ClipCap checkpoint, ours (safetensors)
 * or the paper's .pt, its configuration inferred from the tensor shapes
 * (common/caption/captioner.h). Output: one JSON line per image.
 *
 * Ranks take contiguous blocks of whole batches of the item list (every
 * rank builds the same list), so each image meets the same batch
 * companions as in one process; rank 0 prints its block as it goes and
 * then each other rank's block in rank order, so the output of
 * `mpirun -np N` is a single process's, byte for byte.
 * An image that cannot be read or a key without an embedding is reported
 * on stderr and skipped; the run goes on and exits 1 at the end.
 *
 * --manifest hands the whole corpus to caption_corpus_run (the resumable
 * zstd JSONL dump, docs/caption-dump.md). */
#include "caption/caption_corpus.h"
#include "caption/captioner.h"
#include "core/cli.h"
#include "core/comm.h"
#include "core/fsutil.h"
#include "core/log.h"
#include "core/mpictx.h"
#include "core/progress.h"
#include "image/clip_preprocess.h"
#include "nn/clip_embed.h"
#include "nn/clip_vit.h"
#include "nn/ops_ext.h"
#include "store/store.h"

#include <dirent.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

const char stage_caption_summary[] = "caption images or stored CLIP embeddings with a ClipCap checkpoint";

static void caption_usage(FILE *out)
{
    fprintf(out,
            "usage: clipcap caption --model CKPT --gpt2 DIR --clip DIR --images PATH... [options]\n"
            "       clipcap caption --model CKPT --gpt2 DIR --store STORE [--keys K1,K2,...] [options]\n"
            "       clipcap caption --model CKPT --gpt2 DIR --store STORE --manifest DIR --out OUTDIR\n"
            "                       [--splits LIST] [options]\n"
            "       mpirun -np N clipcap caption ...\n\n"
            "Prints one JSON line per image, in input order (store: key byte order):\n"
            "  {\"path\"|\"key\": ..., \"caption\": TEXT, \"tokens\": [ids], \"logprob\": L, \"score\": S}\n"
            "or with --num-captions K > 1\n"
            "  {\"path\"|\"key\": ..., \"captions\": [{\"text\", \"tokens\", \"logprob\", \"score\"}, ...]}\n"
            "best first; logprob is the sum of the tokens' log-probabilities, score what\n"
            "the ranking used (logprob / tokens).\n\n"
            "model:\n"
            "  --model CKPT        ClipCap checkpoint: `clipcap train`'s .safetensors or the\n"
            "                      paper's .pt (torch.save of the state dict), MLP or\n"
            "                      Transformer mapper; the configuration (mapper, prefix\n"
            "                      length, clip length, layers, CLIP size) comes from the\n"
            "                      tensor shapes\n"
            "  --gpt2 DIR          GPT-2 as on the hub: config.json, vocab.json, merges.txt,\n"
            "                      and model.safetensors when CKPT holds no gpt.transformer.*\n"
            "  --tokenizer DIR     vocab.json + merges.txt when they are not in the --gpt2 DIR\n"
            "  --normalize-prefix  L2-normalise CLIP embeddings first (for models trained so)\n"
            "  --any-clip          caption embeddings of another CLIP than the checkpoint's\n"
            "                      (by default a mismatch with the CLIP fingerprint that\n"
            "                      `clipcap train` records in a checkpoint is an error)\n"
            "input (one of):\n"
            "  --images PATH       an image file (JPEG, PNG, WebP) or a directory of them (its\n"
            "                      files with those extensions, sorted, not recursive);\n"
            "                      repeatable, and more paths may follow the options\n"
            "  --clip PATH         CLIP model: hub directory or openai's ViT-*.pt (needed\n"
            "                      with --images)\n"
            "  --fast-resize       reduced-DCT JPEG decoding (see `clipcap embed --help`)\n"
            "  --store STORE       feature store of `clipcap extract`: every embedding in it\n"
            "  --keys K1,K2,...    only these keys of the store, in this order\n"
            "  --manifest DIR      caption the manifest's images (embeddings from --store)\n"
            "                      into OUTDIR as zstd JSONL shards, resumable\n"
            "  --splits LIST       with --manifest: only these splits (comma-separated)\n"
            "generation (defaults: the reference's greedy decoding):\n"
            "  --beam N            beam search with N beams (default 1 = greedy)\n"
            "  --num-captions K    the K best beams per image (default 1; K <= N)\n"
            "  --max-tokens N      stop after N tokens (default 67)\n"
            "  --stop TEXT         stop after this token, kept in the caption (default \".\");\n"
            "                      TEXT must be one GPT-2 token; \"\" never stops early\n"
            "run:\n"
            "  --batch N           images per CLIP, mapper and decoder call (default 16)\n"
            "  --out FILE          write the JSON lines to FILE (atomically) instead of stdout;\n"
            "                      with --manifest, the output directory\n"
            "  --threads N         compute threads (default: OMP_NUM_THREADS or all cores)\n"
            "  --precision P       GEMM precision of CLIP, mapper and GPT-2: fp32 (default),\n"
            "                      tf32, bf16 or fp16 (fp32 accumulation; docs/nn.md)\n"
            "  -h, --help          this help\n\n"
            "Progress (captions/s) and a summary go to stderr. An image that cannot be read\n"
            "or a key without an embedding is reported as `NAME: reason` and has no line;\n"
            "the exit status is then 1. Under mpirun the items are split between ranks and\n"
            "the output is the same bytes as one process with the same --batch and --threads.\n");
}

typedef struct caption_opts {
    const char *model, *gpt2, *tokenizer, *clip, *store, *keys, *stop, *out, *manifest, *splits;
    char **images; /* --images values and positional paths */
    int n_images;
    int beam, num_captions, max_tokens, batch, threads, normalize, fast_resize, any_clip;
    enum ops_precision precision;
} caption_opts;

/* 0 = parsed, 1 = --help, <0 = error */
static int caption_parse(int argc, char **argv, caption_opts *o, err_t *e)
{
    static const struct option longopts[] = {
        {"model", required_argument, 0, 'm'},        {"gpt2", required_argument, 0, 'g'}, {"tokenizer", required_argument, 0, 'T'},
        {"images", required_argument, 0, 'i'},       {"clip", required_argument, 0, 'c'},
        {"fast-resize", no_argument, 0, 'f'},        {"store", required_argument, 0, 's'},
        {"keys", required_argument, 0, 'k'},         {"manifest", required_argument, 0, 'M'},
        {"splits", required_argument, 0, 'S'},       {"beam", required_argument, 0, 'b'},
        {"num-captions", required_argument, 0, 'K'}, {"max-tokens", required_argument, 0, 'x'},
        {"stop", required_argument, 0, 'p'},         {"batch", required_argument, 0, 'B'},
        {"normalize-prefix", no_argument, 0, 'n'},   {"out", required_argument, 0, 'o'},
        {"threads", required_argument, 0, 't'},      {"help", no_argument, 0, 'h'},
        {"precision", required_argument, 0, 'Q'},    {"any-clip", no_argument, 0, 'A'},
        {0, 0, 0, 0},
    };
    memset(o, 0, sizeof *o);
    o->beam = o->num_captions = 1;
    o->max_tokens = 67;
    o->batch = 16;
    o->images = calloc((size_t)argc, sizeof *o->images);
    if (!o->images) return err_set(e, ERR_NOMEM, "out of memory");
    optind = 1;
    int c, rc = 0;
    while (!rc && (c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'm': o->model = optarg; break;
        case 'g': o->gpt2 = optarg; break;
        case 'T': o->tokenizer = optarg; break;
        case 'i': o->images[o->n_images++] = optarg; break;
        case 'c': o->clip = optarg; break;
        case 'f': o->fast_resize = 1; break;
        case 's': o->store = optarg; break;
        case 'k': o->keys = optarg; break;
        case 'M': o->manifest = optarg; break;
        case 'S': o->splits = optarg; break;
        case 'p': o->stop = optarg; break;
        case 'o': o->out = optarg; break;
        case 'n': o->normalize = 1; break;
        case 'A': o->any_clip = 1; break;
        case 'b': rc = cli_parse_int("beam", optarg, 1, 64, &o->beam, e); break;
        case 'K': rc = cli_parse_int("num-captions", optarg, 1, 64, &o->num_captions, e); break;
        case 'x': rc = cli_parse_int("max-tokens", optarg, 1, 1 << 20, &o->max_tokens, e); break;
        case 'B': rc = cli_parse_int("batch", optarg, 1, 4096, &o->batch, e); break;
        case 't': rc = cli_parse_int("threads", optarg, 0, 4096, &o->threads, e); break;
        case 'Q': rc = ops_precision_parse(optarg, &o->precision, e); break;
        case 'h': return 1;
        default:
            return err_set(e, ERR_ARG, "unknown or incomplete option '%s' (try `clipcap caption --help`)",
                           argv[optind - 1]);
        }
    }
    if (rc) return rc;
    while (optind < argc) o->images[o->n_images++] = argv[optind++];
    if (!o->model || !o->gpt2) return err_set(e, ERR_ARG, "--model and --gpt2 are required (try --help)");
    int modes = (o->n_images > 0) + (o->manifest != NULL) + (o->store && !o->manifest && !o->n_images);
    if (modes != 1 || (o->n_images && o->store && !o->manifest))
        return err_set(e, ERR_ARG,
                       "give exactly one input: --images (with --clip), --store, or --manifest with --store");
    if (o->n_images && !o->clip) return err_set(e, ERR_ARG, "--images needs --clip DIR (the CLIP model)");
    if (o->manifest && (!o->store || !o->out))
        return err_set(e, ERR_ARG, "--manifest needs --store STORE and --out OUTDIR");
    if (o->keys && !o->store) return err_set(e, ERR_ARG, "--keys selects keys of --store STORE");
    if (o->keys && o->manifest) return err_set(e, ERR_ARG, "--keys and --manifest do not go together");
    if (o->splits && !o->manifest) return err_set(e, ERR_ARG, "--splits goes with --manifest");
    if (o->num_captions > o->beam)
        return err_set(e, ERR_ARG, "--num-captions %d is more than --beam %d (one caption per beam)", o->num_captions,
                       o->beam);
    return 0;
}

/* ---- the item list: image paths or store keys ---- */

typedef struct item_list {
    char **name;
    size_t n, cap;
} item_list;

static int items_add(item_list *l, const char *s, size_t len, err_t *e)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 256;
        char **p = realloc(l->name, cap * sizeof *p);
        if (!p) return err_set(e, ERR_NOMEM, "out of memory for %zu items", l->n);
        l->name = p;
        l->cap = cap;
    }
    if (!(l->name[l->n] = strndup(s, len))) return err_set(e, ERR_NOMEM, "out of memory for %zu items", l->n);
    l->n++;
    return 0;
}

static void items_free(item_list *l)
{
    for (size_t i = 0; i < l->n; i++) free(l->name[i]);
    free(l->name);
}

static int is_image_name(const char *name)
{
    static const char *const ext[] = {".jpg", ".jpeg", ".png", ".webp"};
    size_t n = strlen(name);
    for (size_t i = 0; i < sizeof ext / sizeof *ext; i++) {
        size_t m = strlen(ext[i]);
        if (n > m && !strcasecmp(name + n - m, ext[i])) return 1;
    }
    return 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* A directory contributes its image files in byte order of their names;
 * anything else is taken as a file (read errors are per-image failures). */
static int list_images(const caption_opts *o, item_list *l, err_t *e)
{
    for (int i = 0; i < o->n_images; i++) {
        struct stat st;
        const char *p = o->images[i];
        if (stat(p, &st) || !S_ISDIR(st.st_mode)) {
            if (items_add(l, p, strlen(p), e)) return e->code;
            continue;
        }
        DIR *d = opendir(p);
        if (!d) return err_set(e, ERR_IO, "%s: cannot open the directory", p);
        size_t first = l->n;
        int rc = 0;
        for (struct dirent *de; !rc && (de = readdir(d));) {
            if (!is_image_name(de->d_name)) continue;
            char path[4096];
            if (!(rc = fs_join(path, sizeof path, p, de->d_name, e))) rc = items_add(l, path, strlen(path), e);
        }
        closedir(d);
        if (rc) return rc;
        if (l->n == first)
            return err_set(e, ERR_NOTFOUND, "%s: no .jpg, .jpeg, .png or .webp file in the directory", p);
        qsort(l->name + first, l->n - first, sizeof *l->name, cmp_str);
    }
    return 0;
}

/* --keys, or every embedding of the store in key byte order (extract's
 * failure entries are counted in *failures, not captioned). */
static int list_keys(const caption_opts *o, store *s, item_list *l, uint64_t *failures, err_t *e)
{
    if (o->keys) {
        for (const char *p = o->keys; *p;) {
            const char *comma = strchr(p, ',');
            size_t len = comma ? (size_t)(comma - p) : strlen(p);
            if (!len) return err_set(e, ERR_ARG, "--keys: empty key in '%s'", o->keys);
            if (items_add(l, p, len, e)) return e->code;
            p += len + (comma ? 1 : 0);
        }
        return 0;
    }
    store_iter *it = NULL;
    int rc = store_iter_open(&it, s, e);
    const char *key;
    store_entry ent;
    const float *emb;
    while (!rc && (rc = store_iter_next(it, &key, &ent, &emb, e)) == 1) {
        rc = 0;
        if (ent.kind == STORE_ENTRY_EMBEDDING) rc = items_add(l, key, strlen(key), e);
        else *failures += ent.kind == STORE_ENTRY_FAILURE;
    }
    store_iter_close(it);
    return rc < 0 ? rc : 0;
}

/* ---- embeddings of one batch ---- */

typedef struct caption_run {
    const caption_opts *o;
    int D;
    const captioner *cap;
    clip_vit *vit;        /* --images */
    clip_embed *ce;
    int *status;          /* [batch]: 0 or why the image failed */
    store *st;            /* --store */
    float *emb;           /* [batch, D] */
    int *slot;            /* emb row -> item index */
} caption_run;

/* Embeddings of items[0..n) into r->emb, compacted: *good rows, row g
 * belongs to item r->slot[g]. Per-item failures are logged and counted. */
static int batch_embeddings(caption_run *r, char **items, int n, int *good, uint64_t *failed, err_t *e)
{
    *good = 0;
    if (r->ce) {
        /* row i is image i's (zeros where it failed); the captioner takes the good rows packed */
        int rc = clip_embed_files(r->ce, items, n, r->emb, r->status, e);
        for (int i = 0; !rc && i < n; i++) {
            if (r->status[i]) {
                (*failed)++;
                continue;
            }
            if (*good != i) memcpy(r->emb + (size_t)*good * r->D, r->emb + (size_t)i * r->D, r->D * sizeof *r->emb);
            r->slot[(*good)++] = i;
        }
        return rc;
    }
    for (int i = 0; i < n; i++) {
        store_entry ent;
        int rc = store_lookup_embedding(r->st, items[i], &ent, r->emb + (size_t)*good * r->D, (uint32_t)r->D, e);
        if (rc) return rc;
        if (ent.kind != STORE_ENTRY_EMBEDDING) {
            if (ent.kind == STORE_ENTRY_FAILURE)
                log_msg(LOG_ERROR, "%s: key %s: extract failed (%s)", r->o->store, items[i], ent.fail.reason);
            else log_msg(LOG_ERROR, "%s: key %s: not in the store", r->o->store, items[i]);
            (*failed)++;
            continue;
        }
        if ((int)ent.rec.dim != r->D)
            return err_set(e, ERR_FORMAT, "%s: key %s: embedding size %u, the checkpoint's mapper takes %d",
                           r->o->store, items[i], ent.rec.dim, r->D);
        if (captioner_check_clip(r->cap, ent.rec.model, items[i], e)) return err_wrap(e, "%s", r->o->store);
        r->slot[(*good)++] = i;
    }
    return 0;
}

/* ---- output ---- */

static json_t *caption_json(const captioner_caption *c, int flat, json_t *obj)
{
    json_t *toks = json_array();
    for (int t = 0; t < c->n_tokens; t++) json_array_append_new(toks, json_integer(c->tokens[t]));
    json_object_set_new(obj, flat ? "caption" : "text", json_string(c->text));
    json_object_set_new(obj, "tokens", toks);
    json_object_set_new(obj, "logprob", json_real(c->logprob));
    json_object_set_new(obj, "score", json_real(c->score));
    return obj;
}

static int write_line(FILE *f, const char *field, const char *name, const captioner_caption *caps, int K, err_t *e)
{
    json_t *obj = json_object(), *jname = json_string(name);
    if (!jname) {
        /* a file name that is not UTF-8: JSON can only carry it with U+FFFD */
        char *fixed = captioner_utf8_replace(name, strlen(name));
        jname = fixed ? json_string(fixed) : NULL;
        free(fixed);
    }
    json_object_set_new(obj, field, jname);
    if (K == 1) caption_json(&caps[0], 1, obj);
    else {
        json_t *arr = json_array();
        for (int k = 0; k < K; k++) json_array_append_new(arr, caption_json(&caps[k], 0, json_object()));
        json_object_set_new(obj, "captions", arr);
    }
    char *s = json_dumps(obj, JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9));
    json_decref(obj);
    if (!s) return err_set(e, ERR_NOMEM, "%s: out of memory for its JSON line", name);
    int bad = fputs(s, f) < 0 || fputc('\n', f) < 0;
    free(s);
    return bad ? err_set(e, ERR_IO, "writing the output failed") : 0;
}

/* First item of rank r's block of whole batches (r = size: the end). */
static size_t block_start(int r, int size, size_t nb, int batch, size_t n)
{
    size_t b = nb * (size_t)r / (size_t)size * (size_t)batch;
    return b < n ? b : n;
}

typedef struct caption_counts {
    uint64_t items, captioned, failed;
} caption_counts;

/* Caption items[lo, hi) into f. */
static int caption_block(caption_run *r, captioner *cap, item_list *items, size_t lo, size_t hi, FILE *f,
                         caption_counts *cnt, err_t *e)
{
    const int K = r->o->num_captions;
    const char *field = r->vit ? "path" : "key";
    captioner_caption *caps = malloc((size_t)r->o->batch * K * sizeof *caps);
    if (!caps) return err_set(e, ERR_NOMEM, "out of memory");
    progress_t p;
    progress_start(&p, "caption", "img", hi - lo);
    int rc = 0;
    for (size_t start = lo; start < hi && !rc; start += (size_t)r->o->batch) {
        int n = hi - start < (size_t)r->o->batch ? (int)(hi - start) : r->o->batch, good = 0;
        rc = batch_embeddings(r, items->name + start, n, &good, &cnt->failed, e);
        if (!rc && good) rc = captioner_run(cap, r->emb, good, caps, e);
        for (int g = 0; !rc && g < good; g++)
            rc = write_line(f, field, items->name[start + r->slot[g]], caps + (size_t)g * K, K, e);
        cnt->items += (uint64_t)n;
        cnt->captioned += (uint64_t)good;
        progress_update(&p, cnt->items, cnt->failed);
    }
    progress_finish(&p);
    free(caps);
    return rc;
}

/* Rank r > 0 sends its block's bytes; rank 0 appends them in rank order. */
static int gather_output(FILE *out, char *buf, size_t len, err_t *e)
{
    const int rank = mpictx_rank(), size = mpictx_size();
    const size_t chunk = (size_t)1 << 30;
    int rc = 0;
    if (rank) {
        uint64_t n = len;
        rc = mpictx_check(MPI_Send(&n, 1, MPI_UINT64_T, 0, 0, mpictx_comm()), "MPI_Send", e);
        for (size_t off = 0; !rc && off < len; off += chunk)
            rc = mpictx_check(
                MPI_Send(buf + off, (int)(len - off < chunk ? len - off : chunk), MPI_CHAR, 0, 1, mpictx_comm()),
                "MPI_Send", e);
        return rc;
    }
    char *tmp = NULL;
    for (int r = 1; r < size && !rc; r++) {
        uint64_t n = 0;
        rc = mpictx_check(MPI_Recv(&n, 1, MPI_UINT64_T, r, 0, mpictx_comm(), MPI_STATUS_IGNORE), "MPI_Recv", e);
        for (uint64_t off = 0; !rc && off < n; off += chunk) {
            size_t m = n - off < chunk ? (size_t)(n - off) : chunk;
            if (!tmp && !(tmp = malloc(chunk)))
                rc = err_set(e, ERR_NOMEM, "out of memory receiving rank %d's captions", r);
            if (!rc)
                rc = mpictx_check(MPI_Recv(tmp, (int)m, MPI_CHAR, r, 1, mpictx_comm(), MPI_STATUS_IGNORE), "MPI_Recv",
                                  e);
            if (!rc && fwrite(tmp, 1, m, out) != m) rc = err_set(e, ERR_IO, "writing the output failed");
        }
    }
    free(tmp);
    return rc;
}

/* ---- modes ---- */

static int open_captioner(const caption_opts *o, ops_ctx *ops, captioner **cap, err_t *e)
{
    captioner_options co;
    captioner_options_default(&co);
    co.checkpoint = o->model;
    co.gpt2_dir = o->gpt2;
    co.tokenizer_dir = o->tokenizer;
    co.normalize_prefix = o->normalize;
    co.any_clip = o->any_clip;
    co.max_images = o->batch;
    co.decode.beam = o->beam;
    co.decode.num_captions = o->num_captions;
    co.decode.max_tokens = o->max_tokens;
    if (o->stop && !*o->stop) co.decode.stop_token = -1;
    else if (o->stop) co.stop_text = o->stop;
    return captioner_open(cap, ops, &co, e);
}

static int run_corpus(const caption_opts *o, captioner *cap, err_t *e)
{
    caption_corpus_options co;
    caption_corpus_options_default(&co);
    co.manifest = o->manifest;
    co.store = o->store;
    co.out = o->out;
    co.splits = o->splits;
    co.batch = o->batch;
    /* the decode settings come from the captioner; the checkpoint is ours to name */
    json_t *j = json_pack("{s:s, s:s}", "model", o->model, "gpt2", o->gpt2);
    char *settings = j ? json_dumps(j, JSON_PRESERVE_ORDER) : NULL;
    json_decref(j);
    if (!settings) return err_set(e, ERR_FORMAT, "%s: the path cannot be written as JSON (not UTF-8?)", o->model);
    co.settings = settings;
    int rc = caption_corpus_run(&co, cap, e);
    free(settings);
    return rc;
}

/* --images or --store: caption, print in order, count. */
static int run_items(const caption_opts *o, ops_ctx *ops, captioner *cap, caption_counts *total, err_t *e)
{
    const int rank = mpictx_rank(), size = mpictx_size();
    caption_run r = {.o = o, .D = captioner_clip_dim(cap), .cap = cap};
    item_list items = {0};
    uint64_t store_failures = 0;
    int rc = 0;
    if (o->n_images) {
        rc = clip_vit_load(&r.vit, ops, o->clip, o->batch, e);
        if (!rc && clip_vit_embed_dim(r.vit) != r.D)
            rc = err_set(e, ERR_ARG, "%s gives %d-dim embeddings but %s's mapper takes %d", o->clip,
                         clip_vit_embed_dim(r.vit), o->model, r.D);
        if (!rc) {
            /* what extract would store as these embeddings' model fingerprint */
            clip_preprocess_cfg pre;
            char fp[33];
            clip_preprocess_cfg_default(&pre, clip_vit_image_size(r.vit));
            pre.fast_resize = o->fast_resize;
            store_model_fingerprint(clip_vit_fingerprint(r.vit), pre.image_size, pre.fast_resize, pre.mean, pre.std,
                                    fp);
            rc = captioner_check_clip(cap, fp, o->clip, e);
        }
        if (!rc)
            rc = clip_embed_create(
                &r.ce, r.vit,
                &(clip_embed_cfg){.max_batch = o->batch, .fast_resize = o->fast_resize, .threads = o->threads}, e);
        if (!rc && !(r.status = calloc((size_t)o->batch, sizeof *r.status)))
            rc = err_set(e, ERR_NOMEM, "out of memory for a batch of %d images", o->batch);
        if (!rc) rc = list_images(o, &items, e);
    } else {
        rc = store_open(&r.st, o->store, NULL, e);
        if (!rc) rc = list_keys(o, r.st, &items, &store_failures, e);
    }
    if (!rc) {
        r.emb = malloc((size_t)o->batch * r.D * sizeof *r.emb);
        r.slot = malloc((size_t)o->batch * sizeof *r.slot);
        if (!r.emb || !r.slot) rc = err_set(e, ERR_NOMEM, "out of memory for a batch of %d embeddings", o->batch);
    }
    rc = mpictx_agree(rc, e);

    /* rank 0 writes directly; the others into memory until their turn */
    char tmp_path[4200] = "", *buf = NULL;
    size_t buf_len = 0;
    FILE *f = NULL;
    if (!rc) {
        if (rank) f = open_memstream(&buf, &buf_len);
        else if (o->out) {
            snprintf(tmp_path, sizeof tmp_path, "%s.tmp.%d", o->out, (int)getpid());
            f = fopen(tmp_path, "w");
        } else f = stdout;
        if (!f) rc = err_set(e, ERR_IO, "%s: cannot open for writing", rank ? "memory stream" : tmp_path);
    }
    rc = mpictx_agree(rc, e);
    caption_counts cnt = {0};
    if (!rc) {
        const size_t nb = (items.n + (size_t)o->batch - 1) / (size_t)o->batch;
        const size_t lo = block_start(rank, size, nb, o->batch, items.n);
        const size_t hi = block_start(rank + 1, size, nb, o->batch, items.n);
        rc = caption_block(&r, cap, &items, lo, hi, f, &cnt, e);
    }
    if (rank && f) {
        if (fclose(f) && !rc) rc = err_set(e, ERR_IO, "memory stream: out of memory");
        f = NULL;
    }
    rc = mpictx_agree(rc, e);
    if (!rc && size > 1) rc = gather_output(f, buf, buf_len, e);
    rc = mpictx_agree(rc, e);
    if (!rank && f && f != stdout) {
        if (fclose(f) && !rc) rc = err_set(e, ERR_IO, "%s: write failed", tmp_path);
        if (!rc && rename(tmp_path, o->out)) rc = err_set(e, ERR_IO, "%s: cannot rename into place", o->out);
        if (rc) unlink(tmp_path);
    } else if (!rank && f && fflush(f) && !rc) rc = err_set(e, ERR_IO, "writing stdout failed");
    if (!rc) {
        uint64_t sum[3] = {cnt.items, cnt.captioned, cnt.failed};
        rc = comm_allreduce(sum, 3, COMM_U64, COMM_SUM, e);
        cnt = (caption_counts){sum[0], sum[1], sum[2]};
    }
    if (!rc && store_failures && !rank)
        log_msg(LOG_INFO, "%s: %llu keys hold extract failures, not embeddings: skipped", o->store,
                (unsigned long long)store_failures);
    *total = cnt;
    free(buf);
    items_free(&items);
    clip_embed_free(r.ce);
    clip_vit_free(r.vit);
    store_close(r.st);
    free(r.status), free(r.emb), free(r.slot);
    return rc;
}

int stage_caption_main(int argc, char **argv)
{
    caption_opts o;
    err_t e = {0};
    int rc = caption_parse(argc, argv, &o, &e);
    if (rc == 1) {
        caption_usage(stdout);
        free(o.images);
        return 0;
    }
    if (rc) {
        free(o.images);
        return err_report("caption", &e);
    }
    ops_ctx *ops = NULL;
    captioner *cap = NULL;
    rc = ops_create(&ops, o.threads, &e);
    if (!rc) rc = ops_set_precision(ops, o.precision, &e);
    if (!rc) rc = open_captioner(&o, ops, &cap, &e);
    rc = mpictx_agree(rc, &e);
    caption_counts cnt = {0};
    double t0 = clock_now();
    if (!rc) {
        const clipcap_config *k = captioner_config(cap);
        if (mpictx_rank() == 0)
            log_msg(LOG_INFO, "%s: %s mapper, prefix %d, CLIP %d; GPT-2 from %s; fingerprint %s; %s", o.model,
                    k->mapping == CLIPCAP_MAP_MLP ? "MLP" : "Transformer", k->prefix_len, k->clip_dim,
                    captioner_gpt2_source(cap), captioner_fingerprint(cap), ops_precision_impl(ops));
        rc = o.manifest ? run_corpus(&o, cap, &e) : run_items(&o, ops, cap, &cnt, &e);
    }
    double secs = clock_now() - t0;
    captioner_free(cap);
    ops_destroy(ops);
    free(o.images);
    if (rc) return err_report("caption", &e);
    if (o.manifest) return 0;
    if (mpictx_rank() == 0)
        log_msg(LOG_INFO,
                "caption: %llu of %llu images captioned, %llu failed, %.1f s, %.2f captions/s over %d rank(s)",
                (unsigned long long)cnt.captioned, (unsigned long long)cnt.items, (unsigned long long)cnt.failed, secs,
                secs > 0 ? (double)cnt.captioned * o.num_captions / secs : 0.0, mpictx_size());
    if (cnt.failed) {
        err_set(&e, ERR_FORMAT, "%llu of %llu images could not be captioned (reasons above)",
                (unsigned long long)cnt.failed, (unsigned long long)cnt.items);
        return mpictx_rank() == 0 ? err_report("caption", &e) : 1;
    }
    return 0;
}
