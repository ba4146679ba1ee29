/* A fast, strict JSON scanner for the large caption files (a 600k-caption
 * COCO file parses in well under a second with ~16 bytes per value, where a
 * jansson tree takes seconds and ~7x the file size).
 *
 * jscan_parse validates the whole document (RFC 8259: grammar, UTF-8,
 * escapes, surrogate pairs; "\u0000" and a nesting depth over 1000 are
 * refused) and builds a flat token array in document order. Strings are
 * unescaped IN PLACE in the caller's buffer and NUL-terminated there (the
 * closing quote's byte becomes the NUL), so a string token is a C string.
 * A syntax error is ERR_FORMAT "NAME:LINE:COL: message" (line and column
 * 1-based, column in bytes). Duplicate object keys are allowed; lookups
 * return the first.
 *
 * Navigation: token 0 is the root. A container's children follow it; each
 * token's `next` is the index just past its whole value, so siblings are
 * reached by jumping. Objects hold key, value, key, value, ... */
#ifndef CLIPCAP_JSCAN_H
#define CLIPCAP_JSCAN_H

#include <stddef.h>
#include <stdint.h>
#include "core/log.h"

enum jscan_type { JS_NULL, JS_FALSE, JS_TRUE, JS_INT, JS_REAL, JS_STRING, JS_ARRAY, JS_OBJECT };

typedef struct jscan_tok {
    uint32_t start; /* byte offset: string contents (after the quote), or the value */
    uint32_t len;   /* bytes (strings: unescaped length) */
    uint32_t next;  /* index after this value and all it contains */
    uint8_t type;
} jscan_tok;

typedef struct jscan_t {
    char *buf;
    size_t len;
    int owns_buf;
    jscan_tok *tok;
    size_t n_tok, cap_tok;
    char name[1024];
} jscan_t;

/* buf is modified (strings unescaped in place) and borrowed. */
int jscan_parse(jscan_t *d, char *buf, size_t len, const char *name, err_t *e);
/* Reads the file; errors name it (ERR_IO when unreadable). */
int jscan_load(jscan_t *d, const char *path, err_t *e);
void jscan_free(jscan_t *d);

static inline const char *jscan_cstr(const jscan_t *d, uint32_t t) { return d->buf + d->tok[t].start; }
/* First child of a container, or its `next` when empty. */
static inline uint32_t jscan_first(const jscan_t *d, uint32_t t) { (void)d; return t + 1; }
static inline uint32_t jscan_end(const jscan_t *d, uint32_t t) { return d->tok[t].next; }
static inline uint32_t jscan_after(const jscan_t *d, uint32_t t) { return d->tok[t].next; }
/* The value of key in object obj, or 0 when absent (or obj is no object). */
uint32_t jscan_get(const jscan_t *d, uint32_t obj, const char *key);
size_t jscan_count(const jscan_t *d, uint32_t container);

/* The value of JS_INT token t; -1 when it does not fit a long long. */
int jscan_int(const jscan_t *d, uint32_t t, long long *v);

/* Field getters with json_util's messages ("field 'id' is missing",
 * "field 'id' is not an integer"), for callers to err_wrap. */
int jscan_field_int(const jscan_t *d, uint32_t obj, const char *key, long long *v, err_t *e);
int jscan_field_str(const jscan_t *d, uint32_t obj, const char *key, const char **s, size_t *n, err_t *e);
int jscan_field_array(const jscan_t *d, uint32_t obj, const char *key, uint32_t *arr, err_t *e);

#endif
