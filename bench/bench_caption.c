/* clipcap side of bench/bench_caption.sh: loads the GPT-2 directory and the
 * prefixes the Python side wrote and decodes them with common/nn/decode:
 *   greedy, one prefix at a time (max_batch 1)         -> c_greedy.txt
 *   greedy, the N_GREEDY prefixes repeated GREPEAT times, max_batch GBATCH
 *   beam 5, one prefix at a time (max_batch 5)         -> c_beam.txt
 *   beam 5, the N_BEAM prefixes repeated BREPEAT times, max_batch BBATCH
 * after a warm-up that touches every weight. Each repeated prefix must get
 * the tokens it got alone (checked: exit status 1 otherwise). Prints
 * captions/s of each.
 *
 * PRECISION (default fp32) is the GEMM precision (ops_ext.h); token files
 * get a _PRECISION suffix when it is not fp32.
 *
 * usage: bench_caption OUTDIR THREADS N_GREEDY N_BEAM GREPEAT BREPEAT GBATCH BBATCH [PRECISION] */
#include "core/progress.h"
#include "io/npy.h"
#include "nn/decode.h"
#include "nn/gpt2.h"
#include "nn/ops_ext.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct run_stats {
    double seconds;
    long tokens;
} run_stats;

/* Decode n prefixes (prefix i is source[i % n_src]) with cfg, per_call
 * prefixes per decode_run; results copied to toks[i·nc·max_tokens ...],
 * lens[i·nc + r]. */
static int run(gpt2 *g, const decode_config *cfg, const float *src, int n_src, int n, int per_call, int32_t *toks,
               int *lens, run_stats *st, err_t *e)
{
    const int k = 10, E = g->cfg.n_embd, nc = cfg->num_captions;
    const size_t pe = (size_t)k * E;
    float *dev = ops_alloc(g->ctx, (size_t)n * pe, e);
    decode_result *res = malloc((size_t)n * nc * sizeof *res);
    decoder *d = NULL;
    int rc = !dev || !res ? err_set(e, ERR_NOMEM, "out of memory for %d prefixes", n) : 0;
    for (int i = 0; !rc && i < n; i++) ops_copy(g->ctx, dev + i * pe, src + (size_t)(i % n_src) * pe, pe);
    if (!rc) rc = decoder_create(&d, g, cfg, k, e);
    double t0 = clock_now();
    st->tokens = 0;
    for (int p0 = 0; !rc && p0 < n; p0 += per_call) {
        int m = n - p0 < per_call ? n - p0 : per_call;
        if ((rc = decode_run(d, dev + p0 * pe, m, res, e))) break;
        for (int i = 0; i < m * nc; i++) {
            memcpy(toks + ((size_t)p0 * nc + i) * cfg->max_tokens, res[i].tokens, (size_t)res[i].n_tokens * 4);
            lens[p0 * nc + i] = res[i].n_tokens;
            st->tokens += res[i].n_tokens;
        }
    }
    st->seconds = clock_now() - t0;
    decoder_free(d);
    ops_free(g->ctx, dev);
    free(res);
    return rc;
}

static int write_tokens(const char *path, const int32_t *toks, const int *lens, int n, int max_tokens, err_t *e)
{
    FILE *f = fopen(path, "w");
    if (!f) return err_set(e, ERR_IO, "%s: cannot create", path);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < lens[i]; j++) fprintf(f, "%d%c", toks[(size_t)i * max_tokens + j], j + 1 < lens[i] ? ' ' : '\n');
    return fclose(f) ? err_set(e, ERR_IO, "%s: write failed", path) : 0;
}

/* Every repeat of prefix i decoded like prefix i alone. */
static int same_as_alone(const int32_t *alone, const int *alone_lens, const int32_t *batch, const int *batch_lens,
                         int n_src, int n, int nc, int max_tokens)
{
    int bad = 0;
    for (int i = 0; i < n * nc; i++) {
        int a = (i / nc) % n_src * nc + i % nc;
        bad += batch_lens[i] != alone_lens[a] ||
               memcmp(batch + (size_t)i * max_tokens, alone + (size_t)a * max_tokens, (size_t)alone_lens[a] * 4);
    }
    return bad;
}

static void report(const char *what, int threads, int n, const run_stats *st, int nc)
{
    printf("clipcap %s, %d threads: %d captions in %.2f s, mean %.1f tokens%s, captions/s: %.4f\n", what, threads, n,
           st->seconds, (double)st->tokens / ((double)n * nc), nc > 1 ? " per beam" : "", n / st->seconds);
}

