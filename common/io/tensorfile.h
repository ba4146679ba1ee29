/* One way for model loaders to read weights from a hub safetensors file or
 * a PyTorch .pt (torch.save zip), detected by the first bytes ("PK" = zip).
 * Tensors keep the file's names and order; buffers such as
 * gpt.transformer.h.N.attn.bias (bool/uint8/float) are listed like any
 * tensor and loaders skip what they do not need. */
#ifndef CLIPCAP_TENSORFILE_H
#define CLIPCAP_TENSORFILE_H

#include <stdint.h>
#include "core/log.h"

#define TENSORFILE_MAX_DIMS 8

typedef struct tensorfile tensorfile;

int tensorfile_open(tensorfile **tf, const char *path, err_t *e);
/* NULL is allowed. */
void tensorfile_close(tensorfile *tf);
int tensorfile_count(const tensorfile *tf);
const char *tensorfile_name(const tensorfile *tf, int i);
/* Index or -1. */
int tensorfile_find(const tensorfile *tf, const char *name);
/* A safetensors file's __metadata__ string value, or NULL (absent, or a
 * .pt, which has none). Borrowed until tensorfile_close. */
const char *tensorfile_metadata(const tensorfile *tf, const char *key);
/* shape must hold TENSORFILE_MAX_DIMS entries; ERR_ARG if i out of range. */
int tensorfile_shape(const tensorfile *tf, int i, int64_t *shape, int *ndim);
/* Load tensor `name` into dst (float32) after checking that its shape is
 * exactly shape[0..ndim): mismatch -> ERR_FORMAT
 * "PATH: tensor NAME has shape [a, b], expected [c, d]"; missing ->
 * ERR_NOTFOUND "PATH: tensor NAME not found". Only weights pass: a dtype
 * other than F32/F16/BF16/F64 is ERR_FORMAT "PATH: tensor 'NAME': dtype I32
 * is not a float type (...)", and any NaN or infinity (after conversion:
 * an F64 beyond float's range too) ERR_FORMAT "PATH: tensor 'NAME': N
 * non-finite values (first at index I)". */
int tensorfile_load(const tensorfile *tf, const char *name, const int64_t *shape, int ndim, float *dst, err_t *e);

#endif
