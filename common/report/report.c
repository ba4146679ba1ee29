#include "report/report.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fsutil.h"
#include "data/manifest.h"
#include "io/json_util.h"
#include "io/zio.h"
#include "report/html.h"
#include "report/thumb.h"

void report_opts_default(report_opts *o)
{
    o->run_dir = NULL;
    o->gallery = 12;
    o->thumb_side = 160;
}

typedef struct rep {
    const report_opts *o;
    sbuf_t *out;
    sbuf_t missing; /* <li> items */
    /* the training log, kept for the throughput table */
    size_t steps;
    double train_seconds, train_tokens;
} rep;

static void rep_missing(rep *r, const char *part, const char *why)
{
    sb_puts(&r->missing, "<li><b>");
    html_text(&r->missing, part);
    sb_puts(&r->missing, "</b>: ");
    html_text(&r->missing, why);
    sb_puts(&r->missing, "</li>");
}

static int rep_path(const rep *r, char *out, size_t cap, const char *rel)
{
    return fs_join(out, cap, r->o->run_dir, rel, NULL);
}

/* A JSON file of the run folder, or NULL with the part listed as missing. */
static json_t *rep_json(rep *r, const char *part, const char *rel)
{
    char path[4096];
    err_t e = {0};
    json_t *j = NULL;
    if (rep_path(r, path, sizeof path, rel)) {
        rep_missing(r, part, "path too long");
        return NULL;
    }
    if (!fs_exists(path)) {
        char why[4200];
        snprintf(why, sizeof why, "%s not found", rel);
        rep_missing(r, part, why);
        return NULL;
    }
    if (json_load_path(&j, path, &e)) rep_missing(r, part, e.msg);
    return j;
}

static double num_or_nan(const json_t *v) { return json_is_number(v) ? json_number_value(v) : NAN; }

/* ---- training ------------------------------------------------------------ */

