/* Dynamic hand-out of numbered work units (manifest shards) to the ranks,
 * so that a slow rank, or a unit count that does not divide by the rank
 * count, does not stretch a run: extract, caption dumps and eval take their
 * units from here (docs/architecture.md, Balanced ranks).
 *
 * Units 0..n-1 are handed out in increasing order, each exactly once, to
 * whichever rank asks first; each rank sees its own units in increasing
 * order. Callers key every output by unit (never by rank), so what a run
 * writes does not depend on who did what.
 *
 * Under mpirun, rank 0 runs a small server thread on a duplicate of
 * mpictx_comm(): a rank's workq_next is one request/reply with it (rank 0
 * itself takes units under a mutex, without messages). The server polls
 * with MPI_Iprobe and sleeps in between rather than spinning in a blocking
 * MPI_Recv, so it costs rank 0 no core. A thread calling MPI beside the
 * stage's own calls needs MPI_THREAD_MULTIPLE; when the MPI library
 * provides less, units fall back to the static rule u % size == rank
 * (same outputs, no balancing) with a warning. A single rank (no mpirun)
 * counts locally and calls no MPI function.
 *
 * Test hook: CLIPCAP_TEST_SLOW_RANK=R[:MS] makes rank R sleep MS
 * milliseconds (default 500) after taking each unit, before returning it,
 * as a slow node would: tests check that the other ranks then take more
 * units, and can kill rank R while it holds unfinished work. It changes
 * timing only, never outputs.
 *
 * workq_open and workq_close are collective (every rank calls both, also
 * after a failure between them); workq_close returns after every rank has
 * stopped asking. After close, rank 0 knows which rank took each unit
 * (workq_owner), which the eval gather uses to receive in unit order. */
#ifndef CLIPCAP_WORKQ_H
#define CLIPCAP_WORKQ_H

#include "core/log.h"

typedef struct workq workq;

/* what: names the work in messages ("extract shards"). */
int workq_open(workq **q, int n_units, const char *what, err_t *e);
/* 1 = *unit is this rank's next unit, 0 = no unit left, <0 = error. */
int workq_next(workq *q, int *unit, err_t *e);
/* Units this rank took so far. */
int workq_taken(const workq *q);
/* Collective: this rank asks for no more units; waits for the others.
 * Logs how many units this rank took. */
int workq_close(workq *q, err_t *e);
/* Rank 0, after workq_close: the rank that took unit u (-1: nobody). */
int workq_owner(const workq *q, int unit);
void workq_free(workq *q); /* NULL is allowed */

#endif
