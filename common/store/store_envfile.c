#include "store/store_envfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ENVFILE_W sizeof(size_t)
#define ENVFILE_META (ENVFILE_W + 8)             /* the meta record, after the page header */
#define ENVFILE_PSIZE (ENVFILE_META + 8 + 2 * ENVFILE_W)
#define ENVFILE_LAST_PG (ENVFILE_PSIZE + 2 * (8 + 5 * ENVFILE_W))
#define ENVFILE_TXNID (ENVFILE_LAST_PG + ENVFILE_W)
#define ENVFILE_NEED (ENVFILE_TXNID + ENVFILE_W) /* bytes of a meta page we read */
#define ENVFILE_P_META 0x08
#define ENVFILE_MAGIC 0xBEEFC0DEu
#define ENVFILE_VERSION 1u

typedef struct {
    uint32_t psize;
    size_t last_pg, txnid;
} envfile_meta;

static int envfile_read(int fd, void *buf, size_t n, off_t off, const char *path, const char *what, err_t *e)
{
    ssize_t r;
    do r = pread(fd, buf, n, off);
    while (r < 0 && errno == EINTR);
    if (r < 0) return err_set(e, ERR_IO, "%s: cannot read %s: %s", path, what, strerror(errno));
    if ((size_t)r < n)
        return err_set(e, ERR_FORMAT, "%s: ends inside %s (byte %lld): truncated LMDB data file", path, what,
                       (long long)off + (long long)r);
    return 0;
}

static int envfile_parse(const unsigned char *p, const char *path, const char *what, envfile_meta *m, err_t *e)
{
    uint16_t flags;
    uint32_t magic, version;
    memcpy(&flags, p + ENVFILE_W + 2, sizeof flags);
    memcpy(&magic, p + ENVFILE_META, sizeof magic);
    memcpy(&version, p + ENVFILE_META + 4, sizeof version);
    memcpy(&m->psize, p + ENVFILE_PSIZE, sizeof m->psize);
    memcpy(&m->last_pg, p + ENVFILE_LAST_PG, sizeof m->last_pg);
    memcpy(&m->txnid, p + ENVFILE_TXNID, sizeof m->txnid);
    if (!(flags & ENVFILE_P_META) || magic != ENVFILE_MAGIC || version != ENVFILE_VERSION)
        return err_set(e, ERR_FORMAT, "%s: %s is not an LMDB meta page (flags 0x%x, magic 0x%08x, version %u)", path,
                       what, flags, magic, version);
    if (m->psize < 512 || m->psize > 65536 || (m->psize & (m->psize - 1)))
        return err_set(e, ERR_FORMAT, "%s: %s gives page size %u", path, what, m->psize);
    return 0;
}

int store_check_env_file(const char *path, err_t *e)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return errno == ENOENT ? 0 : err_set(e, ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    unsigned char page[ENVFILE_NEED];
    envfile_meta m[2];
    int rc = fstat(fd, &st) ? err_set(e, ERR_IO, "%s: cannot stat: %s", path, strerror(errno)) : 0;
    if (!rc && !S_ISREG(st.st_mode)) rc = err_set(e, ERR_FORMAT, "%s: not a regular file", path);
    if (!rc && st.st_size == 0) {
        close(fd);
        return 0;
    }
    if (!rc) rc = envfile_read(fd, page, sizeof page, 0, path, "meta page 0", e);
    if (!rc) rc = envfile_parse(page, path, "meta page 0", &m[0], e);
    if (!rc) rc = envfile_read(fd, page, sizeof page, (off_t)m[0].psize, path, "meta page 1", e);
    if (!rc) rc = envfile_parse(page, path, "meta page 1", &m[1], e);
    /* After the meta pages: a concurrent commit only makes the file longer. */
    if (!rc && fstat(fd, &st)) rc = err_set(e, ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
    close(fd);
    if (rc) return rc;
    const envfile_meta *cur = m[1].txnid > m[0].txnid ? &m[1] : &m[0];
    unsigned long long need = ((unsigned long long)cur->last_pg + 1) * cur->psize;
    if (cur->last_pg >= (1ull << 48) || (unsigned long long)st.st_size < need)
        return err_set(e, ERR_FORMAT,
                       "%s: %lld bytes, but its meta page (txn %llu) uses %llu pages of %u bytes = %llu: the file "
                       "was truncated; move this environment away (its entries are lost) and run extract again",
                       path, (long long)st.st_size, (unsigned long long)cur->txnid,
                       (unsigned long long)cur->last_pg + 1, cur->psize, need);
    return 0;
}