static void sec_training(rep *r)
{
    sbuf_t *sb = r->out;
    char path[4096];
    uint8_t *data = NULL;
    size_t len = 0;
    err_t e = {0};
    sb_puts(sb, "<section id=\"training\"><h2>Training</h2>");
    if (rep_path(r, path, sizeof path, "train/log.jsonl") || !fs_exists(path)) {
        rep_missing(r, "Training curves", "train/log.jsonl not found");
        sb_puts(sb, "<p class=\"missing\">No training log.</p></section>");
        return;
    }
    if (fs_read_all(path, &data, &len, &e)) {
        rep_missing(r, "Training curves", e.msg);
        sb_puts(sb, "</section>");
        return;
    }
    size_t cap = 64, n = 0, bad = 0, lineno = 0;
    double *x = malloc(cap * sizeof *x), *loss = malloc(cap * sizeof *loss), *lr = malloc(cap * sizeof *lr);
    char first_bad[1200] = "";
    if (!x || !loss || !lr) sb->failed = 1;
    for (char *line = (char *)data, *next; !sb->failed && line && *line; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = 0;
        lineno++;
        if (!*line) continue;
        json_error_t je;
        json_t *j = json_loads(line, 0, &je);
        const json_t *step = json_object_get(j, "step");
        if (!json_is_integer(step)) {
            if (!bad++) snprintf(first_bad, sizeof first_bad, "train/log.jsonl: line %zu: not a step record", lineno);
            json_decref(j);
            continue;
        }
        if (n == cap) {
            cap *= 2;
            double *nx = realloc(x, cap * sizeof *x);
            if (nx) x = nx;
            double *nl = realloc(loss, cap * sizeof *loss);
            if (nl) loss = nl;
            double *nr = realloc(lr, cap * sizeof *lr);
            if (nr) lr = nr;
            if (!nx || !nl || !nr) sb->failed = 1;
        }
        if (sb->failed) {
            json_decref(j);
            break;
        }
        x[n] = (double)json_integer_value(step);
        loss[n] = num_or_nan(json_object_get(j, "loss"));
        lr[n] = num_or_nan(json_object_get(j, "lr"));
        double s = num_or_nan(json_object_get(j, "seconds")), t = num_or_nan(json_object_get(j, "tokens"));
        if (isfinite(s)) r->train_seconds += s;
        if (isfinite(t)) r->train_tokens += t;
        n++;
        json_decref(j);
    }
    free(data);
    r->steps = n;
    if (n && !sb->failed) {
        sb_printf(sb, "<p>%zu steps logged; final loss ", n);
        html_num(sb, loss[n - 1]);
        sb_puts(sb, ".</p><div class=\"charts\">");
        html_line_chart(sb, "Training loss", "curve-loss", "step", "loss", x, loss, n);
        html_line_chart(sb, "Learning rate", "curve-lr", "step", "lr", x, lr, n);
        sb_puts(sb, "</div>");
    } else {
        rep_missing(r, "Training curves", "train/log.jsonl has no step records");
    }
    if (bad) {
        sb_printf(sb, "<p class=\"warn\">%zu log lines skipped (first: ", bad);
        html_text(sb, first_bad);
        sb_puts(sb, ").</p>");
    }
    free(x), free(loss), free(lr);

    json_t *st = rep_json(r, "Training state", "train/state.json");
    const json_t *cfg = json_object_get(st, "config");
    if (json_is_object(cfg)) {
        sb_puts(sb, "<table class=\"kv\"><tr><th colspan=\"2\">Training configuration (train/state.json)</th></tr>");
        const char *k;
        const json_t *v;
        json_object_foreach((json_t *)cfg, k, v)
        {
            /* strings as text, other values as JSON */
            char *txt = json_is_string(v) ? NULL : json_dumps(v, JSON_ENCODE_ANY | JSON_REAL_PRECISION(6));
            sb_puts(sb, "<tr><td>");
            html_text(sb, k);
            sb_puts(sb, "</td><td>");
            html_text(sb, json_is_string(v) ? json_string_value(v) : txt ? txt : "?");
            sb_puts(sb, "</td></tr>");
            free(txt);
        }
        const json_t *model = json_object_get(st, "model");
        if (json_is_string(model)) {
            sb_puts(sb, "<tr><td>latest checkpoint</td><td>");
            html_text(sb, json_string_value(model));
            sb_puts(sb, "</td></tr>");
        }
        sb_puts(sb, "</table>");
    }
    json_decref(st);
    sb_puts(sb, "</section>");
}

/* ---- stages: throughput and failures ------------------------------------- */

typedef struct reason_row {
    char stage[16];
    char reason[128];
    double count;
} reason_row;

typedef struct reasons {
    reason_row *row;
    size_t n, cap;
} reasons;

static void reasons_add(reasons *rs, const char *stage, const char *reason, double count)
{
    for (size_t i = 0; i < rs->n; i++)
        if (!strcmp(rs->row[i].stage, stage) && !strcmp(rs->row[i].reason, reason)) {
            rs->row[i].count += count;
            return;
        }
    if (rs->n == rs->cap) {
        size_t cap = rs->cap ? rs->cap * 2 : 16;
        reason_row *nr = realloc(rs->row, cap * sizeof *nr);
        if (!nr) return;
        rs->row = nr, rs->cap = cap;
    }
    reason_row *row = &rs->row[rs->n++];
    snprintf(row->stage, sizeof row->stage, "%s", stage);
    snprintf(row->reason, sizeof row->reason, "%s", reason);
    row->count = count;
}

static void reasons_from_object(reasons *rs, const char *stage, const json_t *by)
{
    const char *k;
    const json_t *v;
    json_object_foreach((json_t *)by, k, v) if (json_is_number(v)) reasons_add(rs, stage, k, json_number_value(v));
}

