#include "data/dataset.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/fsutil.h"


const char *ds_reason_name(int reason)
{
#define DS_REASON_NAME(id, name) name,
    static const char *names[] = {DS_REASONS(DS_REASON_NAME)};
#undef DS_REASON_NAME
    return reason >= 0 && reason < DS_NUM_REASONS ? names[reason] : "unknown";
}

int ds_init(ds_t *ds, const char *root, int check_images, err_t *e)
{
    memset(ds, 0, sizeof *ds);
    if (snprintf(ds->root, sizeof ds->root, "%s", root ? root : "") >= (int)sizeof ds->root)
        return err_set(e, ERR_ARG, "%s: path too long", root);
    ds->check_images = check_images;
    uint64_t off;
    return ds_intern(ds, "", 0, &off, e); /* offset 0 is the empty string */
}

void ds_free(ds_t *ds)
{
    free(ds->arena);
    free(ds->images);
    free(ds->captions);
    free(ds->rejects);
    for (size_t i = 0; i < ds->n_splits; i++) free(ds->splits[i]);
    free(ds->splits);
    memset(ds, 0, sizeof *ds);
}

int ds_select_splits(ds_t *ds, const char *csv, err_t *e)
{
    if (!csv) return 0;
    const char *p = csv;
    while (*p) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n == 0) return err_set(e, ERR_ARG, "--splits '%s': empty split name", csv);
        char **s = realloc(ds->splits, (ds->n_splits + 1) * sizeof *s);
        if (!s) return err_set(e, ERR_NOMEM, "cannot allocate split list");
        ds->splits = s;
        if (!(s[ds->n_splits] = strndup(p, n))) return err_set(e, ERR_NOMEM, "cannot allocate split list");
        ds->n_splits++;
        p += n + (end ? 1 : 0);
    }
    return 0;
}

/* Grow *arr (elements of size sz) to hold n+1; doubling keeps adds O(1). */
static int ds_grow(void **arr, size_t *cap, size_t n, size_t sz, err_t *e)
{
    if (n < *cap) return 0;
    size_t c = *cap ? *cap * 2 : 1024;
    void *p = realloc(*arr, c * sz);
    if (!p) return err_set(e, ERR_NOMEM, "cannot allocate %zu data set entries", c);
    *arr = p;
    *cap = c;
    return 0;
}

int ds_intern(ds_t *ds, const char *s, size_t n, uint64_t *off, err_t *e)
{
    if (ds->arena_len + n + 1 > ds->arena_cap) {
        size_t c = ds->arena_cap ? ds->arena_cap : 1 << 16;
        while (c < ds->arena_len + n + 1) c *= 2;
        char *p = realloc(ds->arena, c);
        if (!p) return err_set(e, ERR_NOMEM, "cannot allocate %zu bytes of strings", c);
        ds->arena = p;
        ds->arena_cap = c;
    }
    memcpy(ds->arena + ds->arena_len, s, n);
    ds->arena[ds->arena_len + n] = 0;
    *off = ds->arena_len;
    ds->arena_len += n + 1;
    return 0;
}

static int ds_intern_str(ds_t *ds, const char *s, uint64_t *off, err_t *e)
{
    return ds_intern(ds, s ? s : "", s ? strlen(s) : 0, off, e);
}

int ds_add_image(ds_t *ds, const char *key, const char *split, enum manifest_loc_kind kind,
                 const char *path, uint64_t offset, uint64_t length, const char *file,
                 const char *record, size_t *idx, err_t *e)
{
    int rc = ds_grow((void **)&ds->images, &ds->cap_images, ds->n_images, sizeof *ds->images, e);
    if (rc) return rc;
    ds_image_t im = {0};
    im.kind = (uint8_t)kind;
    im.offset = offset;
    im.length = length;
    if ((rc = ds_intern_str(ds, key, &im.key, e)) || (rc = ds_intern_str(ds, split, &im.split, e)) ||
        (rc = ds_intern_str(ds, path, &im.path, e)) || (rc = ds_intern_str(ds, file, &im.file, e)) ||
        (rc = ds_intern_str(ds, record, &im.record, e)))
        return rc;
    *idx = ds->n_images;
    ds->images[ds->n_images++] = im;
    return 0;
}

