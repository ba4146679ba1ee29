/* run_plan: a `clipcap run` config becomes each stage's command line. The
 * paper's recipes (CLIPCAP_FACTS.md) are the defaults, the config's
 * values override them, ${out} and --out name the run folder, and every
 * mistake is one error naming the file and the field. */
#include "check.h"
#include "run/run_plan.h"

static char tmpdir[4096];

/* Writes text to a config file and loads it; returns run_plan_load's code. */
static int load(run_plan *p, const char *text, const char *out_override, err_t *e)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/cfg.json", tmpdir);
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    fputs(text, f);
    fclose(f);
    return run_plan_load(p, path, out_override, e);
}

/* The value after flag in st's argv, or NULL when the flag is absent. */
static const char *flag(const run_step *st, const char *name)
{
    for (int i = 0; i < st->argv.n; i++)
        if (!strcmp(st->argv.v[i], name)) return i + 1 < st->argv.n ? st->argv.v[i + 1] : "";
    return NULL;
}

#define DATA "\"data\": {\"format\": \"coco\", \"inputs\": \"${out}/a.json\", \"images_root\": \"img\", \"eval_split\": \"val\"}"
#define MODELS "\"models\": {\"clip\": \"clip\", \"gpt2\": \"gpt2\"}"

static void test_paper_recipes(void)
{
    run_plan p;
    err_t e = {0};
    CHECK_OK(load(&p, "{\"version\": 1, \"out\": \"o\", " DATA ", " MODELS ", \"recipe\": {\"mapping\": \"transformer\"}}",
                  NULL, &e), &e);
    const run_step *t = &p.steps[RUN_TRAIN];
    CHECK(t->enabled && p.steps[RUN_EVAL].enabled && p.steps[RUN_CAPTION].enabled && !p.steps[RUN_SYNTH].enabled);
    CHECK(!strcmp(flag(t, "--prefix-len"), "40") && !strcmp(flag(t, "--clip-len"), "40"));
    CHECK(!strcmp(flag(t, "--mapper-layers"), "8") && flag(t, "--freeze-gpt2"));
    CHECK(!strcmp(flag(t, "--batch"), "40") && !strcmp(flag(t, "--epochs"), "10"));
    CHECK(!strcmp(flag(t, "--lr"), "2e-05") && !strcmp(flag(t, "--warmup"), "5000"));
    CHECK(!strcmp(flag(t, "--weight-decay"), "0") && !strcmp(flag(t, "--out"), "o/train"));
    run_plan_free(&p);

    CHECK_OK(load(&p, "{\"version\": 1, \"out\": \"o\", " DATA ", " MODELS
                      ", \"recipe\": {\"mapping\": \"mlp\", \"lr\": 0.01, \"epochs\": 3}}", NULL, &e), &e);
    t = &p.steps[RUN_TRAIN];
    CHECK(!strcmp(flag(t, "--prefix-len"), "10") && !flag(t, "--clip-len") && !flag(t, "--freeze-gpt2"));
    CHECK(!strcmp(flag(t, "--lr"), "0.01") && !strcmp(flag(t, "--epochs"), "3"));
    run_plan_free(&p);
}

static void test_paths(void)
{
    run_plan p;
    err_t e = {0};
    CHECK_OK(load(&p, "{\"version\": 1, \"out\": \"o\", " DATA
                      ", \"models\": {\"clip\": \"c\", \"gpt2\": \"g\", \"tokenizer\": \"tok\"}, \"recipe\": {\"mapping\": \"mlp\"}}",
                  "elsewhere", &e), &e);
    const run_step *sh = &p.steps[RUN_SHARD], *ev = &p.steps[RUN_EVAL];
    CHECK(!strcmp(flag(sh, "--input"), "elsewhere/a.json"));
    CHECK(!strcmp(flag(sh, "--gpt2"), "tok"));
    CHECK(!strcmp(flag(sh, "--write-annotations"), "val:elsewhere/manifest/references.json"));
    CHECK(!strcmp(flag(ev, "--annotations"), "elsewhere/manifest/references.json"));
    CHECK(!strcmp(p.gpt2, "elsewhere/gpt2") && !strcmp(flag(ev, "--gpt2"), "elsewhere/gpt2"));
    CHECK(!strcmp(flag(&p.steps[RUN_TRAIN], "--gpt2"), "g"));
    CHECK(!strcmp(p.steps[RUN_REPORT].argv.v[1], "elsewhere"));
    run_plan_free(&p);
}

static void test_stages(void)
{
    run_plan p;
    err_t e = {0};
    /* No recipe: the data stages only. */
    CHECK_OK(load(&p, "{\"version\": 1, \"out\": \"o\", " DATA ", " MODELS "}", NULL, &e), &e);
    CHECK(p.steps[RUN_SHARD].enabled && p.steps[RUN_EXTRACT].enabled && !p.steps[RUN_TRAIN].enabled &&
          !p.steps[RUN_EVAL].enabled && !p.steps[RUN_REPORT].enabled);
    run_plan_free(&p);
    CHECK_OK(load(&p, "{\"version\": 1, \"out\": \"o\", \"stages\": [\"shard\"], " DATA ", " MODELS
                      ", \"recipe\": {\"mapping\": \"mlp\"}}", NULL, &e), &e);
    CHECK(p.steps[RUN_SHARD].enabled && !p.steps[RUN_EXTRACT].enabled && !p.steps[RUN_TRAIN].enabled);
    run_plan_free(&p);
    CHECK(run_plan_stage("caption") == RUN_CAPTION && run_plan_stage("nope") == -1);
}

static void test_errors(void)
{
    static const struct {
        const char *text, *want;
    } cases[] = {
        {"{\"version\": 2, \"out\": \"o\", " DATA ", " MODELS "}", "version: must be 1"},
        {"{\"version\": 1, \"out\": \"o\", " DATA ", " MODELS ", \"recipe\": {\"mapping\": \"mlp\", \"epoch\": 3}}",
         "recipe.epoch: unknown field"},
        {"{\"version\": 1, \"out\": \"o\", " DATA ", " MODELS ", \"recipe\": {\"mapping\": \"cnn\"}}",
         "recipe.mapping: neither mlp nor transformer"},
        {"{\"version\": 1, \"out\": \"o\", " DATA ", " MODELS ", \"recipe\": {\"mapping\": \"mlp\", \"batch\": 0}}",
         "recipe.batch: not an integer in 1.."},
        {"{\"version\": 1, \"out\": \"o\", \"data\": {\"format\": \"karpathy\", \"images_root\": \"i\", \"eval_split\": "
         "[\"val\", \"test\"]}, " MODELS ", \"recipe\": {\"mapping\": \"mlp\"}}",
         "data.eval_split: several splits need data.annotations"},
        {"{\"version\": 1, " DATA ", " MODELS "}", "config.out: missing"},
        {"{\"version\": 1, \"out\": \"o\", \"stages\": [\"shard\", \"dance\"], " DATA ", " MODELS "}", "stages:"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        run_plan p;
        err_t e = {0};
        int rc = load(&p, cases[i].text, NULL, &e);
        CHECK_MSG(rc == ERR_FORMAT && strstr(e.msg, cases[i].want) && strstr(e.msg, "cfg.json"),
                  "case %zu: rc %d, '%s', want '%s'", i, rc, e.msg, cases[i].want);
    }
}

int main(void)
{
    check_tmpdir(tmpdir, sizeof tmpdir, "run_plan");
    CHECK_RUN(test_paper_recipes);
    CHECK_RUN(test_paths);
    CHECK_RUN(test_stages);
    CHECK_RUN(test_errors);
    return check_summary();
}
