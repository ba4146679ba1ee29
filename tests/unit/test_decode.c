/* The KV-cache decoder (common/nn/decode, gpt2_kv, ops_attention_cached)
 * against the paper's own generation code run in PyTorch
 * (tests/gen/gen_decode.py: generate2 and generate_beam recomputing the
 * whole sequence every step, one prefix at a time) on a tiny random GPT-2
 * and the prefixes of both mappers:
 * - greedy and beam-5 token ids (all 5 beams, in rank order) are EQUAL to
 *   the reference's, decoding the 10 prefixes together with max_batch below
 *   10 (finished prefixes leave, waiting ones are prefilled into the freed
 *   slots), all at once, and one at a time; the fixture holds captions that
 *   stop at different steps and ones that run to 67 tokens (checked here);
 * - beam scores within 5e-6 of the reference's fp32 ones (measured: 8e-7,
 *   two ulps of a score near -4: the logits differ from PyTorch's in the
 *   last bits, another summation order); greedy log-prob sums within 5e-4
 *   of a double sum of the reference's log-softmax (measured 5e-5: ours is
 *   the reference's fp32 running score, up to 67 steps each rounding a
 *   value near -100, ulp 8e-6);
 * - the generator dropped prefixes whose reference decode has a near-tie
 *   (margin < 2e-5), so exact equality is a fair demand;
 * - the cached forward equals gpt2_forward on the whole sequence (1e-5), and
 *   ops_attention_cached with ragged lengths and permuted slots equals
 *   ops_attention run per sequence (1e-6);
 * - without a stop token every caption runs to 67 tokens and starts with
 *   the reference's;
 * - bad configurations are ERR_ARG. */
#include <stdint.h>

#include "nn/decode.h"
#include "nn/gpt2.h"
#include "nn/gpt2_kv.h"
#include "nn/ops.h"
#include "nn/ops_ext.h"
#include "check.h"
#include "nn_fixture.h"

#define N_PREFIX 10
#define K 4
#define MAXTOK 67
#define BEAM 5

/* decode/STEM SUFFIX.npy, see fx_npy_in. */
static float *load(const char *stem, const char *suffix, size_t *count)
{
    char name[128];
    snprintf(name, sizeof name, "%s%s.npy", stem, suffix);
    return fx_npy_in("decode", name, count);
}

typedef struct fixture {
    ops_ctx *ctx;
    gpt2 g;
    int ok;
} fixture;

static void fx_open(fixture *f)
{
    err_t e = {0};
    char dir[4096];
    f->ok = 0;
    CHECK_OK(ops_create(&f->ctx, 0, &e), &e);
    CHECK_OK(gpt2_open(&f->g, f->ctx, check_fixture(dir, sizeof dir, "decode/gpt2"), &e), &e);
    f->ok = f->ctx && f->g.cfg.vocab_size == 256 && f->g.cfg.n_embd == 32;
    CHECK(f->ok);
}

static void fx_close(fixture *f)
{
    gpt2_free(&f->g);
    ops_destroy(f->ctx);
}

/* Reference row of `width` token ids padded with -1: its length. */
static int ref_len(const float *row, int width)
{
    int n = 0;
    while (n < width && row[n] >= 0) n++;
    return n;
}

static int same_tokens(const decode_result *r, const float *ref, int width)
{
    int n = ref_len(ref, width);
    if (r->n_tokens != n) return 0;
    for (int i = 0; i < n; i++)
        if (r->tokens[i] != (int32_t)ref[i]) return 0;
    return 1;
}

/* Decode the mapper's prefixes with cfg, `per_call` prefixes per
 * decode_run call, into results (N_PREFIX · num_captions). */
