/* `clipcap embed`: CLIP image embeddings of image files, one JSON line per
 * image, for checking the tower against other tools and for scripts. The
 * dataset-scale path is `clipcap extract` (feature store); this stage is
 * the direct one. Reading, decoding and the tower are common/nn/clip_embed.h,
 * shared with `clipcap caption --images`.
 *
 * Ranks take contiguous blocks of whole batches of the file list; rank 0
 * gathers and prints in input order, so the output of `mpirun -np N` is
 * byte for byte a single process's with the same --batch and threads per
 * process.
 * A file that cannot be read or decoded is reported on stderr with its path
 * and skipped; the run goes on and exits 1 at the end. */
#include "core/cli.h"
#include "core/log.h"
#include "core/mpictx.h"
#include "nn/clip_embed.h"
#include "nn/clip_vit.h"
#include "nn/ops_ext.h"

#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char stage_embed_summary[] = "CLIP image embeddings of image files, one JSON line per image";

static void embed_usage(FILE *out)
{
    fprintf(out,
            "usage: clipcap embed --clip DIR [--fast-resize] [--batch N] [--threads N] [--precision P] IMAGE...\n\n"
            "Prints one JSON line per image, in the order given:\n"
            "  {\"path\": \"IMAGE\", \"embedding\": [512 floats for ViT-B/32]}\n"
            "the projected CLIP image embedding (not normalised), as ClipCap uses it.\n\n"
            "  --clip PATH     CLIP model: a Hugging Face hub directory (config.json +\n"
            "                  model.safetensors, e.g. openai/clip-vit-base-patch32) or\n"
            "                  openai's own file (~/.cache/clip/ViT-B-32.pt, ...)\n"
            "  --fast-resize   decode JPEGs at a reduced DCT scale before resizing\n"
            "                  (faster, not bit-exact with Pillow; see docs/image.md)\n"
            "  --batch N       images per forward pass (default 16)\n"
            "  --threads N     compute threads (default: OMP_NUM_THREADS or all cores)\n"
            "  --precision P   GEMM precision: fp32 (default), tf32, bf16 or fp16 (fp32\n"
            "                  accumulation; docs/nn.md \"Precision\")\n"
            "  -h, --help      this help\n\n"
            "An image that cannot be read or decoded is reported on stderr as\n"
            "`PATH: reason` and has no output line; the exit status is then 1.\n"
            "Under mpirun the batches are split between ranks; the output is the same\n"
            "bytes as one process with the same --batch and --threads (the last bit of\n"
            "a float can depend on which images share a batch and on the thread count).\n");
}

typedef struct embed_opts {
    const char *clip_dir;
    int fast_resize, batch, threads;
    enum ops_precision precision;
} embed_opts;

static void print_line(const char *path, const float *v, int E)
{
    json_t *arr = json_array();
    for (int i = 0; i < E; i++) json_array_append_new(arr, json_real(v[i]));
    json_t *obj = json_pack("{s:s, s:o}", "path", path, "embedding", arr);
    /* 9 significant digits round-trip a float exactly */
    char *s = obj ? json_dumps(obj, JSON_REAL_PRECISION(9)) : NULL;
    if (s) puts(s);
    free(s);
    json_decref(obj);
}

/* First image of rank r's block of whole batches (r = size: the end). */
static int batch_start(int r, int size, int nb, int batch, int n)
{
    long b = (long)nb * r / size * batch;
    return b < n ? (int)b : n;
}

static int parse_args(int argc, char **argv, embed_opts *o, err_t *e)
{
    static const struct option opts[] = {
        {"clip", required_argument, NULL, 'c'},  {"fast-resize", no_argument, NULL, 'f'},
        {"batch", required_argument, NULL, 'b'}, {"threads", required_argument, NULL, 't'},
        {"precision", required_argument, NULL, 'Q'},
        {"help", no_argument, NULL, 'h'},        {NULL, 0, NULL, 0},
    };
    *o = (embed_opts){.batch = 16};
    int c, rc = 0;
    while (!rc && (c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'c': o->clip_dir = optarg; break;
        case 'f': o->fast_resize = 1; break;
        case 'b': rc = cli_parse_int("batch", optarg, 1, 4096, &o->batch, e); break;
        case 't': rc = cli_parse_int("threads", optarg, 0, 4096, &o->threads, e); break;
        case 'Q': rc = ops_precision_parse(optarg, &o->precision, e); break;
        case 'h': return 1;
        default: return err_set(e, ERR_ARG, "unknown option (try `clipcap embed --help`)");
        }
    }
    if (rc) return rc;
    if (!o->clip_dir) return err_set(e, ERR_ARG, "--clip DIR is required");
    if (optind >= argc) return err_set(e, ERR_ARG, "no IMAGE given");
    return 0;
}

