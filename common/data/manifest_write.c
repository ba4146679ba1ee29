#include "data/manifest_write.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fsutil.h"
#include "data/manifest_tokens.h"
#include "data/sbuf.h"
#include "io/zio.h"

uint64_t manifest_image_weight(uint32_t n_captions, uint64_t caption_bytes)
{
    return 64 + 16 * (uint64_t)n_captions + caption_bytes;
}

uint64_t manifest_ds_image_weight(const ds_t *ds, const ds_image_t *im)
{
    uint64_t bytes = 0;
    for (uint32_t c = 0; c < im->n_captions; c++) bytes += ds->captions[im->first_caption + c].len;
    return manifest_image_weight(im->n_captions, bytes);
}

int manifest_shard_of(uint64_t cum, uint64_t w, uint64_t total, int num_shards)
{
    /* shard of the image's weight midpoint, in integers: floor((cum + w/2) * N / total) */
    unsigned __int128 mid2 = (unsigned __int128)(2 * cum + w) * (unsigned)num_shards;
    int target = (int)(mid2 / (2 * (unsigned __int128)total));
    return target >= num_shards ? num_shards - 1 : target;
}

void manifest_plan_shards(const ds_t *ds, int num_shards, size_t *bounds)
{
    uint64_t total = 0;
    for (size_t i = 0; i < ds->n_images; i++) total += manifest_ds_image_weight(ds, &ds->images[i]);
    int s = 0;
    uint64_t cum = 0;
    bounds[0] = 0;
    for (size_t i = 0; i < ds->n_images; i++) {
        uint64_t w = manifest_ds_image_weight(ds, &ds->images[i]);
        int target = manifest_shard_of(cum, w, total, num_shards);
        while (s < target) bounds[++s] = i;
        cum += w;
    }
    while (s < num_shards) bounds[++s] = ds->n_images;
}

void manifest_shard_file_name(int shard, int num_shards, char *out, size_t cap)
{
    snprintf(out, cap, "shard-%05d-of-%05d.jsonl.zst", shard, num_shards);
}

void manifest_stats_from_sums(uint64_t count, uint64_t sum, uint64_t sumsq, uint32_t max,
                              manifest_token_stats_t *st)
{
    memset(st, 0, sizeof *st);
    st->count = count;
    st->max = max;
    if (count == 0) return;
    st->mean = (double)sum / (double)count;
    if (count > 1) {
        /* n*sumsq - sum^2 is exact in 128 bits: no cancellation error */
        unsigned __int128 num = (unsigned __int128)count * sumsq - (unsigned __int128)sum * sum;
        st->std = sqrt((double)num / ((double)count * (double)(count - 1)));
    }
    double lim = st->mean + 10.0 * st->std;
    st->max_seq_len = lim < (double)max ? (uint32_t)lim : max;
}

static void record_line(sbuf_t *sb, const ds_t *ds, const ds_image_t *im, int32_t *const *ids, const uint32_t *n_ids)
{
    sb_puts(sb, "{\"key\":");
    sb_json_str(sb, ds_str(ds, im->key), strlen(ds_str(ds, im->key)));
    sb_puts(sb, ",\"split\":");
    sb_json_str(sb, ds_str(ds, im->split), strlen(ds_str(ds, im->split)));
    sb_puts(sb, ",\"loc\":{\"kind\":");
    sb_puts(sb, im->kind == MANIFEST_LOC_TAR ? "\"tar\"" : "\"file\"");
    sb_puts(sb, ",\"path\":");
    sb_json_str(sb, ds_str(ds, im->path), strlen(ds_str(ds, im->path)));
    if (im->kind == MANIFEST_LOC_TAR) {
        sb_puts(sb, ",\"offset\":");
        sb_u64(sb, im->offset);
        sb_puts(sb, ",\"length\":");
        sb_u64(sb, im->length);
    }
    sb_puts(sb, "},\"captions\":[");
    for (uint32_t c = 0; c < im->n_captions; c++) {
        const ds_caption_t *cap = &ds->captions[im->first_caption + c];
        if (c) sb_puts(sb, ",");
        sb_json_str(sb, ds_str(ds, cap->text), cap->len);
    }
    sb_puts(sb, "],\"tokens\":[");
    for (uint32_t c = 0; c < im->n_captions; c++) {
        size_t ci = im->first_caption + c;
        sb_puts(sb, c ? ",[" : "[");
        for (uint32_t k = 0; k < n_ids[ci]; k++) {
            if (k) sb_puts(sb, ",");
            sb_u64(sb, (uint64_t)ids[ci][k]);
        }
        sb_puts(sb, "]");
    }
    sb_puts(sb, "]}\n");
}

