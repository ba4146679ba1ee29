/* Collectives over the ranks of mpictx_comm(). Sums are not limited by
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
#include "core/log.h"

int comm_sum_f32(float *buf, size_t n, err_t *e);

/* comm_bcast_int: v[0..n) of rank 0 replaces v on every rank (MPI_Bcast).
 * Collective. With MPI not initialised or a single rank it does nothing. */
int comm_bcast_int(int *v, int n, err_t *e);

#endif