int stage_embed_main(int argc, char **argv)
{
    embed_opts o;
    err_t e = {0};
    int rc = parse_args(argc, argv, &o, &e);
    if (rc == 1) {
        embed_usage(stdout);
        return 0;
    }
    if (rc) return err_report("embed", &e);
    char **paths = argv + optind;
    const int n = argc - optind, rank = mpictx_rank(), size = mpictx_size();
    /* Ranks split whole batches: each image then meets the same batch
     * companions as in a single process, and BLAS's results for a row can
     * differ in the last bit with the batch around it. */
    const int nb = (n + o.batch - 1) / o.batch;
    const int lo = batch_start(rank, size, nb, o.batch, n), hi = batch_start(rank + 1, size, nb, o.batch, n);

    ops_ctx *ops = NULL;
    clip_vit *m = NULL;
    clip_embed *ce = NULL;
    rc = ops_create(&ops, o.threads, &e);
    if (!rc) rc = ops_set_precision(ops, o.precision, &e);
    if (!rc) rc = clip_vit_load(&m, ops, o.clip_dir, o.batch, &e);
    if (!rc)
        rc = clip_embed_create(
            &ce, m, &(clip_embed_cfg){.max_batch = o.batch, .fast_resize = o.fast_resize, .threads = o.threads}, &e);
    rc = mpictx_agree(rc, &e);
    float *out = NULL;
    int *status = NULL; /* per image: 0 or why it failed */
    int E = m ? clip_vit_embed_dim(m) : 0;
    if (!rc) {
        /* rank 0 holds everyone's results for the ordered print */
        size_t rows = rank == 0 ? (size_t)n : (size_t)(hi - lo);
        out = calloc(rows ? rows * E : 1, sizeof(float));
        status = calloc(rows ? rows : 1, sizeof(int));
        if (!out || !status) rc = err_set(&e, ERR_NOMEM, "embed: out of memory for %zu embeddings", rows);
    }
    if (!rc) rc = clip_embed_files(ce, paths + lo, hi - lo, out, status, &e);
    rc = mpictx_agree(rc, &e);
    if (!rc && size > 1) {
        int *counts = malloc(2 * (size_t)size * sizeof(int)), *displs = counts + size;
        if (!counts) rc = err_set(&e, ERR_NOMEM, "embed: out of memory");
        rc = mpictx_agree(rc, &e);
        if (!rc) {
            for (int r = 0; r < size; r++) {
                displs[r] = batch_start(r, size, nb, o.batch, n);
                counts[r] = batch_start(r + 1, size, nb, o.batch, n) - displs[r];
            }
            rc = mpictx_check(MPI_Gatherv(rank ? status : MPI_IN_PLACE, hi - lo, MPI_INT, status, counts, displs,
                                          MPI_INT, 0, mpictx_comm()),
                              "MPI_Gatherv", &e);
            for (int r = 0; r < size; r++) counts[r] *= E, displs[r] *= E;
            if (!rc)
                rc = mpictx_check(MPI_Gatherv(rank ? out : MPI_IN_PLACE, (hi - lo) * E, MPI_FLOAT, out, counts,
                                              displs, MPI_FLOAT, 0, mpictx_comm()),
                                  "MPI_Gatherv", &e);
        }
        free(counts);
    }
    int failed = 0;
    if (!rc) {
        for (int i = 0; i < (rank == 0 ? n : hi - lo); i++) failed += status[i] != 0;
        if (rank == 0)
            for (int i = 0; i < n; i++)
                if (!status[i]) print_line(paths[i], out + (size_t)i * E, E);
    }
    clip_embed_free(ce);
    clip_vit_free(m);
    ops_destroy(ops);
    free(out), free(status);
    if (rc) return err_report("embed", &e);
    if (size > 1 && mpictx_check(MPI_Bcast(&failed, 1, MPI_INT, 0, mpictx_comm()), "MPI_Bcast", &e))
        return err_report("embed", &e);
    if (failed) {
        err_set(&e, ERR_FORMAT, "%d of %d images could not be embedded (reasons above)", failed, n);
        return rank == 0 ? err_report("embed", &e) : 1;
    }
    return 0;
}
