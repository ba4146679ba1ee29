/* Streaming tar reader for webdataset shards: ustar, pax extended headers
 * (path, size) and GNU long names (type 'L'). tar_next walks headers only
 * and returns each member's name, type and the offset of its DATA in the
 * file, so a manifest can point at the bytes without copying them.
 * A truncated member, a bad header checksum or a malformed pax record is
 * ERR_FORMAT naming the tar path and the member. Type is the ustar type
 * flag with '\0' normalised to '0' (regular file); directory names lose
 * their trailing '/' (as Python's tarfile reports them). */
#ifndef CLIPCAP_TAR_READER_H
#define CLIPCAP_TAR_READER_H

#include <stddef.h>
#include <stdint.h>
#include "core/log.h"

typedef struct tar_member {
    char name[1024];
    uint64_t data_offset, size;
    char type;
} tar_member;

typedef struct tar_reader tar_reader;

int tar_open(tar_reader **r, const char *path, err_t *e);
/* Read headers from memory (fuzzing); the buffer is borrowed. */
int tar_open_buffer(tar_reader **r, const uint8_t *data, size_t len, const char *name, err_t *e);
/* 1 = a member in *m, 0 = end of archive, <0 = error. Pax and GNU
 * long-name headers are consumed, never returned. */
int tar_next(tar_reader *r, tar_member *m, err_t *e);
/* NULL is allowed. */
void tar_close(tar_reader *r);
/* One header block h, found at byte pos of path (for messages): checks its
 * checksum and fills m: the ustar name (prefix "/" name), type, size, and
 * data_offset = pos + 512. *name_whole is 0 when the name field is full
 * and no prefix is used: the member's real name may then be longer, in a
 * pax or GNU long-name header before this block, which tar_next applies
 * and this function cannot see. */
int tar_parse_header(const uint8_t h[512], uint64_t pos, const char *path, tar_member *m, int *name_whole, err_t *e);
/* pread size bytes at offset into a malloc'd buffer; a short read is
 * ERR_FORMAT naming the path. */
int tar_read_range(const char *path, uint64_t offset, uint64_t size, uint8_t **data, err_t *e);

#endif