static void run(fixture *f, const char *mapper, const decode_config *cfg, int per_call, decode_result *results,
                int32_t *tokens_copy)
{
    size_t n = 0;
    float *host = load(mapper, "_prefix", &n);
    CHECK(host && n == (size_t)N_PREFIX * K * 32);
    if (!host) return;
    err_t e = {0};
    float *dev = ops_alloc(f->ctx, n, &e);
    ops_upload(f->ctx, dev, host, n);
    decoder *d = NULL;
    CHECK_OK(decoder_create(&d, &f->g, cfg, K, &e), &e);
    for (int p0 = 0; d && p0 < N_PREFIX; p0 += per_call) {
        int m = N_PREFIX - p0 < per_call ? N_PREFIX - p0 : per_call;
        decode_result *res = results + (size_t)p0 * cfg->num_captions;
        CHECK_OK(decode_run(d, dev + (size_t)p0 * K * 32, m, res, &e), &e);
        /* results are only valid until the next run: keep a copy */
        for (int i = 0; i < m * cfg->num_captions; i++) {
            int32_t *dst = tokens_copy + ((size_t)p0 * cfg->num_captions + i) * MAXTOK;
            memcpy(dst, res[i].tokens, (size_t)res[i].n_tokens * sizeof *dst);
            res[i].tokens = dst;
        }
    }
    decoder_free(d);
    ops_free(f->ctx, dev);
    free(host);
}

static void check_greedy(fixture *f, const char *mapper, int max_batch, int per_call)
{
    float *ref = load(mapper, "_greedy", NULL), *ref_lp = load(mapper, "_greedy_lp", NULL);
    CHECK(ref && ref_lp);
    if (!ref || !ref_lp) return;
    decode_config cfg;
    decode_config_default(&cfg);
    cfg.max_batch = max_batch;
    decode_result res[N_PREFIX];
    int32_t *toks = calloc((size_t)N_PREFIX * MAXTOK, sizeof *toks);
    run(f, mapper, &cfg, per_call, res, toks);
    for (int i = 0; i < N_PREFIX; i++) {
        CHECK_MSG(same_tokens(&res[i], ref + (size_t)i * MAXTOK, MAXTOK), "%s greedy max_batch %d per call %d: prefix %d",
                  mapper, max_batch, per_call, i);
        CHECK_MSG(fabs(res[i].logprob - ref_lp[i]) <= 5e-4, "%s greedy prefix %d: logprob %.7f vs %.7f", mapper, i,
                  res[i].logprob, ref_lp[i]);
        CHECK(fabs(res[i].score - res[i].logprob / res[i].n_tokens) <= 1e-5);
    }
    free(toks);
    free(ref);
    free(ref_lp);
}

/* stop_token < 0: every caption runs to max_tokens, and its first tokens
 * are the reference's caption (greedy decoding is a deterministic prefix
 * of itself). */
static void check_greedy_no_stop(fixture *f, const char *mapper)
{
    float *ref = load(mapper, "_greedy", NULL);
    CHECK(ref != NULL);
    if (!ref) return;
    decode_config cfg;
    decode_config_default(&cfg);
    cfg.stop_token = -1;
    cfg.max_batch = 4;
    decode_result res[N_PREFIX];
    int32_t *toks = calloc((size_t)N_PREFIX * MAXTOK, sizeof *toks);
    run(f, mapper, &cfg, N_PREFIX, res, toks);
    for (int i = 0; i < N_PREFIX; i++) {
        const float *r = ref + (size_t)i * MAXTOK;
        int n = ref_len(r, MAXTOK), same = res[i].n_tokens == MAXTOK;
        for (int j = 0; same && j < n; j++) same = res[i].tokens[j] == (int32_t)r[j];
        CHECK_MSG(same, "%s no stop token: prefix %d", mapper, i);
    }
    free(toks);
    free(ref);
}

/* Beam search with num_captions of the 5 beams against the reference file
 * NAME.npy [N, 5, max_tokens] / NAME_score.npy [N, 5]. */
