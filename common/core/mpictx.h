/* The process's MPI context: the one global of the code base.
 *
 * mpictx_init() initialises MPI once per process, but only when a launcher
 * started it (mpictx_launched()): a plain `clipcap ...` never calls
 * MPI_Init, because singleton start-up costs from 0.3 s to seconds (no
 * /etc/hosts) and fails on misconfigured hosts, for a world of one rank
 * anyway. It records rank, size and the node-local rank, and registers
 * MPI_Finalize at exit. Without MPI (not launched, before init, unit tests)
 * rank is 0, size 1 and mpictx_active() false, so library code can log and
 * shard without caring how it was started; code calls no MPI function then
 * (core/comm.h short-circuits for one rank).
 *
 * mpictx_check() turns a failed MPI call into ERR_MPI with the call's name. */
#ifndef CLIPCAP_MPICTX_H
#define CLIPCAP_MPICTX_H

#include <mpi.h>
#include "core/log.h"

/* Whether this process was started by an MPI launcher, from the variables
 * launchers set: CLIPCAP_MPI=1 / =0 decides outright; else any of
 * OMPI_COMM_WORLD_SIZE (Open MPI's mpirun), PMIX_RANK (PMIx: Open MPI 5,
 * srun --mpi=pmix), PMI_RANK / PMI_SIZE (PMI-1/2: MPICH and Intel MPI's
 * hydra, srun --mpi=pmi2), MV2_COMM_WORLD_SIZE (MVAPICH), PALS_RANKID
 * (Cray PALS). docs/operations.md states the rule for users. */
int mpictx_launched(void);

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
