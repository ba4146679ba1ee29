#include "caption/captioner.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "core/fsutil.h"
#include "io/tensorfile.h"
#include "nn/ops_ext.h"
#include "nn/param_spec.h"

#define CKPT_GPT_PREFIX "gpt.transformer."
#define CKPT_MAPPER_PREFIX "clip_project."
#define TF_LAYER_PREFIX "clip_project.transformer.layers."

struct captioner {
    ops_ctx *ctx;
    clipcap_config cfg;
    gpt2_config gcfg;
    decode_config dcfg;
    int normalize, max_images, any_clip;
    char clip_fp[33];       /* the checkpoint's clip_fingerprint, "" if unknown */
    char checkpoint[1024];
    float *params; /* [mapper | GPT-2], backend */
    size_t n_mapper;
    mapper_mlp mlp;
    mapper_tf tf;
    gpt2 gpt;
    decoder *dec;
    bpe_t *bpe;
    float *clip_dev, *prefix; /* backend [max_images, D], [max_images, k, E] */
    float *clip_host;         /* [max_images, D] (normalised copy) */
    char fingerprint[33];
    char gpt2_source[4096];
    /* the last run's results */
    int32_t *tokens;
    size_t n_tok, cap_tok;
    struct kept_caption {
        size_t off; /* into tokens (which may move while a run grows it) */
        int n;
        double logprob, score;
        char *text;
    } *kept;
    size_t n_caps, cap_caps;
};

void captioner_options_default(captioner_options *o)
{
    memset(o, 0, sizeof *o);
    decode_config_default(&o->decode);
    o->max_images = 64;
}

const clipcap_config *captioner_config(const captioner *c) { return &c->cfg; }
const gpt2_config *captioner_gpt2_config(const captioner *c) { return &c->gcfg; }
const decode_config *captioner_decode_config(const captioner *c) { return &c->dcfg; }
int captioner_clip_dim(const captioner *c) { return c->cfg.clip_dim; }
const char *captioner_fingerprint(const captioner *c) { return c->fingerprint; }
const char *captioner_gpt2_source(const captioner *c) { return c->gpt2_source; }

/* ---- configuration from shapes ---- */

static void shape_str(char *buf, size_t cap, const int64_t *shape, int ndim)
{
    size_t n = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (n < cap) snprintf(buf + n, cap - n, "]");
}

/* Shape of tensor name, which must have ndim dimensions: 1 found, 0 absent. */
static int find_shape(const tensorfile *tf, const char *path, const char *name, int want_ndim, int64_t *shape,
                      err_t *e)
{
    int i = tensorfile_find(tf, name), nd = 0;
    if (i < 0) return 0;
    int64_t s[TENSORFILE_MAX_DIMS];
    if (tensorfile_shape(tf, i, s, &nd)) return err_set(e, ERR_INTERNAL, "%s: tensor %s: no shape", path, name);
    if (nd != want_ndim) {
        char buf[128];
        shape_str(buf, sizeof buf, s, nd);
        return err_set(e, ERR_FORMAT, "%s: tensor %s has shape %s, expected %d dimensions", path, name, buf,
                       want_ndim);
    }
    memcpy(shape, s, (size_t)nd * sizeof *s);
    return 1;
}

/* Count of consecutive layers PREFIX0., PREFIX1., ... present in tf; a
 * layer index beyond a gap is an error naming the tensor. */
static int count_layers(const tensorfile *tf, const char *path, const char *prefix, int *out, err_t *e)
{
    const size_t plen = strlen(prefix);
    int max = -1, n = tensorfile_count(tf);
    for (int i = 0; i < n; i++) {
        const char *name = tensorfile_name(tf, i);
        if (strncmp(name, prefix, plen)) continue;
        char *end;
        long l = strtol(name + plen, &end, 10);
        if (end == name + plen || *end != '.' || l < 0 || l > 100000)
            return err_set(e, ERR_FORMAT, "%s: tensor %s: no layer number after '%s'", path, name, prefix);
        if (l > max) max = (int)l;
    }
    /* every layer below max must be present: probe each one's prefix */
    for (int l = 0; l <= max; l++) {
        char probe[PARAM_NAME_MAX];
        int len = snprintf(probe, sizeof probe, "%s%d.", prefix, l), found = 0;
        for (int i = 0; i < n && !found; i++) found = !strncmp(tensorfile_name(tf, i), probe, (size_t)len);
        if (!found)
            return err_set(e, ERR_FORMAT, "%s: layer %d of %s* is missing but layer %d exists", path, l, prefix, max);
    }
    *out = max + 1;
    return 0;
}

