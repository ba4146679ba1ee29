#include "run/run_plan.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fsutil.h"
#include "io/json_util.h"

static const char *const stage_names[RUN_N_STAGES] = {"synth", "shard", "extract", "train", "eval", "caption", "report"};
/* Output folders under the run folder (HELPER_RULES' run layout). */
static const char *const stage_dirs[RUN_N_STAGES] = {"data", "manifest", "store", "train", "eval", "captions", ""};

#define BIT(s) (1u << (s))

int run_plan_stage(const char *name)
{
    for (int s = 0; s < RUN_N_STAGES; s++)
        if (!strcmp(name, stage_names[s])) return s;
    return -1;
}

int run_strv_push(run_strv *s, const char *str, err_t *e)
{
    if (s->n + 2 > s->cap) {
        int cap = s->cap ? 2 * s->cap : 16;
        char **v = realloc(s->v, (size_t)cap * sizeof *v);
        if (!v) return err_set(e, ERR_NOMEM, "out of memory");
        s->v = v;
        s->cap = cap;
    }
    if (!(s->v[s->n] = strdup(str))) return err_set(e, ERR_NOMEM, "out of memory");
    s->v[++s->n] = NULL;
    return 0;
}

void run_strv_free(run_strv *s)
{
    for (int i = 0; i < s->n; i++) free(s->v[i]);
    free(s->v);
    memset(s, 0, sizeof *s);
}

void run_plan_free(run_plan *p)
{
    for (int s = 0; s < RUN_N_STAGES; s++) {
        run_strv_free(&p->steps[s].argv);
        run_strv_free(&p->steps[s].inputs);
    }
}

/* What the loader is working on, for error messages. */
typedef struct plan_ctx {
    run_plan *p;
    const char *path;
    err_t *e;
} plan_ctx;

static int fail(plan_ctx *c, const char *section, const char *key, const char *why)
{
    return err_set(c->e, ERR_FORMAT, "%s: %s%s%s: %s", c->path, section, key ? "." : "", key ? key : "", why);
}

/* Unknown keys are errors: a misspelt option would otherwise silently
 * keep its default. */
static int check_keys(plan_ctx *c, const json_t *obj, const char *section, const char *const *allowed)
{
    if (!json_is_object(obj)) return fail(c, section, NULL, "not an object");
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)obj, key, v) {
        int ok = 0;
        for (const char *const *a = allowed; *a && !ok; a++) ok = !strcmp(*a, key);
        if (!ok) return fail(c, section, key, "unknown field (see schemas/run-config.md)");
    }
    return 0;
}

/* s with every "${out}" replaced by the run folder. */
static int expand(plan_ctx *c, const char *s, char *dst, size_t cap)
{
    size_t n = 0;
    static const char var[] = "${out}";
    while (*s) {
        const char *piece = s;
        size_t len = 1;
        if (!strncmp(s, var, sizeof var - 1)) {
            piece = c->p->out;
            len = strlen(c->p->out);
            s += sizeof var - 1;
        } else {
            s++;
        }
        if (n + len >= cap) return err_set(c->e, ERR_ARG, "%s: path too long: %s", c->path, piece);
        memcpy(dst + n, piece, len);
        n += len;
    }
    dst[n] = 0;
    return 0;
}

static int get_str(plan_ctx *c, const json_t *sec, const char *section, const char *key, char *dst, size_t cap)
{
    json_t *v = json_object_get(sec, key);
    if (!v) return 1;
    if (!json_is_string(v) || !*json_string_value(v)) return fail(c, section, key, "not a non-empty string");
    return expand(c, json_string_value(v), dst, cap);
}

/* A present string field as "--flag VALUE" (rc 0); absent: nothing. */
static int opt_str(plan_ctx *c, run_strv *argv, const json_t *sec, const char *section, const char *key,
                   const char *flag)
{
    char buf[4096];
    int rc = get_str(c, sec, section, key, buf, sizeof buf);
    if (rc) return rc < 0 ? rc : 0;
    return run_strv_push(argv, flag, c->e) || run_strv_push(argv, buf, c->e) ? ERR_NOMEM : 0;
}