int ds_reject(ds_t *ds, int reason, const char *file, const char *record, const char *detail, err_t *e)
{
    int rc = ds_grow((void **)&ds->rejects, &ds->cap_rejects, ds->n_rejects, sizeof *ds->rejects, e);
    if (rc) return rc;
    ds_reject_t r = {.reason = reason};
    if ((rc = ds_intern_str(ds, file, &r.file, e)) || (rc = ds_intern_str(ds, record, &r.record, e)) ||
        (rc = ds_intern_str(ds, detail, &r.detail, e)))
        return rc;
    ds->rejects[ds->n_rejects++] = r;
    ds->reason_count[reason]++;
    ds_log_reject(ds, reason, file, record, detail);
    return 0;
}

void ds_log_reject(ds_t *ds, int reason, const char *file, const char *record, const char *detail)
{
    ds->rejects_total++;
    if (!ds->log_rejects) return;
    if (ds->rejects_total <= DS_LOG_REJECTS)
        log_msg(LOG_WARN, "rejected (%s): %s: %s: %s", ds_reason_name(reason), file, record, detail);
    else if (ds->rejects_total == DS_LOG_REJECTS + 1)
        log_msg(LOG_WARN, "more rejects follow; all are listed in rejects.jsonl");
}

int utf8_valid(const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (c < 0x80) { i++; continue; }
        size_t len;
        unsigned cp;
        if (c >= 0xC2 && c <= 0xDF) { len = 2; cp = c & 0x1F; }
        else if (c >= 0xE0 && c <= 0xEF) { len = 3; cp = c & 0x0F; }
        else if (c >= 0xF0 && c <= 0xF4) { len = 4; cp = c & 0x07; }
        else return 0;
        if (i + len > n) return 0;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return 0;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += len;
    }
    return 1;
}

static int ds_blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!strchr(" \t\r\n\v\f", s[i])) return 0;
    return 1;
}

int ds_add_caption(ds_t *ds, size_t image, const char *text, size_t len, const char *file,
                   const char *record, err_t *e)
{
    if (!utf8_valid(text, len) || memchr(text, 0, len)) {
        int rc = ds_reject(ds, DS_INVALID_UTF8, file, record, "caption is not valid UTF-8 text", e);
        return rc ? rc : 1;
    }
    if (ds_blank(text, len)) {
        int rc = ds_reject(ds, DS_EMPTY_CAPTION, file, record, "caption is empty", e);
        return rc ? rc : 1;
    }
    if (len > UINT32_MAX) {
        int rc = ds_reject(ds, DS_MALFORMED_RECORD, file, record, "caption longer than 4 GiB", e);
        return rc ? rc : 1;
    }
    int rc = ds_grow((void **)&ds->captions, &ds->cap_captions, ds->n_captions, sizeof *ds->captions, e);
    if (rc) return rc;
    ds_caption_t c = {.len = (uint32_t)len, .image = (uint32_t)image};
    if ((rc = ds_intern(ds, text, len, &c.text, e))) return rc;
    ds->captions[ds->n_captions++] = c;
    return 0;
}

static int ds_all_digits(const char *s)
{
    if (!*s) return 0;
    for (; *s; s++)
        if (*s < '0' || *s > '9') return 0;
    return 1;
}

int ds_key_cmp(const char *a, const char *b)
{
    if (ds_all_digits(a) && ds_all_digits(b)) {
        while (*a == '0' && a[1]) a++;
        while (*b == '0' && b[1]) b++;
        size_t la = strlen(a), lb = strlen(b);
        if (la != lb) return la < lb ? -1 : 1;
    }
    return strcmp(a, b);
}

/* qsort has no context argument in C11: sort (key offset, index) pairs
 * whose keys are looked up through a pointer stored next to them. */
typedef struct ds_sort_item {
    const char *key;
    size_t idx;
} ds_sort_item;

static int ds_sort_cmp(const void *pa, const void *pb)
{
    const ds_sort_item *a = pa, *b = pb;
    int c = ds_key_cmp(a->key, b->key);
    if (c) return c;
    return a->idx < b->idx ? -1 : a->idx > b->idx;
}

