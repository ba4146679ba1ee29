/* `clipcap eval`: caption a split of a manifest from its precomputed CLIP
 * embeddings, shard by shard over the ranks (core/workq.h), gather the
 * captions on rank 0 in manifest order into a
 * COCO results file ([{"image_id", "caption"}]), and score it with
 * `clipcap score`'s code (common/metrics/cocoeval.h, cocoeval_score_files:
 * the same output, one JSON object keyed Bleu_1..Bleu_4, METEOR, ROUGE_L,
 * CIDEr, SPICE). Only the captioned images are scored (the toolkit's
 * imgIds = cocoRes.getImgIds()), so the annotation file may hold more
 * images than the split (captions_val2014.json for the Karpathy test).
 *
 * image_id is the manifest record's key: for COCO and Karpathy manifests
 * that is the COCO image id (decimal), written as a JSON integer so the
 * results name images as the annotation file does; a key that is not a
 * decimal integer (Conceptual Captions) is written as a string. */
#include "caption/caption_corpus.h"
#include "caption/captioner.h"
#include "core/cli.h"
#include "core/fsutil.h"
#include "core/log.h"
#include "core/mpictx.h"
#include "data/manifest.h"
#include "metrics/cocoeval.h"
#include "nn/ops_ext.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char stage_eval_summary[] = "caption a split (e.g. Karpathy test) over ranks and score it like the COCO toolkit";

static void eval_usage(FILE *out)
{
    fprintf(out,
            "usage: [mpirun -np N] clipcap eval --manifest DIR --store STORE --model CKPT --gpt2 DIR\n"
            "                      --annotations A --results OUT.json [options]\n\n"
            "Captions every image of the split(s) from the CLIP embeddings in STORE (the ranks\n"
            "take manifest shards one at a time), writes the COCO results file OUT.json on rank 0\n"
            "([{\"image_id\": ID, \"caption\": TEXT}], image_id = the manifest key: the COCO\n"
            "image id), then scores it against A as `clipcap score` does and prints one JSON\n"
            "object (Bleu_1..Bleu_4, METEOR, ROUGE_L, CIDEr, SPICE). Every image of the split\n"
            "needs an embedding. Before captioning, the images are checked against the store\n"
            "and the annotations (every image has an embedding and references).\n\n"
            "  --manifest DIR      manifest (clipcap shard)\n"
            "  --split S           split(s) to evaluate, comma-separated (default: the\n"
            "                      manifest's split when it has only one)\n"
            "  --store STORE       feature store (clipcap extract)\n"
            "  --model CKPT        ClipCap checkpoint: ours (.safetensors) or the paper's .pt\n"
            "  --gpt2 DIR          GPT-2 hub directory (config.json, vocab.json, merges.txt)\n"
            "  --tokenizer DIR     vocab.json + merges.txt when they are not in the --gpt2 DIR\n"
            "  --annotations A     COCO captions file with the references\n"
            "  --results OUT.json  results file to write\n"
            "  --beam B            beam size (default 1: greedy, the reference's default)\n"
            "  --max-tokens T      longest caption in tokens (default 67)\n"
            "  --normalize-prefix  L2-normalise the embeddings first (if the model was trained so)\n"
            "  --any-clip          accept a store of another CLIP than the checkpoint's\n"
            "  --batch N           images per captioning call (default 64)\n"
            "  --threads T         compute threads per rank (default OMP_NUM_THREADS)\n"
            "  --precision P       GEMM precision of mapper and GPT-2: fp32 (default), tf32,\n"
            "                      bf16 or fp16 (fp32 accumulation; docs/nn.md)\n"
            "  --per-image         add per-image scores (as clipcap score --per-image)\n"
            "  --skip-failed       leave out images whose extraction failed (logged with the\n"
            "                      reason) instead of stopping; unextracted images still stop\n"
            "  --meteor-jar JAR    compute METEOR with meteor-1.5.jar (java on PATH)\n"
            "  --spice-jar JAR     compute SPICE with spice-1.0.jar (java on PATH)\n"
            "  -h, --help          this help\n");
}

typedef struct {
    caption_corpus_options corpus;
    captioner_options cap;
    const char *annotations, *results;
    cocoeval_opts_t score;
    int threads;
    enum ops_precision precision;
    char default_split[64]; /* the manifest's only split, when --split is not given */
} eval_options;