int manifest_write_shard(const char *dir, const ds_t *ds, int shard, int num_shards, size_t first, size_t end,
                         int32_t *const *ids, const uint32_t *n_ids, int zstd_level, manifest_shard_info_t *info,
                         err_t *e)
{
    memset(info, 0, sizeof *info);
    manifest_shard_file_name(shard, num_shards, info->file, sizeof info->file);
    char path[8192];
    int rc = fs_join(path, sizeof path, dir, info->file, e);
    if (rc) return rc;
    info->images = end - first;
    for (size_t i = first; i < end; i++) info->captions += ds->images[i].n_captions;
    zio_writer *w = NULL;
    if ((rc = zio_writer_open(&w, path, zstd_level, e))) return rc;
    sbuf_t sb = {0};
    sb_printf(&sb,
              "{\"format\":\"clipcap-manifest-shard\",\"version\":%d,\"shard\":%d,\"num_shards\":%d,"
              "\"images\":%llu,\"captions\":%llu}\n",
              MANIFEST_VERSION, shard, num_shards, (unsigned long long)info->images,
              (unsigned long long)info->captions);
    for (size_t i = first; i <= end && !rc; i++) {
        /* flush every ~1 MiB and at the end: bounded memory per shard */
        if (sb.len >= (1u << 20) || i == end) {
            if (sb.failed) rc = err_set(e, ERR_NOMEM, "%s: cannot allocate a record buffer", path);
            else rc = zio_write(w, sb.data, sb.len, e);
            sb_reset(&sb);
        }
        if (i < end) record_line(&sb, ds, &ds->images[i], ids, n_ids);
    }
    sb_free(&sb);
    if (rc) {
        zio_writer_abort(w);
        return rc;
    }
    if ((rc = zio_writer_commit(w, e))) return rc;
    uint8_t *data = NULL;
    size_t len = 0;
    if ((rc = fs_read_all(path, &data, &len, e))) return rc;
    info->bytes = len;
    hash_hex128(data, len, info->xxh128);
    free(data);
    manifest_tokens_file_name(shard, num_shards, info->tokens_file, sizeof info->tokens_file);
    if ((rc = fs_join(path, sizeof path, dir, info->tokens_file, e))) return rc;
    return manifest_tokens_write(path, ds, shard, num_shards, first, end, ids, n_ids, &info->tokens_bytes,
                                 info->tokens_xxh128, e);
}

static json_t *summary_splits(const ds_summary_t *sum)
{
    json_t *arr = json_array();
    for (size_t k = 0; k < sum->n_splits; k++)
        json_array_append_new(arr, json_pack("{s:s, s:I, s:I}", "name", sum->splits[k].name, "images",
                                             (json_int_t)sum->splits[k].images, "captions",
                                             (json_int_t)sum->splits[k].captions));
    return arr;
}

json_t *manifest_summary_json(const ds_summary_t *sum)
{
    json_t *reasons = json_object();
    uint64_t total = 0;
    for (int r = 0; r < DS_NUM_REASONS; r++) {
        total += sum->reason_count[r];
        if (sum->reason_count[r])
            json_object_set_new(reasons, ds_reason_name(r), json_integer((json_int_t)sum->reason_count[r]));
    }
    return json_pack("{s:I, s:I, s:I, s:o, s:{s:I, s:I}, s:{s:I, s:o}}", "input_records",
                     (json_int_t)sum->input_records, "images", (json_int_t)sum->images, "captions",
                     (json_int_t)sum->captions, "splits", summary_splits(sum), "excluded_by_split", "images",
                     (json_int_t)sum->excluded_images, "captions", (json_int_t)sum->excluded_captions, "rejected",
                     "total", (json_int_t)total, "by_reason", reasons);
}

static int write_json_atomic(const char *path, json_t *doc, err_t *e)
{
    char *text = doc ? json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17)) : NULL;
    if (!text) return err_set(e, ERR_NOMEM, "%s: cannot serialise JSON", path);
    size_t n = strlen(text);
    char *t2 = realloc(text, n + 2);
    if (!t2) {
        free(text);
        return err_set(e, ERR_NOMEM, "%s: cannot serialise JSON", path);
    }
    t2[n] = '\n';
    int rc = fs_write_atomic(path, t2, n + 1, e);
    free(t2);
    return rc;
}

int manifest_write_index(const char *dir, const ds_summary_t *sum, const manifest_source_t *src,
                         const manifest_token_stats_t *st, const manifest_shard_info_t *shards, int num_shards,
                         err_t *e)
{
    json_t *inputs = json_array(), *sh = json_array();
    for (size_t i = 0; i < src->n_inputs; i++) json_array_append_new(inputs, json_string(src->inputs[i]));
    for (int s = 0; s < num_shards; s++)
        json_array_append_new(sh, json_pack("{s:s, s:I, s:I, s:I, s:s, s:s, s:I, s:s}", "file", shards[s].file,
                                            "images", (json_int_t)shards[s].images, "captions",
                                            (json_int_t)shards[s].captions, "bytes", (json_int_t)shards[s].bytes,
                                            "xxh128", shards[s].xxh128, "tokens_file", shards[s].tokens_file,
                                            "tokens_bytes", (json_int_t)shards[s].tokens_bytes, "tokens_xxh128",
                                            shards[s].tokens_xxh128));
    json_t *summary = manifest_summary_json(sum);
    json_t *doc = json_pack("{s:s, s:i, s:{s:s, s:o}, s:s, s:s, s:I, s:I, s:O, s:{s:I, s:f, s:f, s:i, s:i}, "
                            "s:i, s:o, s:O, s:O}",
                            "format", "clipcap-manifest", "version", MANIFEST_VERSION, "source", "format",
                            src->format, "inputs", inputs, "tokenizer", "gpt2", "root", src->root, "images",
                            (json_int_t)sum->images, "captions", (json_int_t)sum->captions, "splits",
                            json_object_get(summary, "splits"), "tokens", "count", (json_int_t)st->count, "mean",
                            st->mean, "std", st->std, "max", (int)st->max, "max_seq_len", (int)st->max_seq_len,
                            "num_shards", num_shards, "shards", sh, "excluded_by_split",
                            json_object_get(summary, "excluded_by_split"), "rejected",
                            json_object_get(summary, "rejected"));
    json_decref(summary);
    char path[8192];
    int rc = fs_join(path, sizeof path, dir, MANIFEST_INDEX_NAME, e);
    if (!rc) rc = write_json_atomic(path, doc, e);
    json_decref(doc);
    return rc;
}

