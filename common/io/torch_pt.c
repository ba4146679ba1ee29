#include "io/torch_pt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fsutil.h"

/* ---- zip directory ---------------------------------------------------- */

typedef struct pt_zentry {
    char *name;
    const uint8_t *data;
    uint64_t size;
    unsigned method; /* 0 = stored; TorchScript deflates its code/ entries, which we never read */
} pt_zentry;

/* Entries we read must be stored, as torch writes data.pkl and storages. */
static int pt_zstored(const struct pt_file *f, const pt_zentry *z, err_t *e);

struct pt_file {
    char path[1024];
    const uint8_t *map;
    size_t map_len;
    int owns_map;
    pt_zentry *zip;
    int nzip;
    pt_tensor *tensors;
    int n, cap;
};

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t rd32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static uint64_t rd64(const uint8_t *p) { return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32; }

static int pt_zcmp(const void *a, const void *b)
{
    return strcmp(((const pt_zentry *)a)->name, ((const pt_zentry *)b)->name);
}

static const pt_zentry *pt_zfind(const pt_file *f, const char *name)
{
    pt_zentry key = {.name = (char *)name};
    return bsearch(&key, f->zip, (size_t)f->nzip, sizeof key, pt_zcmp);
}

/* Take the sizes and local-header offset from the zip64 extra field where
 * the 32-bit fields say 0xFFFFFFFF. */
static int pt_zip64_extra(const uint8_t *x, size_t xlen, uint64_t *usize, uint64_t *csize, uint64_t *loff)
{
    size_t i = 0;
    while (i + 4 <= xlen) {
        uint16_t id = rd16(x + i), n = rd16(x + i + 2);
        if (i + 4 + n > xlen) return -1;
        if (id == 1) {
            const uint8_t *p = x + i + 4, *end = p + n;
            uint64_t *fields[3] = {usize, csize, loff};
            for (int k = 0; k < 3; k++) {
                if (*fields[k] != 0xFFFFFFFFu) continue;
                if (p + 8 > end) return -1;
                *fields[k] = rd64(p);
                p += 8;
            }
            return 0;
        }
        i += 4 + (size_t)n;
    }
    return 0;
}

static int pt_parse_zip(pt_file *f, err_t *e)
{
    const uint8_t *m = f->map;
    size_t len = f->map_len;
    if (len < 22) return err_set(e, ERR_FORMAT, "%s: too short for a zip archive", f->path);
    size_t eocd = 0;
    int found = 0;
    size_t lowest = len > 22 + 65535 ? len - 22 - 65535 : 0;
    for (size_t p = len - 22 + 1; p-- > lowest;) {
        if (rd32(m + p) == 0x06054b50u) {
            eocd = p;
            found = 1;
            break;
        }
    }
    if (!found) return err_set(e, ERR_FORMAT, "%s: no zip end-of-central-directory record", f->path);
    uint64_t count = rd16(m + eocd + 10), cd_size = rd32(m + eocd + 12), cd_off = rd32(m + eocd + 16);
    if ((count == 0xFFFF || cd_size == 0xFFFFFFFFu || cd_off == 0xFFFFFFFFu) && eocd >= 20 && rd32(m + eocd - 20) == 0x07064b50u) {
        uint64_t z = rd64(m + eocd - 20 + 8);
        if (len < 56 || z > len - 56 || rd32(m + z) != 0x06064b50u) return err_set(e, ERR_FORMAT, "%s: bad zip64 end record", f->path);
        count = rd64(m + z + 32);
        cd_size = rd64(m + z + 40);
        cd_off = rd64(m + z + 48);
    }
    if (cd_off > len || cd_size > len - cd_off) return err_set(e, ERR_FORMAT, "%s: zip central directory outside the file", f->path);
    if (count > cd_size / 46) return err_set(e, ERR_FORMAT, "%s: zip directory claims %llu entries in %llu bytes", f->path, (unsigned long long)count, (unsigned long long)cd_size);
    f->zip = calloc(count ? (size_t)count : 1, sizeof *f->zip);
    if (!f->zip) return err_set(e, ERR_NOMEM, "%s: %llu zip entries", f->path, (unsigned long long)count);
    const uint8_t *p = m + cd_off, *end = m + cd_off + cd_size;
    for (uint64_t i = 0; i < count; i++) {
        if (end - p < 46 || rd32(p) != 0x02014b50u) return err_set(e, ERR_FORMAT, "%s: zip directory entry %llu is corrupt", f->path, (unsigned long long)i);
        uint16_t method = rd16(p + 10), nlen = rd16(p + 28), xlen = rd16(p + 30), clen = rd16(p + 32);
        uint64_t csize = rd32(p + 20), usize = rd32(p + 24), loff = rd32(p + 42);
        if ((size_t)(end - p) < 46u + nlen + xlen + clen) return err_set(e, ERR_FORMAT, "%s: zip directory entry %llu is truncated", f->path, (unsigned long long)i);
        char *name = malloc((size_t)nlen + 1);
        if (!name) return err_set(e, ERR_NOMEM, "%s: zip entry name", f->path);
        memcpy(name, p + 46, nlen);
        name[nlen] = 0;
        f->zip[f->nzip].name = name;
        f->nzip++;
        if (pt_zip64_extra(p + 46 + nlen, xlen, &usize, &csize, &loff))
            return err_set(e, ERR_FORMAT, "%s: zip entry '%s': bad zip64 extra field", f->path, name);
        f->zip[f->nzip - 1].method = method;
        if (method != 0) usize = csize; /* the entry's bytes as they are; pt_zstored refuses to use them */
        if (csize != usize) return err_set(e, ERR_FORMAT, "%s: zip entry '%s': stored entry with different sizes", f->path, name);
        if (loff > len || len - loff < 30 || rd32(m + loff) != 0x04034b50u)
            return err_set(e, ERR_FORMAT, "%s: zip entry '%s': bad local header offset", f->path, name);
        uint64_t data = loff + 30 + rd16(m + loff + 26) + rd16(m + loff + 28);
        if (data > len || usize > len - data) return err_set(e, ERR_FORMAT, "%s: zip entry '%s' extends past the end of the file", f->path, name);
        f->zip[f->nzip - 1].data = m + data;
        f->zip[f->nzip - 1].size = usize;
        p += 46 + nlen + xlen + clen;
    }
    qsort(f->zip, (size_t)f->nzip, sizeof *f->zip, pt_zcmp);
    for (int i = 1; i < f->nzip; i++)
        if (!strcmp(f->zip[i].name, f->zip[i - 1].name)) return err_set(e, ERR_FORMAT, "%s: zip entry '%s' appears twice", f->path, f->zip[i].name);
    return 0;
}

