#include "core/comm.h"

#include <limits.h>
#include <string.h>

#include "core/mpictx.h"

int comm_allreduce(void *buf, size_t n, comm_type t, comm_op op, err_t *e)
{
    if (!mpictx_active() || mpictx_size() == 1) return 0;
    static const struct {
        size_t bytes;
        const char *name;
    } types[] = {[COMM_U32] = {4, "uint32"}, [COMM_U64] = {8, "uint64"}, [COMM_F32] = {4, "float"},
                 [COMM_F64] = {8, "double"}};
    MPI_Datatype mt = t == COMM_U32 ? MPI_UINT32_T : t == COMM_U64 ? MPI_UINT64_T : t == COMM_F32 ? MPI_FLOAT : MPI_DOUBLE;
    MPI_Op mo = op == COMM_SUM ? MPI_SUM : op == COMM_MIN ? MPI_MIN : MPI_MAX;
    for (size_t off = 0; off < n;) {
        size_t chunk = n - off < (size_t)INT_MAX ? n - off : (size_t)INT_MAX;
        int rc = mpictx_check(
            MPI_Allreduce(MPI_IN_PLACE, (char *)buf + off * types[t].bytes, (int)chunk, mt, mo, mpictx_comm()),
            "MPI_Allreduce", e);
        if (rc) return err_wrap(e, "reducing %zu %s values over %d ranks", n, types[t].name, mpictx_size());
        off += chunk;
    }
    return 0;
}

int comm_sum_f32(float *buf, size_t n, err_t *e) { return comm_allreduce(buf, n, COMM_F32, COMM_SUM, e); }

int comm_bcast_int(int *v, int n, err_t *e)
{
    if (!mpictx_active() || mpictx_size() == 1) return 0;
    return mpictx_check(MPI_Bcast(v, n, MPI_INT, 0, mpictx_comm()), "MPI_Bcast", e);
}

int comm_bcast_bytes(void *buf, size_t n, err_t *e)
{
    if (!mpictx_active() || mpictx_size() == 1) return 0;
    for (size_t at = 0; at < n;) {
        size_t k = n - at < (size_t)INT_MAX ? n - at : (size_t)INT_MAX;
        int rc = mpictx_check(MPI_Bcast((char *)buf + at, (int)k, MPI_BYTE, 0, mpictx_comm()), "MPI_Bcast", e);
        if (rc) return rc;
        at += k;
    }
    return 0;
}

int comm_allgather_bytes(const void *mine, size_t n, void *all, err_t *e)
{
    if (!mpictx_active() || mpictx_size() == 1) {
        memcpy(all, mine, n);
        return 0;
    }
    if (n > (size_t)INT_MAX) return err_set(e, ERR_LIMIT, "gathering %zu bytes per rank", n);
    return mpictx_check(MPI_Allgather(mine, (int)n, MPI_BYTE, all, (int)n, MPI_BYTE, mpictx_comm()), "MPI_Allgather",
                        e);
}