static void stage_row(sbuf_t *sb, const char *stage, const char *what, double items, double seconds, double failed)
{
    sb_puts(sb, "<tr class=\"stage\"><td>");
    html_text(sb, stage);
    sb_puts(sb, "</td><td>");
    html_text(sb, what);
    sb_puts(sb, "</td><td>");
    html_num(sb, items);
    sb_puts(sb, "</td><td>");
    html_num(sb, seconds);
    sb_puts(sb, "</td><td>");
    html_num(sb, seconds > 0 ? items / seconds : NAN);
    sb_puts(sb, "</td><td>");
    html_num(sb, failed);
    sb_puts(sb, "</td></tr>");
}

/* seconds: a number, or an object whose "wall" is one. */
static double seconds_of(const json_t *j)
{
    const json_t *s = json_object_get(j, "seconds");
    return json_is_object(s) ? num_or_nan(json_object_get(s, "wall")) : num_or_nan(s);
}

/* Caption failures are one JSON line each in the dump's failures files. */
static void caption_failure_reasons(rep *r, reasons *rs)
{
    char dir[4096];
    if (rep_path(r, dir, sizeof dir, "captions")) return;
    DIR *d = opendir(dir);
    if (!d) return;
    char **names = NULL;
    size_t n = 0;
    for (struct dirent *de; (de = readdir(d));) {
        if (strncmp(de->d_name, "failures-", 9) || !strstr(de->d_name, ".jsonl.zst")) continue;
        char **nn = realloc(names, (n + 1) * sizeof *nn);
        if (!nn) break;
        names = nn;
        if ((names[n] = strdup(de->d_name))) n++;
    }
    closedir(d);
    for (size_t i = 0; i < n; i++) {
        char path[4400];
        zio_reader *zr = NULL;
        err_t e = {0};
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        if (zio_reader_open(&zr, path, &e)) {
            rep_missing(r, "Caption failures", e.msg);
        } else {
            const char *line;
            size_t len;
            int rc;
            while ((rc = zio_read_line(zr, &line, &len, &e)) == 1) {
                json_t *j = json_loadb(line, len, 0, NULL);
                const json_t *why = json_object_get(j, "failure");
                if (json_is_string(why)) reasons_add(rs, "captions", json_string_value(why), 1);
                json_decref(j);
            }
            if (rc < 0) rep_missing(r, "Caption failures", e.msg);
        }
        zio_reader_close(zr);
        free(names[i]);
    }
    free(names);
}

