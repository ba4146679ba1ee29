/* Running the COCO toolkit's Java scorers (METEOR 1.5, SPICE 1.0) the way
 * pycocoevalcap does: `java -jar -XmxHEAP JAR ARGS...` with `java` looked up
 * on PATH, the jar's directory as working directory (the jars find their
 * data/ and lib/ relative to it) and LC_ALL=C.
 *
 * The child's stdin and stdout are connected to us when asked (METEOR's
 * line protocol), otherwise both go away from our stdout; its stderr (and
 * unconnected stdout) is kept in an unlinked temporary file so that a
 * failure can quote the child's last line. Writing to a child that died is
 * an error, never SIGPIPE. Every message names the jar by its base name.
 * A missing jar, a missing `java` and a non-zero exit are ERR_IO. */
#ifndef CLIPCAP_JRUN_H
#define CLIPCAP_JRUN_H

#include <stdio.h>
#include <sys/types.h>
#include "core/log.h"

typedef struct {
    pid_t pid;        /* 0 once reaped */
    int to_child;     /* socket to the child's stdin, -1 if not connected */
    FILE *from_child; /* the child's stdout, NULL if not connected */
    int err_fd;       /* the child's stderr, an unlinked temporary file */
    char name[256];   /* the jar's base name, for messages */
} jrun_t;

/* 0 when PATH names a readable regular file; otherwise ERR_IO naming
 * flag ("--meteor-jar") and the path. */
int jrun_check_jar(const char *flag, const char *path, err_t *e);
/* args: NULL-terminated arguments after the jar. connect: 1 to talk over
 * stdin/stdout, 0 for neither. */
int jrun_start(jrun_t *j, const char *jar, const char *heap, const char *const *args, int connect, err_t *e);
int jrun_write(jrun_t *j, const char *s, size_t len, err_t *e);
/* The next line of the child's stdout, without its line end, in *line
 * (a getline buffer of *cap bytes). End of output is an error that says
 * how the child ended and quotes its last stderr line; what names what we
 * waited for ("the statistics of image 3"). */
int jrun_read_line(jrun_t *j, char **line, size_t *cap, const char *what, err_t *e);
/* Close the child's stdin and wait for it; a non-zero exit or a signal is
 * an error quoting its last stderr line. */
int jrun_finish(jrun_t *j, err_t *e);
/* Kill and reap the child after an error; safe to call twice. */
void jrun_abort(jrun_t *j);

#endif