static int ds_split_selected(const ds_t *ds, const char *split)
{
    if (!ds->splits) return 1;
    for (size_t i = 0; i < ds->n_splits; i++)
        if (!strcmp(ds->splits[i], split)) return 1;
    return 0;
}

/* Why an image file cannot be used, or NULL. */
static const char *ds_image_problem(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) return "image file is missing";
    if (!S_ISREG(st.st_mode)) return "image path is not a regular file";
    if (st.st_size == 0) return "image file is empty";
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return "image file is unreadable";
    close(fd);
    return NULL;
}

static int ds_check_files(ds_t *ds, err_t *e)
{
    size_t n = ds->n_images;
    const char **problem = calloc(n ? n : 1, sizeof *problem);
    if (!problem) return err_set(e, ERR_NOMEM, "cannot allocate image check table");
    /* stat() latency dominates on network file systems: check in parallel,
     * record the verdicts, then reject in order (deterministic output). */
#pragma omp parallel for schedule(dynamic, 256)
    for (size_t i = 0; i < n; i++) {
        const ds_image_t *im = &ds->images[i];
        if (im->dead || im->kind != MANIFEST_LOC_FILE) continue;
        char path[8192];
        problem[i] = fs_join(path, sizeof path, ds->root, ds_str(ds, im->path), NULL) ? "image path too long"
                                                                                    : ds_image_problem(path);
    }
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        if (!problem[i]) continue;
        ds_image_t *im = &ds->images[i];
        im->dead = 1;
        char detail[4400];
        snprintf(detail, sizeof detail, "%s: %s/%s", problem[i], ds->root, ds_str(ds, im->path));
        /* The arena may move in ds_reject: copy the strings first. */
        char file[1024], record[512];
        snprintf(file, sizeof file, "%s", ds_str(ds, im->file));
        snprintf(record, sizeof record, "%s", ds_str(ds, im->record));
        rc = ds_reject(ds, DS_MISSING_IMAGE, file, record, detail, e);
    }
    free(problem);
    return rc;
}

static int ds_caption_cmp(const void *pa, const void *pb)
{
    const ds_caption_t *a = pa, *b = pb;
    if (a->image != b->image) return a->image < b->image ? -1 : 1;
    return a->text < b->text ? -1 : a->text > b->text; /* arena order = added order */
}

int ds_finalize(ds_t *ds, err_t *e)
{
    size_t n = ds->n_images;
    ds_sort_item *items = malloc((n ? n : 1) * sizeof *items);
    size_t *new_pos = malloc((n ? n : 1) * sizeof *new_pos);
    ds_image_t *sorted = malloc((n ? n : 1) * sizeof *sorted);
    int rc = 0;
    if (!items || !new_pos || !sorted) {
        rc = err_set(e, ERR_NOMEM, "cannot allocate %zu images for sorting", n);
        goto done;
    }
    for (size_t i = 0; i < n; i++) items[i] = (ds_sort_item){ds_str(ds, ds->images[i].key), i};
    qsort(items, n, sizeof *items, ds_sort_cmp);
    for (size_t i = 0; i < n; i++) {
        sorted[i] = ds->images[items[i].idx];
        new_pos[items[i].idx] = i;
    }
    free(ds->images);
    ds->images = sorted;
    sorted = NULL;
    ds->cap_images = n;

    /* Duplicates: the first added sorts first (index tie-break). Reject in
     * manifest order; ds_reject may move the arena, so copy strings out. */
    for (size_t i = 1; i < n && !rc; i++) {
        ds_image_t *im = &ds->images[i];
        if (strcmp(ds_str(ds, im->key), ds_str(ds, ds->images[i - 1].key))) continue;
        im->dead = 1;
        char file[1024], record[512], detail[512];
        snprintf(file, sizeof file, "%s", ds_str(ds, im->file));
        snprintf(record, sizeof record, "%s", ds_str(ds, im->record));
        snprintf(detail, sizeof detail, "key '%s' already used by %s", ds_str(ds, im->key),
                 ds_str(ds, ds->images[i - 1].record));
        rc = ds_reject(ds, DS_DUPLICATE_KEY, file, record, detail, e);
    }
    if (rc) goto done;
    for (size_t c = 0; c < ds->n_captions; c++) ds->captions[c].image = (uint32_t)new_pos[ds->captions[c].image];

    /* Split selection before the file check: excluded images are never
     * looked at on disk. */
    for (size_t i = 0; i < n; i++) {
        ds_image_t *im = &ds->images[i];
        if (!im->dead && !ds_split_selected(ds, ds_str(ds, im->split))) {
            im->dead = 2;
            ds->excluded_images++;
        }
    }
    if (ds->check_images && (rc = ds_check_files(ds, e))) goto done;

    /* Group captions by image, keeping their added order, dropping those of
     * dead images. */
    if (ds->n_captions) qsort(ds->captions, ds->n_captions, sizeof *ds->captions, ds_caption_cmp);
    size_t kept = 0;
    for (size_t c = 0; c < ds->n_captions; c++) {
        ds_caption_t cap = ds->captions[c];
        uint8_t dead = ds->images[cap.image].dead;
        if (dead == 2) ds->excluded_captions++;
        if (dead) continue;
        ds->captions[kept++] = cap;
    }
    ds->n_captions = kept;
    size_t out = 0, c = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        ds_image_t im = ds->images[i];
        size_t first = c;
        while (c < kept && ds->captions[c].image == i) ds->captions[c++].image = (uint32_t)out;
        if (im.dead) continue;
        if (c == first) {
            char file[1024], record[512];
            snprintf(file, sizeof file, "%s", ds_str(ds, im.file));
            snprintf(record, sizeof record, "%s", ds_str(ds, im.record));
            rc = ds_reject(ds, DS_NO_CAPTIONS, file, record, "image has no valid caption", e);
            continue;
        }
        im.first_caption = (uint32_t)first;
        im.n_captions = (uint32_t)(c - first);
        ds->images[out++] = im;
    }
    ds->n_images = out;
