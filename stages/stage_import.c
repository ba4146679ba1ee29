/* `clipcap import`: the paper's features file (parse_coco.py's pickle of
 * {"clip_embedding": Tensor[N, D], "captions": [{image_id, caption, id,
 * clip_embedding: row}]}, one row per CAPTION) → a manifest (the captions,
 * tokenised, written by `clipcap shard` from a COCO caption file made
 * here) and a feature store with ONE embedding per image, so a user of the
 * Python code trains on the features they already have.
 *
 * parse_coco.py encodes an image once per caption; those rows must agree.
 * An image whose rows differ by more than fp16 noise (max|row - first| >
 * 1e-2 x max|first|) gets no embedding: it is written to the store's
 * failures table with reason "inconsistent_duplicates" (train then skips
 * it, as any failed image) and counted in the summary; the first row is
 * used otherwise.
 *
 * Every rank reads the pickle and takes part in shard (its manifest is
 * the same for any rank count); rank 0 alone writes the store, into one
 * environment, so the output does not depend on the rank count. */
#include "core/cli.h"
#include "core/fsutil.h"
#include "core/log.h"
#include "core/mpictx.h"
#include "io/json_util.h"
#include "io/torch_pt.h"
#include "store/store.h"

#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char stage_import_summary[] = "the paper's parse_coco.py features pickle → manifest + feature store";

int stage_shard_main(int argc, char **argv);

static void import_usage(FILE *out)
{
    fprintf(out,
            "usage: clipcap import PICKLE --gpt2 DIR --out DIR [--annotations FILE] [options]\n\n"
            "Turns the features file of the ClipCap reference code (parse_coco.py's\n"
            "oscar_split_ViT-B_32_train.pkl: CLIP embeddings, one row per caption, and the\n"
            "caption records) into DIR/manifest (as `clipcap shard` writes it, captions\n"
            "tokenised) and DIR/store (one embedding per image; images whose rows disagree\n"
            "are recorded as failures), which `clipcap train` reads.\n\n"
            "  --gpt2 DIR          GPT-2 tokenizer (vocab.json + merges.txt); --tokenizer is\n"
            "                      the same flag\n"
            "  --out DIR           output folder: DIR/manifest, DIR/store, DIR/import/\n"
            "  --annotations FILE  the json parse_coco.py read (train_caption.json): every\n"
            "                      pickled caption must be in it, same image and text\n"
            "  --split NAME        the manifest split (default train)\n"
            "  --images-root DIR   where the images are, for stages that need pixels\n"
            "                      (default: none; manifest paths are then not checked)\n"
            "  --image-name FMT    file name of an image from its id, a printf format of one\n"
            "                      integer (default COCO_train2014_%%012lld.jpg)\n"
            "  --shards N          manifest shards (default 1)\n"
            "  -h, --help          this help\n");
}

typedef struct import_opts {
    const char *pickle, *gpt2, *out, *annotations, *split, *images_root, *image_name;
    int shards;
} import_opts;

typedef struct import_row {
    int64_t image_id, ann_id;
    int has_id;
    const char *caption;
    int64_t row;
    size_t order; /* position in the pickle's caption list */
} import_row;

static int row_cmp(const void *pa, const void *pb)
{
    const import_row *a = pa, *b = pb;
    if (a->image_id != b->image_id) return a->image_id < b->image_id ? -1 : 1;
    return a->order < b->order ? -1 : a->order > b->order;
}

