/* `clipcap store stats|dump`: read the feature store as one logical store,
 * whatever number of ranks wrote it (common/store/store.h: every
 * rank-*-of-* environment, newest entry per key). Output is independent of
 * how many ranks wrote the store: keys in byte order, no environment names
 * or generations in the dump. */
#include "core/fsutil.h"
#include "core/log.h"
#include "core/mpictx.h"
#include "io/npy.h"
#include "store/store.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char stage_store_summary[] = "inspect the feature store: stats, dump embeddings as JSONL or .npy";

static void store_usage(FILE *out)
{
    fprintf(out,
            "usage: clipcap store stats --store DIR\n"
            "       clipcap store dump --store DIR --format jsonl|npy --out PATH\n\n"
            "Reads every environment of the store (DIR/rank-R-of-N/, from any number of\n"
            "ranks and runs); each key resolves to its newest entry.\n\n"
            "  stats   one JSON object on stdout: keys, embeddings, failures by reason,\n"
            "          model fingerprints, dtypes, dims, per-environment counts,\n"
            "          encoded_total (embeddings ever committed), shadowed entries, and\n"
            "          damaged_environments (errors of environments that cannot be\n"
            "          read, e.g. a truncated data.mdb; then the exit status is 1)\n"
            "  dump    the embeddings in key byte order:\n"
            "          jsonl: PATH gets one line per key {\"key\", \"embedding\", \"dim\",\n"
            "                 \"dtype\", \"model_fingerprint\", \"content_hash\", \"width\",\n"
            "                 \"height\"} (floats printed with 9 significant digits, which\n"
            "                 round-trip float32 exactly); PATH \"-\" is stdout\n"
            "          npy:   PATH gets an [N, D] float32 matrix and PATH.keys.txt\n"
            "                 (PATH without a .npy suffix, plus .keys.txt) the N keys,\n"
            "                 one per line, in row order; every embedding must have\n"
            "                 the same dim\n"
            "          Failed keys are not dumped (see stats).\n\n"
            "options:\n"
            "  --store DIR         the feature store written by `clipcap extract`\n"
            "  --format jsonl|npy  dump format (default jsonl)\n"
            "  --out PATH          dump output\n"
            "  -h, --help          this help\n\n"
            "Runs on rank 0 only under mpirun.\n");
}

static void json_count(json_t *obj, const char *key)
{
    json_t *c = json_object_get(obj, key);
    json_object_set_new(obj, key, json_integer(c ? json_integer_value(c) + 1 : 1));
}

static int store_stats(store *s, const char *dir, err_t *e)
{
    json_t *out = json_object(), *envs = json_array(), *by = json_object(), *fps = json_object(),
           *dtypes = json_object(), *dims = json_object();
    uint64_t encoded_total = 0, keys = 0, n_emb = 0, n_fail = 0, shadowed = 0;
    int rc = 0;
    for (int i = 0; !rc && i < store_num_envs(s); i++) {
        store_env_info info;
        if ((rc = store_env_stat(s, i, &info, e)) != 0) break;
        encoded_total += info.encoded_total;
        json_array_append_new(envs, json_pack("{s:s, s:I, s:I, s:I, s:I, s:I}", "name", info.name, "embeddings",
                                              (json_int_t)info.embeddings, "failures", (json_int_t)info.failures,
                                              "encoded_total", (json_int_t)info.encoded_total, "generation_max",
                                              (json_int_t)info.generation_max, "map_bytes", (json_int_t)info.mapsize));
    }
    store_iter *it = NULL;
    if (!rc) rc = store_iter_open(&it, s, e);
    const char *key;
    store_entry ent;
    const float *emb;
    int r;
    while (!rc && (r = store_iter_next(it, &key, &ent, &emb, e)) != 0) {
        if (r < 0) {
            rc = r;
            break;
        }
        keys++;
        shadowed += (uint64_t)ent.shadowed;
        if (ent.kind == STORE_ENTRY_FAILURE) {
            n_fail++;
            json_count(by, ent.fail.reason);
            continue;
        }
        n_emb++;
        char dim[16];
        snprintf(dim, sizeof dim, "%u", ent.rec.dim);
        json_count(fps, ent.rec.model);
        json_count(dtypes, store_dtype_name(ent.rec.dtype));
        json_count(dims, dim);
    }
    store_iter_close(it);
    if (!rc) {
        json_object_set_new(out, "store", json_string(dir));
        json_object_set_new(out, "format_version", json_integer(STORE_FORMAT_VERSION));
        json_object_set_new(out, "keys", json_integer((json_int_t)keys));
        json_object_set_new(out, "embeddings", json_integer((json_int_t)n_emb));
        json_object_set_new(out, "failures", json_integer((json_int_t)n_fail));
        json_object_set(out, "failures_by_reason", by);
        json_object_set(out, "model_fingerprints", fps);
        json_object_set(out, "dtypes", dtypes);
        json_object_set(out, "dims", dims);
        json_object_set_new(out, "encoded_total", json_integer((json_int_t)encoded_total));
        json_object_set_new(out, "shadowed_entries", json_integer((json_int_t)shadowed));
        json_object_set(out, "environments", envs);
        json_t *damaged = json_array();
        for (int i = 0; i < store_num_damaged(s); i++) json_array_append_new(damaged, json_string(store_damaged(s, i)));
        json_object_set_new(out, "damaged_environments", damaged);
        char *text = json_dumps(out, JSON_INDENT(2) | JSON_SORT_KEYS);
        if (text) printf("%s\n", text);
        else rc = err_set(e, ERR_NOMEM, "store stats: cannot serialise");
        free(text);
    }
    json_decref(out), json_decref(envs), json_decref(by), json_decref(fps), json_decref(dtypes), json_decref(dims);
    if (!rc && store_num_damaged(s))
        rc = err_set(e, ERR_FORMAT, "%d environment(s) could not be read (damaged_environments): %s",
                     store_num_damaged(s), store_damaged(s, 0));
    return rc;
}

