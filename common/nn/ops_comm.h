/* The allreduce seam of the op interface: data-parallel training sums each
 * step's gradients over the ranks with one call on the flat gradient
 * buffer, in backend memory, whatever the backend.
 *
 * ops_allreduce_sum: buf[0..n) (from ops_alloc) becomes, on every rank, the
 * element-wise sum over all ranks of mpictx_comm(); every rank gets the
 * same bits. Collective: all ranks call it with the same n, in the same
 * order relative to other collectives. With MPI not initialised or a single
 * rank it returns 0 and touches nothing.
 * - CPU backend (ops_cpu_comm.c): MPI_Allreduce in place (core/comm.h).
 * - CUDA backend (ops_cuda_comm.cu): NCCL on the context's stream; the
 *   first call creates the communicator (rank 0's ncclUniqueId broadcast
 *   over MPI), so it is collective in that sense too. Built without NCCL:
 *   the buffer goes through host memory and MPI.
 * Fails with ERR_MPI (message names the call) if the reduction fails.
 *
 * The same sum, split so that it overlaps computation (training starts a
 * layer's gradients while backward goes on to the layers below):
 * - ops_allreduce_start: begins summing buf[0..n) over the ranks; buf must
 *   not be read or written until ops_allreduce_wait_all returns. Collective
 *   and ordered like ops_allreduce_sum: every rank starts the same slices in
 *   the same order. The sum is the same bits as ops_allreduce_sum's.
 * - ops_allreduce_progress: lets outstanding reductions advance (MPI only
 *   moves a non-blocking collective forward inside MPI calls); cheap, call
 *   it between pieces of computation.
 * - ops_allreduce_wait_all: returns once every started reduction is done;
 *   the reducer is then empty and may be reused.
 * - ops_grad_reducer_free: its memory (after wait_all, or on a failure path
 *   that is about to end the run).
 * A zeroed ops_grad_reducer is ready. With MPI not initialised or a single
 * rank all four do nothing.
 * - CPU backend: MPI_Iallreduce in place per started slice; progress is
 *   MPI_Testall.
 * - CUDA backend: with NCCL, ncclAllReduce enqueued on the ops stream (it
 *   runs in stream order, so it overlaps host work, not kernels) and
 *   wait_all synchronises the stream; without NCCL each start is the
 *   blocking host path. */
#ifndef CLIPCAP_OPS_COMM_H
#define CLIPCAP_OPS_COMM_H

#include <stddef.h>
#include "core/log.h"
#include "nn/ops.h"

int ops_allreduce_sum(ops_ctx *ctx, float *buf, size_t n, err_t *e);

typedef struct ops_grad_reducer {
    void *reqs;    /* backend-private: the CPU backend's MPI_Request[cap] */
    size_t n, cap; /* outstanding requests, room for */
} ops_grad_reducer;

int ops_allreduce_start(ops_ctx *ctx, ops_grad_reducer *r, float *buf, size_t n, err_t *e);
int ops_allreduce_progress(ops_ctx *ctx, ops_grad_reducer *r, err_t *e);
int ops_allreduce_wait_all(ops_ctx *ctx, ops_grad_reducer *r, err_t *e);
void ops_grad_reducer_free(ops_grad_reducer *r);

#endif
