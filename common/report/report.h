/* The run report: one self-contained HTML file (no external resources:
 * charts are inline SVG, thumbnails inline WebP data: URIs) describing a
 * run folder laid out as `clipcap run` writes it (docs/operations.md):
 *
 *   manifest/  summary.json, index.json, shards   → throughput, rejects by reason
 *   store/     summary.json or extract-summary.json → throughput, failures by reason
 *   train/     log.jsonl, state.json              → loss and learning-rate curves
 *   eval/      results.json, *scores*.json        → metrics table, per-image
 *                                                    CIDEr-D histogram
 *   captions/  index.json, failures-*.jsonl.zst   → counts, failures by reason
 *
 * plus a gallery of the evaluated images (eval/results.json, else the
 * caption dump) with generated and reference captions, images found through
 * the manifest. Every part that exists is rendered; every part that does
 * not (or cannot be read) is listed under "Missing" with the reason, so a
 * partial run still gets a report. Every string taken from the data is
 * HTML-escaped. The output depends only on the run folder's contents. */
#ifndef CLIPCAP_REPORT_H
#define CLIPCAP_REPORT_H

#include "core/log.h"
#include "data/sbuf.h"

typedef struct report_opts {
    const char *run_dir;
    int gallery;    /* images in the gallery (0: none) */
    int thumb_side; /* thumbnails fit in thumb_side x thumb_side pixels */
} report_opts;

void report_opts_default(report_opts *o);

/* The page into html (appended). Errors only for what stops the whole
 * report (out of memory); unreadable parts are reported in the page. */
int report_build(const report_opts *o, sbuf_t *html, err_t *e);
/* report_build, written atomically to out_path. */
int report_write(const report_opts *o, const char *out_path, err_t *e);

#endif