static void check_beam(fixture *f, const char *mapper, const char *name, int max_tokens, int num_captions,
                       int max_batch, int per_call)
{
    float *ref = load(name, "", NULL), *ref_score = load(name, "_score", NULL);
    CHECK(ref && ref_score);
    if (!ref || !ref_score) return;
    decode_config cfg;
    decode_config_default(&cfg);
    cfg.beam = BEAM;
    cfg.num_captions = num_captions;
    cfg.max_tokens = max_tokens;
    cfg.max_batch = max_batch;
    decode_result res[N_PREFIX * BEAM];
    int32_t *toks = calloc((size_t)N_PREFIX * BEAM * MAXTOK, sizeof *toks);
    run(f, mapper, &cfg, per_call, res, toks);
    double worst = 0;
    for (int i = 0; i < N_PREFIX; i++)
        for (int r = 0; r < num_captions; r++) {
            const decode_result *x = &res[i * num_captions + r];
            CHECK_MSG(same_tokens(x, ref + ((size_t)i * BEAM + r) * max_tokens, max_tokens),
                      "%s max_batch %d per call %d: prefix %d rank %d", name, max_batch, per_call, i, r);
            double d = fabs(x->score - ref_score[i * BEAM + r]);
            worst = d > worst ? d : worst;
            CHECK_MSG(d <= 5e-6, "%s prefix %d rank %d: score %.8f vs %.8f", name, i, r, x->score,
                      ref_score[i * BEAM + r]);
            CHECK(fabs(x->score - x->logprob / x->n_tokens) <= 1e-5);
        }
    if (check_failed_count) fprintf(stderr, "%s: worst score error %.3g\n", name, worst);
    free(toks);
    free(ref);
    free(ref_score);
}

/* The fixture covers what the decoder must handle: captions stopping at
 * different steps, captions running to max_tokens, beam searches ending
 * early and ones running to the end. */
static void test_fixture_coverage(void)
{
    const char *mappers[2] = {"mlp", "transformer"};
    for (int m = 0; m < 2; m++) {
        float *g = load(mappers[m], "_greedy", NULL), *b = load(mappers[m], "_beam", NULL);
        CHECK(g && b);
        if (!g || !b) return;
        int full = 0, early[MAXTOK + 1] = {0}, n_early = 0, beam_full = 0, beam_done_early = 0;
        for (int i = 0; i < N_PREFIX; i++) {
            int n = ref_len(g + (size_t)i * MAXTOK, MAXTOK);
            if (n == MAXTOK) full++;
            else if (!early[n]++) n_early++;
            int longest = 0;
            for (int r = 0; r < BEAM; r++) {
                int l = ref_len(b + ((size_t)i * BEAM + r) * MAXTOK, MAXTOK);
                longest = l > longest ? l : longest;
            }
            beam_full += longest == MAXTOK;
            beam_done_early += longest < MAXTOK;
        }
        CHECK_MSG(full > 0 && n_early >= 2 && beam_full > 0 && beam_done_early > 0, "%s: %d full, %d early lengths",
                  mappers[m], full, n_early);
        free(g);
        free(b);
    }
}

static void test_greedy(void)
{
    fixture f;
    fx_open(&f);
    if (!f.ok) return;
    const char *mappers[2] = {"mlp", "transformer"};
    for (int m = 0; m < 2; m++) {
        check_greedy(&f, mappers[m], 3, N_PREFIX);  /* continuous batching: 3 slots for 10 prefixes */
        check_greedy(&f, mappers[m], 16, N_PREFIX); /* all at once */
        check_greedy(&f, mappers[m], 1, 1);         /* one at a time */
        check_greedy(&f, mappers[m], 4, 3);         /* several calls reusing one decoder */
        check_greedy_no_stop(&f, mappers[m]);
    }
    fx_close(&f);
}

static void test_beam(void)
{
    fixture f;
    fx_open(&f);
    if (!f.ok) return;
    const char *mappers[2] = {"mlp", "transformer"};
    char name[64];
    for (int m = 0; m < 2; m++) {
        snprintf(name, sizeof name, "%s_beam", mappers[m]);
        check_beam(&f, mappers[m], name, MAXTOK, BEAM, 14, N_PREFIX); /* 2 groups of 5 slots for 10 prefixes */
        check_beam(&f, mappers[m], name, MAXTOK, BEAM, 50, N_PREFIX); /* all at once */
        check_beam(&f, mappers[m], name, MAXTOK, BEAM, 5, 1);         /* one at a time */
    }
    check_beam(&f, "mlp", "mlp_beam", MAXTOK, 2, 15, 4);        /* the best 2 of 5 */
    check_beam(&f, "mlp", "mlp_beam9", 9, BEAM, 10, N_PREFIX); /* the reference's entry_length = 9 */
    fx_close(&f);
}

