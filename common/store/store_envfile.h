/* A check of an LMDB data file (an environment's data.mdb) BEFORE LMDB
 * maps it.
 *
 * LMDB maps the whole file and follows page numbers from its meta pages
 * without comparing them with the file's size: a data.mdb cut short (a
 * copy that stopped, a full disk during rsync, `truncate`) makes the first
 * access past the end raise SIGBUS inside mdb_dbi_open or a lookup, which
 * kills the process with no message. Reading the two meta pages ourselves
 * turns that into an error naming the file.
 *
 * LMDB's on-disk layout (0.9.x, not MDB_VL32), every field native-endian,
 * W = sizeof(size_t):
 *   page 0 and page 1 (at byte psize) are meta pages:
 *     page header: W-byte page number, u16 pad, u16 flags (P_META = 0x08), u32
 *     meta at byte W+8: u32 magic 0xBEEFC0DE, u32 version 1, W address,
 *       W mapsize, two database records of 8+5W bytes (the first one's
 *       leading u32 is the page size), W last_pg, W txnid
 *   LMDB uses the meta page with the larger txnid; every page it can reach
 *   is at most last_pg, so the file needs (last_pg + 1) * psize bytes.
 * The file only grows (LMDB never shrinks it), so a writer committing in
 * another process cannot make a good file fail this check: the meta pages
 * are read before the size. */
#ifndef CLIPCAP_STORE_ENVFILE_H
#define CLIPCAP_STORE_ENVFILE_H

#include "core/log.h"

/* 0 when path (a data.mdb) is absent, empty (LMDB initialises it) or whole;
 * ERR_FORMAT naming path and the reason when it is shorter than its meta
 * pages say or they are not LMDB meta pages; ERR_IO when it cannot be read. */
int store_check_env_file(const char *path, err_t *e);

#endif