static int import_parse_args(int argc, char **argv, import_opts *o, err_t *e)
{
    static const struct option opts[] = {
        {"gpt2", required_argument, 0, 'g'},        {"tokenizer", required_argument, 0, 'g'},
        {"out", required_argument, 0, 'o'},         {"annotations", required_argument, 0, 'a'},
        {"split", required_argument, 0, 's'},       {"images-root", required_argument, 0, 'r'},
        {"image-name", required_argument, 0, 'n'},  {"shards", required_argument, 0, 'S'},
        {"help", no_argument, 0, 'h'},              {0, 0, 0, 0}};
    memset(o, 0, sizeof *o);
    o->split = "train";
    o->image_name = "COCO_train2014_%012lld.jpg";
    o->shards = 1;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'g': o->gpt2 = optarg; break;
        case 'o': o->out = optarg; break;
        case 'a': o->annotations = optarg; break;
        case 's': o->split = optarg; break;
        case 'r': o->images_root = optarg; break;
        case 'n': o->image_name = optarg; break;
        case 'S':
            if (cli_parse_int("shards", optarg, 1, 4096, &o->shards, e)) return ERR_ARG;
            break;
        case 'h': return 1;
        default: return err_set(e, ERR_ARG, "bad option (try --help)");
        }
    }
    if (optind != argc - 1) return err_set(e, ERR_ARG, "one PICKLE expected (try --help)");
    o->pickle = argv[optind];
    if (!o->gpt2 || !o->out) return err_set(e, ERR_ARG, "--gpt2 and --out are required (try --help)");
    /* the format must take exactly one integer conversion */
    const char *pct = strstr(o->image_name, "%");
    if (!pct || strstr(pct + 1, "%") || !strstr(pct, "lld"))
        return err_set(e, ERR_ARG, "--image-name '%s': expected one %%...lld conversion", o->image_name);
    return 0;
}

/* The pickle's caption records, validated: [image_id, caption, row]. */
static int import_read_rows(const pt_pickle *p, const import_opts *o, pt_tensor *emb, import_row **rows_out, size_t *n_out,
                            err_t *e)
{
    const pt_value *root = pt_pickle_root(p), *caps = pt_dict_get(root, "captions");
    if (pt_value_kind(root) != PT_DICT || pt_value_kind(caps) != PT_LIST)
        return err_set(e, ERR_FORMAT, "%s: not parse_coco.py's output: expected a dict with 'clip_embedding' and 'captions'", o->pickle);
    int rc = pt_value_tensor(p, pt_dict_get(root, "clip_embedding"), "clip_embedding", emb, e);
    if (rc) return rc;
    if (emb->ndim != 2 || emb->shape[0] < 1 || emb->shape[1] < 1 || emb->shape[1] > STORE_MAX_DIM)
        return err_set(e, ERR_FORMAT, "%s: clip_embedding must be [N, D] with N >= 1 and 1 <= D <= %u", o->pickle, STORE_MAX_DIM);
    size_t n = pt_value_len(caps);
    import_row *rows = calloc(n ? n : 1, sizeof *rows);
    if (!rows) return err_set(e, ERR_NOMEM, "%s: %zu captions", o->pickle, n);
    for (size_t i = 0; i < n; i++) {
        const pt_value *d = pt_value_at(caps, i), *id = pt_dict_get(d, "image_id"), *row = pt_dict_get(d, "clip_embedding"),
                       *ann = pt_dict_get(d, "id");
        const char *text = pt_value_str(pt_dict_get(d, "caption"));
        if (pt_value_kind(id) != PT_INT || pt_value_kind(row) != PT_INT || !text) {
            free(rows);
            return err_set(e, ERR_FORMAT, "%s: caption %zu: needs integer 'image_id', string 'caption' and integer 'clip_embedding'",
                           o->pickle, i);
        }
        if (pt_value_int(row) < 0 || pt_value_int(row) >= emb->shape[0]) {
            free(rows);
            return err_set(e, ERR_FORMAT, "%s: caption %zu: clip_embedding row %lld outside the %lld rows", o->pickle, i,
                           (long long)pt_value_int(row), (long long)emb->shape[0]);
        }
        rows[i] = (import_row){pt_value_int(id), pt_value_int(ann), pt_value_kind(ann) == PT_INT, text, pt_value_int(row), i};
    }
    *rows_out = rows;
    *n_out = n;
    return 0;
}

