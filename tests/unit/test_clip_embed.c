/* Image files → CLIP embeddings (common/nn/clip_embed.h) with the tiny CLIP
 * fixture, against openai/CLIP's preprocessing and a plain-PyTorch tower
 * (tests/gen/gen_clip_fixtures.py → tests/fixtures/clip/embed_expected.txt:
 * "NAME v1 ... v16" per image of tests/fixtures/image/src):
 * - good files among missing, corrupt and directory paths, in batches of 3
 *   where the failures fall at every position and fill one whole batch:
 *   each good row matches torch, each failed row is zeros with an ERR_*
 *   status, and a failure never shifts the rows of the files after it;
 * - a forward-pass error (a batch larger than the model was loaded for)
 *   is the call's error; max_batch < 1 is refused; n = 0 does nothing.
 *
 * Tolerance: per image, max|ours - torch| / max|torch| <= 1e-4, as in
 * test_clip_vit.c: the preprocessing is bit-exact and both towers are
 * float32, so only the summation order differs. */
#include "check.h"
#include "nn/clip_embed.h"

#define N_REF 7
#define DIM 16

static ops_ctx *ops;
static char ref_name[N_REF][128];
static float ref[N_REF][DIM];

static int load_reference(void)
{
    char path[4096];
    FILE *f = fopen(check_fixture(path, sizeof path, "clip/embed_expected.txt"), "r");
    CHECK_MSG(f != NULL, "cannot open %s", path);
    if (!f) return -1;
    int n = 0;
    while (n < N_REF && fscanf(f, "%127s", ref_name[n]) == 1) {
        int got = 0;
        for (int d = 0; d < DIM; d++) got += fscanf(f, "%f", &ref[n][d]);
        CHECK_MSG(got == DIM, "%s: %s: %d of %d values", path, ref_name[n], got, DIM);
        n++;
    }
    fclose(f);
    CHECK_MSG(n == N_REF, "%s: %d of %d images", path, n, N_REF);
    return n == N_REF ? 0 : -1;
}

static double rel_err(const float *ours, const float *want)
{
    double d = 0, s = 0;
    for (int i = 0; i < DIM; i++) {
        d = fmax(d, fabs((double)ours[i] - want[i]));
        s = fmax(s, fabs((double)want[i]));
    }
    return d / s;
}

static clip_vit *load_tiny(int max_batch)
{
    char dir[4096];
    clip_vit *m = NULL;
    err_t e = {0};
    CHECK_OK(clip_vit_load(&m, ops, check_fixture(dir, sizeof dir, "clip/tiny"), max_batch, &e), &e);
    if (m) CHECK(clip_vit_embed_dim(m) == DIM);
    return m;
}

static void test_files_and_failures(void)
{
    char tmp[4096], img[N_REF][4200], missing[4200], corrupt[4200];
    check_tmpdir(tmp, sizeof tmp, "clip_embed");
    snprintf(missing, sizeof missing, "%s/missing.png", tmp);
    snprintf(corrupt, sizeof corrupt, "%s/corrupt.jpg", tmp);
    FILE *f = fopen(corrupt, "w");
    CHECK(f != NULL);
    if (f) fputs("not an image", f), fclose(f);
    for (int i = 0; i < N_REF; i++) {
        char rel[200];
        snprintf(rel, sizeof rel, "image/src/%s", ref_name[i]);
        check_fixture(img[i], sizeof img[i], rel);
    }
    /* batches of 3: [bad ok ok] [ok bad ok] [bad bad bad] [ok ok bad] [ok ok] */
    char *paths[] = {missing, img[0], img[1], img[2], corrupt, img[3], corrupt, tmp, missing,
                     img[4],  img[5], tmp,    img[6], img[0]};
    const int ref_of[] = {-1, 0, 1, 2, -1, 3, -1, -1, -1, 4, 5, -1, 6, 0};
    const int n = (int)(sizeof paths / sizeof *paths);
    clip_vit *m = load_tiny(3);
    clip_embed *ce = NULL;
    err_t e = {0};
    if (m) CHECK_OK(clip_embed_create(&ce, m, &(clip_embed_cfg){.max_batch = 3, .threads = 2}, &e), &e);
    if (!ce) {
        clip_vit_free(m);
        return;
    }
    float out[14][DIM];
    int status[14];
    for (int i = 0; i < n; i++)
        for (int d = 0; d < DIM; d++) out[i][d] = NAN; /* a row the call forgets stays visible */
    CHECK_OK(clip_embed_files(ce, paths, n, &out[0][0], status, &e), &e);
    for (int i = 0; i < n; i++) {
        if (ref_of[i] < 0) {
            CHECK_MSG(status[i] < 0, "%s: status %d, want an error", paths[i], status[i]);
            int zeros = 1;
            for (int d = 0; d < DIM; d++) zeros &= out[i][d] == 0.0f;
            CHECK_MSG(zeros, "row %d (%s) failed but is not zeros", i, paths[i]);
            continue;
        }
        CHECK_MSG(status[i] == 0, "%s: status %d", paths[i], status[i]);
        double r = rel_err(out[i], ref[ref_of[i]]);
        CHECK_MSG(r <= 1e-4, "row %d (%s): max|diff|/max|torch| = %.3g", i, ref_name[ref_of[i]], r);
    }
    CHECK_OK(clip_embed_files(ce, paths, 0, NULL, NULL, &e), &e);
    clip_embed_free(ce);
    clip_vit_free(m);
}

static void test_errors(void)
{
    err_t e = {0};
    clip_vit *m = load_tiny(2);
    if (!m) return;
    clip_embed *ce = (clip_embed *)&e;
    CHECK(clip_embed_create(&ce, m, &(clip_embed_cfg){.max_batch = 0}, &e) == ERR_ARG);
    CHECK(ce == NULL);
    /* three decodable images in one batch, but the model takes two at most */
    CHECK_OK(clip_embed_create(&ce, m, &(clip_embed_cfg){.max_batch = 3}, &e), &e);
    if (ce) {
        char img[3][4200], rel[200];
        for (int i = 0; i < 3; i++) {
            snprintf(rel, sizeof rel, "image/src/%s", ref_name[i]);
            check_fixture(img[i], sizeof img[i], rel);
        }
        char *paths[] = {img[0], img[1], img[2]};
        float out[3][DIM];
        int status[3];
        CHECK(clip_embed_files(ce, paths, 3, &out[0][0], status, &e) == ERR_ARG);
    }
    clip_embed_free(ce);
    clip_embed_free(NULL);
    clip_vit_free(m);
}

int main(void)
{
    err_t e = {0};
    CHECK_OK(ops_create(&ops, 2, &e), &e);
    if (ops && load_reference() == 0) {
        CHECK_RUN(test_files_and_failures);
        CHECK_RUN(test_errors);
    }
    ops_destroy(ops);
    return check_summary();
}
