/* zstd-compressed streams of lines or bytes.
 *
 * The writer writes PATH.tmp.PID and, on commit, ends the frame, fsyncs and
 * renames over PATH (then fsyncs the directory): a reader never sees a
 * partial file. Abort removes the temporary file.
 *
 * The reader decompresses incrementally and hands out lines. A file that
 * ends inside a frame (truncated) or fails to decompress is ERR_FORMAT
 * naming the path. */
#ifndef CLIPCAP_ZIO_H
#define CLIPCAP_ZIO_H

#include <stddef.h>
#include <stdint.h>
#include "core/log.h"

typedef struct zio_writer zio_writer;
/* level: zstd level (1..19; 0 means zstd's default). */
int zio_writer_open(zio_writer **w, const char *path, int level, err_t *e);
int zio_write(zio_writer *w, const void *data, size_t len, err_t *e);
/* The same atomic writer without compression (raw bytes): for formats that
 * are written as a stream but must appear whole (safetensors, tar). */
int zio_writer_open_raw(zio_writer **w, const char *path, err_t *e);
/* Finish the frame, fsync, rename, free w (also on failure). */
int zio_writer_commit(zio_writer *w, err_t *e);
/* Remove the temporary file and free w. NULL is allowed. */
void zio_writer_abort(zio_writer *w);

typedef struct zio_reader zio_reader;
int zio_reader_open(zio_reader **r, const char *path, err_t *e);
/* 1 = a line (without '\n', NUL-terminated, valid until the next call),
 * 0 = end of file, <0 = error. A last line without '\n' is still a line.
 * Lines over 256 MiB are ERR_LIMIT (the file is not line records). */
int zio_read_line(zio_reader *r, const char **line, size_t *len, err_t *e);
/* NULL is allowed. */
void zio_reader_close(zio_reader *r);
/* Decompress a whole file into a malloc'd buffer (NUL-terminated; *len
 * excludes the NUL). */
int zio_read_all(const char *path, uint8_t **data, size_t *len, err_t *e);

#endif
