/* `clipcap preprocess`: one image through CLIP's preprocessing, written as
 * the normalised float32 [3, S, S] tensor in a .npy file, so the C pipeline
 * can be compared with openai/CLIP's _transform (numpy.load + allclose).
 * A single image is one unit of work: rank 0 does it, other ranks exit 0. */
#include "core/cli.h"
#include "core/fsutil.h"
#include "core/log.h"
#include "core/mpictx.h"
#include "image/clip_preprocess.h"
#include "io/npy.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char stage_preprocess_summary[] = "decode one image and write CLIP's preprocessed input tensor (.npy)";

static void preprocess_usage(FILE *out)
{
    fprintf(out,
            "usage: clipcap preprocess IMAGE --size S --out FILE.npy [--fast-resize[=K]] [--max-pixels N]\n\n"
            "Decodes IMAGE (JPEG, PNG or WebP, recognised by its bytes, not its name) and\n"
            "applies CLIP's preprocessing exactly as openai/CLIP with Pillow does:\n"
            "Resize(S, bicubic) -> CenterCrop(S) -> RGB -> /255 -> Normalize(CLIP mean, std).\n"
            "Writes float32 [3, S, S] to FILE.npy and prints one JSON line describing the source.\n\n"
            "  --size S         the model's input size (vision_config.image_size: 224, 336, ...)\n"
            "  --out FILE       the .npy to write (atomically)\n"
            "  --fast-resize[=K]  decode large JPEGs at a reduced DCT scale (1/2, 1/4, 1/8)\n"
            "                   keeping the shorter side >= K*S (K = 1 by default; 2 is\n"
            "                   closer to exact); faster, not bit-exact, see docs/image.md\n"
            "  --max-pixels N   refuse images declaring more than N pixels (default %llu)\n"
            "  -h, --help       this help\n",
            (unsigned long long)IMAGE_DEFAULT_MAX_PIXELS);
}

int stage_preprocess_main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"size", required_argument, NULL, 's'},        {"out", required_argument, NULL, 'o'},
        {"fast-resize", optional_argument, NULL, 'f'},       {"max-pixels", required_argument, NULL, 'm'},
        {"help", no_argument, NULL, 'h'},              {NULL, 0, NULL, 0},
    };
    err_t e = {0};
    int size = 0, fast = 0, c;
    const char *out = NULL;
    uint64_t max_pixels = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        int rc = 0;
        switch (c) {
        case 's': rc = cli_parse_int("size", optarg, 1, 4096, &size, &e); break;
        case 'o': out = optarg; break;
        case 'f':
            fast = 1;
            if (optarg) rc = cli_parse_int("fast-resize", optarg, 1, 8, &fast, &e);
            break;
        case 'm': rc = cli_parse_u64("max-pixels", optarg, 1, (uint64_t)1 << 40, &max_pixels, &e); break;
        case 'h': preprocess_usage(stdout); return 0;
        default: preprocess_usage(stderr); return 2;
        }
        if (rc) return err_report("preprocess", &e);
    }
    if (optind + 1 != argc || !size || !out) {
        err_set(&e, ERR_ARG, "need exactly one IMAGE, --size and --out (see --help)");
        return err_report("preprocess", &e);
    }
    if (mpictx_rank() != 0) return 0;
    const char *path = argv[optind];
    uint8_t *data = NULL;
    size_t len = 0;
    if (fs_read_all(path, &data, &len, &e)) return err_report("preprocess", &e);
    clip_preprocess_cfg cfg;
    clip_preprocess_cfg_default(&cfg, size);
    cfg.fast_resize = fast;
    cfg.limits.max_pixels = max_pixels;
    float *tensor = malloc(sizeof(float) * 3 * (size_t)size * (size_t)size);
    image_info info;
    int rc = tensor ? clip_preprocess(data, len, &cfg, tensor, &info, &e) : err_set(&e, ERR_NOMEM, "out of memory");
    free(data);
    if (rc) {
        err_wrap(&e, "%s", path);
        free(tensor);
        return err_report("preprocess", &e);
    }
    int64_t shape[3] = {3, size, size};
    rc = npy_write_f32(out, tensor, shape, 3, &e);
    free(tensor);
    if (rc) return err_report("preprocess", &e);
    printf("{\"image\": \"%s\", \"format\": \"%s\", \"mode\": \"%s\", \"width\": %d, \"height\": %d, "
           "\"decoded_width\": %d, \"decoded_height\": %d, \"frames\": %d, \"size\": %d, \"fast_resize\": %d}\n",
           path, image_format_name(info.format), image_mode_name(info.mode), info.width, info.height,
           info.decoded_width, info.decoded_height, info.frames, size, fast);
    return 0;
}
