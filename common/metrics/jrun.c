#include "metrics/jrun.h"
#include "core/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

int jrun_check_jar(const char *flag, const char *path, err_t *e)
{
    struct stat st;
    if (stat(path, &st)) return err_set(e, ERR_IO, "%s %s: %s", flag, path, strerror(errno));
    if (!S_ISREG(st.st_mode)) return err_set(e, ERR_IO, "%s %s: not a regular file", flag, path);
    if (access(path, R_OK)) return err_set(e, ERR_IO, "%s %s: %s", flag, path, strerror(errno));
    return 0;
}

/* The child's last non-empty stderr line (at most the last 4 KiB), or "". */
static void last_err_line(const jrun_t *j, char *out, size_t cap)
{
    char buf[4096];
    out[0] = 0;
    off_t end = lseek(j->err_fd, 0, SEEK_END);
    if (end <= 0) return;
    off_t start = end > (off_t)sizeof buf - 1 ? end - (off_t)sizeof buf + 1 : 0;
    ssize_t got = pread(j->err_fd, buf, (size_t)(end - start), start);
    if (got <= 0) return;
    buf[got] = 0;
    while (got > 0 && (buf[got - 1] == '\n' || buf[got - 1] == '\r' || buf[got - 1] == ' ')) buf[--got] = 0;
    char *line = strrchr(buf, '\n');
    snprintf(out, cap, "%s", line ? line + 1 : buf);
}

/* "exited with status 1: <last line>" after reaping the child. */
static int ended_error(jrun_t *j, int status, const char *when, err_t *e)
{
    char last[512], how[64];
    last_err_line(j, last, sizeof last);
    if (WIFEXITED(status)) snprintf(how, sizeof how, "exited with status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status)) snprintf(how, sizeof how, "was killed by signal %d", WTERMSIG(status));
    else snprintf(how, sizeof how, "ended");
    return err_set(e, ERR_IO, "%s: java %s%s%s%s", j->name, how, when, last[0] ? ": " : "", last);
}

static int reap(jrun_t *j, int *status)
{
    if (!j->pid) return -1;
    pid_t r;
    while ((r = waitpid(j->pid, status, 0)) < 0 && errno == EINTR) continue;
    j->pid = 0;
    return r < 0 ? -1 : 0;
}

static void close_pipes(jrun_t *j)
{
    if (j->to_child >= 0) close(j->to_child);
    if (j->from_child) fclose(j->from_child);
    j->to_child = -1;
    j->from_child = NULL;
}

/* The environment with LC_ALL=C, as the toolkit sets it for METEOR. */
static char **child_env(void)
{
    size_t n = 0;
    while (environ[n]) n++;
    char **env = calloc(n + 2, sizeof *env);
    if (!env) return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "LC_ALL=", 7)) env[k++] = environ[i];
    env[k++] = "LC_ALL=C";
    env[k] = NULL;
    return env;
}

static int temp_file(err_t *e)
{
    char path[PATH_MAX];
    int rc = fs_scratch_template(path, sizeof path, "clipcap-java", e);
    if (rc) return rc;
    int fd = mkstemp(path);
    if (fd < 0) return err_set(e, ERR_IO, "%s: %s", path, strerror(errno));
    unlink(path);
    return fd;
}

