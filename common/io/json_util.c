#include "io/json_util.h"

#include <stdlib.h>

#include "core/fsutil.h"

int json_parse_error(err_t *e, const json_error_t *je, const char *name, const char *buf, size_t len,
                     const char *context)
{
    /* jansson's position counts the bytes it accepted (the byte at fault
     * among them, except one that is not UTF-8); its column counts
     * characters, so it is not used */
    int bad_utf8 = json_error_code(je) == json_error_invalid_utf8;
    size_t pos = (je->position > 0 ? (size_t)je->position : 0) + (size_t)bad_utf8;
    if (pos == 0) pos = 1;
    if (pos > len + 1) pos = len + 1;
    size_t start = pos - 1; /* index of the line's first byte */
    while (start > 0 && buf[start - 1] != '\n') start--;
    return err_set(e, ERR_FORMAT, "%s:%d:%zu: %s%s%s", name, je->line, pos - start, context,
                   bad_utf8 ? "text is not UTF-8: " : "", je->text);
}

int json_load_buffer(json_t **out, const char *buf, size_t len, const char *name, err_t *e)
{
    json_error_t je;
    *out = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je);
    if (!*out) return json_parse_error(e, &je, name ? name : "<buffer>", buf, len, "");
    return 0;
}

int json_load_path(json_t **out, const char *path, err_t *e)
{
    /* Read ourselves so that a missing file is ERR_IO, not a parse error. */
    uint8_t *data = NULL;
    size_t len = 0;
    *out = NULL;
    int rc = fs_read_all(path, &data, &len, e);
    if (rc) return rc;
    rc = json_load_buffer(out, (const char *)data, len, path, e);
    free(data);
    return rc;
}

static int json_field(const json_t *obj, const char *key, json_t **v, err_t *e)
{
    if (!json_is_object(obj)) return err_set(e, ERR_FORMAT, "not an object (looking for field '%s')", key);
    *v = json_object_get(obj, key);
    if (!*v) return err_set(e, ERR_FORMAT, "field '%s' is missing", key);
    return 0;
}

static int json_wrong_type(const char *key, const char *what, err_t *e)
{
    return err_set(e, ERR_FORMAT, "field '%s' is not %s", key, what);
}

int json_get_str(const json_t *obj, const char *key, const char **out, err_t *e)
{
    json_t *v;
    int rc = json_field(obj, key, &v, e);
    if (rc) return rc;
    if (!json_is_string(v)) return json_wrong_type(key, "a string", e);
    *out = json_string_value(v);
    return 0;
}

int json_get_int(const json_t *obj, const char *key, long long *out, err_t *e)
{
    json_t *v;
    int rc = json_field(obj, key, &v, e);
    if (rc) return rc;
    if (!json_is_integer(v)) return json_wrong_type(key, "an integer", e);
    *out = json_integer_value(v);
    return 0;
}

int json_get_real(const json_t *obj, const char *key, double *out, err_t *e)
{
    json_t *v;
    int rc = json_field(obj, key, &v, e);
    if (rc) return rc;
    if (!json_is_number(v)) return json_wrong_type(key, "a number", e);
    *out = json_number_value(v);
    return 0;
}

int json_get_bool(const json_t *obj, const char *key, int *out, err_t *e)
{
    json_t *v;
    int rc = json_field(obj, key, &v, e);
    if (rc) return rc;
    if (!json_is_boolean(v)) return json_wrong_type(key, "a boolean", e);
    *out = json_is_true(v);
    return 0;
}

int json_get_array(const json_t *obj, const char *key, json_t **out, err_t *e)
{
    json_t *v;
    int rc = json_field(obj, key, &v, e);
    if (rc) return rc;
    if (!json_is_array(v)) return json_wrong_type(key, "an array", e);
    *out = v;
    return 0;
}

int json_get_object(const json_t *obj, const char *key, json_t **out, err_t *e)
{
    json_t *v;
    int rc = json_field(obj, key, &v, e);
    if (rc) return rc;
    if (!json_is_object(v)) return json_wrong_type(key, "an object", e);
    *out = v;
    return 0;
}
