/* clipcap: the dispatcher. `clipcap STAGE [options]`; every stage runs as a
 * single process or as one rank of mpirun. MPI is initialised here, once,
 * before the stage runs and only under a launcher (core/mpictx.h), so a
 * stage only asks mpictx for rank and size. */
#include "core/log.h"
#include "core/mpictx.h"
#include "stage_table.h"

#include <stdio.h>
#include <string.h>

static void main_usage(FILE *out)
{
    fprintf(out,
            "usage: clipcap STAGE [options]    (also: mpirun -np N clipcap STAGE ...)\n\n"
            "ClipCap image captioning as a distributed dataset pipeline.\n\nstages:\n");
    for (const struct stage_entry *s = stage_table; s->name; s++)
        fprintf(out, "  %-12s %s\n", s->name, s->summary);
    fprintf(out, "\n`clipcap STAGE --help` describes a stage's options.\n"
                 "Environment: CLIPCAP_LOG=debug|info|warn|error, OMP_NUM_THREADS,\n"
                 "CLIPCAP_MPI=1|0 (force MPI on or off; default: on under a launcher).\n");
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        main_usage(stdout);
        return argc < 2 ? 2 : 0;
    }
    const struct stage_entry *stage = NULL;
    for (const struct stage_entry *s = stage_table; s->name; s++)
        if (!strcmp(s->name, argv[1])) stage = s;
    if (!stage) {
        fprintf(stderr, "clipcap: unknown stage '%s' (try `clipcap --help`)\n", argv[1]);
        return 2;
    }
    err_t e = {0};
    if (mpictx_init(&argc, &argv, &e) != 0) return err_report(argv[1], &e);
    int rc = stage->main(argc - 1, argv + 1);
    fflush(stdout);
    if (rc != 0 && mpictx_size() > 1) {
        /* A failing rank must not leave the others waiting in a collective. */
        MPI_Abort(MPI_COMM_WORLD, rc);
    }
    return rc;
}
