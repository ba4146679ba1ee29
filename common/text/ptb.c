#include "text/ptb.h"

#include <stdlib.h>
#include <string.h>

/* The toolkit's filter, applied to the lower-cased tokens (its upper-case
 * entries can no longer match). */
static int dropped(const char *t, size_t len)
{
    static const char *const drop[] = {"''", "'", "``", "`", ".", "?", "!", ",", ":", "-", "--", "...", ";"};
    if (len > 3) return 0; /* the longest, "..." */
    for (size_t i = 0; i < sizeof drop / sizeof drop[0]; i++)
        if (strlen(drop[i]) == len && !memcmp(drop[i], t, len)) return 1;
    return 0;
}

/* Character classes of the C locale, inline: the tokenizer asks several
 * per byte, and <ctype.h> answers each through a table look-up call. */
static int is_alpha(unsigned char c) { return (unsigned)((c | 32) - 'a') < 26; }
static int is_digit(unsigned char c) { return (unsigned)(c - '0') < 10; }
static char lower(unsigned char c) { return (char)((unsigned)(c - 'A') < 26 ? c + 32 : c); }

/* Emit one token at o, lower-cased, / and * escaped, unless the filter
 * drops it; a space before it when tokens precede it (o > first).
 * Returns the new end. */
static char *emit(char *o, const char *first, const char *t, size_t len)
{
    /* the filter's tokens are all punctuation */
    if (!len || (!is_alpha((unsigned char)t[0]) && !is_digit((unsigned char)t[0]) && dropped(t, len))) return o;
    if (o > first) *o++ = ' ';
    for (size_t i = 0; i < len; i++) {
        char c = t[i];
        if (c == '/' || c == '*') *o++ = '\\';
        *o++ = lower((unsigned char)c);
    }
    return o;
}

static int word_char(const char *s, size_t len, size_t i)
{
    unsigned char c = i < len ? (unsigned char)s[i] : 0;
    return is_alpha(c) || is_digit(c) || c >= 0x80;
}

static int lower_is(const char *s, size_t len, size_t i, const char *lit)
{
    size_t k = strlen(lit);
    if (i + k > len) return 0;
    for (size_t j = 0; j < k; j++)
        if (lower((unsigned char)s[i + j]) != lit[j]) return 0;
    return 1;
}

/* Length of a contraction clitic at i ("'s", "'re", "'ve", "'m", "'ll",
 * "'d", "n't") ending at a word boundary, else 0. */
static size_t clitic(const char *s, size_t len, size_t i)
{
    static const char *const forms[] = {"n't", "'ll", "'re", "'ve", "'s", "'m", "'d"};
    /* every form starts with n or ': most positions are rejected here */
    if (i >= len || (s[i] != '\'' && lower((unsigned char)s[i]) != 'n')) return 0;
    for (size_t f = 0; f < sizeof forms / sizeof forms[0]; f++) {
        size_t k = strlen(forms[f]);
        if (lower_is(s, len, i, forms[f]) && !word_char(s, len, i + k)) return k;
    }
    return 0;
}

/* "u.s", "J", "mr": a word that keeps its final period (an initial only
 * when upper-case: "holding a." ends a sentence). */
static int abbreviation(const char *w, size_t len)
{
    static const char *const known[] = {"mr", "mrs", "ms", "dr", "st", "jr", "sr", "vs", "etc", "inc", "co",
                                        "ltd", "mt", "ft", "no", "prof", "gen", "rev", "jan", "feb", "aug",
                                        "sept", "oct", "nov", "dec"};
    if (len == 1) return (unsigned)((unsigned char)w[0] - 'A') < 26;
    int dotted = len >= 3;
    for (size_t i = 0; i < len && dotted; i++) dotted = (i % 2 == 0) ? is_alpha((unsigned char)w[i]) : w[i] == '.';
    if (dotted && len % 2 == 1) return 1;
    for (size_t k = 0; k < sizeof known / sizeof known[0]; k++)
        if (strlen(known[k]) == len && lower_is(w, len, 0, known[k])) return 1;
    return 0;
}

/* End of the word starting at i: letters and digits, joined by internal
 * - . / & (between word characters), , (between digits) and ' (o'clock),
 * stopping before a clitic. */
static size_t word_end(const char *s, size_t len, size_t i)
{
    size_t j = i;
    while (j < len) {
        /* a run of ASCII letters and digits in one go: "n't" needs the
         * byte after its n to be ', so only the run's last byte can start it */
        size_t run = j;
        while (j < len && (is_alpha((unsigned char)s[j]) || is_digit((unsigned char)s[j]))) j++;
        if (j > run && j - 1 > i && (s[j - 1] == 'n' || s[j - 1] == 'N') && clitic(s, len, j - 1) == 3) return j - 1;
        if (j == len) break;
        if ((unsigned char)s[j] >= 0x80) {
            j++;
        } else if ((s[j] == '-' || s[j] == '.' || s[j] == '/' || s[j] == '&') && word_char(s, len, j + 1)) {
            j++;
        } else if (s[j] == ',' && j > i && is_digit((unsigned char)s[j - 1]) && j + 1 < len &&
                   is_digit((unsigned char)s[j + 1])) {
            j++;
        } else if (s[j] == '\'' && word_char(s, len, j + 1) && !clitic(s, len, j)) {
            j++;
        } else {
            break;
        }
    }
    return j;
}

int ptb_tokenize(const char *text, size_t len, sbuf_t *out, err_t *e)
{
    /* a byte becomes at most 6 (" -lrb-" for "("): room for the worst at
     * once, the rest given back at the end */
    size_t start = out->len;
    if (len > SIZE_MAX / 8 || !sb_extend(out, 6 * len))
        return err_set(e, ERR_NOMEM, "out of memory tokenizing a %zu-byte caption", len);
    char *first = out->data + start, *o = first;
    size_t i = 0;
    while (i < len) {
        unsigned char c = (unsigned char)text[i];
        size_t k;
        if (c <= ' ' || c == 0x7f) { /* isspace or iscntrl */
            /* PTB drops control characters it cannot tokenize; NUL among them */
            i++;
        } else if ((k = clitic(text, len, i))) {
            o = emit(o, first, text + i, k);
            i += k;
        } else if (word_char(text, len, i)) {
            size_t j = word_end(text, len, i);
            if (j < len && text[j] == '.' && !(j + 1 < len && text[j + 1] == '.') && abbreviation(text + i, j - i)) j++;
            o = emit(o, first, text + i, j - i);
            i = j;
        } else if (c == '"' || c == '`') {
            /* quotes become `` or '' and the filter drops both */
            i++;
        } else if (c == '.' || c == '-') {
            /* runs of dots or dashes: . ... - -- all dropped */
            while (i < len && (unsigned char)text[i] == c) i++;
        } else if (c && strchr("()[]{}", c)) {
            static const char *const esc[] = {"-LRB-", "-RRB-", "-LSB-", "-RSB-", "-LCB-", "-RCB-"};
            const char *t = esc[strchr("()[]{}", c) - "()[]{}"];
            o = emit(o, first, t, strlen(t));
            i++;
        } else {
            o = emit(o, first, text + i, 1);
            i++;
        }
    }
    sb_truncate(out, (size_t)(o - out->data));
    return 0;
}
