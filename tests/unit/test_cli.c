/* cli: numeric flags are range-checked on the full text (no wrap to 32
 * bits, no strto* leniency: blanks, '+', hex, inf/nan, trailing text), the
 * message names the flag, the value and the range, and *out is untouched
 * on refusal. */
#include <limits.h>
#include <stdint.h>

#include "check.h"
#include "core/cli.h"

static void test_int(void)
{
    err_t e = {0};
    int v = 7;
    CHECK_OK(cli_parse_int("epochs", "2147483647", 1, INT_MAX, &v, &e), &e);
    CHECK(v == INT_MAX);
    CHECK_OK(cli_parse_int("n", "-5", -10, 10, &v, &e), &e);
    CHECK(v == -5);
    v = 7;
    CHECK(cli_parse_int("epochs", "2147483648", 1, INT_MAX, &v, &e) == ERR_ARG);
    CHECK(v == 7);
    CHECK(!strcmp(e.msg, "--epochs: '2147483648' is not an integer in 1..2147483647"));
    const char *bad[] = {"", " 1", "+1", "1 ", "0x10", "1e3", "1.0", "-", "4294967297", "99999999999999999999999",
                         "-99999999999999999999999", "0"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        CHECK_MSG(cli_parse_int("batch", bad[i], 1, 4096, &v, &e) == ERR_ARG, "'%s' accepted", bad[i]);
        CHECK(v == 7);
        CHECK(strstr(e.msg, "--batch: '") == e.msg && strstr(e.msg, "is not an integer in 1..4096"));
    }
}

static void test_long(void)
{
    err_t e = {0};
    long v = 0;
    CHECK_OK(cli_parse_long("warmup", "1099511627776", 0, 1L << 40, &v, &e), &e);
    CHECK(v == 1L << 40);
    CHECK(cli_parse_long("warmup", "1099511627777", 0, 1L << 40, &v, &e) == ERR_ARG);
    CHECK(cli_parse_long("warmup", "-1", 0, 1L << 40, &v, &e) == ERR_ARG);
}

static void test_unsigned(void)
{
    err_t e = {0};
    uint64_t v = 3;
    CHECK_OK(cli_parse_u64("seed", "18446744073709551615", 0, UINT64_MAX, &v, &e), &e);
    CHECK(v == UINT64_MAX);
    v = 3;
    CHECK(cli_parse_u64("seed", "18446744073709551616", 0, UINT64_MAX, &v, &e) == ERR_ARG);
    CHECK(!strcmp(e.msg, "--seed: '18446744073709551616' is not an integer in 0..18446744073709551615"));
    /* strtoull reads "-1" as UINT64_MAX */
    CHECK(cli_parse_u64("seed", "-1", 0, UINT64_MAX, &v, &e) == ERR_ARG);
    CHECK(v == 3);
    size_t s = 0;
    CHECK_OK(cli_parse_size("map-size", "4194304", 1, (size_t)1 << 22, &s, &e), &e);
    CHECK(s == (size_t)1 << 22);
    CHECK(cli_parse_size("map-size", "4294967297", 1, (size_t)1 << 22, &s, &e) == ERR_ARG);
    CHECK(s == (size_t)1 << 22);
}

static void test_double(void)
{
    err_t e = {0};
    double v = 9;
    CHECK_OK(cli_parse_double("lr", "2e-5", 0, 10, &v, &e), &e);
    CHECK(v == 2e-5);
    CHECK_OK(cli_parse_double("lr", ".5", 0, 10, &v, &e), &e);
    CHECK(v == 0.5);
    CHECK_OK(cli_parse_double("lr", "10", 0, 10, &v, &e), &e);
    v = 9;
    const char *bad[] = {"", "nan", "inf", "-inf", "1e400", "0x1", " 1", "+1", "1x", "10.001", "-0.1", ".", "e5"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        CHECK_MSG(cli_parse_double("lr", bad[i], 0, 10, &v, &e) == ERR_ARG, "'%s' accepted", bad[i]);
        CHECK(v == 9);
    }
    CHECK(!strcmp(e.msg, "--lr: 'e5' is not a number in 0..10"));
}

int main(void)
{
    CHECK_RUN(test_int);
    CHECK_RUN(test_long);
    CHECK_RUN(test_unsigned);
    CHECK_RUN(test_double);
    return check_summary();
}