done:
    free(items);
    free(new_pos);
    free(sorted);
    return rc;
}

/* Bytes of heap the images, captions, rejects and strings take. */
static size_t ds_held_bytes(const ds_t *ds)
{
    return ds->arena_len + ds->n_images * sizeof *ds->images + ds->n_captions * sizeof *ds->captions +
           ds->n_rejects * sizeof *ds->rejects;
}

int ds_checkpoint(ds_t *ds, int force, err_t *e)
{
    if (!ds->sink || (!force && ds_held_bytes(ds) < ds->sink_bytes)) return 0;
    int rc = ds->sink(ds, ds->sink_user, e);
    if (rc) return rc;
    /* keep the allocations (the next chunk fills them again) and the empty
     * string at arena offset 0 */
    ds->n_images = ds->n_captions = ds->n_rejects = 0;
    ds->arena_len = 1;
    return 0;
}

int ds_summary_add(ds_summary_t *s, const ds_t *ds, err_t *e)
{
    s->input_records += ds->input_records;
    s->excluded_images += ds->excluded_images;
    s->excluded_captions += ds->excluded_captions;
    for (int r = 0; r < DS_NUM_REASONS; r++) s->reason_count[r] += ds->reason_count[r];
    s->images += ds->n_images;
    s->captions += ds->n_captions;
    for (size_t i = 0; i < ds->n_images; i++) {
        const char *name = ds_str(ds, ds->images[i].split);
        size_t k = 0;
        while (k < s->n_splits && strcmp(s->splits[k].name, name)) k++;
        if (k == s->n_splits) {
            ds_summary_split *p = realloc(s->splits, (s->n_splits + 1) * sizeof *p);
            if (!p) return err_set(e, ERR_NOMEM, "cannot allocate the split table");
            s->splits = p;
            if (!(p[k].name = strdup(name))) return err_set(e, ERR_NOMEM, "cannot allocate the split table");
            p[k].images = p[k].captions = 0;
            s->n_splits++;
        }
        s->splits[k].images++;
        s->splits[k].captions += ds->images[i].n_captions;
    }
    return 0;
}

void ds_summary_free(ds_summary_t *s)
{
    for (size_t k = 0; k < s->n_splits; k++) free(s->splits[k].name);
    free(s->splits);
    memset(s, 0, sizeof *s);
}