static int eval_parse(int argc, char **argv, eval_options *o, int *help, err_t *e)
{
    static const struct option opts[] = {
        {"manifest", required_argument, 0, 'm'},   {"split", required_argument, 0, 's'},
        {"store", required_argument, 0, 'S'},      {"model", required_argument, 0, 'M'},
        {"gpt2", required_argument, 0, 'g'},       {"tokenizer", required_argument, 0, 'K'},       {"annotations", required_argument, 0, 'a'},
        {"results", required_argument, 0, 'r'},    {"beam", required_argument, 0, 'B'},
        {"max-tokens", required_argument, 0, 'T'}, {"normalize-prefix", no_argument, 0, 'n'},
        {"batch", required_argument, 0, 'b'},      {"threads", required_argument, 0, 't'},
        {"per-image", no_argument, 0, 'p'},        {"skip-failed", no_argument, 0, 'F'},        {"meteor-jar", required_argument, 0, 'J'},
        {"spice-jar", required_argument, 0, 'P'},  {"help", no_argument, 0, 'h'},
        {"precision", required_argument, 0, 'Q'},  {"any-clip", no_argument, 0, 'A'},
        {0, 0, 0, 0}};
    caption_corpus_options_default(&o->corpus);
    captioner_options_default(&o->cap);
    int c, idx = 0, rc = 0;
    *help = 0;
    optind = 1;
    while (!rc && (c = getopt_long(argc, argv, "h", opts, &idx)) != -1) {
        switch (c) {
        case 'm': o->corpus.manifest = optarg; break;
        case 's': o->corpus.splits = optarg; break;
        case 'S': o->corpus.store = optarg; break;
        case 'M': o->cap.checkpoint = optarg; break;
        case 'g': o->cap.gpt2_dir = optarg; break;
        case 'K': o->cap.tokenizer_dir = optarg; break;
        case 'a': o->annotations = optarg; break;
        case 'r': o->results = optarg; break;
        case 'n': o->cap.normalize_prefix = 1; break;
        case 'A': o->cap.any_clip = 1; break;
        case 'p': o->score.per_image = 1; break;
        case 'F': o->corpus.skip_failed = 1; break;
        case 'J': o->score.meteor_jar = optarg; break;
        case 'P': o->score.spice_jar = optarg; break;
        case 'B': rc = cli_parse_int("beam", optarg, 1, 64, &o->cap.decode.beam, e); break;
        case 'T': rc = cli_parse_int("max-tokens", optarg, 1, 1 << 20, &o->cap.decode.max_tokens, e); break;
        case 'b': rc = cli_parse_int("batch", optarg, 1, 1 << 16, &o->corpus.batch, e); break;
        case 't': rc = cli_parse_int("threads", optarg, 0, 4096, &o->threads, e); break;
        case 'Q': rc = ops_precision_parse(optarg, &o->precision, e); break;
        case 'h': *help = 1; return 0;
        default: return err_set(e, ERR_ARG, "unknown or incomplete option '%s' (try --help)", argv[optind - 1]);
        }
    }
    if (rc) return rc;
    if (optind < argc) return err_set(e, ERR_ARG, "unexpected argument '%s' (try --help)", argv[optind]);
    if (!o->corpus.manifest || !o->corpus.store || !o->cap.checkpoint || !o->cap.gpt2_dir || !o->annotations ||
        !o->results)
        return err_set(e, ERR_ARG,
                       "--manifest, --store, --model, --gpt2, --annotations and --results are required (try --help)");
    o->cap.max_images = o->corpus.batch;
    o->score.subset = 1;
    return cocoeval_check_opts(&o->score, e);
}

/* A decimal key is a COCO image id: an integer, as in the annotations. */
static json_t *eval_image_id(const char *key)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(key, &end, 10);
    int decimal = *key >= '0' && *key <= '9' && !*end && !errno && (key[0] != '0' || !key[1]);
    return decimal ? json_integer(v) : json_string(key);
}

static int eval_write_results(const char *path, const caption_corpus_item *items, size_t n, err_t *e)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < n; i++) {
        json_t *o = json_object();
        json_object_set_new(o, "image_id", eval_image_id(items[i].key));
        json_object_set_new(o, "caption", json_string(items[i].caption));
        json_array_append_new(arr, o);
    }
    char *text = arr ? json_dumps(arr, JSON_INDENT(1)) : NULL;
    json_decref(arr);
    if (!text) return err_set(e, ERR_NOMEM, "%s: cannot format %zu results", path, n);
    int rc = fs_write_atomic(path, text, strlen(text), e);
    free(text);
    if (!rc) log_msg(LOG_INFO, "%s: %zu captions", path, n);
    return rc;
}

