/*
 * init_main.c - minirun-init: the container's PID 1, and the process that
 * enters a running container for `exec`.
 *
 *     minirun-init spawn REQUEST_FD REPORT_FD GO_FD
 *     minirun-init join REQUEST_FD PIDFD NS_FLAGS PID_PIPE EXEC_PIPE
 *
 * Static, and run from a sealed memfd the parent fills from this file
 * (minirun/syscalls.py), never from the host file itself; the parent's child
 * execs it at once (spawn.c), with the request packed in REQUEST_FD
 * (spawnreq.c). spawn: the container's init from its clone on: it sets the
 * container up (init.c), forks COMMAND's process, which waits for the init to
 * confine itself, then reaps (reap.c); an idle container holds a few pages,
 * never a copy of the interpreter. GO_FD -1: the child waited for sync 1
 * before its exec (a user namespace). join: the container's cgroups and
 * namespaces, then a fork that becomes COMMAND (join.c, exec.c). Either way
 * COMMAND's process is a fork of this, so during its execve /proc/self/exe is
 * the sealed copy, which a `#!/proc/self/exe` COMMAND cannot write through
 * (CVE-2019-5736). It starts non-dumpable: the memfd is not readable to the
 * process that execs it (security.c, mr_execveat_nondumpable).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "minirun.h"

static int number(const char *s, long min)
{
    char *end;
    long v = strtol(s, &end, 10);

    return *s && !*end && v >= min && v <= 1 << 30 ? (int)v : -1;
}

/* The request in the fd named by arg, closed once read. */
static struct mr_spawn_req *read_request(const char *arg, char *step, int *err)
{
    int fd = number(arg, 0);
    struct mr_spawn_req *req;

    if (fd < 0) {
        *err = -mr_step(step, EBADF, "minirun-init: the spawn request's fd %s", arg);
        return NULL;
    }
    req = mr_spawn_req_from_fd(fd, step, err);
    close(fd);
    return req;
}

int main(int argc, char **argv)
{
    char step[MR_STEP_MAX];
    int err = 0;

    /* An exec makes us dumpable again: keep the container's processes out of our
     * memory and fds until the next exec. */
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    prctl(PR_SET_NAME, "minirun-init", 0, 0, 0); /* run from a memfd, the kernel named us after its fd */
    if (argc == 5 && strcmp(argv[1], "spawn") == 0) {
        int report_fd = number(argv[3], 0), go_fd = strcmp(argv[4], "-1") ? number(argv[4], 0) : -1;
        struct mr_spawn_req *req;

        if (report_fd < 0 || (go_fd < 0 && strcmp(argv[4], "-1")))
            return 125;
        if (!(req = read_request(argv[2], step, &err)))
            mr_setup_failed(report_fd, step, err);
        mr_spawn_child(req, report_fd, go_fd);
    }
    if (argc == 7 && strcmp(argv[1], "join") == 0) {
        int pidfd = number(argv[3], 0), pid_pipe = number(argv[5], 0), exec_pipe = number(argv[6], 0);
        char *end;
        unsigned long ns_flags = strtoul(argv[4], &end, 10); /* CLONE_NEW*: past number()'s range */
        struct mr_spawn_req *req;

        if (pidfd < 0 || !*argv[4] || *end || ns_flags > 0x7fffffffUL || pid_pipe < 0 || exec_pipe < 0)
            return 125;
        if (!(req = read_request(argv[2], step, &err)))
            mr_exec_failed(exec_pipe, 0, err, step);
        mr_join_child(req, pidfd, (int)ns_flags, pid_pipe, exec_pipe);
    }
    /* e.g. a COMMAND that is `#!/proc/self/exe`: it gets us, not a host binary */
    (void)!write(2, "minirun-init: not a program to run\n", 35);
    return 125;
}
