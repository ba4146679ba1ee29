#include "core/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

int fs_read_all(const char *path, uint8_t **data, size_t *len, err_t *e)
{
    *data = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return err_set(e, ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int rc = err_set(e, ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
        close(fd);
        return rc;
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return err_set(e, ERR_IO, "%s: not a regular file", path);
    }
    size_t n = (size_t)st.st_size;
    uint8_t *buf = malloc(n + 1);
    if (!buf) {
        close(fd);
        return err_set(e, ERR_NOMEM, "%s: cannot allocate %zu bytes", path, n + 1);
    }
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            int rc = err_set(e, ERR_IO, "%s: read failed at byte %zu: %s", path, got,
                             r < 0 ? strerror(errno) : "file shrank while reading");
            free(buf);
            close(fd);
            return rc;
        }
        got += (size_t)r;
    }
    close(fd);
    buf[n] = 0;
    *data = buf;
    *len = n;
    return 0;
}

static int fs_fsync_dir_of(const char *path, err_t *e)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", path);
    const char *dir = dirname(tmp);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return err_set(e, ERR_IO, "%s: cannot open directory: %s", dir, strerror(errno));
    int rc = fsync(fd);
    close(fd);
    if (rc != 0) return err_set(e, ERR_IO, "%s: fsync failed: %s", dir, strerror(errno));
    return 0;
}

int fs_write_atomic(const char *path, const void *data, size_t len, err_t *e)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return err_set(e, ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
    const uint8_t *p = data;
    size_t put = 0;
    while (put < len) {
        ssize_t w = write(fd, p + put, len - put);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            int rc = err_set(e, ERR_IO, "%s: write failed: %s", tmp, strerror(errno));
            close(fd);
            unlink(tmp);
            return rc;
        }
        put += (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        unlink(tmp);
        return err_set(e, ERR_IO, "%s: fsync/close failed: %s", tmp, strerror(errno));
    }
    if (rename(tmp, path) != 0) {
        int rc = err_set(e, ERR_IO, "%s: cannot rename into place: %s", path, strerror(errno));
        unlink(tmp);
        return rc;
    }
    return fs_fsync_dir_of(path, e);
}

int fs_mkdirs(const char *path, err_t *e)
{
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
        return err_set(e, ERR_ARG, "%s: path too long", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            return err_set(e, ERR_IO, "%s: cannot create directory: %s", buf, strerror(errno));
        *p = '/';
    }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST)
        return err_set(e, ERR_IO, "%s: cannot create directory: %s", buf, strerror(errno));
    return 0;
}

int fs_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

int fs_join(char *out, size_t cap, const char *dir, const char *name, err_t *e)
{
    int n = (dir && *dir) ? snprintf(out, cap, "%s/%s", dir, name) : snprintf(out, cap, "%s", name);
    if (n < 0 || (size_t)n >= cap) return err_set(e, ERR_ARG, "%s/%s: path too long", dir, name);
    return 0;
}

void *mem_alloc_aligned(size_t bytes)
{
    void *p = NULL;
    size_t rounded = (bytes + 63) & ~(size_t)63;
    if (posix_memalign(&p, 64, rounded ? rounded : 64) != 0) return NULL;
    memset(p, 0, rounded);
    return p;
}

void hash_hex128(const void *data, size_t len, char out[33])
{
    XXH128_hash_t h = XXH3_128bits(data, len);
    snprintf(out, 33, "%016llx%016llx", (unsigned long long)h.high64, (unsigned long long)h.low64);
}

uint64_t hash64(const void *data, size_t len) { return XXH3_64bits(data, len); }