static int opt_int(plan_ctx *c, run_strv *argv, const json_t *sec, const char *section, const char *key,
                   const char *flag, long long lo, long long hi)
{
    json_t *v = json_object_get(sec, key);
    if (!v) return 0;
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
        char why[96];
        snprintf(why, sizeof why, "not an integer in %lld..%lld", lo, hi);
        return fail(c, section, key, why);
    }
    char buf[32];
    snprintf(buf, sizeof buf, "%lld", (long long)json_integer_value(v));
    return run_strv_push(argv, flag, c->e) || run_strv_push(argv, buf, c->e) ? ERR_NOMEM : 0;
}

static int opt_real(plan_ctx *c, run_strv *argv, const json_t *sec, const char *section, const char *key,
                    const char *flag)
{
    json_t *v = json_object_get(sec, key);
    if (!v) return 0;
    if (!json_is_number(v) || !(json_number_value(v) >= 0)) return fail(c, section, key, "not a number >= 0");
    /* The shortest text that reads back as the same double ("2e-05"). */
    char buf[40];
    for (int digits = 1; digits <= 17; digits++) {
        snprintf(buf, sizeof buf, "%.*g", digits, json_number_value(v));
        if (strtod(buf, NULL) == json_number_value(v)) break;
    }
    return run_strv_push(argv, flag, c->e) || run_strv_push(argv, buf, c->e) ? ERR_NOMEM : 0;
}

/* A boolean field: *out = its value, or dflt when absent. */
static int get_bool(plan_ctx *c, const json_t *sec, const char *section, const char *key, int dflt, int *out)
{
    json_t *v = json_object_get(sec, key);
    if (v && !json_is_boolean(v)) return fail(c, section, key, "not true or false");
    *out = v ? json_is_true(v) : dflt;
    return 0;
}

/* A split list: an array of names or one comma-separated string, as
 * "a,b" into dst ("" when absent). */
static int get_splits(plan_ctx *c, const json_t *sec, const char *section, const char *key, char *dst, size_t cap)
{
    json_t *v = json_object_get(sec, key);
    dst[0] = 0;
    if (!v) return 0;
    if (json_is_string(v)) return get_str(c, sec, section, key, dst, cap);
    if (!json_is_array(v) || !json_array_size(v)) return fail(c, section, key, "not a split name or a list of them");
    size_t i, n = 0;
    json_t *x;
    json_array_foreach(v, i, x) {
        const char *s = json_string_value(x);
        if (!s || !*s || strchr(s, ',')) return fail(c, section, key, "holds something that is not a split name");
        int w = snprintf(dst + n, cap - n, "%s%s", n ? "," : "", s);
        if (w < 0 || (size_t)w >= cap - n) return fail(c, section, key, "too long");
        n += (size_t)w;
    }
    return 0;
}

/* "args": extra flags passed to the stage verbatim, for options this
 * schema does not name. */
static int extra_args(plan_ctx *c, run_strv *argv, const json_t *sec, const char *section)
{
    json_t *v = json_object_get(sec, "args"), *x;
    if (!v) return 0;
    if (!json_is_array(v)) return fail(c, section, "args", "not a list of strings");
    size_t i;
    json_array_foreach(v, i, x) {
        char buf[4096];
        if (!json_is_string(x)) return fail(c, section, "args", "not a list of strings");
        int rc = expand(c, json_string_value(x), buf, sizeof buf);
        if (!rc) rc = run_strv_push(argv, buf, c->e);
        if (rc) return rc;
    }
    return 0;
}

static int push2(plan_ctx *c, run_strv *argv, const char *a, const char *b)
{
    return run_strv_push(argv, a, c->e) || run_strv_push(argv, b, c->e) ? ERR_NOMEM : 0;
}

/* An absent section reads as an empty one. */
static const json_t *section(const json_t *root, const char *key, const json_t *empty)
{
    const json_t *v = json_object_get(root, key);
    return v ? v : empty;
}

