/*
 * spawn.c - create a container: clone into new namespaces, then set it up in C.
 *
 * Why C between fork and exec: the parent is a Python process. After fork only
 * async-signal-safe work is allowed in the child (another thread may have held
 * the GIL, a malloc lock or the import lock at the moment of the fork), and
 * running the interpreter there would also cost milliseconds of page faults on
 * copy-on-write memory. So the child runs this file only, from clone to exec,
 * and reports back through a fixed-size record.
 *
 * The handshake (numbers appear as "sync N" in the code and in process.py):
 *
 *   parent (Python, mr_spawn + container.py)     child = container init (C)
 *   ----------------------------------------     ------------------------------
 *   block all signals; clone3/clone          ->  PDEATHSIG=SIGKILL; keep signals blocked
 *   (clone3 puts it in the v2 cgroup)            join the v1 cgroups: write 0 to their tasks
 *   write pid to v2 cgroup.procs if no clone3
 *   --userns: write /proc/PID/uid_map and        (waits: its user namespace maps nothing yet)
 *   gid_map (security.write_id_maps)
 *   sync 1: write go byte on go_fd           ->  read go byte (EOF: parent gone -> exit)
 *                                                --userns: setresuid/setresgid(0): become the
 *                                                namespace's root (security.c)
 *                                                unshare(CLONE_NEWCGROUP); mounts;
 *                                                pivot_root; /proc /sys /dev; hostname; lo up
 *                                                fork COMMAND's process (it waits), exec
 *                                                minirun-init, confine it, let COMMAND exec
 *   sync 2: read one report                 <-   SETUP_FAILED | EXEC_FAILED | EXEC_OK
 *   forward SIGINT/TERM/HUP to the init     ->   init forwards them to COMMAND, reaps zombies
 *   sync 3: read EXITED (or EOF), waitpid   <-   EXITED(status); init exits, the kernel
 *                                                kills whatever is left in the PID namespace
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "minirun.h"

#ifndef CLONE_NEWCGROUP
#define CLONE_NEWCGROUP 0x02000000
#endif
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

/* Fork-like clone: no new stack, so the child returns here like after fork().
 * clone3 first (it can start the child directly inside a cgroup v2 directory,
 * so it is never outside its limits); plain clone when the kernel lacks it. */
static pid_t clone_child(const struct mr_spawn_req *req, int *used_clone3)
{
    struct mr_clone_args args;
    pid_t pid;

    memset(&args, 0, sizeof(args));
    args.flags = req->clone_flags;
    args.exit_signal = SIGCHLD;
    if (req->cgroup_fd >= 0) {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = (uint64_t)req->cgroup_fd;
    }
    pid = (pid_t)syscall(SYS_clone3, &args, sizeof(args));
    if (pid >= 0 || (errno != ENOSYS && errno != E2BIG && errno != EINVAL)) {
        *used_clone3 = 1;
        return pid;
    }
    *used_clone3 = 0;
    return (pid_t)syscall(SYS_clone, (unsigned long)(req->clone_flags | SIGCHLD), 0, 0, 0, 0);
}

static void __attribute__((noreturn)) child_failed(int report_fd, int err, const char *what)
{
    char step[MR_STEP_MAX];

    mr_step(step, err, "%s", what);
    mr_setup_failed(report_fd, step, err);
}

/* What ps shows as PID 1 inside: "minirun-init", rather than the command line
 * of the Python process we were forked from (which would also show host paths).
 * The command line is our own copy of the argument area of the stack, whose
 * bounds are fields 48 and 49 of /proc/self/stat: overwrite it in place. */
static void set_title(void)
{
    static const char title[] = "minirun-init";
    char buf[1024], *p;
    unsigned long start = 0, end = 0;
    ssize_t n;
    int fd, field = 2;

    prctl(PR_SET_NAME, title);
    fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return;
    buf[n] = '\0';
    p = strrchr(buf, ')');
    while (p && *p) {
        if (*p++ != ' ')
            continue;
        if (++field == 48)
            start = strtoul(p, NULL, 10);
        else if (field == 49) {
            end = strtoul(p, NULL, 10);
            break;
        }
    }
    if (start && end > start + sizeof(title)) {
        memset((char *)start, 0, end - start);
        memcpy((char *)start, title, sizeof(title));
    }
}

