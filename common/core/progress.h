/* Progress of long work: at most one line a second (or every line when
 * stderr is not a terminal, at most one every 5 s), with count, rate and ETA,
 * and a final summary line. Per rank; the rank prefix comes from log_msg. */
#ifndef CLIPCAP_PROGRESS_H
#define CLIPCAP_PROGRESS_H

#include <stdint.h>

typedef struct progress_t {
    char what[64];   /* "extract", "shard coco" */
    char unit[16];   /* "img", "caption" */
    uint64_t total;  /* 0 when unknown: no ETA */
    uint64_t done, errors;
    double t_start, t_last;
    double interval;
} progress_t;

double clock_now(void); /* monotonic seconds */
void progress_start(progress_t *p, const char *what, const char *unit, uint64_t total);
void progress_update(progress_t *p, uint64_t done, uint64_t errors);
void progress_finish(progress_t *p);
double progress_elapsed(const progress_t *p);

#endif
