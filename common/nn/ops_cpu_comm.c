/* The CPU backend's allreduce (nn/ops_comm.h): backend memory is host
 * memory, so MPI sums it in place; the overlapped form is one
 * MPI_Iallreduce per started slice (per INT_MAX floats of it). */
#include "nn/ops_comm.h"

#include <limits.h>
#include <mpi.h>
#include <stdlib.h>

#include "core/comm.h"
#include "core/mpictx.h"

int ops_allreduce_sum(ops_ctx *ctx, float *buf, size_t n, err_t *e) { return comm_sum_f32(buf, n, e); }

static int reducer_reserve(ops_grad_reducer *r, err_t *e)
{
    if (r->n < r->cap) return 0;
    size_t cap = r->cap ? 2 * r->cap : 64;
    MPI_Request *q = realloc(r->reqs, cap * sizeof *q);
    if (!q) return err_set(e, ERR_NOMEM, "allreduce: no memory for %zu requests", cap);
    r->reqs = q;
    r->cap = cap;
    return 0;
}

int ops_allreduce_start(ops_ctx *ctx, ops_grad_reducer *r, float *buf, size_t n, err_t *e)
{
    if (!mpictx_active() || mpictx_size() == 1) return 0;
    for (size_t off = 0; off < n;) {
        size_t chunk = n - off < (size_t)INT_MAX ? n - off : (size_t)INT_MAX;
        int rc = reducer_reserve(r, e);
        if (!rc)
            rc = mpictx_check(MPI_Iallreduce(MPI_IN_PLACE, buf + off, (int)chunk, MPI_FLOAT, MPI_SUM, mpictx_comm(),
                                             (MPI_Request *)r->reqs + r->n),
                              "MPI_Iallreduce", e);
        if (rc) return err_wrap(e, "starting the sum of %zu floats over %d ranks", n, mpictx_size());
        r->n++;
        off += chunk;
    }
    return 0;
}

int ops_allreduce_progress(ops_ctx *ctx, ops_grad_reducer *r, err_t *e)
{
    if (!r->n) return 0;
    int done = 0;
    int rc = mpictx_check(MPI_Testall((int)r->n, (MPI_Request *)r->reqs, &done, MPI_STATUSES_IGNORE), "MPI_Testall", e);
    if (rc) return err_wrap(e, "summing gradients over %d ranks", mpictx_size());
    /* completed requests are MPI_REQUEST_NULL; once all are, start afresh */
    if (done) r->n = 0;
    return 0;
}

int ops_allreduce_wait_all(ops_ctx *ctx, ops_grad_reducer *r, err_t *e)
{
    if (!r->n) return 0;
    int rc = mpictx_check(MPI_Waitall((int)r->n, (MPI_Request *)r->reqs, MPI_STATUSES_IGNORE), "MPI_Waitall", e);
    r->n = 0;
    if (rc) return err_wrap(e, "summing gradients over %d ranks", mpictx_size());
    return 0;
}

void ops_grad_reducer_free(ops_grad_reducer *r)
{
    free(r->reqs);
    r->reqs = NULL;
    r->n = r->cap = 0;
}
