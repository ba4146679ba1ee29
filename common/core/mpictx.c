#include "core/mpictx.h"

#include <stdlib.h>
#include <string.h>

static struct {
    int initialised_here;
    int rank, size, local_rank;
    MPI_Comm comm;
} mpictx = {0, 0, 1, 0, MPI_COMM_NULL};

static void mpictx_finalize(void)
{
    int fin = 0;
    MPI_Finalized(&fin);
    if (!fin) MPI_Finalize();
}

int mpictx_check(int mpi_rc, const char *what, err_t *e)
{
    if (mpi_rc == MPI_SUCCESS) return 0;
    char s[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(mpi_rc, s, &len);
    return err_set(e, ERR_MPI, "%s failed: %s", what, s);
}

int mpictx_launched(void)
{
    const char *force = getenv("CLIPCAP_MPI");
    if (force && *force) return strcmp(force, "0") != 0;
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE",
                                       "MV2_COMM_WORLD_SIZE", "PALS_RANKID"};
    for (size_t i = 0; i < sizeof vars / sizeof *vars; i++)
        if (getenv(vars[i])) return 1;
    return 0;
}

int mpictx_init(int *argc, char ***argv, err_t *e)
{
    if (!mpictx_launched()) return 0;
    int already = 0;
    MPI_Initialized(&already);
    if (!already) {
        int provided = 0;
        int rc = MPI_Init_thread(argc, argv, MPI_THREAD_MULTIPLE, &provided);
        if (rc != MPI_SUCCESS) return err_set(e, ERR_MPI, "MPI_Init_thread failed (code %d)", rc);
        mpictx.initialised_here = 1;
        atexit(mpictx_finalize);
    }
    mpictx.comm = MPI_COMM_WORLD;
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    int rc = MPI_Comm_rank(MPI_COMM_WORLD, &mpictx.rank);
    if (rc == MPI_SUCCESS) rc = MPI_Comm_size(MPI_COMM_WORLD, &mpictx.size);
    if (rc != MPI_SUCCESS) return mpictx_check(rc, "MPI_Comm_rank/size", e);
    MPI_Comm local;
    rc = MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, mpictx.rank, MPI_INFO_NULL, &local);
    if (rc != MPI_SUCCESS) return mpictx_check(rc, "MPI_Comm_split_type", e);
    MPI_Comm_rank(local, &mpictx.local_rank);
    MPI_Comm_free(&local);
    return 0;
}

int mpictx_rank(void) { return mpictx.rank; }
int mpictx_size(void) { return mpictx.size; }
int mpictx_local_rank(void) { return mpictx.local_rank; }
MPI_Comm mpictx_comm(void) { return mpictx.comm; }

int mpictx_active(void)
{
    int init = 0, fin = 0;
    MPI_Initialized(&init);
    MPI_Finalized(&fin);
    return init && !fin && mpictx.comm != MPI_COMM_NULL;
}

int mpictx_agree(int rc, err_t *e)
{
    if (!mpictx_active() || mpictx.size == 1) return rc;
    int worst = rc;
    int mrc = MPI_Allreduce(&rc, &worst, 1, MPI_INT, MPI_MIN, mpictx.comm);
    if (mrc != MPI_SUCCESS) return mpictx_check(mrc, "MPI_Allreduce(agree)", e);
    if (worst != 0 && rc == 0)
        return err_set(e, worst, "another rank failed (%s); stopping with it", err_name(worst));
    return rc;
}