static int dump_jsonl_line(FILE *f, const char *key, const store_entry *ent, const float *emb, err_t *e)
{
    json_t *js = json_string(key);
    char *qkey = js ? json_dumps(js, JSON_ENCODE_ANY) : NULL;
    json_decref(js);
    if (!qkey) return err_set(e, ERR_FORMAT, "key '%s' is not valid UTF-8", key);
    fprintf(f, "{\"key\": %s, \"embedding\": [", qkey);
    free(qkey);
    for (uint32_t i = 0; i < ent->rec.dim; i++) {
        if (!isfinite(emb[i])) return err_set(e, ERR_FORMAT, "key '%s': embedding value %u is not finite", key, i);
        fprintf(f, i ? ", %.9g" : "%.9g", (double)emb[i]);
    }
    fprintf(f, "], \"dim\": %u, \"dtype\": \"%s\", \"model_fingerprint\": \"%s\", \"content_hash\": \"%s\", "
               "\"width\": %u, \"height\": %u}\n",
            ent->rec.dim, store_dtype_name(ent->rec.dtype), ent->rec.model, ent->rec.content_hash, ent->rec.width,
            ent->rec.height);
    return 0;
}

/* The .keys.txt path next to an .npy path. */
static void keys_path(char *out, size_t cap, const char *npy)
{
    size_t n = strlen(npy);
    if (n > 4 && !strcmp(npy + n - 4, ".npy")) n -= 4;
    snprintf(out, cap, "%.*s.keys.txt", (int)n, npy);
}

