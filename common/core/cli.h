/* Numeric command-line flags, the one parser every stage uses.
 *
 * cli_parse_TYPE(flag, text, min, max, &out, e) accepts a decimal number
 * (integers: digits with an optional leading '-'; doubles: what strtod
 * reads, finite) that lies in min..max, checked on the full text before any
 * narrowing, so "4294967297" is never read as 1. Otherwise it leaves *out
 * alone and returns ERR_ARG with one message form for every stage:
 *   --FLAG: 'TEXT' is not an integer in MIN..MAX   (or "a number" for doubles)
 * FLAG is the long option's name without its dashes. */
#ifndef CLIPCAP_CLI_H
#define CLIPCAP_CLI_H

#include <stddef.h>
#include <stdint.h>

#include "core/log.h"

int cli_parse_int(const char *flag, const char *text, int min, int max, int *out, err_t *e);
int cli_parse_long(const char *flag, const char *text, long min, long max, long *out, err_t *e);
int cli_parse_u64(const char *flag, const char *text, uint64_t min, uint64_t max, uint64_t *out, err_t *e);
int cli_parse_size(const char *flag, const char *text, size_t min, size_t max, size_t *out, err_t *e);
int cli_parse_double(const char *flag, const char *text, double min, double max, double *out, err_t *e);

#endif
