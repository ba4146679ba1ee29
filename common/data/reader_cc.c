#include "data/reader_cc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "core/fsutil.h"
#include "core/progress.h"
#include "io/json_util.h"
#include "io/tar_reader.h"

/* Sidecar text members larger than this are not captions or metadata. */
#define CC_MAX_SIDECAR (1u << 20)

/* ---- TSV ---------------------------------------------------------------- */

static uint32_t cc_url_hash(const char *u, size_t n) { return (uint32_t)hash64(u, n); }

static int bit_get(const uint8_t *b, size_t i) { return (b[i / 8] >> (i % 8)) & 1; }
static void bit_set(uint8_t *b, size_t i) { b[i / 8] |= (uint8_t)(1u << (i % 8)); }

int cc_tsv_is_bad(const cc_tsv_t *t, size_t row) { return bit_get(t->bad, row); }
void cc_tsv_take(cc_tsv_t *t, size_t row) { bit_set(t->taken, row); }

/* The end of the line starting at pos (its '\n' or the end of the file). */
static size_t cc_line_end(const cc_tsv_t *t, size_t pos)
{
    const char *nl = memchr(t->buf + pos, '\n', t->len - pos);
    return nl ? (size_t)(nl - t->buf) : t->len;
}

void cc_tsv_row_at(const cc_tsv_t *t, size_t row, cc_tsv_row *r)
{
    size_t pos = t->line_at[row / CC_TSV_STRIDE];
    for (size_t k = row % CC_TSV_STRIDE; k > 0; k--) pos = cc_line_end(t, pos) + 1;
    size_t end = cc_line_end(t, pos);
    size_t stop = end > pos && t->buf[end - 1] == '\r' ? end - 1 : end;
    const char *tab = memchr(t->buf + pos, '\t', stop - pos);
    r->caption = t->buf + pos;
    r->caption_len = (uint32_t)(tab - r->caption);
    r->url = tab + 1;
    r->url_len = (uint32_t)(t->buf + stop - r->url);
    r->line = (uint32_t)(row + 1 + t->header);
}

size_t cc_tsv_find(const cc_tsv_t *t, const char *url, size_t n)
{
    uint64_t h = (uint64_t)cc_url_hash(url, n) << 32;
    size_t lo = 0, hi = t->n_index; /* first entry >= h */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (t->index[mid] < h) lo = mid + 1;
        else hi = mid;
    }
    /* the entries of one hash are in row order */
    for (size_t k = lo; k < t->n_index && (t->index[k] & ~(uint64_t)UINT32_MAX) == h; k++) {
        size_t row = (size_t)(t->index[k] & UINT32_MAX);
        if (bit_get(t->taken, row)) continue;
        cc_tsv_row r;
        cc_tsv_row_at(t, row, &r);
        if (r.url_len == n && !memcmp(r.url, url, n)) return row;
    }
    return SIZE_MAX;
}

