/* clipcap side of bench/bench_train.sh: one ClipCap training step
 * (forward, loss, backward, AdamW) at GPT-2 small's shape, random weights,
 * one warm-up step, then STEPS timed.
 *   mlp          MLP mapper (k = 10) + GPT-2 tuned
 *   transformer  Transformer mapper (k = 40, clip_length = 40, 8 layers) +
 *                GPT-2 frozen (no GPT-2 weight gradient computed or stored)
 *
 * usage: bench_train VARIANT BATCH CAPTION_LEN THREADS STEPS */
#include "core/progress.h"
#include "nn/adamw.h"
#include "nn/clipcap_model.h"
#include "nn/ops_ext.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* uniform in [-a, a) from xorshift64* */
static float uniform(uint64_t *s, float a)
{
    *s ^= *s >> 12, *s ^= *s << 25, *s ^= *s >> 27;
    return ((float)((*s * 2685821657736338717ULL) >> 40) / 16777216.0f * 2.0f - 1.0f) * a;
}

int main(int argc, char **argv)
{
    if ((argc != 6 && argc != 7) || (strcmp(argv[1], "mlp") && strcmp(argv[1], "transformer"))) {
        fprintf(stderr, "usage: bench_train mlp|transformer BATCH CAPTION_LEN THREADS STEPS [PRECISION]\n");
        return 2;
    }
    int mlp = !strcmp(argv[1], "mlp");
    int B = atoi(argv[2]), L = atoi(argv[3]), threads = atoi(argv[4]), steps = atoi(argv[5]);
    const int D = 512, K = mlp ? 10 : 40;
    err_t e = {0};
    enum ops_precision prec = OPS_FP32;
    if (argc == 7 && ops_precision_parse(argv[6], &prec, &e)) {
        fprintf(stderr, "bench_train: %s\n", e.msg);
        return 2;
    }
    ops_ctx *ops = NULL;
    clipcap_model m;
    adamw opt;
    memset(&m, 0, sizeof m);
    memset(&opt, 0, sizeof opt);
    gpt2_config gc = {.vocab_size = 50257, .n_positions = 1024, .n_embd = 768, .n_head = 12, .n_layer = 12,
                      .ln_eps = 1e-5f};
    clipcap_config cc = {.mapping = mlp ? CLIPCAP_MAP_MLP : CLIPCAP_MAP_TRANSFORMER, .clip_dim = D, .prefix_len = K,
                         .clip_len = mlp ? 0 : 40, .mapper_layers = mlp ? 0 : 8, .freeze_gpt2 = !mlp};
    float *clip = malloc((size_t)B * D * sizeof *clip);
    int32_t *tokens = malloc((size_t)B * L * sizeof *tokens);
    if (!clip || !tokens) {
        fprintf(stderr, "bench_train: out of memory\n");
        return 1;
    }
    if (ops_create(&ops, threads, &e) || ops_set_precision(ops, prec, &e) || clipcap_model_init(&m, ops, &cc, &gc, &e))
        goto fail;
    uint64_t s = 0x9e3779b97f4a7c15ULL;
    for (size_t i = 0; i < m.n_params; i++) m.params[i] = uniform(&s, 0.035f); /* std 0.02 */
    adamw_config ac;
    adamw_config_default(&ac);
    ac.warmup_steps = 0;
    ac.total_steps = 1000;
    if (adamw_init(&opt, ops, &ac, m.n_trainable, &e)) goto fail;
    for (int i = 0; i < B * D; i++) clip[i] = uniform(&s, 1.7f);
    for (int i = 0; i < B * L; i++) tokens[i] = (int32_t)((uint32_t)(uniform(&s, 0.5f) * 1e7f + 1e7f) % 50257u);
    double loss = 0, t0 = 0;
    for (int st = 0; st <= steps; st++) {
        if (st == 1) t0 = clock_now(); /* step 0 is the warm-up */
        long count = 0;
        clipcap_model_zero_grad(&m);
        if (clipcap_model_forward(&m, clip, tokens, B, L, &loss, &count, &e) ||
            clipcap_model_backward(&m, 1.0f / (float)count, &e))
            goto fail;
        adamw_step(&opt, m.params, m.grads);
        loss /= (double)count;
    }
    double dt = clock_now() - t0;
    printf("clipcap %s %s %d threads: batch %d, T %d, %zu trainable of %zu parameters, loss %.4f, s/step: %.3f\n",
           argv[1], ops_precision_impl(ops), threads, B, K + L, m.n_trainable, m.n_params, loss, dt / steps);
    free(clip);
    free(tokens);
    adamw_free(&opt);
    clipcap_model_free(&m);
    ops_destroy(ops);
    return 0;
fail:
    fprintf(stderr, "bench_train: %s\n", e.msg);
    return 1;
}
