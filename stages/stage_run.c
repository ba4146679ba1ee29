/* `clipcap run CONFIG`: a user's whole run in one command. The config
 * (schemas/run-config.md, common/run/run_plan.h) names the data, the
 * models, the recipe and the run folder; the stages run in-process, in
 * order, under the launch this command got (alone or `mpirun -np N`):
 * synth? → shard → extract → train → eval → caption → report.
 *
 * Each stage is called through its argv interface, exactly as from the
 * shell, so the stages need not know about run. What in-process calling
 * needs: getopt is re-initialised before each stage (GNU: optind = 0), MPI
 * is initialised once by the dispatcher, no stage exits or finalises MPI,
 * and a stage's stdout goes to a file in the run folder (eval's is its
 * scores.json) so that run's own progress and summary stay readable.
 *
 * Skipping and resuming: each stage's output folder holds
 * .clipcap-run.json {version, stage, fingerprint, complete, argv}. The
 * fingerprint is XXH3-64 over the stage's argv, the identity (path, size,
 * mtime) of the files it reads, and the fingerprints of the stages it
 * reads from. Complete with the same fingerprint: skipped. Present but
 * incomplete with the same fingerprint: run again, which resumes (extract
 * and caption skip finished work, train gets --resume). Another
 * fingerprint: shard, extract and eval run again (shard rewrites the
 * manifest and commits index.json last, the store is incremental, eval
 * rewrites its files: the nightly re-extraction relies on this); any
 * other stage stops the run with the folder named, since redoing it would
 * mix two configurations' outputs. */
#include "core/comm.h"
#include "core/fsutil.h"
#include "core/log.h"
#include "core/mpictx.h"
#include "core/progress.h"
#include "io/json_util.h"
#include "run/run_plan.h"
#include "run/run_summary.h"
#include "stage_table.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const char stage_run_summary[] = "run shard, extract, train, eval and caption from one config file (a whole run)";

#define RUN_MARKER ".clipcap-run.json"
#define RUN_MARKER_VERSION 1

static void run_usage(FILE *out)
{
    fprintf(out,
            "usage: clipcap run CONFIG.json [--out DIR] [--only STAGE | --from STAGE] [--dry-run]\n"
            "       mpirun -np N clipcap run CONFIG.json ...\n\n"
            "Runs the stages a config names (schemas/run-config.md), in order, each as its\n"
            "subcommand would run under this launch:\n"
            "  synth    (when the config has \"synth\") the synthetic data set -> OUT/data/\n"
            "  shard    the data set -> OUT/manifest/ (+ references.json of the eval split)\n"
            "  extract  CLIP embeddings -> OUT/store/\n"
            "  train    the recipe (mlp: MLP + GPT-2 tuned; transformer: Transformer +\n"
            "           GPT-2 frozen; the paper's settings unless overridden) -> OUT/train/\n"
            "  eval     caption the eval split, score it, and score a shuffled-captions\n"
            "           control (other images' captions against each image's references)\n"
            "           -> OUT/eval/ (results.json, scores.json, control-*.json)\n"
            "  caption  caption dump of the manifest -> OUT/captions/\n"
            "  report   OUT/report.html, when this clipcap has the report stage\n"
            "A stage whose folder says it completed with the same inputs and options\n"
            "(a fingerprint in DIR/" RUN_MARKER ") is skipped; an interrupted one resumes.\n"
            "Each stage's stdout goes to OUT/logs/STAGE.out; its progress stays on stderr.\n\n"
            "options:\n"
            "  --out DIR      run folder (overrides the config's \"out\")\n"
            "  --only STAGE   run just this stage (the ones it reads must be complete)\n"
            "  --from STAGE   run this stage and the ones after it\n"
            "  --dry-run      print each stage's state and command line, run nothing\n"
            "  -h, --help     this help\n\n"
            "examples:\n"
            "  clipcap run launch/examples/demo.json\n"
            "  mpirun -np 8 clipcap run launch/examples/coco-karpathy.json --out runs/coco\n"
            "  clipcap run launch/examples/coco-karpathy.json --from eval\n");
}