static int cc_u64_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Rows, line offsets and the url index over t->buf. */
static int cc_tsv_index(cc_tsv_t *t, ds_t *ds, err_t *e)
{
    const char *buf = t->buf, *name = t->name;
    size_t len = t->len, lines = 0;
    for (const char *p = buf; p && p < buf + len; p = memchr(p, '\n', (size_t)(buf + len - p)), p = p ? p + 1 : p)
        lines++;
    if (lines >= UINT32_MAX) return err_set(e, ERR_LIMIT, "%s: more than 4G rows", name);
    t->line_at = malloc((lines / CC_TSV_STRIDE + 1) * sizeof *t->line_at);
    t->index = malloc((lines ? lines : 1) * sizeof *t->index);
    t->bad = calloc(lines / 8 + 1, 1);
    t->taken = calloc(lines / 8 + 1, 1);
    if (!t->line_at || !t->index || !t->bad || !t->taken)
        return err_set(e, ERR_NOMEM, "%s: cannot allocate the index of %zu rows", name, lines);
    size_t pos = 0;
    uint32_t line = 0;
    while (pos < len) {
        size_t end = cc_line_end(t, pos), next = end < len ? end + 1 : len;
        size_t stop = end > pos && buf[end - 1] == '\r' ? end - 1 : end;
        line++;
        const char *tab = memchr(buf + pos, '\t', stop - pos);
        if (line == 1 && tab && tab - (buf + pos) == 7 && !strncasecmp(buf + pos, "caption\turl", 11) &&
            stop - pos == 11) {
            t->header = 1;
            pos = next;
            continue;
        }
        size_t row = t->n_rows++;
        if (row % CC_TSV_STRIDE == 0) t->line_at[row / CC_TSV_STRIDE] = pos;
        ds->input_records++;
        size_t ncols = 1;
        for (const char *p = buf + pos; (p = memchr(p, '\t', (size_t)(buf + stop - p))); p++) ncols++;
        if (ncols != 2 || stop - pos > UINT32_MAX) {
            bit_set(t->bad, row);
            char rec[64], detail[4400];
            snprintf(rec, sizeof rec, "line %u", line);
            snprintf(detail, sizeof detail, "%zu tab-separated columns, expected 2 (caption, url)", ncols);
            int rc = ds_reject(ds, DS_TSV_COLUMNS, name, rec, detail, e);
            if (rc) return rc;
        } else {
            const char *url = tab + 1;
            t->index[t->n_index++] = (uint64_t)cc_url_hash(url, (size_t)(buf + stop - url)) << 32 | row;
        }
        pos = next;
    }
    qsort(t->index, t->n_index, sizeof *t->index, cc_u64_cmp);
    return 0;
}

static int cc_tsv_init(cc_tsv_t *t, ds_t *ds, const char *buf, size_t len, int mapped, const char *name, err_t *e)
{
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->buf = buf;
    t->len = len;
    t->mapped = mapped;
    return cc_tsv_index(t, ds, e);
}

int cc_tsv_parse(cc_tsv_t *t, ds_t *ds, char *buf, size_t len, const char *name, err_t *e)
{
    return cc_tsv_init(t, ds, buf, len, 0, name, e);
}

int cc_tsv_load(cc_tsv_t *t, ds_t *ds, const char *path, err_t *e)
{
    const uint8_t *map = NULL;
    size_t len = 0;
    memset(t, 0, sizeof *t);
    int rc = fs_map_file(path, &map, &len, e);
    return rc ? rc : cc_tsv_init(t, ds, (const char *)map, len, 1, path, e);
}

void cc_tsv_free(cc_tsv_t *t)
{
    if (t->mapped) fs_unmap((const uint8_t *)t->buf, t->len);
    else free((char *)t->buf);
    free(t->line_at);
    free(t->index);
    free(t->bad);
    free(t->taken);
    memset(t, 0, sizeof *t);
}

/* ---- one sample, whatever its container ---------------------------------- */

typedef struct cc_sample {
    char key[256];
    char file[4200];      /* for messages: "00000/000000123" or "00000.tar" */
    int has_image;
    enum manifest_loc_kind kind;
    char image_path[4200]; /* relative to the root */
    uint64_t offset, length;
    char *txt, *json;      /* malloc'd sidecars or NULL */
    size_t txt_len, json_len;
} cc_sample;

typedef struct cc_ctx {
    ds_t *ds;
    cc_tsv_t *tsv; /* NULL without a TSV */
    const char *split;
    progress_t prog; /* millions of samples take minutes to list and read */
    uint64_t samples;
} cc_ctx;

static void cc_sample_reset(cc_sample *s)
{
    free(s->txt);
    free(s->json);
    memset(s, 0, sizeof *s);
}

static int cc_reject(cc_ctx *c, const cc_sample *s, int reason, const char *detail, err_t *e)
{
    char record[300];
    snprintf(record, sizeof record, "sample %s", s->key);
    return ds_reject(c->ds, reason, s->file, record, detail, e);
}

/* The TSV row of a sample: the first row not yet taken whose url is the
 * sample's (CC repeats some urls). 0 with *row filled, else 1 with a reject
 * recorded (*rc its status). */