/* Without --split: the manifest's only split; a manifest with several
 * needs a choice (COCO-2014's are train2014/val2014, Karpathy's
 * train/restval/val/test). */
static int eval_default_split(eval_options *o, err_t *e)
{
    if (o->corpus.splits) return 0;
    manifest_t *m = NULL;
    int rc = manifest_open(&m, o->corpus.manifest, e);
    if (rc) return rc;
    if (manifest_num_splits(m) == 1) {
        snprintf(o->default_split, sizeof o->default_split, "%s", manifest_split(m, 0)->name);
        o->corpus.splits = o->default_split;
    } else {
        char list[512] = "";
        for (int i = 0; i < manifest_num_splits(m); i++)
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "", manifest_split(m, i)->name);
        rc = err_set(e, ERR_ARG, "%s has %d splits (%s): choose the one to evaluate with --split", o->corpus.manifest,
                     manifest_num_splits(m), list);
    }
    manifest_close(m);
    return rc;
}

/* caption_corpus_check's callback: one placeholder result per image. */
static int eval_add_placeholder(void *ctx, const char *key, err_t *e)
{
    json_t *o = json_pack("{s:o, s:s}", "image_id", eval_image_id(key), "caption", "x");
    if (!o || json_array_append_new(ctx, o)) return err_set(e, ERR_NOMEM, "out of memory");
    return 0;
}

/* The selected images' embeddings and references, checked before any
 * captioning (rank 0): an image without an embedding, or one the
 * annotations do not know, would otherwise stop eval after captioning the
 * whole split. The reference check is the scorer's own matching, run on a
 * results list with a placeholder caption per image. */
static int eval_check_inputs(const eval_options *o, err_t *e)
{
    json_t *res = json_array();
    int rc = res ? caption_corpus_check(&o->corpus, eval_add_placeholder, res, e) : err_set(e, ERR_NOMEM, "out of memory");
    char *text = !rc ? json_dumps(res, JSON_COMPACT) : NULL;
    if (!rc && !text) rc = err_set(e, ERR_NOMEM, "out of memory");
    cocoeval_captions_t cres = {0}, cann = {0};
    cocoeval_set_t set = {0};
    char name[600];
    snprintf(name, sizeof name, "%s (split %s)", o->corpus.manifest, o->corpus.splits);
    if (!rc) rc = cocoeval_load_buffer(&cres, text, strlen(text), name, 1, e);
    if (!rc) rc = cocoeval_load_annotations(&cann, o->annotations, e);
    if (!rc && cocoeval_match(&set, &cres, &cann, 1, e))
        rc = err_wrap(e, "--split %s does not match --annotations %s", o->corpus.splits, o->annotations);
    cocoeval_set_free(&set);
    cocoeval_captions_free(&cres);
    cocoeval_captions_free(&cann);
    free(text);
    json_decref(res);
    return rc;
}

static int eval_generate(const eval_options *o, err_t *e)
{
    ops_ctx *ctx = NULL;
    captioner *c = NULL;
    caption_corpus_item *items = NULL;
    size_t n = 0;
    int rc = mpictx_rank() == 0 ? eval_check_inputs(o, e) : 0;
    rc = mpictx_agree(rc, e);
    if (!rc) rc = ops_create(&ctx, o->threads, e);
    if (!rc) rc = ops_set_precision(ctx, o->precision, e);
    if (!rc) rc = captioner_open(&c, ctx, &o->cap, e);
    rc = mpictx_agree(rc, e);
    if (!rc) rc = caption_corpus_collect(&o->corpus, c, &items, &n, e);
    if (!rc && mpictx_rank() == 0) rc = eval_write_results(o->results, items, n, e);
    rc = mpictx_agree(rc, e);
    caption_corpus_items_free(items, n);
    captioner_free(c);
    ops_destroy(ctx);
    return rc;
}

int stage_eval_main(int argc, char **argv)
{
    eval_options o;
    err_t e = {0};
    int help = 0;
    memset(&o, 0, sizeof o);
    if (eval_parse(argc, argv, &o, &help, &e)) return err_report("eval", &e);
    if (help) {
        eval_usage(stdout);
        return 0;
    }
    if (eval_default_split(&o, &e)) return err_report("eval", &e);
    if (eval_generate(&o, &e)) return err_report("eval", &e);
    if (mpictx_rank() == 0 && cocoeval_score_files(o.results, o.annotations, &o.score, stdout, &e))
        return err_report("eval", &e);
    return 0;
}
