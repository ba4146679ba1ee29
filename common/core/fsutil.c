#include "core/fsutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

int fs_open_regular(const char *path, int *fd, uint64_t *size, err_t *e)
{
    *fd = -1;
    *size = 0;
    /* O_NONBLOCK: opening a FIFO without a writer would block forever;
     * cleared once the file is known to be regular. */
    int f = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (f < 0) return err_set(e, ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(f, &st) != 0) {
        int rc = err_set(e, ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
        close(f);
        return rc;
    }
    if (!S_ISREG(st.st_mode)) {
        close(f);
        return err_set(e, ERR_IO, "%s: not a regular file", path);
    }
    int fl = fcntl(f, F_GETFL);
    if (fl < 0 || fcntl(f, F_SETFL, fl & ~O_NONBLOCK) != 0) {
        int rc = err_set(e, ERR_IO, "%s: cannot clear O_NONBLOCK: %s", path, strerror(errno));
        close(f);
        return rc;
    }
    *fd = f;
    *size = (uint64_t)st.st_size;
    return 0;
}

int fs_pread_exact(int fd, void *dst, size_t n, uint64_t off, const char *path, err_t *e)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = pread(fd, (uint8_t *)dst + got, n - got, (off_t)(off + got));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0)
            return err_set(e, ERR_IO, "%s: read failed at byte %llu: %s", path, (unsigned long long)(off + got),
                           r < 0 ? strerror(errno) : "file shrank while reading");
        got += (size_t)r;
    }
    return 0;
}

int fs_pread_alloc(int fd, uint64_t off, size_t n, const char *path, uint8_t **data, err_t *e)
{
    *data = NULL;
    if (n == SIZE_MAX) return err_set(e, ERR_LIMIT, "%s: %zu bytes do not fit in memory", path, n);
    uint8_t *buf = malloc(n + 1);
    if (!buf) return err_set(e, ERR_NOMEM, "%s: cannot allocate %zu bytes", path, n + 1);
    int rc = fs_pread_exact(fd, buf, n, off, path, e);
    if (rc) {
        free(buf);
        return rc;
    }
    buf[n] = 0;
    *data = buf;
    return 0;
}

int fs_read_all(const char *path, uint8_t **data, size_t *len, err_t *e)
{
    *data = NULL;
    *len = 0;
    int fd;
    uint64_t size;
    int rc = fs_open_regular(path, &fd, &size, e);
    if (rc) return rc;
    rc = fs_pread_alloc(fd, 0, (size_t)size, path, data, e);
    close(fd);
    if (!rc) *len = (size_t)size;
    return rc;
}

int fs_map_file(const char *path, const uint8_t **map, size_t *len, err_t *e)
{
    *map = NULL;
    *len = 0;
    int fd;
    uint64_t size;
    int rc = fs_open_regular(path, &fd, &size, e);
    if (rc) return rc;
    if (size == 0) {
        close(fd);
        return 0;
    }
    void *m = mmap(NULL, (size_t)size, PROT_READ, MAP_PRIVATE, fd, 0);
    int mmap_errno = errno;
    close(fd);
    if (m == MAP_FAILED) return err_set(e, ERR_IO, "%s: cannot mmap: %s", path, strerror(mmap_errno));
    *map = m;
    *len = (size_t)size;
    return 0;
}

void fs_unmap(const uint8_t *map, size_t len)
{
    if (map) munmap((void *)map, len);
}

int fs_fsync_dir_of(const char *path, err_t *e)
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

