/* core: errors keep code and gain context; atomic writes replace whole files;
 * mkdirs is idempotent; hashes are stable across calls and differ on change. */
#include "check.h"
#include "core/fsutil.h"
#include "core/log.h"

static void test_err_wrap_keeps_code(void)
{
    err_t e = {0};
    int rc = err_set(&e, ERR_FORMAT, "field 'caption' is not a string");
    CHECK(rc == ERR_FORMAT);
    rc = err_wrap(&e, "captions.json: annotation %d", 17);
    CHECK(rc == ERR_FORMAT);
    CHECK(!strcmp(e.msg, "captions.json: annotation 17: field 'caption' is not a string"));
}

static void test_atomic_write_and_read(void)
{
    char dir[4096], path[4200];
    check_tmpdir(dir, sizeof dir, "core");
    snprintf(path, sizeof path, "%s/a/b/c", dir);
    err_t e = {0};
    CHECK_OK(fs_mkdirs(path, &e), &e);
    CHECK_OK(fs_mkdirs(path, &e), &e);
    snprintf(path, sizeof path, "%s/a/b/c/file.txt", dir);
    CHECK_OK(fs_write_atomic(path, "first version", 13, &e), &e);
    CHECK_OK(fs_write_atomic(path, "second", 6, &e), &e);
    uint8_t *data = NULL;
    size_t len = 0;
    CHECK_OK(fs_read_all(path, &data, &len, &e), &e);
    CHECK(len == 6 && data && !memcmp(data, "second", 6));
    free(data);
    snprintf(path, sizeof path, "%s/missing", dir);
    CHECK(fs_read_all(path, &data, &len, &e) == ERR_IO);
    CHECK(strstr(e.msg, path) != NULL);
}

static void test_hash(void)
{
    char a[33], b[33], c[33];
    hash_hex128("abc", 3, a);
    hash_hex128("abc", 3, b);
    hash_hex128("abd", 3, c);
    CHECK(strlen(a) == 32 && !strcmp(a, b) && strcmp(a, c));
}

int main(void)
{
    CHECK_RUN(test_err_wrap_keeps_code);
    CHECK_RUN(test_atomic_write_and_read);
    CHECK_RUN(test_hash);
    return check_summary();
}
