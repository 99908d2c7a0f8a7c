/*
 * join.c - minirun-init's join mode: A of exec.c's table, exec'd by the vfork
 * exec.c clones into the container's cgroup v2 directory. It joins the v1
 * hierarchies and the container's namespaces, and forks B, the caller's child
 * (CLONE_PARENT), which becomes COMMAND (become.c) as `run`'s does.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "minirun.h"

void mr_join_child(const struct mr_spawn_req *req, int pidfd, int ns_flags, int pid_pipe, int exec_pipe)
{
    int ours[3] = {pidfd, pid_pipe, exec_pipe};
    struct mr_exec_failure f;
    pid_t b;

    memset(&f, 0, sizeof(f));
    /* What exec.c's vfork made inheritable for our exec goes at B's execve again; until
     * then this process (and B) holds the caller's fds inside the container, and is not
     * dumpable (minirun-init's first step): nobody in there may ptrace it or open its
     * /proc/PID/{fd,exe,mem}. */
    if (mr_spawn_req_cloexec(req, ours, 3) < 0) {
        f.err = errno;
        mr_step(f.step, errno, "minirun-init: close-on-exec again");
        goto fail;
    }
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
