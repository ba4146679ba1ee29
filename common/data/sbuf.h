/* A growable byte buffer for building output lines (manifest records,
 * rejects, summaries) without a JSON tree per line. sb_json_str writes a
 * JSON string literal: quotes, backslashes and control characters escaped,
 * UTF-8 copied as is, so the output is byte-for-byte deterministic.
 * Allocation failure is sticky: sb->failed is set and later appends are
 * ignored; the caller checks it once before using the bytes. */
#ifndef CLIPCAP_SBUF_H
#define CLIPCAP_SBUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct sbuf_t {
    char *data; /* NUL-terminated while !failed */
    size_t len, cap;
    int failed;
} sbuf_t;

void sb_free(sbuf_t *sb);
void sb_reset(sbuf_t *sb); /* len = 0, keeps the memory */
void sb_truncate(sbuf_t *sb, size_t len); /* len <= sb->len; keeps the memory */
void sb_append(sbuf_t *sb, const void *p, size_t n);
/* n more bytes for the caller to write (len grows by n): where they go,
 * NULL when failed. */
char *sb_extend(sbuf_t *sb, size_t n);
void sb_puts(sbuf_t *sb, const char *s);
void sb_printf(sbuf_t *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sb_json_str(sbuf_t *sb, const char *s, size_t n);
void sb_u64(sbuf_t *sb, uint64_t v);

#endif
