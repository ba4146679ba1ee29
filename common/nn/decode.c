#include "nn/decode.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/target_clones.h"
#include "nn/gpt2_kv.h"

/* One hypothesis. `sum` is the reference's running fp32 score: its
 * arithmetic is mirrored operation by operation (score + log-prob, divided
 * by the new length, multiplied back), so that rounding happens where the
 * reference rounds and the ranking sees the same numbers up to the logits'
 * own last bits (docs/decoding.md, "Exactness"). */
typedef struct dec_beam {
    int32_t *tok; /* [max_tokens] */
    int len;      /* tokens that count: a stopped beam stops growing */
    float sum;
    int stopped;
    int slot; /* cache slot while not stopped */
    int row;  /* logits row of the current step */
} dec_beam;

/* The beams of one prefix. Group g owns cache slots [g·beam, (g+1)·beam). */
typedef struct dec_group {
    int prefix; /* -1: free */
    int t;      /* tokens every unstopped beam has generated */
    int nb;     /* beams in cur: 1 (the prefilled prefix) before the first token */
    dec_beam *cur, *nxt;
} dec_group;

typedef struct dec_cand {
    int src, tok, len;
    float sum, avg;
    long flat; /* src·V + tok: the reference's flattened index, for ties */
} dec_cand;

struct decoder {
    gpt2 *g;
    decode_config cfg;
    int k, V, E, n_groups;
    gpt2_kv kv;
    float *last, *logits; /* backend [max_batch, E], [max_batch, V] */
    float *host_logits;   /* [max_batch, V] */
    int32_t *top_tok;     /* [max_batch, beam]: each row's best tokens */
    float *top_val;
    double *lse;           /* [max_batch] log Σ exp(logits) of each row */
    int32_t *row_tok, *row_pos, *row_slot, *new_groups, *new_slot; /* [max_batch] */
    int *claimed, *copy_from, *order; /* [beam] each, one allocation */
    float *final_score;               /* [beam] */
    dec_group *groups;
    dec_beam *beams;
    int32_t *beam_tok;
    dec_cand *cands; /* [beam·beam] */
    int32_t *res_tok;
    size_t res_cap;
};

void decode_config_default(decode_config *cfg)
{
    cfg->max_tokens = 67;
    cfg->stop_token = 13;
    cfg->beam = 1;
    cfg->num_captions = 1;
    cfg->max_batch = 64;
}

void decoder_free(decoder *d)
{
    if (!d) return;
    gpt2_kv_free(&d->kv);
    ops_free(d->g->ctx, d->last);
    ops_free(d->g->ctx, d->logits);
    free(d->host_logits);
    free(d->top_tok);
    free(d->top_val);
    free(d->lse);
    free(d->row_tok);
    free(d->row_pos);
    free(d->row_slot);
    free(d->new_groups);
    free(d->new_slot);
    free(d->claimed);
    free(d->final_score);
    free(d->groups);
    free(d->beams);
    free(d->beam_tok);
    free(d->cands);
    free(d->res_tok);
    free(d);
}