typedef struct run_opts {
    const char *config, *out;
    int only, from, dry_run;
} run_opts;

/* 0 = run, 1 = help printed, <0 = usage error */
static int run_parse(int argc, char **argv, run_opts *o, err_t *e)
{
    static const struct option longopts[] = {
        {"out", required_argument, 0, 'o'},  {"only", required_argument, 0, 'O'}, {"from", required_argument, 0, 'f'},
        {"dry-run", no_argument, 0, 'n'},    {"help", no_argument, 0, 'h'},       {0, 0, 0, 0}};
    memset(o, 0, sizeof *o);
    o->only = o->from = -1;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'o': o->out = optarg; break;
        case 'O':
        case 'f': {
            int s = run_plan_stage(optarg);
            if (s < 0) return err_set(e, ERR_ARG, "--%s: unknown stage '%s' (synth, shard, extract, train, eval, caption, report)",
                                      c == 'O' ? "only" : "from", optarg);
            *(c == 'O' ? &o->only : &o->from) = s;
            break;
        }
        case 'n': o->dry_run = 1; break;
        case 'h': run_usage(stdout); return 1;
        default: return err_set(e, ERR_ARG, "unknown or incomplete option '%s' (try --help)", argv[optind - 1]);
        }
    }
    if (optind + 1 != argc) return err_set(e, ERR_ARG, "expected one CONFIG file (try --help)");
    if (o->only >= 0 && o->from >= 0) return err_set(e, ERR_ARG, "--only and --from exclude each other");
    o->config = argv[optind];
    return 0;
}

static const struct stage_entry *stage_lookup(const char *name)
{
    for (const struct stage_entry *s = stage_table; s->name; s++)
        if (!strcmp(s->name, name)) return s;
    return NULL;
}

/* ------------------------------------------------------------ fingerprints */

typedef struct fp_text {
    char *b;
    size_t len, cap;
    int oom;
} fp_text;

static void fp_add(fp_text *t, const char *s)
{
    size_t n = strlen(s) + 1; /* with the NUL, so "ab","c" differs from "a","bc" */
    if (t->oom) return;
    if (t->len + n > t->cap) {
        size_t c = t->cap ? t->cap : 1024;
        while (c < t->len + n) c *= 2;
        char *b = realloc(t->b, c);
        if (!b) {
            t->oom = 1;
            return;
        }
        t->b = b;
        t->cap = c;
    }
    memcpy(t->b + t->len, s, n);
    t->len += n;
}

/* A file's identity: path, size, mtime. A folder (a model) adds its model
 * files; a missing path adds "missing", so the fingerprint changes when it
 * appears. Image folders are not walked: extract hashes image bytes. */
static void fp_add_path(fp_text *t, const char *path)
{
    static const char *const model_files[] = {"config.json", "model.safetensors", "pytorch_model.bin",
                                              "vocab.json", "merges.txt", NULL};
    struct stat st;
    char line[4200];
    if (stat(path, &st) != 0) {
        snprintf(line, sizeof line, "%s missing", path);
        fp_add(t, line);
        return;
    }
    if (S_ISDIR(st.st_mode)) {
        for (const char *const *m = model_files; *m; m++) {
            snprintf(line, sizeof line, "%s/%s", path, *m);
            if (fs_exists(line)) fp_add_path(t, line);
        }
        return;
    }
    snprintf(line, sizeof line, "%s %lld %lld.%09ld", path, (long long)st.st_size, (long long)st.st_mtim.tv_sec,
             st.st_mtim.tv_nsec);
    fp_add(t, line);
}

static int step_fingerprint(const run_step *st, const uint64_t *fps, uint64_t *out, err_t *e)
{
    fp_text t = {0};
    char num[32];
    fp_add(&t, "clipcap-run-v1");
    for (int i = 0; i < st->argv.n; i++) fp_add(&t, st->argv.v[i]);
    for (int i = 0; i < st->inputs.n; i++) fp_add_path(&t, st->inputs.v[i]);
    for (int d = 0; d < RUN_N_STAGES; d++)
        if (st->deps & (1u << d)) {
            snprintf(num, sizeof num, "%016llx", (unsigned long long)fps[d]);
            fp_add(&t, num);
        }
    int rc = t.oom ? err_set(e, ERR_NOMEM, "fingerprint of %s: out of memory", st->name) : 0;
    if (!rc) *out = hash64(t.b, t.len);
    free(t.b);
    return rc;
}

