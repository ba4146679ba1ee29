/* json_load_buffer and the field getters on arbitrary bytes. */
#include <stdint.h>

#include "io/json_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *j;
    err_t e = {0};
    if (json_load_buffer(&j, (const char *)data, size, "fuzz.json", &e)) return 0;
    const char *s;
    long long i;
    double r;
    int b;
    json_t *o;
    json_get_str(j, "caption", &s, &e);
    json_get_int(j, "id", &i, &e);
    json_get_real(j, "score", &r, &e);
    json_get_bool(j, "ok", &b, &e);
    json_get_array(j, "images", &o, &e);
    json_get_object(j, "info", &o, &e);
    json_decref(j);
    return 0;
}
