/* `clipcap train`: train the ClipCap mapper (and GPT-2 unless frozen) on the
 * captions of a manifest with the CLIP embeddings of the feature store,
 * data-parallel over MPI ranks (docs/training.md).
 *
 * Every rank builds the same example list (data/train_data.h: one example
 * per caption, in manifest order, captions of images whose extraction
 * failed dropped; token ids in memory, embeddings looked up in the store
 * one batch at a time) and the same per-epoch permutation (seed, epoch).
 * Global batch b of an epoch is perm[b·B, (b+1)·B); rank r takes the
 * contiguous slice [B·r/N, B·(r+1)/N). The loss is the mean over the
 * GLOBAL batch's counted tokens: ranks first agree on the token count, then
 * each backward is scaled by 1/count and an allreduce (sum) of the flat
 * gradient buffer gives every rank the single-process gradient, so all
 * ranks apply the same AdamW step. With GPT-2 tuned the sum is started
 * slice by slice while backward runs (each layer's gradients as soon as
 * they are final, the rest after it) and waited for before AdamW. A weight checksum compares ranks every
 * K steps.
 *
 * Rank 0 writes checkpoints (safetensors named as the reference names its
 * state dict: clip_project.*, plus gpt.transformer.* and gpt.lm_head.weight
 * when GPT-2 is tuned or its weights came from a checkpoint rather than the
 * --gpt2 directory), the optimiser state in a separate file, and then
 * state.json, atomically, as the commit point that --resume reads.
 *
 * --init starts from a checkpoint's weights instead of the seeded mapper
 * initialisation: its mapper configuration is inferred from the tensor
 * shapes (caption/captioner.h), flags that were given must agree, and every
 * tensor in it must be one this model uses (or a tolerated buffer), all
 * checked before step 1. */
#include "caption/captioner.h"
#include "core/cli.h"
#include "core/comm.h"
#include "core/fsutil.h"
#include "core/log.h"
#include "core/mpictx.h"
#include "core/progress.h"
#include "data/train_data.h"
#include "io/json_util.h"
#include "io/safetensors.h"
#include "io/tensorfile.h"
#include "nn/adamw.h"
#include "nn/clipcap_model.h"
#include "nn/ops.h"
#include "nn/ops_comm.h"
#include "nn/ops_ext.h"

#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char stage_train_summary[] = "train the ClipCap mapper (and GPT-2) on a manifest + feature store";

#define TRAIN_STATE_VERSION 1

static void train_usage(FILE *out)
{
    fprintf(out,
            "usage: clipcap train --manifest DIR --store DIR --gpt2 DIR --mapping mlp|transformer\n"
            "                     --out RUN_DIR [options]\n"
            "       clipcap train --manifest DIR --store DIR --gpt2 DIR --init CKPT --out RUN_DIR [options]\n"
            "       mpirun -np N clipcap train ...\n\n"
            "Trains ClipCap as the reference did: one example per caption, CLIP embedding\n"
            "from the feature store, captions padded/cut to the manifest's max_seq_len,\n"
            "shuffled per epoch, last partial batch dropped, AdamW with linear warm-up and\n"
            "linear decay to 0. The global batch is split over the ranks; their gradients\n"
            "are summed with an allreduce, so N ranks follow the 1-rank run.\n\n"
            "options:\n"
            "  --manifest DIR     manifest written by `clipcap shard`\n"
            "  --store DIR        feature store written by `clipcap extract`\n"
            "  --gpt2 DIR         GPT-2 as on the hub (config.json + model.safetensors or\n"
            "                     pytorch_model.bin)\n"
            "  --mapping M        mlp (\"MLP + GPT-2 tuning\") or transformer (with --init:\n"
            "                     read from the checkpoint)\n"
            "  --freeze-gpt2      train the mapper only (the reference's --only_prefix)\n"
            "  --out RUN_DIR      checkpoints, optimiser state, state.json, log.jsonl\n"
            "  --init CKPT        start from these weights instead of a seeded random mapper:\n"
            "                     a mapper (clip_project.*) or a whole model (clip_project.* +\n"
            "                     gpt.transformer.*, whose GPT-2 replaces the --gpt2 dir's\n"
            "                     weights), .safetensors or the paper's .pt; the mapping type,\n"
            "                     prefix length, clip length and layers are read from its\n"
            "                     shapes, and those flags, where given, must agree\n"
            "  --prefix-len K     prefix length (default 10)\n"
            "  --clip-len N       Transformer mapper's clip length (default 10)\n"
            "  --mapper-layers L  Transformer mapper's layers (default 8)\n"
            "  --splits LIST      comma-separated manifest splits to train on (default: all)\n"
            "  --batch B          global batch (default 40), split over the ranks\n"
            "  --epochs E         (default 10)\n"
            "  --lr X             peak learning rate (default 2e-5)\n"
            "  --warmup S         warm-up steps (default 5000)\n"
            "  --weight-decay X   (default 0)\n"
            "  --seed S           shuffling and mapper initialisation (default 0)\n"
            "  --no-shuffle       keep manifest order every epoch (images in order, each\n"
            "                     image's captions in order); the last partial batch is\n"
            "                     still dropped\n"
            "  --max-steps S      stop after S steps in total (the schedule still spans\n"
            "                     all epochs)\n"
            "  --save-every S     also checkpoint every S steps (default: end of each epoch)\n"
            "  --check-every K    compare a weight checksum over ranks every K steps (100)\n"
            "  --ignore-bang      ignore target \"!\" (id 0) as the reference does; by default\n"
            "                     only padding is ignored\n"
            "  --dropout P        GPT-2's dropout when it is tuned (default: config.json's\n"
            "                     attn_pdrop, resid_pdrop, embd_pdrop, 0.1 where missing, as\n"
            "                     the reference trains); 0 trains without; a frozen GPT-2\n"
            "                     never drops (eval mode, as the reference)\n"
            "  --normalize-prefix divide each CLIP embedding by its L2 norm (the reference's\n"
            "                     --normalize_prefix; caption/eval then need it too)\n"
            "  --max-seq-len N    cut captions to N tokens (default: the manifest's\n"
            "                     max_seq_len); never more than GPT-2's n_positions minus\n"
            "                     the prefix length (capped there with a note)\n"
            "  --keep-checkpoints N  keep only the last N model + optimiser checkpoints\n"
            "                     (default 0: keep all, as the reference)\n"
            "  --resume           continue bit-exactly from RUN_DIR/state.json (not with\n"
            "                     --init: give the first run's other flags)\n"
            "  --force            start over in a used RUN_DIR: removes the checkpoints,\n"
            "                     state.json and log.jsonl a previous run left there\n"
            "                     (without --resume or --force a non-empty RUN_DIR is refused)\n"
            "  --threads T        compute threads per rank (default OMP_NUM_THREADS)\n"
            "  --precision P      GEMM precision: fp32 (default), tf32, bf16 or fp16; float32\n"
            "                     master weights, optimiser state, loss and checkpoints;\n"
            "                     fp16 with dynamic loss scaling (docs/training.md)\n"
            "  -h, --help         this help\n\n"
            "Rank 0 prints one JSON line per step on stdout (also appended to\n"
            "RUN_DIR/log.jsonl) and progress with an ETA on stderr.\n");
}

