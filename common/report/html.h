/* HTML pieces for the run report, appended to an sbuf_t: escaped text
 * (every string that comes from data goes through html_text), a table row
 * of cells, and two inline SVG charts. Nothing here fetches anything: the
 * page must stay one self-contained file. */
#ifndef CLIPCAP_REPORT_HTML_H
#define CLIPCAP_REPORT_HTML_H

#include <stddef.h>
#include "data/sbuf.h"

/* s with & < > " ' escaped (safe in text and in quoted attributes). */
void html_text(sbuf_t *sb, const char *s);
/* A number as text: "%.4g", "-" for NaN (a missing value). */
void html_num(sbuf_t *sb, double v);

/* A line chart of y over x (n >= 1 points, x increasing) as an <svg> with
 * one <polyline class="CLS"> of exactly n points, its axes' ranges labelled.
 * title and the axis names are escaped. */
void html_line_chart(sbuf_t *sb, const char *title, const char *cls, const char *xname, const char *yname,
                     const double *x, const double *y, size_t n);
/* A histogram of v[0..n) in `bins` equal bins over [0, max(v)] as an <svg>
 * of <rect class="CLS"> bars, one per bin, each with a <title> of its
 * range and count. */
void html_histogram(sbuf_t *sb, const char *title, const char *cls, const char *xname, const double *v, size_t n,
                    int bins);

#endif