static int plan_synth(plan_ctx *c, const json_t *sec)
{
    static const char *const keys[] = {"count", "seed", "layouts", "bad", "square", "args", NULL};
    run_step *st = &c->p->steps[RUN_SYNTH];
    int bad = 0, square = 0, rc = check_keys(c, sec, "synth", keys);
    if (!rc) rc = push2(c, &st->argv, "--out", st->dir);
    /* The run folder's marker makes the folder non-empty; the fingerprint,
     * not synth's emptiness check, guards against mixing data sets. */
    if (!rc) rc = run_strv_push(&st->argv, "--force", c->e);
    if (!rc) rc = opt_int(c, &st->argv, sec, "synth", "count", "--count", 1, 100000000);
    if (!rc) rc = opt_int(c, &st->argv, sec, "synth", "seed", "--seed", 0, INT64_MAX);
    if (!rc) rc = opt_str(c, &st->argv, sec, "synth", "layouts", "--layouts");
    if (!rc) rc = get_bool(c, sec, "synth", "bad", 0, &bad);
    if (!rc && bad) rc = run_strv_push(&st->argv, "--bad", c->e);
    if (!rc) rc = get_bool(c, sec, "synth", "square", 0, &square);
    if (!rc && square) rc = run_strv_push(&st->argv, "--square", c->e);
    /* Only small images: the demo's data set is for learning, not for
     * exercising the decoders on multi-megapixel files. */
    if (!rc) rc = push2(c, &st->argv, "--large", "0");
    return rc ? rc : extra_args(c, &st->argv, sec, "synth");
}

static int plan_shard(plan_ctx *c, const json_t *data, const json_t *models, const char *train_splits,
                      const char *eval_split)
{
    static const char *const keys[] = {"format", "inputs", "images_root", "train_splits", "eval_split",
                                       "annotations", "cc_split", "shards", "args", NULL};
    run_step *st = &c->p->steps[RUN_SHARD];
    char buf[4096];
    int rc = check_keys(c, data, "data", keys);
    if (rc) return rc;
    if (!json_object_get(data, "format")) return fail(c, "data", "format", "missing");
    if (!json_object_get(data, "images_root")) return fail(c, "data", "images_root", "missing");
    if ((rc = opt_str(c, &st->argv, data, "data", "format", "--format")) ||
        (rc = opt_str(c, &st->argv, data, "data", "images_root", "--images-root")))
        return rc;
    json_t *in = json_object_get(data, "inputs"), *x;
    if (in && json_is_string(in)) {
        if ((rc = get_str(c, data, "data", "inputs", buf, sizeof buf)) || (rc = push2(c, &st->argv, "--input", buf)) ||
            (rc = run_strv_push(&st->inputs, buf, c->e)))
            return rc;
    } else if (in) {
        if (!json_is_array(in)) return fail(c, "data", "inputs", "not a path or a list of paths");
        size_t i;
        json_array_foreach(in, i, x) {
            if (!json_is_string(x)) return fail(c, "data", "inputs", "not a list of paths");
            if ((rc = expand(c, json_string_value(x), buf, sizeof buf)) || (rc = push2(c, &st->argv, "--input", buf)) ||
                (rc = run_strv_push(&st->inputs, buf, c->e)))
                return rc;
        }
    }
    if ((rc = get_str(c, models, "models", "tokenizer", buf, sizeof buf)) < 0) return rc;
    if (rc && (rc = get_str(c, models, "models", "gpt2", buf, sizeof buf)) != 0)
        return rc < 0 ? rc : fail(c, "models", "gpt2", "missing (shard tokenises with its vocab.json + merges.txt)");
    if ((rc = push2(c, &st->argv, "--gpt2", buf)) || (rc = run_strv_push(&st->inputs, buf, c->e)) ||
        (rc = push2(c, &st->argv, "--out", st->dir)) ||
        (rc = opt_int(c, &st->argv, data, "data", "shards", "--shards", 1, 100000)) ||
        (rc = opt_str(c, &st->argv, data, "data", "cc_split", "--split")))
        return rc;
    /* The manifest holds what train and eval read, nothing else. */
    if (*train_splits) {
        char keep[600];
        snprintf(keep, sizeof keep, "%s%s%s", train_splits, *eval_split ? "," : "", eval_split);
        if ((rc = push2(c, &st->argv, "--splits", keep))) return rc;
    }
    if (*eval_split && !json_object_get(data, "annotations")) {
        if (strchr(eval_split, ','))
            return fail(c, "data", "eval_split", "several splits need data.annotations (shard writes one split's)");
        if ((rc = fs_join(c->p->annotations, sizeof c->p->annotations, st->dir, "references.json", c->e))) return rc;
        snprintf(buf, sizeof buf, "%s:%s", eval_split, c->p->annotations);
        if ((rc = push2(c, &st->argv, "--write-annotations", buf))) return rc;
    }
    return extra_args(c, &st->argv, data, "data");
}

