/* Named parameter tensors of a model laid out in one flat buffer: a table
 * of specs (name, shape, per-layer or not) gives each tensor's offset, the
 * model's named views, and st_entry views for loading and checkpointing.
 *
 * Layout rule (llm.c's): spec i occupies one contiguous block in table
 * order; a per-layer spec's block stacks the layers [L, shape...], so a
 * model indexes layer l as view + l * per_layer_size.
 * Checkpoint order and names: the non-layered specs that precede the first
 * layered spec, then for each layer l the layered specs named
 * PREFIX LAYER_PREFIX l "." NAME, then the remaining non-layered specs
 * (PREFIX NAME): the order of GPT-2's and ClipCap's state dicts. */
#ifndef CLIPCAP_PARAM_SPEC_H
#define CLIPCAP_PARAM_SPEC_H

#include <stddef.h>
#include <stdint.h>
#include "core/log.h"
#include "io/safetensors.h"
#include "io/tensorfile.h"
#include "nn/ops.h"

#define PARAM_NAME_MAX 128
#define PARAM_SPEC_MAX 64 /* specs per model table */

typedef struct param_spec {
    const char *name;
    int layered;
    int ndim;
    int64_t shape[2];
} param_spec;

/* Floats of one layer's (or the only) copy. */
size_t param_spec_elems(const param_spec *s);
/* Floats of all specs, layers included. */
size_t param_spec_total(const param_spec *specs, int n, int n_layer);
/* *views[i] = base + offset of spec i; all NULL when base is NULL. */
void param_spec_bind(const param_spec *specs, int n, int n_layer, float *base, float **const *views);
/* Fills out[] / names[] (when out is not NULL) and returns the number of
 * checkpoint tensors. */
int param_spec_entries(const param_spec *specs, int n, int n_layer, const char *prefix, const char *layer_prefix,
                       float *base, st_entry *out, char (*names)[PARAM_NAME_MAX]);

/* Fill every entry's data (backend memory) from the tensor of the same name
 * in tf, shapes checked (ERR_FORMAT / ERR_NOTFOUND naming the tensor). */
int param_entries_load(ops_ctx *ctx, const tensorfile *tf, const st_entry *en, int n, err_t *e);

#endif
