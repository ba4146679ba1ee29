#include "nn/param_spec.h"

#include <stdio.h>
#include <stdlib.h>

size_t param_spec_elems(const param_spec *s)
{
    size_t n = 1;
    for (int d = 0; d < s->ndim; d++) n *= (size_t)s->shape[d];
    return n;
}

size_t param_spec_total(const param_spec *specs, int n, int n_layer)
{
    size_t t = 0;
    for (int i = 0; i < n; i++) t += param_spec_elems(&specs[i]) * (specs[i].layered ? (size_t)n_layer : 1);
    return t;
}

void param_spec_bind(const param_spec *specs, int n, int n_layer, float *base, float **const *views)
{
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        *views[i] = base ? base + off : NULL;
        off += param_spec_elems(&specs[i]) * (specs[i].layered ? (size_t)n_layer : 1);
    }
}

static void add_entry(const param_spec *s, float *data, st_entry *out, char (*names)[PARAM_NAME_MAX], int k,
                      const char *prefix, const char *layer_prefix, int layer)
{
    if (layer >= 0)
        snprintf(names[k], PARAM_NAME_MAX, "%s%s%d.%s", prefix, layer_prefix, layer, s->name);
    else
        snprintf(names[k], PARAM_NAME_MAX, "%s%s", prefix, s->name);
    out[k].name = names[k];
    out[k].data = data;
    out[k].ndim = s->ndim;
    for (int d = 0; d < s->ndim; d++) out[k].shape[d] = s->shape[d];
}

int param_spec_entries(const param_spec *specs, int n, int n_layer, const char *prefix, const char *layer_prefix,
                       float *base, st_entry *out, char (*names)[PARAM_NAME_MAX])
{
    int first_layered = n;
    for (int i = n - 1; i >= 0; i--)
        if (specs[i].layered) first_layered = i;
    size_t off[PARAM_SPEC_MAX];
    size_t o = 0;
    for (int i = 0; i < n && i < PARAM_SPEC_MAX; i++) {
        off[i] = o;
        o += param_spec_elems(&specs[i]) * (specs[i].layered ? (size_t)n_layer : 1);
    }
    int k = 0;
    for (int i = 0; i < first_layered; i++, k++)
        if (out) add_entry(&specs[i], base + off[i], out, names, k, prefix, layer_prefix, -1);
    for (int l = 0; l < n_layer; l++)
        for (int i = 0; i < n; i++) {
            if (!specs[i].layered) continue;
            if (out) add_entry(&specs[i], base + off[i] + (size_t)l * param_spec_elems(&specs[i]), out, names, k,
                               prefix, layer_prefix, l);
            k++;
        }
    for (int i = first_layered; i < n; i++) {
        if (specs[i].layered) continue;
        if (out) add_entry(&specs[i], base + off[i], out, names, k, prefix, layer_prefix, -1);
        k++;
    }
    return k;
}

static size_t entry_elems(const st_entry *en)
{
    size_t n = 1;
    for (int d = 0; d < en->ndim; d++) n *= (size_t)en->shape[d];
    return n;
}

int param_entries_load(ops_ctx *ctx, const tensorfile *tf, const st_entry *en, int n, err_t *e)
{
    /* through one host buffer, so that a device backend only needs ops_upload */
    size_t most = 1;
    for (int i = 0; i < n; i++) most = entry_elems(&en[i]) > most ? entry_elems(&en[i]) : most;
    float *tmp = malloc(most * sizeof *tmp);
    if (!tmp) return err_set(e, ERR_NOMEM, "loading %d tensors: out of memory", n);
    int rc = 0;
    for (int i = 0; i < n && !rc; i++) {
        rc = tensorfile_load(tf, en[i].name, en[i].shape, en[i].ndim, tmp, e);
        if (!rc) ops_upload(ctx, (float *)en[i].data, tmp, entry_elems(&en[i]));
    }
    free(tmp);
    return rc;
}
