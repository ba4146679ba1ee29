/* CLIP's image tower: hub config + weights file → one parameter buffer with
 * named views → forward made only of ops.h calls. */
#include "nn/clip_vit.h"
#include "core/fsutil.h"
#include "io/json_util.h"
#include "io/tensorfile.h"
#include "nn/ops_ext.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

typedef struct clip_vit_config {
    int width, inter, heads, layers, image, patch, proj;
    int gelu_erf; /* hidden_act "gelu" (exact) instead of "quick_gelu" */
    float eps;
    int openai;   /* openai's names (a TorchScript file) instead of the hub's */
} clip_vit_config;

typedef struct clip_layer {
    float *ln1_w, *ln1_b;
    /* q, k and v are loaded next to each other so that together they are
     * one [3W, W] weight and one [3W] bias: a single GEMM per layer. */
    float *qkv_w, *qkv_b;
    float *out_w, *out_b;
    float *ln2_w, *ln2_b;
    float *fc1_w, *fc1_b, *fc2_w, *fc2_b;
} clip_layer;

struct clip_vit {
    ops_ctx *ops;
    clip_vit_config c;
    int grid, patches, tokens, patch_dim; /* S/P, (S/P)², patches + 1, 3·P·P */
    int max_batch;
    float *params;
    size_t n_params;
    float *class_emb, *patch_w, *pos_emb, *pre_w, *pre_b, *post_w, *post_b, *proj_w;
    clip_layer *layer;
    /* activations, each sized for max_batch */
    float *acts;
    float *img;   /* [B, 3, S, S] */
    float *x;     /* [B·T, W] residual stream */
    float *ln;    /* [B·T, W] normalised input of a block; also the block's output before the add */
    float *qkv;   /* [B·T, 3W] */
    float *att;   /* [B·T, W] attention output; holds the patch embeddings before the layers */
    float *hid;   /* [B·T, I] MLP hidden; holds the im2patch output before the layers */
    float *cls;   /* [B, W] class tokens, then their post-LN */
    float *emb;   /* [B, E] */
    char fingerprint[33];
};

/* CLIPVisionConfig's defaults: newer hub configs store only the fields that
 * differ from them (the shape check below still catches a wrong guess). */
static int read_config(const char *dir, clip_vit_config *c, err_t *e)
{
    char path[4096];
    if (fs_join(path, sizeof path, dir, "config.json", e)) return e ? e->code : ERR_ARG;
    json_t *root = NULL;
    int rc = json_load_path(&root, path, e);
    if (rc) return rc;
    json_t *vc = json_object_get(root, "vision_config");
    if (!json_is_object(vc)) {
        json_decref(root);
        return err_set(e, ERR_FORMAT, "%s: no 'vision_config' object (is this a CLIP model directory?)", path);
    }
    struct {
        const json_t *obj;
        const char *key;
        int *dst;
        int def;
    } ints[] = {
        {vc, "hidden_size", &c->width, 768},       {vc, "intermediate_size", &c->inter, 3072},
        {vc, "num_attention_heads", &c->heads, 12}, {vc, "num_hidden_layers", &c->layers, 12},
        {vc, "image_size", &c->image, 224},         {vc, "patch_size", &c->patch, 32},
        {root, "projection_dim", &c->proj, 512},
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        const json_t *v = json_object_get(ints[i].obj, ints[i].key);
        if (!v) {
            *ints[i].dst = ints[i].def;
            continue;
        }
        /* the bound keeps every derived size inside an int: real models are
         * at most a few thousand wide and a few dozen layers deep */
        if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > (1 << 16)) {
            json_decref(root);
            return err_set(e, ERR_FORMAT, "%s: '%s' must be an integer in 1..65536", path, ints[i].key);
        }
        *ints[i].dst = (int)json_integer_value(v);
    }
    const json_t *ch = json_object_get(vc, "num_channels");
    if (ch && (!json_is_integer(ch) || json_integer_value(ch) != 3)) {
        json_decref(root);
        return err_set(e, ERR_UNSUPPORTED, "%s: vision_config.num_channels must be 3", path);
    }
    const json_t *eps = json_object_get(vc, "layer_norm_eps");
    c->eps = eps ? (float)json_number_value(eps) : 1e-5f;
    if (eps && (!json_is_number(eps) || !(c->eps > 0.0f))) {
        json_decref(root);
        return err_set(e, ERR_FORMAT, "%s: vision_config.layer_norm_eps must be a positive number", path);
    }
    const json_t *act = json_object_get(vc, "hidden_act");
    const char *a = act ? json_string_value(act) : "quick_gelu";
    if (!a || (strcmp(a, "quick_gelu") && strcmp(a, "gelu"))) {
        json_decref(root);
        return err_set(e, ERR_UNSUPPORTED, "%s: vision_config.hidden_act must be \"quick_gelu\" or \"gelu\"", path);
    }
    c->gelu_erf = !strcmp(a, "gelu");
    json_decref(root);
    if (c->width % c->heads)
        return err_set(e, ERR_FORMAT, "%s: hidden_size %d is not a multiple of num_attention_heads %d", path,
                       c->width, c->heads);
    if (c->image % c->patch)
        return err_set(e, ERR_FORMAT, "%s: image_size %d is not a multiple of patch_size %d", path, c->image,
                       c->patch);
    return 0;
}