static int plan_extract(plan_ctx *c, const json_t *sec, const char *clip)
{
    static const char *const keys[] = {"batch", "dtype", "fast_resize", "threads", "args", NULL};
    run_step *st = &c->p->steps[RUN_EXTRACT];
    int fast = 0, rc = check_keys(c, sec, "extract", keys);
    if (!rc && !*clip) rc = fail(c, "models", "clip", "missing (extract needs the CLIP folder)");
    if (!rc) rc = push2(c, &st->argv, "--manifest", c->p->steps[RUN_SHARD].dir);
    if (!rc) rc = push2(c, &st->argv, "--clip", clip);
    if (!rc) rc = run_strv_push(&st->inputs, clip, c->e);
    if (!rc) rc = push2(c, &st->argv, "--store", st->dir);
    if (!rc) rc = opt_int(c, &st->argv, sec, "extract", "batch", "--batch", 1, 1 << 20);
    if (!rc) rc = opt_str(c, &st->argv, sec, "extract", "dtype", "--dtype");
    if (!rc) rc = opt_int(c, &st->argv, sec, "extract", "threads", "--threads", 1, 1024);
    if (!rc) rc = get_bool(c, sec, "extract", "fast_resize", 0, &fast);
    if (!rc && fast) rc = run_strv_push(&st->argv, "--fast-resize", c->e);
    return rc ? rc : extra_args(c, &st->argv, sec, "extract");
}

/* The paper's recipes (CLIPCAP_FACTS.md): MLP mapper with k = 10 and
 * GPT-2 tuned; Transformer mapper with k = clip length = 40, 8 layers and
 * GPT-2 frozen; both AdamW lr 2e-5, 5000 warm-up steps, batch 40, 10
 * epochs, weight decay 0. Every value can be overridden. */
