#include "metrics/spice.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/fsutil.h"
#include "data/sbuf.h"
#include "io/json_util.h"
#include "metrics/jrun.h"

static int write_input(const char *path, const metric_item_t *items, size_t n, err_t *e)
{
    json_t *list = json_array();
    int oom = !list;
    for (size_t i = 0; i < n && !oom; i++) {
        json_t *refs = json_array(), *o = json_object();
        oom = !refs || !o;
        for (size_t r = 0; r < items[i].n_refs && !oom; r++) oom = json_array_append_new(refs, json_string(items[i].refs[r]));
        oom = oom || json_object_set_new(o, "image_id", json_integer((json_int_t)i)) ||
              json_object_set_new(o, "test", json_string(items[i].cand)) || json_object_set(o, "refs", refs) ||
              json_array_append(list, o);
        json_decref(refs);
        json_decref(o);
    }
    int rc = oom ? err_set(e, ERR_NOMEM, "%s: out of memory for %zu images", path, n)
                 : json_dump_file(list, path, JSON_COMPACT) ? err_set(e, ERR_IO, "%s: write failed", path) : 0;
    json_decref(list);
    return rc;
}

/* Java's JSON writer spells non-finite doubles NaN / Infinity, which is
 * not JSON; the toolkit (Python's json) reads them. They become null. */
static void put_sanitized(sbuf_t *sb, const char *s, size_t len)
{
    static const char *const bad[] = {"-Infinity", "Infinity", "NaN"};
    int in_str = 0;
    for (size_t i = 0; i < len;) {
        char c = s[i];
        if (in_str) {
            sb_append(sb, &s[i], c == '\\' && i + 1 < len ? 2 : 1);
            i += c == '\\' && i + 1 < len ? 2 : 1;
            if (c == '"') in_str = 0;
            continue;
        }
        size_t k = 0;
        for (size_t b = 0; b < 3 && !k; b++)
            if (!strncmp(s + i, bad[b], strlen(bad[b]))) k = strlen(bad[b]);
        if (k) {
            sb_puts(sb, "null");
            i += k;
            continue;
        }
        in_str = c == '"';
        sb_append(sb, &s[i++], 1);
    }
}

static int read_output(const char *path, size_t n, double *score, json_t **per_image, err_t *e)
{
    uint8_t *data = NULL;
    size_t len = 0;
    sbuf_t sb = {0};
    json_t *root = NULL, **by_image = calloc(n ? n : 1, sizeof *by_image);
    if (!by_image) return err_set(e, ERR_NOMEM, "out of memory for %zu images", n);
    int rc = fs_read_all(path, &data, &len, e);
    if (!rc) {
        put_sanitized(&sb, (const char *)data, len);
        if (sb.failed) rc = err_set(e, ERR_NOMEM, "%s: out of memory", path);
    }
    if (!rc) {
        json_error_t je;
        root = json_loadb(sb.data, sb.len, 0, &je);
        if (!root) rc = json_parse_error(e, &je, path, sb.data, sb.len, "");
    }
    if (!rc && (!json_is_array(root) || json_array_size(root) != n))
        rc = err_set(e, ERR_FORMAT, "%s: not an array of %zu image results", path, n);
    for (size_t k = 0; !rc && k < n; k++) {
        json_t *it = json_array_get(root, k), *id = json_object_get(it, "image_id");
        json_t *scores = json_object_get(it, "scores");
        json_t *f = json_object_get(json_object_get(scores, "All"), "f");
        json_int_t i = json_is_integer(id) ? json_integer_value(id) : -1;
        if (i < 0 || (size_t)i >= n || by_image[i])
            rc = err_set(e, ERR_FORMAT, "%s: result %zu: 'image_id' is not one of the images sent, once", path, k);
        else if (!json_is_object(scores) || (!json_is_number(f) && !json_is_null(f)))
            rc = err_set(e, ERR_FORMAT, "%s: result %zu: no number scores.All.f", path, k);
        else
            by_image[i] = scores;
    }
    if (!rc) {
        /* np.mean over images, in image order; null (NaN) poisons it */
        double sum = 0;
        for (size_t i = 0; i < n; i++) {
            json_t *f = json_object_get(json_object_get(by_image[i], "All"), "f");
            sum += json_is_number(f) ? json_number_value(f) : NAN;
        }
        *score = n ? sum / (double)n : NAN;
    }
    if (!rc && per_image) {
        *per_image = json_array();
        for (size_t i = 0; i < n && *per_image; i++)
            if (json_array_append(*per_image, by_image[i])) json_decref(*per_image), *per_image = NULL;
        if (!*per_image) rc = err_set(e, ERR_NOMEM, "out of memory for %zu SPICE scores", n);
    }
    json_decref(root);
    free(by_image);
    free(data);
    sb_free(&sb);
    return rc;
}

int spice_score(const char *jar, const metric_item_t *items, size_t n, double *score, json_t **per_image, err_t *e)
{
    char dir[PATH_MAX], in[PATH_MAX + 16], out[PATH_MAX + 16];
    int trc = fs_scratch_template(dir, sizeof dir, "clipcap-spice", e);
    if (trc) return trc;
    if (!mkdtemp(dir)) return err_set(e, ERR_IO, "%s: %s", dir, strerror(errno));
    snprintf(in, sizeof in, "%s/in.json", dir);
    snprintf(out, sizeof out, "%s/out.json", dir);
    const char *const args[] = {in, "-out", out, "-subset", "-silent", NULL};
    int rc = write_input(in, items, n, e);
    if (!rc) {
        jrun_t j;
        rc = jrun_start(&j, jar, "8G", args, 0, e);
        if (!rc) rc = jrun_finish(&j, e);
    }
    if (!rc) rc = read_output(out, n, score, per_image, e);
    if (rc && per_image) *per_image = NULL;
    unlink(in);
    unlink(out);
    rmdir(dir);
    return rc;
}
