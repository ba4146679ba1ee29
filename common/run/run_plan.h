/* A `clipcap run` configuration (schemas/run-config.md) turned into the
 * stages it runs: for each stage the subcommand, its output folder under
 * the run folder, the argv it is called with and the files whose identity
 * (size, mtime) goes into its fingerprint.
 *
 * The plan is pure: loading reads the config file and nothing else, so
 * every rank builds the same plan. Paths in the config are used as given
 * (relative ones are relative to the working directory, as on the command
 * line); "${out}" in any string is replaced by the run folder.
 *
 * The argv of eval and caption lacks `--model`: the checkpoint is known
 * only once train has run (stage_run adds it). */
#ifndef CLIPCAP_RUN_PLAN_H
#define CLIPCAP_RUN_PLAN_H

#include <stddef.h>
#include "core/log.h"

#define RUN_PLAN_VERSION 1

enum run_stage_id { RUN_SYNTH, RUN_SHARD, RUN_EXTRACT, RUN_TRAIN, RUN_EVAL, RUN_CAPTION, RUN_REPORT, RUN_N_STAGES };

typedef struct run_strv {
    char **v; /* NULL-terminated; owned */
    int n, cap;
} run_strv;

typedef struct run_step {
    const char *name; /* the subcommand, also the --only/--from name */
    char dir[4096];   /* output folder (report: the run folder) */
    int enabled;      /* the config runs this stage */
    unsigned deps;    /* bit i: the stage reads stage i's outputs */
    run_strv argv;    /* argv[0] = name */
    run_strv inputs;  /* files and model folders fingerprinted by identity */
} run_step;

typedef struct run_plan {
    char out[4096];
    run_step steps[RUN_N_STAGES];
    char annotations[4096]; /* eval's references */
    char gpt2[4096];        /* GPT-2 folder caption/eval read (model + tokenizer) */
    char gpt2_model[4096], tokenizer[4096]; /* when they differ, stage_run joins them in gpt2 */
    int examples;           /* held-out examples the summary prints */
} run_plan;

/* out_override (may be NULL) replaces the config's "out". Errors name the
 * config file and the field. */
int run_plan_load(run_plan *p, const char *config_path, const char *out_override, err_t *e);
void run_plan_free(run_plan *p);
/* The stage called name, or -1. */
int run_plan_stage(const char *name);

int run_strv_push(run_strv *s, const char *str, err_t *e);
void run_strv_free(run_strv *s);

#endif
