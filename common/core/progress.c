#include "core/progress.h"
#include "core/log.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

double clock_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void progress_start(progress_t *p, const char *what, const char *unit, uint64_t total)
{
    memset(p, 0, sizeof *p);
    snprintf(p->what, sizeof p->what, "%s", what);
    snprintf(p->unit, sizeof p->unit, "%s", unit);
    p->total = total;
    p->t_start = p->t_last = clock_now();
    p->interval = isatty(2) ? 1.0 : 5.0;
}

double progress_elapsed(const progress_t *p) { return clock_now() - p->t_start; }

static void progress_print(const progress_t *p, double now, int final)
{
    double dt = now - p->t_start;
    double rate = dt > 0 ? (double)p->done / dt : 0.0;
    char eta[32] = "";
    if (!final && p->total && rate > 0 && p->done < p->total) {
        double s = (double)(p->total - p->done) / rate;
        snprintf(eta, sizeof eta, " ETA %dm%02ds", (int)(s / 60), (int)s % 60);
    }
    if (p->total)
        log_msg(LOG_INFO, "%s: %s%llu/%llu %s (%.1f%%) %.1f %s/s%s, %llu errors, %.1fs",
                p->what, final ? "done " : "", (unsigned long long)p->done,
                (unsigned long long)p->total, p->unit, 100.0 * (double)p->done / (double)p->total,
                rate, p->unit, eta, (unsigned long long)p->errors, dt);
    else
        log_msg(LOG_INFO, "%s: %s%llu %s, %.1f %s/s, %llu errors, %.1fs", p->what,
                final ? "done " : "", (unsigned long long)p->done, p->unit, rate, p->unit,
                (unsigned long long)p->errors, dt);
}

void progress_update(progress_t *p, uint64_t done, uint64_t errors)
{
    p->done = done;
    p->errors = errors;
    double now = clock_now();
    if (now - p->t_last < p->interval) return;
    p->t_last = now;
    progress_print(p, now, 0);
}

void progress_finish(progress_t *p) { progress_print(p, clock_now(), 1); }
