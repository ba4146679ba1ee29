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
 * Fails with ERR_MPI (message names the call) if the reduction fails. */
#ifndef CLIPCAP_OPS_COMM_H
#define CLIPCAP_OPS_COMM_H

#include <stddef.h>
#include "core/log.h"
#include "nn/ops.h"

int ops_allreduce_sum(ops_ctx *ctx, float *buf, size_t n, err_t *e);

#endif
