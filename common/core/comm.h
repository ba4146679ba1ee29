/* Collectives over the ranks of mpictx_comm() that short-circuit for one
 * rank (no MPI call when not launched under mpirun). Sums not limited by
 * MPI's int counts: the host half of the gradient allreduce
 * (nn/ops_comm.h), usable by any stage.
 *
 * comm_sum_f32: buf[0..n) is replaced, on every rank, by the element-wise
 * sum over all ranks (MPI_Allreduce, MPI_IN_PLACE, in chunks of at most
 * INT_MAX floats). Collective: every rank calls it with the same n. With MPI
 * not initialised or a single rank it returns 0 and leaves buf alone. */
#ifndef CLIPCAP_COMM_H
#define CLIPCAP_COMM_H

#include <stddef.h>
#include <stdint.h>
#include "core/log.h"

int comm_sum_f32(float *buf, size_t n, err_t *e);
/* MPI_Barrier; nothing with one rank or without MPI. */
int comm_barrier(err_t *e);
/* *v becomes the maximum of every rank's *v (collective); unchanged with
 * one rank or without MPI. */
int comm_max_u64(uint64_t *v, err_t *e);

#endif