static int pt_zstored(const struct pt_file *f, const pt_zentry *z, err_t *e)
{
    if (z->method == 0) return 0;
    return err_set(e, ERR_UNSUPPORTED, "%s: zip entry '%s' is compressed (method %u); torch.save stores entries uncompressed", f->path,
                   z->name, z->method);
}

/* ---- pickle machine --------------------------------------------------- */

enum pk_kind { PK_MARK, PK_NONE, PK_BOOL, PK_INT, PK_FLOAT, PK_STR, PK_TUPLE, PK_LIST, PK_DICT, PK_GLOBAL, PK_STORAGE, PK_TENSOR, PK_MODULE, PK_BYTES };

typedef struct pk_obj pk_obj;
struct pk_obj {
    enum pk_kind kind;
    pk_obj *next_alloc; /* every object, for freeing */
    int64_t i;          /* INT, BOOL */
    double d;
    char *s;            /* STR (NUL-terminated copy), GLOBAL "module.name", STORAGE key, MODULE class */
    size_t slen;
    pk_obj **items;     /* TUPLE, LIST; DICT as key, value pairs */
    size_t n, cap;
    enum st_dtype dtype;    /* STORAGE, TENSOR */
    pk_obj *storage;        /* TENSOR */
    pk_obj *state;          /* MODULE: its attribute dict, set by BUILD */
    const uint8_t *bytes;   /* BYTES (borrowed from the pickle's buffer); STORAGE read from a legacy save */
    uint64_t nbytes;
    int64_t offset;         /* TENSOR: storage offset in elements */
    int ndim;
    int64_t shape[PT_MAX_DIMS], stride[PT_MAX_DIMS];
};

typedef struct pk_vm {
    const char *path;
    const char *what; /* "data.pkl", "pickle", ...: named in errors */
    const uint8_t *p, *end, *start;
    pk_obj *allocs;
    pk_obj **stack;
    size_t sp, scap;
    pk_obj **memo;
    size_t nmemo;
    size_t memo_keys; /* distinct indices set: MEMOIZE's next index */
    pk_obj mark; /* the one MARK object (never freed separately) */
    err_t *e;
} pk_vm;

static pk_obj *pk_new(pk_vm *vm, enum pk_kind kind)
{
    pk_obj *o = calloc(1, sizeof *o);
    if (!o) return NULL;
    o->kind = kind;
    o->next_alloc = vm->allocs;
    vm->allocs = o;
    return o;
}

static void pk_free_all(pk_vm *vm)
{
    for (pk_obj *o = vm->allocs, *nx; o; o = nx) {
        nx = o->next_alloc;
        free(o->s);
        free(o->items);
        free(o);
    }
    free(vm->stack);
    free(vm->memo);
}

static size_t pk_pos(const pk_vm *vm) { return (size_t)(vm->p - vm->start); }

static int pk_err(pk_vm *vm, int code, const char *what, size_t at)
{
    return err_set(vm->e, code, "%s: %s: %s at byte %zu", vm->path, vm->what, what, at);
}

static int pk_push(pk_vm *vm, pk_obj *o)
{
    if (!o) return err_set(vm->e, ERR_NOMEM, "%s: data.pkl: out of memory", vm->path);
    if (vm->sp == vm->scap) {
        size_t cap = vm->scap ? vm->scap * 2 : 64;
        pk_obj **ns = realloc(vm->stack, cap * sizeof *ns);
        if (!ns) return err_set(vm->e, ERR_NOMEM, "%s: data.pkl: out of memory", vm->path);
        vm->stack = ns;
        vm->scap = cap;
    }
    vm->stack[vm->sp++] = o;
    return 0;
}

static int pk_append(pk_vm *vm, pk_obj *c, pk_obj *x)
{
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 8;
        pk_obj **ni = realloc(c->items, cap * sizeof *ni);
        if (!ni) return err_set(vm->e, ERR_NOMEM, "%s: data.pkl: out of memory", vm->path);
        c->items = ni;
        c->cap = cap;
    }
    c->items[c->n++] = x;
    return 0;
}

/* Pop one value (never a MARK). */
static int pk_pop(pk_vm *vm, pk_obj **o, size_t at)
{
    if (vm->sp == 0 || vm->stack[vm->sp - 1]->kind == PK_MARK) return pk_err(vm, ERR_FORMAT, "stack underflow", at);
    *o = vm->stack[--vm->sp];
    return 0;
}

/* The index of the topmost MARK. */
static int pk_find_mark(pk_vm *vm, size_t *mark, size_t at)
{
    for (size_t i = vm->sp; i-- > 0;)
        if (vm->stack[i]->kind == PK_MARK) {
            *mark = i;
            return 0;
        }
    return pk_err(vm, ERR_FORMAT, "no MARK on the stack", at);
}

static int pk_need(pk_vm *vm, size_t n, size_t at)
{
    if ((size_t)(vm->end - vm->p) < n) return pk_err(vm, ERR_FORMAT, "truncated opcode argument", at);
    return 0;
}

/* Replace stack[from..sp) by one tuple of those items. */
static int pk_make_tuple(pk_vm *vm, size_t from)
{
    pk_obj *t = pk_new(vm, PK_TUPLE);
    if (!t) return pk_push(vm, NULL);
    for (size_t i = from; i < vm->sp; i++) {
        int rc = pk_append(vm, t, vm->stack[i]);
        if (rc) return rc;
    }
    vm->sp = from;
    return pk_push(vm, t);
}

static int pk_str(pk_vm *vm, enum pk_kind kind, const uint8_t *s, size_t n)
{
    pk_obj *o = pk_new(vm, kind);
    if (!o || !(o->s = malloc(n + 1))) return pk_push(vm, NULL);
    memcpy(o->s, s, n);
    o->s[n] = 0;
    o->slen = n;
    return pk_push(vm, o);
}

