#include "core/comm.h"

#include <limits.h>

#include "core/mpictx.h"

int comm_sum_f32(float *buf, size_t n, err_t *e)
{
    if (!mpictx_active() || mpictx_size() == 1) return 0;
    for (size_t off = 0; off < n;) {
        size_t chunk = n - off < (size_t)INT_MAX ? n - off : (size_t)INT_MAX;
        int rc = mpictx_check(MPI_Allreduce(MPI_IN_PLACE, buf + off, (int)chunk, MPI_FLOAT, MPI_SUM, mpictx_comm()),
                              "MPI_Allreduce", e);
        if (rc) return err_wrap(e, "summing %zu floats over %d ranks", n, mpictx_size());
        off += chunk;
    }
    return 0;
}

int comm_barrier(err_t *e)
{
    if (!mpictx_active() || mpictx_size() == 1) return 0;
    return mpictx_check(MPI_Barrier(mpictx_comm()), "MPI_Barrier", e);
}

int comm_max_u64(uint64_t *v, err_t *e)
{
    if (!mpictx_active() || mpictx_size() == 1) return 0;
    return mpictx_check(MPI_Allreduce(MPI_IN_PLACE, v, 1, MPI_UINT64_T, MPI_MAX, mpictx_comm()), "MPI_Allreduce", e);
}