static void sec_stages(rep *r)
{
    sbuf_t *sb = r->out;
    reasons rs = {0};
    sb_puts(sb, "<section id=\"stages\"><h2>Stages</h2><table class=\"stages\"><tr><th>stage</th><th>unit</th>"
                "<th>done</th><th>seconds</th><th>per second</th><th>failed</th></tr>");
    json_t *man = rep_json(r, "Manifest summary", "manifest/summary.json");
    if (man) {
        const json_t *rej = json_object_get(man, "rejected");
        stage_row(sb, "shard", "images", num_or_nan(json_object_get(man, "images")), seconds_of(man),
                  num_or_nan(json_object_get(rej, "total")));
        reasons_from_object(&rs, "shard", json_object_get(rej, "by_reason"));
    }
    char path[4096];
    const char *store_summary = "store/summary.json";
    if (!rep_path(r, path, sizeof path, store_summary) && !fs_exists(path)) store_summary = "store/extract-summary.json";
    json_t *store = rep_json(r, "Feature store summary", store_summary);
    if (store) {
        stage_row(sb, "extract", "images", num_or_nan(json_object_get(store, "encoded")), seconds_of(store),
                  num_or_nan(json_object_get(store, "failed")));
        reasons_from_object(&rs, "extract", json_object_get(store, "failures_by_reason"));
    }
    if (r->steps) stage_row(sb, "train", "tokens", r->train_tokens, r->train_seconds, NAN);
    json_t *cap = rep_json(r, "Caption dump", "captions/index.json");
    if (cap) {
        stage_row(sb, "caption", "images", num_or_nan(json_object_get(cap, "captions")), seconds_of(cap),
                  num_or_nan(json_object_get(cap, "failures")));
        caption_failure_reasons(r, &rs);
    }
    if (!rep_path(r, path, sizeof path, "eval/summary.json") && fs_exists(path)) {
        json_t *ev = rep_json(r, "Eval summary", "eval/summary.json");
        if (ev) {
            stage_row(sb, "eval", "images", num_or_nan(json_object_get(ev, "images")), seconds_of(ev),
                      num_or_nan(json_object_get(ev, "failures")));
            reasons_from_object(&rs, "eval", json_object_get(ev, "failures_by_reason"));
        }
        json_decref(ev);
    }
    sb_puts(sb, "</table>");
    if (rs.n) {
        sb_puts(sb, "<h3>Failures by reason</h3><table class=\"failures\"><tr><th>stage</th><th>reason</th><th>count</th></tr>");
        for (size_t i = 0; i < rs.n; i++) {
            sb_puts(sb, "<tr class=\"failure\"><td>");
            html_text(sb, rs.row[i].stage);
            sb_puts(sb, "</td><td>");
            html_text(sb, rs.row[i].reason);
            sb_puts(sb, "</td><td>");
            html_num(sb, rs.row[i].count);
            sb_puts(sb, "</td></tr>");
        }
        sb_puts(sb, "</table>");
    } else {
        sb_puts(sb, "<p>No failures recorded.</p>");
    }
    free(rs.row);
    json_decref(man), json_decref(store), json_decref(cap);
    sb_puts(sb, "</section>");
}

/* ---- metrics ---------------------------------------------------------------- */

static int cmp_name(const void *a, const void *b)
{
    const char *x = *(char *const *)a, *y = *(char *const *)b;
    /* the run's own scores first, then any others (e.g. a control) by name */
    int xs = !strcmp(x, "scores.json"), ys = !strcmp(y, "scores.json");
    return xs != ys ? ys - xs : strcmp(x, y);
}

