#include "data/jscan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fsutil.h"

#define JSCAN_MAX_DEPTH 1000

typedef struct jscan_state {
    jscan_t *d;
    char *b;
    size_t n, pos;
    size_t line, line_start; /* of pos: newlines only occur between tokens */
    err_t *e;
} jscan_state;

static int js_error(jscan_state *s, size_t at, const char *what)
{
    /* Counted while scanning: strings are unescaped in place, so the
     * buffer before `at` may hold newlines that were "\n" escapes. */
    size_t line = s->line, col_start = s->line_start;
    char near[16] = "end of input";
    if (at < s->n) {
        unsigned char c = (unsigned char)s->b[at];
        if (c >= 0x20 && c < 0x7f) snprintf(near, sizeof near, "'%c'", c);
        else snprintf(near, sizeof near, "byte 0x%02x", c);
    }
    return err_set(s->e, ERR_FORMAT, "%s:%zu:%zu: %s near %s", s->d->name, line, at - col_start + 1, what, near);
}

static int js_push(jscan_state *s, uint8_t type, size_t start, uint32_t *idx)
{
    jscan_t *d = s->d;
    if (d->n_tok == d->cap_tok) {
        size_t c = d->cap_tok ? d->cap_tok * 2 : 4096;
        jscan_tok *t = realloc(d->tok, c * sizeof *t);
        if (!t) return err_set(s->e, ERR_NOMEM, "%s: cannot allocate %zu JSON tokens", d->name, c);
        d->tok = t;
        d->cap_tok = c;
    }
    if (d->n_tok >= UINT32_MAX) return err_set(s->e, ERR_LIMIT, "%s: more than 4G JSON values", d->name);
    *idx = (uint32_t)d->n_tok++;
    d->tok[*idx] = (jscan_tok){(uint32_t)start, 0, *idx + 1, type};
    return 0;
}

static void js_ws(jscan_state *s)
{
    while (s->pos < s->n) {
        char c = s->b[s->pos];
        if (c != ' ' && c != '\n' && c != '\r' && c != '\t') return;
        if (c == '\n') {
            s->line++;
            s->line_start = s->pos + 1;
        }
        s->pos++;
    }
}

static int js_hex4(const char *p, unsigned *v)
{
    *v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        unsigned d = (c >= '0' && c <= '9') ? (unsigned)(c - '0')
                     : (c >= 'a' && c <= 'f') ? (unsigned)(c - 'a' + 10)
                     : (c >= 'A' && c <= 'F') ? (unsigned)(c - 'A' + 10) : 16u;
        if (d == 16) return -1;
        *v = *v << 4 | d;
    }
    return 0;
}