static int cc_tsv_match(cc_ctx *c, const cc_sample *s, const char *url, cc_tsv_row *row, int *rc, err_t *e)
{
    if (!url) {
        *rc = cc_reject(c, s, DS_MISSING_CAPTION, "KEY.json has no url to find the sample's TSV row", e);
        return 1;
    }
    size_t r = cc_tsv_find(c->tsv, url, strlen(url));
    if (r == SIZE_MAX) {
        char d[600];
        snprintf(d, sizeof d, "url %.400s is not in %s (or all its rows are taken)", url, c->tsv->name);
        *rc = cc_reject(c, s, DS_URL_MISMATCH, d, e);
        return 1;
    }
    cc_tsv_take(c->tsv, r);
    cc_tsv_row_at(c->tsv, r, row);
    return 0;
}

static int cc_commit(cc_ctx *c, cc_sample *s, err_t *e)
{
    if (!s->key[0]) return 0;
    int rc = ds_checkpoint(c->ds, 0, e); /* every sample so far is complete */
    if (rc) return rc;
    c->ds->input_records++;
    progress_update(&c->prog, ++c->samples, c->ds->rejects_total);
    json_t *meta = NULL;
    const char *status = "success", *url = NULL, *jcaption = NULL;
    if (s->json) {
        err_t why = {0};
        if (json_load_buffer(&meta, s->json, s->json_len, "KEY.json", &why) ||
            json_get_str(meta, "status", &status, &why)) {
            rc = cc_reject(c, s, DS_MALFORMED_RECORD, why.msg, e);
            goto done;
        }
        json_t *u = json_object_get(meta, "url"), *cp = json_object_get(meta, "caption");
        url = json_is_string(u) ? json_string_value(u) : NULL;
        jcaption = json_is_string(cp) ? json_string_value(cp) : NULL;
    }
    if (strcmp(status, "success")) {
        char d[1400];
        json_t *em = json_object_get(meta, "error_message");
        snprintf(d, sizeof d, "status '%s'%s%s", status, json_is_string(em) ? ": " : "",
                 json_is_string(em) ? json_string_value(em) : "");
        if (c->tsv && url) {
            /* the row is accounted for by this reject, not as not_downloaded */
            size_t row = cc_tsv_find(c->tsv, url, strlen(url));
            if (row != SIZE_MAX) cc_tsv_take(c->tsv, row);
        }
        rc = cc_reject(c, s, DS_DOWNLOAD_FAILED, d, e);
        goto done;
    }
    cc_tsv_row row_v, *row = NULL;
    if (c->tsv) {
        if (cc_tsv_match(c, s, url, &row_v, &rc, e)) goto done;
        row = &row_v;
    }
    if (!s->has_image) {
        rc = cc_reject(c, s, DS_MISSING_IMAGE, "no image file for the sample", e);
        goto done;
    }
    if (s->kind == MANIFEST_LOC_TAR && s->length == 0) {
        rc = cc_reject(c, s, DS_MISSING_IMAGE, "the image member is empty", e);
        goto done;
    }
    const char *text, *cfile;
    size_t tlen;
    char crec[400];
    snprintf(crec, sizeof crec, "sample %s", s->key);
    if (row) {
        text = row->caption;
        tlen = row->caption_len;
        cfile = c->tsv->name;
        snprintf(crec, sizeof crec, "line %u (sample %s)", row->line, s->key);
    } else if (s->txt) {
        text = s->txt;
        tlen = s->txt_len;
        cfile = s->file;
    } else if (jcaption) {
        text = jcaption;
        tlen = strlen(jcaption);
        cfile = s->file;
    } else {
        rc = cc_reject(c, s, DS_MISSING_CAPTION, "no KEY.txt and no caption in KEY.json", e);
        goto done;
    }
    size_t idx;
    char record[300];
    snprintf(record, sizeof record, "sample %s", s->key);
    rc = ds_add_image(c->ds, s->key, c->split, s->kind, s->image_path, s->offset, s->length, s->file, record, &idx, e);
    if (!rc) {
        int r = ds_add_caption(c->ds, idx, text, tlen, cfile, crec, e);
        if (r < 0) rc = r;
    }
done:
    json_decref(meta);
    return rc;
}

