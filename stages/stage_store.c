/* `clipcap store stats|dump|consolidate`: read the feature store's
 * consolidated pack (common/store/store.h), or consolidate the writers'
 * environments into a new one. Output is independent of how many ranks
 * wrote the store: keys in byte order, no environment names or
 * generations in the dump. */
#include "core/fsutil.h"
#include "core/log.h"
#include "core/mpictx.h"
#include "io/npy.h"
#include "store/store.h"
#include "store/store_lock.h"

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
            "       clipcap store dump --store DIR --format jsonl|npy --out PATH\n"
            "       clipcap store consolidate --store DIR\n\n"
            "stats and dump read the store's consolidated pack (DIR/CURRENT names it)\n"
            "read-only: no lock file, no write access needed. consolidate merges what\n"
            "extract's ranks wrote (DIR/rank-R-of-N/, e.g. left by a killed run or a\n"
            "version 1 store) into a new pack; extract does it by itself at its start\n"
            "and end. Each key resolves to its newest entry.\n\n"
            "  stats   one JSON object on stdout: keys, embeddings, failures by reason,\n"
            "          model fingerprints, dtypes, dims, encoded_total (embeddings ever\n"
            "          encoded), the pack (name, bytes, bytes per embedding, entries\n"
            "          superseded by its consolidation), environments not consolidated\n"
            "  dump    the embeddings in key byte order:\n"
            "          jsonl: PATH gets one line per key {\"key\", \"embedding\", \"dim\",\n"
            "                 \"dtype\", \"model_fingerprint\", \"content_hash\", \"width\",\n"
            "                 \"height\"} (floats printed with 9 significant digits, which\n"
            "                 round-trip float32 exactly); PATH \"-\" is stdout\n"
            "          npy:   PATH gets an [N, D] float32 matrix and PATH.keys.txt\n"
            "                 (PATH without a .npy suffix, plus .keys.txt) the N keys,\n"
            "                 one per line, in row order; every embedding must have\n"
            "                 the same dim\n"
            "          Both stream: memory does not grow with the store.\n"
            "          Failed keys are not dumped (see stats).\n"
            "  consolidate  one JSON object on stdout: published, environments merged,\n"
            "          superseded entries dropped, the pack. Needs write access; no\n"
            "          extract may be running on DIR.\n\n"
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

static json_t *pack_json(const store_pack_info *p)
{
    if (!p) return json_null();
    return json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:f}", "name", p->name, "sequence", (json_int_t)p->sequence,
                     "generation_max", (json_int_t)p->generation_max, "bytes", (json_int_t)p->bytes,
                     "superseded_dropped", (json_int_t)p->superseded, "encoded_total", (json_int_t)p->encoded_total,
                     "bytes_per_embedding", p->embeddings ? (double)p->bytes / (double)p->embeddings : 0.0);
}

static int store_stats(store *s, const char *dir, err_t *e)
{
    json_t *out = json_object(), *by = json_object(), *fps = json_object(), *dtypes = json_object(),
           *dims = json_object();
    uint64_t keys = 0, n_emb = 0, n_fail = 0;
    store_iter *it = NULL;
    int rc = store_iter_open(&it, s, e);
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
        const store_pack_info *pack = store_current_pack(s);
        json_object_set_new(out, "store", json_string(dir));
        json_object_set_new(out, "format_version", json_integer(STORE_FORMAT_VERSION));
        json_object_set_new(out, "keys", json_integer((json_int_t)keys));
        json_object_set_new(out, "embeddings", json_integer((json_int_t)n_emb));
        json_object_set_new(out, "failures", json_integer((json_int_t)n_fail));
        json_object_set(out, "failures_by_reason", by);
        json_object_set(out, "model_fingerprints", fps);
        json_object_set(out, "dtypes", dtypes);
        json_object_set(out, "dims", dims);
        json_object_set_new(out, "encoded_total", json_integer(pack ? (json_int_t)pack->encoded_total : 0));
        json_object_set_new(out, "pack", pack_json(pack));
        json_object_set_new(out, "pending_environments", json_integer(store_pending_envs(s)));
        char *text = json_dumps(out, JSON_INDENT(2) | JSON_SORT_KEYS);
        if (text) printf("%s\n", text);
        else rc = err_set(e, ERR_NOMEM, "store stats: cannot serialise");
        free(text);
    }
    json_decref(out), json_decref(by), json_decref(fps), json_decref(dtypes), json_decref(dims);
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

/* A file written beside its target and renamed over it once complete: a
 * killed dump never leaves a half file under the real name. */
typedef struct dump_file {
    char path[4200], tmp[4300];
    FILE *f;
} dump_file;

static int dump_open(dump_file *d, const char *path, err_t *e)
{
    snprintf(d->path, sizeof d->path, "%s", path);
    snprintf(d->tmp, sizeof d->tmp, "%s.tmp.%d", path, (int)getpid());
    if (!(d->f = fopen(d->tmp, "w"))) return err_set(e, ERR_IO, "%s: cannot create: %s", d->tmp, strerror(errno));
    return 0;
}

/* ok: fsync, close and rename; else close and remove. */
static int dump_close(dump_file *d, int ok, err_t *e)
{
    if (!d->f) return 0;
    int rc = 0;
    if (ok && (fflush(d->f) != 0 || ferror(d->f) || fsync(fileno(d->f)) != 0))
        rc = err_set(e, ERR_IO, "%s: write failed: %s", d->tmp, strerror(errno));
    if (fclose(d->f) != 0 && ok && !rc) rc = err_set(e, ERR_IO, "%s: write failed: %s", d->tmp, strerror(errno));
    d->f = NULL;
    if (ok && !rc && rename(d->tmp, d->path) != 0)
        rc = err_set(e, ERR_IO, "%s: cannot rename to %s: %s", d->tmp, d->path, strerror(errno));
    if (ok && !rc) rc = fs_fsync_dir_of(d->path, e);
    if (!ok || rc) remove(d->tmp);
    return rc;
}

