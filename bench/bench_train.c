/* clipcap side of bench/bench_train.sh: one ClipCap training step (MLP
 * mapper + GPT-2 small tuned: forward, loss, backward, AdamW), random
 * weights, after one warm-up step.
 *
 * usage: bench_train BATCH CAPTION_LEN PREFIX_LEN THREADS STEPS */
#include "core/progress.h"
#include "nn/adamw.h"
#include "nn/clipcap_model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static uint64_t rng = 1;
static float gauss(void)
{
    double u[2];
    for (int i = 0; i < 2; i++) {
        rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
        u[i] = ((rng >> 11) + 0.5) / 9007199254740992.0;
    }
    return (float)(sqrt(-2.0 * log(u[0])) * cos(2.0 * M_PI * u[1]));
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: bench_train BATCH CAPTION_LEN PREFIX_LEN THREADS STEPS\n");
        return 2;
    }
    int B = atoi(argv[1]), L = atoi(argv[2]), K = atoi(argv[3]), threads = atoi(argv[4]), steps = atoi(argv[5]);
    err_t e = {0};
    ops_ctx *ops = NULL;
    clipcap_model m;
    adamw opt;
    gpt2_config gc = {50257, 1024, 768, 12, 12, 1e-5f};
    clipcap_config cc = {CLIPCAP_MAP_MLP, 512, K, 0, 0, 0, 0};
    if (ops_create(&ops, threads, &e) || clipcap_model_init(&m, ops, &cc, &gc, &e)) goto fail;
    for (size_t i = 0; i < m.n_params; i++) m.params[i] = 0.02f * gauss();
    adamw_config ac;
    adamw_config_default(&ac);
    ac.warmup_steps = 0;
    ac.total_steps = 1000;
    if (adamw_init(&opt, ops, &ac, m.n_trainable, &e)) goto fail;
    float *clip = malloc((size_t)B * 512 * sizeof *clip);
    int32_t *tokens = malloc((size_t)B * L * sizeof *tokens);
    for (int i = 0; i < B * 512; i++) clip[i] = gauss();
    for (int i = 0; i < B * L; i++) tokens[i] = (int32_t)((unsigned)(gauss() * 1e6f + 1e8f) % 50257u);
    double loss = 0, t0 = 0;
    for (int s = 0; s <= steps; s++) {
        if (s == 1) t0 = clock_now(); /* step 0 is the warm-up */
        long count = 0;
        clipcap_model_zero_grad(&m);
        if (clipcap_model_forward(&m, clip, tokens, B, L, &loss, &count, &e) ||
            clipcap_model_backward(&m, 1.0f / (float)count, &e))
            goto fail;
        adamw_step(&opt, m.params, m.grads);
        loss /= (double)count;
    }
    double dt = clock_now() - t0;
    printf("clipcap %d threads: %.3f s for %d steps (batch %d, T %d), loss %.4f, steps/s: %.4f\n", threads, dt, steps,
           B, K + L, loss, steps / dt);
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
