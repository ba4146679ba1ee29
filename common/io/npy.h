/* NumPy .npy files of float32 (format version 1.0, '<f4', C order).
 * Writes are atomic (tmp + fsync + rename). The reader accepts what
 * numpy.save writes for a little-endian float32 C-order array (versions
 * 1.0-3.0) and rejects anything else with ERR_UNSUPPORTED / ERR_FORMAT. */
#ifndef CLIPCAP_NPY_H
#define CLIPCAP_NPY_H

#include <stddef.h>
#include <stdint.h>
#include "core/log.h"

#define NPY_MAX_DIMS 8
#define NPY_HEADER_MAX 640 /* a version 1.0 header of up to NPY_MAX_DIMS dimensions */

/* The header of a float32 C-order array of this shape (magic, lengths,
 * dict; *len bytes, a multiple of 64), for writers that stream the rows
 * after it. path only names the file in errors. */
int npy_header_f32(uint8_t out[NPY_HEADER_MAX], size_t *len, const int64_t *shape, int ndim, const char *path, err_t *e);

int npy_write_f32(const char *path, const float *data, const int64_t *shape, int ndim, err_t *e);
/* shape must hold NPY_MAX_DIMS entries; *data is malloc'd (free it). */
int npy_read_f32(const char *path, float **data, int64_t *shape, int *ndim, err_t *e);

#endif