/* ------------------------------------------------------------ markers */

enum marker_state { MARK_NONE, MARK_DONE, MARK_PARTIAL, MARK_OTHER };
static const char *const marker_words[] = {"new", "complete", "interrupted", "another configuration"};

static int marker_path(const run_step *st, char *path, size_t cap, err_t *e)
{
    return fs_join(path, cap, st->dir, RUN_MARKER, e);
}

/* The state of st's folder for fingerprint fp; *found_fp = the marker's. */
static int marker_read(const run_step *st, uint64_t fp, enum marker_state *state, uint64_t *found_fp, err_t *e)
{
    char path[4200];
    json_t *m = NULL;
    const char *hex;
    int complete = 0, rc = marker_path(st, path, sizeof path, e);
    *state = MARK_NONE;
    *found_fp = 0;
    if (rc || !fs_exists(path)) return rc;
    if ((rc = json_load_path(&m, path, e))) return rc;
    if ((rc = json_get_str(m, "fingerprint", &hex, e)) || (rc = json_get_bool(m, "complete", &complete, e))) {
        json_decref(m);
        return err_wrap(e, "%s", path);
    }
    *found_fp = strtoull(hex, NULL, 16);
    *state = *found_fp != fp ? MARK_OTHER : complete ? MARK_DONE : MARK_PARTIAL;
    json_decref(m);
    return 0;
}

static int marker_write(const run_step *st, uint64_t fp, int complete, err_t *e)
{
    char path[4200], hex[32];
    snprintf(hex, sizeof hex, "%016llx", (unsigned long long)fp);
    json_t *argv = json_array();
    for (int i = 0; argv && i < st->argv.n; i++) json_array_append_new(argv, json_string(st->argv.v[i]));
    json_t *m = json_pack("{s:i, s:s, s:s, s:b, s:o}", "version", RUN_MARKER_VERSION, "stage", st->name, "fingerprint",
                          hex, "complete", complete, "argv", argv);
    char *text = m ? json_dumps(m, JSON_INDENT(1) | JSON_PRESERVE_ORDER) : NULL;
    json_decref(m);
    if (!text) return err_set(e, ERR_NOMEM, "%s: out of memory", RUN_MARKER);
    int rc = fs_mkdirs(st->dir, e);
    if (!rc) rc = marker_path(st, path, sizeof path, e);
    if (!rc) rc = fs_write_atomic(path, text, strlen(text), e);
    free(text);
    return rc;
}

/* ------------------------------------------------------------ running a stage */

/* The checkpoint train committed last (its state.json names it). */
static int trained_model(const run_plan *p, char *out, size_t cap, err_t *e)
{
    char path[4200];
    json_t *st = NULL;
    const char *model;
    int rc = fs_join(path, sizeof path, p->steps[RUN_TRAIN].dir, "state.json", e);
    if (!rc) rc = json_load_path(&st, path, e);
    if (!rc && json_get_str(st, "model", &model, e)) rc = err_wrap(e, "%s", path);
    if (!rc) rc = fs_join(out, cap, p->steps[RUN_TRAIN].dir, model, e);
    json_decref(st);
    return rc ? err_wrap(e, "the trained model (run the train stage first)") : 0;
}

/* caption and eval read GPT-2's weights and tokenizer from one folder:
 * when the config names a separate tokenizer, OUT/gpt2 links both. */