int jrun_start(jrun_t *j, const char *jar, const char *heap, const char *const *args, int connect, err_t *e)
{
    memset(j, 0, sizeof *j);
    j->to_child = -1;
    j->err_fd = -1;
    const char *base = strrchr(jar, '/');
    snprintf(j->name, sizeof j->name, "%s", base ? base + 1 : jar);
    char abs[PATH_MAX], dir[PATH_MAX], xmx[64];
    if (!realpath(jar, abs)) return err_set(e, ERR_IO, "%s: %s", jar, strerror(errno));
    snprintf(dir, sizeof dir, "%s", abs);
    *strrchr(dir, '/') = 0;
    if (!dir[0]) snprintf(dir, sizeof dir, "/");
    snprintf(xmx, sizeof xmx, "-Xmx%s", heap);

    size_t n_args = 0;
    while (args[n_args]) n_args++;
    const char **argv = calloc(n_args + 5, sizeof *argv);
    char **env = child_env();
    int sv[2] = {-1, -1}, out[2] = {-1, -1}, status_pipe[2] = {-1, -1};
    int rc = 0;
    if (!argv || !env) rc = err_set(e, ERR_NOMEM, "%s: out of memory starting java", j->name);
    if (!rc) {
        argv[0] = "java", argv[1] = "-jar", argv[2] = xmx, argv[3] = abs;
        for (size_t i = 0; i < n_args; i++) argv[4 + i] = args[i];
        int fd = temp_file(e);
        if (fd < 0) rc = fd;
        else j->err_fd = fd;
    }
    /* A socket for stdin so that writing to a dead child can use
     * MSG_NOSIGNAL; a pipe for stdout. */
    if (!rc && connect && (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) || pipe2(out, O_CLOEXEC)))
        rc = err_set(e, ERR_IO, "%s: cannot create pipes: %s", j->name, strerror(errno));
    if (!rc && pipe2(status_pipe, O_CLOEXEC))
        rc = err_set(e, ERR_IO, "%s: cannot create a pipe: %s", j->name, strerror(errno));
    pid_t pid = -1;
    if (!rc && (pid = fork()) < 0) rc = err_set(e, ERR_IO, "%s: fork: %s", j->name, strerror(errno));
    if (!rc && pid == 0) {
        /* Only async-signal-safe calls from here to exec. */
        int in_fd = connect ? sv[1] : open("/dev/null", O_RDONLY);
        int out_fd = connect ? out[1] : j->err_fd;
        if (in_fd < 0 || dup2(in_fd, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(j->err_fd, 2) < 0 || chdir(dir)) {
            int err = errno;
            (void)!write(status_pipe[1], &err, sizeof err);
            _exit(127);
        }
        execvpe("java", (char *const *)argv, env);
        int err = errno;
        (void)!write(status_pipe[1], &err, sizeof err);
        _exit(127);
    }
    if (!rc) {
        j->pid = pid;
        close(status_pipe[1]);
        status_pipe[1] = -1;
        int err = 0;
        ssize_t got;
        while ((got = read(status_pipe[0], &err, sizeof err)) < 0 && errno == EINTR) continue;
        if (got > 0) {
            int status;
            reap(j, &status);
            rc = err == ENOENT ? err_set(e, ERR_IO, "%s: cannot run java: 'java' is not on PATH", j->name)
                               : err_set(e, ERR_IO, "%s: cannot run java in %s: %s", j->name, dir, strerror(err));
        }
    }
    if (!rc && connect) {
        j->to_child = sv[0];
        sv[0] = -1;
        j->from_child = fdopen(out[0], "r");
        if (!j->from_child) rc = err_set(e, ERR_IO, "%s: fdopen: %s", j->name, strerror(errno));
        else out[0] = -1;
    }
    int fds[] = {sv[0], sv[1], out[0], out[1], status_pipe[0], status_pipe[1]};
    for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
        if (fds[i] >= 0) close(fds[i]);
    free(argv);
    free(env);
    if (rc) jrun_abort(j);
    return rc;
}

int jrun_write(jrun_t *j, const char *s, size_t len, err_t *e)
{
    while (len) {
        ssize_t w = send(j->to_child, s, len, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) {
            int status, err = errno;
            if (!reap(j, &status)) return ended_error(j, status, " while reading its input", e);
            return err_set(e, ERR_IO, "%s: writing to java: %s", j->name, strerror(err));
        }
        s += w;
        len -= (size_t)w;
    }
    return 0;
}

int jrun_read_line(jrun_t *j, char **line, size_t *cap, const char *what, err_t *e)
{
    ssize_t got = getline(line, cap, j->from_child);
    if (got < 0) {
        char when[256];
        snprintf(when, sizeof when, " before sending %s", what);
        int status;
        close_pipes(j);
        if (!reap(j, &status)) return ended_error(j, status, when, e);
        return err_set(e, ERR_IO, "%s: no answer from java%s", j->name, when);
    }
    while (got > 0 && ((*line)[got - 1] == '\n' || (*line)[got - 1] == '\r')) (*line)[--got] = 0;
    return 0;
}

int jrun_finish(jrun_t *j, err_t *e)
{
    close_pipes(j);
    int status, rc = 0;
    if (reap(j, &status)) rc = err_set(e, ERR_IO, "%s: waiting for java: %s", j->name, strerror(errno));
    else if (!WIFEXITED(status) || WEXITSTATUS(status)) rc = ended_error(j, status, "", e);
    if (j->err_fd >= 0) close(j->err_fd);
    j->err_fd = -1;
    return rc;
}

void jrun_abort(jrun_t *j)
{
    close_pipes(j);
    if (j->pid) {
        int status;
        kill(j->pid, SIGKILL);
        reap(j, &status);
    }
    if (j->err_fd >= 0) close(j->err_fd);
    j->err_fd = -1;
}
