/*
 * exec.c - start one more process inside a running container (`minirun exec`).
 *
 *   caller (Python)             A (vfork into the v2 cgroup,        B (CLONE_PARENT: the caller's child)
 *                                  exec'd minirun-init: join.c)
 *   ---------------             -----------------------------      ---------------------------------
 *   pidfd of the init, checked
 *   against its start time;
 *   pack the request
 *   clone3 ------------------>  exec minirun-init join (the caller
 *                               sleeps until then), not dumpable
 *                               join v1 cgroups (write 0 to tasks)
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
 * As for a container's init (spawn.c), A is a vfork that execs minirun-init at
 * once: the interpreter's memory is never shared copy-on-write, and B is a fork
 * of minirun-init, whose execve of COMMAND has the sealed copy as /proc/self/exe.
 * setns through a pidfd (Linux 5.8) joins the namespaces of that very process,
 * all at once: a pid recycled since the caller checked it cannot be joined by
 * mistake, as a /proc/PID/ns path could. Joining a mount namespace sets the root
 * and working directory to its root, which pivot_root made the container's root.
 */
#define _GNU_SOURCE
#include <alloca.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "minirun.h"

int mr_exec(const struct mr_spawn_req *req, int pidfd, int ns_flags, int *exec_err, char *step)
{
    char blob_arg[16], pidfd_arg[16], flags_arg[16], pid_pipe_arg[16], exec_pipe_arg[16];
    int pid_pipe[2], exec_pipe[2], status, blob, own[4], n_fds, *fds, used_clone3, clone_errno;
    struct mr_exec_failure f;
    struct mr_init_exec x;
    pid_t a, b = -1;
    ssize_t n;

    *exec_err = 0;
    if (req->helper_fd < 0)
        return mr_step(step, EINVAL, "exec: no minirun-init to exec");
    if (pipe2(pid_pipe, O_CLOEXEC) < 0)
        return mr_step(step, errno, "pipe2()");
    if (pipe2(exec_pipe, O_CLOEXEC) < 0) {
        close(pid_pipe[0]);
        close(pid_pipe[1]);
        return mr_step(step, errno, "pipe2()");
    }
    if ((blob = mr_spawn_req_to_memfd(req, step)) < 0) {
        for (int i = 0; i < 2; i++)
            close(pid_pipe[i]), close(exec_pipe[i]);
        return blob;
    }
    memset(&x, 0, sizeof(x));
    x.helper_fd = req->helper_fd;
    x.fail_fd = exec_pipe[1];
    x.fail_as_exec = 1;
    x.req = req;
    own[0] = blob, own[1] = pidfd, own[2] = pid_pipe[1], own[3] = exec_pipe[1];
    n_fds = mr_spawn_req_n_fds(req, 4);
    fds = alloca(sizeof(int) * (size_t)n_fds);
    x.fds = fds;
    x.n_fds = mr_spawn_req_fds(req, fds, n_fds, own, 4);
    snprintf(blob_arg, sizeof(blob_arg), "%d", blob);
    snprintf(pidfd_arg, sizeof(pidfd_arg), "%d", pidfd);
    snprintf(flags_arg, sizeof(flags_arg), "%d", ns_flags);
    snprintf(pid_pipe_arg, sizeof(pid_pipe_arg), "%d", pid_pipe[1]);
    snprintf(exec_pipe_arg, sizeof(exec_pipe_arg), "%d", exec_pipe[1]);
    x.argv = (char *[]){"minirun-init", "join", blob_arg, pidfd_arg, flags_arg, pid_pipe_arg, exec_pipe_arg, NULL};
    a = mr_clone_init(&x, 0, req->cgroup_fd, &used_clone3);
    clone_errno = errno;
    close(blob);
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
