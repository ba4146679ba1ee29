#include "data/synth.h"
#include "core/fsutil.h"
#include "core/mpictx.h"
#include "core/progress.h"
#include "data/synth_draw.h"
#include "data/synth_encode.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Records drawn and encoded together: enough to keep threads busy, few
 * enough that a chunk of multi-megapixel images stays in memory. */
enum { CHUNK = 32 };

int synth_render(const synth_record_t *r, uint8_t **image, size_t *len, err_t *e)
{
    *image = NULL;
    *len = 0;
    if (r->bad == SYNTH_BAD_MISSING_IMAGE || r->bad == SYNTH_BAD_FAILED_DOWNLOAD) return 0;
    uint8_t *rgba = malloc((size_t)r->width * (size_t)r->height * 4);
    if (!rgba) return err_set(e, ERR_NOMEM, "record %llu: cannot allocate %dx%d pixels", (unsigned long long)r->index,
                              r->width, r->height);
    synth_draw(&r->scene, r->width, r->height, rgba);
    int rc = synth_encode(r->format, rgba, r->width, r->height, image, len, e);
    free(rgba);
    if (rc) return err_wrap(e, "record %llu", (unsigned long long)r->index);
    if (r->bad == SYNTH_BAD_TRUNCATED) *len /= 2;
    if (r->bad == SYNTH_BAD_ZERO_LENGTH) *len = 0;
    return 0;
}

/* One chunk [lo, hi) of a shard: render in parallel, write in order. */
static int do_chunk(const synth_plan_t *p, uint64_t lo, uint64_t hi, tar_writer_t *tar, err_t *e)
{
    int n = (int)(hi - lo);
    synth_record_t rec[CHUNK];
    uint8_t *img[CHUNK] = {0};
    size_t len[CHUNK] = {0};
    int rcs[CHUNK] = {0};
    err_t errs[CHUNK];
#pragma omp parallel for schedule(dynamic, 1)
    for (int k = 0; k < n; k++) {
        synth_plan_record(p, lo + (uint64_t)k, &rec[k]);
        errs[k].code = 0;
        errs[k].msg[0] = 0;
        rcs[k] = synth_render(&rec[k], &img[k], &len[k], &errs[k]);
    }
    int rc = 0;
    for (int k = 0; k < n; k++) {
        if (!rc && rcs[k]) {
            rc = rcs[k];
            if (e) *e = errs[k];
        }
        if (!rc) rc = synth_layout_write_record(p, &rec[k], img[k], len[k], tar, e);
        free(img[k]);
    }
    return rc;
}

static int do_shard(const synth_plan_t *p, uint64_t shard, progress_t *pr, uint64_t *done, err_t *e)
{
    uint64_t lo = shard * p->o.per_shard, hi = lo + p->o.per_shard;
    if (hi > p->total) hi = p->total;
    tar_writer_t *tar = NULL;
    char path[4096], rel[64];
    int rc = synth_layout_shard_dir(p, shard, e);
    if (rc) return rc;
    if (p->o.layouts & SYNTH_LAYOUT_CC_TAR) {
        synth_cc_tar_path(shard, rel, sizeof rel);
        if (!(rc = fs_join(path, sizeof path, p->o.out, rel, e))) rc = tar_writer_open(&tar, path, e);
        if (rc) return rc;
    }
    for (uint64_t c = lo; c < hi && !rc; c += CHUNK) {
        uint64_t end = c + CHUNK < hi ? c + CHUNK : hi;
        rc = do_chunk(p, c, end, tar, e);
        *done += end - c;
        progress_update(pr, *done, 0);
    }
    if (tar) {
        if (rc) tar_writer_abort(tar);
        else rc = tar_writer_close(tar, e);
    }
    return rc;
}

int synth_generate(const synth_opts_t *o, synth_summary_t *s, err_t *e)
{
    synth_plan_t p;
    memset(s, 0, sizeof *s);
    int rc = synth_plan_init(&p, o, e);
    if (!rc) rc = synth_layout_dirs(&p, e);
    /* Directories exist on every rank before anyone writes into them. */
    rc = mpictx_agree(rc, e);
    if (rc) return rc;
    int rank = mpictx_rank(), size = mpictx_size();
    if (rank == 0) rc = synth_layout_write_metadata(&p, s, e);
    /* The TSV alone needs no pixels. */
    int images = (o->layouts & ~(unsigned)SYNTH_LAYOUT_CC_TSV) != 0;
    uint64_t shards = images ? (p.total + o->per_shard - 1) / o->per_shard : 0, mine = 0, done = 0;
    for (uint64_t sh = (uint64_t)rank; sh < shards; sh += (uint64_t)size) {
        uint64_t lo = sh * o->per_shard;
        mine += (lo + o->per_shard < p.total ? lo + o->per_shard : p.total) - lo;
    }
    progress_t pr;
    progress_start(&pr, "synth", "img", mine);
    for (uint64_t sh = (uint64_t)rank; sh < shards && !rc; sh += (uint64_t)size) rc = do_shard(&p, sh, &pr, &done, e);
    progress_finish(&pr);
    return mpictx_agree(rc, e);
}