static void sec_metrics(rep *r)
{
    static const char *metrics[] = {"Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr", "SPICE", "images"};
    enum { NM = sizeof metrics / sizeof metrics[0], MAXF = 8 };
    sbuf_t *sb = r->out;
    char dir[4096];
    char *names[MAXF];
    json_t *scores[MAXF];
    size_t nf = 0;
    sb_puts(sb, "<section id=\"metrics\"><h2>Metrics</h2>");
    DIR *d = rep_path(r, dir, sizeof dir, "eval") ? NULL : opendir(dir);
    for (struct dirent *de; d && nf < MAXF && (de = readdir(d));) {
        size_t l = strlen(de->d_name);
        if (l < 11 || strcmp(de->d_name + l - 11, "scores.json")) continue;
        if ((names[nf] = strdup(de->d_name))) nf++;
    }
    if (d) closedir(d);
    qsort(names, nf, sizeof *names, cmp_name);
    size_t ok = 0;
    for (size_t i = 0; i < nf; i++) {
        char rel[300];
        snprintf(rel, sizeof rel, "eval/%s", names[i]);
        scores[i] = rep_json(r, "Metrics", rel);
        ok += scores[i] != NULL;
    }
    if (!ok) {
        if (!nf) rep_missing(r, "Metrics", "no eval/scores.json");
        sb_puts(sb, "<p class=\"missing\">No scores.</p>");
    } else {
        sb_puts(sb, "<table class=\"metrics\"><tr><th>metric</th>");
        for (size_t i = 0; i < nf; i++)
            if (scores[i]) {
                sb_puts(sb, "<th>");
                html_text(sb, names[i]);
                sb_puts(sb, "</th>");
            }
        sb_puts(sb, "</tr>");
        for (size_t m = 0; m < NM; m++) {
            sb_printf(sb, "<tr class=\"metric\"><td>%s</td>", metrics[m]);
            for (size_t i = 0; i < nf; i++) {
                if (!scores[i]) continue;
                const json_t *v = json_object_get(scores[i], metrics[m]);
                sb_puts(sb, "<td>");
                if (json_is_number(v)) html_num(sb, json_number_value(v));
                else sb_puts(sb, "<span class=\"na\">not computed</span>");
                sb_puts(sb, "</td>");
            }
            sb_puts(sb, "</tr>");
        }
        sb_puts(sb, "</table>");
        for (size_t i = 0; i < nf; i++) {
            const json_t *note = json_object_get(scores[i], "note");
            if (!json_is_string(note)) continue;
            sb_puts(sb, "<p class=\"note\">");
            html_text(sb, names[i]);
            sb_puts(sb, ": ");
            html_text(sb, json_string_value(note));
            sb_puts(sb, "</p>");
        }
        /* the per-image CIDEr-D of the run's own scores (clipcap score --per-image) */
        const json_t *per = nf && scores[0] && !strcmp(names[0], "scores.json") ? json_object_get(scores[0], "per_image") : NULL;
        size_t np = json_object_size(per), k = 0;
        double *v = np ? malloc(np * sizeof *v) : NULL;
        const char *key;
        const json_t *img;
        if (v) {
            json_object_foreach((json_t *)per, key, img)
            {
                double c = num_or_nan(json_object_get(img, "CIDEr"));
                if (isfinite(c)) v[k++] = c;
            }
        }
        if (k) {
            sb_printf(sb, "<h3>Per-image CIDEr-D (%zu images)</h3>", k);
            html_histogram(sb, "Per-image CIDEr-D", "bar", "CIDEr-D", v, k, 20);
        } else {
            rep_missing(r, "Per-image CIDEr-D", "eval/scores.json has no per_image CIDEr (score with --per-image)");
        }
        free(v);
    }
    for (size_t i = 0; i < nf; i++) json_decref(scores[i]), free(names[i]);
    sb_puts(sb, "</section>");
}

/* ---- gallery ------------------------------------------------------------------ */

typedef struct gal_item {
    char *key, *caption;
    int found;
} gal_item;

/* The generated captions to show: the first o->gallery of eval/results.json,
 * else of the caption dump (in its shard order). */
static size_t gallery_pick(rep *r, gal_item *items, const char **source)
{
    size_t n = 0, want = (size_t)r->o->gallery;
    char path[4096];
    if (!rep_path(r, path, sizeof path, "eval/results.json") && fs_exists(path)) {
        json_t *res = rep_json(r, "Gallery", "eval/results.json");
        *source = "eval/results.json";
        for (size_t i = 0; i < json_array_size(res) && n < want; i++) {
            const json_t *it = json_array_get(res, i), *id = json_object_get(it, "image_id"),
                         *cap = json_object_get(it, "caption");
            if (!json_is_string(cap) || !(json_is_integer(id) || json_is_string(id))) continue;
            char key[64];
            if (json_is_integer(id)) snprintf(key, sizeof key, "%lld", (long long)json_integer_value(id));
            else snprintf(key, sizeof key, "%s", json_string_value(id));
            items[n].key = strdup(key);
            items[n].caption = strdup(json_string_value(cap));
            if (items[n].key && items[n].caption) n++;
        }
        json_decref(res);
        return n;
    }
    json_t *idx = rep_json(r, "Gallery", "captions/index.json");
    const json_t *shards = json_object_get(idx, "shards");
    *source = "captions/";
    for (size_t s = 0; s < json_array_size(shards) && n < want; s++) {
        const json_t *file = json_object_get(json_array_get(shards, s), "file");
        char rel[512];
        zio_reader *zr = NULL;
        err_t e = {0};
        if (!json_is_string(file)) continue;
        snprintf(rel, sizeof rel, "captions/%s", json_string_value(file));
        if (rep_path(r, path, sizeof path, rel) || zio_reader_open(&zr, path, &e)) {
            rep_missing(r, "Gallery", e.msg[0] ? e.msg : rel);
            continue;
        }
        const char *line;
        size_t len;
        while (n < want && zio_read_line(zr, &line, &len, &e) == 1) {
            json_t *j = json_loadb(line, len, 0, NULL);
            const json_t *key = json_object_get(j, "key"), *cap = json_object_get(j, "caption");
            if (json_is_string(key) && json_is_string(cap)) {
                items[n].key = strdup(json_string_value(key));
                items[n].caption = strdup(json_string_value(cap));
                if (items[n].key && items[n].caption) n++;
            }
            json_decref(j);
        }
        zio_reader_close(zr);
    }
    json_decref(idx);
    return n;
}