static int cc_not_downloaded(cc_ctx *c, err_t *e)
{
    if (!c->tsv) return 0;
    for (size_t i = 0; i < c->tsv->n_rows; i++) {
        if (cc_tsv_is_bad(c->tsv, i) || bit_get(c->tsv->taken, i)) continue;
        char rec[64], d[4400];
        snprintf(rec, sizeof rec, "line %u", (unsigned)(i + 1 + c->tsv->header));
        snprintf(d, sizeof d, "no downloaded sample has this row's url");
        int rc = ds_reject(c->ds, DS_NOT_DOWNLOADED, c->tsv->name, rec, d, e);
        if (rc) return rc;
    }
    return 0;
}

static int cc_is_image_ext(const char *ext)
{
    return !strcasecmp(ext, "jpg") || !strcasecmp(ext, "jpeg") || !strcasecmp(ext, "png") || !strcasecmp(ext, "webp");
}

/* Key and extension of a member/file name: "dir/000000123.jpg" -> key
 * "000000123" (basename up to its first dot), ext "jpg"; group = everything
 * before the first dot of the basename (keeps the directory). */
void reader_cc_key(const char *name, char *key, size_t cap)
{
    const char *base = strrchr(name, '/');
    base = base ? base + 1 : name;
    const char *dot = strchr(base, '.');
    snprintf(key, cap, "%.*s", (int)(dot ? (size_t)(dot - base) : strlen(base)), base);
}

static void cc_split_name(const char *name, char *group, size_t gcap, char *key, size_t kcap, const char **ext)
{
    const char *base = strrchr(name, '/');
    base = base ? base + 1 : name;
    const char *dot = strchr(base, '.');
    size_t klen = dot ? (size_t)(dot - base) : strlen(base);
    reader_cc_key(name, key, kcap);
    snprintf(group, gcap, "%.*s", (int)(base - name + (long)klen), name);
    *ext = dot ? dot + 1 : "";
}

static int cc_ctx_open(cc_ctx *c, cc_tsv_t *tsv, ds_t *ds, const char *tsv_path, const char *split, err_t *e)
{
    c->ds = ds;
    c->split = split;
    c->tsv = NULL;
    c->samples = 0;
    progress_start(&c->prog, "shard: read samples", "sample", 0);
    if (!tsv_path) return 0;
    int rc = cc_tsv_load(tsv, ds, tsv_path, e);
    if (rc) return rc;
    c->tsv = tsv;
    return 0;
}

/* ---- the root, whatever the layout ------------------------------------------ */

static int cc_name_cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Sorted names of dir's entries (without . and ..). */
static int cc_list_dir(const char *dir, char ***names, size_t *n, err_t *e)
{
    *names = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) return err_set(e, ERR_IO, "%s: cannot open directory", dir);
    size_t cap = 0;
    struct dirent *de;
    int rc = 0;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 256;
            char **p = realloc(*names, cap * sizeof *p);
            if (!p) { rc = err_set(e, ERR_NOMEM, "%s: cannot list", dir); break; }
            *names = p;
        }
        if (!((*names)[*n] = strdup(de->d_name))) { rc = err_set(e, ERR_NOMEM, "%s: cannot list", dir); break; }
        (*n)++;
    }
    closedir(d);
    if (!rc && *n) qsort(*names, *n, sizeof **names, cc_name_cmp);
    return rc;
}

static void cc_free_names(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
}

/* One container of a layout named by a root entry (a sample directory, a
 * tar): 1 when the entry is one and was read, 0 when it is skipped, <0 on
 * error. */
typedef int (*cc_container_fn)(cc_ctx *c, const char *entry, err_t *e);

/* What both layouts do around their containers: load the TSV, visit the
 * root's entries in sorted order (deterministic rejects), then reject the
 * TSV rows no sample matched. `none`, when set, names what a root without
 * any container lacks (ERR_NOTFOUND). */