/* The shape of tensor `name`, or ERR_FORMAT naming the file when it is
 * missing or has another rank. */
static int shape_of(const tensorfile *tf, const char *path, const char *name, int ndim, int64_t *shape, err_t *e)
{
    int i = tensorfile_find(tf, name), got = 0;
    int64_t sh[TENSORFILE_MAX_DIMS];
    if (i < 0 || tensorfile_shape(tf, i, sh, &got) || got != ndim)
        return err_set(e, ERR_FORMAT, "%s: %s %s", path, name, i < 0 ? "not found" : "has an unexpected rank");
    memcpy(shape, sh, (size_t)ndim * sizeof *shape);
    return 0;
}

/* openai's CLIP file (ViT-B-32.pt, ...): no config, the architecture is
 * what openai's build_model derives from the shapes: W = conv1 rows, P =
 * conv1's kernel, layers = the visual in_proj_weights, grid G = sqrt(positions
 * - 1), image = P·G, heads = W / 64, MLP width = c_fc rows, D = proj columns;
 * LayerNorm eps 1e-5 and QuickGELU as in openai's model.py. */
static int config_from_shapes(const tensorfile *tf, const char *path, clip_vit_config *c, err_t *e)
{
    int64_t conv[4], pos[2], fc[2], proj[2];
    if (tensorfile_find(tf, "visual.conv1.weight") >= 0 && tensorfile_find(tf, "visual.transformer.resblocks.0.attn.in_proj_weight") < 0)
        return err_set(e, ERR_UNSUPPORTED, "%s: a ResNet CLIP (RN50, ...): only the ViT models are supported", path);
    int rc = shape_of(tf, path, "visual.conv1.weight", 4, conv, e);
    if (!rc) rc = shape_of(tf, path, "visual.positional_embedding", 2, pos, e);
    if (!rc) rc = shape_of(tf, path, "visual.transformer.resblocks.0.mlp.c_fc.weight", 2, fc, e);
    if (!rc) rc = shape_of(tf, path, "visual.proj", 2, proj, e);
    if (rc) return err_wrap(e, "not an openai CLIP file (give a hub directory with config.json, or openai's ViT-*.pt)");
    c->layers = 0;
    for (char name[96];; c->layers++) {
        snprintf(name, sizeof name, "visual.transformer.resblocks.%d.attn.in_proj_weight", c->layers);
        if (tensorfile_find(tf, name) < 0 || c->layers > 4096) break;
    }
    int64_t grid = (int64_t)llround(sqrt((double)(pos[0] - 1)));
    if (conv[0] < 64 || conv[0] % 64 || conv[0] > (1 << 16) || conv[1] != 3 || conv[2] != conv[3] || conv[2] < 1 ||
        conv[2] > 1024 || grid < 1 || grid * grid + 1 != pos[0] || pos[1] != conv[0] || fc[1] != conv[0] || fc[0] < 1 ||
        fc[0] > (1 << 18) || proj[0] != conv[0] || proj[1] < 1 || proj[1] > (1 << 16) || grid * conv[2] > (1 << 16))
        return err_set(e, ERR_FORMAT,
                       "%s: inconsistent openai CLIP shapes: conv1 [%lld, %lld, %lld, %lld], positional_embedding "
                       "[%lld, %lld], c_fc [%lld, %lld], proj [%lld, %lld] (width must be a multiple of 64)",
                       path, (long long)conv[0], (long long)conv[1], (long long)conv[2], (long long)conv[3],
                       (long long)pos[0], (long long)pos[1], (long long)fc[0], (long long)fc[1], (long long)proj[0],
                       (long long)proj[1]);
    c->width = (int)conv[0];
    c->patch = (int)conv[2];
    c->image = (int)(grid * conv[2]);
    c->heads = c->width / 64;
    c->inter = (int)fc[0];
    c->proj = (int)proj[1];
    c->eps = 1e-5f;
    c->gelu_erf = 0;
    c->openai = 1;
    return 0;
}

