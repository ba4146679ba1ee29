#include "core/cli.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* strto* skip leading blanks and take '+', hex, "inf" and "nan": a flag
 * value is plain decimal text, checked before they run. */
static int starts_decimal(const char *s, int sign_ok)
{
    if (sign_ok && *s == '-') s++;
    return isdigit((unsigned char)*s);
}

static int parse_signed(const char *flag, const char *text, long long min, long long max, long long *out, err_t *e)
{
    char *end = NULL;
    errno = 0;
    long long v = starts_decimal(text, 1) ? strtoll(text, &end, 10) : 0;
    if (!end || *end || errno || v < min || v > max)
        return err_set(e, ERR_ARG, "--%s: '%s' is not an integer in %lld..%lld", flag, text, min, max);
    *out = v;
    return 0;
}

static int parse_unsigned(const char *flag, const char *text, uint64_t min, uint64_t max, uint64_t *out, err_t *e)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = starts_decimal(text, 0) ? strtoull(text, &end, 10) : 0;
    if (!end || *end || errno || v < min || v > max)
        return err_set(e, ERR_ARG, "--%s: '%s' is not an integer in %llu..%llu", flag, text, (unsigned long long)min,
                       (unsigned long long)max);
    *out = v;
    return 0;
}

int cli_parse_int(const char *flag, const char *text, int min, int max, int *out, err_t *e)
{
    long long v;
    int rc = parse_signed(flag, text, min, max, &v, e);
    if (!rc) *out = (int)v;
    return rc;
}

int cli_parse_long(const char *flag, const char *text, long min, long max, long *out, err_t *e)
{
    long long v;
    int rc = parse_signed(flag, text, min, max, &v, e);
    if (!rc) *out = (long)v;
    return rc;
}

int cli_parse_u64(const char *flag, const char *text, uint64_t min, uint64_t max, uint64_t *out, err_t *e)
{
    return parse_unsigned(flag, text, min, max, out, e);
}

int cli_parse_size(const char *flag, const char *text, size_t min, size_t max, size_t *out, err_t *e)
{
    uint64_t v;
    int rc = parse_unsigned(flag, text, min, max, &v, e);
    if (!rc) *out = (size_t)v;
    return rc;
}

int cli_parse_double(const char *flag, const char *text, double min, double max, double *out, err_t *e)
{
    char *end = NULL;
    const char *digits = *text == '-' ? text + 1 : text;
    int decimal = (isdigit((unsigned char)*digits) || (*digits == '.' && isdigit((unsigned char)digits[1]))) &&
                  !text[strspn(text, "0123456789.eE+-")];
    double v = decimal ? strtod(text, &end) : 0;
    if (!end || *end || !(v >= min && v <= max))
        return err_set(e, ERR_ARG, "--%s: '%s' is not a number in %g..%g", flag, text, min, max);
    *out = v;
    return 0;
}
