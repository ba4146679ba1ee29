/* safetensors files (the Hugging Face hub format): an 8-byte little-endian
 * header length N, N bytes of JSON {"name": {"dtype", "shape",
 * "data_offsets": [begin, end]}, "__metadata__": {str: str}}, then the data.
 *
 * The reader mmaps the file and validates every header field before any
 * tensor is handed out: header length vs file size, JSON syntax, known
 * dtype, shape x dtype size == end - begin, offsets inside the data area,
 * no two tensors overlapping. Any violation is ERR_FORMAT naming the path
 * and the tensor. st_read_f32 converts F32/F16/BF16/F64 (and the integer and
 * bool dtypes) to float; st_dtype_is_float tells weights from the rest.
 *
 * The writer writes F32 tensors atomically (tmp + fsync + rename). */
#ifndef CLIPCAP_SAFETENSORS_H
#define CLIPCAP_SAFETENSORS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include "core/log.h"

#define ST_MAX_DIMS 8

enum st_dtype { ST_F32, ST_F16, ST_BF16, ST_F64, ST_I64, ST_I32, ST_U8, ST_BOOL, ST_I16, ST_I8, ST_U16, ST_U32, ST_U64 };

typedef struct st_tensor {
    const char *name;
    enum st_dtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    size_t offset, nbytes; /* offset from the start of the data area */
} st_tensor;

typedef struct st_file st_file;

int st_open(st_file **f, const char *path, err_t *e);
/* Parse a file image already in memory (fuzzing, embedded data). The buffer
 * is borrowed and must outlive f; name is used in messages. */
int st_open_buffer(st_file **f, const uint8_t *data, size_t len, const char *name, err_t *e);
/* NULL is allowed. */
void st_close(st_file *f);
int st_count(const st_file *f);
/* Tensors in header order. NULL when i is out of range. */
const st_tensor *st_tensor_at(const st_file *f, int i);
/* NULL when absent. */
const st_tensor *st_find(const st_file *f, const char *name);
/* The file's "__metadata__" object, or NULL (borrowed). */
const json_t *st_metadata(const st_file *f);
/* Raw bytes of a tensor (borrowed, valid until st_close). */
const uint8_t *st_data(const st_file *f, const st_tensor *t);
/* count must equal the tensor's element count. */
int st_read_f32(const st_file *f, const st_tensor *t, float *dst, size_t count, err_t *e);

typedef struct st_entry {
    const char *name;
    const float *data;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
} st_entry;
/* metadata may be NULL; otherwise an object of string values, written as
 * "__metadata__". Tensors are written in the order given. */
int st_write(const char *path, const st_entry *entries, int n, const json_t *metadata, err_t *e);

/* Shared by the .pt reader: element size, name ("F32"), and conversion of
 * count little-endian elements of dtype to float. */
size_t st_dtype_size(enum st_dtype dt);
const char *st_dtype_name(enum st_dtype dt);
/* F32, F16, BF16, F64: the dtypes a weight may have. */
int st_dtype_is_float(enum st_dtype dt);
void st_convert_f32(enum st_dtype dt, const uint8_t *src, float *dst, size_t count);

#endif
