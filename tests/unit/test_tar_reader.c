/* tar_reader: the member list (name, data offset, size, type) of shards
 * written by Python's tarfile in pax, GNU and ustar formats (long names
 * via pax 'path', GNU 'L' and the ustar prefix) equals what tarfile itself
 * reports; member bytes come back by offset; a truncated shard and a bad
 * header checksum are ERR_FORMAT naming the shard and the member. */
#include "check.h"
#include "io/json_util.h"
#include "io/tar_reader.h"

/* Open fixture io/FILE (its path into p); NULL, with the CHECK failed,
 * when it does not open. */
static tar_reader *open_fixture(const char *file, char *p, size_t cap)
{
    char rel[256];
    snprintf(rel, sizeof rel, "io/%s", file);
    check_fixture(p, cap, rel);
    err_t e = {0};
    tar_reader *r = NULL;
    CHECK_OK(tar_open(&r, p, &e), &e);
    return r;
}

static void check_listing(const char *file, const json_t *want)
{
    char p[4096];
    err_t e = {0};
    tar_reader *r = open_fixture(file, p, sizeof p);
    if (!r) return;
    tar_member m;
    size_t i = 0;
    int rc;
    while ((rc = tar_next(r, &m, &e)) == 1) {
        json_t *w = json_array_get(want, i++);
        CHECK_MSG(w != NULL, "%s: extra member %s", file, m.name);
        if (!w) continue;
        CHECK_MSG(!strcmp(m.name, json_string_value(json_object_get(w, "name"))), "%s: %s", file, m.name);
        CHECK_MSG(m.data_offset == (uint64_t)json_integer_value(json_object_get(w, "offset")), "%s: %s offset %llu", file, m.name,
                  (unsigned long long)m.data_offset);
        CHECK(m.size == (uint64_t)json_integer_value(json_object_get(w, "size")));
        CHECK(m.type == json_string_value(json_object_get(w, "type"))[0]);
    }
    CHECK_OK(rc, &e);
    CHECK_MSG(i == json_array_size(want), "%s: %zu members", file, i);
    CHECK(tar_next(r, &m, &e) == 0); /* stays at the end */
    tar_close(r);
}

static void test_listings(void)
{
    char pe[4096];
    err_t e = {0};
    json_t *exp = NULL, *tars = NULL;
    CHECK_OK(json_load_path(&exp, check_fixture(pe, sizeof pe, "io/expected.json"), &e), &e);
    CHECK_OK(json_get_object(exp, "tar", &tars, &e), &e);
    const char *file;
    json_t *want;
    if (tars) json_object_foreach(tars, file, want) check_listing(file, want);
    CHECK(json_object_size(tars) == 3);
    json_decref(exp);
}

static void test_read_range(void)
{
    char p[4096];
    err_t e = {0};
    tar_reader *r = open_fixture("shard_gnu.tar", p, sizeof p);
    if (!r) return;
    tar_member m;
    int found = 0;
    while (tar_next(r, &m, &e) == 1) {
        if (strcmp(m.name, "000000.txt")) continue;
        uint8_t *d;
        CHECK_OK(tar_read_range(p, m.data_offset, m.size, &d, &e), &e);
        CHECK(d && !memcmp(d, "a cat on a mat", 14) && d[14] == 0);
        free(d);
        found = 1;
    }
    tar_close(r);
    CHECK(found);
    uint8_t *d;
    CHECK(tar_read_range(p, 10000, 1000, &d, &e) == ERR_FORMAT);
    CHECK(strstr(e.msg, p) && d == NULL);
}

static void expect_error(const char *file, const char *needle)
{
    char p[4096];
    err_t e = {0};
    tar_reader *r = open_fixture(file, p, sizeof p);
    if (!r) return;
    tar_member m;
    int rc;
    while ((rc = tar_next(r, &m, &e)) == 1) {}
    CHECK_MSG(rc == ERR_FORMAT, "%s: rc %d", file, rc);
    CHECK_MSG(strstr(e.msg, p) && strstr(e.msg, needle), "%s: '%s' lacks '%s'", file, e.msg, needle);
    tar_close(r);
}

static void test_truncated_and_bad_checksum(void)
{
    expect_error("truncated.tar", "000002.caption_with_a_long_name.txt': truncated");
    expect_error("badsum.tar", "member '000000.jpg': bad header checksum");
}

static void test_buffer_variant(void)
{
    uint8_t block[1024] = {0};
    err_t e = {0};
    tar_reader *r;
    CHECK_OK(tar_open_buffer(&r, block, sizeof block, "zeros.tar", &e), &e);
    tar_member m;
    CHECK(tar_next(r, &m, &e) == 0); /* two zero blocks: empty archive */
    tar_close(r);
    CHECK_OK(tar_open_buffer(&r, block, 100, "short.tar", &e), &e);
    CHECK(tar_next(r, &m, &e) == ERR_FORMAT);
    CHECK(strstr(e.msg, "short.tar") != NULL);
    tar_close(r);
}

int main(void)
{
    CHECK_RUN(test_listings);
    CHECK_RUN(test_read_range);
    CHECK_RUN(test_truncated_and_bad_checksum);
    CHECK_RUN(test_buffer_variant);
    return check_summary();
}
