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
/* Open PATH read-only, refusing anything but a regular file (a directory
 * or a FIFO would "read" as garbage or block; the open itself does not
 * block on a FIFO); *size is its length. The caller closes *fd. */
int fs_open_regular(const char *path, int *fd, uint64_t *size, err_t *e);
/* pread exactly n bytes at off into dst, retrying short reads and EINTR.
 * For callers that know the bytes are there (they checked the size): an
 * early end of file means the file shrank underneath them. Errors are
 * ERR_IO naming path and the byte. */
int fs_pread_exact(int fd, void *dst, size_t n, uint64_t off, const char *path, err_t *e);
/* The same into a new malloc'd buffer with a NUL after the n bytes (text
 * callers get a C string); *data is NULL on failure. */
int fs_pread_alloc(int fd, uint64_t off, size_t n, const char *path, uint8_t **data, err_t *e);
/* Map a regular file read-only and private. An empty file is *map NULL,
 * *len 0 (mmap cannot map nothing); the format parsers then say what is
 * missing. Release with fs_unmap (NULL is allowed). */
int fs_map_file(const char *path, const uint8_t **map, size_t *len, err_t *e);
void fs_unmap(const uint8_t *map, size_t len);

/* The steps of fs_write_atomic, for writers that stream (zio):
 * fs_tmp_create opens PATH.tmp.PID for writing (its name into tmp, cap
 * bytes); fs_write_full writes all len bytes (errors name `path`);
 * fs_tmp_commit fsyncs and closes fd, renames tmp over path and fsyncs the
 * directory. fs_tmp_commit always closes fd and, when it fails before the
 * rename, removes tmp. */
int fs_tmp_create(const char *path, char *tmp, size_t cap, int *fd, err_t *e);
int fs_write_full(int fd, const void *data, size_t len, const char *path, err_t *e);
int fs_tmp_commit(int fd, const char *tmp, const char *path, err_t *e);
/* fsync the directory that holds path, so that a file just created or
 * renamed there survives a crash. Errors are ERR_IO naming the directory. */
int fs_fsync_dir_of(const char *path, err_t *e);

/* mkdir -p */
/* A fresh scratch name in $TMPDIR (else /tmp): "DIR/PREFIX." then the six
 * characters mkstemp/mkdtemp replace with a unique suffix; pass out to either. */
int fs_scratch_template(char *out, size_t cap, const char *prefix, err_t *e);
int fs_mkdirs(const char *path, err_t *e);
int fs_exists(const char *path);
/* *n = entries of dir other than "." and ".." (0 when dir does not exist);
 * the first one's name into first (cap bytes) when first is not NULL.
 * For stages that refuse to write into a used output directory. */
int fs_dir_count(const char *dir, size_t *n, char *first, size_t cap, err_t *e);
/* Removes every entry of dir, a flat folder of files a stage owns alone (a
 * missing dir is empty). Goes on past a file it cannot remove and returns
 * the first failure. */
int fs_empty_dir(const char *dir, err_t *e);
/* A regular file (after following links). */
int fs_is_regular(const char *path);
/* Join dir and name into out (size cap), returns ERR_ARG if it does not fit. */
int fs_join(char *out, size_t cap, const char *dir, const char *name, err_t *e);

/* 64-byte aligned, zeroed; free with free(). NULL on failure. */
void *mem_alloc_aligned(size_t bytes);

/* XXH3-128 of the bytes, as 32 lowercase hex characters + NUL. */
void hash_hex128(const void *data, size_t len, char out[33]);
uint64_t hash64(const void *data, size_t len);
/* hash_hex128 of a whole file, read in 1 MiB pieces; *size its length. */
int fs_hash_file128(const char *path, char out[33], uint64_t *size, err_t *e);
/* Advise the kernel to back the next `bytes` of this thread's malloc heap
 * with 2 MiB pages (transparent huge pages in "madvise" mode) and keep
 * them for the process: for a run that builds many small objects (a JSON
 * document, token strings) the 4 KiB page faults otherwise cost as much
 * as the work. Advice only: it changes no result and never fails. */
void mem_huge_heap(size_t bytes);

#endif
