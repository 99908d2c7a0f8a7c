/*
 * init_main.c - minirun-init: the container's PID 1, and the last exec on the
 * way to COMMAND.
 *
 *     minirun-init spawn REQUEST_FD REPORT_FD GO_FD
 *     minirun-init exec PIPE_FD OCI SECCOMP PATH COMMAND [ARGS...]
 *
 * Static, and run from a sealed memfd the parent fills from this file
 * (minirun/syscalls.py), never from the host file itself. The first form is
 * the container's init from its clone on (spawn.c): it reads the spawn request
 * (spawnreq.c), sets the container up (init.c), forks COMMAND's process, which
 * waits for the init to confine itself, then reaps (reap.c); an idle container
 * holds a few pages, never a copy of the interpreter. GO_FD -1: the child
 * waited for sync 1 before its exec (a user namespace). The second form is for
 * `minirun exec`: the forked copy of the interpreter about to become COMMAND,
 * its credentials and no_new_privs in place, execs this, which execs COMMAND
 * (command.c). Either way, during COMMAND's execve /proc/self/exe is the sealed
 * copy, which a `#!/proc/self/exe` COMMAND cannot write through
 * (CVE-2019-5736). Both start non-dumpable: the memfd is not readable to the
 * process that execs it (security.c, mr_execveat_nondumpable).
 *
 * SECCOMP is "-", or FD:LEN:FLAGS: the container's filter (LEN instructions, the
 * parent's libseccomp export) in the memfd FD, for seccomp(2) with FLAGS. It is
 * loaded here, after every syscall of ours but execve, as runc-dmz does: a
 * profile that kills fcntl or prctl must only ever see COMMAND, as it does
 * without this helper. "-": no filter, or one loaded already (init.c).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "minirun.h"

extern char **environ;

static int number(const char *s, long min)
{
    char *end;
    long v = strtol(s, &end, 10);

    return *s && !*end && v >= min && v <= 1 << 30 ? (int)v : -1;
}

/* SECCOMP as above; a failure is COMMAND's exec failure, named as security.c names it. */
static void load_seccomp(const char *arg, int pipe_fd, int oci_process)
{
    struct mr_sock_fprog prog;
    char *end, step[MR_STEP_MAX];
    long fd, len;
    unsigned long flags = 0;
    void *insns;
    int err;

    if (!strcmp(arg, "-"))
        return;
    fd = strtol(arg, &end, 10);
    if (*end == ':')
        len = strtol(end + 1, &end, 10);
    else
        len = -1;
    if (*end == ':')
        flags = strtoul(end + 1, &end, 10);
    else
        len = -1;
    if (fd < 0 || fd > 1 << 30 || len <= 0 || len > 0xffff || *end)
        mr_exec_failed(pipe_fd, oci_process, EINVAL, "minirun-init: seccomp argument");
    insns = mmap(NULL, (size_t)len * sizeof(struct mr_sock_filter), PROT_READ, MAP_PRIVATE, (int)fd, 0);
    err = errno;
    close((int)fd);
    if (insns == MAP_FAILED)
        mr_exec_failed(pipe_fd, oci_process, err, "read seccomp filter");
    prog.len = (unsigned short)len;
    prog.filter = insns;
    if (syscall(SYS_seccomp, MR_SECCOMP_SET_MODE_FILTER, flags, &prog) != 0) {
        err = errno;
        snprintf(step, sizeof(step), "load seccomp filter (%ld instructions, flags %#lx)", len, flags);
        mr_exec_failed(pipe_fd, oci_process, err, step);
    }
}

int main(int argc, char **argv)
{
    /* An exec makes us dumpable again: keep the container's processes out of our
     * memory and fds until the next exec. */
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    prctl(PR_SET_NAME, "minirun-init", 0, 0, 0); /* run from a memfd, the kernel named us after its fd */
    if (argc >= 7 && strcmp(argv[1], "exec") == 0) {
        int pipe_fd = number(argv[2], 0), oci_process = argv[3][0] == '1';

        if (pipe_fd < 0)
            return 125;
        fcntl(pipe_fd, F_SETFD, FD_CLOEXEC); /* EOF on it tells the waiter COMMAND runs */
        load_seccomp(argv[4], pipe_fd, oci_process); /* last: from here on, only execve (and a failure's report) */
        mr_exec_command(argv + 6, environ, argv[5], pipe_fd, oci_process);
    }
    if (argc == 5 && strcmp(argv[1], "spawn") == 0) {
        int request_fd = number(argv[2], 0), report_fd = number(argv[3], 0), err = 0;
        int go_fd = strcmp(argv[4], "-1") ? number(argv[4], 0) : -1;
        struct mr_spawn_req *req;
        char step[MR_STEP_MAX];

        if (request_fd < 0 || report_fd < 0 || (go_fd < 0 && strcmp(argv[4], "-1")))
            return 125;
        if (!(req = mr_spawn_req_from_fd(request_fd, step, &err)))
            mr_setup_failed(report_fd, step, err);
        close(request_fd);
        mr_spawn_child(req, report_fd, go_fd);
    }
    /* e.g. a COMMAND that is `#!/proc/self/exe`: it gets us, not a host binary */
    (void)!write(2, "minirun-init: not a program to run\n", 35);
    return 125;
}