int captioner_infer_config(const tensorfile *tf, const char *path, int n_embd, clipcap_config *cfg, err_t *e)
{
    memset(cfg, 0, sizeof *cfg);
    const int64_t E = n_embd;
    int64_t w0[2], w2[2], lin[2], pc[2];
    int rc, has_mlp, has_lin, has_pc;
    if ((has_mlp = find_shape(tf, path, "clip_project.model.0.weight", 2, w0, e)) < 0) return has_mlp;
    if ((has_lin = find_shape(tf, path, "clip_project.linear.weight", 2, lin, e)) < 0) return has_lin;
    if ((has_pc = find_shape(tf, path, "clip_project.prefix_const", 2, pc, e)) < 0) return has_pc;
    cfg->freeze_gpt2 = tensorfile_find(tf, CKPT_GPT_PREFIX "wte.weight") < 0;
    if (has_mlp && (has_lin || has_pc))
        return err_set(e, ERR_FORMAT,
                       "%s: holds both an MLP mapper (clip_project.model.0.weight) and a Transformer mapper "
                       "(clip_project.%s)",
                       path, has_lin ? "linear.weight" : "prefix_const");
    if (has_mlp) {
        if ((rc = find_shape(tf, path, "clip_project.model.2.weight", 2, w2, e)) <= 0)
            return rc ? rc
                      : err_set(e, ERR_FORMAT, "%s: tensor clip_project.model.2.weight not found (MLP mapper)", path);
        if (w2[0] % E || w2[0] == 0)
            return err_set(e, ERR_FORMAT,
                           "%s: tensor clip_project.model.2.weight has %lld rows, not a multiple of GPT-2's "
                           "n_embd %lld (rows = n_embd * prefix_length)",
                           path, (long long)w2[0], (long long)E);
        int64_t k = w2[0] / E;
        if (w0[0] != E * k / 2 || (E * k) % 2 || w2[1] != w0[0])
            return err_set(e, ERR_FORMAT,
                           "%s: tensor clip_project.model.0.weight has shape [%lld, %lld], expected [%lld, D] "
                           "(n_embd %lld * prefix_length %lld / 2) feeding clip_project.model.2.weight [%lld, %lld]",
                           path, (long long)w0[0], (long long)w0[1], (long long)(E * k / 2), (long long)E,
                           (long long)k, (long long)w2[0], (long long)w2[1]);
        if (w0[1] < 1 || w0[1] > (1 << 20) || k > (1 << 16))
            return err_set(e, ERR_FORMAT, "%s: tensor clip_project.model.0.weight: CLIP size %lld is out of range",
                           path, (long long)w0[1]);
        cfg->mapping = CLIPCAP_MAP_MLP;
        cfg->clip_dim = (int)w0[1];
        cfg->prefix_len = (int)k;
        return 0;
    }
    if (has_lin != has_pc)
        return err_set(e, ERR_FORMAT, "%s: tensor %s without %s (a Transformer mapper needs both)", path,
                       has_lin ? "clip_project.linear.weight" : "clip_project.prefix_const",
                       has_lin ? "clip_project.prefix_const" : "clip_project.linear.weight");
    if (!has_lin)
        return err_set(e, ERR_FORMAT,
                       "%s: no ClipCap mapper: neither clip_project.model.0.weight (MLP) nor "
                       "clip_project.linear.weight + clip_project.prefix_const (Transformer)",
                       path);
    if (pc[1] != E || pc[0] < 1 || pc[0] > (1 << 16))
        return err_set(e, ERR_FORMAT,
                       "%s: tensor clip_project.prefix_const has shape [%lld, %lld], expected [prefix_length, %lld] "
                       "(GPT-2's n_embd)",
                       path, (long long)pc[0], (long long)pc[1], (long long)E);
    if (lin[0] % E || lin[0] == 0 || lin[1] < 1 || lin[1] > (1 << 20) || lin[0] / E > (1 << 16))
        return err_set(e, ERR_FORMAT,
                       "%s: tensor clip_project.linear.weight has shape [%lld, %lld], expected "
                       "[clip_length * %lld, D] (GPT-2's n_embd)",
                       path, (long long)lin[0], (long long)lin[1], (long long)E);
    if (E % 8)
        return err_set(e, ERR_FORMAT,
                       "%s: the Transformer mapper has 8 heads, GPT-2's n_embd %lld is not a multiple of 8", path,
                       (long long)E);
    int layers = 0;
    if ((rc = count_layers(tf, path, TF_LAYER_PREFIX, &layers, e))) return rc;
    if (layers < 1)
        return err_set(e, ERR_FORMAT, "%s: Transformer mapper without layers (no " TF_LAYER_PREFIX "N.* tensor)", path);
    cfg->mapping = CLIPCAP_MAP_TRANSFORMER;
    cfg->clip_dim = (int)lin[1];
    cfg->prefix_len = (int)pc[0];
    cfg->clip_len = (int)(lin[0] / E);
    cfg->mapper_layers = layers;
    return 0;
}