static int cc_read_root(ds_t *ds, const char *tsv_path, const char *split, cc_container_fn visit, const char *none,
                        err_t *e)
{
    cc_tsv_t tsv = {0};
    cc_ctx c;
    int rc = cc_ctx_open(&c, &tsv, ds, tsv_path, split, e);
    char **names = NULL;
    size_t n = 0, found = 0;
    if (!rc) rc = cc_list_dir(ds->root, &names, &n, e);
    for (size_t i = 0; i < n && !rc; i++) {
        int r = visit(&c, names[i], e);
        if (r < 0) rc = r;
        else found += (size_t)r;
    }
    if (!rc && none && found == 0) rc = err_set(e, ERR_NOTFOUND, "%s: no %s", ds->root, none);
    if (!rc) rc = cc_not_downloaded(&c, e);
    if (!rc) progress_finish(&c.prog);
    cc_free_names(names, n);
    cc_tsv_free(&tsv);
    return rc;
}

/* ---- img2dataset "files" layout ----------------------------------------- */

static int cc_read_sidecar(const char *path, char **out, size_t *len, err_t *e)
{
    struct stat st;
    if (stat(path, &st) == 0 && st.st_size > CC_MAX_SIDECAR)
        return err_set(e, ERR_LIMIT, "%s: %lld bytes (sidecar limit %u)", path, (long long)st.st_size, CC_MAX_SIDECAR);
    uint8_t *d = NULL;
    int rc = fs_read_all(path, &d, len, e);
    *out = (char *)d;
    return rc;
}

static int cc_files_dir(cc_ctx *c, const char *sub, err_t *e)
{
    char dir[8192];
    int rc = fs_join(dir, sizeof dir, c->ds->root, sub, e);
    char **names = NULL;
    size_t n = 0;
    if (!rc) rc = cc_list_dir(dir, &names, &n, e);
    cc_sample s = {0};
    char group[4200], key[256], cur[4200] = "";
    for (size_t i = 0; i < n && !rc; i++) {
        const char *ext;
        cc_split_name(names[i], group, sizeof group, key, sizeof key, &ext);
        if (strcmp(group, cur)) {
            rc = cc_commit(c, &s, e);
            cc_sample_reset(&s);
            snprintf(cur, sizeof cur, "%s", group);
            snprintf(s.key, sizeof s.key, "%s", key);
            snprintf(s.file, sizeof s.file, "%s/%s", sub, key);
            if (rc) break;
        }
        char rel[8400], full[8192];
        snprintf(rel, sizeof rel, "%s/%s", sub, names[i]);
        if (fs_join(full, sizeof full, c->ds->root, rel, NULL)) continue;
        if (cc_is_image_ext(ext)) {
            s.has_image = 1;
            s.kind = MANIFEST_LOC_FILE;
            snprintf(s.image_path, sizeof s.image_path, "%s", rel);
        } else if (!strcmp(ext, "txt") || !strcmp(ext, "json")) {
            char **dst = ext[0] == 't' ? &s.txt : &s.json;
            size_t *dlen = ext[0] == 't' ? &s.txt_len : &s.json_len;
            err_t why = {0};
            if (cc_read_sidecar(full, dst, dlen, &why)) {
                free(*dst);
                *dst = NULL;
                rc = cc_reject(c, &s, DS_MALFORMED_RECORD, why.msg, e);
                s.key[0] = 0; /* rejected: do not commit */
            }
        }
    }
    if (!rc) rc = cc_commit(c, &s, e);
    cc_sample_reset(&s);
    cc_free_names(names, n);
    return rc;
}

/* A sample directory (ROOT/NNNNN/) of the files layout; other entries are
 * skipped. */
static int cc_files_entry(cc_ctx *c, const char *name, err_t *e)
{
    char sub[8192];
    struct stat st;
    if (fs_join(sub, sizeof sub, c->ds->root, name, NULL) || stat(sub, &st) || !S_ISDIR(st.st_mode)) return 0;
    int rc = cc_files_dir(c, name, e);
    return rc ? rc : 1;
}

int reader_cc_files_read(ds_t *ds, const char *tsv_path, const char *split, err_t *e)
{
    return cc_read_root(ds, tsv_path, split, cc_files_entry, NULL, e);
}

/* ---- webdataset tars -------------------------------------------------------- */

/* pread on the tar's descriptor: one open per tar, not one per sidecar
 * (CC has millions of samples). tar_next has checked that the member lies
 * inside the file. The bytes get a NUL after them. */
