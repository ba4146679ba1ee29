/* GPT-2 byte-level BPE. See bpe.h for the contract and docs/tokenizer.md for
 * the decisions (invalid UTF-8, Unicode version, \s semantics).
 *
 * Encoding works on token ids, never on strings: every byte starts as the id
 * of its one-character token, and a pair map (left id, right id) -> (merge
 * rank, merged id) drives the merges. That is the reference's algorithm
 * (lowest-ranked adjacent pair first, all its occurrences merged left to
 * right in one pass) without building a string per symbol. */
#include "text/bpe.h"

#include "core/fsutil.h"
#include "io/json_util.h"

#include <dlfcn.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

/* libutf8proc (Debian libutf8proc2) supplies the Unicode categories. It is
 * opened at load time rather than linked so that the build needs no flag
 * for it and a machine without it fails bpe_load with a clear message. */
#define UTF8PROC_SONAME "libutf8proc.so.2"
typedef utf8proc_category_t (*category_fn)(utf8proc_int32_t);

enum { CLS_OTHER = 0, CLS_LETTER, CLS_NUMBER, CLS_SPACE };

#define PAIR_NONE UINT32_MAX
#define MAX_IDS (1 << 24)

struct bpe_t {
    int32_t byte_id[256];  /* id of the one-character token of each byte */
    int32_t n_ids;         /* largest id + 1 */
    int32_t n_tokens;      /* entries of the vocabulary */
    uint32_t *tok_off;     /* n_ids + 1 offsets into tok_bytes */
    uint8_t *tok_known;    /* n_ids flags: ids absent from the vocabulary are unknown */
    uint8_t *tok_bytes;    /* raw bytes of every token, concatenated */
    uint64_t *pair_key;    /* open addressing; PAIR_EMPTY marks a free slot */
    uint64_t *pair_val;    /* rank << 32 | merged id */
    uint64_t pair_mask;
    int pair_bits;
    void *utf8proc;           /* dlopen handle */
    category_fn category;
    uint8_t bmp_class[65536]; /* CLS_* of every BMP code point, from utf8proc */
};

#define PAIR_EMPTY UINT64_MAX

/* GPT-2's bytes_to_unicode(): printable Latin-1 bytes stand for themselves,
 * the other 68 bytes get the code points 256.. in byte order. */
static void byte_alphabet(uint32_t byte_cp[256], int16_t cp_byte[324])
{
    for (int i = 0; i < 324; i++) cp_byte[i] = -1;
    int extra = 0;
    for (int c = 0; c < 256; c++) {
        int printable = (c >= '!' && c <= '~') || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE && c <= 0xFF);
        byte_cp[c] = printable ? (uint32_t)c : (uint32_t)(256 + extra++);
        cp_byte[byte_cp[c]] = (int16_t)c;
    }
}

/* Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing above
 * U+10FFFF. Returns the sequence length, 0 when invalid. */