static int pk_memo_put(pk_vm *vm, size_t idx, size_t at)
{
    if (vm->sp == 0 || vm->stack[vm->sp - 1]->kind == PK_MARK) return pk_err(vm, ERR_FORMAT, "memo put of an empty stack", at);
    /* A real memo index never exceeds the number of opcodes. */
    if (idx > (size_t)(vm->end - vm->start)) return pk_err(vm, ERR_FORMAT, "memo index out of range", at);
    if (idx >= vm->nmemo || !vm->memo[idx]) vm->memo_keys++;
    if (idx >= vm->nmemo) {
        size_t n = idx + 1 > vm->nmemo * 2 ? idx + 1 : vm->nmemo * 2;
        pk_obj **nm = realloc(vm->memo, n * sizeof *nm);
        if (!nm) return err_set(vm->e, ERR_NOMEM, "%s: data.pkl: out of memory", vm->path);
        memset(nm + vm->nmemo, 0, (n - vm->nmemo) * sizeof *nm);
        vm->memo = nm;
        vm->nmemo = n;
    }
    vm->memo[idx] = vm->stack[vm->sp - 1];
    return 0;
}

static int pk_memo_get(pk_vm *vm, size_t idx, size_t at)
{
    if (idx >= vm->nmemo || !vm->memo[idx]) return pk_err(vm, ERR_FORMAT, "memo get of an unset index", at);
    return pk_push(vm, vm->memo[idx]);
}

static const struct {
    const char *global;
    enum st_dtype dt;
} pk_storages[] = {
    {"torch.FloatStorage", ST_F32}, {"torch.HalfStorage", ST_F16}, {"torch.BFloat16Storage", ST_BF16},
    {"torch.DoubleStorage", ST_F64}, {"torch.LongStorage", ST_I64}, {"torch.IntStorage", ST_I32},
    {"torch.ByteStorage", ST_U8},   {"torch.BoolStorage", ST_BOOL}, {"torch.ShortStorage", ST_I16},
    {"torch.CharStorage", ST_I8},
};

/* persistent id ('storage', StorageType, key, location, numel) */
static int pk_persid(pk_vm *vm, pk_obj *pid, size_t at)
{
    if (pid->kind != PK_TUPLE || pid->n < 3 || pid->items[0]->kind != PK_STR || strcmp(pid->items[0]->s, "storage") ||
        pid->items[1]->kind != PK_GLOBAL || pid->items[2]->kind != PK_STR)
        return pk_err(vm, ERR_UNSUPPORTED, "persistent id is not ('storage', type, key, ...)", at);
    pk_obj *st = pk_new(vm, PK_STORAGE);
    if (!st || !(st->s = strdup(pid->items[2]->s))) return pk_push(vm, NULL);
    size_t k = 0, n = sizeof pk_storages / sizeof pk_storages[0];
    while (k < n && strcmp(pk_storages[k].global, pid->items[1]->s)) k++;
    if (k == n) {
        char msg[300];
        snprintf(msg, sizeof msg, "storage type %.200s", pid->items[1]->s);
        return pk_err(vm, ERR_UNSUPPORTED, msg, at);
    }
    st->dtype = pk_storages[k].dt;
    return pk_push(vm, st);
}

static int pk_int_tuple(pk_obj *t, int64_t *out, int *n)
{
    if (t->kind != PK_TUPLE || t->n > PT_MAX_DIMS) return -1;
    for (size_t i = 0; i < t->n; i++) {
        if (t->items[i]->kind != PK_INT) return -1;
        out[i] = t->items[i]->i;
    }
    *n = (int)t->n;
    return 0;
}

/* _rebuild_tensor_v2(storage, storage_offset, size, stride, ...) */
static pk_obj *pk_rebuild_tensor(pk_vm *vm, pk_obj *args, size_t at, int *rc)
{
    int ns = 0;
    pk_obj *t = NULL;
    if (args->n < 4 || args->items[0]->kind != PK_STORAGE || args->items[1]->kind != PK_INT) goto bad;
    t = pk_new(vm, PK_TENSOR);
    if (!t) {
        *rc = err_set(vm->e, ERR_NOMEM, "%s: data.pkl: out of memory", vm->path);
        return NULL;
    }
    t->storage = args->items[0];
    t->dtype = t->storage->dtype;
    t->offset = args->items[1]->i;
    if (pk_int_tuple(args->items[2], t->shape, &t->ndim) || pk_int_tuple(args->items[3], t->stride, &ns) || ns != t->ndim || t->offset < 0) goto bad;
    return t;
bad:
    *rc = pk_err(vm, ERR_UNSUPPORTED, "_rebuild_tensor arguments are not (storage, offset, size, stride)", at);
    return NULL;
}

static int pk_run(pk_vm *vm, pk_obj **result);

/* The pickle of torch's legacy magic number (a 10-byte LONG1). */
static const uint8_t pk_legacy_magic[] = {0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46,
                                          0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e};

/* torch.storage._load_from_bytes(b), how a storage pickles outside
 * torch.save: b is a whole legacy (pre-zip) torch.save of that storage,
 * i.e. pickles of the magic number, the protocol version, sys_info, the
 * storage (a persistent id) and the list of storage keys, then per key an
 * int64 element count and the raw little-endian elements. Each pickle runs
 * in its own machine (own memo); their objects join the caller's. */
