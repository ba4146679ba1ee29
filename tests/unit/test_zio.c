/* zio: reads what the zstd command-line tool wrote (tests/gen), line for
 * line; detects a truncated frame; round-trips many lines (incl. one longer
 * than zstd's block) through our writer; the writer is atomic. */
#include "check.h"
#include "core/fsutil.h"
#include "io/zio.h"

static void test_reads_cli_output(void)
{
    char pz[4096], pt[4096];
    err_t e = {0};
    uint8_t *text;
    size_t tlen;
    CHECK_OK(fs_read_all(check_fixture(pt, sizeof pt, "io/lines.txt"), &text, &tlen, &e), &e);
    zio_reader *r;
    CHECK_OK(zio_reader_open(&r, check_fixture(pz, sizeof pz, "io/lines.txt.zst"), &e), &e);
    const char *line;
    size_t len, pos = 0;
    int n = 0, rc, mismatch = 0;
    while ((rc = zio_read_line(r, &line, &len, &e)) == 1) {
        /* each line equals the text up to the next '\n' (or the end) */
        const uint8_t *nl = memchr(text + pos, '\n', tlen - pos);
        size_t want = nl ? (size_t)(nl - (text + pos)) : tlen - pos;
        if (want != len || memcmp(line, text + pos, len) || line[len] != 0) mismatch++;
        pos += want + 1;
        n++;
    }
    CHECK_OK(rc, &e);
    CHECK(mismatch == 0);
    CHECK(n == 1002); /* expected.json: lines.txt.zst count */
    zio_reader_close(r);
    uint8_t *all;
    size_t alen;
    CHECK_OK(zio_read_all(pz, &all, &alen, &e), &e);
    CHECK(alen == tlen && !memcmp(all, text, tlen));
    free(all);
    free(text);
}

static void test_truncated_detected(void)
{
    char p[4096];
    err_t e = {0};
    zio_reader *r;
    CHECK_OK(zio_reader_open(&r, check_fixture(p, sizeof p, "io/lines_truncated.zst"), &e), &e);
    const char *line;
    size_t len;
    int rc;
    while ((rc = zio_read_line(r, &line, &len, &e)) == 1) {}
    CHECK(rc == ERR_FORMAT);
    CHECK(strstr(e.msg, p) != NULL && strstr(e.msg, "truncated") != NULL);
    zio_reader_close(r);
    uint8_t *all;
    size_t alen;
    CHECK(zio_read_all(p, &all, &alen, &e) == ERR_FORMAT);
}

static void test_two_frames(void)
{
    char p[4096];
    err_t e = {0};
    uint8_t *all;
    size_t alen;
    CHECK_OK(zio_read_all(check_fixture(p, sizeof p, "io/two_frames.zst"), &all, &alen, &e), &e);
    CHECK(alen == 20 && !memcmp(all, "frame one\nframe two\n", 20));
    free(all);
}

static void test_round_trip_and_atomic(void)
{
    char dir[4096], path[4200], tmp[4300];
    check_tmpdir(dir, sizeof dir, "zio");
    snprintf(path, sizeof path, "%s/out.zst", dir);
    err_t e = {0};
    zio_writer *w;
    CHECK_OK(zio_writer_open(&w, path, 3, &e), &e);
    size_t big = 300000;
    char *long_line = malloc(big + 1);
    for (size_t i = 0; i < big; i++) long_line[i] = (char)('a' + i % 26);
    long_line[big] = '\n';
    char buf[64];
    for (int i = 0; i < 20000; i++) {
        int n = snprintf(buf, sizeof buf, "record %d %.*s\n", i, i % 30, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
        CHECK_OK(zio_write(w, buf, (size_t)n, &e), &e);
        if (i == 10000) CHECK_OK(zio_write(w, long_line, big + 1, &e), &e);
    }
    CHECK(!fs_exists(path)); /* not visible before commit */
    CHECK_OK(zio_writer_commit(w, &e), &e);
    CHECK(fs_exists(path));
    zio_reader *r;
    CHECK_OK(zio_reader_open(&r, path, &e), &e);
    const char *line;
    size_t len;
    int i = 0, bad = 0, rc;
    while ((rc = zio_read_line(r, &line, &len, &e)) == 1) {
        if (i == 10001) {
            if (len != big || memcmp(line, long_line, big)) bad++;
        } else {
            int k = i > 10001 ? i - 1 : i;
            int n = snprintf(buf, sizeof buf, "record %d %.*s", k, k % 30, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
            if ((size_t)n != len || memcmp(buf, line, len)) bad++;
        }
        i++;
    }
    CHECK_OK(rc, &e);
    CHECK(i == 20001 && bad == 0);
    zio_reader_close(r);
    free(long_line);

    /* abort leaves neither the target nor the temporary file */
    snprintf(path, sizeof path, "%s/aborted.zst", dir);
    CHECK_OK(zio_writer_open(&w, path, 1, &e), &e);
    CHECK_OK(zio_write(w, "x\n", 2, &e), &e);
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
    CHECK(fs_exists(tmp));
    zio_writer_abort(w);
    CHECK(!fs_exists(tmp) && !fs_exists(path));

    /* raw mode: same atomicity, bytes as given */
    snprintf(path, sizeof path, "%s/raw.bin", dir);
    CHECK_OK(zio_writer_open_raw(&w, path, &e), &e);
    CHECK_OK(zio_write(w, "hello ", 6, &e), &e);
    CHECK_OK(zio_write(w, "raw", 3, &e), &e);
    CHECK_OK(zio_writer_commit(w, &e), &e);
    uint8_t *data;
    size_t dlen;
    CHECK_OK(fs_read_all(path, &data, &dlen, &e), &e);
    CHECK(dlen == 9 && !memcmp(data, "hello raw", 9));
    free(data);
}

static void test_not_zstd(void)
{
    char p[4096];
    err_t e = {0};
    uint8_t *all;
    size_t alen;
    CHECK(zio_read_all(check_fixture(p, sizeof p, "io/lines.txt"), &all, &alen, &e) == ERR_FORMAT);
    CHECK(strstr(e.msg, p) != NULL);
    CHECK(zio_read_all("/nonexistent.zst", &all, &alen, &e) == ERR_IO);
}

int main(void)
{
    CHECK_RUN(test_reads_cli_output);
    CHECK_RUN(test_truncated_detected);
    CHECK_RUN(test_two_frames);
    CHECK_RUN(test_round_trip_and_atomic);
    CHECK_RUN(test_not_zstd);
    return check_summary();
}
