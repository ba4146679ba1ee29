/* CLIP's image preprocessing, bit-exact with openai/CLIP's `_transform`
 * (Pillow 9.4 + torchvision 0.14):
 *   Resize(S, BICUBIC) -> CenterCrop(S) -> convert("RGB") -> ToTensor -> Normalize
 * from the encoded bytes of a JPEG, PNG or WebP file (format sniffed from
 * the magic bytes). Output: float32 [3, S, S] (channel-major), each value
 * ((float)v / 255 - mean[c]) / std[c] computed in float32 as torch does.
 *
 * fast_resize = k > 0: JPEGs are decoded at a reduced DCT scale (libjpeg's
 * scale_denom 2, 4 or 8) as long as the decoded shorter side stays >= k*S,
 * then the same resize; not bit-exact. k = 1 is the fastest, k = 2 keeps
 * the bicubic filter doing at least a 2x reduction and stays much closer
 * (measured differences in docs/image.md). Other formats are unaffected.
 *
 * Thread-safe and re-entrant: no shared mutable state; each call allocates
 * and frees its own buffers. Errors come from the decoders (ERR_FORMAT,
 * ERR_UNSUPPORTED, ERR_LIMIT, ERR_NOMEM) or ERR_ARG for a bad config; the
 * message says why, the caller adds the file or record. */
#ifndef CLIPCAP_CLIP_PREPROCESS_H
#define CLIPCAP_CLIP_PREPROCESS_H

#include <stddef.h>
#include <stdint.h>
#include "image/image.h"

#define CLIP_MEAN_R 0.48145466f
#define CLIP_MEAN_G 0.4578275f
#define CLIP_MEAN_B 0.40821073f
#define CLIP_STD_R 0.26862954f
#define CLIP_STD_G 0.26130258f
#define CLIP_STD_B 0.27577711f

typedef struct clip_preprocess_cfg {
    int image_size;      /* S: from the CLIP config's vision_config.image_size */
    int fast_resize;     /* 0 = exact (default); k = 1..8: reduced-DCT JPEG decode, shorter side >= k*S */
    image_limits limits; /* 0 fields = defaults */
    float mean[3], std[3];
} clip_preprocess_cfg;

/* Exact mode, CLIP's mean/std, default limits. */
void clip_preprocess_cfg_default(clip_preprocess_cfg *cfg, int image_size);

/* out: 3*S*S floats. info (may be NULL): source width/height/format/mode. */
int clip_preprocess(const uint8_t *data, size_t len, const clip_preprocess_cfg *cfg, float *out, image_info *info,
                    err_t *e);

/* The same up to the 8-bit RGB centre crop (S*S*3 bytes, row-major HWC),
 * i.e. everything before ToTensor; what the tests compare. */
int clip_preprocess_rgb8(const uint8_t *data, size_t len, const clip_preprocess_cfg *cfg, uint8_t *rgb,
                         image_info *info, err_t *e);

/* ToTensor + Normalize of an S*S*3 HWC crop into [3,S,S]. */
void clip_preprocess_normalize(const uint8_t *rgb, int size, const float mean[3], const float std[3], float *out);

/* torchvision's Resize(S) target for a w x h image: shorter side S, longer
 * int(S * long / short); and CenterCrop's offsets (Python round, half to
 * even). Precondition: S * long / short fits an int (clip_preprocess checks
 * it and refuses such images with ERR_UNSUPPORTED). */
void clip_preprocess_geometry(int w, int h, int size, int *new_w, int *new_h, int *left, int *top);

#endif