static int pk_load_from_bytes(pk_vm *vm, const pk_obj *args, size_t at)
{
    if (args->n != 1 || args->items[0]->kind != PK_BYTES) return pk_err(vm, ERR_FORMAT, "_load_from_bytes of something other than bytes", at);
    const uint8_t *b = args->items[0]->bytes;
    const uint64_t n = args->items[0]->nbytes;
    if (n < sizeof pk_legacy_magic || memcmp(b, pk_legacy_magic, sizeof pk_legacy_magic))
        return pk_err(vm, ERR_UNSUPPORTED, "_load_from_bytes of something other than a legacy torch.save", at);
    pk_vm in = {.path = vm->path, .what = "storage bytes", .start = b, .p = b + sizeof pk_legacy_magic, .end = b + n, .e = vm->e};
    pk_obj *res[4] = {0};
    int rc = 0;
    for (int k = 0; k < 4 && !rc; k++) {
        free(in.memo);
        in.memo = NULL, in.nmemo = 0, in.memo_keys = 0, in.sp = 0;
        rc = pk_run(&in, &res[k]);
    }
    const pk_obj *le = NULL;
    for (size_t i = 0; !rc && res[1]->kind == PK_DICT && i + 1 < res[1]->n; i += 2)
        if (res[1]->items[i]->kind == PK_STR && !strcmp(res[1]->items[i]->s, "little_endian")) le = res[1]->items[i + 1];
    if (!rc && le && !(le->kind == PK_BOOL && le->i))
        rc = pk_err(vm, ERR_UNSUPPORTED, "a big-endian legacy storage", at);
    if (!rc && (res[2]->kind != PK_STORAGE || res[3]->kind != PK_LIST || res[3]->n != 1 || res[3]->items[0]->kind != PK_STR ||
                strcmp(res[3]->items[0]->s, res[2]->s)))
        rc = pk_err(vm, ERR_UNSUPPORTED, "legacy save of something other than one storage", at);
    if (!rc) {
        /* the element count, then the elements */
        uint64_t avail = (uint64_t)(in.end - in.p), es = st_dtype_size(res[2]->dtype);
        uint64_t numel = avail >= 8 ? rd64(in.p) : 0;
        if (avail < 8 || numel > (avail - 8) / es) rc = pk_err(vm, ERR_FORMAT, "legacy storage shorter than its element count", at);
        else res[2]->bytes = in.p + 8, res[2]->nbytes = numel * es;
    }
    if (in.allocs) { /* hand the objects to the caller's machine */
        pk_obj *tail = in.allocs;
        while (tail->next_alloc) tail = tail->next_alloc;
        tail->next_alloc = vm->allocs;
        vm->allocs = in.allocs;
        in.allocs = NULL;
    }
    pk_free_all(&in);
    return rc ? rc : pk_push(vm, res[2]);
}

static int pk_reduce(pk_vm *vm, size_t at)
{
    pk_obj *args, *fn;
    int rc;
    if ((rc = pk_pop(vm, &args, at)) || (rc = pk_pop(vm, &fn, at))) return rc;
    if (fn->kind != PK_GLOBAL || args->kind != PK_TUPLE) return pk_err(vm, ERR_FORMAT, "REDUCE of a non-callable", at);
    if (!strcmp(fn->s, "collections.OrderedDict")) {
        if (args->n) return pk_err(vm, ERR_UNSUPPORTED, "OrderedDict with arguments", at);
        return pk_push(vm, pk_new(vm, PK_DICT));
    }
    if (!strcmp(fn->s, "torch._utils._rebuild_tensor_v2") || !strcmp(fn->s, "torch._utils._rebuild_tensor")) {
        rc = 0;
        pk_obj *t = pk_rebuild_tensor(vm, args, at, &rc);
        return t ? pk_push(vm, t) : rc;
    }
    if (!strcmp(fn->s, "torch.storage._load_from_bytes")) return pk_load_from_bytes(vm, args, at);
    if (!strcmp(fn->s, "torch._utils._rebuild_parameter")) {
        if (args->n < 1 || args->items[0]->kind != PK_TENSOR) return pk_err(vm, ERR_FORMAT, "_rebuild_parameter of a non-tensor", at);
        return pk_push(vm, args->items[0]);
    }
    char msg[300];
    snprintf(msg, sizeof msg, "call of %.200s (not a state-dict construct)", fn->s);
    return pk_err(vm, ERR_UNSUPPORTED, msg, at);
}

static int pk_setitems(pk_vm *vm, size_t from, size_t at)
{
    if (from == 0 || (vm->sp - from) % 2) return pk_err(vm, ERR_FORMAT, "SETITEMS without a dict and key/value pairs", at);
    pk_obj *d = vm->stack[from - 1];
    if (d->kind != PK_DICT) return pk_err(vm, ERR_FORMAT, "SETITEM on a non-dict", at);
    for (size_t i = from; i < vm->sp; i++)
        if (vm->stack[i]->kind == PK_MARK || pk_append(vm, d, vm->stack[i])) return pk_err(vm, ERR_FORMAT, "bad SETITEMS", at);
    vm->sp = from;
    return 0;
}

