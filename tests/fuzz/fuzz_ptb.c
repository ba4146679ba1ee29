/* ptb + metrics: any bytes tokenize without a crash into a string of
 * single-space-separated tokens; the input split at its first 0x01 byte
 * into a candidate and a reference scores in [0, 1] for BLEU and ROUGE-L
 * and in [0, 10] for CIDEr-D (one image: idf is 0, so CIDEr-D is 0). */
#include "metrics/bleu.h"
#include "metrics/cider.h"
#include "metrics/rouge.h"
#include "text/ptb.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    err_t e = {0};
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = 0;
    char *sep = memchr(text, 1, size);
    size_t cand_len = sep ? (size_t)(sep - text) : size;
    sbuf_t cand_buf = {0}, ref_buf = {0};
    if (ptb_tokenize(text, cand_len, &cand_buf, &e) != 0) abort();
    if (ptb_tokenize(sep ? sep + 1 : text, sep ? size - cand_len - 1 : size, &ref_buf, &e) != 0) abort();
    const char *cand = cand_buf.data, *ref = ref_buf.data;
    size_t n = strlen(cand);
    if (n && (cand[0] == ' ' || cand[n - 1] == ' ' || strstr(cand, "  "))) abort();
    const char *refs[1] = {ref};
    metric_item_t item = {cand, refs, 1};
    double bleu[4], rouge, cider;
    metric_grams_t grams;
    if (metric_grams_build(&grams, &item, 1, &e) || bleu_score(&grams, bleu, NULL, &e) ||
        rouge_l_score(&item, 1, &rouge, NULL, &e) || cider_d_score(&grams, &cider, NULL, &e))
        abort();
    metric_grams_free(&grams);
    for (int k = 0; k < 4; k++)
        if (!(bleu[k] >= 0 && bleu[k] <= 1 + 1e-9)) abort();
    if (!(rouge >= 0 && rouge <= 1 + 1e-9) || cider != 0) abort();
    sb_free(&cand_buf);
    sb_free(&ref_buf);
    free(text);
    return 0;
}