static int join_gpt2(const run_plan *p, err_t *e)
{
    static const char *const files[][2] = {{"config.json", "m"}, {"model.safetensors", "m"}, {"pytorch_model.bin", "m"},
                                           {"vocab.json", "t"},   {"merges.txt", "t"}};
    if (!strcmp(p->gpt2, p->gpt2_model)) return 0;
    int rc = fs_mkdirs(p->gpt2, e);
    for (size_t i = 0; i < sizeof files / sizeof files[0] && !rc; i++) {
        char src[4200], abs_src[PATH_MAX], dst[4200];
        const char *from = files[i][1][0] == 'm' ? p->gpt2_model : p->tokenizer;
        if ((rc = fs_join(src, sizeof src, from, files[i][0], e)) || (rc = fs_join(dst, sizeof dst, p->gpt2, files[i][0], e)))
            break;
        if (!realpath(src, abs_src)) continue; /* e.g. no pytorch_model.bin */
        if (unlink(dst) != 0 && errno != ENOENT) rc = err_set(e, ERR_IO, "%s: cannot replace: %s", dst, strerror(errno));
        else if (symlink(abs_src, dst) != 0) rc = err_set(e, ERR_IO, "%s: cannot link to %s: %s", dst, abs_src, strerror(errno));
    }
    return rc;
}

/* Calls stage name with argv (copied: getopt permutes it), stdout going to
 * stdout_path on rank 0 (elsewhere to /dev/null). */
static int call_stage(const char *name, const run_strv *argv, const char *stdout_path, err_t *e)
{
    const struct stage_entry *entry = stage_lookup(name);
    if (!entry) return err_set(e, ERR_INTERNAL, "this clipcap has no '%s' stage", name);
    char **v = calloc((size_t)argv->n + 1, sizeof *v);
    if (!v) return err_set(e, ERR_NOMEM, "out of memory");
    memcpy(v, argv->v, (size_t)argv->n * sizeof *v);
    const char *to = mpictx_rank() == 0 ? stdout_path : "/dev/null";
    fflush(stdout);
    int saved = dup(STDOUT_FILENO), fd = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (saved < 0 || fd < 0 || dup2(fd, STDOUT_FILENO) < 0) {
        int err = errno;
        if (fd >= 0) close(fd);
        if (saved >= 0) close(saved);
        free(v);
        return err_set(e, ERR_IO, "%s: cannot open for the %s stage's output: %s", to, name, strerror(err));
    }
    close(fd);
    optind = 0; /* GNU getopt: re-initialise, the previous stage's scan is over */
    int rc = entry->main(argv->n, v);
    fflush(stdout);
    dup2(saved, STDOUT_FILENO);
    close(saved);
    free(v);
    if (rc) return err_set(e, ERR_ARG, "the %s stage failed (exit status %d; its messages are above)", name, rc);
    return 0;
}

/* eval's extra step: the shuffled-captions control, scored like eval. */
static int eval_control(const run_plan *p, err_t *e)
{
    const char *dir = p->steps[RUN_EVAL].dir;
    char results[4200], control[4200], scores[4200];
    int rc = fs_join(results, sizeof results, dir, "results.json", e);
    if (!rc) rc = fs_join(control, sizeof control, dir, "control-results.json", e);
    if (!rc) rc = fs_join(scores, sizeof scores, dir, "control-scores.json", e);
    if (!rc && mpictx_rank() == 0) rc = run_control_write(results, control, e);
    rc = mpictx_agree(rc, e);
    run_strv argv = {0};
    if (!rc && (run_strv_push(&argv, "score", e) || run_strv_push(&argv, "--results", e) ||
                run_strv_push(&argv, control, e) || run_strv_push(&argv, "--annotations", e) ||
                run_strv_push(&argv, p->annotations, e) || run_strv_push(&argv, "--subset", e)))
        rc = ERR_NOMEM;
    if (!rc) rc = call_stage("score", &argv, scores, e);
    run_strv_free(&argv);
    return rc;
}

