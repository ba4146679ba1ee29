/* bpe: any bytes either fail with ERR_FORMAT (invalid UTF-8) or encode to
 * ids that decode back to exactly the same bytes; nothing crashes. The
 * vocabulary comes from $CLIPCAP_FIXTURES/gpt2 (default tests/fixtures/gpt2,
 * tests/fuzz/run.sh runs from the repository root). */
#include "text/bpe.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bpe_t *fuzz_bpe;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *fx = getenv("CLIPCAP_FIXTURES");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/gpt2", fx ? fx : "tests/fixtures");
    err_t e = {0};
    if (bpe_load(&fuzz_bpe, dir, &e) != 0) {
        fprintf(stderr, "fuzz_bpe: %s\n", e.msg);
        abort();
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int32_t *ids = NULL;
    size_t n = 0, cap = 0;
    err_t e = {0};
    int rc = bpe_encode(fuzz_bpe, (const char *)data, size, &ids, &n, &cap, &e);
    if (rc != 0) {
        if (rc != ERR_FORMAT || n != 0) abort();
        free(ids);
        return 0;
    }
    if (n > size) abort(); /* at most one id per byte */
    char *text = NULL;
    size_t len = 0;
    if (bpe_decode(fuzz_bpe, ids, n, &text, &len, &e) != 0) abort();
    if (len != size || memcmp(text, data, size) != 0) abort();
    free(text);
    free(ids);
    return 0;
}
