/* caption_sink: the resumable frame-per-commit writer of the caption dump.
 * The reference for "what survives a kill" is independent of the sink's
 * own scan: the file length after each commit (stat) marks the frame
 * boundaries, and a file cut at ANY byte must recover exactly the commits
 * whose frames end at or before the cut; zio_read_all (zstd's streaming
 * decoder) must then read the repaired file as the concatenation of them. */
#include "caption/caption_sink.h"
#include "io/zio.h"
#include "check.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#define N_COMMITS 4

typedef struct {
    char text[8192];
    size_t len;
    int lines;
} collected;

static int collect(void *ctx, const char *line, size_t len, err_t *e)
{
    (void)e;
    collected *c = ctx;
    if (c->len + len + 1 >= sizeof c->text) return ERR_LIMIT;
    memcpy(c->text + c->len, line, len);
    c->text[c->len + len] = '\n';
    c->len += len + 1;
    c->text[c->len] = 0;
    c->lines++;
    return 0;
}

static long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

static void copy_prefix(const char *from, const char *to, long n)
{
    uint8_t *buf = malloc((size_t)n + 1);
    FILE *f = fopen(from, "rb");
    size_t got = f ? fread(buf, 1, (size_t)n, f) : 0;
    if (f) fclose(f);
    FILE *g = fopen(to, "wb");
    if (g) {
        fwrite(buf, 1, got, g);
        fclose(g);
    }
    free(buf);
}

/* Commit i holds lines "{"k":"i-j"}" for j < i + 1 (sizes differ). */
static void expected_text(int commits, char *out, size_t cap)
{
    size_t n = 0;
    out[0] = 0;
    for (int i = 0; i < commits; i++)
        for (int j = 0; j <= i; j++) n += (size_t)snprintf(out + n, cap - n, "{\"k\":\"%d-%d\"}\n", i, j);
}

static void write_commits(const char *path, long ends[N_COMMITS])
{
    err_t e = {0};
    caption_sink *s = NULL;
    CHECK_OK(caption_sink_open(&s, path, 3, NULL, NULL, &e), &e);
    if (!s) return;
    for (int i = 0; i < N_COMMITS; i++) {
        char line[64];
        for (int j = 0; j <= i; j++) {
            int n = snprintf(line, sizeof line, "{\"k\":\"%d-%d\"}", i, j);
            CHECK_OK(caption_sink_add(s, line, (size_t)n, &e), &e);
        }
        CHECK_OK(caption_sink_commit(s, &e), &e);
        ends[i] = file_size(path);
    }
    CHECK_OK(caption_sink_commit(s, &e), &e); /* nothing buffered: no frame */
    CHECK(file_size(path) == ends[N_COMMITS - 1]);
    caption_sink_close(s);
}

typedef struct {
    char dir[4096], path[4200];
    long ends[N_COMMITS]; /* file length after each commit */
} sink_file;

/* A new scratch dir NAME holding a.jsonl.zst written by write_commits. */
static void sink_file_make(sink_file *f, const char *name)
{
    check_tmpdir(f->dir, sizeof f->dir, name);
    snprintf(f->path, sizeof f->path, "%s/a.jsonl.zst", f->dir);
    write_commits(f->path, f->ends);
}

static void test_reopen_keeps_everything(void)
{
    char want[8192];
    sink_file f;
    sink_file_make(&f, "caption_sink_reopen");
    err_t e = {0};
    collected got = {0};
    caption_sink *s = NULL;
    CHECK_OK(caption_sink_open(&s, f.path, 3, collect, &got, &e), &e);
    expected_text(N_COMMITS, want, sizeof want);
    CHECK(s && caption_sink_recovered_frames(s) == N_COMMITS);
    CHECK(s && caption_sink_cut_bytes(s) == 0);
    CHECK(!strcmp(got.text, want));
    /* appending after a reopen continues the same stream */
    CHECK_OK(caption_sink_add(s, "{\"k\":\"tail\"}", 12, &e), &e);
    CHECK_OK(caption_sink_commit(s, &e), &e);
    caption_sink_close(s);
    uint8_t *all = NULL;
    size_t len = 0;
    CHECK_OK(zio_read_all(f.path, &all, &len, &e), &e);
    strcat(want, "{\"k\":\"tail\"}\n");
    CHECK(all && len == strlen(want) && !memcmp(all, want, len));
    free(all);
}