void manifest_reject_line(sbuf_t *sb, const ds_t *ds, const ds_reject_t *r)
{
    const char *f = ds_str(ds, r->file), *rec = ds_str(ds, r->record), *d = ds_str(ds, r->detail);
    const char *reason = ds_reason_name(r->reason);
    sb_puts(sb, "{\"file\":");
    sb_json_str(sb, f, strlen(f));
    sb_puts(sb, ",\"record\":");
    sb_json_str(sb, rec, strlen(rec));
    sb_puts(sb, ",\"reason\":");
    sb_json_str(sb, reason, strlen(reason));
    sb_puts(sb, ",\"detail\":");
    sb_json_str(sb, d, strlen(d));
    sb_puts(sb, "}\n");
}

int manifest_write_rejects(const char *path, const ds_t *ds, err_t *e)
{
    sbuf_t sb = {0};
    for (size_t i = 0; i < ds->n_rejects; i++) manifest_reject_line(&sb, ds, &ds->rejects[i]);
    int rc = sb.failed ? err_set(e, ERR_NOMEM, "%s: cannot allocate the rejects list", path)
                       : fs_write_atomic(path, sb.data ? sb.data : "", sb.len, e);
    sb_free(&sb);
    return rc;
}

static int key_as_id(const char *key, long long *id)
{
    char *end = NULL;
    if (!*key) return -1;
    *id = strtoll(key, &end, 10);
    return *end ? -1 : 0;
}

int manifest_write_annotations(const char *path, const ds_t *ds, const char *split, size_t *n_images, err_t *e)
{
    *n_images = 0;
    sbuf_t imgs = {0}, anns = {0};
    long long ann_id = 0;
    int rc = 0;
    for (size_t i = 0; i < ds->n_images && !rc; i++) {
        const ds_image_t *im = &ds->images[i];
        if (strcmp(ds_str(ds, im->split), split)) continue;
        long long id;
        if (key_as_id(ds_str(ds, im->key), &id)) {
            rc = err_set(e, ERR_UNSUPPORTED, "%s: key '%s' is not an integer image id", path, ds_str(ds, im->key));
            break;
        }
        const char *fname = strrchr(ds_str(ds, im->path), '/');
        fname = fname ? fname + 1 : ds_str(ds, im->path);
        sb_printf(&imgs, "%s\n    {\"id\": %lld, \"file_name\": ", *n_images ? "," : "", id);
        sb_json_str(&imgs, fname, strlen(fname));
        sb_puts(&imgs, "}");
        (*n_images)++;
        for (uint32_t c = 0; c < im->n_captions; c++) {
            const ds_caption_t *cap = &ds->captions[im->first_caption + c];
            ann_id++;
            sb_printf(&anns, "%s\n    {\"id\": %lld, \"image_id\": %lld, \"caption\": ", ann_id > 1 ? "," : "", ann_id, id);
            sb_json_str(&anns, ds_str(ds, cap->text), cap->len);
            sb_puts(&anns, "}");
        }
    }
    if (!rc && *n_images == 0) rc = err_set(e, ERR_NOTFOUND, "%s: split '%s' has no images in the manifest", path, split);
    if (!rc) {
        sbuf_t doc = {0};
        sb_puts(&doc, "{\n  \"info\": {\"description\": \"reference captions written by clipcap shard\"},\n"
                      "  \"type\": \"captions\",\n  \"images\": [");
        sb_append(&doc, imgs.data ? imgs.data : "", imgs.len);
        sb_puts(&doc, "\n  ],\n  \"annotations\": [");
        sb_append(&doc, anns.data ? anns.data : "", anns.len);
        sb_puts(&doc, "\n  ]\n}\n");
        rc = (doc.failed || imgs.failed || anns.failed) ? err_set(e, ERR_NOMEM, "%s: cannot allocate", path)
                                                        : fs_write_atomic(path, doc.data, doc.len, e);
        sb_free(&doc);
    }
    sb_free(&imgs);
    sb_free(&anns);
    return rc;
}