int decoder_create(decoder **out, gpt2 *g, const decode_config *cfg, int prefix_len, err_t *e)
{
    *out = NULL;
    const gpt2_config *gc = &g->cfg;
    const decode_config *c = cfg;
    if (c->max_tokens < 1 || c->beam < 1 || c->num_captions < 1 || c->num_captions > c->beam ||
        c->max_batch < c->beam || c->beam > gc->vocab_size || c->stop_token >= gc->vocab_size)
        return err_set(e, ERR_ARG,
                       "decoder: max_tokens=%d beam=%d num_captions=%d max_batch=%d stop_token=%d (need max_tokens >= 1, "
                       "1 <= num_captions <= beam <= max_batch, beam <= vocab %d, stop_token < vocab)",
                       c->max_tokens, c->beam, c->num_captions, c->max_batch, c->stop_token, gc->vocab_size);
    /* the last token is never fed back, so k + max_tokens - 1 positions */
    if (prefix_len < 1 || prefix_len + c->max_tokens - 1 > gc->n_positions)
        return err_set(e, ERR_ARG, "decoder: prefix length %d + %d tokens exceeds GPT-2's %d positions", prefix_len,
                       c->max_tokens, gc->n_positions);
    decoder *d = calloc(1, sizeof *d);
    if (!d) return err_set(e, ERR_NOMEM, "decoder: out of memory");
    d->g = g;
    d->cfg = *c;
    d->k = prefix_len;
    d->V = gc->vocab_size;
    d->E = gc->n_embd;
    d->n_groups = c->max_batch / c->beam;
    const int rows = d->n_groups * c->beam, beams = 2 * rows;
    int rc = gpt2_kv_create(&d->kv, g, rows, prefix_len + c->max_tokens - 1, rows > prefix_len ? rows : prefix_len, e);
    if (rc) {
        free(d);
        return rc;
    }
    const size_t RV = (size_t)rows * d->V;
    if (!(d->last = ops_alloc(g->ctx, (size_t)rows * d->E, e)) || !(d->logits = ops_alloc(g->ctx, RV, e))) {
        decoder_free(d);
        return err_wrap(e, "decoder: %d rows", rows);
    }
    d->host_logits = malloc(RV * sizeof *d->host_logits);
    d->top_tok = malloc((size_t)rows * c->beam * sizeof *d->top_tok);
    d->top_val = malloc((size_t)rows * c->beam * sizeof *d->top_val);
    d->lse = malloc((size_t)rows * sizeof *d->lse);
    d->row_tok = malloc((size_t)rows * sizeof *d->row_tok);
    d->row_pos = malloc((size_t)rows * sizeof *d->row_pos);
    d->row_slot = malloc((size_t)rows * sizeof *d->row_slot);
    d->new_groups = malloc((size_t)rows * sizeof *d->new_groups);
    d->new_slot = malloc((size_t)rows * sizeof *d->new_slot);
    d->claimed = malloc((size_t)3 * c->beam * sizeof *d->claimed);
    d->final_score = malloc((size_t)c->beam * sizeof *d->final_score);
    d->groups = calloc((size_t)d->n_groups, sizeof *d->groups);
    d->beams = calloc((size_t)beams, sizeof *d->beams);
    d->beam_tok = malloc((size_t)beams * c->max_tokens * sizeof *d->beam_tok);
    d->cands = malloc((size_t)c->beam * c->beam * sizeof *d->cands);
    if (!d->host_logits || !d->top_tok || !d->top_val || !d->lse || !d->row_tok || !d->row_pos || !d->row_slot ||
        !d->new_groups || !d->new_slot || !d->claimed || !d->final_score || !d->groups || !d->beams || !d->beam_tok ||
        !d->cands) {
        decoder_free(d);
        return err_set(e, ERR_NOMEM, "decoder: out of memory for %d rows", rows);
    }
    d->copy_from = d->claimed + c->beam;
    d->order = d->copy_from + c->beam;
    for (int i = 0; i < beams; i++) d->beams[i].tok = d->beam_tok + (size_t)i * c->max_tokens;
    for (int i = 0; i < d->n_groups; i++) {
        d->groups[i].cur = d->beams + (size_t)i * 2 * c->beam;
        d->groups[i].nxt = d->groups[i].cur + c->beam;
    }
    *out = d;
    return 0;
}

/* The n best entries of x[0..V) by value, ties to the lower index (as the
 * reference's argmax; its topk leaves tie order unspecified). */
static void row_top(const float *x, int V, int n, int32_t *ti, float *tv)
{
    int have = 0;
    for (int j = 0; j < V; j++) {
        const float v = x[j];
        if (have == n && !(v > tv[n - 1])) continue;
        int i = have < n ? have++ : n - 1;
        for (; i > 0 && v > tv[i - 1]; i--) {
            tv[i] = tv[i - 1];
            ti[i] = ti[i - 1];
        }
        tv[i] = v;
        ti[i] = j;
    }
}

