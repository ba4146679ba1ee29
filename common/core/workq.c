#include "core/workq.h"
#include "core/mpictx.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { WQ_LOCAL, WQ_SERVED, WQ_STATIC };
enum { WQ_TAG_ASK = 1, WQ_TAG_UNIT = 2 };
enum { WQ_WANT = 0, WQ_LEAVE = 1 };

struct workq {
    char what[64];
    int n, mode, rank, size;
    int next;     /* LOCAL/SERVED: next unit to hand out (rank 0); STATIC: this rank's next */
    int taken, drained, slow_ms;
    int *owner;   /* rank 0: [n] */
    MPI_Comm comm;
    pthread_mutex_t mu;
    pthread_t server;
    int serving;
};

static void wq_sleep_us(long us)
{
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

/* CLIPCAP_TEST_SLOW_RANK=R[:MS] (see workq.h); malformed values are ignored
 * with a warning rather than failing a run over a test knob. */
static int wq_slow_ms(int rank)
{
    const char *s = getenv("CLIPCAP_TEST_SLOW_RANK");
    if (!s || !*s) return 0;
    char *end = NULL;
    long r = strtol(s, &end, 10), ms = 500;
    if (end != s && *end == ':') {
        const char *m = end + 1;
        ms = strtol(m, &end, 10);
        if (end == m) end = (char *)s;
    }
    if (end == s || *end || r < 0 || ms < 0 || ms > 600000) {
        log_msg(LOG_WARN, "CLIPCAP_TEST_SLOW_RANK='%s' is not R[:MS]; ignored", s);
        return 0;
    }
    return r == rank ? (int)ms : 0;
}

/* Rank 0: the next unit for rank `who`, -1 when none is left. */
static int wq_take(workq *q, int who)
{
    pthread_mutex_lock(&q->mu);
    int u = q->next < q->n ? q->next++ : -1;
    if (u >= 0) q->owner[u] = who;
    pthread_mutex_unlock(&q->mu);
    return u;
}

/* An MPI failure in the server leaves ranks waiting on replies that will
 * never come: abort the job, as a failing rank does. */
static void wq_server_fail(workq *q, int mpi_rc, const char *call)
{
    err_t e;
    mpictx_check(mpi_rc, call, &e);
    log_msg(LOG_ERROR, "%s: work server: %s", q->what, e.msg);
    MPI_Abort(MPI_COMM_WORLD, 1);
}

static void *wq_serve(void *arg)
{
    workq *q = arg;
    int asking = q->size - 1;
    long idle_us = 50;
    while (asking > 0) {
        int flag = 0, msg = 0;
        MPI_Status st;
        int rc = MPI_Iprobe(MPI_ANY_SOURCE, WQ_TAG_ASK, q->comm, &flag, &st);
        if (rc != MPI_SUCCESS) wq_server_fail(q, rc, "MPI_Iprobe");
        if (!flag) {
            wq_sleep_us(idle_us);
            idle_us = idle_us < 2000 ? idle_us * 2 : 2000;
            continue;
        }
        idle_us = 50;
        rc = MPI_Recv(&msg, 1, MPI_INT, st.MPI_SOURCE, WQ_TAG_ASK, q->comm, MPI_STATUS_IGNORE);
        if (rc != MPI_SUCCESS) wq_server_fail(q, rc, "MPI_Recv");
        if (msg == WQ_LEAVE) {
            asking--;
            continue;
        }
        int u = wq_take(q, st.MPI_SOURCE);
        rc = MPI_Send(&u, 1, MPI_INT, st.MPI_SOURCE, WQ_TAG_UNIT, q->comm);
        if (rc != MPI_SUCCESS) wq_server_fail(q, rc, "MPI_Send");
        if (u < 0) asking--;
    }
    return NULL;
}

int workq_open(workq **out, int n_units, const char *what, err_t *e)
{
    *out = NULL;
    workq *q = calloc(1, sizeof *q);
    if (!q) return err_set(e, ERR_NOMEM, "%s: cannot allocate the work queue", what);
    snprintf(q->what, sizeof q->what, "%s", what);
    q->n = n_units;
    q->rank = mpictx_rank();
    q->size = mpictx_size();
    q->comm = MPI_COMM_NULL;
    q->slow_ms = wq_slow_ms(q->rank);
    q->mode = WQ_LOCAL;
    pthread_mutex_init(&q->mu, NULL);
    int rc = 0;
    if (q->size > 1) {
        int level = MPI_THREAD_SINGLE;
        rc = mpictx_check(MPI_Query_thread(&level), "MPI_Query_thread", e);
        q->mode = level >= MPI_THREAD_MULTIPLE ? WQ_SERVED : WQ_STATIC;
        if (!rc && q->mode == WQ_STATIC && q->rank == 0)
            log_msg(LOG_WARN, "%s: the MPI library gives no MPI_THREAD_MULTIPLE: units go to ranks statically "
                    "(unit %% %d), without balancing", what, q->size);
        q->next = q->mode == WQ_STATIC ? q->rank : 0;
    }
    if (!rc && q->rank == 0) {
        q->owner = malloc((size_t)(n_units ? n_units : 1) * sizeof *q->owner);
        if (!q->owner) rc = err_set(e, ERR_NOMEM, "%s: cannot allocate %d units", what, n_units);
        for (int u = 0; q->owner && u < n_units; u++) q->owner[u] = q->mode == WQ_STATIC ? u % q->size : -1;
    }
    rc = mpictx_agree(rc, e);
    if (!rc && q->mode == WQ_SERVED) {
        rc = mpictx_check(MPI_Comm_dup(mpictx_comm(), &q->comm), "MPI_Comm_dup", e);
        if (!rc && q->rank == 0) {
            int trc = pthread_create(&q->server, NULL, wq_serve, q);
            if (trc) rc = err_set(e, ERR_INTERNAL, "%s: cannot start the work server thread: %s", what, strerror(trc));
            else q->serving = 1;
        }
        /* Without its server, rank 0 would leave the other ranks waiting. */
        if (rc && q->rank == 0) MPI_Abort(MPI_COMM_WORLD, 1);
    }
    if (rc) {
        workq_free(q);
        return rc;
    }
    *out = q;
    return 0;
}

int workq_next(workq *q, int *unit, err_t *e)
{
    *unit = -1;
    if (q->drained) return 0;
    int u = -1;
    if (q->mode == WQ_STATIC) {
        u = q->next < q->n ? q->next : -1;
        q->next += q->size;
    } else if (q->rank == 0) {
        u = wq_take(q, 0);
    } else {
        int ask = WQ_WANT;
        int rc = mpictx_check(MPI_Send(&ask, 1, MPI_INT, 0, WQ_TAG_ASK, q->comm), "MPI_Send(work request)", e);
        if (!rc)
            rc = mpictx_check(MPI_Recv(&u, 1, MPI_INT, 0, WQ_TAG_UNIT, q->comm, MPI_STATUS_IGNORE),
                              "MPI_Recv(work unit)", e);
        if (rc) return err_wrap(e, "%s", q->what);
        if (u >= q->n) return err_set(e, ERR_INTERNAL, "%s: work server sent unit %d of %d", q->what, u, q->n);
    }
    if (u < 0) {
        q->drained = 1;
        return 0;
    }
    q->taken++;
    *unit = u;
    if (q->slow_ms) wq_sleep_us(1000L * q->slow_ms);
    return 1;
}

int workq_taken(const workq *q) { return q->taken; }

int workq_close(workq *q, err_t *e)
{
    int rc = 0;
    if (q->mode == WQ_SERVED) {
        if (q->rank != 0 && !q->drained) {
            int leave = WQ_LEAVE;
            rc = mpictx_check(MPI_Send(&leave, 1, MPI_INT, 0, WQ_TAG_ASK, q->comm), "MPI_Send(leave)", e);
            q->drained = !rc;
        }
        if (q->rank == 0 && q->serving) {
            /* A failed rank 0 hands out nothing more; the others finish
             * what they hold and leave. */
            pthread_mutex_lock(&q->mu);
            if (!q->drained) q->next = q->n;
            pthread_mutex_unlock(&q->mu);
            pthread_join(q->server, NULL);
            q->serving = 0;
        }
        int frc = mpictx_check(MPI_Comm_free(&q->comm), "MPI_Comm_free", e);
        if (!rc) rc = frc;
    }
    q->drained = 1;
    log_msg(LOG_INFO, "%s: this rank took %d of %d unit(s)", q->what, q->taken, q->n);
    return rc ? err_wrap(e, "%s", q->what) : 0;
}

int workq_owner(const workq *q, int unit)
{
    return q->owner && unit >= 0 && unit < q->n ? q->owner[unit] : -1;
}

void workq_free(workq *q)
{
    if (!q) return;
    if (q->serving) { /* close was skipped: still wait for the others */
        pthread_join(q->server, NULL);
    }
    if (q->comm != MPI_COMM_NULL) MPI_Comm_free(&q->comm);
    pthread_mutex_destroy(&q->mu);
    free(q->owner);
    free(q);
}
