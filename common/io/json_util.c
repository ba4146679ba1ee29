#include "io/json_util.h"

#include <stdlib.h>

#include "core/fsutil.h"

static int json_error(const json_error_t *je, const char *name, err_t *e)
{
    return err_set(e, ERR_FORMAT, "%s:%d:%d: %s", name, je->line, je->column, je->text);
}

int json_load_buffer(json_t **out, const char *buf, size_t len, const char *name, err_t *e)
{
    json_error_t je;
    *out = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je);
    if (!*out) return json_error(&je, name ? name : "<buffer>", e);
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