/* e^x for x <= 0, branch-free so that the row loop below vectorises:
 * x = k·ln2 + r, |r| <= ln2/2, e^r by its Taylor series to r^13
 * (remainder < 1e-17), 2^k put into the exponent bits. Arguments below
 * -708 are taken as -708 (e^-708 ~ 3e-308: nothing next to a sum >= 1), so
 * that 2^k stays a normal number; NaN stays NaN. Within 2 ulps of libm's
 * exp, which is all row_stats asks of it. The clamp is a comparison: GCC
 * vectorises the loop only because CMakeLists.txt compiles this file with
 * -fno-trapping-math (exception flags, which nothing reads: no value
 * changes). */
static inline double exp_neg(double x0)
{
    const double x = x0 < -708.0 ? -708.0 : x0;
    const double shift = 0x1.8p52; /* adding it rounds to an integer, kept in the low bits */
    double kd = x * 0x1.71547652b82fep0 + shift;
    uint64_t ki;
    memcpy(&ki, &kd, sizeof ki);
    kd -= shift;
    const double r = x - kd * 0x1.62e42fefa3800p-1 - kd * 0x1.ef35793c76730p-45;
    double p = 1.0 / 6227020800.0;
    p = p * r + 1.0 / 479001600.0;
    p = p * r + 1.0 / 39916800.0;
    p = p * r + 1.0 / 3628800.0;
    p = p * r + 1.0 / 362880.0;
    p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    const uint64_t sb = (ki << 52) + 0x3ff0000000000000ull; /* 2^k: k's two's complement shifted into the exponent */
    double scale;
    memcpy(&scale, &sb, sizeof scale);
    return p * scale;
}

/* Σ_j e^(x_j - m) in double, vectorised (partial sums per lane), with an
 * x86-64-v3 copy (AVX2 + FMA) picked at load time. */
CLONES_X86_64_V3 static double sum_exp(const float *x, int V, double m)
{
    double s = 0.0;
#pragma omp simd reduction(+ : s)
    for (int j = 0; j < V; j++) s += exp_neg((double)x[j] - m);
    return s;
}

/* Per logits row: its best `beam` tokens and log Σ exp, the latter in
 * double (V terms of very different sizes). A token's log-prob is then
 * logit - lse, rounded to fp32 like the reference's. Within a row the
 * average score grows with the logit, so the `beam` best candidates of the
 * whole step are among these per-row ones.
 *
 * The sum runs vectorised (libm's exp one term at a time was most of a
 * decoding step's non-GEMM time). Its lse is within eps of the sequential
 * libm sum's (both sums' rounding is below V·2^-53 relative, the exps' a
 * few ulps); the log-probs a step uses are rounded to fp32, so when every
 * one of them rounds the same at lse - eps and lse + eps the vectorised lse
 * gives the sequential one's bits, and a row where one does not (a log-prob
 * within eps of an fp32 rounding boundary) is summed the sequential way:
 * the results are bit for bit those of the sequential sum. */
static void row_stats(decoder *d, int rows)
{
    const int V = d->V, nb = d->cfg.beam;
#pragma omp parallel for if ((long)rows * V >= 65536) schedule(static)
    for (int r = 0; r < rows; r++) {
        const float *x = d->host_logits + (size_t)r * V;
        float *tv = d->top_val + (size_t)r * nb;
        row_top(x, V, nb, d->top_tok + (size_t)r * nb, tv);
        const double m = tv[0];
        double lse = m + log(sum_exp(x, V, m));
        const double eps = 4.0 * V * 0x1p-53 + 1e-15 * fabs(lse) + 1e-14;
        for (int j = 0; j < nb; j++)
            if ((float)((double)tv[j] - (lse - eps)) != (float)((double)tv[j] - (lse + eps))) {
                double s = 0.0;
                for (int i = 0; i < V; i++) s += exp((double)x[i] - m);
                lse = m + log(s);
                break;
            }
        d->lse[r] = lse;
    }
}