typedef struct clip_tensor {
    char name[128];
    float **view;
    int ndim;
    int64_t shape[4];
    size_t count;
    int transpose; /* a 2-D tensor stored [a, b] that the model wants as [b, a] */
} clip_tensor;

static void spec(clip_tensor *s, int *n, float **view, int ndim, int64_t d0, int64_t d1, int64_t d2, int64_t d3,
                 const char *fmt, int layer)
{
    clip_tensor *p = &s[(*n)++];
    snprintf(p->name, sizeof p->name, fmt, layer);
    p->view = view;
    p->ndim = ndim;
    int64_t d[4] = {d0, d1, d2, d3};
    p->count = 1;
    for (int i = 0; i < ndim; i++) p->shape[i] = d[i], p->count *= (size_t)d[i];
}

/* Every tensor the tower needs, in buffer order, with the hub's or
 * openai's names. q/k/v weights (and biases) are consecutive: the hub's
 * three specs, whose first one carries the view, or openai's one stacked
 * in_proj tensor; openai's proj is the transpose of visual_projection. The
 * parameter buffer (and the fingerprint) is the same either way. */
static int clip_tensors(clip_vit *m, clip_tensor *s)
{
    const clip_vit_config *c = &m->c;
    const int64_t W = c->width, I = c->inter, P = c->patch;
    const int oa = c->openai;
#define NM(hub, openai) (oa ? (openai) : (hub))
    int n = 0;
    spec(s, &n, &m->class_emb, 1, W, 0, 0, 0, NM("vision_model.embeddings.class_embedding", "visual.class_embedding"), 0);
    spec(s, &n, &m->patch_w, 4, W, 3, P, P, NM("vision_model.embeddings.patch_embedding.weight", "visual.conv1.weight"), 0);
    spec(s, &n, &m->pos_emb, 2, m->tokens, W, 0, 0, NM("vision_model.embeddings.position_embedding.weight", "visual.positional_embedding"), 0);
    spec(s, &n, &m->pre_w, 1, W, 0, 0, 0, NM("vision_model.pre_layrnorm.weight", "visual.ln_pre.weight"), 0);
    spec(s, &n, &m->pre_b, 1, W, 0, 0, 0, NM("vision_model.pre_layrnorm.bias", "visual.ln_pre.bias"), 0);
    for (int l = 0; l < c->layers; l++) {
        clip_layer *L = &m->layer[l];
#define LP "vision_model.encoder.layers.%d."
#define OP "visual.transformer.resblocks.%d."
        spec(s, &n, &L->ln1_w, 1, W, 0, 0, 0, NM(LP "layer_norm1.weight", OP "ln_1.weight"), l);
        spec(s, &n, &L->ln1_b, 1, W, 0, 0, 0, NM(LP "layer_norm1.bias", OP "ln_1.bias"), l);
        if (oa) {
            spec(s, &n, &L->qkv_w, 2, 3 * W, W, 0, 0, OP "attn.in_proj_weight", l);
            spec(s, &n, &L->qkv_b, 1, 3 * W, 0, 0, 0, OP "attn.in_proj_bias", l);
        } else {
            spec(s, &n, &L->qkv_w, 2, W, W, 0, 0, LP "self_attn.q_proj.weight", l);
            spec(s, &n, NULL, 2, W, W, 0, 0, LP "self_attn.k_proj.weight", l);
            spec(s, &n, NULL, 2, W, W, 0, 0, LP "self_attn.v_proj.weight", l);
            spec(s, &n, &L->qkv_b, 1, W, 0, 0, 0, LP "self_attn.q_proj.bias", l);
            spec(s, &n, NULL, 1, W, 0, 0, 0, LP "self_attn.k_proj.bias", l);
            spec(s, &n, NULL, 1, W, 0, 0, 0, LP "self_attn.v_proj.bias", l);
        }
        spec(s, &n, &L->out_w, 2, W, W, 0, 0, NM(LP "self_attn.out_proj.weight", OP "attn.out_proj.weight"), l);
        spec(s, &n, &L->out_b, 1, W, 0, 0, 0, NM(LP "self_attn.out_proj.bias", OP "attn.out_proj.bias"), l);
        spec(s, &n, &L->ln2_w, 1, W, 0, 0, 0, NM(LP "layer_norm2.weight", OP "ln_2.weight"), l);
        spec(s, &n, &L->ln2_b, 1, W, 0, 0, 0, NM(LP "layer_norm2.bias", OP "ln_2.bias"), l);
        spec(s, &n, &L->fc1_w, 2, I, W, 0, 0, NM(LP "mlp.fc1.weight", OP "mlp.c_fc.weight"), l);
        spec(s, &n, &L->fc1_b, 1, I, 0, 0, 0, NM(LP "mlp.fc1.bias", OP "mlp.c_fc.bias"), l);
        spec(s, &n, &L->fc2_w, 2, W, I, 0, 0, NM(LP "mlp.fc2.weight", OP "mlp.c_proj.weight"), l);
        spec(s, &n, &L->fc2_b, 1, W, 0, 0, 0, NM(LP "mlp.fc2.bias", OP "mlp.c_proj.bias"), l);
#undef LP
#undef OP
    }
    spec(s, &n, &m->post_w, 1, W, 0, 0, 0, NM("vision_model.post_layernorm.weight", "visual.ln_post.weight"), 0);
    spec(s, &n, &m->post_b, 1, W, 0, 0, 0, NM("vision_model.post_layernorm.bias", "visual.ln_post.bias"), 0);
    if (oa) {
        spec(s, &n, &m->proj_w, 2, W, c->proj, 0, 0, "visual.proj", 0);
        s[n - 1].transpose = 1;
    } else {
        spec(s, &n, &m->proj_w, 2, c->proj, W, 0, 0, "visual_projection.weight", 0);
    }
#undef NM
    return n;
}