static int run_one(const run_plan *p, int s, enum marker_state state, uint64_t fp, err_t *e)
{
    const run_step *st = &p->steps[s];
    run_strv argv = {0};
    char path[4200], logs[4200];
    int rc = 0;
    for (int i = 0; i < st->argv.n && !rc; i++) rc = run_strv_push(&argv, st->argv.v[i], e);
    if (!rc && (s == RUN_EVAL || s == RUN_CAPTION)) {
        rc = trained_model(p, path, sizeof path, e);
        if (!rc && (run_strv_push(&argv, "--model", e) || run_strv_push(&argv, path, e))) rc = ERR_NOMEM;
        if (!rc && mpictx_rank() == 0) rc = join_gpt2(p, e);
    }
    if (!rc && s == RUN_TRAIN) {
        /* train refuses a used folder unless told to --resume (a commit
         * exists) or to start over (--force: only this config's marker and
         * an uncommitted start are there). A folder with no marker of ours
         * is not ours to clear. */
        rc = fs_join(path, sizeof path, st->dir, "state.json", e);
        if (!rc) rc = run_strv_push(&argv, state == MARK_PARTIAL && fs_exists(path) ? "--resume" : "--force", e);
    }
    /* every rank has looked at the folder before rank 0 writes the marker */
    rc = mpictx_agree(rc, e);
    if (!rc && mpictx_rank() == 0) {
        size_t n = 0;
        if (state == MARK_NONE && !(rc = fs_dir_count(st->dir, &n, NULL, 0, e)) && n && s == RUN_TRAIN)
            rc = err_set(e, ERR_ARG, "%s: not empty and not made by clipcap run; remove it or choose another run folder",
                         st->dir);
        if (!rc) rc = fs_join(logs, sizeof logs, p->out, "logs", e);
        if (!rc) rc = fs_mkdirs(logs, e);
        if (!rc && s != RUN_REPORT) rc = marker_write(st, fp, 0, e);
    }
    rc = mpictx_agree(rc, e);
    if (!rc) {
        char name[64];
        snprintf(name, sizeof name, "%s.out", st->name);
        rc = s == RUN_EVAL ? fs_join(path, sizeof path, st->dir, "scores.json", e)
                           : fs_join(path, sizeof path, logs, name, e);
        if (!rc) rc = call_stage(st->name, &argv, path, e);
    }
    run_strv_free(&argv);
    if (rc) return rc;
    rc = mpictx_agree(0, e);
    if (!rc && s == RUN_EVAL) rc = eval_control(p, e);
    if (!rc && mpictx_rank() == 0 && s != RUN_REPORT) rc = marker_write(st, fp, 1, e);
    return mpictx_agree(rc, e);
}

/* ------------------------------------------------------------ the run */

typedef struct run_state {
    uint64_t fp[RUN_N_STAGES];
    enum marker_state state[RUN_N_STAGES];
    const char *did[RUN_N_STAGES]; /* what happened, for the summary */
    double seconds[RUN_N_STAGES];
} run_state;

static int selected(const run_opts *o, const run_plan *p, int s)
{
    if (!p->steps[s].enabled) return 0;
    if (o->only >= 0) return s == o->only;
    return o->from < 0 || s >= o->from;
}

/* Rank 0 decides from the folder's marker; every rank gets its answer,
 * so that no rank reads a marker another is rewriting. */
static int decide(const run_plan *p, int s, run_state *r, err_t *e)
{
    uint64_t found = 0;
    int v[2] = {0, 0};
    int rc = step_fingerprint(&p->steps[s], r->fp, &r->fp[s], e);
    if (!rc && mpictx_rank() == 0) {
        enum marker_state st;
        rc = marker_read(&p->steps[s], r->fp[s], &st, &found, e);
        v[0] = (int)st;
    }
    v[1] = rc;
    int mrc = comm_bcast_int(v, 2, e);
    if (mrc) return mrc;
    if (v[1] && !rc) return err_set(e, v[1], "rank 0 could not read the %s stage's state", p->steps[s].name);
    r->state[s] = (enum marker_state)v[0];
    return rc;
}