/* A GPT-2 inside the checkpoint must be the hub config's: same width and
 * layer count (every other shape is checked by name when loading). */
static int check_ckpt_gpt2(const tensorfile *tf, const char *path, const gpt2_config *g, const char *gpt2_dir,
                           err_t *e)
{
    int64_t wte[2];
    int rc = find_shape(tf, path, CKPT_GPT_PREFIX "wte.weight", 2, wte, e);
    if (rc <= 0) return rc;
    if (wte[1] != g->n_embd || wte[0] != g->vocab_size)
        return err_set(e, ERR_FORMAT,
                       "%s: tensor " CKPT_GPT_PREFIX "wte.weight has shape [%lld, %lld] but %s/config.json says "
                       "vocab_size %d, n_embd %d",
                       path, (long long)wte[0], (long long)wte[1], gpt2_dir, g->vocab_size, g->n_embd);
    int layers = 0;
    if ((rc = count_layers(tf, path, CKPT_GPT_PREFIX "h.", &layers, e))) return rc;
    if (layers != g->n_layer)
        return err_set(e, ERR_FORMAT, "%s: " CKPT_GPT_PREFIX "h.N.* has %d layers but %s/config.json says n_layer %d",
                       path, layers, gpt2_dir, g->n_layer);
    return 0;
}

/* ---- loading ---- */

static int mapper_entries(const captioner *c, float *base, st_entry *out, char (*names)[PARAM_NAME_MAX])
{
    if (c->cfg.mapping == CLIPCAP_MAP_MLP) return mapper_mlp_tensor_entries(&c->mlp.cfg, base, out, names);
    return mapper_tf_tensor_entries(&c->tf.cfg, base, out, names);
}

/* Load the mapper, refusing clip_project.* tensors that the inferred
 * configuration does not have (a mapper this code would silently
 * mis-read). */
static int load_mapper(captioner *c, const tensorfile *tf, const char *path, err_t *e)
{
    int n = mapper_entries(c, NULL, NULL, NULL);
    st_entry *en = calloc((size_t)n, sizeof *en);
    char (*names)[PARAM_NAME_MAX] = calloc((size_t)n, sizeof *names);
    if (!en || !names) {
        free(en);
        free(names);
        return err_set(e, ERR_NOMEM, "%s: out of memory for the mapper's tensor list", path);
    }
    mapper_entries(c, c->params, en, names);
    int rc = 0;
    for (int i = 0; i < tensorfile_count(tf) && !rc; i++) {
        const char *name = tensorfile_name(tf, i);
        if (strncmp(name, CKPT_MAPPER_PREFIX, strlen(CKPT_MAPPER_PREFIX))) continue;
        int known = 0;
        for (int j = 0; j < n && !known; j++) known = !strcmp(names[j], name);
        if (!known)
            rc = err_set(e, ERR_FORMAT, "%s: tensor %s fits no known mapper (inferred: %s)", path, name,
                         c->cfg.mapping == CLIPCAP_MAP_MLP ? "MLP" : "Transformer");
    }
    if (!rc) rc = param_entries_load(c->ctx, tf, en, n, e);
    free(en);
    free(names);
    return rc;
}

