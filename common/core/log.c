#include "core/log.h"
#include "core/mpictx.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static enum log_level log_threshold(void)
{
    const char *v = getenv("CLIPCAP_LOG");
    if (!v) return LOG_INFO;
    if (!strcmp(v, "debug")) return LOG_DEBUG;
    if (!strcmp(v, "warn")) return LOG_WARN;
    if (!strcmp(v, "error")) return LOG_ERROR;
    return LOG_INFO;
}

int log_enabled(enum log_level level) { return level >= log_threshold(); }

void log_msg(enum log_level level, const char *fmt, ...)
{
    static const char *names[] = {"debug", "info", "warn", "error"};
    if (!log_enabled(level)) return;
    char line[2048];
    int n = snprintf(line, sizeof line, "[r%d/%d] %s: ", mpictx_rank(), mpictx_size(), names[level]);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    /* one fputs per line so that lines of different ranks do not interleave */
    size_t len = strlen(line);
    if (len + 1 < sizeof line) { line[len] = '\n'; line[len + 1] = 0; }
    fputs(line, stderr);
}

int err_set(err_t *e, int code, const char *fmt, ...)
{
    if (!e) return code;
    e->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    return code;
}

int err_wrap(err_t *e, const char *fmt, ...)
{
    if (!e) return ERR_INTERNAL;
    char prefix[512], old[sizeof e->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, e->msg, sizeof old);
    snprintf(e->msg, sizeof e->msg, "%s: %s", prefix, old);
    return e->code ? e->code : ERR_INTERNAL;
}

void err_clear(err_t *e)
{
    if (!e) return;
    e->code = 0;
    e->msg[0] = 0;
}

const char *err_name(int code)
{
    switch (code) {
    case ERR_OK: return "ok";
    case ERR_IO: return "io";
    case ERR_FORMAT: return "format";
    case ERR_NOMEM: return "nomem";
    case ERR_ARG: return "arg";
    case ERR_MPI: return "mpi";
    case ERR_LIMIT: return "limit";
    case ERR_UNSUPPORTED: return "unsupported";
    case ERR_NOTFOUND: return "notfound";
    case ERR_STORE: return "store";
    default: return "internal";
    }
}

int err_report(const char *stage, const err_t *e)
{
    fprintf(stderr, "[r%d/%d] clipcap %s: error: %s\n", mpictx_rank(), mpictx_size(), stage,
            e->msg[0] ? e->msg : err_name(e->code));
    return e->code == ERR_ARG ? 2 : 1;
}