/* The npy header once the dim is known (n rows: the pack's count of
 * embeddings, checked at the end). */
static int dump_npy_header(dump_file *d, uint64_t n, uint32_t dim, err_t *e)
{
    uint8_t head[NPY_HEADER_MAX];
    size_t hlen;
    int64_t shape[2] = {(int64_t)n, (int64_t)dim};
    int rc = npy_header_f32(head, &hlen, shape, 2, d->path, e);
    if (!rc && fwrite(head, 1, hlen, d->f) != hlen) rc = err_set(e, ERR_IO, "%s: write failed", d->tmp);
    return rc;
}

/* Streams: one embedding in memory at a time, whatever the store's size. */
static int store_dump(store *s, const char *format, const char *out, err_t *e)
{
    int jsonl = !strcmp(format, "jsonl");
    if (!jsonl && strcmp(format, "npy"))
        return err_set(e, ERR_ARG, "--format '%s': expected jsonl or npy", format);
    int to_stdout = !strcmp(out, "-");
    if (!jsonl && to_stdout) return err_set(e, ERR_ARG, "--format npy needs a file for --out");
    const store_pack_info *pack = store_current_pack(s);
    uint64_t expect = pack ? pack->embeddings : 0;
    dump_file dst = {0}, keys = {0};
    char kpath[4200];
    keys_path(kpath, sizeof kpath, out);
    int rc = to_stdout ? 0 : dump_open(&dst, out, e);
    if (!rc && !jsonl) rc = dump_open(&keys, kpath, e);
    FILE *f = to_stdout ? stdout : dst.f;
    uint64_t n = 0;
    uint32_t dim = 0;
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
        if (ent.kind != STORE_ENTRY_EMBEDDING) continue;
        if (jsonl) {
            rc = dump_jsonl_line(f, key, &ent, emb, e);
        } else {
            if (n == 0 && (rc = dump_npy_header(&dst, expect, dim = ent.rec.dim, e)) != 0) break;
            if (ent.rec.dim != dim) {
                rc = err_set(e, ERR_FORMAT, "key '%s': dim %u differs from the first key's %u; npy needs one dim", key,
                             ent.rec.dim, dim);
                break;
            }
            /* The host is little-endian, as '<f4' requires (io/npy.h). */
            if (fwrite(emb, sizeof *emb, dim, f) != dim) rc = err_set(e, ERR_IO, "%s: write failed", dst.tmp);
            fprintf(keys.f, "%s\n", key);
        }
        n++;
    }
    store_iter_close(it);
    if (!rc && !jsonl && n == 0) rc = dump_npy_header(&dst, 0, 0, e);
    if (!rc && !jsonl && n != expect)
        rc = err_set(e, ERR_INTERNAL, "%s: %llu embeddings dumped, the pack counts %llu", out, (unsigned long long)n,
                     (unsigned long long)expect);
    if (to_stdout && fflush(stdout) != 0 && !rc) rc = err_set(e, ERR_IO, "stdout: write failed: %s", strerror(errno));
    int krc = dump_close(&keys, !rc, e);
    if (!rc) rc = krc;
    int mrc = dump_close(&dst, !rc, e);
    if (!rc) rc = mrc;
    if (!rc) log_msg(LOG_INFO, "store dump: %llu embeddings to %s", (unsigned long long)n, out);
    return rc;
}

/* Under extract's lock: never while an extract writes the store. */
static int store_consolidate_cmd(const char *dir, err_t *e)
{
    if (!fs_exists(dir)) return err_set(e, ERR_NOTFOUND, "%s: no such store", dir);
    store_consolidation c;
    int lock_fd = -1;
    int rc = store_lock(dir, &lock_fd, e);
    if (!rc) rc = store_consolidate(dir, &c, e);
    store_unlock(lock_fd);
    if (rc) return rc;
    json_t *out = json_pack("{s:s, s:b, s:I, s:I, s:o}", "store", dir, "published", c.published, "environments",
                            (json_int_t)c.environments, "superseded", (json_int_t)c.superseded, "pack",
                            pack_json(c.pack.name[0] ? &c.pack : NULL));
    char *text = out ? json_dumps(out, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;
    json_decref(out);
    if (!text) return err_set(e, ERR_NOMEM, "store consolidate: cannot serialise");
    printf("%s\n", text);
    free(text);
    log_msg(LOG_INFO, "store consolidate: %s", c.published ? "published a new pack" : "nothing new to consolidate");
    return 0;
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
    int is_stats = !strcmp(cmd, "stats"), is_dump = !strcmp(cmd, "dump"), is_cons = !strcmp(cmd, "consolidate");
    if (!is_stats && !is_dump && !is_cons) {
        err_set(&e, ERR_ARG, "unknown command '%s' (expected stats, dump or consolidate; try --help)", cmd);
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
    if (is_cons) return store_consolidate_cmd(dir, &e) ? err_report("store", &e) : 0;
    store *s = NULL;
    int rc = store_open(&s, dir, NULL, &e);
    if (!rc) rc = is_stats ? store_stats(s, dir, &e) : store_dump(s, format, out, &e);
    store_close(s);
    return rc ? err_report("store", &e) : 0;
}
