/* Collectives over the ranks of mpictx_comm() that are not limited by MPI's
 * int counts and that cost nothing without MPI: the host half of the
 * gradient allreduce (nn/ops_comm.h) and the small reductions of the
 * stages. With MPI not initialised (a command not started by a launcher,
 * core/mpictx.h) or a single rank they return 0 and leave buf alone, which
 * is the one-rank result, and call no MPI function.
 *
 * comm_allreduce: buf[0..n) of type t is replaced, on every rank, by the
 * element-wise op over all ranks (MPI_Allreduce, MPI_IN_PLACE, in chunks of
 * at most INT_MAX elements). Collective: every rank calls it with the same
 * n, t and op. comm_sum_f32 is the float sum. */
#ifndef CLIPCAP_COMM_H
#define CLIPCAP_COMM_H

#include <stddef.h>
#include <stdint.h>
#include "core/log.h"

typedef enum { COMM_U32, COMM_U64, COMM_F32, COMM_F64 } comm_type;
typedef enum { COMM_SUM, COMM_MIN, COMM_MAX } comm_op;

int comm_allreduce(void *buf, size_t n, comm_type t, comm_op op, err_t *e);
int comm_sum_f32(float *buf, size_t n, err_t *e);

/* comm_bcast_int: v[0..n) of rank 0 replaces v on every rank (MPI_Bcast).
 * Collective. With MPI not initialised or a single rank it does nothing. */
int comm_bcast_int(int *v, int n, err_t *e);

/* comm_bcast_bytes: rank 0's n bytes at buf replace buf on every rank
 * (MPI_Bcast in chunks of at most INT_MAX bytes). Collective. */
int comm_bcast_bytes(void *buf, size_t n, err_t *e);

/* all[r·n .. (r+1)·n) receives rank r's n bytes `mine`, on every rank
 * (MPI_Allgather of bytes). One rank (or MPI not initialised): a copy. */
int comm_allgather_bytes(const void *mine, size_t n, void *all, err_t *e);


#endif