static int pk_run(pk_vm *vm, pk_obj **result)
{
    vm->mark.kind = PK_MARK;
    while (vm->p < vm->end) {
        size_t at = pk_pos(vm);
        uint8_t op = *vm->p++;
        const uint8_t *a = vm->p;
        int rc = 0;
        size_t mk;
        pk_obj *x, *y, *z;
        switch (op) {
        case 0x80: /* PROTO */
            if ((rc = pk_need(vm, 1, at))) return rc;
            if (a[0] > 5) return pk_err(vm, ERR_UNSUPPORTED, "pickle protocol above 5", at);
            vm->p += 1;
            break;
        case 0x95: /* FRAME: a length hint only */
            if ((rc = pk_need(vm, 8, at))) return rc;
            vm->p += 8;
            break;
        case '.': /* STOP */
            if ((rc = pk_pop(vm, result, at))) return rc;
            return 0;
        case '(': rc = pk_push(vm, &vm->mark); break;
        case ')': rc = pk_push(vm, pk_new(vm, PK_TUPLE)); break;
        case ']': rc = pk_push(vm, pk_new(vm, PK_LIST)); break;
        case '}': rc = pk_push(vm, pk_new(vm, PK_DICT)); break;
        case 'N': rc = pk_push(vm, pk_new(vm, PK_NONE)); break;
        case 0x88: case 0x89: /* NEWTRUE, NEWFALSE */
            if ((x = pk_new(vm, PK_BOOL))) x->i = op == 0x88;
            rc = pk_push(vm, x);
            break;
        case 'K': case 'M': case 'J': { /* BININT1, BININT2, BININT */
            size_t n = op == 'K' ? 1 : op == 'M' ? 2 : 4;
            if ((rc = pk_need(vm, n, at))) return rc;
            if ((x = pk_new(vm, PK_INT))) x->i = op == 'K' ? a[0] : op == 'M' ? rd16(a) : (int32_t)rd32(a);
            vm->p += n;
            rc = pk_push(vm, x);
            break;
        }
        case 0x8a: { /* LONG1: little-endian two's complement, up to 8 bytes here */
            if ((rc = pk_need(vm, 1, at))) return rc;
            size_t n = a[0];
            if (n > 8) return pk_err(vm, ERR_UNSUPPORTED, "LONG1 wider than 64 bits", at);
            if ((rc = pk_need(vm, 1 + n, at))) return rc;
            uint64_t v = 0;
            for (size_t k = 0; k < n; k++) v |= (uint64_t)a[1 + k] << (8 * k);
            if (n > 0 && n < 8 && (a[n] & 0x80)) v |= ~(uint64_t)0 << (8 * n);
            if ((x = pk_new(vm, PK_INT))) x->i = (int64_t)v;
            vm->p += 1 + n;
            rc = pk_push(vm, x);
            break;
        }
        case 'G': { /* BINFLOAT: big-endian double */
            if ((rc = pk_need(vm, 8, at))) return rc;
            uint64_t v = 0;
            for (int k = 0; k < 8; k++) v = v << 8 | a[k];
            if ((x = pk_new(vm, PK_FLOAT))) memcpy(&x->d, &v, 8);
            vm->p += 8;
            rc = pk_push(vm, x);
            break;
        }
        case 'X': case 0x8c: case 'T': case 'U': case 0x8d: { /* BINUNICODE, SHORT_BINUNICODE, BINSTRING, SHORT_BINSTRING, BINUNICODE8 */
            size_t hl = (op == 0x8c || op == 'U') ? 1 : op == 0x8d ? 8 : 4;
            if ((rc = pk_need(vm, hl, at))) return rc;
            uint64_t n = hl == 1 ? a[0] : hl == 4 ? rd32(a) : rd64(a);
            if ((uint64_t)(vm->end - vm->p) - hl < n) return pk_err(vm, ERR_FORMAT, "string past the end of data.pkl", at);
            vm->p += hl + (size_t)n;
            rc = pk_str(vm, PK_STR, a + hl, (size_t)n);
            break;
        }
        case 'C': case 'B': case 0x8e: { /* SHORT_BINBYTES, BINBYTES, BINBYTES8: borrowed, never copied (they can be large) */
            size_t hl = op == 'C' ? 1 : op == 'B' ? 4 : 8;
            if ((rc = pk_need(vm, hl, at))) return rc;
            uint64_t n = hl == 1 ? a[0] : hl == 4 ? rd32(a) : rd64(a);
            if ((uint64_t)(vm->end - vm->p) - hl < n) return pk_err(vm, ERR_FORMAT, "bytes past the end of the pickle", at);
            if ((x = pk_new(vm, PK_BYTES))) x->bytes = a + hl, x->nbytes = n;
            vm->p += hl + (size_t)n;
            rc = pk_push(vm, x);
            break;
        }
        case 'c': { /* GLOBAL "module\nname\n" -> "module.name" */
            const uint8_t *nl1 = memchr(a, '\n', (size_t)(vm->end - a));
            const uint8_t *nl2 = nl1 ? memchr(nl1 + 1, '\n', (size_t)(vm->end - nl1 - 1)) : NULL;
            if (!nl2) return pk_err(vm, ERR_FORMAT, "truncated GLOBAL", at);
            size_t n = (size_t)(nl2 - a);
            if ((rc = pk_str(vm, PK_GLOBAL, a, n))) return rc;
            vm->stack[vm->sp - 1]->s[nl1 - a] = '.';
            vm->p = nl2 + 1;
            break;
        }
        case 0x93: { /* STACK_GLOBAL */
            if ((rc = pk_pop(vm, &y, at)) || (rc = pk_pop(vm, &x, at))) return rc;
            if (x->kind != PK_STR || y->kind != PK_STR) return pk_err(vm, ERR_FORMAT, "STACK_GLOBAL of non-strings", at);
            char buf[512];
            int n = snprintf(buf, sizeof buf, "%s.%s", x->s, y->s);
            if (n < 0 || (size_t)n >= sizeof buf) return pk_err(vm, ERR_FORMAT, "global name too long", at);
            rc = pk_str(vm, PK_GLOBAL, (const uint8_t *)buf, (size_t)n);
            break;
        }
        case 'q': case 'r': case 0x94: { /* BINPUT, LONG_BINPUT, MEMOIZE */
            size_t idx;
            if (op == 0x94) idx = vm->memo_keys;
            else {
                size_t n = op == 'q' ? 1 : 4;
                if ((rc = pk_need(vm, n, at))) return rc;
                idx = op == 'q' ? a[0] : rd32(a);
                vm->p += n;
            }
            rc = pk_memo_put(vm, idx, at);
            break;
        }
        case 'h': case 'j': { /* BINGET, LONG_BINGET */
            size_t n = op == 'h' ? 1 : 4;
            if ((rc = pk_need(vm, n, at))) return rc;
            vm->p += n;
            rc = pk_memo_get(vm, op == 'h' ? a[0] : rd32(a), at);
            break;
        }
        case 't': /* TUPLE */
            if ((rc = pk_find_mark(vm, &mk, at))) return rc;
            /* drop the MARK below the items */
            memmove(vm->stack + mk, vm->stack + mk + 1, (vm->sp - mk - 1) * sizeof *vm->stack);
            vm->sp--;
            rc = pk_make_tuple(vm, mk);
            break;
        case 0x85: case 0x86: case 0x87: { /* TUPLE1..3 */
            size_t n = (size_t)(op - 0x84);
            if (vm->sp < n) return pk_err(vm, ERR_FORMAT, "stack underflow", at);
            for (size_t k = vm->sp - n; k < vm->sp; k++)
                if (vm->stack[k]->kind == PK_MARK) return pk_err(vm, ERR_FORMAT, "MARK inside TUPLEn", at);
            rc = pk_make_tuple(vm, vm->sp - n);
            break;
        }
        case 'l': /* LIST */
            if ((rc = pk_find_mark(vm, &mk, at))) return rc;
            if ((rc = pk_make_tuple(vm, mk + 1))) return rc;
            vm->stack[mk] = vm->stack[mk + 1];
            vm->stack[mk]->kind = PK_LIST;
            vm->sp = mk + 1;
            break;
        case 'a': case 'e': { /* APPEND, APPENDS */
            size_t from;
            if (op == 'a') from = vm->sp ? vm->sp - 1 : 0;
            else if ((rc = pk_find_mark(vm, &mk, at))) return rc;
            else from = mk + 1;
            size_t lst = op == 'a' ? from : from - 1;
            if (lst == 0 || vm->stack[lst - 1]->kind != PK_LIST) return pk_err(vm, ERR_FORMAT, "APPEND to a non-list", at);
            x = vm->stack[lst - 1];
            for (size_t k = from; k < vm->sp; k++)
                if ((rc = pk_append(vm, x, vm->stack[k]))) return rc;
            vm->sp = lst;
            break;
        }
        case 's': /* SETITEM */
            if (vm->sp < 3) return pk_err(vm, ERR_FORMAT, "stack underflow", at);
            rc = pk_setitems(vm, vm->sp - 2, at);
            break;
        case 'u': /* SETITEMS */
            if ((rc = pk_find_mark(vm, &mk, at))) return rc;
            memmove(vm->stack + mk, vm->stack + mk + 1, (vm->sp - mk - 1) * sizeof *vm->stack);
            vm->sp--;
            rc = pk_setitems(vm, mk, at);
            break;
        case 'd': /* DICT */
            if ((rc = pk_find_mark(vm, &mk, at))) return rc;
            if (!(x = pk_new(vm, PK_DICT))) return pk_push(vm, NULL);
            vm->stack[mk] = x;
            rc = pk_setitems(vm, mk + 1, at);
            break;
        case 'Q': /* BINPERSID */
            if ((rc = pk_pop(vm, &x, at))) return rc;
            rc = pk_persid(vm, x, at);
            break;
        case 'R': rc = pk_reduce(vm, at); break;
        case 0x81: /* NEWOBJ: only TorchScript's modules, cls.__new__(cls) */
            if ((rc = pk_pop(vm, &y, at)) || (rc = pk_pop(vm, &x, at))) return rc;
            if (x->kind != PK_GLOBAL || strncmp(x->s, "__torch__.", 10) || y->kind != PK_TUPLE || y->n)
                return pk_err(vm, ERR_UNSUPPORTED, "NEWOBJ of something other than a TorchScript module", at);
            if (!(z = pk_new(vm, PK_MODULE)) || !(z->s = strdup(x->s))) return pk_push(vm, NULL);
            rc = pk_push(vm, z);
            break;
        case 'b': /* BUILD: a module's attributes; the state of an OrderedDict (_metadata) or tensor is not needed */
            if ((rc = pk_pop(vm, &z, at))) return rc;
            if (vm->sp == 0 || (vm->stack[vm->sp - 1]->kind != PK_DICT && vm->stack[vm->sp - 1]->kind != PK_TENSOR &&
                                vm->stack[vm->sp - 1]->kind != PK_MODULE))
                return pk_err(vm, ERR_UNSUPPORTED, "BUILD of an object other than a dict, tensor or module", at);
            if (vm->stack[vm->sp - 1]->kind == PK_MODULE) {
                if (z->kind != PK_DICT) return pk_err(vm, ERR_UNSUPPORTED, "BUILD of a module with a state that is not a dict", at);
                vm->stack[vm->sp - 1]->state = z;
            }
            break;
        case '0': /* POP */
            if (vm->sp == 0) return pk_err(vm, ERR_FORMAT, "stack underflow", at);
            vm->sp--;
            break;
        case '1': /* POP_MARK */
            if ((rc = pk_find_mark(vm, &mk, at))) return rc;
            vm->sp = mk;
            break;
        case '2': /* DUP */
            if ((rc = pk_pop(vm, &x, at))) return rc;
            vm->sp++;
            rc = pk_push(vm, x);
            break;
        default: {
            char msg[64];
            snprintf(msg, sizeof msg, "unsupported pickle opcode 0x%02x", op);
            return pk_err(vm, ERR_UNSUPPORTED, msg, at);
        }
        }
        if (rc) return rc;
    }
    return pk_err(vm, ERR_FORMAT, "no STOP opcode", pk_pos(vm));
}