static size_t utf8_decode(const uint8_t *s, size_t len, uint32_t *cp)
{
    uint8_t c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t n;
    uint32_t v, min;
    if (c >= 0xC2 && c <= 0xDF) n = 2, v = c & 0x1F, min = 0x80;
    else if (c >= 0xE0 && c <= 0xEF) n = 3, v = c & 0x0F, min = 0x800;
    else if (c >= 0xF0 && c <= 0xF4) n = 4, v = c & 0x07, min = 0x10000;
    else return 0;
    if (len < n) return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        v = (v << 6) | (s[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
    *cp = v;
    return n;
}

/* JavaScript's \s (ECMAScript WhiteSpace and LineTerminator: TAB..CR,
 * ZWNBSP and the categories Zs, Zl, Zp), \p{L}, \p{N}, everything else. */
static int class_of_category(uint32_t cp, utf8proc_category_t cat)
{
    if ((cp >= 0x09 && cp <= 0x0D) || cp == 0xFEFF) return CLS_SPACE;
    switch (cat) {
    case UTF8PROC_CATEGORY_ZS:
    case UTF8PROC_CATEGORY_ZL:
    case UTF8PROC_CATEGORY_ZP: return CLS_SPACE;
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO: return CLS_LETTER;
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_NO: return CLS_NUMBER;
    default: return CLS_OTHER;
    }
}

static int class_of(const bpe_t *b, uint32_t cp)
{
    return cp < 0x10000 ? b->bmp_class[cp] : class_of_category(cp, b->category((utf8proc_int32_t)cp));
}

static uint64_t pair_hash(uint64_t key, int bits)
{
    return (key * 0x9E3779B97F4A7C15ull) >> (64 - bits);
}

static uint64_t pair_key(int32_t a, int32_t b)
{
    return (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
}

/* A later duplicate of a merge replaces the earlier rank, as dict(zip())
 * does in the reference. */
static void pair_put(bpe_t *b, int32_t l, int32_t r, uint32_t rank, int32_t merged)
{
    uint64_t key = pair_key(l, r);
    uint64_t h = pair_hash(key, b->pair_bits);
    while (b->pair_key[h] != PAIR_EMPTY && b->pair_key[h] != key) h = (h + 1) & b->pair_mask;
    b->pair_key[h] = key;
    b->pair_val[h] = (uint64_t)rank << 32 | (uint32_t)merged;
}

static uint32_t pair_get(const bpe_t *b, int32_t l, int32_t r, int32_t *merged)
{
    uint64_t key = pair_key(l, r);
    uint64_t h = pair_hash(key, b->pair_bits);
    for (;;) {
        uint64_t k = b->pair_key[h];
        if (k == key) {
            *merged = (int32_t)(uint32_t)b->pair_val[h];
            return (uint32_t)(b->pair_val[h] >> 32);
        }
        if (k == PAIR_EMPTY) return PAIR_NONE;
        h = (h + 1) & b->pair_mask;
    }
}

/* The raw bytes a token string of the byte alphabet stands for. */
static int token_bytes(const char *tok, size_t len, const int16_t cp_byte[324], uint8_t *out, size_t *out_len)
{
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t k = utf8_decode((const uint8_t *)tok + i, len - i, &cp);
        if (!k || cp >= 324 || cp_byte[cp] < 0) return -1;
        out[n++] = (uint8_t)cp_byte[cp];
        i += k;
    }
    *out_len = n;
    return 0;
}

static int load_vocab(bpe_t *b, const char *path, json_t *vocab, err_t *e)
{
    uint32_t byte_cp[256];
    int16_t cp_byte[324];
    byte_alphabet(byte_cp, cp_byte);
    if (!json_is_object(vocab)) return err_set(e, ERR_FORMAT, "%s: not a JSON object of token -> id", path);
    size_t total = 0;
    int32_t max_id = -1;
    const char *key;
    json_t *val;
    json_object_foreach(vocab, key, val) {
        if (!json_is_integer(val) || json_integer_value(val) < 0 || json_integer_value(val) >= MAX_IDS)
            return err_set(e, ERR_FORMAT, "%s: token \"%s\": id is not an integer in [0, %d)", path, key, MAX_IDS);
        if (json_integer_value(val) > max_id) max_id = (int32_t)json_integer_value(val);
        total += strlen(key);
    }
    if (max_id < 0) return err_set(e, ERR_FORMAT, "%s: empty vocabulary", path);
    b->n_ids = max_id + 1;
    b->n_tokens = (int32_t)json_object_size(vocab);
    b->tok_off = calloc((size_t)b->n_ids + 1, sizeof *b->tok_off);
    b->tok_known = calloc((size_t)b->n_ids, 1);
    b->tok_bytes = malloc(total + 1);
    if (!b->tok_off || !b->tok_known || !b->tok_bytes)
        return err_set(e, ERR_NOMEM, "%s: out of memory for %d tokens", path, b->n_tokens);
    /* Token lengths first (offsets in id order), then the bytes. */
    uint32_t *lens = b->tok_off + 1;
    json_object_foreach(vocab, key, val) {
        int32_t id = (int32_t)json_integer_value(val);
        size_t n;
        if (b->tok_known[id]) return err_set(e, ERR_FORMAT, "%s: token \"%s\": id %d is used twice", path, key, id);
        if (token_bytes(key, strlen(key), cp_byte, b->tok_bytes, &n) != 0)
            return err_set(e, ERR_FORMAT, "%s: token \"%s\" has a character outside GPT-2's byte alphabet", path,
                           key);
        b->tok_known[id] = 1;
        lens[id] = (uint32_t)n;
    }
    for (int32_t i = 0; i < b->n_ids; i++) b->tok_off[i + 1] += b->tok_off[i];
    json_object_foreach(vocab, key, val) {
        int32_t id = (int32_t)json_integer_value(val);
        size_t n;
        token_bytes(key, strlen(key), cp_byte, b->tok_bytes + b->tok_off[id], &n);
    }
    for (int c = 0; c < 256; c++) {
        char one[4];
        size_t n = 0;
        uint32_t cp = byte_cp[c];
        if (cp < 0x80) one[n++] = (char)cp;
        else one[n++] = (char)(0xC0 | (cp >> 6)), one[n++] = (char)(0x80 | (cp & 0x3F));
        json_t *id = json_object_getn(vocab, one, n);
        if (!id)
            return err_set(e, ERR_FORMAT, "%s: the one-byte token \"%.*s\" (byte 0x%02x) is missing", path, (int)n,
                           one, c);
        b->byte_id[c] = (int32_t)json_integer_value(id);
    }
    return 0;
}

static int is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

static int is_special(const char *token)
{
    size_t n = strlen(token);
    return n >= 4 && !strncmp(token, "<|", 2) && !strcmp(token + n - 2, "|>");
}

/* The two files must describe one tokenizer: every vocabulary entry is a
 * byte, the result of exactly one merge, or a special token ("<|...|>"),
 * so vocab size = 256 + merges + specials (GPT-2: 256 + 50000 + 1 =
 * 50257; a cut-down test tokenizer: 256 + its merges). A merges.txt cut
 * short passes every per-line check and silently changes the ids of every
 * longer word, so its size is checked here. */
static int check_counts(const bpe_t *b, const char *path, json_t *vocab, err_t *e)
{
    uint8_t *made = calloc((size_t)b->n_ids, 1);
    if (!made) return err_set(e, ERR_NOMEM, "%s: out of memory", path);
    for (int c = 0; c < 256; c++) made[b->byte_id[c]] = 1;
    uint32_t merges = 0; /* distinct pairs: a repeated line only re-ranks its pair */
    for (uint64_t i = 0; i <= b->pair_mask; i++)
        if (b->pair_key[i] != PAIR_EMPTY) {
            made[(int32_t)(b->pair_val[i] & 0xFFFFFFFFu)] = 1;
            merges++;
        }
    size_t specials = 0, unmade = 0;
    const char *first = NULL, *key;
    json_t *val;
    json_object_foreach(vocab, key, val) {
        if (made[json_integer_value(val)]) continue;
        if (is_special(key)) specials++;
        else if (!unmade++) first = key;
    }
    free(made);
    size_t want = 256 + (size_t)merges + specials;
    if (!unmade && want == (size_t)b->n_tokens) return 0;
    if (unmade)
        return err_set(e, ERR_FORMAT,
                       "%s: the vocabulary has %d tokens, but 256 bytes + %u merges + %zu special account for %zu: "
                       "%zu tokens, e.g. \"%s\", come from no merge (merges.txt cut short, or from another "
                       "tokenizer?)",
                       path, b->n_tokens, merges, specials, want, unmade, first);
    return err_set(e, ERR_FORMAT,
                   "%s: %u merges make only %zu distinct tokens: two merges give the same token, or one gives a byte",
                   path, merges, (size_t)b->n_tokens - specials);
}

/* merges.txt: a "#version" line, then "left right" per line in rank order.
 * The reference reads lines [1:-1] of split("\n"): the first line is always
 * skipped and so is whatever follows the last newline. */
static int load_merges(bpe_t *b, const char *path, json_t *vocab, err_t *e)
{
    uint8_t *data = NULL;
    size_t len = 0;
    int rc = fs_read_all(path, &data, &len, e);
    if (rc) return rc;
    size_t lines = 0;
    for (size_t i = 0; i < len; i++) lines += data[i] == '\n';
    b->pair_bits = 4;
    while (((size_t)1 << b->pair_bits) < 2 * lines + 16) b->pair_bits++;
    b->pair_mask = ((uint64_t)1 << b->pair_bits) - 1;
    b->pair_key = malloc(((size_t)1 << b->pair_bits) * sizeof *b->pair_key);
    b->pair_val = malloc(((size_t)1 << b->pair_bits) * sizeof *b->pair_val);
    char *joined = malloc(len + 1);
    if (!b->pair_key || !b->pair_val || !joined) {
        free(data);
        free(joined);
        return err_set(e, ERR_NOMEM, "%s: out of memory for %zu merges", path, lines);
    }
    memset(b->pair_key, 0xFF, ((size_t)1 << b->pair_bits) * sizeof *b->pair_key);
    char *s = (char *)data;
    char *line = memchr(s, '\n', len);
    size_t lineno = 1;
    uint32_t rank = 0;
    while (line) {
        char *start = line + 1;
        char *end = memchr(start, '\n', len - (size_t)(start - s));
        if (!end) break;
        lineno++;
        const char *part[3];
        size_t plen[3];
        int nparts = 0;
        for (char *p = start; p < end && nparts < 3;) {
            while (p < end && is_ws(*p)) p++;
            if (p == end) break;
            part[nparts] = p;
            while (p < end && !is_ws(*p)) p++;
            plen[nparts] = (size_t)(p - part[nparts]);
            nparts++;
        }
        if (nparts != 2) {
            rc = err_set(e, ERR_FORMAT, "%s: line %zu: expected two symbols separated by a space", path, lineno);
            break;
        }
        json_t *l = json_object_getn(vocab, part[0], plen[0]);
        json_t *r = json_object_getn(vocab, part[1], plen[1]);
        memcpy(joined, part[0], plen[0]);
        memcpy(joined + plen[0], part[1], plen[1]);
        json_t *m = json_object_getn(vocab, joined, plen[0] + plen[1]);
        if (!l || !r || !m) {
            rc = err_set(e, ERR_FORMAT, "%s: line %zu: merge \"%.*s %.*s\": \"%.*s\" is not in the vocabulary", path,
                         lineno, (int)plen[0], part[0], (int)plen[1], part[1], !l ? (int)plen[0] : !r ? (int)plen[1] : (int)(plen[0] + plen[1]),
                         !l ? part[0] : !r ? part[1] : joined);
            break;
        }
        pair_put(b, (int32_t)json_integer_value(l), (int32_t)json_integer_value(r), rank++,
                 (int32_t)json_integer_value(m));
        line = end;
    }
    free(joined);
    free(data);
    return rc ? rc : check_counts(b, path, vocab, e);
}

int bpe_load(bpe_t **out, const char *dir, err_t *e)
{
    *out = NULL;
    char vpath[4096], mpath[4096];
    int rc = fs_join(vpath, sizeof vpath, dir, "vocab.json", e);
    if (!rc) rc = fs_join(mpath, sizeof mpath, dir, "merges.txt", e);
    if (rc) return rc;
    if (!fs_exists(vpath)) {
        if ((rc = fs_join(vpath, sizeof vpath, dir, "encoder.json", e))) return rc;
        if ((rc = fs_join(mpath, sizeof mpath, dir, "vocab.bpe", e))) return rc;
        if (!fs_exists(vpath))
            return err_set(e, ERR_NOTFOUND, "%s: neither vocab.json + merges.txt nor encoder.json + vocab.bpe found",
                           dir);
    }
    bpe_t *b = calloc(1, sizeof *b);
    if (!b) return err_set(e, ERR_NOMEM, "%s: out of memory", dir);
    b->utf8proc = dlopen(UTF8PROC_SONAME, RTLD_NOW | RTLD_LOCAL);
    if (b->utf8proc) b->category = (category_fn)dlsym(b->utf8proc, "utf8proc_category");
    if (!b->category) {
        rc = err_set(e, ERR_UNSUPPORTED, "%s: %s (Debian package libutf8proc2) gives the Unicode classes: %s", dir,
                     UTF8PROC_SONAME, dlerror());
        bpe_free(b);
        return rc;
    }
    for (uint32_t cp = 0; cp < 0x10000; cp++)
        b->bmp_class[cp] = (uint8_t)class_of_category(cp, b->category((utf8proc_int32_t)cp));
    json_t *vocab = NULL;
    rc = json_load_path(&vocab, vpath, e);
    if (!rc) rc = load_vocab(b, vpath, vocab, e);
    if (!rc) rc = load_merges(b, mpath, vocab, e);
    json_decref(vocab);
    if (rc) {
        bpe_free(b);
        return rc;
    }
    *out = b;
    return 0;
}

void bpe_free(bpe_t *b)
{
    if (!b) return;
    free(b->tok_off);
    free(b->tok_known);
    free(b->tok_bytes);
    free(b->pair_key);
    free(b->pair_val);
    if (b->utf8proc) dlclose(b->utf8proc);
    free(b);
}

int bpe_vocab_size(const bpe_t *b)
{
    return b->n_ids;
}

/* End of the pre-token starting at i, following the alternatives of
 * 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * in order. The text is valid UTF-8 (checked before). */
static size_t pretoken_end(const bpe_t *b, const uint8_t *s, size_t len, size_t i)
{
    if (s[i] == '\'' && i + 1 < len) {
        uint8_t c = s[i + 1];
        if (c == 's' || c == 't' || c == 'm' || c == 'd') return i + 2;
        if (i + 2 < len && ((c == 'r' && s[i + 2] == 'e') || (c == 'v' && s[i + 2] == 'e') || (c == 'l' && s[i + 2] == 'l')))
            return i + 3;
    }
    uint32_t cp;
    size_t j = i;
    if (s[i] == ' ' && i + 1 < len) j = i + 1;
    size_t k = utf8_decode(s + j, len - j, &cp);
    int cls = class_of(b, cp);
    if (cls == CLS_SPACE) {
        /* \s+(?!\S), else \s+: a run of whitespace gives back its last
         * character to a following " word" unless the run ends the text. */
        j = i;
        size_t last = i, count = 0;
        while (j < len) {
            k = utf8_decode(s + j, len - j, &cp);
            if (class_of(b, cp) != CLS_SPACE) break;
            last = j;
            j += k;
            count++;
        }
        return (j == len || count == 1) ? j : last;
    }
    /* ` ?X+` with the space taken only when X follows it. */
    j += k;
    while (j < len) {
        k = utf8_decode(s + j, len - j, &cp);
        if (class_of(b, cp) != cls) break;
        j += k;
    }
    return j;
}

static int grow_ids(int32_t **ids, size_t *cap, size_t need, err_t *e)
{
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : 64;
    while (c < need) c *= 2;
    int32_t *p = realloc(*ids, c * sizeof *p);
    if (!p) return err_set(e, ERR_NOMEM, "out of memory for %zu token ids", need);
    *ids = p;
    *cap = c;
    return 0;
}

/* BPE of one pre-token (its raw bytes), appending ids at out. sym, rk, src
 * have room for len entries. Returns the count of ids. */
static size_t bpe_piece(const bpe_t *b, const uint8_t *s, size_t len, int32_t *out, uint32_t *rk, int32_t *mid,
                        int32_t *src)
{
    int32_t *sym = out;
    size_t n = len;
    for (size_t i = 0; i < n; i++) sym[i] = b->byte_id[s[i]];
    for (size_t i = 0; i + 1 < n; i++) rk[i] = pair_get(b, sym[i], sym[i + 1], &mid[i]);
    while (n > 1) {
        uint32_t best = PAIR_NONE;
        for (size_t i = 0; i + 1 < n; i++)
            if (rk[i] < best) best = rk[i];
        if (best == PAIR_NONE) break;
        /* Every occurrence of the best pair, left to right, without overlap;
         * src[w] is the old position of a symbol that did not change, -1
         * for a merged one, so unchanged neighbours keep their rank. */
        size_t w = 0;
        for (size_t i = 0; i < n; w++) {
            if (i + 1 < n && rk[i] == best) {
                sym[w] = mid[i];
                src[w] = -1;
                i += 2;
            } else {
                sym[w] = sym[i];
                src[w] = (int32_t)i;
                i += 1;
            }
        }
        n = w;
        for (size_t i = 0; i + 1 < n; i++) {
            if (src[i] >= 0 && src[i + 1] >= 0) {
                rk[i] = rk[src[i]];
                mid[i] = mid[src[i]];
            } else {
                rk[i] = pair_get(b, sym[i], sym[i + 1], &mid[i]);
            }
        }
    }
    return n;
}

int bpe_encode(const bpe_t *b, const char *text, size_t len, int32_t **ids, size_t *n, size_t *cap, err_t *e)
{
    const uint8_t *s = (const uint8_t *)text;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t k = s[i] < 0x80 ? 1 : utf8_decode(s + i, len - i, &cp);
        if (!k) return err_set(e, ERR_FORMAT, "invalid UTF-8 at byte %zu", i);
        i += k;
    }
    /* Scratch for one pre-token: on the stack for ordinary words. */
    enum { SMALL = 128 };
    uint32_t rk_small[SMALL];
    int32_t mid_small[SMALL], src_small[SMALL];
    uint32_t *rk = rk_small;
    int32_t *mid = mid_small, *src = src_small;
    size_t scratch = SMALL;
    size_t count = *n;
    int rc = 0;
    for (size_t i = 0; i < len;) {
        size_t end = pretoken_end(b, s, len, i);
        size_t plen = end - i;
        if ((rc = grow_ids(ids, cap, count + plen, e))) break;
        if (plen > scratch) {
            if (rk != rk_small) free(rk), free(mid), free(src);
            rk = malloc(plen * sizeof *rk);
            mid = malloc(plen * sizeof *mid);
            src = malloc(plen * sizeof *src);
            scratch = plen;
            if (!rk || !mid || !src) {
                rc = err_set(e, ERR_NOMEM, "out of memory for a %zu-byte word", plen);
                break;
            }
        }
        count += bpe_piece(b, s + i, plen, *ids + count, rk, mid, src);
        i = end;
    }
    if (rk != rk_small) free(rk), free(mid), free(src);
    if (!rc) *n = count;
    return rc;
}

int bpe_decode(const bpe_t *b, const int32_t *ids, size_t n, char **text, size_t *len, err_t *e)
{
    *text = NULL;
    *len = 0;
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= b->n_ids || !b->tok_known[ids[i]])
            return err_set(e, ERR_FORMAT, "token %zu: unknown id %d (vocabulary has %d)", i, ids[i], b->n_tokens);
        total += b->tok_off[ids[i] + 1] - b->tok_off[ids[i]];
    }
    char *out = malloc(total + 1);
    if (!out) return err_set(e, ERR_NOMEM, "out of memory for %zu decoded bytes", total);
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t o = b->tok_off[ids[i]], l = b->tok_off[ids[i] + 1] - o;
        memcpy(out + w, b->tok_bytes + o, l);
        w += l;
    }
    out[w] = 0;
    *text = out;
    *len = w;
    return 0;
}
