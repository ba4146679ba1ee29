/* A ready-to-run captioning model: a ClipCap checkpoint (ours, safetensors,
 * or the paper's .pt, read directly) + GPT-2's config and tokenizer from a
 * hub directory, with the model configuration INFERRED from the
 * checkpoint's tensor shapes (mapping type, prefix length, clip length,
 * mapper layers, CLIP dim), so users never state it.
 *
 * Contract:
 * - GPT-2 weights come from the checkpoint's gpt.transformer.* (a tuned
 *   model) or else from the hub directory's weights (a frozen-GPT-2
 *   checkpoint holding only clip_project.*); gpt.lm_head.weight,
 *   attn.bias and attn.masked_bias are tolerated.
 * - Shapes that fit no configuration are an error naming the checkpoint
 *   and the tensor, before anything is computed: so is a clip_project.*
 *   tensor the inferred configuration does not use, and a checkpoint GPT-2
 *   whose width or layer count differs from the hub directory's config.
 * - captioner_run: CLIP embeddings (host [n, D]) → mapper → decode →
 *   text. Results are owned by the captioner until the next call.
 * - The fingerprint hashes the loaded float32 weights, not the file's
 *   bytes, so one model saved as .pt and as safetensors has one fingerprint;
 *   a context computing in another precision than fp32 adds it. */
#ifndef CLIPCAP_CAPTIONER_H
#define CLIPCAP_CAPTIONER_H

#include "core/log.h"
#include "nn/clipcap_model.h"
#include "nn/decode.h"
#include "nn/ops.h"
#include "text/bpe.h"

typedef struct captioner_options {
    const char *checkpoint; /* .safetensors or .pt */
    const char *gpt2_dir;   /* config.json, vocab.json, merges.txt (+ weights for frozen checkpoints) */
    const char *tokenizer_dir; /* vocab.json + merges.txt when not next to the model; NULL: gpt2_dir */
    decode_config decode;   /* max_batch <= 0: max_images · beam */
    int normalize_prefix;   /* L2-normalise CLIP embeddings first (as the model was trained) */
    int max_images;         /* images per mapper/decoder call; <= 0: 64 */
    const char *stop_text;  /* NULL: decode.stop_token as given; else its BPE encoding,
                               which must be exactly one token, replaces it */
    int any_clip;           /* captioner_check_clip accepts any CLIP */
} captioner_options;

/* decode_config_default, max_images 64, everything else 0/NULL. */
void captioner_options_default(captioner_options *o);

typedef struct captioner_caption {
    const char *text;       /* UTF-8, NUL-terminated (see captioner_utf8_replace) */
    const int32_t *tokens;
    int n_tokens;
    double logprob, score;
} captioner_caption;

typedef struct captioner captioner;

int captioner_open(captioner **out, ops_ctx *ctx, const captioner_options *opt, err_t *e);
void captioner_free(captioner *c); /* NULL is allowed */
const clipcap_config *captioner_config(const captioner *c);
const gpt2_config *captioner_gpt2_config(const captioner *c);
/* The decode settings in force (stop_text resolved, max_batch filled in). */
const decode_config *captioner_decode_config(const captioner *c);
int captioner_clip_dim(const captioner *c);
/* Where GPT-2's weights were read: the checkpoint or the hub directory's file. */
const char *captioner_gpt2_source(const captioner *c);
/* XXH3-128 of the checkpoint's tensors and the decode settings, 32 hex
 * characters: written beside every dumped caption. */
const char *captioner_fingerprint(const captioner *c);

/* The model fingerprint (schemas/feature-store.md) of the CLIP whose
 * embeddings the checkpoint was trained on: its "clip_fingerprint"
 * metadata (`clipcap train` writes it), "" when the file does not say. */
const char *captioner_clip_fingerprint(const captioner *c);
/* Embeddings of CLIP fingerprint fp (what names them, for the message)
 * must be the ones the checkpoint was trained on: ERR_ARG otherwise, unless
 * the checkpoint does not say or options.any_clip is set. */
int captioner_check_clip(const captioner *c, const char *fp, const char *what, err_t *e);

/* clip: host [n, D]. out: n · decode.num_captions captions, image i's at
 * [i·K, (i+1)·K), best first. */
int captioner_run(captioner *c, const float *clip, int n, captioner_caption *out, err_t *e);
/* out[i] = in[i] / ||in[i]||₂ for n rows of D (the reference's
 * normalize_prefix, in float32; an all-zero row stays zero). out may be in.
 * Training and captioning share it, so both see the same bits. */
void captioner_normalize_prefix(float *out, const float *in, int n, int D);

/* The text of a caption's bytes as the reference's tokenizer.decode gives
 * it (Python's bytes.decode("utf-8", errors="replace")): each maximal
 * invalid subpart becomes U+FFFD, so a caption cut inside a multi-byte
 * character is still valid UTF-8. malloc'd, NUL-terminated; NULL when out
 * of memory. */
char *captioner_utf8_replace(const char *bytes, size_t len);

/* The configuration that the tensor shapes of an open checkpoint imply for
 * a GPT-2 of width n_embd (path names the file in errors): MLP when
 * clip_project.model.0.weight exists (D = its columns, k = rows of
 * model.2.weight / n_embd, hidden = n_embd·k/2), Transformer when
 * clip_project.linear.weight and clip_project.prefix_const exist
 * (k = prefix_const rows, clip_len = linear rows / n_embd, layers = the
 * count of clip_project.transformer.layers.N). freeze_gpt2 is set when the
 * checkpoint holds no gpt.transformer.* tensors. */
int captioner_infer_config(const tensorfile *tf, const char *path, int n_embd, clipcap_config *cfg, err_t *e);

#endif