/* ---- state dict -> tensors -------------------------------------------- */

/* A tensor over `size` bytes of storage `where`: contiguous, inside. */
static int pt_view(const char *path, const char *name, const pk_obj *t, const char *where, uint64_t size, uint64_t *numel, err_t *e)
{
    uint64_t es = st_dtype_size(t->dtype), want = 1;
    for (int d = t->ndim - 1; d >= 0; d--) {
        if (t->shape[d] < 0 || t->stride[d] < 0) return err_set(e, ERR_FORMAT, "%s: tensor '%s': negative size or stride", path, name);
        /* Strides of size-1 dimensions are arbitrary in PyTorch. */
        if (t->shape[d] != 1 && (uint64_t)t->stride[d] != want)
            return err_set(e, ERR_UNSUPPORTED, "%s: tensor '%s' is not contiguous (stride %lld in dimension %d, expected %llu); save tensor.contiguous()",
                           path, name, (long long)t->stride[d], d, (unsigned long long)want);
        uint64_t s = (uint64_t)t->shape[d];
        if (s && want > UINT64_MAX / s) return err_set(e, ERR_FORMAT, "%s: tensor '%s': shape overflows", path, name);
        want *= s;
    }
    uint64_t off = (uint64_t)t->offset;
    if (want > size / es || off > size / es - want)
        return err_set(e, ERR_FORMAT, "%s: tensor '%s': offset %llu + %llu elements exceed storage '%s' (%llu bytes)", path, name,
                       (unsigned long long)off, (unsigned long long)want, where, (unsigned long long)size);
    *numel = want;
    return 0;
}