static int run_all(const run_opts *o, const run_plan *p, run_state *r, err_t *e)
{
    int n_sel = 0, k = 0;
    for (int s = 0; s < RUN_N_STAGES; s++) n_sel += selected(o, p, s);
    if (!n_sel) return err_set(e, ERR_ARG, "%s: the selected stage is not one this config runs", o->config);
    for (int s = 0; s < RUN_N_STAGES; s++) {
        const run_step *st = &p->steps[s];
        r->did[s] = st->enabled ? "not selected" : "not in config";
        if (!st->enabled || s == RUN_REPORT) {
            if (s == RUN_REPORT && selected(o, p, s)) {
                k++;
                if (o->dry_run || !stage_lookup("report")) {
                    r->did[s] = o->dry_run ? "would run" : "no report stage in this clipcap";
                    continue;
                }
                double t0 = clock_now();
                log_msg(LOG_INFO, "run: [%d/%d] report", k, n_sel);
                int rc = run_one(p, s, MARK_NONE, 0, e);
                if (rc) return err_wrap(e, "report");
                r->seconds[s] = clock_now() - t0;
                r->did[s] = "ran";
            }
            continue;
        }
        int rc = decide(p, s, r, e);
        if (rc) return rc;
        enum marker_state ms = r->state[s];
        if (!selected(o, p, s)) {
            /* A later selected stage reads this one: it must be there. */
            for (int t = s + 1; t < RUN_N_STAGES; t++)
                if (selected(o, p, t) && (p->steps[t].deps & (1u << s)) && ms != MARK_DONE && !o->dry_run)
                    return err_set(e, ERR_ARG, "%s needs the %s stage, which is %s in %s (run it first)",
                                   p->steps[t].name, st->name, marker_words[ms], st->dir);
            continue;
        }
        k++;
        if (o->dry_run) {
            if (mpictx_rank() == 0) {
                printf("%s: %s (%s, fingerprint %016llx)\n  ", st->name, st->dir, marker_words[ms],
                       (unsigned long long)r->fp[s]);
                for (int i = 0; i < st->argv.n; i++) printf(" %s", st->argv.v[i]);
                printf("%s\n", s == RUN_EVAL || s == RUN_CAPTION ? " --model (train's last checkpoint)" : "");
            }
            r->did[s] = ms == MARK_DONE ? "complete" : "would run";
            continue;
        }
        if (ms == MARK_DONE) {
            log_msg(LOG_INFO, "run: [%d/%d] %s: complete for this config (%s), skipped", k, n_sel, st->name, st->dir);
            r->did[s] = "skipped (complete)";
            continue;
        }
        if (ms == MARK_OTHER && s != RUN_SHARD && s != RUN_EXTRACT && s != RUN_EVAL)
            return err_set(e, ERR_ARG,
                           "%s: made by another configuration or other inputs; remove it to redo the %s stage "
                           "with this config, or choose another run folder",
                           st->dir, st->name);
        log_msg(LOG_INFO, "run: [%d/%d] %s -> %s%s", k, n_sel, st->name, st->dir,
                ms == MARK_PARTIAL ? " (resuming)" : ms == MARK_OTHER ? " (inputs changed: updating)" : "");
        double t0 = clock_now();
        if ((rc = run_one(p, s, ms, r->fp[s], e))) return rc;
        r->seconds[s] = clock_now() - t0;
        r->did[s] = ms == MARK_PARTIAL ? "resumed" : "ran";
        log_msg(LOG_INFO, "run: [%d/%d] %s done in %.1f s", k, n_sel, st->name, r->seconds[s]);
    }
    return 0;
}

int stage_run_main(int argc, char **argv)
{
    run_opts o;
    err_t e = {0};
    int rc = run_parse(argc, argv, &o, &e);
    if (rc) return rc > 0 ? 0 : err_report("run", &e);
    run_plan p;
    if ((rc = run_plan_load(&p, o.config, o.out, &e))) return err_report("run", &e);
    run_state r;
    memset(&r, 0, sizeof r);
    double t0 = clock_now();
    rc = run_all(&o, &p, &r, &e);
    if (!rc && !o.dry_run && mpictx_rank() == 0) {
        printf("run: %s in %.1f s\n", p.out, clock_now() - t0);
        for (int s = 0; s < RUN_N_STAGES; s++)
            if (p.steps[s].enabled)
                printf("  %-8s %-32s %8.1f s  %s\n", p.steps[s].name, r.did[s], r.seconds[s], p.steps[s].dir);
        if (p.steps[RUN_EVAL].enabled) rc = run_summary_print(p.steps[RUN_EVAL].dir, p.annotations, p.examples, stdout, &e);
    }
    run_plan_free(&p);
    return rc ? err_report("run", &e) : 0;
}
