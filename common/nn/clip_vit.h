/* CLIP's image tower (ViT) loaded from a hub directory as users have it:
 * config.json + model.safetensors of the whole CLIP model, or
 * pytorch_model.bin (torch.save zip) where a snapshot has only that; the
 * text tower's text_model.* tensors are skipped. The config decides every shape, so
 * ViT-B/32, B/16, L/14 and L/14-336 all load; each tensor's shape is checked
 * against the config and the first mismatch is reported by name.
 *
 * Forward (the hub's CLIPVisionModel + visual_projection): patchify (conv
 * with stride P, no bias) → prepend the class embedding → add positions →
 * pre_layrnorm → pre-norm blocks x += attn(ln1(x)); x += mlp(ln2(x)),
 * attention scaled by 1/sqrt(head_dim) with no mask, mlp = fc2(act(fc1)),
 * act = quick_gelu (or exact gelu when the config says "gelu") →
 * post_layernorm of the class token → visual_projection (no bias). The
 * result is NOT normalised: it is ClipCap's "CLIP embedding".
 *
 * Memory: all parameters in one ops_alloc'd buffer with named views, all
 * activations in a second one sized for max_batch at load time. A model is
 * not thread-safe (one forward at a time); parallelism is inside the ops. */
#ifndef CLIPCAP_CLIP_VIT_H
#define CLIPCAP_CLIP_VIT_H

#include "core/log.h"
#include "nn/ops.h"

typedef struct clip_vit clip_vit;

/* dir holds config.json and model.safetensors (or pytorch_model.bin), or
 * is openai's TorchScript file (ViT-B-32.pt, ...; a regular file): then the
 * config comes from the tensor shapes (docs/io.md) and the weights land in
 * the same buffer, so both forms of one model give the same bits and
 * fingerprint. max_batch >= 1. The model
 * borrows ops, which must outlive it. */
int clip_vit_load(clip_vit **m, ops_ctx *ops, const char *dir, int max_batch, err_t *e);
/* NULL is allowed. */
void clip_vit_free(clip_vit *m);
int clip_vit_image_size(const clip_vit *m);
int clip_vit_embed_dim(const clip_vit *m); /* projection_dim */
/* Weights fingerprint: XXH3-128 over the config's shape fields and every
 * loaded parameter's float32 bytes, in load order, as 32 hex characters.
 * Two directories with the same vision weights (in any dtype that converts
 * to the same floats) give the same fingerprint; the text tower is not part
 * of it. A context computing in another precision than fp32 (ops_ext.h)
 * adds its name to the hash: its embeddings are other numbers. */
const char *clip_vit_fingerprint(const clip_vit *m);
/* images: host float [B,3,S,S] already preprocessed (clip_preprocess);
 * out: host float [B, embed_dim], projected, NOT normalised.
 * 1 <= B <= max_batch, else ERR_ARG. */
int clip_vit_forward(clip_vit *m, const float *images, int B, float *out, err_t *e);

#endif