static int pt_add_tensor(pt_file *f, const char *archive, const char *name, const pk_obj *t, err_t *e)
{
    if (pt_find(f, name)) return err_set(e, ERR_FORMAT, "%s: tensor '%s' appears twice", f->path, name);
    char key[1200];
    snprintf(key, sizeof key, "%s/data/%s", archive, t->storage->s);
    const pt_zentry *z = pt_zfind(f, key);
    if (!z) return err_set(e, ERR_FORMAT, "%s: tensor '%s': storage '%s' missing from the archive", f->path, name, key);
    uint64_t es = st_dtype_size(t->dtype), numel = 0, off = (uint64_t)t->offset;
    int rc = pt_zstored(f, z, e);
    if (!rc) rc = pt_view(f->path, name, t, key, z->size, &numel, e);
    if (rc) return rc;
    if (f->n == f->cap) {
        int cap = f->cap ? f->cap * 2 : 64;
        pt_tensor *nt = realloc(f->tensors, (size_t)cap * sizeof *nt);
        if (!nt) return err_set(e, ERR_NOMEM, "%s: tensor list", f->path);
        f->tensors = nt;
        f->cap = cap;
    }
    pt_tensor *pt = &f->tensors[f->n];
    memset(pt, 0, sizeof *pt);
    if (!(pt->name = strdup(name))) return err_set(e, ERR_NOMEM, "%s: tensor name", f->path);
    f->n++;
    pt->dtype = t->dtype;
    pt->ndim = t->ndim;
    memcpy(pt->shape, t->shape, sizeof pt->shape);
    pt->data = z->data + off * es;
    pt->nbytes = (size_t)(numel * es);
    return 0;
}

/* A TorchScript module tree → tensors named by their attribute paths
 * ("visual.conv1.weight"): what state_dict() would list. Attributes that
 * are not tensors or modules (training flags, ints, None) are skipped. The
 * depth bound stops a pickle whose memo makes a module its own child. */
static int pt_add_module(pt_file *f, const char *archive, const pk_obj *mod, char *prefix, size_t plen, int depth, err_t *e)
{
    if (depth > 64) return err_set(e, ERR_FORMAT, "%s: module tree deeper than 64 levels at '%s'", f->path, prefix);
    const pk_obj *st = mod->state;
    for (size_t i = 0; st && i + 1 < st->n; i += 2) {
        const pk_obj *k = st->items[i], *v = st->items[i + 1];
        if (k->kind != PK_STR || (v->kind != PK_TENSOR && v->kind != PK_MODULE)) continue;
        size_t kl = strlen(k->s);
        if (plen + kl + 2 > 1024) return err_set(e, ERR_LIMIT, "%s: attribute path '%s%s' too long", f->path, prefix, k->s);
        memcpy(prefix + plen, k->s, kl + 1);
        int rc;
        if (v->kind == PK_TENSOR) {
            rc = pt_add_tensor(f, archive, prefix, v, e);
        } else {
            memcpy(prefix + plen + kl, ".", 2);
            rc = pt_add_module(f, archive, v, prefix, plen + kl + 1, depth + 1, e);
        }
        prefix[plen] = 0;
        if (rc) return rc;
    }
    return 0;
}

static int pt_parse(pt_file *f, err_t *e)
{
    if (f->map_len == 0) return err_set(e, ERR_FORMAT, "%s: empty file", f->path);
    if (f->map_len >= 2 && f->map[0] == 0x80)
        return err_set(e, ERR_UNSUPPORTED, "%s: legacy (pre-1.6, non-zip) torch.save format; re-save it with a newer torch or convert to safetensors", f->path);
    if (f->map_len < 4 || memcmp(f->map, "PK\x03\x04", 4))
        return err_set(e, ERR_FORMAT, "%s: not a torch.save zip archive (no zip signature)", f->path);
    int rc = pt_parse_zip(f, e);
    if (rc) return rc;
    /* The archive folder is whatever directory holds data.pkl. */
    const pt_zentry *pkl = NULL;
    for (int i = 0; i < f->nzip && !pkl; i++) {
        const char *slash = strchr(f->zip[i].name, '/');
        if (slash && !strcmp(slash, "/data.pkl")) pkl = &f->zip[i];
    }
    if (!pkl) return err_set(e, ERR_FORMAT, "%s: no ARCHIVE/data.pkl in the zip", f->path);
    if ((rc = pt_zstored(f, pkl, e))) return rc;
    char archive[1024];
    snprintf(archive, sizeof archive, "%.*s", (int)(strchr(pkl->name, '/') - pkl->name), pkl->name);
    char bo[1100];
    snprintf(bo, sizeof bo, "%s/byteorder", archive);
    const pt_zentry *bz = pt_zfind(f, bo);
    if (bz && !(bz->method == 0 && bz->size == 6 && !memcmp(bz->data, "little", 6)))
        return err_set(e, ERR_UNSUPPORTED, "%s: storages are not little-endian", f->path);

    pk_vm vm = {.path = f->path, .what = "data.pkl", .p = pkl->data, .start = pkl->data, .end = pkl->data + pkl->size, .e = e};
    pk_obj *top = NULL;
    rc = pk_run(&vm, &top);
    if (!rc && top->kind == PK_MODULE) {
        char prefix[1024] = "";
        rc = pt_add_module(f, archive, top, prefix, 0, 0, e);
        pk_free_all(&vm);
        return rc;
    }
    if (!rc && top->kind != PK_DICT)
        rc = err_set(e, ERR_FORMAT, "%s: not a state dict: the pickled object is not a dict", f->path);
    for (size_t i = 0; !rc && i + 1 < top->n; i += 2) {
        const pk_obj *k = top->items[i], *v = top->items[i + 1];
        if (k->kind != PK_STR) rc = err_set(e, ERR_FORMAT, "%s: not a state dict: key %zu is not a string", f->path, i / 2);
        else if (v->kind != PK_TENSOR)
            rc = err_set(e, ERR_FORMAT, "%s: not a state dict: value of '%s' is not a tensor (a checkpoint wrapping a state dict? save model.state_dict() itself)",
                         f->path, k->s);
        else rc = pt_add_tensor(f, archive, k->s, v, e);
    }
    pk_free_all(&vm);
    return rc;
}