/* Length of the valid UTF-8 sequence at p (n bytes left), 0 if invalid. */
static size_t js_utf8_len(const unsigned char *p, size_t n)
{
    unsigned c = p[0], cp;
    size_t len;
    if (c >= 0xC2 && c <= 0xDF) { len = 2; cp = c & 0x1F; }
    else if (c >= 0xE0 && c <= 0xEF) { len = 3; cp = c & 0x0F; }
    else if (c >= 0xF0 && c <= 0xF4) { len = 4; cp = c & 0x07; }
    else return 0;
    if (len > n) return 0;
    for (size_t k = 1; k < len; k++) {
        if ((p[k] & 0xC0) != 0x80) return 0;
        cp = cp << 6 | (p[k] & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

static size_t js_put_utf8(char *o, unsigned cp)
{
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) { o[0] = (char)(0xC0 | cp >> 6); o[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | cp >> 12); o[1] = (char)(0x80 | ((cp >> 6) & 0x3F)); o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | cp >> 18); o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* s->pos at the opening quote. Validates, unescapes in place, writes the
 * NUL, leaves pos after the closing quote. */
static int js_string(jscan_state *s, uint32_t *idx)
{
    size_t start = s->pos + 1, r = start, w = start;
    int rc = js_push(s, JS_STRING, start, idx);
    if (rc) return rc;
    char *b = s->b;
    for (;;) {
        /* the common run: plain printable ASCII copied (or left) as is;
         * while nothing has been unescaped (w == r), 8 bytes at a time:
         * a word holding a '"', '\\', < 0x20 or >= 0x80 byte always stops
         * (the classic has-a-byte tests) and the byte loop finds it */
        if (w == r) {
            const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
            for (uint64_t x; r + 8 <= s->n; r += 8) {
                memcpy(&x, b + r, 8);
                uint64_t q = x ^ (ones * '"'), bs = x ^ (ones * '\\');
                if ((x | ((x - ones * 0x20) & ~x) | ((q - ones) & ~q) | ((bs - ones) & ~bs)) & highs) break;
            }
            w = r;
        }
        while (r < s->n) {
            unsigned char c = (unsigned char)b[r];
            if (c == '"' || c == '\\' || c < 0x20 || c >= 0x80) break;
            if (w != r) b[w] = (char)c;
            r++, w++;
        }
        if (r >= s->n) return js_error(s, s->pos, "unterminated string");
        unsigned char c = (unsigned char)b[r];
        if (c == '"') break;
        if (c < 0x20) return js_error(s, r, "control character in string");
        if (c >= 0x80) {
            size_t l = js_utf8_len((const unsigned char *)b + r, s->n - r);
            if (!l) return js_error(s, r, "invalid UTF-8 in string");
            if (w != r) memmove(b + w, b + r, l);
            r += l, w += l;
            continue;
        }
        /* escape */
        if (r + 1 >= s->n) return js_error(s, r, "unterminated escape");
        char x = b[r + 1];
        const char *simple = strchr("\"\\/bfnrt", x);
        if (x && simple) {
            static const char map[] = "\"\\/\b\f\n\r\t";
            b[w++] = map[simple - "\"\\/bfnrt"];
            r += 2;
            continue;
        }
        if (x != 'u') return js_error(s, r, "invalid escape");
        unsigned cp;
        if (r + 6 > s->n || js_hex4(b + r + 2, &cp)) return js_error(s, r, "invalid \\u escape");
        size_t used = 6;
        if (cp >= 0xDC00 && cp <= 0xDFFF) return js_error(s, r, "lone low surrogate");
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            unsigned lo;
            if (r + 12 > s->n || b[r + 6] != '\\' || b[r + 7] != 'u' || js_hex4(b + r + 8, &lo) || lo < 0xDC00 ||
                lo > 0xDFFF)
                return js_error(s, r, "high surrogate without its low half");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            used = 12;
        }
        if (cp == 0) return js_error(s, r, "\\u0000 is not allowed");
        w += js_put_utf8(b + w, cp); /* never longer than the escape it replaces */
        r += used;
    }
    if (w - start > UINT32_MAX) return js_error(s, start, "string longer than 4 GiB");
    s->d->tok[*idx].len = (uint32_t)(w - start);
    b[w] = 0; /* w <= r: at worst the closing quote */
    s->pos = r + 1;
    return 0;
}

static int js_digits(jscan_state *s)
{
    size_t p0 = s->pos;
    while (s->pos < s->n && s->b[s->pos] >= '0' && s->b[s->pos] <= '9') s->pos++;
    return s->pos > p0;
}

static int js_number(jscan_state *s)
{
    size_t start = s->pos;
    uint8_t type = JS_INT;
    if (s->b[s->pos] == '-') s->pos++;
    if (s->pos < s->n && s->b[s->pos] == '0') s->pos++;
    else if (!js_digits(s)) return js_error(s, start, "invalid number");
    if (s->pos < s->n && s->b[s->pos] == '.') {
        s->pos++;
        type = JS_REAL;
        if (!js_digits(s)) return js_error(s, start, "invalid number");
    }
    if (s->pos < s->n && (s->b[s->pos] == 'e' || s->b[s->pos] == 'E')) {
        s->pos++;
        type = JS_REAL;
        if (s->pos < s->n && (s->b[s->pos] == '+' || s->b[s->pos] == '-')) s->pos++;
        if (!js_digits(s)) return js_error(s, start, "invalid number");
    }
    uint32_t idx;
    int rc = js_push(s, type, start, &idx);
    if (!rc) s->d->tok[idx].len = (uint32_t)(s->pos - start);
    return rc;
}

static int js_literal(jscan_state *s)
{
    static const struct { const char *word; uint8_t type; } lits[] = {
        {"true", JS_TRUE}, {"false", JS_FALSE}, {"null", JS_NULL}};
    for (size_t i = 0; i < 3; i++) {
        size_t l = strlen(lits[i].word);
        if (s->n - s->pos >= l && !memcmp(s->b + s->pos, lits[i].word, l)) {
            uint32_t idx;
            int rc = js_push(s, lits[i].type, s->pos, &idx);
            s->pos += l;
            return rc;
        }
    }
    return js_error(s, s->pos, "invalid literal");
}

enum { EXPECT_VALUE, EXPECT_VALUE_OR_END, EXPECT_KEY, EXPECT_KEY_OR_END, EXPECT_COMMA_OR_END };

int jscan_parse(jscan_t *d, char *buf, size_t len, const char *name, err_t *e)
{
    memset(d, 0, sizeof *d);
    snprintf(d->name, sizeof d->name, "%s", name ? name : "<buffer>");
    d->buf = buf;
    d->len = len;
    if (len >= UINT32_MAX) return err_set(e, ERR_LIMIT, "%s: JSON files of 4 GiB or more are not supported", d->name);
    jscan_state s = {d, buf, len, 0, 1, 0, e};
    uint32_t stack[JSCAN_MAX_DEPTH];
    int depth = 0, state = EXPECT_VALUE, rc = 0;
    for (;;) {
        js_ws(&s);
        int closed = 0; /* a value just ended */
        if (state == EXPECT_VALUE || state == EXPECT_VALUE_OR_END) {
            if (s.pos >= s.n) return js_error(&s, s.pos, "value expected");
            char c = buf[s.pos];
            if (state == EXPECT_VALUE_OR_END && c == ']') {
                d->tok[stack[--depth]].next = (uint32_t)d->n_tok;
                s.pos++;
                closed = 1;
            } else if (c == '{' || c == '[') {
                if (depth == JSCAN_MAX_DEPTH) return js_error(&s, s.pos, "nesting too deep");
                uint32_t idx;
                if ((rc = js_push(&s, c == '{' ? JS_OBJECT : JS_ARRAY, s.pos, &idx))) return rc;
                stack[depth++] = idx;
                s.pos++;
                state = c == '{' ? EXPECT_KEY_OR_END : EXPECT_VALUE_OR_END;
                continue;
            } else if (c == '"') {
                uint32_t idx;
                if ((rc = js_string(&s, &idx))) return rc;
                closed = 1;
            } else if (c == '-' || (c >= '0' && c <= '9')) {
                if ((rc = js_number(&s))) return rc;
                closed = 1;
            } else if (c == 't' || c == 'f' || c == 'n') {
                if ((rc = js_literal(&s))) return rc;
                closed = 1;
            } else {
                return js_error(&s, s.pos, "value expected");
            }
        } else if (state == EXPECT_KEY || state == EXPECT_KEY_OR_END) {
            if (s.pos < s.n && buf[s.pos] == '}' && state == EXPECT_KEY_OR_END) {
                d->tok[stack[--depth]].next = (uint32_t)d->n_tok;
                s.pos++;
                closed = 1;
            } else {
                if (s.pos >= s.n || buf[s.pos] != '"')
                    return js_error(&s, s.pos, state == EXPECT_KEY ? "string expected" : "string or '}' expected");
                uint32_t idx;
                if ((rc = js_string(&s, &idx))) return rc;
                js_ws(&s);
                if (s.pos >= s.n || buf[s.pos] != ':') return js_error(&s, s.pos, "':' expected");
                s.pos++;
                state = EXPECT_VALUE;
                continue;
            }
        } else { /* EXPECT_COMMA_OR_END */
            if (s.pos >= s.n) return js_error(&s, s.pos, "',' or end of container expected");
            char c = buf[s.pos];
            int obj = d->tok[stack[depth - 1]].type == JS_OBJECT;
            if (c == ',') {
                s.pos++;
                state = obj ? EXPECT_KEY : EXPECT_VALUE;
                continue;
            }
            if (c != (obj ? '}' : ']')) return js_error(&s, s.pos, obj ? "',' or '}' expected" : "',' or ']' expected");
            d->tok[stack[--depth]].next = (uint32_t)d->n_tok;
            s.pos++;
            closed = 1;
        }
        if (closed) {
            if (depth == 0) break;
            state = EXPECT_COMMA_OR_END;
        }
    }
    js_ws(&s);
    if (s.pos != s.n) return js_error(&s, s.pos, "end of input expected");
    return 0;
}

int jscan_load(jscan_t *d, const char *path, err_t *e)
{
    uint8_t *data = NULL;
    size_t len = 0;
    memset(d, 0, sizeof *d);
    int rc = fs_read_all(path, &data, &len, e);
    if (rc) return rc;
    rc = jscan_parse(d, (char *)data, len, path, e);
    d->owns_buf = 1;
    return rc;
}

void jscan_free(jscan_t *d)
{
    if (d->owns_buf) free(d->buf);
    free(d->tok);
    memset(d, 0, sizeof *d);
}

uint32_t jscan_get(const jscan_t *d, uint32_t obj, const char *key)
{
    if (obj >= d->n_tok || d->tok[obj].type != JS_OBJECT) return 0;
    for (uint32_t k = obj + 1; k < d->tok[obj].next; k = d->tok[k + 1].next)
        if (!strcmp(d->buf + d->tok[k].start, key)) return k + 1;
    return 0;
}

size_t jscan_count(const jscan_t *d, uint32_t t)
{
    size_t n = 0;
    for (uint32_t c = t + 1; c < d->tok[t].next; c = d->tok[c].next) n++;
    return d->tok[t].type == JS_OBJECT ? n / 2 : n;
}

int jscan_int(const jscan_t *d, uint32_t t, long long *v)
{
    const char *p = d->buf + d->tok[t].start, *end = p + d->tok[t].len;
    int neg = *p == '-';
    unsigned long long x = 0;
    for (p += neg; p < end; p++) {
        unsigned dgt = (unsigned)(*p - '0');
        if (x > (9223372036854775807ULL + (unsigned)neg - dgt) / 10) return -1;
        x = x * 10 + dgt;
    }
    *v = neg ? (long long)(0 - x) : (long long)x;
    return 0;
}

static int jscan_field(const jscan_t *d, uint32_t obj, const char *key, uint32_t *v, err_t *e)
{
    if (obj >= d->n_tok || d->tok[obj].type != JS_OBJECT)
        return err_set(e, ERR_FORMAT, "not an object (looking for field '%s')", key);
    if (!(*v = jscan_get(d, obj, key))) return err_set(e, ERR_FORMAT, "field '%s' is missing", key);
    return 0;
}

int jscan_field_int(const jscan_t *d, uint32_t obj, const char *key, long long *v, err_t *e)
{
    uint32_t t;
    int rc = jscan_field(d, obj, key, &t, e);
    if (rc) return rc;
    if (d->tok[t].type != JS_INT) return err_set(e, ERR_FORMAT, "field '%s' is not an integer", key);
    if (jscan_int(d, t, v)) return err_set(e, ERR_FORMAT, "field '%s' is out of the integer range", key);
    return 0;
}

int jscan_field_str(const jscan_t *d, uint32_t obj, const char *key, const char **s, size_t *n, err_t *e)
{
    uint32_t t;
    int rc = jscan_field(d, obj, key, &t, e);
    if (rc) return rc;
    if (d->tok[t].type != JS_STRING) return err_set(e, ERR_FORMAT, "field '%s' is not a string", key);
    *s = d->buf + d->tok[t].start;
    if (n) *n = d->tok[t].len;
    return 0;
}

int jscan_field_array(const jscan_t *d, uint32_t obj, const char *key, uint32_t *arr, err_t *e)
{
    int rc = jscan_field(d, obj, key, arr, e);
    if (rc) return rc;
    if (d->tok[*arr].type != JS_ARRAY) return err_set(e, ERR_FORMAT, "field '%s' is not an array", key);
    return 0;
}
