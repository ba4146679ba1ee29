/* One writing run per store at a time.
 *
 * Two `clipcap extract` runs on one store would both encode the same keys
 * (each sees the other's work only once committed) and overwrite each
 * other's summaries. The first run's rank 0 holds an exclusive flock(2)
 * on STORE/extract.lock for the whole run and writes "pid P on host H"
 * into it; a second run fails at once with an error naming that holder.
 * The kernel drops the lock when the holder exits in any way, kill -9
 * included, so a crashed run never leaves the store locked (the file's
 * stale text is only read while someone holds the lock). Readers never
 * take it. */
#ifndef CLIPCAP_STORE_LOCK_H
#define CLIPCAP_STORE_LOCK_H

#include "core/log.h"

#define STORE_LOCK_NAME "extract.lock"

/* Creates dir if needed, takes the lock without waiting. *fd (>= 0) holds
 * it until store_unlock. ERR_LIMIT naming the lock file and its holder when
 * another process holds it; ERR_IO when it cannot be created or locked. */
int store_lock(const char *dir, int *fd, err_t *e);
void store_unlock(int fd); /* -1 is allowed */

#endif