int pt_open_buffer(pt_file **fp, const uint8_t *data, size_t len, const char *name, err_t *e)
{
    *fp = NULL;
    pt_file *f = calloc(1, sizeof *f);
    if (!f) return err_set(e, ERR_NOMEM, "%s: cannot allocate", name);
    snprintf(f->path, sizeof f->path, "%s", name ? name : "<buffer>");
    f->map = data;
    f->map_len = len;
    int rc = pt_parse(f, e);
    if (rc) {
        pt_close(f);
        return rc;
    }
    *fp = f;
    return 0;
}

int pt_open(pt_file **fp, const char *path, err_t *e)
{
    *fp = NULL;
    const uint8_t *map;
    size_t len;
    int rc = fs_map_file(path, &map, &len, e);
    if (!rc) rc = pt_open_buffer(fp, map, len, path, e);
    if (rc) {
        fs_unmap(map, len);
        return rc;
    }
    (*fp)->owns_map = 1;
    return 0;
}

void pt_close(pt_file *f)
{
    if (!f) return;
    if (f->owns_map) fs_unmap(f->map, f->map_len);
    for (int i = 0; i < f->nzip; i++) free(f->zip[i].name);
    free(f->zip);
    for (int i = 0; i < f->n; i++) free((char *)f->tensors[i].name);
    free(f->tensors);
    free(f);
}

int pt_count(const pt_file *f) { return f->n; }

const pt_tensor *pt_tensor_at(const pt_file *f, int i) { return i >= 0 && i < f->n ? &f->tensors[i] : NULL; }

const pt_tensor *pt_find(const pt_file *f, const char *name)
{
    for (int i = 0; i < f->n; i++)
        if (!strcmp(f->tensors[i].name, name)) return &f->tensors[i];
    return NULL;
}

int pt_read_f32(const pt_file *f, const pt_tensor *t, float *dst, size_t count, err_t *e)
{
    size_t numel = t->nbytes / st_dtype_size(t->dtype);
    if (count != numel)
        return err_set(e, ERR_ARG, "%s: tensor '%s' has %zu elements, caller asked for %zu", f->path, t->name, numel, count);
    st_convert_f32(t->dtype, t->data, dst, count);
    return 0;
}

/* ---- plain pickles ------------------------------------------------------ */

struct pt_pickle {
    char path[1024];
    const uint8_t *map;
    size_t map_len;
    pk_vm vm; /* owns every object */
    pk_obj *root;
};

int pt_pickle_open(pt_pickle **out, const char *path, err_t *e)
{
    *out = NULL;
    pt_pickle *p = calloc(1, sizeof *p);
    if (!p) return err_set(e, ERR_NOMEM, "%s: cannot allocate", path);
    snprintf(p->path, sizeof p->path, "%s", path);
    int rc = fs_map_file(path, &p->map, &p->map_len, e);
    if (!rc) {
        p->vm = (pk_vm){.path = p->path, .what = "pickle", .p = p->map, .start = p->map, .end = p->map + p->map_len, .e = e};
        if (p->map_len == 0) rc = err_set(e, ERR_FORMAT, "%s: empty file", path);
        else if (p->map[0] != 0x80) rc = err_set(e, ERR_FORMAT, "%s: not a pickle (protocol 2 or later)", path);
        else rc = pk_run(&p->vm, &p->root);
    }
    if (rc) {
        pt_pickle_close(p);
        return rc;
    }
    *out = p;
    return 0;
}

void pt_pickle_close(pt_pickle *p)
{
    if (!p) return;
    pk_free_all(&p->vm);
    fs_unmap(p->map, p->map_len);
    free(p);
}

const pt_value *pt_pickle_root(const pt_pickle *p) { return p->root; }

enum pt_kind pt_value_kind(const pt_value *v)
{
    if (!v) return PT_ABSENT;
    switch (v->kind) {
    case PK_NONE: return PT_NONE;
    case PK_BOOL: return PT_BOOL;
    case PK_INT: return PT_INT;
    case PK_FLOAT: return PT_FLOAT;
    case PK_STR: return PT_STR;
    case PK_TUPLE: case PK_LIST: return PT_LIST;
    case PK_DICT: return PT_DICT;
    case PK_TENSOR: return PT_TENSOR;
    default: return PT_OTHER;
    }
}

size_t pt_value_len(const pt_value *v)
{
    if (!v) return 0;
    return v->kind == PK_TUPLE || v->kind == PK_LIST ? v->n : v->kind == PK_DICT ? v->n / 2 : 0;
}

const pt_value *pt_value_at(const pt_value *v, size_t i)
{
    return v && (v->kind == PK_TUPLE || v->kind == PK_LIST) && i < v->n ? v->items[i] : NULL;
}

const pt_value *pt_dict_get(const pt_value *d, const char *key)
{
    for (size_t i = 0; d && d->kind == PK_DICT && i + 1 < d->n; i += 2)
        if (d->items[i]->kind == PK_STR && !strcmp(d->items[i]->s, key)) return d->items[i + 1];
    return NULL;
}

int64_t pt_value_int(const pt_value *v) { return v && (v->kind == PK_INT || v->kind == PK_BOOL) ? v->i : 0; }
const char *pt_value_str(const pt_value *v) { return v && v->kind == PK_STR ? v->s : NULL; }

int pt_value_tensor(const pt_pickle *p, const pt_value *v, const char *name, pt_tensor *out, err_t *e)
{
    if (!v || v->kind != PK_TENSOR) return err_set(e, ERR_FORMAT, "%s: '%s' is not a tensor", p->path, name);
    if (!v->storage->bytes)
        return err_set(e, ERR_UNSUPPORTED, "%s: tensor '%s': its storage is not inside the pickle", p->path, name);
    uint64_t numel = 0, es = st_dtype_size(v->dtype);
    int rc = pt_view(p->path, name, v, "legacy", v->storage->nbytes, &numel, e);
    if (rc) return rc;
    memset(out, 0, sizeof *out);
    out->name = name;
    out->dtype = v->dtype;
    out->ndim = v->ndim;
    memcpy(out->shape, v->shape, sizeof out->shape);
    out->data = v->storage->bytes + (uint64_t)v->offset * es;
    out->nbytes = (size_t)(numel * es);
    return 0;
}

void pt_tensor_f32(const pt_tensor *t, size_t first, size_t count, float *dst)
{
    st_convert_f32(t->dtype, t->data + first * st_dtype_size(t->dtype), dst, count);
}