/* gpt2_kv's prefill + steps give the logits of gpt2_forward on the whole
 * sequence at every position, for two sequences in permuted slots. */
static void test_kv_matches_forward(void)
{
    fixture f;
    fx_open(&f);
    if (!f.ok) return;
    err_t e = {0};
    const int E = 32, V = 256, T = 9, B = 2;
    size_t n = 0;
    float *pre = load("mlp", "_prefix", &n);
    CHECK(pre != NULL);
    if (!pre) return;
    const int32_t toks[2][5] = {{5, 200, 13, 0, 77}, {9, 9, 31, 255, 1}};
    /* the whole sequences: prefix then token embeddings */
    float *full = ops_alloc(f.ctx, (size_t)B * T * E, &e), *dev = ops_alloc(f.ctx, (size_t)B * K * E, &e);
    ops_upload(f.ctx, dev, pre, (size_t)B * K * E);
    for (int b = 0; b < B; b++) {
        ops_copy(f.ctx, full + (size_t)b * T * E, dev + (size_t)b * K * E, (size_t)K * E);
        gpt2_embed(&f.g, full + ((size_t)b * T + K) * E, toks[b], T - K);
    }
    CHECK_OK(gpt2_forward(&f.g, full, B, T, &e), &e);
    float *ref = malloc((size_t)B * T * V * sizeof *ref);
    ops_download(f.ctx, ref, f.g.acts.logits, (size_t)B * T * V);

    gpt2_kv kv;
    CHECK_OK(gpt2_kv_create(&kv, &f.g, 3, T, B * K, &e), &e);
    float *last = ops_alloc(f.ctx, (size_t)B * E, &e), *logits = ops_alloc(f.ctx, (size_t)B * V, &e);
    float host[2 * 256];
    const int32_t slots[2] = {2, 0};
    gpt2_kv_prefill(&kv, dev, B, K, slots, last);
    float worst = 0;
    for (int t = K - 1; t < T; t++) {
        if (t >= K) {
            int32_t tk[2] = {toks[0][t - K], toks[1][t - K]}, pos[2] = {t, t};
            gpt2_kv_step(&kv, tk, pos, slots, B, last);
        }
        gpt2_kv_logits(&kv, last, B, logits);
        ops_download(f.ctx, host, logits, (size_t)B * V);
        for (int b = 0; b < B; b++)
            for (int v = 0; v < V; v++) {
                float d = fabsf(host[b * V + v] - ref[((size_t)b * T + t) * V + v]);
                worst = d > worst ? d : worst;
            }
    }
    CHECK_MSG(worst <= 1e-5f, "cached logits differ from gpt2_forward by %g", worst);
    /* a forked slot continues like its source */
    gpt2_kv_copy_slot(&kv, 1, 2, T - 1);
    int32_t tk[2] = {toks[0][T - K - 1], toks[0][T - K - 1]}, pos[2] = {T - 1, T - 1}, fork[2] = {2, 1};
    gpt2_kv_step(&kv, tk, pos, fork, 2, last);
    gpt2_kv_logits(&kv, last, 2, logits);
    ops_download(f.ctx, host, logits, (size_t)2 * V);
    CHECK(memcmp(host, host + V, V * sizeof(float)) == 0);
    gpt2_kv_free(&kv);
    ops_free(f.ctx, last);
    ops_free(f.ctx, logits);
    ops_free(f.ctx, full);
    ops_free(f.ctx, dev);
    free(ref);
    free(pre);
    fx_close(&f);
}

static uint64_t rng = 7;
static float frand(void)
{
    rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
    return (float)((rng >> 40) / 16777216.0) * 2.0f - 1.0f;
}