/* Every pickled caption with an id must be that annotation of FILE. */
static int import_check_annotations(const import_opts *o, const import_row *rows, size_t n, err_t *e)
{
    json_t *doc = NULL;
    int rc = json_load_path(&doc, o->annotations, e);
    if (rc) return rc;
    json_t *list = json_is_object(doc) ? json_object_get(doc, "annotations") : doc;
    if (!json_is_array(list)) {
        json_decref(doc);
        return err_set(e, ERR_FORMAT, "%s: expected a list of {image_id, caption, id} (or COCO's 'annotations')", o->annotations);
    }
    size_t m = json_array_size(list);
    import_row *ann = calloc(m ? m : 1, sizeof *ann);
    if (!ann) rc = err_set(e, ERR_NOMEM, "%s: %zu annotations", o->annotations, m);
    for (size_t i = 0; !rc && i < m; i++) {
        const json_t *a = json_array_get(list, i), *id = json_object_get(a, "id"), *img = json_object_get(a, "image_id"),
                     *cap = json_object_get(a, "caption");
        if (!json_is_integer(id) || !json_is_integer(img) || !json_is_string(cap))
            rc = err_set(e, ERR_FORMAT, "%s: annotation %zu: needs integer 'id', 'image_id' and string 'caption'", o->annotations, i);
        else ann[i] = (import_row){json_integer_value(img), json_integer_value(id), 1, json_string_value(cap), 0, i};
    }
    for (size_t i = 0; !rc && i < n; i++) {
        if (!rows[i].has_id) continue;
        size_t k = 0;
        while (k < m && ann[k].ann_id != rows[i].ann_id) k++;
        if (k == m)
            rc = err_set(e, ERR_FORMAT, "%s: caption %zu (id %lld) is not in %s: the pickle was made from another file", o->pickle,
                         rows[i].order, (long long)rows[i].ann_id, o->annotations);
        else if (ann[k].image_id != rows[i].image_id || strcmp(ann[k].caption, rows[i].caption))
            rc = err_set(e, ERR_FORMAT, "%s: caption %zu (id %lld) differs from %s's annotation %zu", o->pickle, rows[i].order,
                         (long long)rows[i].ann_id, o->annotations, k);
    }
    free(ann);
    json_decref(doc);
    return rc;
}

/* DIR/import/captions_SPLIT.json (shard names the split after the file). */
static int import_coco_path(const import_opts *o, char *path, size_t cap, err_t *e)
{
    char name[300];
    snprintf(name, sizeof name, "import/captions_%s.json", o->split);
    return fs_join(path, cap, o->out, name, e);
}

/* The captions as a COCO caption file, for shard. */
static int import_write_coco(const import_opts *o, const import_row *rows, size_t n, const char *path, err_t *e)
{
    char dir[4096];
    int rc = fs_join(dir, sizeof dir, o->out, "import", e);
    if (!rc) rc = fs_mkdirs(dir, e);
    if (rc) return rc;
    json_t *images = json_array(), *anns = json_array(), *doc = json_object();
    int bad = !images || !anns || !doc;
    for (size_t i = 0; i < n && !bad; i++) {
        if (i == 0 || rows[i].image_id != rows[i - 1].image_id) {
            char file[512];
            snprintf(file, sizeof file, o->image_name, (long long)rows[i].image_id);
            bad |= json_array_append_new(images, json_pack("{s:I, s:s}", "id", (json_int_t)rows[i].image_id, "file_name", file));
        }
        /* annotation ids from the pickle, else the caption's position */
        json_int_t id = rows[i].has_id ? (json_int_t)rows[i].ann_id : (json_int_t)rows[i].order;
        bad |= json_array_append_new(anns, json_pack("{s:I, s:I, s:s}", "id", id, "image_id", (json_int_t)rows[i].image_id,
                                                     "caption", rows[i].caption));
    }
    bad |= !doc || json_object_set_new(doc, "images", images) || json_object_set_new(doc, "annotations", anns);
    char *text = bad ? NULL : json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    if (!text) return err_set(e, ERR_NOMEM, "%s: cannot build the caption file", path);
    rc = fs_write_atomic(path, text, strlen(text), e);
    free(text);
    return rc;
}

