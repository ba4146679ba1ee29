/* Files and memory: whole-file reads, crash-safe writes, directories,
 * aligned buffers, content hashes. Every function names the path in its
 * error message. */
#ifndef CLIPCAP_FSUTIL_H
#define CLIPCAP_FSUTIL_H

#include <stddef.h>
#include <stdint.h>
#include "core/log.h"

/* Read a whole file into a malloc'd buffer (NUL-terminated for convenience;
 * *len excludes the NUL). */
int fs_read_all(const char *path, uint8_t **data, size_t *len, err_t *e);
/* Write to PATH.tmp.PID, fsync, rename over PATH, fsync the directory: a
 * reader sees either the old file or the whole new one, never a part. */
int fs_write_atomic(const char *path, const void *data, size_t len, err_t *e);
/* mkdir -p */
int fs_mkdirs(const char *path, err_t *e);
int fs_exists(const char *path);
/* Join dir and name into out (size cap), returns ERR_ARG if it does not fit. */
int fs_join(char *out, size_t cap, const char *dir, const char *name, err_t *e);

/* 64-byte aligned, zeroed; free with free(). NULL on failure. */
void *mem_alloc_aligned(size_t bytes);

/* XXH3-128 of the bytes, as 32 lowercase hex characters + NUL. */
void hash_hex128(const void *data, size_t len, char out[33]);
uint64_t hash64(const void *data, size_t len);

#endif
