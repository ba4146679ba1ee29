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

#endif