static int cc_tar_sidecar(int fd, const char *path, const tar_member *m, char **out, size_t *len, err_t *e)
{
    if (m->size > CC_MAX_SIDECAR)
        return err_set(e, ERR_LIMIT, "member '%s': %llu bytes (sidecar limit %u)", m->name, (unsigned long long)m->size,
                       CC_MAX_SIDECAR);
    uint8_t *z;
    int rc = fs_pread_alloc(fd, m->data_offset, (size_t)m->size, path, &z, e);
    if (rc) return err_wrap(e, "member '%s'", m->name);
    *out = (char *)z;
    *len = (size_t)m->size;
    return 0;
}

static int cc_tar_file(cc_ctx *c, const char *tarname, err_t *e)
{
    char path[8192];
    int rc = fs_join(path, sizeof path, c->ds->root, tarname, e);
    if (rc) return rc;
    tar_reader *tr = NULL;
    err_t why = {0};
    int fd = -1;
    uint64_t tar_size;
    if (fs_open_regular(path, &fd, &tar_size, &why) || tar_open(&tr, path, &why)) {
        if (fd >= 0) close(fd);
        cc_sample s = {0};
        snprintf(s.key, sizeof s.key, "%s", "(archive)");
        snprintf(s.file, sizeof s.file, "%s", tarname);
        return cc_reject(c, &s, DS_BAD_TAR, why.msg, e);
    }
    cc_sample s = {0};
    char group[1100], key[256], cur[1100] = "";
    tar_member m;
    int r;
    while ((r = tar_next(tr, &m, &why)) == 1) {
        if (m.type != '0') continue;
        const char *ext;
        cc_split_name(m.name, group, sizeof group, key, sizeof key, &ext);
        if (strcmp(group, cur)) {
            rc = cc_commit(c, &s, e);
            cc_sample_reset(&s);
            if (rc) break;
            snprintf(cur, sizeof cur, "%s", group);
            snprintf(s.key, sizeof s.key, "%s", key);
            snprintf(s.file, sizeof s.file, "%s", tarname);
        }
        if (cc_is_image_ext(ext)) {
            s.has_image = 1;
            s.kind = MANIFEST_LOC_TAR;
            snprintf(s.image_path, sizeof s.image_path, "%s", tarname);
            s.offset = m.data_offset;
            s.length = m.size;
        } else if (!strcmp(ext, "txt") || !strcmp(ext, "json")) {
            char **dst = ext[0] == 't' ? &s.txt : &s.json;
            size_t *dlen = ext[0] == 't' ? &s.txt_len : &s.json_len;
            free(*dst);
            *dst = NULL;
            err_t w2 = {0};
            if (cc_tar_sidecar(fd, path, &m, dst, dlen, &w2)) {
                rc = cc_reject(c, &s, DS_MALFORMED_RECORD, w2.msg, e);
                s.key[0] = 0;
                if (rc) break;
            }
        }
    }
    if (!rc) rc = cc_commit(c, &s, e);
    cc_sample_reset(&s);
    if (!rc && r < 0) {
        /* The samples before the damage are kept; the rest of the tar
         * cannot be located. */
        snprintf(s.key, sizeof s.key, "%s", "(rest of archive)");
        snprintf(s.file, sizeof s.file, "%s", tarname);
        rc = cc_reject(c, &s, strstr(why.msg, "truncated") ? DS_TRUNCATED_MEMBER : DS_BAD_TAR, why.msg, e);
        s.key[0] = 0;
    }
    tar_close(tr);
    close(fd);
    return rc;
}

/* A NAME.tar of the webdataset layout; other entries are skipped. */
static int cc_tar_entry(cc_ctx *c, const char *name, err_t *e)
{
    size_t l = strlen(name);
    if (l < 5 || strcmp(name + l - 4, ".tar")) return 0;
    int rc = cc_tar_file(c, name, e);
    return rc ? rc : 1;
}

int reader_cc_tar_read(ds_t *ds, const char *tsv_path, const char *split, err_t *e)
{
    return cc_read_root(ds, tsv_path, split, cc_tar_entry, ".tar files", e);
}
