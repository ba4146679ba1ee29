/* workq on one rank (no mpirun, MPI never initialised): units come out
 * 0..n-1 in order, each once, then "none left" for good; rank 0 owns
 * each; zero units is an empty queue; the slow-rank test hook delays each
 * unit by at least its milliseconds (a lower bound: sleeping guarantees
 * it) and changes nothing else; a malformed value is ignored. The MPI paths are covered
 * by tests/integration/workq_balance.sh and workq_kill_rank.sh. */
#include "check.h"
#include "core/progress.h"
#include "core/workq.h"

static void drain(int n, int *got, int *count)
{
    err_t e = {0};
    workq *q = NULL;
    *count = 0;
    CHECK_OK(workq_open(&q, n, "test units", &e), &e);
    if (!q) return;
    int u, rc;
    while ((rc = workq_next(q, &u, &e)) == 1 && *count <= n) got[(*count)++] = u;
    CHECK(rc == 0 && u == -1);
    CHECK(workq_next(q, &u, &e) == 0); /* stays drained */
    CHECK(workq_taken(q) == *count);
    CHECK_OK(workq_close(q, &e), &e);
    for (int i = 0; i < n; i++) CHECK(workq_owner(q, i) == 0);
    CHECK(workq_owner(q, n) == -1 && workq_owner(q, -1) == -1);
    workq_free(q);
}

static void test_in_order_once(void)
{
    int got[8], count;
    drain(5, got, &count);
    CHECK(count == 5);
    for (int i = 0; i < count; i++) CHECK_MSG(got[i] == i, "unit %d came out as %d", i, got[i]);
    drain(0, got, &count);
    CHECK(count == 0);
}

static void test_slow_hook(void)
{
    int got[4], count;
    setenv("CLIPCAP_TEST_SLOW_RANK", "0:30", 1);
    double t0 = clock_now();
    drain(3, got, &count);
    double dt = clock_now() - t0;
    CHECK(count == 3 && got[2] == 2);
    CHECK_MSG(dt >= 0.085, "3 units at 30 ms took %.3f s", dt);
    setenv("CLIPCAP_TEST_SLOW_RANK", "zero", 1); /* ignored */
    drain(3, got, &count);
    CHECK(count == 3);
    unsetenv("CLIPCAP_TEST_SLOW_RANK");
}

int main(void)
{
    CHECK_RUN(test_in_order_once);
    CHECK_RUN(test_slow_hook);
    return check_summary();
}
