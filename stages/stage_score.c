/* `clipcap score`: the COCO caption metrics of a results file against an
 * annotation file, as the COCO caption toolkit reports them
 * (common/metrics/cocoeval.h does the work).
 *
 * CIDEr's document frequencies depend on every image, so scoring is not
 * sharded: only rank 0 works and the output is the same under mpirun. */
#include "core/fsutil.h"
#include "core/log.h"
#include "core/mpictx.h"
#include "metrics/cocoeval.h"

#include <getopt.h>
#include <sys/stat.h>
#include <stdio.h>

const char stage_score_summary[] = "BLEU, METEOR, ROUGE-L, CIDEr-D and SPICE of captions, as the COCO caption toolkit";

static void score_usage(FILE *out)
{
    fprintf(out,
            "usage: clipcap score --results R --annotations A [--per-image] [--subset]\n"
            "                     [--meteor-jar JAR] [--spice-jar JAR]\n\n"
            "Scores the captions of R against the references of A like the COCO caption\n"
            "evaluation toolkit (pycocoevalcap): PTB tokenisation, then BLEU-1..4, ROUGE-L\n"
            "and CIDEr-D, and METEOR and SPICE through their jars. Prints one JSON object\n"
            "with the keys Bleu_1..Bleu_4, METEOR, ROUGE_L, CIDEr, SPICE, images; a score\n"
            "that is not computed is null and \"note\" says why.\n\n"
            "  --results R        COCO results: [{\"image_id\": ID, \"caption\": TEXT}, ...],\n"
            "                     exactly one caption per image\n"
            "  --annotations A    COCO captions: {\"annotations\": [{\"image_id\": ID,\n"
            "                     \"caption\": TEXT}, ...]}: the references\n"
            "  --subset           score only the images of R; by default every image of A\n"
            "                     needs a result (the toolkit scores the images of R)\n"
            "  --per-image        add \"per_image\": {\"ID\": {\"image_id\", \"Bleu_1\", ...}}\n"
            "                     (the toolkit's imgToEval)\n"
            "  --meteor-jar JAR   compute METEOR with meteor-1.5.jar (its data/ beside it)\n"
            "  --spice-jar JAR    compute SPICE with spice-1.0.jar (its lib/ beside it)\n"
            "                     both need java on PATH\n"
            "  -h, --help         this help\n");
}

int stage_score_main(int argc, char **argv)
{
    static const struct option opts[] = {{"results", required_argument, 0, 'r'},
                                         {"annotations", required_argument, 0, 'a'},
                                         {"per-image", no_argument, 0, 'p'},
                                         {"subset", no_argument, 0, 's'},
                                         {"meteor-jar", required_argument, 0, 'm'},
                                         {"spice-jar", required_argument, 0, 'S'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *rpath = NULL, *apath = NULL;
    cocoeval_opts_t o = {0};
    int c;
    err_t e = {0};
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'r': rpath = optarg; break;
        case 'a': apath = optarg; break;
        case 'p': o.per_image = 1; break;
        case 's': o.subset = 1; break;
        case 'm': o.meteor_jar = optarg; break;
        case 'S': o.spice_jar = optarg; break;
        case 'h': score_usage(stdout); return 0;
        default: score_usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        err_set(&e, ERR_ARG, "unexpected argument '%s' (try --help)", argv[optind]);
        return err_report("score", &e);
    }
    if (!rpath || !apath) {
        err_set(&e, ERR_ARG, "--results and --annotations are required (try --help)");
        return err_report("score", &e);
    }
    if (mpictx_rank() != 0) return 0;
    /* the text, tokens and n-grams take about 10 times the input (5,000
     * images: 31 MB for 3.2 MB); 24 times leaves room to spare */
    struct stat rs, as;
    if (!stat(rpath, &rs) && !stat(apath, &as)) mem_huge_heap(24 * ((size_t)rs.st_size + (size_t)as.st_size));
    if (cocoeval_score_files(rpath, apath, &o, stdout, &e)) return err_report("score", &e);
    return 0;
}