/* Higher average first; ties to the lower flattened index. */
static int cand_cmp(const void *pa, const void *pb)
{
    const dec_cand *a = pa, *b = pb;
    if (a->avg != b->avg) return a->avg > b->avg ? -1 : 1;
    return (a->flat > b->flat) - (a->flat < b->flat);
}

/* One step of group g from this step's logits rows: the reference's
 * candidate ranking over beam × V, then the survivors' cache slots (a
 * survivor keeps its source's slot; a second child of the same source gets
 * a free slot of the group and a copy of the cache). Returns 1 when the
 * group is finished. */
static int group_step(decoder *d, dec_group *g, int gi)
{
    const decode_config *c = &d->cfg;
    const int nbeam = c->beam, base = gi * nbeam;
    int nc = 0;
    for (int s = 0; s < g->nb; s++) {
        const dec_beam *b = &g->cur[s];
        if (b->stopped) {
            /* extends only with token 0 at no cost, length unchanged */
            d->cands[nc++] = (dec_cand){.src = s, .tok = 0, .len = b->len, .sum = b->sum, .flat = (long)s * d->V};
            continue;
        }
        const int32_t *ti = d->top_tok + (size_t)b->row * nbeam;
        const float *tv = d->top_val + (size_t)b->row * nbeam;
        for (int j = 0; j < nbeam; j++) {
            float lp = (float)((double)tv[j] - d->lse[b->row]);
            d->cands[nc++] = (dec_cand){
                .src = s, .tok = ti[j], .len = b->len + 1, .sum = b->sum + lp, .flat = (long)s * d->V + ti[j]};
        }
    }
    for (int i = 0; i < nc; i++) d->cands[i].avg = d->cands[i].sum / (float)d->cands[i].len;
    qsort(d->cands, (size_t)nc, sizeof *d->cands, cand_cmp);

    int *claimed = d->claimed, *copy_from = d->copy_from, all_stopped = 1;
    memset(claimed, 0, (size_t)nbeam * sizeof *claimed);
    for (int j = 0; j < nbeam; j++) {
        const dec_cand *cd = &d->cands[j];
        const dec_beam *src = &g->cur[cd->src];
        dec_beam *child = &g->nxt[j];
        memcpy(child->tok, src->tok, (size_t)src->len * sizeof *child->tok);
        child->len = src->len;
        if (!src->stopped) child->tok[child->len++] = cd->tok;
        child->sum = cd->avg * (float)cd->len;
        child->stopped = src->stopped || cd->tok == c->stop_token;
        child->slot = -1;
        copy_from[j] = -1;
        if (child->stopped) continue;
        all_stopped = 0;
        if (!claimed[src->slot - base]) {
            claimed[src->slot - base] = 1;
            child->slot = src->slot;
        } else {
            copy_from[j] = src->slot;
        }
    }
    /* Destinations are unclaimed slots, never a source still to be read. */
    for (int j = 0, f = 0; j < nbeam; j++) {
        if (copy_from[j] < 0) continue;
        while (claimed[f]) f++;
        claimed[f] = 1;
        g->nxt[j].slot = base + f;
        gpt2_kv_copy_slot(&d->kv, base + f, copy_from[j], d->k + g->t);
    }
    dec_beam *tmp = g->cur;
    g->cur = g->nxt;
    g->nxt = tmp;
    g->nb = nbeam;
    g->t++;
    return all_stopped || g->t == c->max_tokens;
}

/* The reference's final order: score / length, best first (ties to the
 * lower beam index); the first num_captions become the prefix's results. */