static void gallery_card(rep *r, const manifest_record_t *rec, const gal_item *it)
{
    sbuf_t *sb = r->out;
    uint8_t *data = NULL;
    size_t len = 0;
    err_t e = {0};
    sbuf_t uri = {0};
    int w = 0, h = 0;
    sb_puts(sb, "<figure class=\"card\">");
    if (!manifest_read_image(rec, &data, &len, &e) && !thumb_webp_uri(data, len, r->o->thumb_side, &uri, &w, &h, &e) && !uri.failed) {
        sb_printf(sb, "<img width=\"%d\" height=\"%d\" alt=\"", w, h);
        html_text(sb, rec->key);
        sb_puts(sb, "\" src=\"");
        sb_append(sb, uri.data, uri.len);
        sb_puts(sb, "\">");
    } else {
        sb_puts(sb, "<div class=\"noimg\">image unavailable: ");
        html_text(sb, e.msg);
        sb_puts(sb, "</div>");
    }
    free(data);
    sb_free(&uri);
    sb_puts(sb, "<figcaption><div class=\"key\">");
    html_text(sb, rec->key);
    sb_puts(sb, "</div><div class=\"gen\">");
    html_text(sb, it->caption);
    sb_puts(sb, "</div><ul class=\"refs\">");
    for (size_t i = 0; i < rec->n_captions; i++) {
        sb_puts(sb, "<li>");
        html_text(sb, rec->captions[i]);
        sb_puts(sb, "</li>");
    }
    sb_puts(sb, "</ul></figcaption></figure>");
}

static void sec_gallery(rep *r)
{
    sbuf_t *sb = r->out;
    const char *source = "";
    sb_puts(sb, "<section id=\"gallery\"><h2>Gallery</h2>");
    gal_item *items = calloc((size_t)(r->o->gallery > 0 ? r->o->gallery : 1), sizeof *items);
    size_t n = items && r->o->gallery > 0 ? gallery_pick(r, items, &source) : 0;
    manifest_t *m = NULL;
    char path[4096];
    err_t e = {0};
    if (!n) {
        if (r->o->gallery > 0) rep_missing(r, "Gallery", "no generated captions (eval/results.json or captions/)");
    } else if (rep_path(r, path, sizeof path, "manifest") || manifest_open(&m, path, &e)) {
        rep_missing(r, "Gallery images", e.msg[0] ? e.msg : "manifest/ not found");
    } else {
        sb_printf(sb, "<p>Generated captions from %s (bold) above the references; the first %zu images.</p><div class=\"grid\">",
                  source, n);
        /* cards follow manifest order; one pass over the shards finds them */
        size_t found = 0;
        for (int s = 0; s < manifest_num_shards(m) && found < n; s++) {
            manifest_shard_reader *sr = NULL;
            manifest_record_t rec;
            int rc = manifest_shard_open(&sr, m, s, &e);
            while (rc >= 0 && found < n && (rc = manifest_shard_next(sr, &rec, &e)) == 1)
                for (size_t i = 0; i < n; i++)
                    if (!items[i].found && !strcmp(items[i].key, rec.key)) {
                        items[i].found = 1;
                        found++;
                        gallery_card(r, &rec, &items[i]);
                    }
            if (rc < 0) rep_missing(r, "Gallery images", e.msg);
            manifest_shard_close(sr);
        }
        sb_puts(sb, "</div>");
        if (found < n) {
            char why[200];
            snprintf(why, sizeof why, "%zu of %zu captioned images are not in manifest/", n - found, n);
            rep_missing(r, "Gallery images", why);
        }
        manifest_close(m);
    }
    for (size_t i = 0; i < n; i++) free(items[i].key), free(items[i].caption);
    free(items);
    sb_puts(sb, "</section>");
}