/* Ragged lengths, slots out of order, a q stride wider than H·D. */
static void test_attention_cached(void)
{
    ops_ctx *ctx = NULL;
    err_t e = {0};
    CHECK_OK(ops_create(&ctx, 0, &e), &e);
    enum { H = 3, D = 8, C = H * D, SLOTS = 4, LEN = 40, B = 3, QS = 3 * C, KVS = 2 * C };
    const size_t slot_stride = (size_t)LEN * KVS;
    const int32_t slots[B] = {3, 0, 2}, lens[B] = {1, 37, 12};
    float *cache = ops_alloc(ctx, SLOTS * slot_stride, &e), *q = ops_alloc(ctx, (size_t)B * QS, &e);
    float *out = ops_alloc(ctx, (size_t)B * C, &e), *ref = ops_alloc(ctx, C, &e);
    float *h = malloc(SLOTS * slot_stride * sizeof *h);
    for (size_t i = 0; i < SLOTS * slot_stride; i++) h[i] = frand();
    ops_upload(ctx, cache, h, SLOTS * slot_stride);
    for (int i = 0; i < B * QS; i++) h[i] = frand();
    ops_upload(ctx, q, h, (size_t)B * QS);
    ops_attention_cached(ctx, out, q, QS, cache, cache + C, slots, lens, B, H, D, slot_stride, KVS, 0.3f);
    float a[C], r[C], worst = 0;
    for (int b = 0; b < B; b++) {
        const float *kv = cache + (size_t)slots[b] * slot_stride;
        ops_attention(ctx, ref, NULL, q + (size_t)b * QS, kv, kv + C, 1, 1, lens[b], H, D, QS, KVS, 1, 0.3f);
        ops_download(ctx, a, out + (size_t)b * C, C);
        ops_download(ctx, r, ref, C);
        for (int i = 0; i < C; i++) worst = fabsf(a[i] - r[i]) > worst ? fabsf(a[i] - r[i]) : worst;
    }
    CHECK_MSG(worst <= 1e-6f, "cached attention differs by %g", worst);
    free(h);
    ops_free(ctx, cache);
    ops_free(ctx, q);
    ops_free(ctx, out);
    ops_free(ctx, ref);
    ops_destroy(ctx);
}

static void test_bad_config(void)
{
    fixture f;
    fx_open(&f);
    if (!f.ok) return;
    decode_config ok, c;
    decode_config_default(&ok);
    ok.max_batch = 5;
    decoder *d = NULL;
    err_t e = {0};
    CHECK_OK(decoder_create(&d, &f.g, &ok, 72 - 66, &e), &e); /* exactly n_positions = 72 */
    decoder_free(d);
    decoder_free(NULL);
    CHECK(decoder_create(&d, &f.g, &ok, 72 - 65, &e) == ERR_ARG && d == NULL);
    c = ok, c.beam = 6;
    CHECK(decoder_create(&d, &f.g, &c, K, &e) == ERR_ARG); /* max_batch < beam */
    c = ok, c.num_captions = 2;
    CHECK(decoder_create(&d, &f.g, &c, K, &e) == ERR_ARG); /* more captions than beams */
    c = ok, c.max_tokens = 0;
    CHECK(decoder_create(&d, &f.g, &c, K, &e) == ERR_ARG);
    c = ok, c.stop_token = 256;
    CHECK(decoder_create(&d, &f.g, &c, K, &e) == ERR_ARG);
    CHECK(strstr(e.msg, "stop_token=256") != NULL);
    /* no prefixes: nothing to do */
    CHECK_OK(decoder_create(&d, &f.g, &ok, K, &e), &e);
    CHECK(decode_run(d, NULL, 0, NULL, &e) == 0);
    decoder_free(d);
    fx_close(&f);
}

int main(void)
{
    CHECK_RUN(test_fixture_coverage);
    CHECK_RUN(test_attention_cached);
    CHECK_RUN(test_kv_matches_forward);
    CHECK_RUN(test_greedy);
    CHECK_RUN(test_beam);
    CHECK_RUN(test_bad_config);
    return check_summary();
}
