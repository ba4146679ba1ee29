/* The process's MPI context: the one global of the code base.
 *
 * mpictx_init() initialises MPI once per process (a plain `clipcap ...`
 * without mpirun becomes a single-rank world), records rank, size and the
 * node-local rank, and registers MPI_Finalize at exit. Before init (and in
 * unit tests that never call it) rank is 0 and size is 1, so library code
 * can log and shard without caring how it was started.
 *
 * mpictx_check() turns a failed MPI call into ERR_MPI with the call's name. */
#ifndef CLIPCAP_MPICTX_H
#define CLIPCAP_MPICTX_H

#include <mpi.h>
#include "core/log.h"

int mpictx_init(int *argc, char ***argv, err_t *e);
int mpictx_rank(void);
int mpictx_size(void);
int mpictx_local_rank(void);
int mpictx_active(void); /* MPI initialised and not finalised */
MPI_Comm mpictx_comm(void);

int mpictx_check(int mpi_rc, const char *what, err_t *e);

/* Every rank learns whether any rank failed; returns the worst (most
 * negative) code so that all ranks leave a collective phase together
 * instead of some hanging in the next collective. */
int mpictx_agree(int rc, err_t *e);

#endif
