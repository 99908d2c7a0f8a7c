/*
 * reap.c - what the container's PID 1 does once COMMAND runs: forward signals
 * to it, reap every zombie of the namespace, report COMMAND's exit.
 *
 * Compiled twice: into the extension (init.c reports through it and falls back
 * on it) and into the static minirun-init (init_main.c) that PID 1 normally
 * execs, so that an idle container holds a ~100 KiB program instead of a
 * forked copy of the Python interpreter.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
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

/* Signals stay blocked from clone on (an exec keeps the mask and what is
 * pending), so none is lost between COMMAND's start and this loop. */
void mr_reap_and_forward(int report_fd, pid_t command)
{
    sigset_t all;
    siginfo_t si;
    int status;
    pid_t pid;

    sigfillset(&all);
    for (;;) {
        int sig = sigwaitinfo(&all, &si);

        if (sig < 0)
            continue;
        if (sig != SIGCHLD) {
            kill(command, sig);
            continue;
        }
        while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
            if (pid != command)
                continue;
            mr_send_report(report_fd, MR_REPORT_EXITED, 0, status, pid, NULL);
            /* As PID 1 we cannot die by our own signal: exit 128+N like a shell. */
            _exit(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
        }
    }
}
