/* `clipcap synth`: the embedded default data set. Coloured shapes on plain
 * backgrounds with captions that describe them, written in the layouts
 * users' data sets come in (COCO, Karpathy, Conceptual Captions TSV,
 * img2dataset files and webdataset tars), in every image format readers
 * must handle, optionally with one bad record of each kind for tests. */
#include "core/fsutil.h"
#include "core/cli.h"
#include "core/log.h"
#include "core/mpictx.h"
#include "data/synth.h"
#include "data/synth_encode.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char stage_synth_summary[] = "generate the synthetic captioning data set in COCO, Karpathy and CC layouts";

static void synth_usage(FILE *f)
{
    fprintf(f,
            "usage: clipcap synth --out DIR [--count N] [--seed S] [--layouts LIST] [--bad]\n"
            "                     [--large K] [--per-shard M] [--square] [--force]\n"
            "\n"
            "Generates N images of coloured shapes on plain backgrounds, each with captions\n"
            "that name the shapes' colours, kinds and positions (\"a red circle above a blue\n"
            "square\"), and writes them in every layout users have:\n"
            "  DIR/coco/annotations/captions_{train,val}2014.json + DIR/coco/{train,val}2014/\n"
            "  DIR/karpathy/dataset_coco.json (train/restval/val/test, images under DIR/coco)\n"
            "  DIR/cc/Train_GCC-training.tsv (caption<TAB>url)\n"
            "  DIR/cc/files/00000/000000123.{jpg,png,webp,txt,json} (img2dataset files)\n"
            "  DIR/cc/wds/00000.tar (img2dataset webdataset shards)\n"
            "  DIR/synth_index.json (every record: format, size, captions, paths)\n"
            "  DIR/synth_bad.json (the bad records and where they are)\n"
            "Formats: %d kinds of JPEG, PNG and WebP (see docs/synth.md); sizes from 1x1 to\n"
            "several megapixels. The same seed gives byte-identical files for any number of\n"
            "ranks and threads.\n"
            "\n"
            "options:\n"
            "  --out DIR        output directory (must be empty or absent unless --force)\n"
            "  --count N        good images (default 48; >= %d holds every format)\n"
            "  --seed S         seed (default 1)\n"
            "  --layouts LIST   comma list of coco,karpathy,cc-tsv,cc-files,cc-tar, or cc\n"
            "                   (all three CC layouts) or all (default all)\n"
            "  --bad            also write one bad record of each kind (missing image, empty\n"
            "                   caption, duplicate id, truncated, zero-length, wrong extension,\n"
            "                   non-UTF-8 caption, failed download), listed in synth_bad.json\n"
            "  --large K        multi-megapixel images among the N (default 1)\n"
            "  --per-shard M    CC samples per shard directory and tar (default 20, max %u)\n"
            "  --square         make the 32-384 px images square: CLIP's centre crop of an\n"
            "                   elongated image can cut a shape its captions name away\n"
            "  --force          write into a non-empty DIR (files there are overwritten)\n"
            "  -h, --help       this help\n"
            "\n"
            "examples:\n"
            "  clipcap synth --out /tmp/synth\n"
            "  clipcap synth --out /tmp/synth-bad --count 64 --seed 7 --bad\n"
            "  clipcap synth --out /tmp/cc --count 10000 --layouts cc-tar --per-shard 1000 --large 0\n"
            "  mpirun -np 4 clipcap synth --out /tmp/big --count 100000\n",
            SYNTH_N_FORMATS, SYNTH_N_FORMATS, SYNTH_SHARD_MAX);
}

static int parse_layouts(const char *s, unsigned *out, err_t *e)
{
    static const struct { const char *name; unsigned bits; } names[] = {
        {"coco", SYNTH_LAYOUT_COCO},         {"karpathy", SYNTH_LAYOUT_KARPATHY}, {"cc-tsv", SYNTH_LAYOUT_CC_TSV},
        {"cc-files", SYNTH_LAYOUT_CC_FILES}, {"cc-tar", SYNTH_LAYOUT_CC_TAR},
        {"cc", SYNTH_LAYOUT_CC_TSV | SYNTH_LAYOUT_CC_FILES | SYNTH_LAYOUT_CC_TAR}, {"all", SYNTH_LAYOUT_ALL}};
    *out = 0;
    char buf[256];
    if (snprintf(buf, sizeof buf, "%s", s) >= (int)sizeof buf) return err_set(e, ERR_ARG, "--layouts: list too long");
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        unsigned bits = 0;
        for (size_t k = 0; k < sizeof names / sizeof names[0]; k++)
            if (!strcmp(tok, names[k].name)) bits = names[k].bits;
        if (!bits)
            return err_set(e, ERR_ARG, "--layouts: unknown layout '%s' (coco, karpathy, cc-tsv, cc-files, cc-tar, cc, all)",
                           tok);
        *out |= bits;
    }
    if (!*out) return err_set(e, ERR_ARG, "--layouts: empty list");
    return 0;
}

/* Refuse to mix a new data set into an old one: stale files from a larger
 * run would survive and break byte-identity. */
