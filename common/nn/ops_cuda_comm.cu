/* The CUDA backend's allreduce (nn/ops_comm.h). With NCCL (the build
 * defines CLIPCAP_HAVE_NCCL when it finds nccl.h and libnccl): one
 * ncclAllReduce on the device buffer, on the ops stream, with a
 * communicator made by the first call from rank 0's unique id broadcast
 * over MPI. Without NCCL: through a host copy and MPI (core/comm.h).
 * The overlapped form enqueues without waiting and synchronises the stream
 * in wait_all (NCCL), or is the blocking host path (no NCCL). */
#define OMPI_SKIP_MPICXX 1 /* mpi.h from C++: the C API only */
#define MPICH_SKIP_MPICXX 1
#include "nn/ops_cuda.h"

extern "C" {
#include "core/comm.h"
#include "core/mpictx.h"
#include "nn/ops_comm.h"
}

#include <stdlib.h>

#ifdef CLIPCAP_HAVE_NCCL
#include <nccl.h>

static void comm_free(void *comm) { ncclCommDestroy((ncclComm_t)comm); }

/* Collective over mpictx_comm(): rank 0 makes the id, every rank learns
 * whether that worked before joining. */
static int comm_create(ops_ctx *c, err_t *e)
{
    ncclUniqueId id;
    int ok = 1;
    ncclResult_t nr = ncclSuccess;
    if (mpictx_rank() == 0) {
        nr = ncclGetUniqueId(&id);
        ok = nr == ncclSuccess;
    }
    MPI_Comm mc = mpictx_comm();
    int rc = mpictx_check(MPI_Bcast(&ok, 1, MPI_INT, 0, mc), "MPI_Bcast (NCCL id status)", e);
    if (!rc && !ok)
        return err_set(e, ERR_MPI, "ncclGetUniqueId failed on rank 0%s%s", mpictx_rank() == 0 ? ": " : "",
                       mpictx_rank() == 0 ? ncclGetErrorString(nr) : "");
    if (!rc) rc = mpictx_check(MPI_Bcast(&id, (int)sizeof id, MPI_BYTE, 0, mc), "MPI_Bcast (NCCL id)", e);
    if (rc) return rc;
    ncclComm_t comm;
    if ((nr = ncclCommInitRank(&comm, mpictx_size(), id, mpictx_rank())) != ncclSuccess)
        return err_set(e, ERR_MPI, "ncclCommInitRank (rank %d of %d, GPU %d): %s", mpictx_rank(), mpictx_size(),
                       c->device, ncclGetErrorString(nr));
    c->comm = comm;
    c->comm_free = comm_free;
    return 0;
}

/* ncclAllReduce enqueued on the ops stream, not waited for */
static int enqueue_sum(ops_ctx *c, float *buf, size_t n, err_t *e)
{
    ops_cuda_enter(c);
    int rc = c->comm ? 0 : comm_create(c, e);
    if (rc) return rc;
    ncclResult_t nr = ncclAllReduce(buf, buf, n, ncclFloat, ncclSum, (ncclComm_t)c->comm, c->stream);
    if (nr != ncclSuccess) return err_set(e, ERR_MPI, "ncclAllReduce of %zu floats: %s", n, ncclGetErrorString(nr));
    return 0;
}

/* the caller's next host-side decision (logging, checkpoints) may read the
 * sum; a failure on another rank surfaces here too */
static int sync_sums(ops_ctx *c, const char *what, err_t *e)
{
    cudaError_t cr = cudaStreamSynchronize(c->stream);
    if (cr != cudaSuccess) return err_set(e, ERR_MPI, "ncclAllReduce of %s: %s", what, cudaGetErrorString(cr));
    return 0;
}

int ops_allreduce_sum(ops_ctx *c, float *buf, size_t n, err_t *e)
{
    if (!mpictx_active() || mpictx_size() == 1 || !n) return 0;
    int rc = enqueue_sum(c, buf, n, e);
    return rc ? rc : sync_sums(c, "the gradients", e);
}

int ops_allreduce_start(ops_ctx *c, ops_grad_reducer *r, float *buf, size_t n, err_t *e)
{
    if (!mpictx_active() || mpictx_size() == 1 || !n) return 0;
    int rc = enqueue_sum(c, buf, n, e);
    if (!rc) r->n++;
    return rc;
}

int ops_allreduce_wait_all(ops_ctx *c, ops_grad_reducer *r, err_t *e)
{
    if (!r->n) return 0;
    r->n = 0;
    ops_cuda_enter(c);
    return sync_sums(c, "the gradient slices", e);
}

#else

int ops_allreduce_sum(ops_ctx *c, float *buf, size_t n, err_t *e)
{
    if (!mpictx_active() || mpictx_size() == 1 || !n) return 0;
    float *host = (float *)malloc(n * sizeof *host);
    if (!host) return err_set(e, ERR_NOMEM, "allreduce of %zu floats: no host memory for the copy", n);
    ops_download(c, host, buf, n);
    int rc = comm_sum_f32(host, n, e);
    if (!rc) ops_upload(c, buf, host, n);
    free(host);
    return rc;
}

int ops_allreduce_start(ops_ctx *c, ops_grad_reducer *r, float *buf, size_t n, err_t *e)
{
    return ops_allreduce_sum(c, buf, n, e);
}

int ops_allreduce_wait_all(ops_ctx *c, ops_grad_reducer *r, err_t *e) { return 0; }

#endif

/* Nothing to poll: NCCL advances on its own, the host path is done. */
int ops_allreduce_progress(ops_ctx *c, ops_grad_reducer *r, err_t *e) { return 0; }

void ops_grad_reducer_free(ops_grad_reducer *r) { r->n = 0; }