/* GPT-2's weights from the hub directory (gpt2_open_weights). */
static int load_hub_gpt2(captioner *c, const char *dir, err_t *e)
{
    tensorfile *tf = NULL;
    int rc = gpt2_open_weights(&tf, dir, c->gpt2_source, sizeof c->gpt2_source, e);
    if (rc) return rc;
    rc = gpt2_load_weights(&c->gpt, tf, NULL, e);
    tensorfile_close(tf);
    if (rc && strncmp(e->msg, c->gpt2_source, strlen(c->gpt2_source))) err_wrap(e, "%s", c->gpt2_source);
    return rc;
}

/* XXH3-128 over the configuration, the decode settings that change the
 * output, and the loaded weights as float32 (so .pt and safetensors copies
 * of one model agree). */
static int compute_fingerprint(captioner *c, err_t *e)
{
    const size_t chunk = (size_t)1 << 20, n = c->n_mapper + gpt2_param_count(&c->gcfg);
    float *host = malloc((n < chunk ? n : chunk) * sizeof *host);
    XXH3_state_t *st = XXH3_createState();
    if (!host || !st) {
        free(host);
        XXH3_freeState(st);
        return err_set(e, ERR_NOMEM, "out of memory for the model fingerprint");
    }
    const int32_t settings[] = {(int32_t)c->cfg.mapping,  c->cfg.clip_dim,      c->cfg.prefix_len,
                                c->cfg.clip_len,          c->cfg.mapper_layers, c->gcfg.vocab_size,
                                c->gcfg.n_positions,      c->gcfg.n_embd,       c->gcfg.n_head,
                                c->gcfg.n_layer,          c->dcfg.max_tokens,   c->dcfg.stop_token,
                                c->dcfg.beam,             c->dcfg.num_captions, c->normalize};
    XXH3_128bits_reset(st);
    XXH3_128bits_update(st, settings, sizeof settings);
    /* captions decoded in another precision are other captions; fp32 adds
     * nothing, so existing fingerprints stay */
    const int32_t prec = (int32_t)ops_get_precision(c->ctx);
    if (prec != OPS_FP32) XXH3_128bits_update(st, &prec, sizeof prec);
    for (size_t off = 0; off < n; off += chunk) {
        size_t cnt = n - off < chunk ? n - off : chunk;
        ops_download(c->ctx, host, c->params + off, cnt);
        XXH3_128bits_update(st, host, cnt * sizeof *host);
    }
    XXH128_hash_t h = XXH3_128bits_digest(st);
    snprintf(c->fingerprint, sizeof c->fingerprint, "%016llx%016llx", (unsigned long long)h.high64,
             (unsigned long long)h.low64);
    XXH3_freeState(st);
    free(host);
    return 0;
}

static int resolve_stop(captioner *c, const char *text, err_t *e)
{
    int32_t *ids = NULL;
    size_t n = 0, cap = 0;
    int rc = bpe_encode(c->bpe, text, strlen(text), &ids, &n, &cap, e);
    if (rc) return err_wrap(e, "stop token '%s'", text);
    if (n == 1) c->dcfg.stop_token = ids[0];
    else rc = err_set(e, ERR_ARG, "stop token '%s' is %zu GPT-2 tokens, not one", text, n);
    free(ids);
    return rc;
}