static void group_results(decoder *d, const dec_group *g, decode_result *results)
{
    const decode_config *c = &d->cfg;
    int *order = d->order;
    float *score = d->final_score;
    for (int i = 0; i < c->beam; i++) {
        score[i] = g->cur[i].sum / (float)g->cur[i].len;
        int j = i;
        for (; j > 0 && score[i] > score[order[j - 1]]; j--) order[j] = order[j - 1];
        order[j] = i;
    }
    for (int r = 0; r < c->num_captions; r++) {
        const dec_beam *b = &g->cur[order[r]];
        const size_t at = (size_t)g->prefix * c->num_captions + r;
        int32_t *dst = d->res_tok + at * c->max_tokens;
        memcpy(dst, b->tok, (size_t)b->len * sizeof *dst);
        results[at] = (decode_result){
            .tokens = dst, .n_tokens = b->len, .logprob = b->sum, .score = score[order[r]]};
    }
}

int decode_run(decoder *d, const float *prefixes, int n, decode_result *results, err_t *e)
{
    const decode_config *c = &d->cfg;
    if (n < 0) return err_set(e, ERR_ARG, "decode: %d prefixes", n);
    const size_t need = (size_t)n * c->num_captions * c->max_tokens;
    if (need > d->res_cap) {
        int32_t *p = realloc(d->res_tok, need * sizeof *p);
        if (!p) return err_set(e, ERR_NOMEM, "decode: out of memory for %d prefixes' tokens", n);
        d->res_tok = p;
        d->res_cap = need;
    }
    for (int i = 0; i < d->n_groups; i++) d->groups[i].prefix = -1;
    const int k = d->k, E = d->E;
    const int chunk = d->kv.max_rows / k; /* prefixes per prefill forward */
    int next = 0, done = 0;
    while (done < n) {
        /* rows 0..R-1: one new token for every unstopped beam */
        int R = 0;
        for (int i = 0; i < d->n_groups; i++) {
            dec_group *g = &d->groups[i];
            if (g->prefix < 0) continue;
            for (int s = 0; s < g->nb; s++) {
                dec_beam *b = &g->cur[s];
                if (b->stopped) continue;
                b->row = R;
                d->row_tok[R] = b->tok[b->len - 1];
                d->row_pos[R] = k + g->t - 1;
                d->row_slot[R] = b->slot;
                R++;
            }
        }
        if (R) gpt2_kv_step(&d->kv, d->row_tok, d->row_pos, d->row_slot, R, d->last);
        /* then a prefill row for each waiting prefix that a free group takes */
        int nnew = 0;
        for (int i = 0; i < d->n_groups && next < n; i++) {
            dec_group *g = &d->groups[i];
            if (g->prefix >= 0) continue;
            g->prefix = next++;
            g->t = 0;
            g->nb = 1;
            g->cur[0] = (dec_beam){.tok = g->cur[0].tok, .slot = i * c->beam, .row = R + nnew};
            d->new_groups[nnew++] = i;
        }
        for (int c0 = 0; c0 < nnew; c0 += chunk) {
            const int m = nnew - c0 < chunk ? nnew - c0 : chunk;
            for (int j = 0; j < m; j++) d->new_slot[j] = d->groups[d->new_groups[c0 + j]].cur[0].slot;
            /* waiting prefixes are taken in order, so a chunk is contiguous */
            const float *inp = prefixes + (size_t)d->groups[d->new_groups[c0]].prefix * k * E;
            gpt2_kv_prefill(&d->kv, inp, m, k, d->new_slot, d->last + (size_t)(R + c0) * E);
        }
        const int rows = R + nnew;
        gpt2_kv_logits(&d->kv, d->last, rows, d->logits);
        ops_download(d->g->ctx, d->host_logits, d->logits, (size_t)rows * d->V);
        row_stats(d, rows);
        for (int i = 0; i < d->n_groups; i++) {
            dec_group *g = &d->groups[i];
            if (g->prefix < 0 || !group_step(d, g, i)) continue;
            group_results(d, g, results);
            g->prefix = -1;
            done++;
        }
    }
    return 0;
}