/* ---- page ------------------------------------------------------------------------ */

static const char report_css[] =
    "body{font-family:sans-serif;margin:24px;color:#222;background:#fff;max-width:1200px}"
    "h1{font-size:22px}h2{font-size:18px;border-bottom:1px solid #ccc;padding-bottom:4px;margin-top:28px}"
    "h3{font-size:15px}table{border-collapse:collapse;margin:8px 0}"
    "td,th{border:1px solid #ddd;padding:3px 8px;text-align:left;font-size:13px}th{background:#f2f2f2}"
    ".charts{display:flex;flex-wrap:wrap;gap:12px}.chart{background:#fafafa}.plot{fill:#fff;stroke:#bbb}"
    ".ctitle{font-size:13px;font-weight:bold}.tick,.axis{font-size:11px;fill:#555}"
    ".curve-loss{stroke:#c0392b;stroke-width:1.5}.curve-lr{stroke:#2471a3;stroke-width:1.5}"
    ".bar{fill:#7d3c98}.na{color:#999}.missing,.warn{color:#a04000}.note{color:#555;font-size:12px}"
    ".grid{display:flex;flex-wrap:wrap;gap:12px;align-items:flex-start}.card{width:220px;margin:0;border:1px solid #ddd;padding:8px;"
    "background:#fcfcfc}.card img{display:block;margin:0 auto 6px;image-rendering:auto}"
    ".key{font-size:11px;color:#777}.gen{font-weight:bold;font-size:13px;margin:4px 0;overflow-wrap:anywhere}"
    ".refs{font-size:12px;color:#444;padding-left:16px;margin:0}.noimg{color:#a04000;font-size:12px}";

int report_build(const report_opts *o, sbuf_t *html, err_t *e)
{
    rep r = {.o = o};
    sbuf_t body = {0};
    r.out = &body;
    sec_training(&r);
    sec_stages(&r);
    sec_metrics(&r);
    sec_gallery(&r);
    sb_puts(html, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>clipcap run report: ");
    html_text(html, o->run_dir);
    sb_printf(html, "</title><style>%s</style></head><body><h1>clipcap run report: ", report_css);
    html_text(html, o->run_dir);
    sb_puts(html, "</h1><nav><a href=\"#training\">Training</a> · <a href=\"#stages\">Stages</a> · "
                  "<a href=\"#metrics\">Metrics</a> · <a href=\"#gallery\">Gallery</a></nav>");
    if (r.missing.len) {
        sb_puts(html, "<section id=\"missing\"><h2>Missing</h2><ul>");
        sb_append(html, r.missing.data, r.missing.len);
        sb_puts(html, "</ul></section>");
    }
    sb_append(html, body.data, body.len);
    sb_puts(html, "</body></html>\n");
    int failed = body.failed || r.missing.failed || html->failed;
    sb_free(&body);
    sb_free(&r.missing);
    return failed ? err_set(e, ERR_NOMEM, "%s: out of memory building the report", o->run_dir) : 0;
}

int report_write(const report_opts *o, const char *out_path, err_t *e)
{
    sbuf_t html = {0};
    int rc = report_build(o, &html, e);
    if (!rc) rc = fs_write_atomic(out_path, html.data, html.len, e);
    sb_free(&html);
    return rc;
}