/* model flags given on the command line (the others may come from --init) */
enum { GIVEN_MAPPING = 1, GIVEN_PREFIX = 2, GIVEN_CLIP_LEN = 4, GIVEN_LAYERS = 8 };

typedef struct train_opts {
    const char *manifest, *store, *gpt2, *out, *splits, *init;
    clipcap_config model;
    int given; /* GIVEN_* */
    int batch, epochs, threads, resume, force, check_every, no_shuffle;
    long max_steps, save_every, warmup, keep_checkpoints;
    int max_seq_len, normalize_prefix;
    float lr, weight_decay, dropout; /* dropout < 0: config.json's */
    uint64_t seed;
    enum ops_precision precision;
} train_opts;

/* 0 = parsed, 1 = --help printed, <0 = error */
static int train_parse(int argc, char **argv, train_opts *o, err_t *e)
{
    memset(o, 0, sizeof *o);
    o->model.mapping = -1;
    o->model.prefix_len = 10;
    o->model.clip_len = 10;
    o->model.mapper_layers = 8;
    o->batch = 40;
    o->epochs = 10;
    o->lr = 2e-5f;
    o->warmup = 5000;
    o->check_every = 100;
    o->dropout = -1.0f;
    static const struct option longopts[] = {
        {"manifest", required_argument, 0, 'm'},     {"store", required_argument, 0, 's'},
        {"gpt2", required_argument, 0, 'g'},         {"mapping", required_argument, 0, 'M'},
        {"freeze-gpt2", no_argument, 0, 'F'},        {"out", required_argument, 0, 'o'},
        {"prefix-len", required_argument, 0, 'k'},   {"clip-len", required_argument, 0, 'c'},
        {"mapper-layers", required_argument, 0, 'L'}, {"splits", required_argument, 0, 'S'},
        {"batch", required_argument, 0, 'b'},        {"epochs", required_argument, 0, 'e'},
        {"lr", required_argument, 0, 'l'},           {"warmup", required_argument, 0, 'w'},
        {"weight-decay", required_argument, 0, 'd'}, {"seed", required_argument, 0, 'r'},
        {"max-steps", required_argument, 0, 'x'},    {"save-every", required_argument, 0, 'v'},
        {"check-every", required_argument, 0, 'K'},  {"ignore-bang", no_argument, 0, 'B'},
        {"resume", no_argument, 0, 'R'},             {"threads", required_argument, 0, 't'},
        {"init", required_argument, 0, 'I'},         {"no-shuffle", no_argument, 0, 'N'},
        {"force", no_argument, 0, 'f'},              {"dropout", required_argument, 0, 'D'},
        {"normalize-prefix", no_argument, 0, 'P'},   {"max-seq-len", required_argument, 0, 'q'},
        {"keep-checkpoints", required_argument, 0, 'C'},
        {"precision", required_argument, 0, 'Q'},   {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    /* step counts: far beyond any run, far below where step arithmetic wraps */
    const long max_steps = 1L << 40;
    optind = 1;
    int c, rc = 0;
    double v;
    while (!rc && (c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'm': o->manifest = optarg; break;
        case 's': o->store = optarg; break;
        case 'g': o->gpt2 = optarg; break;
        case 'o': o->out = optarg; break;
        case 'S': o->splits = optarg; break;
        case 'F': o->model.freeze_gpt2 = 1; break;
        case 'B': o->model.ignore_bang = 1; break;
        case 'R': o->resume = 1; break;
        case 'f': o->force = 1; break;
        case 'P': o->normalize_prefix = 1; break;
        case 'D':
            if (!(rc = cli_parse_double("dropout", optarg, 0, 0.99, &v, e))) o->dropout = (float)v;
            break;
        case 'I': o->init = optarg; break;
        case 'N': o->no_shuffle = 1; break;
        case 'M':
            o->given |= GIVEN_MAPPING;
            if (!strcmp(optarg, "mlp")) o->model.mapping = CLIPCAP_MAP_MLP;
            else if (!strcmp(optarg, "transformer")) o->model.mapping = CLIPCAP_MAP_TRANSFORMER;
            else return err_set(e, ERR_ARG, "--mapping: '%s' is not mlp or transformer", optarg);
            break;
        case 'l':
            if (!(rc = cli_parse_double("lr", optarg, 0, 10, &v, e))) o->lr = (float)v;
            break;
        case 'd':
            if (!(rc = cli_parse_double("weight-decay", optarg, 0, 10, &v, e))) o->weight_decay = (float)v;
            break;
        case 'k':
            rc = cli_parse_int("prefix-len", optarg, 1, 1024, &o->model.prefix_len, e);
            o->given |= GIVEN_PREFIX;
            break;
        case 'c':
            rc = cli_parse_int("clip-len", optarg, 1, 1024, &o->model.clip_len, e);
            o->given |= GIVEN_CLIP_LEN;
            break;
        case 'L':
            rc = cli_parse_int("mapper-layers", optarg, 1, 1024, &o->model.mapper_layers, e);
            o->given |= GIVEN_LAYERS;
            break;
        case 'b': rc = cli_parse_int("batch", optarg, 1, 1 << 20, &o->batch, e); break;
        case 'e': rc = cli_parse_int("epochs", optarg, 1, 1 << 20, &o->epochs, e); break;
        case 'w': rc = cli_parse_long("warmup", optarg, 0, max_steps, &o->warmup, e); break;
        case 'r': rc = cli_parse_u64("seed", optarg, 0, UINT64_MAX, &o->seed, e); break;
        case 'x': rc = cli_parse_long("max-steps", optarg, 1, max_steps, &o->max_steps, e); break;
        case 'v': rc = cli_parse_long("save-every", optarg, 1, max_steps, &o->save_every, e); break;
        case 'K': rc = cli_parse_int("check-every", optarg, 1, INT_MAX, &o->check_every, e); break;
        case 't': rc = cli_parse_int("threads", optarg, 1, 4096, &o->threads, e); break;
        case 'Q': rc = ops_precision_parse(optarg, &o->precision, e); break;
        case 'h': train_usage(stdout); return 1;
        case 'q': rc = cli_parse_int("max-seq-len", optarg, 1, 1 << 20, &o->max_seq_len, e); break;
        case 'C': rc = cli_parse_long("keep-checkpoints", optarg, 0, max_steps, &o->keep_checkpoints, e); break;
        default: return err_set(e, ERR_ARG, "unknown or incomplete option '%s' (try --help)", argv[optind - 1]);
        }
    }
    if (rc) return rc;
    if (optind < argc) return err_set(e, ERR_ARG, "unexpected argument '%s'", argv[optind]);
    if (!o->manifest || !o->store || !o->gpt2 || !o->out || ((int)o->model.mapping < 0 && !o->init))
        return err_set(e, ERR_ARG,
                       "--manifest, --store, --gpt2, --out and --mapping (or --init) are required (try --help)");
    if (o->init && o->resume)
        return err_set(e, ERR_ARG,
                       "--init and --resume exclude each other: a resumed run reloads its own checkpoint");
    if (o->force && o->resume)
        return err_set(e, ERR_ARG, "--force and --resume exclude each other: --force starts the run over");
    if (o->batch < mpictx_size())
        return err_set(e, ERR_ARG, "--batch %d is smaller than the number of ranks %d", o->batch, mpictx_size());
    return 0;
}

/* ---- shuffling ---- */

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* The example order of an epoch, the same on every rank: manifest order,
 * shuffled (unless --no-shuffle) by Fisher-Yates from splitmix64(seed,
 * epoch). 32-bit entries (4 bytes per caption): train_data_open refuses
 * more than UINT32_MAX examples, and the draws are those of 64-bit
 * indices, so the order is the same as with size_t. */
static void epoch_order(uint32_t *perm, size_t n, int shuffle, uint64_t seed, int epoch)
{
    uint64_t s = mix64(seed * 0x9e3779b97f4a7c15ULL + (uint64_t)epoch + 1);
    for (size_t i = 0; i < n; i++) perm[i] = (uint32_t)i;
    for (size_t i = n; shuffle && i > 1; i--) {
        s += 0x9e3779b97f4a7c15ULL;
        size_t j = (size_t)(mix64(s) % i);
        uint32_t t = perm[i - 1];
        perm[i - 1] = perm[j];
        perm[j] = t;
    }
}

/* ---- checkpoints ---- */

typedef struct train_run {
    train_opts o;
    train_data d;
    ops_ctx *ctx;
    clipcap_model m;
    adamw opt;
    long steps_per_epoch, total_steps;
    int epoch;       /* current epoch */
    long in_epoch;   /* steps done in it */
    int gpt2_in_ckpt; /* GPT-2's weights came from a checkpoint, not the --gpt2 dir */
    /* fp16's dynamic loss scale (torch.cuda.amp.GradScaler's rule) and the
     * finite steps since it last changed */
    float loss_scale;
    long scale_good_steps;
} train_run;

#define LOSS_SCALE_INIT 65536.0f
#define LOSS_SCALE_GROWTH_INTERVAL 2000
/* below this the gradients are not finite whatever the scale: a NaN */
#define LOSS_SCALE_MIN 0x1p-24f

static json_t *run_config_json(const train_run *r)
{
    const clipcap_config *c = &r->m.cfg;
    const gpt2_dropout *dr = &r->m.gpt.drop;
    json_t *j = json_pack("{s:s, s:i, s:i, s:i, s:i, s:b, s:b, s:i, s:i, s:f, s:I, s:f, s:I, s:I, s:b}", "mapping",
                     c->mapping == CLIPCAP_MAP_MLP ? "mlp" : "transformer", "clip_dim", c->clip_dim, "prefix_len",
                     c->prefix_len, "clip_len", c->clip_len, "mapper_layers", c->mapper_layers, "freeze_gpt2",
                     c->freeze_gpt2, "ignore_bang", c->ignore_bang, "batch", r->o.batch, "epochs", r->o.epochs, "lr",
                     (double)r->o.lr, "warmup", (json_int_t)r->o.warmup, "weight_decay", (double)r->o.weight_decay,
                     "seed", (json_int_t)r->o.seed, "max_seq_len", (json_int_t)r->d.L, "shuffle", !r->o.no_shuffle);
    /* what else changes the trained model: GPT-2's dropout (0 when frozen),
     * the prefix normalisation, and which CLIP made the embeddings */
    if (j && (json_object_set_new(j, "attn_pdrop", json_real(dr->attn)) ||
              json_object_set_new(j, "resid_pdrop", json_real(dr->resid)) ||
              json_object_set_new(j, "embd_pdrop", json_real(dr->embd)) ||
              json_object_set_new(j, "normalize_prefix", json_boolean(r->o.normalize_prefix)) ||
              json_object_set_new(j, "clip_fingerprint", json_string(r->d.clip_fp)))) {
        json_decref(j);
        j = NULL;
    }
    /* only when not fp32: runs started before --precision existed resume */
    if (j && r->o.precision != OPS_FP32) json_object_set_new(j, "precision", json_string(ops_precision_name(r->o.precision)));
    return j;
}

/* st metadata: every value a string */
static json_t *metadata(const train_run *r)
{
    json_t *cfg = run_config_json(r), *md = json_object();
    const char *k;
    json_t *v;
    json_object_foreach(cfg, k, v)
    {
        char buf[64];
        if (json_is_string(v)) snprintf(buf, sizeof buf, "%s", json_string_value(v));
        else if (json_is_integer(v)) snprintf(buf, sizeof buf, "%lld", (long long)json_integer_value(v));
        else if (json_is_real(v)) snprintf(buf, sizeof buf, "%.9g", json_real_value(v));
        else snprintf(buf, sizeof buf, "%s", json_is_true(v) ? "true" : "false");
        json_object_set_new(md, k, json_string(buf));
    }
    json_decref(cfg);
    char step[32];
    snprintf(step, sizeof step, "%ld", r->opt.step);
    json_object_set_new(md, "step", json_string(step));
    json_object_set_new(md, "format", json_string("clipcap-checkpoint"));
    json_object_set_new(md, "format_version", json_string("1"));
    return md;
}

/* *out = p (backend memory, n floats) readable on the host: p itself on the
 * CPU backend, else a downloaded copy, also returned in *owned for the
 * caller to free. */
static int host_view(train_run *r, const float *p, size_t n, const float **out, float **owned, err_t *e)
{
    *owned = NULL;
    *out = p;
    if (!strcmp(ops_backend_name(r->ctx), "cpu")) return 0;
    if (!(*owned = malloc(n * sizeof(float))))
        return err_set(e, ERR_NOMEM, "downloading %zu floats for the host: out of memory", n);
    ops_download(r->ctx, *owned, p, n);
    *out = *owned;
    return 0;
}

/* The step of a finished checkpoint file name, or -1. */
static long checkpoint_step(const char *name)
{
    long step = -1;
    int end = 0;
    if ((sscanf(name, "model-step-%ld.safetensors%n", &step, &end) == 1 ||
         sscanf(name, "optim-step-%ld.safetensors%n", &step, &end) == 1) &&
        end > 0 && !name[end])
        return step;
    return -1;
}

static int cmp_long_desc(const void *a, const void *b)
{
    long x = *(const long *)a, y = *(const long *)b;
    return (x < y) - (x > y);
}

/* --keep-checkpoints N: after a commit, remove the model and optimiser
 * files of all but the N newest steps. state.json already names the
 * newest, so a kill during the removal loses nothing a resume needs. */
static int prune_checkpoints(const train_run *r, err_t *e)
{
    if (r->o.keep_checkpoints <= 0) return 0;
    DIR *d = opendir(r->o.out);
    if (!d) return err_set(e, ERR_IO, "%s: cannot open: %s", r->o.out, strerror(errno));
    long *steps = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    struct dirent *ent;
    while (!rc && (ent = readdir(d))) {
        long s = checkpoint_step(ent->d_name);
        if (s < 0) continue;
        if (n == cap) {
            long *t = realloc(steps, (cap = cap ? 2 * cap : 64) * sizeof *t);
            if (!t) rc = err_set(e, ERR_NOMEM, "%s: out of memory listing checkpoints", r->o.out);
            else steps = t;
        }
        if (!rc) steps[n++] = s;
    }
    closedir(d);
    if (!rc) qsort(steps, n, sizeof *steps, cmp_long_desc);
    long kept = 0, last = -1;
    for (size_t i = 0; !rc && i < n; i++) {
        if (steps[i] == last) continue; /* the model and the optimiser file of one step */
        last = steps[i];
        if (++kept <= r->o.keep_checkpoints) continue;
        static const char *const kinds[2] = {"model", "optim"};
        for (int k = 0; k < 2 && !rc; k++) {
            char name[64], path[4200];
            snprintf(name, sizeof name, "%s-step-%08ld.safetensors", kinds[k], steps[i]);
            if (!(rc = fs_join(path, sizeof path, r->o.out, name, e)) && unlink(path) && errno != ENOENT)
                rc = err_set(e, ERR_IO, "%s: cannot remove: %s", path, strerror(errno));
        }
    }
    free(steps);
    return rc;
}

static int save_checkpoint(train_run *r, err_t *e)
{
    if (mpictx_rank() != 0) return 0;
    /* a frozen GPT-2 that is not the --gpt2 dir's is part of the model too */
    int tuned = !r->m.cfg.freeze_gpt2 || r->gpt2_in_ckpt;
    int n = clipcap_model_tensor_count(&r->m, tuned);
    st_entry *en = calloc((size_t)n + 1, sizeof *en);
    char (*names)[PARAM_NAME_MAX] = calloc((size_t)n, sizeof *names);
    if (!en || !names) {
        free(en);
        free(names);
        return err_set(e, ERR_NOMEM, "checkpoint: out of memory");
    }
    float *own_p = NULL, *own_m = NULL, *own_v = NULL;
    const float *hp, *hm, *hv;
    int rc = host_view(r, r->m.params, r->m.n_params, &hp, &own_p, e);
    if (!rc) rc = host_view(r, r->opt.m, r->opt.n, &hm, &own_m, e);
    if (!rc) rc = host_view(r, r->opt.v, r->opt.n, &hv, &own_v, e);
    if (rc) {
        free(en);
        free(names);
        free(own_p);
        free(own_m);
        return rc;
    }
    clipcap_model_tensor_entries(&r->m, (float *)hp, tuned, en, names);
    if (tuned) /* the reference's state dict holds the tied head too */
        en[n++] = (st_entry){"gpt.lm_head.weight", (float *)hp + (r->m.gpt.params.wte - r->m.params), 2,
                             {r->m.gpt.cfg.vocab_size, r->m.gpt.cfg.n_embd}};
    char model_name[64], optim_name[64], path[4200];
    snprintf(model_name, sizeof model_name, "model-step-%08ld.safetensors", r->opt.step);
    snprintf(optim_name, sizeof optim_name, "optim-step-%08ld.safetensors", r->opt.step);
    json_t *md = metadata(r);
    rc = fs_join(path, sizeof path, r->o.out, model_name, e);
    if (!rc) rc = st_write(path, en, n, md, e);
    free(en);
    free(names);
    if (!rc) {
        st_entry os[2] = {{"exp_avg", (float *)hm, 1, {(int64_t)r->opt.n}},
                          {"exp_avg_sq", (float *)hv, 1, {(int64_t)r->opt.n}}};
        if (!(rc = fs_join(path, sizeof path, r->o.out, optim_name, e))) rc = st_write(path, os, 2, md, e);
    }
    json_decref(md);
    free(own_p);
    free(own_m);
    free(own_v);
    if (rc) return rc;
    /* the commit point: a crash before this leaves the previous state */
    json_t *state = json_pack("{s:i, s:I, s:i, s:I, s:s, s:s, s:o}", "version", TRAIN_STATE_VERSION, "step",
                              (json_int_t)r->opt.step, "epoch", r->epoch, "step_in_epoch", (json_int_t)r->in_epoch,
                              "model", model_name, "optimizer", optim_name, "config", run_config_json(r));
    if (state && r->o.precision == OPS_FP16) json_object_set_new(state, "loss_scale", json_real(r->loss_scale));
    char *text = json_dumps(state, JSON_INDENT(1) | JSON_SORT_KEYS);
    json_decref(state);
    if (!text) return err_set(e, ERR_NOMEM, "state.json: out of memory");
    if (!(rc = fs_join(path, sizeof path, r->o.out, "state.json", e))) rc = fs_write_atomic(path, text, strlen(text), e);
    free(text);
    if (!rc) log_msg(LOG_INFO, "checkpoint %s/%s (step %ld)", r->o.out, model_name, r->opt.step);
    return rc ? rc : prune_checkpoints(r, e);
}

static int load_into(const char *dir, const char *name, int (*fn)(train_run *, const tensorfile *, err_t *),
                     train_run *r, err_t *e)
{
    char path[4200];
    tensorfile *tf = NULL;
    /* GPT-2 (name NULL): model.safetensors or pytorch_model.bin, as caption reads it */
    int rc = name ? fs_join(path, sizeof path, dir, name, e) : gpt2_open_weights(&tf, dir, path, sizeof path, e);
    if (!rc && name) rc = tensorfile_open(&tf, path, e);
    if (!rc) rc = fn(r, tf, e);
    tensorfile_close(tf);
    return rc;
}

#define CKPT_GPT2 "gpt.transformer."

/* A checkpoint of ours: the mapper, and GPT-2 when tuned or when the run
 * took it from --init (then it is in every checkpoint). */
static int load_model_tensors(train_run *r, const tensorfile *tf, err_t *e)
{
    int rc = clipcap_model_load_mapper(&r->m, tf, e);
    r->gpt2_in_ckpt = tensorfile_find(tf, CKPT_GPT2 "wte.weight") >= 0;
    if (!rc && (!r->m.cfg.freeze_gpt2 || r->gpt2_in_ckpt)) rc = gpt2_load_weights(&r->m.gpt, tf, CKPT_GPT2, e);
    return rc;
}

static int load_optimizer(train_run *r, const tensorfile *tf, err_t *e)
{
    int64_t shape[1] = {(int64_t)r->opt.n};
    float *host = malloc(r->opt.n * sizeof *host);
    if (!host) return err_set(e, ERR_NOMEM, "optimiser state: out of memory");
    int rc = tensorfile_load(tf, "exp_avg", shape, 1, host, e);
    if (!rc) ops_upload(r->ctx, r->opt.m, host, r->opt.n);
    if (!rc) rc = tensorfile_load(tf, "exp_avg_sq", shape, 1, host, e);
    if (!rc) ops_upload(r->ctx, r->opt.v, host, r->opt.n);
    free(host);
    return rc;
}

static int load_gpt2_hub(train_run *r, const tensorfile *tf, err_t *e)
{
    return clipcap_model_load_gpt2(&r->m, tf, e);
}

/* A killed run may have logged steps after its last checkpoint, and maybe
 * half a line: keep the complete lines up to the resumed step, so that
 * log.jsonl ends up with every step once. Rank 0 only. */
static int trim_log(const char *out, long step, err_t *e)
{
    char path[4200];
    int rc = fs_join(path, sizeof path, out, "log.jsonl", e);
    if (rc || !fs_exists(path)) return rc;
    uint8_t *text = NULL;
    size_t len = 0, keep = 0;
    if ((rc = fs_read_all(path, &text, &len, e))) return rc;
    for (size_t at = 0; at < len;) {
        const char *line = (const char *)text + at, *nl = memchr(line, '\n', len - at);
        long s = -1;
        if (!nl || sscanf(line, "{\"step\": %ld,", &s) != 1 || s > step) break;
        at = (size_t)(nl - (const char *)text) + 1;
        keep = at;
    }
    if (keep < len) rc = fs_write_atomic(path, text, keep, e);
    free(text);
    return rc;
}

static int resume(train_run *r, err_t *e)
{
    char path[4200];
    json_t *st = NULL;
    int rc = fs_join(path, sizeof path, r->o.out, "state.json", e);
    if (!rc) rc = json_load_path(&st, path, e);
    if (rc) return rc;
    long long version, step, epoch, in_epoch;
    const char *model, *optim;
    json_t *cfg = NULL;
    if ((rc = json_get_int(st, "version", &version, e)) || (rc = json_get_int(st, "step", &step, e)) ||
        (rc = json_get_int(st, "epoch", &epoch, e)) || (rc = json_get_int(st, "step_in_epoch", &in_epoch, e)) ||
        (rc = json_get_str(st, "model", &model, e)) || (rc = json_get_str(st, "optimizer", &optim, e)) ||
        (rc = json_get_object(st, "config", &cfg, e)))
        goto out;
    if (version != TRAIN_STATE_VERSION) {
        rc = err_set(e, ERR_UNSUPPORTED, "version %lld (this clipcap writes %d)", version, TRAIN_STATE_VERSION);
        goto out;
    }
    json_t *now = run_config_json(r);
    if (!json_equal(now, cfg)) {
        char *a = json_dumps(cfg, JSON_COMPACT | JSON_SORT_KEYS), *b = json_dumps(now, JSON_COMPACT | JSON_SORT_KEYS);
        rc = err_set(e, ERR_ARG, "the run was started with %s, this command has %s", a ? a : "?", b ? b : "?");
        free(a);
        free(b);
    }
    json_decref(now);
    if (rc) goto out;
    if ((rc = load_into(r->o.out, model, load_model_tensors, r, e)) || (rc = load_into(r->o.out, optim, load_optimizer, r, e)))
        goto out;
    double scale;
    if (r->o.precision == OPS_FP16 && !(rc = json_get_real(st, "loss_scale", &scale, e))) r->loss_scale = (float)scale;
    if (rc) goto out;
    r->opt.step = (long)step;
    r->epoch = (int)epoch;
    r->in_epoch = (long)in_epoch;
    log_msg(LOG_INFO, "resuming %s at step %lld (epoch %lld, step %lld of %ld)", r->o.out, step, epoch, in_epoch,
            r->steps_per_epoch);
out:
    json_decref(st);
    if (rc) err_wrap(e, "%s", path);
    return rc;
}

/* ---- --init ---- */

static const char *mapping_name(enum clipcap_mapping m) { return m == CLIPCAP_MAP_MLP ? "MLP" : "Transformer"; }

/* A model flag that was given must equal what the checkpoint's shapes say. */
static int agree(const char *path, const char *tensor, const char *flag, int given, int from_flag, int from_ckpt,
                 err_t *e)
{
    if (!given || from_flag == from_ckpt) return 0;
    return err_set(e, ERR_ARG, "%s: tensor %s means %s %d, but %s %d was given", path, tensor, flag, from_ckpt, flag,
                   from_flag);
}

/* The model configuration for --init: the checkpoint's (shapes as the
 * captioner reads them), checked against the given flags and the store's
 * CLIP size D; the rest (freezing, "!") from the flags. */
static int init_config(const tensorfile *tf, const train_opts *o, const gpt2_config *gc, int D, clipcap_config *cc,
                       int *gpt2_in_ckpt, err_t *e)
{
    clipcap_config got;
    const char *p = o->init;
    /* a GPT-2 of another size is the root cause of any mapper shape that
     * follows from n_embd not fitting: name it first */
    int w = tensorfile_find(tf, CKPT_GPT2 "wte.weight"), nd = 0;
    int64_t s[TENSORFILE_MAX_DIMS];
    if (w >= 0 && (tensorfile_shape(tf, w, s, &nd) || nd != 2))
        return err_set(e, ERR_FORMAT, "%s: tensor " CKPT_GPT2 "wte.weight has %d dimensions, not 2", p, nd);
    if (w >= 0 && (s[0] != gc->vocab_size || s[1] != gc->n_embd))
        return err_set(e, ERR_FORMAT,
                       "%s: tensor " CKPT_GPT2 "wte.weight has shape [%lld, %lld], but %s/config.json says "
                       "vocab_size %d, n_embd %d",
                       p, (long long)s[0], (long long)s[1], o->gpt2, gc->vocab_size, gc->n_embd);
    int rc = captioner_infer_config(tf, p, gc->n_embd, &got, e);
    if (rc) return rc;
    const int mlp = got.mapping == CLIPCAP_MAP_MLP;
    const char *first = mlp ? "clip_project.model.0.weight" : "clip_project.linear.weight";
    const char *prefix = mlp ? "clip_project.model.2.weight" : "clip_project.prefix_const";
    if ((o->given & GIVEN_MAPPING) && o->model.mapping != got.mapping)
        return err_set(e, ERR_ARG, "%s: tensor %s is %s mapper's, but --mapping %s was given", p, first,
                       mlp ? "an MLP" : "a Transformer", mlp ? "transformer" : "mlp");
    if (got.clip_dim != D)
        return err_set(e, ERR_ARG, "%s: tensor %s takes CLIP embeddings of %d, but the store's have %d", p, first,
                       got.clip_dim, D);
    if ((rc = agree(p, prefix, "--prefix-len", o->given & GIVEN_PREFIX, o->model.prefix_len, got.prefix_len, e)))
        return rc;
    cc->mapping = got.mapping;
    cc->clip_dim = D;
    cc->prefix_len = got.prefix_len;
    if (!mlp) {
        if ((rc = agree(p, first, "--clip-len", o->given & GIVEN_CLIP_LEN, o->model.clip_len, got.clip_len, e)) ||
            (rc = agree(p, "clip_project.transformer.layers.N.*", "--mapper-layers", o->given & GIVEN_LAYERS,
                        o->model.mapper_layers, got.mapper_layers, e)))
            return rc;
        cc->clip_len = got.clip_len;
        cc->mapper_layers = got.mapper_layers;
    }
    *gpt2_in_ckpt = !got.freeze_gpt2;
    return 0;
}

/* Is name a buffer of the reference's state dict that holds no weight
 * (GPT-2's tied head, the attention mask buffers of layers < n_layer)? */
static int tolerated(const char *name, int n_layer)
{
    if (!strcmp(name, "gpt.lm_head.weight")) return 1;
    int l, end = 0;
    char what[16];
    if (sscanf(name, CKPT_GPT2 "h.%d.attn.%15[a-z_]%n", &l, what, &end) != 2 || name[end]) return 0;
    return l >= 0 && l < n_layer && (!strcmp(what, "bias") || !strcmp(what, "masked_bias"));
}

/* Every tensor of the --init file must be one the model loads, or a
 * tolerated buffer: anything else (a layer beyond the model's, a
 * misspelt name) means the file is not the model these flags build. */
static int init_check_names(const train_run *r, const tensorfile *tf, err_t *e)
{
    int n = clipcap_model_tensor_count(&r->m, r->gpt2_in_ckpt);
    st_entry *en = calloc((size_t)n, sizeof *en);
    char (*names)[PARAM_NAME_MAX] = calloc((size_t)n, sizeof *names);
    int rc = !en || !names ? err_set(e, ERR_NOMEM, "%s: out of memory for the tensor list", r->o.init) : 0;
    if (!rc) clipcap_model_tensor_entries(&r->m, r->m.params, r->gpt2_in_ckpt, en, names);
    for (int i = 0; !rc && i < tensorfile_count(tf); i++) {
        const char *name = tensorfile_name(tf, i);
        int known = r->gpt2_in_ckpt && tolerated(name, r->m.gpt.cfg.n_layer);
        for (int j = 0; j < n && !known; j++) known = !strcmp(names[j], name);
        if (!known)
            rc = err_set(e, ERR_FORMAT, "%s: tensor %s is not part of this model (%s mapper, prefix %d, %s)",
                         r->o.init, name, mapping_name(r->m.cfg.mapping), r->m.cfg.prefix_len,
                         r->gpt2_in_ckpt ? "GPT-2 from the checkpoint" : "GPT-2 from --gpt2");
    }
    free(en);
    free(names);
    return rc;
}

static int init_load(train_run *r, const tensorfile *tf, err_t *e)
{
    int rc = init_check_names(r, tf, e);
    if (!rc) rc = clipcap_model_load_mapper(&r->m, tf, e);
    if (!rc && r->gpt2_in_ckpt) rc = gpt2_load_weights(&r->m.gpt, tf, CKPT_GPT2, e);
    /* tensorfile's own errors start with the path; the tied-head check's does not */
    if (rc && strncmp(e->msg, r->o.init, strlen(r->o.init))) err_wrap(e, "%s", r->o.init);
    if (!rc)
        log_msg(LOG_INFO, "weights from %s (%s mapper, prefix %d%s)", r->o.init, mapping_name(r->m.cfg.mapping),
                r->m.cfg.prefix_len, r->gpt2_in_ckpt ? ", GPT-2 too" : "");
    return rc;
}

/* ---- the run folder ---- */

/* A run folder holds one run. Training into a used one without --resume
 * would interleave two runs' steps in log.jsonl and leave the old run's
 * later checkpoints next to the new run's, so that "the latest checkpoint"
 * is the wrong model: refused unless --force says to start over. Rank 0. */
static int run_dir_check(const train_opts *o, err_t *e)
{
    size_t n = 0;
    char first[256] = "";
    int rc = o->resume || o->force ? 0 : fs_dir_count(o->out, &n, first, sizeof first, e);
    if (rc || !n) return rc;
    return err_set(e, ERR_ARG,
                   "%s: not empty (%zu entries, e.g. %s): --resume continues the run there, --force starts over "
                   "(removing the checkpoints, state.json and log.jsonl of train)",
                   o->out, n, first);
}

/* What train writes into RUN_DIR, finished or a killed write's NAME.tmp.PID */
static int is_train_output(const char *name)
{
    static const char *const prefixes[] = {"model-step-", "optim-step-", "state.json", "log.jsonl"};
    for (size_t i = 0; i < sizeof prefixes / sizeof *prefixes; i++)
        if (!strncmp(name, prefixes[i], strlen(prefixes[i]))) return 1;
    return 0;
}

/* --force: remove what a previous run wrote (other files stay). Rank 0. */
static int run_dir_clear(const char *out, err_t *e)
{
    DIR *d = opendir(out);
    if (!d) return errno == ENOENT ? 0 : err_set(e, ERR_IO, "%s: cannot open: %s", out, strerror(errno));
    struct dirent *ent;
    int rc = 0;
    size_t removed = 0;
    char path[4200];
    while (!rc && (ent = readdir(d))) {
        if (!is_train_output(ent->d_name)) continue;
        if (!(rc = fs_join(path, sizeof path, out, ent->d_name, e)) && unlink(path))
            rc = err_set(e, ERR_IO, "%s: cannot remove: %s", path, strerror(errno));
        removed++;
    }
    closedir(d);
    if (!rc && removed) log_msg(LOG_INFO, "--force: removed %zu files of a previous run from %s", removed, out);
    return rc;
}

/* ---- the loop ---- */

static int check_weights(train_run *r, err_t *e)
{
    float *own = NULL;
    const float *hp;
    int rc = host_view(r, r->m.params, r->m.n_params, &hp, &own, e);
    if (rc) return rc;
    uint64_t h = hash64(hp, r->m.n_params * sizeof(float)), lo = h, hi = h;
    free(own);
    rc = comm_allreduce(&lo, 1, COMM_U64, COMM_MIN, e);
    if (!rc) rc = comm_allreduce(&hi, 1, COMM_U64, COMM_MAX, e);
    if (!rc && lo != hi) rc = err_set(e, ERR_MPI, "step %ld: the ranks' weights differ (checksums diverged)", r->opt.step);
    return rc;
}

/* The gradient sum overlapped with backward: GPT-2's layer l hands its 12
 * gradient slices over as soon as they are final; each hand-over also lets
 * the earlier ones progress. */
typedef struct grad_sync {
    ops_ctx *ctx;
    const gpt2 *g;
    ops_grad_reducer red;
} grad_sync;

static int start_layer_sum(void *user, int l, err_t *e)
{
    grad_sync *s = user;
    float *ptr[GPT2_LAYER_TENSORS];
    size_t n[GPT2_LAYER_TENSORS];
    gpt2_layer_grads(s->g, l, ptr, n);
    for (int i = 0; i < GPT2_LAYER_TENSORS; i++) {
        int rc = ops_allreduce_start(s->ctx, &s->red, ptr[i], n[i], e);
        if (rc) return rc;
    }
    return ops_allreduce_progress(s->ctx, &s->red, e);
}

/* Backward, then the step's gradients summed over the ranks. */
static int backward_and_sum(train_run *r, grad_sync *s, float scale, err_t *e)
{
    clipcap_model *m = &r->m;
    int rc = clipcap_model_backward(m, scale, e);
    /* frozen GPT-2: only the mapper's gradients, final at the very end */
    if (m->cfg.freeze_gpt2) return rc ? rc : ops_allreduce_sum(r->ctx, m->grads, m->n_trainable, e);
    /* the layers' slices were started during backward; what is left is
     * ln_f (at the end of the buffer) and the mapper, wte and wpe
     * (contiguous at its start, before the stacked layer tensors). The
     * latter has nothing left to overlap with, and the blocking allreduce
     * is the faster algorithm for it (docs/training.md). */
    const gpt2_params *gr = &m->gpt.grads;
    const size_t head = (size_t)(gr->ln1w - m->grads), tail = (size_t)(m->grads + m->n_trainable - gr->lnfw);
    if (!rc) rc = ops_allreduce_start(r->ctx, &s->red, gr->lnfw, tail, e);
    int wrc = ops_allreduce_wait_all(r->ctx, &s->red, e);
    if (!rc) rc = wrc;
    return rc ? rc : ops_allreduce_sum(r->ctx, m->grads, head, e);
}

/* A NaN or infinity would be logged as non-JSON and, through AdamW, poison
 * every weight of the checkpoints that follow: stop before the update.
 * The value is the same on every rank (it is summed over them first), so
 * all ranks stop together. */
static int check_finite(const train_run *r, const char *what, double v, err_t *e)
{
    if (isfinite(v)) return 0;
    return err_set(e, ERR_FORMAT,
                   "step %ld: the %s is %s: training stopped before the update, nothing of this step was saved "
                   "(lower --lr, or check the weights and the store's embeddings)",
                   r->opt.step + 1, what, isnan(v) ? "NaN" : "infinite");
}

static int train_loop(train_run *r, err_t *e)
{
    const train_opts *o = &r->o;
    const train_data *d = &r->d;
    const int rank = mpictx_rank(), size = mpictx_size();
    const int lo = (int)((long)o->batch * rank / size), hi = (int)((long)o->batch * (rank + 1) / size);
    const int nb = hi - lo;
    uint32_t *perm = malloc(d->n_examples * sizeof *perm);
    float *clip = ops_alloc(r->ctx, (size_t)nb * d->D, e);
    float *clip_host = malloc((size_t)nb * d->D * sizeof *clip_host);
    int32_t *tokens = malloc((size_t)nb * d->L * sizeof *tokens);
    FILE *log = NULL;
    char path[4200];
    int rc = 0;
    grad_sync gs = {r->ctx, &r->m.gpt, {NULL, 0, 0}};
    if (!r->m.cfg.freeze_gpt2) {
        r->m.gpt.on_layer_grads = start_layer_sum;
        r->m.gpt.on_layer_user = &gs;
    }
    if (!perm || !clip || !clip_host || !tokens) {
        rc = err_set(e, ERR_NOMEM, "batch buffers: out of memory");
        goto out;
    }
    if (rank == 0) {
        if ((rc = fs_join(path, sizeof path, o->out, "log.jsonl", e))) goto out;
        if (!(log = fopen(path, "a"))) {
            rc = err_set(e, ERR_IO, "%s: cannot open for appending", path);
            goto out;
        }
    }
    long end = o->max_steps > 0 && o->max_steps < r->total_steps ? o->max_steps : r->total_steps;
    progress_t prog;
    progress_start(&prog, "train", "step", (uint64_t)(end > r->opt.step ? end - r->opt.step : 0));
    long start_step = r->opt.step;
    while (r->opt.step < end && r->epoch < o->epochs) {
        if (r->in_epoch >= r->steps_per_epoch) {
            r->epoch++;
            r->in_epoch = 0;
            continue;
        }
        epoch_order(perm, d->n_examples, !o->no_shuffle, o->seed, r->epoch);
        while (r->in_epoch < r->steps_per_epoch && r->opt.step < end) {
            double t0 = clock_now();
            const uint32_t *ex = perm + (size_t)r->in_epoch * o->batch + lo;
            /* loss sum, token count and "a rank failed" in one small allreduce,
             * so that a failing rank never leaves the others waiting */
            double sums[3] = {0, 0, 0};
            long count = 0;
            int frc = train_data_batch(&r->d, ex, nb, clip_host, tokens, e);
            if (!frc) {
                if (o->normalize_prefix) captioner_normalize_prefix(clip_host, clip_host, nb, d->D);
                ops_upload(r->ctx, clip, clip_host, (size_t)nb * d->D);
                /* the masks of step s: the same on any rank count (row0 is
                 * this rank's place in the global batch) and after --resume */
                r->m.gpt.drop.key = mix64(mix64(o->seed ^ 0xD20F0D20F0D20F0DULL) + (uint64_t)r->opt.step + 1);
                r->m.gpt.drop.row0 = lo;
                frc = clipcap_model_forward(&r->m, clip, tokens, nb, d->L, &sums[0], &count, e);
            }
            sums[1] = (double)count;
            sums[2] = frc ? 1.0 : 0.0;
            if ((rc = comm_allreduce(sums, 3, COMM_F64, COMM_SUM, e))) goto out;
            if (sums[2] > 0) {
                rc = frc ? frc : err_set(e, ERR_MPI, "step %ld: another rank failed (see its message)", r->opt.step + 1);
                goto out;
            }
            double loss = sums[1] > 0 ? sums[0] / sums[1] : 0.0;
            if ((rc = check_finite(r, "loss", loss, e))) goto out;
            clipcap_model_zero_grad(&r->m);
            float scale = sums[1] > 0 ? (float)(1.0 / sums[1]) : 0.0f;
            if (o->precision == OPS_FP16) scale *= r->loss_scale;
            if ((rc = backward_and_sum(r, &gs, scale, e))) goto out;
            double gsq = ops_sum_squares(r->ctx, r->m.grads, r->m.n_trainable);
            if (o->precision == OPS_FP16) {
                /* Summed gradients are the same on every rank, and so is
                 * this decision. A step that overflowed fp16 is redone on
                 * the same batch at half the scale. */
                if (!isfinite(gsq)) {
                    r->loss_scale *= 0.5f;
                    r->scale_good_steps = 0;
                    log_msg(LOG_WARN, "step %ld: fp16 gradients overflowed, loss scale now %g", r->opt.step + 1,
                            (double)r->loss_scale);
                    if (r->loss_scale < LOSS_SCALE_MIN) {
                        rc = err_set(e, ERR_INTERNAL, "step %ld: gradients not finite at any loss scale",
                                     r->opt.step + 1);
                        goto out;
                    }
                    continue;
                }
                ops_scale(r->ctx, r->m.grads, 1.0f / r->loss_scale, r->m.n_trainable);
                gsq /= (double)r->loss_scale * r->loss_scale;
                if (++r->scale_good_steps == LOSS_SCALE_GROWTH_INTERVAL) {
                    r->loss_scale *= 2.0f;
                    r->scale_good_steps = 0;
                }
            }
            double gnorm = sqrt(gsq);
            if ((rc = check_finite(r, "gradient norm", gnorm, e))) goto out;
            float lr = adamw_step(&r->opt, r->m.params, r->m.grads);
            r->in_epoch++;
            if (rank == 0) {
                char line[320];
                double dt = clock_now() - t0;
                snprintf(line, sizeof line,
                         "{\"step\": %ld, \"epoch\": %d, \"loss\": %.17g, \"lr\": %.7g, \"grad_norm\": %.7g, "
                         "\"tokens\": %.0f, \"examples\": %d, \"seconds\": %.4f, \"tokens_per_s\": %.1f}\n",
                         r->opt.step, r->epoch, loss, (double)lr, gnorm, sums[1], o->batch, dt,
                         dt > 0 ? sums[1] / dt : 0.0);
                fputs(line, stdout);
                fputs(line, log);
                fflush(stdout);
                fflush(log);
            }
            progress_update(&prog, (uint64_t)(r->opt.step - start_step), 0);
            if (o->check_every > 0 && r->opt.step % o->check_every == 0 && (rc = check_weights(r, e))) goto out;
            if ((o->save_every > 0 && r->opt.step % o->save_every == 0) || r->in_epoch == r->steps_per_epoch ||
                r->opt.step == end) {
                if ((rc = mpictx_agree(save_checkpoint(r, e), e))) goto out;
            }
        }
    }
    progress_finish(&prog);
    rc = check_weights(r, e);
out:
    r->m.gpt.on_layer_grads = NULL;
    r->m.gpt.on_layer_user = NULL;
    ops_grad_reducer_free(&gs.red);
    if (log) fclose(log);
    free(perm);
    ops_free(r->ctx, clip);
    free(clip_host);
    free(tokens);
    return rc;
}

/* The reference pads to max_seq_len = min(mean + 10·std, longest) of the
 * caption lengths, so one huge caption can push it past what GPT-2 can
 * read after the prefix: cap it there, cutting the longer captions as the
 * reference cuts captions longer than max_seq_len. */
static int fit_positions(train_run *r, const gpt2_config *gc, err_t *e)
{
    const int room = gc->n_positions - r->m.cfg.prefix_len;
    if (room < 1)
        return err_set(e, ERR_ARG, "prefix %d leaves no room for a caption in GPT-2's %d positions",
                       r->m.cfg.prefix_len, gc->n_positions);
    if (r->d.L <= room) return 0;
    const int was = r->d.L;
    size_t cut = train_data_cut(&r->d, room);
    log_msg(LOG_WARN,
            "max_seq_len %d%s + prefix %d exceeds GPT-2's %d positions: captions cut to %d tokens (%zu of %zu "
            "captions are longer)",
            was, r->o.max_seq_len ? " (--max-seq-len)" : " (the manifest's)", r->m.cfg.prefix_len, gc->n_positions,
            room, cut, r->d.n_examples);
    return 0;
}

static int train_main(train_opts *o, err_t *e)
{
    train_run r;
    memset(&r, 0, sizeof r);
    r.o = *o;
    tensorfile *init = NULL; /* --init's file, open until its weights are loaded */
    int rc = mpictx_agree(mpictx_rank() == 0 ? run_dir_check(o, e) : 0, e);
    if (rc) return rc;
    rc = train_data_open_len(&r.d, o->manifest, o->splits, o->store, o->max_seq_len, e);
    if (!rc && r.d.n_examples < (size_t)o->batch)
        rc = err_set(e, ERR_ARG, "%zu examples, fewer than one batch of %d", r.d.n_examples, o->batch);
    if ((rc = mpictx_agree(rc, e))) goto out;
    log_msg(LOG_INFO, "%zu captions of %zu images, max_seq_len %d, CLIP dim %d (%.1f MiB of examples in memory)",
            r.d.n_examples, r.d.n_images, r.d.L, r.d.D, (double)train_data_bytes(&r.d) / (1024.0 * 1024.0));

    gpt2_config gc;
    if ((rc = gpt2_config_load(&gc, o->gpt2, e))) goto out;
    clipcap_config cc = o->model;
    cc.clip_dim = r.d.D;
    if (o->init) {
        rc = tensorfile_open(&init, o->init, e);
        if (!rc) rc = init_config(init, o, &gc, r.d.D, &cc, &r.gpt2_in_ckpt, e);
        if ((rc = mpictx_agree(rc, e))) goto out;
    }
    if ((rc = ops_create(&r.ctx, o->threads, e)) || (rc = ops_set_precision(r.ctx, o->precision, e))) goto out;
    r.loss_scale = LOSS_SCALE_INIT;
    if ((rc = clipcap_model_init(&r.m, r.ctx, &cc, &gc, e))) goto out;
    if ((rc = fit_positions(&r, &gc, e))) goto out;
    if (!cc.freeze_gpt2) {
        /* "MLP + GPT-2 tuning" trains GPT-2 in train mode, as the reference */
        gpt2_dropout *dr = &r.m.gpt.drop;
        dr->attn = o->dropout >= 0 ? o->dropout : gc.attn_pdrop;
        dr->resid = o->dropout >= 0 ? o->dropout : gc.resid_pdrop;
        dr->embd = o->dropout >= 0 ? o->dropout : gc.embd_pdrop;
        log_msg(LOG_INFO, "GPT-2 dropout: attn %g, resid %g, embd %g", (double)dr->attn, (double)dr->resid,
                (double)dr->embd);
    }
    if (!r.gpt2_in_ckpt && (rc = load_into(o->gpt2, NULL, load_gpt2_hub, &r, e))) goto out;
    rc = init ? init_load(&r, init, e) : clipcap_model_init_mapper(&r.m, o->seed, e);
    tensorfile_close(init);
    init = NULL;
    if ((rc = mpictx_agree(rc, e))) goto out;
    r.steps_per_epoch = (long)(r.d.n_examples / (size_t)o->batch);
    r.total_steps = r.steps_per_epoch * o->epochs;
    adamw_config ac;
    adamw_config_default(&ac);
    ac.lr = o->lr;
    ac.weight_decay = o->weight_decay;
    ac.warmup_steps = o->warmup;
    ac.total_steps = r.total_steps;
    if ((rc = adamw_init(&r.opt, r.ctx, &ac, r.m.n_trainable, e))) goto out;
    if (mpictx_rank() == 0) rc = fs_mkdirs(o->out, e);
    if (!rc && mpictx_rank() == 0 && o->force) rc = run_dir_clear(o->out, e);
    if ((rc = mpictx_agree(rc, e))) goto out;
    if (o->resume && (rc = mpictx_agree(resume(&r, e), e))) goto out;
    if (o->resume && (rc = mpictx_agree(mpictx_rank() == 0 ? trim_log(o->out, r.opt.step, e) : 0, e))) goto out;
    log_msg(LOG_INFO, "%s mapper, GPT-2 %s: %zu trainable of %zu parameters, %ld steps (%ld per epoch), %s",
            cc.mapping == CLIPCAP_MAP_MLP ? "MLP" : "Transformer", cc.freeze_gpt2 ? "frozen" : "tuned",
            r.m.n_trainable, r.m.n_params, r.total_steps, r.steps_per_epoch, ops_precision_impl(r.ctx));
    rc = mpictx_agree(train_loop(&r, e), e);
out:
    tensorfile_close(init);
    adamw_free(&r.opt);
    clipcap_model_free(&r.m);
    if (r.ctx) ops_destroy(r.ctx);
    train_data_close(&r.d);
    return rc;
}

int stage_train_main(int argc, char **argv)
{
    err_t e = {0};
    train_opts o;
    int rc = train_parse(argc, argv, &o, &e);
    if (rc == 1) return 0;
    if (rc == 0) rc = train_main(&o, &e);
    return rc ? err_report("train", &e) : 0;
}
