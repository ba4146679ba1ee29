/* Ops that extend ops.h without changing it: forward-only ops that one
 * checkpoint family needs and the shared interface does not list. Same
 * conventions as ops.h (float32, backend memory, forward writes). Every
 * backend implements these too. */
#ifndef CLIPCAP_OPS_EXT_H
#define CLIPCAP_OPS_EXT_H

#include "nn/ops.h"

/* Exact GELU, 0.5·x·(1 + erf(x/√2)): hidden_act "gelu" of CLIP checkpoints
 * trained outside OpenAI (OpenCLIP/LAION); OpenAI's own use quick_gelu. */
void ops_gelu_erf(ops_ctx *ctx, float *out, const float *in, size_t n);

#endif
