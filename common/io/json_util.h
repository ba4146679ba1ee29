/* JSON helpers over jansson. Every error names where it happened: loading
 * reports "PATH:LINE:COL: jansson's message" (json_parse_error); the field getters report
 * "field 'key' is missing" / "field 'key' is not a string" (ERR_FORMAT) and
 * callers err_wrap them with the file and the record. Getters never take a
 * reference: *out is borrowed from obj. */
#ifndef CLIPCAP_JSON_UTIL_H
#define CLIPCAP_JSON_UTIL_H

#include <jansson.h>
#include <stddef.h>
#include "core/log.h"

/* *out is a new reference (json_decref it). Duplicate keys are rejected. */
int json_load_path(json_t **out, const char *path, err_t *e);
/* name is used only in error messages ("<buffer>" when NULL). */
int json_load_buffer(json_t **out, const char *buf, size_t len, const char *name, err_t *e);
/* The ERR_FORMAT message of jansson's parse error je in buf, one form for
 * every JSON reader: "NAME:LINE:COL: CONTEXTtext". COL counts bytes from 1
 * and names the byte at fault, as data/jscan.c (shard) and Python's json
 * (on ASCII lines) do, whatever multibyte characters come before it;
 * CONTEXT ("entry 3: ") may be "". */
int json_parse_error(err_t *e, const json_error_t *je, const char *name, const char *buf, size_t len,
                     const char *context);

int json_get_str(const json_t *obj, const char *key, const char **out, err_t *e);
int json_get_int(const json_t *obj, const char *key, long long *out, err_t *e);
/* Accepts integers too. */
int json_get_real(const json_t *obj, const char *key, double *out, err_t *e);
int json_get_bool(const json_t *obj, const char *key, int *out, err_t *e);
int json_get_array(const json_t *obj, const char *key, json_t **out, err_t *e);
int json_get_object(const json_t *obj, const char *key, json_t **out, err_t *e);

#endif
