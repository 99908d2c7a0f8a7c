/*
 * exec.c - start one more process inside a running container (`minirun exec`).
 *
 *   caller (Python)             A (clone3 into the v2 cgroup)      B (CLONE_PARENT: the caller's child)
 *   ---------------             -----------------------------      ---------------------------------
 *   pidfd of the init, checked  not dumpable (it holds host fds)
 *   against its start time
 *   clone3 ------------------>  join v1 cgroups (write 0 to tasks)
 *                               setns(pidfd, user? cgroup ipc uts
 *                                     net pid mnt) in one call
 *                               clone(CLONE_PARENT) ------------->  in the container's PID namespace
 *                               send B's pid on pid_pipe, exit      (setns(pid) only applies to children)
 *   read B's pid, reap A                                            mr_become_command, as for `run`:
 *                                                                   close every fd but stdio, stay
 *                                                                   non-dumpable until execve ...
 *   read exec_pipe: EOF = exec'd                                    exec failure -> exec_pipe
 *   wait for B
 *
 * setns through a pidfd (Linux 5.8) joins the namespaces of that very process,
 * all at once: a pid recycled since the caller checked it cannot be joined by
 * mistake, as a /proc/PID/ns path could. Joining a mount namespace sets the root
 * and working directory to its root, which pivot_root made the container's root.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "minirun.h"

static void __attribute__((noreturn)) joiner(const struct mr_spawn_req *req, int pidfd, int ns_flags, int pid_pipe,
                                             int exec_pipe)
{
    struct mr_exec_failure f;
    pid_t b;

    memset(&f, 0, sizeof(f));
    /* From here on this process (and B, which inherits it) holds the caller's
     * fds inside the container: nobody in there may ptrace it or open its
     * /proc/PID/{fd,exe,mem}. execve resets it for COMMAND. */
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    for (int i = 0; i < req->n_tasks_fds; i++) {
        if (write(req->tasks_fds[i], "0", 1) != 1) {
            f.err = errno;
            mr_step(f.step, errno, "join cgroup v1 hierarchy");
            goto fail;
        }
    }
    if (setns(pidfd, ns_flags) < 0) {
        f.err = errno;
        mr_step(f.step, errno, "setns(the container's namespaces 0x%x)", ns_flags);
        goto fail;
    }
    b = (pid_t)syscall(SYS_clone, CLONE_PARENT | SIGCHLD, 0, 0, 0, 0);
    if (b == 0) {
        close(pid_pipe);
        mr_become_command(req, exec_pipe, 0);
    }
    if (b < 0) {
        f.err = errno;
        mr_step(f.step, errno, "fork into the container");
        goto fail;
    }
    (void)!write(pid_pipe, &b, sizeof(b));
    _exit(0);
fail:
    (void)!write(exec_pipe, &f, sizeof(f));
    _exit(125);
}

int mr_exec(const struct mr_spawn_req *req, int pidfd, int ns_flags, int *exec_err, char *step)
{
    struct mr_clone_args args;
    struct mr_exec_failure f;
    int pid_pipe[2], exec_pipe[2], status;
    sigset_t all, old;
    pid_t a, b = -1;
    ssize_t n;

    *exec_err = 0;
    if (pipe2(pid_pipe, O_CLOEXEC) < 0)
        return mr_step(step, errno, "pipe2()");
    if (pipe2(exec_pipe, O_CLOEXEC) < 0) {
        close(pid_pipe[0]);
        close(pid_pipe[1]);
        return mr_step(step, errno, "pipe2()");
    }
    memset(&args, 0, sizeof(args));
    args.exit_signal = SIGCHLD;
    if (req->cgroup_fd >= 0) {
        args.flags = CLONE_INTO_CGROUP;
        args.cgroup = (uint64_t)req->cgroup_fd;
    }
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, &old); /* no Python handler may run in the children */
    a = (pid_t)syscall(SYS_clone3, &args, sizeof(args));
    if (a < 0 && errno == ENOSYS)
        a = (pid_t)syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
    if (a == 0) {
        close(pid_pipe[0]);
        close(exec_pipe[0]);
        joiner(req, pidfd, ns_flags, pid_pipe[1], exec_pipe[1]);
    }
    int clone_errno = errno;
    sigprocmask(SIG_SETMASK, &old, NULL);
    close(pid_pipe[1]);
    close(exec_pipe[1]);
    if (a < 0) {
        close(pid_pipe[0]);
        close(exec_pipe[0]);
        return mr_step(step, clone_errno, "clone()");
    }

    do
        n = read(pid_pipe[0], &b, sizeof(b));
    while (n < 0 && errno == EINTR);
    close(pid_pipe[0]);
    while (waitpid(a, &status, 0) < 0 && errno == EINTR)
        ;
    /* EOF on the CLOEXEC pipe: B exec'd (or A failed before forking B). */
    memset(&f, 0, sizeof(f)); /* a short record leaves zeros, not stack */
    do
        n = read(exec_pipe[0], &f, sizeof(f));
    while (n < 0 && errno == EINTR);
    close(exec_pipe[0]);
    if (n > 0) {
        /* B wrote it, inside the container, maybe from minirun-init: a string only once it ends */
        f.step[MR_STEP_MAX - 1] = 0;
        *exec_err = f.err;
        mr_step(step, f.err, "%s", f.step);
        if (b > 0)
            while (waitpid(b, &status, 0) < 0 && errno == EINTR)
                ;
        return -f.err;
    }
    if (b <= 0)
        return mr_step(step, EIO, "join the container");
    return b;
}