typedef struct import_counts {
    size_t images, encoded, inconsistent;
} import_counts;

/* One embedding (or failure) per image into DIR/store, one transaction,
 * then consolidated into the store's pack. */
static int import_write_store(const import_opts *o, const pt_tensor *emb, const import_row *rows, size_t n,
                              import_counts *cnt, err_t *e)
{
    const uint32_t D = (uint32_t)emb->shape[1];
    char dir[4096], env_name[64], fp[33];
    int rc = fs_join(dir, sizeof dir, o->out, "store", e);
    store_env_name(env_name, sizeof env_name, 0, 1);
    store_env *env = NULL;
    store *s = NULL;
    uint64_t gen = 0;
    if (!rc) rc = fs_mkdirs(dir, e);
    if (!rc) rc = store_env_create(&env, dir, env_name, 0, e);
    if (!rc) rc = store_open(&s, dir, env, e);
    if (!rc) rc = store_generation_max(s, &gen, e);
    /* no CLIP weights to fingerprint: the features file's name stands for them */
    const char *base = strrchr(o->pickle, '/');
    base = base ? base + 1 : o->pickle;
    char tag[600];
    snprintf(tag, sizeof tag, "clipcap import %s D%u", base, D);
    hash_hex128(tag, strlen(tag), fp);
    size_t n_img = 0;
    for (size_t i = 0; i < n; i++) n_img += i == 0 || rows[i].image_id != rows[i - 1].image_id;
    store_put *items = calloc(n_img ? n_img : 1, sizeof *items);
    store_record *recs = calloc(n_img ? n_img : 1, sizeof *recs);
    store_failure *fails = calloc(n_img ? n_img : 1, sizeof *fails);
    float *vecs = malloc((size_t)n_img * D * sizeof *vecs), *other = malloc((size_t)D * sizeof *other);
    char (*keys)[32] = calloc(n_img ? n_img : 1, sizeof *keys);
    if (!rc && (!items || !recs || !fails || !vecs || !other || !keys)) rc = err_set(e, ERR_NOMEM, "%s: %zu embeddings", dir, n_img);
    size_t k = 0;
    for (size_t i = 0; !rc && i < n; k++) {
        size_t j = i + 1;
        while (j < n && rows[j].image_id == rows[i].image_id) j++;
        float *v = vecs + k * D;
        pt_tensor_f32(emb, (size_t)rows[i].row * D, D, v);
        double scale = 0, worst = 0;
        for (uint32_t d = 0; d < D; d++) scale = fabs(v[d]) > scale ? fabs(v[d]) : scale;
        size_t worst_row = 0;
        for (size_t r = i + 1; r < j; r++) {
            pt_tensor_f32(emb, (size_t)rows[r].row * D, D, other);
            for (uint32_t d = 0; d < D; d++)
                if (fabs((double)other[d] - v[d]) > worst) worst = fabs((double)other[d] - v[d]), worst_row = r;
        }
        snprintf(keys[k], sizeof keys[k], "%lld", (long long)rows[i].image_id);
        items[k].key = keys[k];
        if (worst > 1e-2 * scale) {
            fails[k].generation = gen + 1;
            snprintf(fails[k].reason, sizeof fails[k].reason, "inconsistent_duplicates");
            snprintf(fails[k].message, sizeof fails[k].message,
                     "%s: image %lld: embedding rows %lld and %lld differ by %.3g (max |value| %.3g): not one image's encoding",
                     base, (long long)rows[i].image_id, (long long)rows[i].row, (long long)rows[worst_row].row, worst, scale);
            items[k].failure = &fails[k];
            log_msg(LOG_WARN, "%s", fails[k].message);
            cnt->inconsistent++;
        } else {
            recs[k] = (store_record){.version = STORE_FORMAT_VERSION, .dtype = emb->dtype == ST_F16 ? STORE_FP16 : STORE_FP32,
                                     .dim = D, .generation = gen + 1};
            memcpy(recs[k].model, fp, sizeof fp);
            hash_hex128(v, (size_t)D * sizeof *v, recs[k].content_hash);
            items[k].rec = &recs[k];
            items[k].embedding = v;
            cnt->encoded++;
        }
        i = j;
    }
    cnt->images = n_img;
    if (!rc) rc = store_env_write(env, items, n_img, e);
    store_close(s); /* the union first: it borrows env */
    store_env_close(env);
    /* readers use the consolidated pack (docs/store.md) */
    store_consolidation c;
    if (!rc) rc = store_consolidate(dir, &c, e);
    free(items), free(recs), free(fails), free(vecs), free(other), free(keys);
    return rc;
}