/* A kill can stop the file at any byte: try every one. */
static void test_every_cut(void)
{
    char cut[4300], want[8192];
    sink_file f;
    sink_file_make(&f, "caption_sink_cut");
    snprintf(cut, sizeof cut, "%s/cut.jsonl.zst", f.dir);
    int bad = 0;
    for (long n = 0; n <= f.ends[N_COMMITS - 1] && bad < 5; n++) {
        copy_prefix(f.path, cut, n);
        int complete = 0;
        while (complete < N_COMMITS && f.ends[complete] <= n) complete++;
        long keep = complete ? f.ends[complete - 1] : 0;
        err_t e = {0};
        collected got = {0};
        caption_sink *s = NULL;
        int rc = caption_sink_open(&s, cut, 3, collect, &got, &e);
        expected_text(complete, want, sizeof want);
        int ok = rc == 0 && !strcmp(got.text, want) && file_size(cut) == keep &&
                 caption_sink_recovered_frames(s) == (uint64_t)complete &&
                 caption_sink_cut_bytes(s) == (uint64_t)(n - keep);
        /* a commit after the repair is readable with everything before it */
        if (ok) ok = caption_sink_add(s, "{\"k\":\"x\"}", 9, &e) == 0 && caption_sink_commit(s, &e) == 0;
        caption_sink_close(s);
        if (ok) {
            uint8_t *all = NULL;
            size_t len = 0;
            strcat(want, "{\"k\":\"x\"}\n");
            ok = zio_read_all(cut, &all, &len, &e) == 0 && len == strlen(want) && !memcmp(all, want, len);
            free(all);
        }
        CHECK_MSG(ok, "cut at byte %ld of %ld: rc %d (%s), recovered %d lines", n, f.ends[N_COMMITS - 1], rc, e.msg,
                  got.lines);
        bad += !ok;
    }
}

/* A flipped byte inside the last frame fails its checksum: the frame is
 * dropped like a torn one, the earlier frames stay. */
static void test_corrupt_last_frame(void)
{
    char want[8192];
    sink_file f;
    sink_file_make(&f, "caption_sink_corrupt");
    int fd = open(f.path, O_RDWR);
    uint8_t byte = 0;
    off_t at = (off_t)(f.ends[N_COMMITS - 2] + (f.ends[N_COMMITS - 1] - f.ends[N_COMMITS - 2]) / 2);
    CHECK(fd >= 0 && pread(fd, &byte, 1, at) == 1);
    byte ^= 0x5a;
    CHECK(fd >= 0 && pwrite(fd, &byte, 1, at) == 1);
    if (fd >= 0) close(fd);
    err_t e = {0};
    collected got = {0};
    caption_sink *s = NULL;
    CHECK_OK(caption_sink_open(&s, f.path, 3, collect, &got, &e), &e);
    expected_text(N_COMMITS - 1, want, sizeof want);
    CHECK(!strcmp(got.text, want));
    CHECK(file_size(f.path) == f.ends[N_COMMITS - 2]);
    caption_sink_close(s);
}

static int stop_at_second(void *ctx, const char *line, size_t len, err_t *e)
{
    (void)line;
    (void)len;
    int *n = ctx;
    return ++*n == 2 ? err_set(e, ERR_FORMAT, "line 2 rejected") : 0;
}

static void test_errors(void)
{
    sink_file f;
    sink_file_make(&f, "caption_sink_errors");
    err_t e = {0};
    caption_sink *s = NULL;
    int n = 0;
    /* the caller's verdict on a recovered line stops the open */
    CHECK(caption_sink_open(&s, f.path, 3, stop_at_second, &n, &e) == ERR_FORMAT && !s);
    CHECK(strstr(e.msg, "line 2 rejected") != NULL);
    CHECK(file_size(f.path) == f.ends[N_COMMITS - 1]);
    CHECK_OK(caption_sink_open(&s, f.path, 3, NULL, NULL, &e), &e);
    CHECK(s && caption_sink_add(s, "a\nb", 3, &e) == ERR_INTERNAL);
    caption_sink_close(s);
    char missing[4300];
    snprintf(missing, sizeof missing, "%s/no/such/dir/x.zst", f.dir);
    CHECK(caption_sink_open(&s, missing, 3, NULL, NULL, &e) == ERR_IO && strstr(e.msg, missing));
}

int main(void)
{
    CHECK_RUN(test_reopen_keeps_everything);
    CHECK_RUN(test_every_cut);
    CHECK_RUN(test_corrupt_last_frame);
    CHECK_RUN(test_errors);
    return check_summary();
}
