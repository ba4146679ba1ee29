#include "report/html.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void html_text(sbuf_t *sb, const char *s)
{
    for (const char *p = s; *p; p++) {
        switch (*p) {
        case '&': sb_puts(sb, "&amp;"); break;
        case '<': sb_puts(sb, "&lt;"); break;
        case '>': sb_puts(sb, "&gt;"); break;
        case '"': sb_puts(sb, "&quot;"); break;
        case '\'': sb_puts(sb, "&#39;"); break;
        default: sb_append(sb, p, 1);
        }
    }
}

void html_num(sbuf_t *sb, double v)
{
    if (isnan(v)) sb_puts(sb, "-");
    else sb_printf(sb, "%.4g", v);
}

/* Plot area inside a W x H svg, margins for the axis labels. */
enum { CH_W = 520, CH_H = 220, CH_L = 64, CH_R = 12, CH_T = 28, CH_B = 36 };

static void range_of(const double *v, size_t n, double *lo, double *hi)
{
    *lo = INFINITY, *hi = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(v[i])) continue;
        if (v[i] < *lo) *lo = v[i];
        if (v[i] > *hi) *hi = v[i];
    }
    if (!(*lo <= *hi)) *lo = 0, *hi = 1;
    /* a flat series still needs a visible span */
    if (*hi - *lo < 1e-12 * (fabs(*hi) + 1)) *lo -= 0.5, *hi += 0.5;
}

static void chart_frame(sbuf_t *sb, const char *title, const char *xname, const char *yname, double x0, double x1,
                        double y0, double y1)
{
    sb_printf(sb, "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\">",
              CH_W, CH_H, CH_W, CH_H);
    sb_printf(sb, "<text x=\"%d\" y=\"16\" class=\"ctitle\">", CH_L);
    html_text(sb, title);
    sb_printf(sb, "</text><rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" class=\"plot\"/>", CH_L, CH_T,
              CH_W - CH_L - CH_R, CH_H - CH_T - CH_B);
    sb_printf(sb, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\" class=\"tick\">", CH_L - 4, CH_T + 10);
    html_num(sb, y1);
    sb_printf(sb, "</text><text x=\"%d\" y=\"%d\" text-anchor=\"end\" class=\"tick\">", CH_L - 4, CH_H - CH_B);
    html_num(sb, y0);
    sb_printf(sb, "</text><text x=\"%d\" y=\"%d\" class=\"tick\">", CH_L, CH_H - CH_B + 14);
    html_num(sb, x0);
    sb_printf(sb, "</text><text x=\"%d\" y=\"%d\" text-anchor=\"end\" class=\"tick\">", CH_W - CH_R, CH_H - CH_B + 14);
    html_num(sb, x1);
    sb_printf(sb, "</text><text x=\"%d\" y=\"%d\" text-anchor=\"middle\" class=\"axis\">", (CH_L + CH_W - CH_R) / 2,
              CH_H - 6);
    html_text(sb, xname);
    sb_printf(sb, "</text><text x=\"12\" y=\"%d\" text-anchor=\"middle\" class=\"axis\" transform=\"rotate(-90 12 %d)\">",
              (CH_T + CH_H - CH_B) / 2, (CH_T + CH_H - CH_B) / 2);
    html_text(sb, yname);
    sb_puts(sb, "</text>");
}

void html_line_chart(sbuf_t *sb, const char *title, const char *cls, const char *xname, const char *yname,
                     const double *x, const double *y, size_t n)
{
    double x0, x1, y0, y1;
    range_of(x, n, &x0, &x1);
    range_of(y, n, &y0, &y1);
    chart_frame(sb, title, xname, yname, x0, x1, y0, y1);
    const double pw = CH_W - CH_L - CH_R, ph = CH_H - CH_T - CH_B;
    sb_printf(sb, "<polyline class=\"%s\" fill=\"none\" points=\"", cls);
    for (size_t i = 0; i < n; i++) {
        /* a non-finite value (a diverged loss) sits on the top edge, so
         * the point count still equals the step count */
        double yv = isfinite(y[i]) ? y[i] : y1;
        sb_printf(sb, "%s%.1f,%.1f", i ? " " : "", CH_L + pw * (x[i] - x0) / (x1 - x0),
                  CH_T + ph * (1.0 - (yv - y0) / (y1 - y0)));
    }
    sb_puts(sb, "\"/></svg>");
}

void html_histogram(sbuf_t *sb, const char *title, const char *cls, const char *xname, const double *v, size_t n,
                    int bins)
{
    double hi = 0;
    for (size_t i = 0; i < n; i++)
        if (isfinite(v[i]) && v[i] > hi) hi = v[i];
    if (hi <= 0) hi = 1;
    size_t *count = calloc((size_t)bins, sizeof *count);
    if (!count) {
        sb->failed = 1;
        return;
    }
    size_t most = 1;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(v[i])) continue;
        int b = (int)(v[i] / hi * bins);
        b = b < 0 ? 0 : b >= bins ? bins - 1 : b;
        if (++count[b] > most) most = count[b];
    }
    chart_frame(sb, title, xname, "images", 0, hi, 0, (double)most);
    const double pw = CH_W - CH_L - CH_R, ph = CH_H - CH_T - CH_B, bw = pw / bins;
    for (int b = 0; b < bins; b++) {
        double h = ph * (double)count[b] / (double)most;
        sb_printf(sb, "<rect class=\"%s\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\"><title>", cls,
                  CH_L + b * bw + 1, CH_T + ph - h, bw - 2, h);
        html_num(sb, hi * b / bins);
        sb_puts(sb, " to ");
        html_num(sb, hi * (b + 1) / bins);
        sb_printf(sb, ": %zu</title></rect>", count[b]);
    }
    sb_puts(sb, "</svg>");
    free(count);
}