static int store_dump(store *s, const char *format, const char *out, err_t *e)
{
    int jsonl = !strcmp(format, "jsonl");
    if (!jsonl && strcmp(format, "npy"))
        return err_set(e, ERR_ARG, "--format '%s': expected jsonl or npy", format);
    if (!jsonl && !strcmp(out, "-")) return err_set(e, ERR_ARG, "--format npy needs a file for --out");
    char tmp[4200], kpath[4200], ktmp[4300];
    /* Written beside the target and renamed at the end: a killed dump never
     * leaves a half file under the real name. */
    int to_stdout = !strcmp(out, "-");
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", out, (int)getpid());
    keys_path(kpath, sizeof kpath, out);
    snprintf(ktmp, sizeof ktmp, "%s.tmp.%d", kpath, (int)getpid());
    FILE *f = to_stdout ? stdout : fopen(jsonl ? tmp : ktmp, "w");
    if (!f) return err_set(e, ERR_IO, "%s: cannot create: %s", jsonl ? tmp : ktmp, strerror(errno));
    float *mat = NULL;
    size_t n = 0, cap = 0;
    uint32_t dim = 0;
    store_iter *it = NULL;
    int rc = store_iter_open(&it, s, e), r;
    const char *key;
    store_entry ent;
    const float *emb;
    while (!rc && (r = store_iter_next(it, &key, &ent, &emb, e)) != 0) {
        if (r < 0) {
            rc = r;
            break;
        }
        if (ent.kind != STORE_ENTRY_EMBEDDING) continue;
        if (jsonl) {
            rc = dump_jsonl_line(f, key, &ent, emb, e);
        } else {
            if (n == 0) dim = ent.rec.dim;
            if (ent.rec.dim != dim) {
                rc = err_set(e, ERR_FORMAT, "key '%s': dim %u differs from the first key's %u; npy needs one dim", key,
                             ent.rec.dim, dim);
                break;
            }
            if (n == cap) {
                cap = cap ? 2 * cap : 1024;
                float *nm = realloc(mat, cap * dim * sizeof *nm);
                if (!nm) {
                    rc = err_set(e, ERR_NOMEM, "dump: cannot hold %zu embeddings of dim %u", cap, dim);
                    break;
                }
                mat = nm;
            }
            memcpy(mat + n * dim, emb, dim * sizeof *emb);
            fprintf(f, "%s\n", key);
        }
        n++;
    }
    store_iter_close(it);
    if (to_stdout) {
        if (fflush(stdout) != 0 && !rc) rc = err_set(e, ERR_IO, "stdout: write failed: %s", strerror(errno));
    } else if ((ferror(f) | fclose(f)) && !rc) {
        rc = err_set(e, ERR_IO, "%s: write failed: %s", jsonl ? tmp : ktmp, strerror(errno));
    }
    if (!rc && !jsonl) {
        int64_t shape[2] = {(int64_t)n, (int64_t)dim};
        const float empty = 0;
        rc = npy_write_f32(out, mat ? mat : &empty, shape, 2, e);
        if (!rc && rename(ktmp, kpath) != 0)
            rc = err_set(e, ERR_IO, "%s: cannot rename to %s: %s", ktmp, kpath, strerror(errno));
    }
    if (!rc && jsonl && !to_stdout && rename(tmp, out) != 0)
        rc = err_set(e, ERR_IO, "%s: cannot rename to %s: %s", tmp, out, strerror(errno));
    if (rc && !to_stdout) remove(jsonl ? tmp : ktmp);
    free(mat);
    if (!rc) log_msg(LOG_INFO, "store dump: %zu embeddings to %s", n, out);
    return rc;
}

int stage_store_main(int argc, char **argv)
{
    static const struct option longopts[] = {{"store", required_argument, NULL, 's'},
                                              {"format", required_argument, NULL, 'f'},
                                              {"out", required_argument, NULL, 'o'},
                                              {"help", no_argument, NULL, 'h'},
                                              {NULL, 0, NULL, 0}};
    err_t e = {0};
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        store_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *cmd = argv[1], *dir = NULL, *format = "jsonl", *out = NULL;
    int is_stats = !strcmp(cmd, "stats"), is_dump = !strcmp(cmd, "dump");
    if (!is_stats && !is_dump) {
        err_set(&e, ERR_ARG, "unknown command '%s' (expected stats or dump; try --help)", cmd);
        return err_report("store", &e);
    }
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc - 1, argv + 1, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 's': dir = optarg; break;
        case 'f': format = optarg; break;
        case 'o': out = optarg; break;
        case 'h': store_usage(stdout); return 0;
        default:
            err_set(&e, ERR_ARG, "unknown or incomplete option '%s' (try --help)", argv[optind]);
            return err_report("store", &e);
        }
    }
    if (optind < argc - 1) err_set(&e, ERR_ARG, "unexpected argument '%s'", argv[optind + 1]);
    else if (!dir) err_set(&e, ERR_ARG, "--store is required (try --help)");
    else if (is_dump && !out) err_set(&e, ERR_ARG, "dump needs --out PATH (or - for stdout)");
    if (e.code) return err_report("store", &e);
    if (mpictx_rank() != 0) return 0;
    store *s = NULL;
    /* stats reports damaged environments beside the others' counts; a
     * dump must not silently lack their keys */
    int rc = is_stats ? store_open_readable(&s, dir, &e) : store_open(&s, dir, NULL, &e);
    if (!rc) rc = is_stats ? store_stats(s, dir, &e) : store_dump(s, format, out, &e);
    store_close(s);
    return rc ? err_report("store", &e) : 0;
}