/* The hub's weights file: model.safetensors, or the older
 * pytorch_model.bin (a torch.save zip) when that is all the directory has. */
static int open_weights(tensorfile **tf, const char *dir, err_t *e)
{
    char st[4096], pt[4096];
    if (fs_join(st, sizeof st, dir, "model.safetensors", e) || fs_join(pt, sizeof pt, dir, "pytorch_model.bin", e))
        return e ? e->code : ERR_ARG;
    if (!fs_exists(st) && fs_exists(pt)) return tensorfile_open(tf, pt, e);
    return tensorfile_open(tf, st, e);
}

/* Read every tensor (converted to float32, shape checked) through one
 * staging buffer the size of the largest tensor, uploading each into its
 * place in the parameter buffer, and hash the floats on the way for the
 * fingerprint. */
static int load_params(clip_vit *m, const char *dir, const tensorfile *tf, clip_tensor *s, int n, err_t *e)
{
    int rc = 0;
    size_t biggest = 1;
    for (int i = 0; i < n; i++) biggest = s[i].count > biggest ? s[i].count : biggest;
    float *host = mem_alloc_aligned(2 * biggest * sizeof(float)), *tr = host + biggest;
    XXH3_state_t *h = XXH3_createState();
    if (!host || !h || XXH3_128bits_reset(h) != XXH_OK) {
        rc = err_set(e, ERR_NOMEM, "%s: cannot allocate %zu floats to stage the weights", dir, biggest);
        goto done;
    }
    const clip_vit_config *c = &m->c;
    char cfg[256];
    int len = snprintf(cfg, sizeof cfg, "clip_vit W%d I%d H%d L%d S%d P%d E%d act%d eps%.9g", c->width, c->inter,
                       c->heads, c->layers, c->image, c->patch, c->proj, c->gelu_erf, (double)c->eps);
    /* Embeddings computed in another precision are other numbers: a store
     * must not mix them. FP32 adds nothing, so existing stores stay valid. */
    enum ops_precision prec = ops_get_precision(m->ops);
    if (prec != OPS_FP32) len += snprintf(cfg + len, sizeof cfg - (size_t)len, " precision %s", ops_precision_name(prec));
    XXH3_128bits_update(h, cfg, (size_t)len);
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        if ((rc = tensorfile_load(tf, s[i].name, s[i].shape, s[i].ndim, host, e))) goto done;
        const float *src = host;
        if (s[i].transpose) {
            const int64_t a = s[i].shape[0], b = s[i].shape[1];
            for (int64_t r = 0; r < a; r++)
                for (int64_t q = 0; q < b; q++) tr[q * a + r] = host[r * b + q];
            src = tr;
        }
        XXH3_128bits_update(h, src, s[i].count * sizeof(float));
        ops_upload(m->ops, m->params + off, src, s[i].count);
        if (s[i].view) *s[i].view = m->params + off;
        off += s[i].count;
    }
    XXH128_canonical_t canon;
    XXH128_canonicalFromHash(&canon, XXH3_128bits_digest(h));
    for (int i = 0; i < 16; i++) snprintf(m->fingerprint + 2 * i, 3, "%02x", canon.digest[i]);
