#include "run/run_summary.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "core/fsutil.h"
#include "io/json_util.h"

int run_control_write(const char *results, const char *control, err_t *e)
{
    json_t *r = NULL, *out = NULL;
    int rc = json_load_path(&r, results, e);
    if (rc) return rc;
    size_t n = json_array_size(r);
    if (!json_is_array(r) || !n) rc = err_set(e, ERR_FORMAT, "%s: not a non-empty COCO results list", results);
    if (!rc && !(out = json_array())) rc = err_set(e, ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n && !rc; i++) {
        json_t *id = json_object_get(json_array_get(r, i), "image_id");
        json_t *cap = json_object_get(json_array_get(r, (i + 1) % n), "caption");
        if (!id || !json_is_string(cap))
            rc = err_set(e, ERR_FORMAT, "%s: result %zu: needs image_id and a string caption", results, i);
        else if (json_array_append_new(out, json_pack("{s:O, s:O}", "image_id", id, "caption", cap)))
            rc = err_set(e, ERR_NOMEM, "out of memory");
    }
    char *text = rc ? NULL : json_dumps(out, JSON_COMPACT);
    if (!rc && !text) rc = err_set(e, ERR_NOMEM, "out of memory");
    if (!rc) rc = fs_write_atomic(control, text, strlen(text), e);
    free(text);
    json_decref(out);
    json_decref(r);
    return rc;
}

static double score_of(const json_t *scores, const char *metric)
{
    const json_t *v = json_object_get(scores, metric);
    return json_is_number(v) ? json_number_value(v) : -1.0;
}

/* The references of each image id, from a COCO captions file. */
static int refs_by_image(const char *annotations, json_t **out, err_t *e)
{
    json_t *a = NULL, *anns;
    int rc = json_load_path(&a, annotations, e);
    if (!rc && json_get_array(a, "annotations", &anns, e)) rc = err_wrap(e, "%s", annotations);
    *out = rc ? NULL : json_object();
    size_t i;
    json_t *x;
    if (!rc) json_array_foreach(anns, i, x) {
            char key[32];
            json_t *id = json_object_get(x, "image_id"), *cap = json_object_get(x, "caption");
            if (!json_is_integer(id) || !json_is_string(cap)) continue;
            snprintf(key, sizeof key, "%lld", (long long)json_integer_value(id));
            json_t *list = json_object_get(*out, key);
            if (!list) json_object_set_new(*out, key, list = json_array());
            json_array_append(list, cap);
        }
    json_decref(a);
    return rc;
}

int run_summary_print(const char *eval_dir, const char *annotations, int examples, FILE *out, err_t *e)
{
    char path[4200];
    json_t *sc = NULL, *ctl = NULL, *res = NULL, *refs = NULL;
    int rc = fs_join(path, sizeof path, eval_dir, "scores.json", e);
    if (rc || !fs_exists(path)) return rc;
    if ((rc = json_load_path(&sc, path, e))) return rc;
    if (!(rc = fs_join(path, sizeof path, eval_dir, "control-scores.json", e))) rc = json_load_path(&ctl, path, e);
    if (!rc && !(rc = fs_join(path, sizeof path, eval_dir, "results.json", e))) rc = json_load_path(&res, path, e);
    if (!rc) rc = refs_by_image(annotations, &refs, e);
    if (!rc) {
        static const char *const metrics[] = {"Bleu_1", "Bleu_4", "ROUGE_L", "CIDEr"};
        fprintf(out, "held-out evaluation (%zu images; control = each image given the next image's caption):\n",
                json_array_size(res));
        fprintf(out, "  %-8s %9s %9s\n", "metric", "captions", "control");
        for (size_t m = 0; m < sizeof metrics / sizeof metrics[0]; m++)
            fprintf(out, "  %-8s %9.3f %9.3f\n", metrics[m], score_of(sc, metrics[m]), score_of(ctl, metrics[m]));
        double c = score_of(sc, "CIDEr"), k = score_of(ctl, "CIDEr");
        if (k > 0) fprintf(out, "  CIDEr-D is %.1fx the control's\n", c / k);
        size_t n = json_array_size(res);
        if (examples > 0 && n) fprintf(out, "examples (generated | references):\n");
        for (size_t i = 0; i < n && i < (size_t)examples; i++) {
            json_t *r = json_array_get(res, i);
            char key[64];
            json_t *id = json_object_get(r, "image_id");
            if (json_is_string(id)) snprintf(key, sizeof key, "%s", json_string_value(id));
            else snprintf(key, sizeof key, "%lld", (long long)json_integer_value(id));
            fprintf(out, "  image %s: %s\n", key, json_string_value(json_object_get(r, "caption")));
            json_t *list = json_object_get(refs, key), *x;
            size_t j;
            json_array_foreach(list, j, x) {
                if (j == 2) break;
                fprintf(out, "    ref: %s\n", json_string_value(x));
            }
        }
    }
    json_decref(sc);
    json_decref(ctl);
    json_decref(res);
    json_decref(refs);
    return rc;
}