static int plan_train(plan_ctx *c, const json_t *sec, const char *gpt2, const char *train_splits)
{
    static const char *const keys[] = {"mapping", "freeze_gpt2", "prefix_len", "clip_len", "mapper_layers", "batch",
                                       "epochs", "lr", "warmup", "weight_decay", "seed", "max_steps", "save_every",
                                       "threads", "args", NULL};
    run_step *st = &c->p->steps[RUN_TRAIN];
    char mapping[32];
    int rc = check_keys(c, sec, "recipe", keys);
    if (rc) return rc;
    if ((rc = get_str(c, sec, "recipe", "mapping", mapping, sizeof mapping)) != 0)
        return rc < 0 ? rc : fail(c, "recipe", "mapping", "missing (mlp or transformer)");
    int tr = !strcmp(mapping, "transformer");
    if (!tr && strcmp(mapping, "mlp")) return fail(c, "recipe", "mapping", "neither mlp nor transformer");
    if (!*gpt2) return fail(c, "models", "gpt2", "missing (train needs the GPT-2 folder)");
    int freeze = 0;
    if ((rc = get_bool(c, sec, "recipe", "freeze_gpt2", tr, &freeze))) return rc;
    json_t *paper = json_pack("{s:i, s:i, s:i, s:i, s:i, s:f, s:i, s:f}", "prefix_len", tr ? 40 : 10, "clip_len",
                              tr ? 40 : 10, "mapper_layers", 8, "batch", 40, "epochs", 10, "lr", 2e-5, "warmup", 5000,
                              "weight_decay", 0.0);
    if (!paper) return err_set(c->e, ERR_NOMEM, "out of memory");
    if (json_object_update(paper, (json_t *)sec)) {
        json_decref(paper);
        return err_set(c->e, ERR_NOMEM, "out of memory");
    }
    if (!(rc = push2(c, &st->argv, "--manifest", c->p->steps[RUN_SHARD].dir)) &&
        !(rc = push2(c, &st->argv, "--store", c->p->steps[RUN_EXTRACT].dir)) &&
        !(rc = push2(c, &st->argv, "--gpt2", gpt2)) && !(rc = run_strv_push(&st->inputs, gpt2, c->e)) &&
        !(rc = push2(c, &st->argv, "--mapping", mapping)) && !(rc = push2(c, &st->argv, "--out", st->dir)) &&
        !(rc = freeze ? run_strv_push(&st->argv, "--freeze-gpt2", c->e) : 0) &&
        !(rc = *train_splits ? push2(c, &st->argv, "--splits", train_splits) : 0) &&
        !(rc = opt_int(c, &st->argv, paper, "recipe", "prefix_len", "--prefix-len", 1, 4096)) &&
        !(rc = tr ? opt_int(c, &st->argv, paper, "recipe", "clip_len", "--clip-len", 1, 4096) : 0) &&
        !(rc = tr ? opt_int(c, &st->argv, paper, "recipe", "mapper_layers", "--mapper-layers", 1, 256) : 0) &&
        !(rc = opt_int(c, &st->argv, paper, "recipe", "batch", "--batch", 1, 1 << 20)) &&
        !(rc = opt_int(c, &st->argv, paper, "recipe", "epochs", "--epochs", 1, 1 << 20)) &&
        !(rc = opt_real(c, &st->argv, paper, "recipe", "lr", "--lr")) &&
        !(rc = opt_int(c, &st->argv, paper, "recipe", "warmup", "--warmup", 0, INT64_MAX)) &&
        !(rc = opt_real(c, &st->argv, paper, "recipe", "weight_decay", "--weight-decay")) &&
        !(rc = opt_int(c, &st->argv, paper, "recipe", "seed", "--seed", 0, INT64_MAX)) &&
        !(rc = opt_int(c, &st->argv, paper, "recipe", "max_steps", "--max-steps", 1, INT64_MAX)) &&
        !(rc = opt_int(c, &st->argv, paper, "recipe", "save_every", "--save-every", 1, INT64_MAX)) &&
        !(rc = opt_int(c, &st->argv, paper, "recipe", "threads", "--threads", 1, 1024)))
        rc = extra_args(c, &st->argv, sec, "recipe");
    json_decref(paper);
    return rc;
}

/* Options eval and caption share. */
static int decode_opts(plan_ctx *c, run_strv *argv, const json_t *sec, const char *name)
{
    int rc = push2(c, argv, "--manifest", c->p->steps[RUN_SHARD].dir);
    if (!rc) rc = push2(c, argv, "--store", c->p->steps[RUN_EXTRACT].dir);
    if (!rc) rc = push2(c, argv, "--gpt2", c->p->gpt2);
    if (!rc) rc = opt_int(c, argv, sec, name, "beam", "--beam", 1, 1024);
    if (!rc) rc = opt_int(c, argv, sec, name, "max_tokens", "--max-tokens", 1, 1 << 20);
    if (!rc) rc = opt_int(c, argv, sec, name, "batch", "--batch", 1, 1 << 20);
    if (!rc) rc = opt_int(c, argv, sec, name, "threads", "--threads", 1, 1024);
    return rc;
}