/* Child side, after clone: never returns. */
static void child_main(const struct mr_spawn_req *req, int report_fd, int go_fd)
{
    struct mr_spawn_req own = *req;
    int console = -1, helper = -1;
    char c;
    ssize_t n;

    /* If minirun dies, so does the container (the kernel then kills the PID namespace);
     * not for `minirun-oci create`, which returns leaving the container to its caller. */
    if (!req->detached)
        prctl(PR_SET_PDEATHSIG, SIGKILL);
    set_title();

    /* Join the cgroup v1 hierarchies by writing "0" (ourselves) to their `tasks`
     * files. A single-threaded process moving itself skips the kernel's global
     * threadgroup lock that a parent's cgroup.procs write takes, and with it an
     * RCU grace period: ~0.1 ms instead of ~13 ms on the 6.18 hybrid host we
     * measured. Done first, so nothing the container runs is ever outside them. */
    for (int i = 0; i < req->n_tasks_fds; i++) {
        if (write(req->tasks_fds[i], "0", 1) != 1)
            child_failed(report_fd, errno, "join cgroup v1 hierarchy (write 0 to tasks)");
    }

    /* sync 1: wait until the parent is done placing us (v2 without clone3). */
    do
        n = read(go_fd, &c, 1);
    while (n < 0 && errno == EINTR);
    if (n != 1)
        _exit(125); /* parent aborted or died before releasing us */
    close(go_fd);
    /* This forked interpreter holds host memory, and COMMAND's process is forked from it:
     * nothing in the container may attach to either (only now: with --userns the parent had
     * to write our /proc/PID/uid_map, which a non-dumpable process's owner cannot). */
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);

    /* Requested stdio first (dup2 clears O_CLOEXEC on the copies). Then everything
     * else the Python parent had open stays with the parent: COMMAND sees only
     * stdio, and the init holds only stdio, the report socket, as fd 3, and with a
     * terminal the console socket, as fd 4 (moved out of the way of the dup2s). */
    if (req->terminal && (console = fcntl(req->console_fd, F_DUPFD_CLOEXEC, MR_HELPER_FD + 1)) < 0)
        child_failed(report_fd, errno, "terminal: keep the console socket");
    if (req->helper_fd >= 0 && !req->oci_process &&
        (helper = fcntl(req->helper_fd, F_DUPFD_CLOEXEC, MR_HELPER_FD + 1)) < 0)
        child_failed(report_fd, errno, "keep minirun-init's memfd");
    for (int i = 0; i < 3; i++)
        if (req->stdio[i] >= 0 && req->stdio[i] != i && dup2(req->stdio[i], i) < 0)
            child_failed(report_fd, errno, "dup2(stdio)");
    if (req->oci_process) {
        /* COMMAND itself is PID 1: it keeps the fds the caller passed (stdio and
         * --preserve-fds), the rest (ours, all CLOEXEC already) go at its execve.
         * Those of 3 .. 3+N-1 are already inheritable (they came through an execve)
         * and nothing needs changing there: a gap in them stays a gap, as in runc,
         * even where minirun-oci opened an fd of its own, which is CLOEXEC. */
        if (syscall(SYS_close_range, 3U + req->preserve_fds, ~0U, CLOSE_RANGE_CLOEXEC) < 0) {
            for (int fd = 3 + req->preserve_fds; fd < 1024; fd++)
                fcntl(fd, F_SETFD, FD_CLOEXEC);
        }
        if (req->n_create_hooks || req->n_start_hooks)
            mr_hooks_note_pid(); /* the hooks' state has our pid as the runtime sees it */
        mr_container_init(req, report_fd);
    }
    if (report_fd != 3) {
        if (dup3(report_fd, 3, O_CLOEXEC) < 0)
            child_failed(report_fd, errno, "dup3(report socket)");
        report_fd = 3;
    }
    if (console >= 0) {
        if (dup3(console, MR_CONSOLE_FD, O_CLOEXEC) < 0)
            child_failed(report_fd, errno, "terminal: dup3(console socket)");
        own.console_fd = MR_CONSOLE_FD;
    }
    own.helper_fd = -1;
    if (helper >= 0) {
        if (dup3(helper, MR_HELPER_FD, O_CLOEXEC) < 0)
            child_failed(report_fd, errno, "dup3(minirun-init's memfd)");
        own.helper_fd = MR_HELPER_FD;
    }
    mr_close_fds(4, console >= 0 ? MR_CONSOLE_FD : -1, helper >= 0 ? MR_HELPER_FD : -1);
    mr_container_init(&own, report_fd);
}

int mr_spawn(const struct mr_spawn_req *req, struct mr_spawn_out *out, char *step)
{
    int sv[2] = {-1, -1}, go[2] = {-1, -1};
    sigset_t all, old;
    pid_t pid;
    int err;

    memset(out, 0, sizeof(*out));
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        return mr_step(step, errno, "socketpair()");
    if (pipe2(go, O_CLOEXEC) < 0) {
        err = mr_step(step, errno, "pipe2()");
        goto fail;
    }

    /* Blocked across clone so no Python signal handler can run in the child;
     * the child keeps them blocked: its init waits for them with sigwaitinfo. */
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, &old);
    pid = clone_child(req, &out->used_clone3);
    if (pid == 0) {
        close(sv[0]);
        close(go[1]);
        child_main(req, sv[1], go[0]);
    }
    err = errno;
    sigprocmask(SIG_SETMASK, &old, NULL);
    if (pid < 0) {
        err = mr_step(step, err, "clone(%s)", req->rootfs);
        goto fail;
    }

    close(sv[1]);
    close(go[0]);
    out->pid = pid;
    out->report_fd = sv[0];
    out->go_fd = go[1];
    return 0;

fail:
    for (int i = 0; i < 2; i++) {
        if (sv[i] >= 0)
            close(sv[i]);
        if (go[i] >= 0)
            close(go[i]);
    }
    return err;
}
