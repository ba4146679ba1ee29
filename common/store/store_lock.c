#include "store/store_lock.h"
#include "core/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

int store_lock(const char *dir, int *fd, err_t *e)
{
    *fd = -1;
    char path[4200];
    int rc = fs_mkdirs(dir, e);
    if (!rc) rc = fs_join(path, sizeof path, dir, STORE_LOCK_NAME, e);
    if (rc) return rc;
    int f = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (f < 0) return err_set(e, ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    if (flock(f, LOCK_EX | LOCK_NB) != 0) {
        int err = errno;
        char holder[256] = "";
        ssize_t n = err == EWOULDBLOCK ? pread(f, holder, sizeof holder - 1, 0) : -1;
        close(f);
        if (err != EWOULDBLOCK) return err_set(e, ERR_IO, "%s: cannot lock: %s", path, strerror(err));
        holder[n > 0 ? n : 0] = 0;
        holder[strcspn(holder, "\n")] = 0;
        return err_set(e, ERR_LIMIT, "%s: another clipcap extract is writing this store (%s); wait for it to end",
                       path, holder[0] ? holder : "holder unknown");
    }
    char me[300], host[200] = "?";
    gethostname(host, sizeof host - 1);
    int len = snprintf(me, sizeof me, "pid %d on host %s\n", (int)getpid(), host);
    if (ftruncate(f, 0) != 0 || pwrite(f, me, (size_t)len, 0) != len) {
        rc = err_set(e, ERR_IO, "%s: cannot write the holder: %s", path, strerror(errno));
        close(f);
        return rc;
    }
    *fd = f;
    return 0;
}

void store_unlock(int fd)
{
    if (fd >= 0) close(fd); /* closing the descriptor releases the flock */
}