static int plan_eval(plan_ctx *c, const json_t *sec, const json_t *data, const char *eval_split)
{
    static const char *const keys[] = {"beam", "max_tokens", "batch", "threads", "examples", "args", NULL};
    run_step *st = &c->p->steps[RUN_EVAL];
    char results[4096];
    int rc = check_keys(c, sec, "eval", keys);
    if (rc) return rc;
    if (!*eval_split) return fail(c, "data", "eval_split", "missing (eval needs the held-out split)");
    if ((rc = get_str(c, data, "data", "annotations", c->p->annotations, sizeof c->p->annotations)) < 0) return rc;
    if (!rc && (rc = run_strv_push(&st->inputs, c->p->annotations, c->e))) return rc;
    json_t *ex = json_object_get(sec, "examples");
    if (ex && (!json_is_integer(ex) || json_integer_value(ex) < 0 || json_integer_value(ex) > 1000))
        return fail(c, "eval", "examples", "not an integer in 0..1000");
    c->p->examples = ex ? (int)json_integer_value(ex) : 5;
    if ((rc = fs_join(results, sizeof results, st->dir, "results.json", c->e)) || (rc = decode_opts(c, &st->argv, sec, "eval")) ||
        (rc = push2(c, &st->argv, "--split", eval_split)) || (rc = push2(c, &st->argv, "--annotations", c->p->annotations)) ||
        (rc = push2(c, &st->argv, "--results", results)) || (rc = run_strv_push(&st->argv, "--per-image", c->e)) ||
        (rc = run_strv_push(&st->argv, "--skip-failed", c->e)))
        return rc;
    return extra_args(c, &st->argv, sec, "eval");
}

static int plan_caption(plan_ctx *c, const json_t *sec)
{
    static const char *const keys[] = {"splits", "beam", "max_tokens", "batch", "threads", "args", NULL};
    run_step *st = &c->p->steps[RUN_CAPTION];
    char splits[512];
    int rc = check_keys(c, sec, "caption", keys);
    if (!rc) rc = get_splits(c, sec, "caption", "splits", splits, sizeof splits);
    if (!rc) rc = decode_opts(c, &st->argv, sec, "caption");
    if (!rc) rc = push2(c, &st->argv, "--out", st->dir);
    if (!rc && *splits) rc = push2(c, &st->argv, "--splits", splits);
    return rc ? rc : extra_args(c, &st->argv, sec, "caption");
}

/* Which stages the config runs: "stages" if given, else every stage its
 * sections make possible. */
static int plan_enabled(plan_ctx *c, const json_t *root, int has_eval)
{
    run_plan *p = c->p;
    json_t *list = json_object_get(root, "stages"), *x;
    if (!list) {
        p->steps[RUN_SYNTH].enabled = json_object_get(root, "synth") != NULL;
        p->steps[RUN_SHARD].enabled = p->steps[RUN_EXTRACT].enabled = 1;
        int train = json_object_get(root, "recipe") != NULL;
        p->steps[RUN_TRAIN].enabled = p->steps[RUN_CAPTION].enabled = p->steps[RUN_REPORT].enabled = train;
        p->steps[RUN_EVAL].enabled = train && has_eval;
        return 0;
    }
    if (!json_is_array(list) || !json_array_size(list)) return fail(c, "stages", NULL, "not a list of stage names");
    size_t i;
    json_array_foreach(list, i, x) {
        int s = json_is_string(x) ? run_plan_stage(json_string_value(x)) : -1;
        if (s < 0) return fail(c, "stages", NULL, "holds something that is not synth, shard, extract, train, eval, caption or report");
        p->steps[s].enabled = 1;
    }
    return 0;
}