static int open_model(captioner *c, const captioner_options *opt, err_t *e)
{
    const char *path = opt->checkpoint;
    int rc = gpt2_config_load(&c->gcfg, opt->gpt2_dir, e);
    if (rc) return rc;
    tensorfile *tf = NULL;
    if ((rc = tensorfile_open(&tf, path, e))) return rc;
    const char *fp = tensorfile_metadata(tf, "clip_fingerprint");
    snprintf(c->clip_fp, sizeof c->clip_fp, "%s", fp ? fp : "");
    snprintf(c->checkpoint, sizeof c->checkpoint, "%s", path);
    /* clipcap checkpoints say whether the prefix was normalised in training;
     * captioning the other way gives fluent nonsense, so follow the
     * checkpoint and refuse a flag that contradicts it (the paper's .pt files
     * say nothing: the flag decides). */
    const char *norm = tensorfile_metadata(tf, "normalize_prefix");
    if (norm && !strcmp(norm, "true") && !c->normalize) {
        c->normalize = 1;
        log_msg(LOG_INFO, "%s: trained with --normalize-prefix: normalising the CLIP embeddings", path);
    } else if (norm && !strcmp(norm, "false") && c->normalize) {
        tensorfile_close(tf);
        return err_set(e, ERR_ARG, "%s: --normalize-prefix given, but the model was trained without it", path);
    }
    if ((rc = captioner_infer_config(tf, path, c->gcfg.n_embd, &c->cfg, e)) ||
        (!c->cfg.freeze_gpt2 && (rc = check_ckpt_gpt2(tf, path, &c->gcfg, opt->gpt2_dir, e)))) {
        tensorfile_close(tf);
        return rc;
    }
    const clipcap_config *k = &c->cfg;
    const int E = c->gcfg.n_embd;
    mapper_mlp_config mc = {k->clip_dim, E, k->prefix_len};
    mapper_tf_config tc = {k->clip_dim, E, k->prefix_len, k->clip_len, k->mapper_layers, 8};
    c->n_mapper = k->mapping == CLIPCAP_MAP_MLP ? mapper_mlp_param_count(&mc) : mapper_tf_param_count(&tc);
    const size_t n_params = c->n_mapper + gpt2_param_count(&c->gcfg);
    if (!(c->params = ops_alloc(c->ctx, n_params, e)) || ops_register_weights(c->ctx, c->params, n_params, e)) {
        tensorfile_close(tf);
        return err_wrap(e, "%s: parameters", path);
    }
    /* inference only: no gradient views */
    if (k->mapping == CLIPCAP_MAP_MLP) mapper_mlp_init(&c->mlp, c->ctx, &mc, c->params, NULL);
    else mapper_tf_init(&c->tf, c->ctx, &tc, c->params, NULL);
    gpt2_init(&c->gpt, c->ctx, &c->gcfg, c->params + c->n_mapper, NULL);
    rc = load_mapper(c, tf, path, e);
    if (!rc && !k->freeze_gpt2) {
        snprintf(c->gpt2_source, sizeof c->gpt2_source, "%s", path);
        rc = gpt2_load_weights(&c->gpt, tf, CKPT_GPT_PREFIX, e);
        if (rc && strncmp(e->msg, path, strlen(path))) err_wrap(e, "%s", path);
    }
    tensorfile_close(tf);
    if (!rc && k->freeze_gpt2) rc = load_hub_gpt2(c, opt->gpt2_dir, e);
    return rc;
}

