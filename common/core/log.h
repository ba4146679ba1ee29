/* Logging and errors: the one convention of the code base.
 *
 * Logging: log_msg(LOG_INFO, fmt, ...) writes one line to stderr, prefixed
 * with the rank ("[r1/4] info: ..."). LOG_DEBUG lines appear only when the
 * environment sets CLIPCAP_LOG=debug; CLIPCAP_LOG=warn silences info.
 *
 * Errors: a fallible function returns int, 0 on success or a negative ERR_*
 * code, and fills a caller-owned `err_t` with a one-line message that names
 * the file and the record it was working on ("captions.json: annotation 17:
 * field 'caption' is not a string"). The caller either handles it or passes
 * it up unchanged; the stage's main prints err.msg and exits non-zero.
 * err_set returns its code so that `return err_set(e, ERR_IO, ...)` reads as
 * one statement. A NULL err_t* is allowed and discards the message. */
#ifndef CLIPCAP_LOG_H
#define CLIPCAP_LOG_H

#include <stdarg.h>

enum log_level { LOG_DEBUG = 0, LOG_INFO = 1, LOG_WARN = 2, LOG_ERROR = 3 };

enum err_code {
    ERR_OK = 0,
    ERR_IO = -1,          /* open/read/write/rename/mmap failed */
    ERR_FORMAT = -2,      /* input does not follow its format */
    ERR_NOMEM = -3,       /* allocation failed */
    ERR_ARG = -4,         /* bad flag or argument from the user */
    ERR_MPI = -5,         /* an MPI call failed or ranks disagree */
    ERR_LIMIT = -6,       /* input exceeds a configured limit */
    ERR_UNSUPPORTED = -7, /* valid input we do not handle */
    ERR_NOTFOUND = -8,    /* a key, file or tensor is missing */
    ERR_STORE = -9,       /* LMDB reported an error */
    ERR_INTERNAL = -10,   /* a broken invariant: a bug in clipcap */
};

typedef struct err_t {
    int code;
    char msg[1024];
} err_t;

void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int log_enabled(enum log_level level);

/* Fill e with "fmt..." and return code. */
int err_set(err_t *e, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Prepend "prefix: " to an error already set, keeping its code; returns it.
 * Used to add the file or record as the error travels up. */
int err_wrap(err_t *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void err_clear(err_t *e);
const char *err_name(int code);

/* Print "clipcap NAME: error: MSG" on stderr (rank-prefixed) and return the
 * process exit status for that error (1 for user/input errors, 2 for usage). */
int err_report(const char *stage, const err_t *e);

#endif
