#include "metrics/meteor.h"

#include <stdlib.h>
#include <string.h>

#include "data/sbuf.h"
#include "metrics/jrun.h"

/* hypothesis_str.replace('|||', '').replace('  ', ' '), as meteor.py. */
static void put_candidate(sbuf_t *sb, const char *s)
{
    sbuf_t t = {0};
    for (const char *p = s; *p;) {
        if (!strncmp(p, "|||", 3)) p += 3;
        else sb_append(&t, p++, 1);
    }
    for (size_t i = 0; !t.failed && i < t.len;) {
        sb_append(sb, &t.data[i], 1);
        i += (t.data[i] == ' ' && i + 1 < t.len && t.data[i + 1] == ' ') ? 2 : 1;
    }
    if (t.failed) sb->failed = 1;
    sb_free(&t);
}

/* Python's float(line.strip()). */
static int parse_score(const char *line, double *out)
{
    char *end;
    while (*line == ' ' || *line == '\t') line++;
    *out = strtod(line, &end);
    if (end == line) return -1;
    while (*end == ' ' || *end == '\t') end++;
    return *end ? -1 : 0;
}

int meteor_score(const char *jar, const metric_item_t *items, size_t n, double *score, double *per_image, err_t *e)
{
    static const char *const args[] = {"-", "-", "-stdio", "-l", "en", "-norm", NULL};
    jrun_t j;
    int rc = jrun_start(&j, jar, "2G", args, 1, e);
    if (rc) return rc;
    sbuf_t line = {0}, eval = {0};
    char *ans = NULL, what[96];
    size_t ans_cap = 0;
    sb_puts(&eval, "EVAL");
    for (size_t i = 0; i < n && !rc; i++) {
        sb_reset(&line);
        sb_puts(&line, "SCORE");
        for (size_t r = 0; r < items[i].n_refs; r++) {
            sb_puts(&line, " ||| ");
            sb_puts(&line, items[i].refs[r]);
        }
        sb_puts(&line, " ||| ");
        put_candidate(&line, items[i].cand);
        sb_puts(&line, "\n");
        if (line.failed) {
            rc = err_set(e, ERR_NOMEM, "%s: out of memory for image %zu", j.name, i);
            break;
        }
        snprintf(what, sizeof what, "the statistics of image %zu", i);
        rc = jrun_write(&j, line.data, line.len, e);
        if (!rc) rc = jrun_read_line(&j, &ans, &ans_cap, what, e);
        if (rc) break;
        char *a = ans, *end = ans + strlen(ans);
        while (*a == ' ' || *a == '\t') a++;
        while (end > a && (end[-1] == ' ' || end[-1] == '\t')) *--end = 0;
        sb_puts(&eval, " ||| ");
        sb_puts(&eval, a);
    }
    sb_puts(&eval, "\n");
    if (!rc && eval.failed) rc = err_set(e, ERR_NOMEM, "%s: out of memory for the EVAL line", j.name);
    if (!rc) rc = jrun_write(&j, eval.data, eval.len, e);
    for (size_t i = 0; i <= n && !rc; i++) {
        if (i < n) snprintf(what, sizeof what, "the score of image %zu", i);
        else snprintf(what, sizeof what, "the corpus score");
        double v;
        rc = jrun_read_line(&j, &ans, &ans_cap, what, e);
        if (!rc && parse_score(ans, &v))
            rc = err_set(e, ERR_FORMAT, "%s: expected %s, got '%.80s'", j.name, what, ans);
        if (rc) break;
        if (i < n && per_image) per_image[i] = v;
        if (i == n) *score = v;
    }
    if (!rc) rc = jrun_finish(&j, e);
    else jrun_abort(&j);
    free(ans);
    sb_free(&line);
    sb_free(&eval);
    return rc;
}