int captioner_open(captioner **out, ops_ctx *ctx, const captioner_options *opt, err_t *e)
{
    *out = NULL;
    if (!opt->checkpoint || !opt->gpt2_dir)
        return err_set(e, ERR_ARG, "captioner: a checkpoint and a GPT-2 directory are needed");
    captioner *c = calloc(1, sizeof *c);
    if (!c) return err_set(e, ERR_NOMEM, "captioner: out of memory");
    c->ctx = ctx;
    c->dcfg = opt->decode;
    c->normalize = opt->normalize_prefix;
    c->any_clip = opt->any_clip;
    c->max_images = opt->max_images > 0 ? opt->max_images : 64;
    int rc = open_model(c, opt, e);
    /* the tokenizer next to the model, unless given once elsewhere */
    const char *tok = opt->tokenizer_dir ? opt->tokenizer_dir : opt->gpt2_dir;
    char vocab[4096];
    if (!rc && !opt->tokenizer_dir && !fs_join(vocab, sizeof vocab, tok, "vocab.json", NULL) && !fs_exists(vocab))
        rc = err_set(e, ERR_NOTFOUND, "%s: no GPT-2 tokenizer next to the model (vocab.json + merges.txt): pass --tokenizer DIR",
                     opt->gpt2_dir);
    if (!rc) rc = bpe_load(&c->bpe, tok, e);
    if (!rc && bpe_vocab_size(c->bpe) < c->gcfg.vocab_size)
        rc = err_set(e, ERR_FORMAT, "%s: the tokenizer has %d tokens, fewer than GPT-2's vocab_size %d", tok,
                     bpe_vocab_size(c->bpe), c->gcfg.vocab_size);
    if (!rc && opt->stop_text) rc = resolve_stop(c, opt->stop_text, e);
    if (!rc && c->dcfg.max_batch <= 0) c->dcfg.max_batch = c->max_images * (c->dcfg.beam > 1 ? c->dcfg.beam : 1);
    if (!rc) rc = decoder_create(&c->dec, &c->gpt, &c->dcfg, c->cfg.prefix_len, e);
    if (!rc) rc = compute_fingerprint(c, e);
    if (!rc) {
        const size_t D = (size_t)c->cfg.clip_dim, pk = (size_t)c->cfg.prefix_len * c->gcfg.n_embd;
        c->clip_dev = ops_alloc(ctx, (size_t)c->max_images * D, e);
        c->prefix = c->clip_dev ? ops_alloc(ctx, (size_t)c->max_images * pk, e) : NULL;
        c->clip_host = malloc((size_t)c->max_images * D * sizeof *c->clip_host);
        if (!c->prefix) rc = err_wrap(e, "captioner buffers for %d images", c->max_images);
        else if (!c->clip_host) rc = err_set(e, ERR_NOMEM, "captioner buffers for %d images", c->max_images);
    }
    if (rc) {
        captioner_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

static void free_results(captioner *c)
{
    for (size_t i = 0; i < c->n_caps; i++) free(c->kept[i].text);
    c->n_caps = c->n_tok = 0;
}

void captioner_free(captioner *c)
{
    if (!c) return;
    free_results(c);
    free(c->kept);
    free(c->tokens);
    decoder_free(c->dec);
    bpe_free(c->bpe);
    mapper_mlp_free(&c->mlp);
    mapper_tf_free(&c->tf);
    gpt2_free(&c->gpt);
    ops_free(c->ctx, c->params);
    ops_free(c->ctx, c->clip_dev);
    ops_free(c->ctx, c->prefix);
    free(c->clip_host);
    free(c);
}

/* ---- running ---- */

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap) return 0;
    size_t n = *cap ? *cap : 256;
    while (n < need) n *= 2;
    void *q = realloc(*p, n * elem);
    if (!q) return ERR_NOMEM;
    *p = q;
    *cap = n;
    return 0;
}

/* Length of the valid UTF-8 sequence at s[0..n), or 0 with *bad the
 * length of its maximal invalid subpart (at least 1). */
static size_t utf8_seq(const unsigned char *s, size_t n, size_t *bad)
{
    const unsigned char b = s[0];
    size_t need;
    unsigned char lo = 0x80, hi = 0xBF; /* range of the second byte */
    if (b < 0x80) return 1;
    if (b >= 0xC2 && b <= 0xDF) need = 2;
    else if (b >= 0xE0 && b <= 0xEF) {
        need = 3;
        if (b == 0xE0) lo = 0xA0;
        if (b == 0xED) hi = 0x9F;
    } else if (b >= 0xF0 && b <= 0xF4) {
        need = 4;
        if (b == 0xF0) lo = 0x90;
        if (b == 0xF4) hi = 0x8F;
    } else {
        *bad = 1;
        return 0;
    }
    for (size_t i = 1; i < need; i++) {
        int ok = i < n && s[i] >= (i == 1 ? lo : 0x80) && s[i] <= (i == 1 ? hi : 0xBF);
        if (!ok) {
            *bad = i;
            return 0;
        }
    }
    return need;
}

char *captioner_utf8_replace(const char *bytes, size_t len)
{
    /* U+FFFD is 3 bytes and replaces at least one */
    char *out = malloc(3 * len + 1);
    if (!out) return NULL;
    const unsigned char *s = (const unsigned char *)bytes;
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        size_t bad = 0, n = utf8_seq(s + i, len - i, &bad);
        if (n) {
            memcpy(out + o, s + i, n);
            o += n;
            i += n;
        } else {
            memcpy(out + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i += bad;
        }
    }
    out[o] = 0;
    return out;
}

/* Keep one chunk's results: the decoder owns its tokens only until its
 * next run. */
