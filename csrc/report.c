/*
 * report.c - the records the container's side sends its waiter, written one way
 * whoever writes them: the forked child (init.c, spawn.c, in the extension) and
 * the static minirun-init (reap.c, command.c, init_main.c), which links this file
 * too. Their layout is minirun.h's (struct mr_report, struct mr_exec_failure).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "minirun.h"

void mr_send_report(int fd, int kind, int err, int status, int pid, const char *step)
{
    struct mr_report rep;

    memset(&rep, 0, sizeof(rep));
    rep.kind = kind;
    rep.err = err;
    rep.status = status;
    rep.pid = pid;
    if (step)
        strncpy(rep.step, step, sizeof(rep.step) - 1);
    while (send(fd, &rep, sizeof(rep), MSG_NOSIGNAL) < 0 && errno == EINTR)
        ;
}

void mr_setup_failed(int fd, const char *step, int err)
{
    mr_send_report(fd, MR_REPORT_SETUP_FAILED, err, 0, 0, step);
    _exit(125);
}

void mr_exec_failed(int pipe_fd, int oci_process, int err, const char *step)
{
    if (oci_process) {
        /* PID 1 itself failed: tell whoever waits on the report socket (`run`), or, once
         * `create` has returned, the container's stderr, which the engine shows. */
        struct mr_report rep;

        memset(&rep, 0, sizeof(rep));
        rep.kind = MR_REPORT_EXEC_FAILED;
        rep.err = err;
        strncpy(rep.step, step, sizeof(rep.step) - 1);
        if (send(pipe_fd, &rep, sizeof(rep), MSG_NOSIGNAL) < 0)
            dprintf(2, "minirun-oci: %s: %s\n", step, strerror(err));
        _exit(mr_exec_failure_status(err));
    } else {
        struct mr_exec_failure f;

        memset(&f, 0, sizeof(f));
        f.err = err;
        strncpy(f.step, step, sizeof(f.step) - 1);
        (void)!write(pipe_fd, &f, sizeof(f));
        _exit(127);
    }
}
