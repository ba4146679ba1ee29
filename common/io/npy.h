/* NumPy .npy files of float32 (format version 1.0, '<f4', C order).
 * Writes are atomic (tmp + fsync + rename). The reader accepts what
 * numpy.save writes for a little-endian float32 C-order array (versions
 * 1.0-3.0) and rejects anything else with ERR_UNSUPPORTED / ERR_FORMAT. */
#ifndef CLIPCAP_NPY_H
#define CLIPCAP_NPY_H

#include <stdint.h>
#include "core/log.h"

#define NPY_MAX_DIMS 8

int npy_write_f32(const char *path, const float *data, const int64_t *shape, int ndim, err_t *e);
/* shape must hold NPY_MAX_DIMS entries; *data is malloc'd (free it). */
int npy_read_f32(const char *path, float **data, int64_t *shape, int *ndim, err_t *e);

#endif