done:
    XXH3_freeState(h);
    free(host);
    return rc;
}

static int alloc_acts(clip_vit *m, err_t *e)
{
    const size_t B = (size_t)m->max_batch, T = (size_t)m->tokens, W = (size_t)m->c.width;
    const size_t S = (size_t)m->c.image, I = (size_t)m->c.inter;
    size_t hid = B * T * I, pat = B * (size_t)m->patches * (size_t)m->patch_dim;
    struct {
        float **view;
        size_t count;
    } parts[] = {
        {&m->img, B * 3 * S * S}, {&m->x, B * T * W},     {&m->ln, B * T * W}, {&m->qkv, B * T * 3 * W},
        {&m->att, B * T * W},     {&m->hid, hid > pat ? hid : pat}, {&m->cls, B * W}, {&m->emb, B * (size_t)m->c.proj},
    };
    size_t total = 0;
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) total += (parts[i].count + 15) & ~(size_t)15;
    m->acts = ops_alloc(m->ops, total, e);
    if (!m->acts) return err_wrap(e, "clip_vit: activations for batch %d", m->max_batch);
    size_t off = 0;
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        *parts[i].view = m->acts + off;
        off += (parts[i].count + 15) & ~(size_t)15; /* keep every view 64-byte aligned */
    }
    return 0;
}

int clip_vit_load(clip_vit **out, ops_ctx *ops, const char *dir, int max_batch, err_t *e)
{
    *out = NULL;
    if (max_batch < 1) return err_set(e, ERR_ARG, "clip_vit: max_batch must be >= 1 (got %d)", max_batch);
    clip_vit *m = calloc(1, sizeof *m);
    if (!m) return err_set(e, ERR_NOMEM, "clip_vit: out of memory");
    m->ops = ops;
    m->max_batch = max_batch;
    clip_tensor *specs = NULL;
    tensorfile *tf = NULL;
    /* a file is openai's TorchScript CLIP; a directory is the hub's layout */
    int rc = fs_is_regular(dir) ? tensorfile_open(&tf, dir, e) : read_config(dir, &m->c, e);
    if (!rc) rc = tf ? config_from_shapes(tf, dir, &m->c, e) : open_weights(&tf, dir, e);
    if (rc) goto fail;
    m->grid = m->c.image / m->c.patch;
    if ((long long)m->grid * m->grid * max_batch > (1 << 24) || (long long)m->c.patch * m->c.patch > (1 << 24)) {
        rc = err_set(e, ERR_LIMIT, "%s: %d images of %lld patches of %dx%d pixels exceed the supported size", dir,
                     max_batch, (long long)m->grid * m->grid, m->c.patch, m->c.patch);
        goto fail;
    }
    m->patches = m->grid * m->grid;
    m->tokens = m->patches + 1;
    m->patch_dim = 3 * m->c.patch * m->c.patch;
    m->layer = calloc((size_t)m->c.layers, sizeof *m->layer);
    specs = calloc(5 + 16 * (size_t)m->c.layers + 3, sizeof *specs);
    if (!m->layer || !specs) {
        rc = err_set(e, ERR_NOMEM, "clip_vit: out of memory");
        goto fail;
    }
    int n = clip_tensors(m, specs);
    for (int i = 0; i < n; i++) m->n_params += specs[i].count;
    m->params = ops_alloc(ops, m->n_params, e);
    if (!m->params || ops_register_weights(ops, m->params, m->n_params, e)) {
        rc = err_wrap(e, "%s: weights", dir);
        goto fail;
    }
    if ((rc = load_params(m, dir, tf, specs, n, e)) || (rc = alloc_acts(m, e))) goto fail;
    free(specs);
    tensorfile_close(tf);
    log_msg(LOG_DEBUG, "clip_vit: %s: W=%d layers=%d S=%d P=%d E=%d, %zu params, fingerprint %s", dir, m->c.width,
            m->c.layers, m->c.image, m->c.patch, m->c.proj, m->n_params, m->fingerprint);
    *out = m;
    return 0;
fail:
    free(specs);
    tensorfile_close(tf);
    clip_vit_free(m);
    return rc;
}