int fs_tmp_create(const char *path, char *tmp, size_t cap, int *fd, err_t *e)
{
    *fd = -1;
    int n = snprintf(tmp, cap, "%s.tmp.%d", path, (int)getpid());
    if (n < 0 || (size_t)n >= cap) {
        tmp[0] = 0; /* a cut name might be someone else's file: nothing to remove */
        return err_set(e, ERR_ARG, "%s: path too long", path);
    }
    *fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (*fd < 0) return err_set(e, ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
    return 0;
}

int fs_write_full(int fd, const void *data, size_t len, const char *path, err_t *e)
{
    const uint8_t *p = data;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return err_set(e, ERR_IO, "%s: write failed: %s", path, strerror(errno));
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

int fs_tmp_commit(int fd, const char *tmp, const char *path, err_t *e)
{
    int rc = 0;
    if (fsync(fd) != 0) rc = err_set(e, ERR_IO, "%s: fsync failed: %s", tmp, strerror(errno));
    if (close(fd) != 0 && !rc) rc = err_set(e, ERR_IO, "%s: close failed: %s", tmp, strerror(errno));
    if (!rc && rename(tmp, path) != 0) rc = err_set(e, ERR_IO, "%s: cannot rename into place: %s", path, strerror(errno));
    if (rc) {
        unlink(tmp);
        return rc;
    }
    return fs_fsync_dir_of(path, e);
}

int fs_write_atomic(const char *path, const void *data, size_t len, err_t *e)
{
    char tmp[4200];
    int fd;
    int rc = fs_tmp_create(path, tmp, sizeof tmp, &fd, e);
    if (rc) return rc;
    rc = fs_write_full(fd, data, len, tmp, e);
    if (rc) {
        close(fd);
        unlink(tmp);
        return rc;
    }
    return fs_tmp_commit(fd, tmp, path, e);
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

int fs_empty_dir(const char *dir, err_t *e)
{
    DIR *d = opendir(dir);
    if (!d) return errno == ENOENT ? 0 : err_set(e, ERR_IO, "%s: cannot open directory: %s", dir, strerror(errno));
    struct dirent *de;
    int rc = 0;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        char path[8192];
        if (snprintf(path, sizeof path, "%s/%s", dir, de->d_name) >= (int)sizeof path) {
            if (!rc) rc = err_set(e, ERR_ARG, "%s/%s: path too long", dir, de->d_name);
        } else if (unlink(path) && errno != ENOENT && !rc) {
            rc = err_set(e, ERR_IO, "%s: cannot remove: %s", path, strerror(errno));
        }
    }
    closedir(d);
    return rc;
}

int fs_dir_count(const char *dir, size_t *n, char *first, size_t cap, err_t *e)
{
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) return errno == ENOENT ? 0 : err_set(e, ERR_IO, "%s: cannot open: %s", dir, strerror(errno));
    struct dirent *ent;
    while ((ent = readdir(d))) {
        if (!strcmp(ent->d_name, ".") || !strcmp(ent->d_name, "..")) continue;
        if (!(*n)++ && first) snprintf(first, cap, "%s", ent->d_name);
    }
    closedir(d);
    return 0;
}

int fs_is_regular(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
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

int fs_hash_file128(const char *path, char out[33], uint64_t *size, err_t *e)
{
    int fd;
    uint64_t len;
    int rc = fs_open_regular(path, &fd, &len, e);
    if (rc) return rc;
    XXH3_state_t *st = XXH3_createState();
    uint8_t *buf = malloc(1 << 20);
    if (!st || !buf) rc = err_set(e, ERR_NOMEM, "%s: cannot allocate a hash buffer", path);
    if (!rc) XXH3_128bits_reset(st);
    for (uint64_t off = 0; !rc && off < len;) {
        size_t n = len - off < (1 << 20) ? (size_t)(len - off) : (1 << 20);
        rc = fs_pread_exact(fd, buf, n, off, path, e);
        if (!rc) XXH3_128bits_update(st, buf, n);
        off += n;
    }
    if (!rc) {
        XXH128_hash_t h = XXH3_128bits_digest(st);
        snprintf(out, 33, "%016llx%016llx", (unsigned long long)h.high64, (unsigned long long)h.low64);
        *size = len;
    }
    XXH3_freeState(st);
    free(buf);
    close(fd);
    return rc;
}

int fs_scratch_template(char *out, size_t cap, const char *prefix, err_t *e)
{
    const char *dir = getenv("TMPDIR");
    int n = snprintf(out, cap, "%s/%s.", dir && *dir ? dir : "/tmp", prefix);
    if (n < 0 || (size_t)n + 7 > cap) return err_set(e, ERR_ARG, "%s: scratch path too long", prefix);
    memset(out + n, 'X', 6); /* mkstemp's template */
    out[n + 6] = 0;
    return 0;
}

void mem_huge_heap(size_t bytes)
{
    const size_t huge = (size_t)2 << 20;
    bytes = (bytes + huge - 1) / huge * huge;
    /* malloc then grows the heap by `bytes` at once, never trims it back,
     * and serves big blocks from it too, so the advice covers them all */
    if (bytes > INT_MAX || !mallopt(M_TOP_PAD, (int)bytes) || !mallopt(M_TRIM_THRESHOLD, INT_MAX) ||
        !mallopt(M_MMAP_THRESHOLD, 32 << 20))
        return;
    /* more than the heap's free top: malloc grows it now, by bytes more */
    void *volatile grow = malloc(huge); /* volatile: the compiler drops a malloc-free pair */
    free(grow);
    uintptr_t end = (uintptr_t)sbrk(0), lo = (end - bytes + huge - 1) / huge * huge; /* checked below */
    if (end != (uintptr_t)-1 && end > bytes && lo < end) madvise((void *)lo, end - lo, MADV_HUGEPAGE);
}