static int import_write_summary(const import_opts *o, const import_counts *c, size_t captions, err_t *e)
{
    char path[4096];
    int rc = fs_join(path, sizeof path, o->out, "store/summary.json", e);
    if (rc) return rc;
    json_t *j = json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:{s:I}}", "source", "import", "pickle", o->pickle, "captions",
                          (json_int_t)captions, "images", (json_int_t)c->images, "encoded", (json_int_t)c->encoded, "failed",
                          (json_int_t)c->inconsistent, "failures_by_reason", "inconsistent_duplicates", (json_int_t)c->inconsistent);
    char *text = j ? json_dumps(j, JSON_INDENT(1)) : NULL;
    json_decref(j);
    if (!text) return err_set(e, ERR_NOMEM, "%s", path);
    printf("%s\n", text);
    rc = fs_write_atomic(path, text, strlen(text), e);
    free(text);
    return rc;
}

static int import_run(const import_opts *o, err_t *e)
{
    pt_pickle *p = NULL;
    pt_tensor emb;
    import_row *rows = NULL;
    size_t n = 0;
    char coco[4096];
    int rc = pt_pickle_open(&p, o->pickle, e);
    if (!rc) rc = import_read_rows(p, o, &emb, &rows, &n, e);
    if (!rc && o->annotations) rc = import_check_annotations(o, rows, n, e);
    if (!rc) qsort(rows, n, sizeof *rows, row_cmp);
    if (!rc) rc = import_coco_path(o, coco, sizeof coco, e);
    if (!rc && mpictx_rank() == 0) rc = import_write_coco(o, rows, n, coco, e);
    if ((rc = mpictx_agree(rc, e))) goto done;
    char man[4096], shards[16];
    snprintf(shards, sizeof shards, "%d", o->shards);
    if ((rc = fs_join(man, sizeof man, o->out, "manifest", e))) goto done;
    const char *root = o->images_root ? o->images_root : o->out;
    char *argv[] = {"shard", "--format", "coco", "--input", coco, "--images-root", (char *)root, "--gpt2", (char *)o->gpt2,
                    "--out", man, "--shards", shards, "--no-image-check", NULL};
    if (stage_shard_main((int)(sizeof argv / sizeof argv[0]) - 1, argv)) {
        rc = err_set(e, ERR_FORMAT, "%s: writing the manifest failed (see above)", man);
        goto done;
    }
    if (mpictx_rank() == 0) {
        import_counts c = {0};
        rc = import_write_store(o, &emb, rows, n, &c, e);
        if (!rc) rc = import_write_summary(o, &c, n, e);
        if (!rc)
            log_msg(LOG_INFO, "import: %zu captions of %zu images → %s/manifest, %zu embeddings (%s) in %s/store, %zu images with disagreeing rows",
                    n, c.images, o->out, c.encoded, emb.dtype == ST_F16 ? "fp16" : "fp32", o->out, c.inconsistent);
    }
done:
    free(rows);
    pt_pickle_close(p);
    return rc;
}

int stage_import_main(int argc, char **argv)
{
    import_opts o;
    err_t e = {0};
    int rc = import_parse_args(argc, argv, &o, &e);
    if (rc == 1) {
        import_usage(stdout);
        return 0;
    }
    if (!rc) rc = import_run(&o, &e);
    return rc ? err_report("import", &e) : 0;
}