int run_plan_load(run_plan *p, const char *config_path, const char *out_override, err_t *e)
{
    memset(p, 0, sizeof *p);
    plan_ctx c = {p, config_path, e};
    json_t *root = NULL, *empty = json_object();
    if (!empty) return err_set(e, ERR_NOMEM, "out of memory");
    int rc = json_load_path(&root, config_path, e);
    if (rc) {
        json_decref(empty);
        return rc;
    }
    static const char *const keys[] = {"version", "description", "out", "stages", "synth", "data", "models",
                                       "extract", "recipe", "eval", "caption", NULL};
    static const char *const model_keys[] = {"clip", "gpt2", "tokenizer", NULL};
    long long version = 0;
    char clip[4096] = "", gpt2[4096] = "", tok[4096] = "", train_splits[512] = "", eval_split[512] = "";
    const json_t *data = section(root, "data", empty), *models = section(root, "models", empty);
    if ((rc = check_keys(&c, root, "config", keys))) goto done;
    if (json_get_int(root, "version", &version, e) || version != RUN_PLAN_VERSION) {
        rc = err_set(e, ERR_FORMAT, "%s: version: must be %d (the schema version this clipcap reads)", config_path,
                     RUN_PLAN_VERSION);
        goto done;
    }
    if (out_override) {
        if (snprintf(p->out, sizeof p->out, "%s", out_override) >= (int)sizeof p->out) rc = fail(&c, "out", NULL, "too long");
    } else if ((rc = get_str(&c, root, "config", "out", p->out, sizeof p->out)) > 0) {
        rc = fail(&c, "config", "out", "missing (the run folder; or give --out)");
    }
    if (rc) goto done;
    for (int s = 0; s < RUN_N_STAGES && !rc; s++) {
        p->steps[s].name = stage_names[s];
        rc = *stage_dirs[s] ? fs_join(p->steps[s].dir, sizeof p->steps[s].dir, p->out, stage_dirs[s], e)
                            : fs_join(p->steps[s].dir, sizeof p->steps[s].dir, p->out, "", e);
        if (!rc) rc = run_strv_push(&p->steps[s].argv, stage_names[s], e);
    }
    if (rc || (rc = check_keys(&c, models, "models", model_keys)) < 0) goto done;
    if ((rc = get_str(&c, models, "models", "clip", clip, sizeof clip)) < 0 ||
        (rc = get_str(&c, models, "models", "gpt2", gpt2, sizeof gpt2)) < 0 ||
        (rc = get_str(&c, models, "models", "tokenizer", tok, sizeof tok)) < 0 ||
        (rc = get_splits(&c, data, "data", "train_splits", train_splits, sizeof train_splits)) ||
        (rc = get_splits(&c, data, "data", "eval_split", eval_split, sizeof eval_split)))
        goto done;
    /* caption and eval read GPT-2 and its tokenizer from one folder; a
     * separate tokenizer is joined with the model there (stage_run). */
    snprintf(p->gpt2_model, sizeof p->gpt2_model, "%s", gpt2);
    snprintf(p->tokenizer, sizeof p->tokenizer, "%s", *tok ? tok : gpt2);
    if (*tok && strcmp(tok, gpt2)) rc = fs_join(p->gpt2, sizeof p->gpt2, p->out, "gpt2", e);
    else snprintf(p->gpt2, sizeof p->gpt2, "%s", gpt2);
    if (rc || (rc = plan_enabled(&c, root, *eval_split != 0))) goto done;
    p->steps[RUN_SHARD].deps = BIT(RUN_SYNTH);
    p->steps[RUN_EXTRACT].deps = BIT(RUN_SHARD);
    p->steps[RUN_TRAIN].deps = BIT(RUN_SHARD) | BIT(RUN_EXTRACT);
    p->steps[RUN_EVAL].deps = p->steps[RUN_CAPTION].deps = BIT(RUN_SHARD) | BIT(RUN_EXTRACT) | BIT(RUN_TRAIN);
    if (p->steps[RUN_SYNTH].enabled && (rc = plan_synth(&c, section(root, "synth", empty)))) goto done;
    if ((rc = plan_shard(&c, data, models, train_splits, eval_split))) goto done;
    if (p->steps[RUN_EXTRACT].enabled && (rc = plan_extract(&c, section(root, "extract", empty), clip))) goto done;
    if ((p->steps[RUN_TRAIN].enabled || p->steps[RUN_EVAL].enabled || p->steps[RUN_CAPTION].enabled) &&
        (rc = plan_train(&c, section(root, "recipe", empty), gpt2, train_splits)))
        goto done;
    if (p->steps[RUN_EVAL].enabled && (rc = plan_eval(&c, section(root, "eval", empty), data, eval_split))) goto done;
    if (p->steps[RUN_CAPTION].enabled) rc = plan_caption(&c, section(root, "caption", empty));
    char html[4096];
    if (!rc) rc = fs_join(html, sizeof html, p->out, "report.html", e);
    if (!rc) rc = run_strv_push(&p->steps[RUN_REPORT].argv, p->out, e) || push2(&c, &p->steps[RUN_REPORT].argv, "--out", html);
done:
    json_decref(root);
    json_decref(empty);
    if (rc) run_plan_free(p);
    return rc;
}