static int keep_results(captioner *c, const decode_result *res, size_t count, err_t *e)
{
    size_t need_tok = c->n_tok;
    for (size_t i = 0; i < count; i++) need_tok += (size_t)res[i].n_tokens;
    if (grow((void **)&c->tokens, &c->cap_tok, need_tok, sizeof *c->tokens) ||
        grow((void **)&c->kept, &c->cap_caps, c->n_caps + count, sizeof *c->kept))
        return err_set(e, ERR_NOMEM, "captioner: out of memory for %zu captions", c->n_caps + count);
    for (size_t i = 0; i < count; i++) {
        const decode_result *r = &res[i];
        size_t len = 0;
        char *bytes = NULL;
        if (bpe_decode(c->bpe, r->tokens, (size_t)r->n_tokens, &bytes, &len, e))
            return err_wrap(e, "caption %zu", c->n_caps);
        char *text = captioner_utf8_replace(bytes, len);
        free(bytes);
        if (!text) return err_set(e, ERR_NOMEM, "captioner: out of memory for caption %zu", c->n_caps);
        memcpy(c->tokens + c->n_tok, r->tokens, (size_t)r->n_tokens * sizeof *c->tokens);
        c->kept[c->n_caps++] = (struct kept_caption){c->n_tok, r->n_tokens, r->logprob, r->score, text};
        c->n_tok += (size_t)r->n_tokens;
    }
    return 0;
}

const char *captioner_clip_fingerprint(const captioner *c) { return c->clip_fp; }

int captioner_check_clip(const captioner *c, const char *fp, const char *what, err_t *e)
{
    if (c->any_clip || !c->clip_fp[0] || !strcmp(c->clip_fp, fp)) return 0;
    return err_set(e, ERR_ARG,
                   "%s: CLIP fingerprint %s, but %s was trained on embeddings of %s (another CLIP or "
                   "preprocessing; --any-clip to caption anyway)",
                   what, fp, c->checkpoint, c->clip_fp);
}

void captioner_normalize_prefix(float *out, const float *in, int n, int D)
{
    /* the reference divides by the L2 norm in float32 */
    for (int i = 0; i < n; i++) {
        const float *x = in + (size_t)i * D;
        float *y = out + (size_t)i * D;
        double ss = 0.0;
        for (int j = 0; j < D; j++) ss += (double)x[j] * x[j];
        float norm = (float)sqrt(ss);
        for (int j = 0; j < D; j++) y[j] = norm > 0.0f ? x[j] / norm : x[j];
    }
}

int captioner_run(captioner *c, const float *clip, int n, captioner_caption *out, err_t *e)
{
    free_results(c);
    if (n < 0) return err_set(e, ERR_ARG, "captioner: %d images", n);
    const int D = c->cfg.clip_dim, K = c->dcfg.num_captions;
    decode_result *res = malloc((size_t)c->max_images * K * sizeof *res);
    if (!res) return err_set(e, ERR_NOMEM, "captioner: out of memory for results");
    int rc = 0;
    for (int start = 0; start < n && !rc; start += c->max_images) {
        const int cnt = n - start < c->max_images ? n - start : c->max_images;
        const float *src = clip + (size_t)start * D;
        if (c->normalize) {
            captioner_normalize_prefix(c->clip_host, src, cnt, D);
            src = c->clip_host;
        }
        ops_upload(c->ctx, c->clip_dev, src, (size_t)cnt * D);
        rc = c->cfg.mapping == CLIPCAP_MAP_MLP ? mapper_mlp_forward(&c->mlp, c->prefix, c->clip_dev, cnt, e)
                                              : mapper_tf_forward(&c->tf, c->prefix, c->clip_dev, cnt, e);
        if (!rc) rc = decode_run(c->dec, c->prefix, cnt, res, e);
        if (!rc) rc = keep_results(c, res, (size_t)cnt * K, e);
    }
    free(res);
    if (rc) {
        free_results(c);
        return rc;
    }
    for (size_t i = 0; i < c->n_caps; i++) {
        const struct kept_caption *k = &c->kept[i];
        out[i] = (captioner_caption){k->text, c->tokens + k->off, k->n, k->logprob, k->score};
    }
    return 0;
}