int main(int argc, char **argv)
{
    if (argc != 9 && argc != 10) {
        fprintf(stderr, "usage: bench_caption OUTDIR THREADS N_GREEDY N_BEAM GREPEAT BREPEAT GBATCH BBATCH [PRECISION]\n");
        return 2;
    }
    const char *dir = argv[1];
    const int threads = atoi(argv[2]), n_greedy = atoi(argv[3]), n_beam = atoi(argv[4]);
    const int grepeat = atoi(argv[5]), brepeat = atoi(argv[6]), gbatch = atoi(argv[7]), bbatch = atoi(argv[8]);
    char path[4096];
    err_t e = {0};
    ops_ctx *ops = NULL;
    gpt2 g = {0};
    float *host = NULL, *dev = NULL;
    int64_t shape[NPY_MAX_DIMS];
    int nd = 0, bad = 0;
    enum ops_precision prec = OPS_FP32;
    if (argc == 10 && ops_precision_parse(argv[9], &prec, &e)) goto fail;
    /* token files of another precision next to fp32's */
    char sfx[16] = "";
    if (prec != OPS_FP32) snprintf(sfx, sizeof sfx, "_%s", ops_precision_name(prec));
    snprintf(path, sizeof path, "%s/prefixes.npy", dir);
    if (npy_read_f32(path, &host, shape, &nd, &e)) goto fail;
    snprintf(path, sizeof path, "%s/gpt2_124m", dir);
    if (ops_create(&ops, threads, &e) || ops_set_precision(ops, prec, &e) || gpt2_open(&g, ops, path, &e)) goto fail;
    printf("clipcap GEMMs: %s\n", ops_precision_impl(ops));
    const size_t n_pre = (size_t)shape[0], pe = (size_t)shape[1] * shape[2];
    if (nd != 3 || shape[1] != 10 || shape[2] != g.cfg.n_embd || n_pre < (size_t)n_greedy || n_pre < (size_t)n_beam) {
        err_set(&e, ERR_FORMAT, "%s/prefixes.npy: not [>= %d, 10, %d]", dir, n_greedy > n_beam ? n_greedy : n_beam,
                g.cfg.n_embd);
        goto fail;
    }
    if (!(dev = ops_alloc(ops, n_pre * pe, &e))) goto fail;
    ops_upload(ops, dev, host, n_pre * pe);

    decode_config greedy, beam;
    decode_config_default(&greedy);
    beam = greedy;
    beam.beam = beam.num_captions = 5;
    const int T = greedy.max_tokens, ng = n_greedy * grepeat, nb = n_beam * brepeat;
    int32_t *toks = calloc((size_t)(ng + 5 * nb) * T, sizeof *toks), *alone = calloc((size_t)5 * (n_greedy + n_beam) * T, 4);
    int *lens = calloc((size_t)(ng + 5 * nb), sizeof *lens), *alone_lens = calloc((size_t)5 * (n_greedy + n_beam), sizeof *lens);
    if (!toks || !alone || !lens || !alone_lens) {
        err_set(&e, ERR_NOMEM, "out of memory");
        goto fail;
    }
    run_stats st;
    decode_config warm = greedy;
    warm.max_tokens = 2;
    if (run(&g, &warm, dev, 1, 1, 1, toks, lens, &st, &e)) goto fail;

    greedy.max_batch = 1;
    if (run(&g, &greedy, dev, n_greedy, n_greedy, 1, alone, alone_lens, &st, &e)) goto fail;
    report("greedy one at a time", threads, n_greedy, &st, 1);
    snprintf(path, sizeof path, "%s/c_greedy%s.txt", dir, sfx);
    if (write_tokens(path, alone, alone_lens, n_greedy, T, &e)) goto fail;
    greedy.max_batch = gbatch;
    if (run(&g, &greedy, dev, n_greedy, ng, ng, toks, lens, &st, &e)) goto fail;
    char what[128];
    snprintf(what, sizeof what, "greedy batched (max_batch %d)", gbatch);
    report(what, threads, ng, &st, 1);
    bad += same_as_alone(alone, alone_lens, toks, lens, n_greedy, ng, 1, T);

    int32_t *balone = alone + (size_t)n_greedy * T;
    int *balone_lens = alone_lens + n_greedy;
    beam.max_batch = 5;
    if (run(&g, &beam, dev, n_beam, n_beam, 1, balone, balone_lens, &st, &e)) goto fail;
    report("beam5 one at a time", threads, n_beam, &st, 5);
    snprintf(path, sizeof path, "%s/c_beam%s.txt", dir, sfx);
    if (write_tokens(path, balone, balone_lens, 5 * n_beam, T, &e)) goto fail;
    beam.max_batch = bbatch;
    if (run(&g, &beam, dev, n_beam, nb, nb, toks, lens, &st, &e)) goto fail;
    snprintf(what, sizeof what, "beam5 batched (max_batch %d)", bbatch);
    report(what, threads, nb, &st, 5);
    bad += same_as_alone(balone, balone_lens, toks, lens, n_beam, nb, 5, T);
    printf("batched captions that differ from the same prefix decoded alone: %d\n", bad);

    free(toks), free(alone), free(lens), free(alone_lens);
    ops_free(ops, dev);
    gpt2_free(&g);
    ops_destroy(ops);
    free(host);
    return bad ? 1 : 0;
fail:
    fprintf(stderr, "bench_caption: %s\n", e.msg);
    return 1;
}