void clip_vit_free(clip_vit *m)
{
    if (!m) return;
    if (m->params) ops_free(m->ops, m->params);
    if (m->acts) ops_free(m->ops, m->acts);
    free(m->layer);
    free(m);
}

int clip_vit_image_size(const clip_vit *m) { return m->c.image; }
int clip_vit_embed_dim(const clip_vit *m) { return m->c.proj; }
const char *clip_vit_fingerprint(const clip_vit *m) { return m->fingerprint; }

int clip_vit_forward(clip_vit *m, const float *images, int B, float *out, err_t *e)
{
    if (B < 1 || B > m->max_batch)
        return err_set(e, ERR_ARG, "clip_vit: batch of %d images, the model was loaded for 1..%d", B, m->max_batch);
    ops_ctx *o = m->ops;
    const clip_vit_config *c = &m->c;
    const int W = c->width, I = c->inter, H = c->heads, T = m->tokens, L = m->patches, S = c->image;
    const int M = B * T;
    const float scale = 1.0f / sqrtf((float)(W / H));

    /* Embeddings: the stride-P conv is im2patch + a GEMM with the conv
     * weight viewed as [W, 3·P·P]; the class token goes in front. */
    ops_upload(o, m->img, images, (size_t)B * 3 * S * S);
    ops_im2patch(o, m->hid, m->img, B, S, c->patch);
    ops_matmul(o, m->att, m->hid, m->patch_w, NULL, B * L, m->patch_dim, W, OPS_W_NK);
    for (int b = 0; b < B; b++) {
        float *xb = m->x + (size_t)b * T * W;
        ops_copy(o, xb, m->class_emb, (size_t)W);
        ops_copy(o, xb + W, m->att + (size_t)b * L * W, (size_t)L * W);
        ops_add(o, xb, xb, m->pos_emb, (size_t)T * W);
    }
    /* pre_layrnorm's output is the residual stream itself */
    ops_layernorm(o, m->ln, NULL, NULL, m->x, m->pre_w, m->pre_b, M, W, c->eps);
    ops_copy(o, m->x, m->ln, (size_t)M * W);

    for (int l = 0; l < c->layers; l++) {
        const clip_layer *Ly = &m->layer[l];
        ops_layernorm(o, m->ln, NULL, NULL, m->x, Ly->ln1_w, Ly->ln1_b, M, W, c->eps);
        ops_matmul(o, m->qkv, m->ln, Ly->qkv_w, Ly->qkv_b, M, W, 3 * W, OPS_W_NK);
        ops_attention(o, m->att, NULL, m->qkv, m->qkv + W, m->qkv + 2 * W, B, T, T, H, W / H, 3 * W, 3 * W, 0, scale);
        ops_matmul(o, m->ln, m->att, Ly->out_w, Ly->out_b, M, W, W, OPS_W_NK);
        ops_add(o, m->x, m->x, m->ln, (size_t)M * W);

        ops_layernorm(o, m->ln, NULL, NULL, m->x, Ly->ln2_w, Ly->ln2_b, M, W, c->eps);
        ops_matmul(o, m->hid, m->ln, Ly->fc1_w, Ly->fc1_b, M, W, I, OPS_W_NK);
        if (c->gelu_erf)
            ops_gelu_erf(o, m->hid, m->hid, (size_t)M * I);
        else
            ops_quick_gelu(o, m->hid, m->hid, (size_t)M * I);
        ops_matmul(o, m->ln, m->hid, Ly->fc2_w, Ly->fc2_b, M, I, W, OPS_W_NK);
        ops_add(o, m->x, m->x, m->ln, (size_t)M * W);
    }

    for (int b = 0; b < B; b++) ops_copy(o, m->att + (size_t)b * W, m->x + (size_t)b * T * W, (size_t)W);
    ops_layernorm(o, m->cls, NULL, NULL, m->att, m->post_w, m->post_b, B, W, c->eps);
    ops_matmul(o, m->emb, m->cls, m->proj_w, NULL, B, W, c->proj, OPS_W_NK);
    ops_download(o, out, m->emb, (size_t)B * c->proj);
    return 0;
}
