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

int comm_sum_u64(uint64_t *buf, size_t n, err_t *e)
{
    if (!mpictx_active() || mpictx_size() == 1) return 0;
    if (n > (size_t)INT_MAX) return err_set(e, ERR_LIMIT, "summing %zu counters: more than MPI's int count", n);
    int rc = mpictx_check(MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_UINT64_T, MPI_SUM, mpictx_comm()),
                          "MPI_Allreduce", e);
    return rc ? err_wrap(e, "summing %zu counters over %d ranks", n, mpictx_size()) : 0;
}
