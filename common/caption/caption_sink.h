/* An append-only zstd JSONL file that survives kill -9 at any moment: the
 * resumable writer of the caption dump (schemas/captions.md).
 *
 * Contract:
 * - Lines are buffered by caption_sink_add; caption_sink_commit appends
 *   them as ONE complete zstd frame (content size and checksum in the
 *   frame) and fdatasyncs before returning. A commit is all or nothing:
 *   when the write fails the file is cut back to its previous length.
 * - caption_sink_open on an existing file scans its frames from the start
 *   and hands every line of every complete, checksummed frame to on_line;
 *   the first frame that is truncated, corrupt or does not end with '\n'
 *   and everything after it are cut off (ftruncate + fsync). Because a
 *   frame is appended only after the previous one is on disk, a kill can
 *   only tear the last frame, so exactly the committed lines survive.
 * - The result is an ordinary multi-frame .zst file: zstd -d and
 *   zio_reader read it as one stream.
 * - Recovery reads the file whole: a sink holds one output shard, whose
 *   size the caller bounds. */
#ifndef CLIPCAP_CAPTION_SINK_H
#define CLIPCAP_CAPTION_SINK_H

#include <stddef.h>
#include <stdint.h>
#include "core/log.h"

typedef struct caption_sink caption_sink;

/* line: without '\n', NUL-terminated, valid during the call. Returning
 * non-zero stops the open with that code. */
typedef int (*caption_sink_line_fn)(void *ctx, const char *line, size_t len, err_t *e);

/* Create PATH or recover it (see above); level: zstd level 1..19. on_line
 * may be NULL. */
int caption_sink_open(caption_sink **out, const char *path, int level, caption_sink_line_fn on_line, void *ctx,
                      err_t *e);
/* Frames kept by the open, and bytes of torn tail it cut. */
uint64_t caption_sink_recovered_frames(const caption_sink *s);
uint64_t caption_sink_cut_bytes(const caption_sink *s);
/* Buffer one line (a '\n' is added; the line must not contain one). */
int caption_sink_add(caption_sink *s, const char *line, size_t len, err_t *e);
/* Append the buffered lines as one frame and sync. No buffered line: no-op. */
int caption_sink_commit(caption_sink *s, err_t *e);
/* Close; lines not committed are dropped. NULL is allowed. */
void caption_sink_close(caption_sink *s);

#endif
