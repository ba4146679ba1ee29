/* A small POSIX ustar writer for webdataset shards.
 *
 * Members are regular files only, written in the order added, with fixed
 * metadata (mode 0644, uid/gid 0, empty user/group names, a fixed mtime) so
 * that the same members give byte-identical archives: the synthetic data set
 * must not depend on the clock or the user. Names up to 255 bytes use the
 * ustar prefix field; longer names are refused rather than written in a GNU
 * or pax extension. The archive ends with the two zero blocks ustar requires.
 *
 * The file is written to PATH.tmp.PID and renamed over PATH by
 * tar_writer_close, so a reader never sees half a shard; tar_writer_abort
 * removes the temporary file. */
#ifndef CLIPCAP_TAR_WRITER_H
#define CLIPCAP_TAR_WRITER_H

#include <stddef.h>
#include <stdint.h>
#include "core/log.h"

typedef struct tar_writer_t tar_writer_t;

/* mtime stamped on every member (2014-01-01T00:00:00Z). */
#define TAR_WRITER_MTIME 1388534400u

int tar_writer_open(tar_writer_t **w, const char *path, err_t *e);
int tar_writer_add(tar_writer_t *w, const char *name, const void *data, size_t len, err_t *e);
/* Finish the archive, close and rename it into place; frees w either way. */
int tar_writer_close(tar_writer_t *w, err_t *e);
/* Drop a partly written archive; frees w. */
void tar_writer_abort(tar_writer_t *w);

#endif
