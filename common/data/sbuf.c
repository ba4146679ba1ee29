#include "data/sbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sb_free(sbuf_t *sb)
{
    free(sb->data);
    memset(sb, 0, sizeof *sb);
}

void sb_reset(sbuf_t *sb)
{
    sb_truncate(sb, 0);
}

void sb_truncate(sbuf_t *sb, size_t len)
{
    sb->len = len;
    if (sb->data) sb->data[len] = 0;
}

static int sb_reserve(sbuf_t *sb, size_t extra)
{
    if (sb->failed) return -1;
    if (sb->len + extra + 1 <= sb->cap) return 0;
    size_t cap = sb->cap ? sb->cap : 256;
    while (cap < sb->len + extra + 1) cap *= 2;
    char *p = realloc(sb->data, cap);
    if (!p) {
        sb->failed = 1;
        return -1;
    }
    sb->data = p;
    sb->cap = cap;
    return 0;
}

void sb_append(sbuf_t *sb, const void *p, size_t n)
{
    if (sb_reserve(sb, n)) return;
    if (n) memcpy(sb->data + sb->len, p, n);
    sb->len += n;
    sb->data[sb->len] = 0;
}

char *sb_extend(sbuf_t *sb, size_t n)
{
    if (sb_reserve(sb, n)) return NULL;
    char *p = sb->data + sb->len;
    sb->len += n;
    sb->data[sb->len] = 0;
    return p;
}

void sb_puts(sbuf_t *sb, const char *s) { sb_append(sb, s, strlen(s)); }

void sb_printf(sbuf_t *sb, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || sb_reserve(sb, (size_t)n)) return;
    va_start(ap, fmt);
    vsnprintf(sb->data + sb->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    sb->len += (size_t)n;
}

void sb_u64(sbuf_t *sb, uint64_t v)
{
    char tmp[24];
    int i = sizeof tmp;
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    sb_append(sb, tmp + i, sizeof tmp - (size_t)i);
}

void sb_json_str(sbuf_t *sb, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    if (sb_reserve(sb, n + 2)) return;
    sb->data[sb->len++] = '"';
    size_t run = 0; /* bytes copied verbatim in one go */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        sb_append(sb, s + run, i - run);
        run = i + 1;
        switch (c) {
        case '"': sb_append(sb, "\\\"", 2); break;
        case '\\': sb_append(sb, "\\\\", 2); break;
        case '\n': sb_append(sb, "\\n", 2); break;
        case '\t': sb_append(sb, "\\t", 2); break;
        case '\r': sb_append(sb, "\\r", 2); break;
        default: {
            char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            sb_append(sb, u, 6);
        }
        }
    }
    sb_append(sb, s + run, n - run);
    sb_append(sb, "\"", 1);
}
