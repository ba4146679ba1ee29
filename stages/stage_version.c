/* `clipcap version`: what was built, with which libraries. Used by bug
 * reports and by the CI log. */
#include "core/mpictx.h"

#include <jansson.h>
#include <jpeglib.h>
#include <lmdb.h>
#include <png.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>
#include <webp/decode.h>
#include <zstd.h>

const char stage_version_summary[] = "print the version and the libraries it was built with";

int stage_version_main(int argc, char **argv)
{
    if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        printf("usage: clipcap version\n\nPrints clipcap's version and its libraries' versions as one JSON line.\n");
        return 0;
    }
    if (mpictx_rank() != 0) return 0;
    int wv = WebPGetDecoderVersion();
    char mpi[MPI_MAX_LIBRARY_VERSION_STRING];
    int len = 0;
    MPI_Get_library_version(mpi, &len);
    char *nl = strchr(mpi, '\n');
    if (nl) *nl = 0;
    printf("{\"clipcap\": \"0.1.0\", \"ranks\": %d, \"lmdb\": \"%s\", \"libuv\": \"%s\", \"zstd\": \"%s\", "
           "\"jansson\": \"%s\", \"libpng\": \"%s\", \"libjpeg\": %d, \"libwebp\": \"%d.%d.%d\", \"mpi\": \"%s\"}\n",
           mpictx_size(), MDB_VERSION_STRING, uv_version_string(), ZSTD_versionString(), JANSSON_VERSION,
           PNG_LIBPNG_VER_STRING, JPEG_LIB_VERSION, (wv >> 16) & 0xff, (wv >> 8) & 0xff, wv & 0xff, mpi);
    return 0;
}
