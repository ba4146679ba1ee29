/* PyTorch .pt files written by torch.save(state_dict) (the zip format,
 * torch >= 1.6): ARCHIVE/data.pkl is a pickle of the state dict whose
 * tensors refer by persistent id to raw little-endian storages
 * ARCHIVE/data/KEY. TorchScript archives (torch.jit.save, e.g. openai's
 * ViT-B-32.pt) are read the same way: their data.pkl pickles the module
 * tree (__torch__.* objects whose state is a dict of attributes), and the
 * tensors are listed under their attribute paths ("visual.conv1.weight"),
 * the names state_dict() gives; the deflated code/ entries are never read. The reader mmaps the file, parses the zip directory
 * (stored entries; zip64 accepted), and runs the subset of the pickle
 * machine state dicts use (see docs/io.md). Tensors must be contiguous in
 * their storage (after the storage offset); views with other strides are
 * ERR_UNSUPPORTED naming the tensor. Any other callable, an unknown opcode
 * (named with its byte offset) or a top level that is not a dict of
 * tensors is an error naming the path. Legacy (pre-zip) files are rejected
 * with ERR_UNSUPPORTED. */
#ifndef CLIPCAP_TORCH_PT_H
#define CLIPCAP_TORCH_PT_H

#include <stddef.h>
#include <stdint.h>
#include "core/log.h"
#include "io/safetensors.h"

#define PT_MAX_DIMS 8

typedef struct pt_tensor {
    const char *name;
    enum st_dtype dtype;
    int ndim;
    int64_t shape[PT_MAX_DIMS];
    const uint8_t *data; /* first element, inside the mapping */
    size_t nbytes;       /* numel * element size */
} pt_tensor;

typedef struct pt_file pt_file;

int pt_open(pt_file **f, const char *path, err_t *e);
/* Parse a file image in memory (fuzzing); the buffer is borrowed. */
int pt_open_buffer(pt_file **f, const uint8_t *data, size_t len, const char *name, err_t *e);
/* NULL is allowed. */
void pt_close(pt_file *f);
int pt_count(const pt_file *f);
/* State-dict order. NULL when i is out of range. */
const pt_tensor *pt_tensor_at(const pt_file *f, int i);
const pt_tensor *pt_find(const pt_file *f, const char *name);
/* count must equal the tensor's element count. */
int pt_read_f32(const pt_file *f, const pt_tensor *t, float *dst, size_t count, err_t *e);

/* Plain pickles that hold tensors (pickle.dump of Python objects with
 * torch tensors inside, e.g. the paper's parse_coco.py output). A tensor
 * there is _rebuild_tensor_v2 of a storage that pickles as
 * torch.storage._load_from_bytes(bytes of a legacy torch.save); the bytes
 * are read in place from the mapped file. The same restricted machine runs
 * (nothing is executed; unknown callables are ERR_UNSUPPORTED). Values are
 * borrowed from the pt_pickle and valid until pt_pickle_close. */
typedef struct pt_pickle pt_pickle;
typedef struct pk_obj pt_value;
enum pt_kind { PT_ABSENT, PT_NONE, PT_BOOL, PT_INT, PT_FLOAT, PT_STR, PT_LIST, PT_DICT, PT_TENSOR, PT_OTHER };

int pt_pickle_open(pt_pickle **p, const char *path, err_t *e);
/* NULL is allowed. */
void pt_pickle_close(pt_pickle *p);
const pt_value *pt_pickle_root(const pt_pickle *p);
/* PT_ABSENT for NULL (a missing key or index); tuples are PT_LIST. */
enum pt_kind pt_value_kind(const pt_value *v);
/* Items of a list/tuple, pairs of a dict, else 0. */
size_t pt_value_len(const pt_value *v);
/* Item i of a list/tuple, else NULL. */
const pt_value *pt_value_at(const pt_value *v, size_t i);
/* The value of string key `key` of a dict, else NULL. */
const pt_value *pt_dict_get(const pt_value *d, const char *key);
/* An int's (or bool's) value, else 0: check the kind first. */
int64_t pt_value_int(const pt_value *v);
/* A string's UTF-8 text, else NULL. */
const char *pt_value_str(const pt_value *v);
/* A tensor as a pt_tensor (data inside the mapping; read it with
 * pt_tensor_f32); name labels errors and becomes out->name. */
int pt_value_tensor(const pt_pickle *p, const pt_value *v, const char *name, pt_tensor *out, err_t *e);
/* Elements [first, first + count) of t as float32. */
void pt_tensor_f32(const pt_tensor *t, size_t first, size_t count, float *dst);

#endif
