/* The unit tests' few macros. A test file defines test functions, lists them
 * in main via CHECK_RUN, and returns check_summary(): each failed CHECK prints
 * file:line and the expression, a test function that ran no CHECK fails
 * too, and the process exits non-zero if any failed. Fixtures come from $CLIPCAP_FIXTURES, scratch files go under
 * $CLIPCAP_TMP (both set by ctest). */
#ifndef CLIPCAP_CHECK_H
#define CLIPCAP_CHECK_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int check_failed_count, check_passed_count;

#define CHECK(cond)                                                                 \
    do {                                                                            \
        if (cond) check_passed_count++;                                             \
        else {                                                                      \
            check_failed_count++;                                                   \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                           \
    } while (0)

#define CHECK_MSG(cond, ...)                                                       \
    do {                                                                           \
        if (cond) check_passed_count++;                                            \
        else {                                                                     \
            check_failed_count++;                                                  \
            fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                          \
            fputc('\n', stderr);                                                   \
        }                                                                          \
    } while (0)

#define CHECK_OK(expr, errp) CHECK_MSG((expr) == 0, "%s", (errp)->msg)

/* A test function that ran no CHECK at all (an early return, a loop that
 * never ran) fails: a test that cannot fail is not a pass. */
#define CHECK_RUN(fn)                                                                  \
    do {                                                                               \
        int failed = check_failed_count, ran = check_failed_count + check_passed_count; \
        fn();                                                                          \
        if (check_failed_count + check_passed_count == ran) {                          \
            check_failed_count++;                                                      \
            fprintf(stderr, "%s: ran no check\n", #fn);                                \
        }                                                                              \
        fprintf(stderr, "%s %s\n", check_failed_count == failed ? "ok  " : "FAIL", #fn); \
    } while (0)

static inline int check_summary(void)
{
    printf("%d passed, %d failed\n", check_passed_count, check_failed_count);
    return check_failed_count ? 1 : 0;
}

/* "$CLIPCAP_FIXTURES/rel" into buf */
static inline const char *check_fixture(char *buf, size_t cap, const char *rel)
{
    const char *d = getenv("CLIPCAP_FIXTURES");
    snprintf(buf, cap, "%s/%s", d ? d : "tests/fixtures", rel);
    return buf;
}

/* A fresh scratch directory "$CLIPCAP_TMP/name.PID" into buf */
static inline const char *check_tmpdir(char *buf, size_t cap, const char *name)
{
    const char *d = getenv("CLIPCAP_TMP");
    char cmd[4400];
    snprintf(buf, cap, "%s/%s.%d", d ? d : "/tmp", name, (int)getpid());
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", buf, buf);
    if (system(cmd) != 0) fprintf(stderr, "cannot create %s\n", buf);
    return buf;
}

#endif
