/* `clipcap report`: a run folder → one self-contained HTML page
 * (common/report/report.h). Reading a few summaries is one unit of work:
 * rank 0 does it, other ranks exit 0. */
#include "core/cli.h"
#include "core/log.h"
#include "core/mpictx.h"
#include "report/report.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

const char stage_report_summary[] = "one self-contained HTML report of a run folder (curves, throughput, metrics, gallery)";

static void report_usage(FILE *out)
{
    fprintf(out,
            "usage: clipcap report RUN_DIR [--out FILE] [--gallery N] [--thumb PX]\n\n"
            "Writes one HTML file with no external resources describing the run folder\n"
            "that `clipcap run` produces (manifest/, store/, train/, eval/, captions/):\n"
            "training loss and learning-rate curves (train/log.jsonl), per-stage\n"
            "throughput and failures by reason (the stages' summaries and failure tables),\n"
            "the metrics table and per-image CIDEr-D histogram (eval/*scores.json), and a\n"
            "gallery of evaluated images (WebP thumbnails inline) with generated and\n"
            "reference captions. Parts that are missing are listed at the top.\n\n"
            "  --out FILE     where to write (default RUN_DIR/report.html), atomically\n"
            "  --gallery N    images in the gallery (default 12, 0 for none)\n"
            "  --thumb PX     thumbnails fit in PX x PX pixels (default 160)\n"
            "  -h, --help     this help\n");
}

int stage_report_main(int argc, char **argv)
{
    static const struct option opts[] = {{"out", required_argument, 0, 'o'},
                                         {"gallery", required_argument, 0, 'g'},
                                         {"thumb", required_argument, 0, 't'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    report_opts o;
    report_opts_default(&o);
    const char *out = NULL;
    err_t e = {0};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case 'g':
            if (cli_parse_int("gallery", optarg, 0, 1000, &o.gallery, &e)) return err_report("report", &e);
            break;
        case 't':
            if (cli_parse_int("thumb", optarg, 16, 1024, &o.thumb_side, &e)) return err_report("report", &e);
            break;
        case 'h': report_usage(stdout); return 0;
        default: report_usage(stderr); return 2;
        }
    }
    if (optind != argc - 1) {
        err_set(&e, ERR_ARG, optind < argc ? "one RUN_DIR expected, got '%s' too (try --help)" : "RUN_DIR is required (try --help)",
                optind < argc ? argv[argc - 1] : "");
        return err_report("report", &e);
    }
    o.run_dir = argv[optind];
    if (mpictx_rank() != 0) return 0;
    char path[4096];
    if (!out) {
        if (snprintf(path, sizeof path, "%s/report.html", o.run_dir) >= (int)sizeof path) {
            err_set(&e, ERR_ARG, "%s: path too long", o.run_dir);
            return err_report("report", &e);
        }
        out = path;
    }
    if (report_write(&o, out, &e)) return err_report("report", &e);
    log_msg(LOG_INFO, "report: wrote %s", out);
    return 0;
}