static int check_out_empty(const char *dir, err_t *e)
{
    size_t used = 0;
    int rc = fs_dir_count(dir, &used, NULL, 0, e);
    if (!rc && used) rc = err_set(e, ERR_ARG, "%s: not empty (use --force to write into it anyway)", dir);
    return rc;
}

static void print_summary(const synth_opts_t *o, const synth_summary_t *s)
{
    printf("synth: %llu images (+%llu bad records), seed %llu, in %s\n", (unsigned long long)o->count,
           (unsigned long long)s->bad, (unsigned long long)o->seed, o->out);
    printf("  sizes: %llu of >= 1 megapixel, %llu under 32 px on a side\n", (unsigned long long)s->large,
           (unsigned long long)s->tiny);
    printf("  formats:");
    for (int f = 0; f < SYNTH_N_FORMATS; f++)
        printf("%s %s %llu", f ? "," : "", synth_format_info(f)->name, (unsigned long long)s->per_format[f]);
    printf("\n");
    if (o->layouts & SYNTH_LAYOUT_COCO)
        printf("  coco: train2014 %llu images / %llu captions, val2014 %llu images / %llu captions\n",
               (unsigned long long)s->coco_images[0], (unsigned long long)s->coco_captions[0],
               (unsigned long long)s->coco_images[1], (unsigned long long)s->coco_captions[1]);
    if (o->layouts & SYNTH_LAYOUT_KARPATHY)
        printf("  karpathy: train %llu, restval %llu, val %llu, test %llu images\n",
               (unsigned long long)s->karpathy[SYNTH_KS_TRAIN], (unsigned long long)s->karpathy[SYNTH_KS_RESTVAL],
               (unsigned long long)s->karpathy[SYNTH_KS_VAL], (unsigned long long)s->karpathy[SYNTH_KS_TEST]);
    if (o->layouts & (SYNTH_LAYOUT_CC_TSV | SYNTH_LAYOUT_CC_FILES | SYNTH_LAYOUT_CC_TAR))
        printf("  cc: %llu samples in %llu shards of %u (%s%s%s)\n", (unsigned long long)s->cc_samples,
               (unsigned long long)s->cc_shards, o->per_shard, (o->layouts & SYNTH_LAYOUT_CC_TSV) ? "tsv " : "",
               (o->layouts & SYNTH_LAYOUT_CC_FILES) ? "files " : "", (o->layouts & SYNTH_LAYOUT_CC_TAR) ? "tar" : "");
    if (s->bad) printf("  bad records: see %s/synth_bad.json\n", o->out);
}

int stage_synth_main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"out", required_argument, 0, 'o'},       {"count", required_argument, 0, 'n'},
        {"seed", required_argument, 0, 's'},      {"layouts", required_argument, 0, 'l'},
        {"bad", no_argument, 0, 'b'},             {"large", required_argument, 0, 'L'},
        {"per-shard", required_argument, 0, 'p'}, {"force", no_argument, 0, 'f'},
        {"square", no_argument, 0, 'q'},
        {"help", no_argument, 0, 'h'},            {0, 0, 0, 0}};
    synth_opts_t o = {.count = 48, .seed = 1, .layouts = SYNTH_LAYOUT_ALL, .large = 1, .per_shard = 20};
    int force = 0, c;
    uint64_t v;
    err_t e = {0};
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        int rc = 0;
        switch (c) {
        case 'o': o.out = optarg; break;
        case 'n': rc = cli_parse_u64("count", optarg, 1, SYNTH_COUNT_MAX, &o.count, &e); break;
        case 's': rc = cli_parse_u64("seed", optarg, 0, UINT64_MAX, &o.seed, &e); break;
        case 'l': rc = parse_layouts(optarg, &o.layouts, &e); break;
        case 'b': o.bad = 1; break;
        case 'L':
            rc = cli_parse_u64("large", optarg, 0, 1000000, &v, &e);
            if (!rc) o.large = (uint32_t)v;
            break;
        case 'p':
            rc = cli_parse_u64("per-shard", optarg, 1, SYNTH_SHARD_MAX, &v, &e);
            if (!rc) o.per_shard = (uint32_t)v;
            break;
        case 'f': force = 1; break;
        case 'q': o.square = 1; break;
        case 'h': synth_usage(stdout); return 0;
        default: synth_usage(stderr); return 2;
        }
        if (rc) return err_report("synth", &e);
    }
    if (optind < argc) {
        err_set(&e, ERR_ARG, "unexpected argument '%s'", argv[optind]);
        return err_report("synth", &e);
    }
    if (!o.out) {
        err_set(&e, ERR_ARG, "--out DIR is required (see clipcap synth --help)");
        return err_report("synth", &e);
    }
    if (o.large > o.count) o.large = (uint32_t)o.count;
    /* Every rank checks before any rank writes: agree is a barrier. */
    int rc = force ? 0 : check_out_empty(o.out, &e);
    rc = mpictx_agree(rc, &e);
    if (rc) return err_report("synth", &e);
    synth_summary_t s;
    rc = synth_generate(&o, &s, &e);
    if (rc) return err_report("synth", &e);
    if (mpictx_rank() == 0) print_summary(&o, &s);
    return 0;
}
