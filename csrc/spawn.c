/*
 * spawn.c - create a container: clone into new namespaces, where the child
 * becomes minirun-init at once and sets the container up (init.c).
 *
 * Why the child execs before anything else: the parent is a Python process. A
 * fork-like child would share its memory copy-on-write: every page the
 * interpreter wrote afterwards took a fault (~450 per container, ~1.5 ms on
 * this kind of host), the clone copied its page tables, and the child could
 * only run async-signal-safe code. So the child is a vfork (CLONE_VM |
 * CLONE_VFORK, on a stack of the parent's frame, the parent asleep) whose one
 * act is to exec the sealed minirun-init (the static helper, from its memfd)
 * with the request, packed into a memfd (spawnreq.c). With a user namespace
 * the child cannot exec before the parent has mapped its ids (the exec would
 * drop every capability it has there): it is cloned fork-like, waits for
 * sync 1, becomes the namespace's root, and then execs the same way.
 *
 * The handshake (numbers appear as "sync N" in the code and in process.py):
 *
 *   parent (Python, mr_spawn + core.py)          child = container init (minirun-init)
 *   ----------------------------------------     ------------------------------
 *   pack the request; block all signals;
 *   clone3/clone (clone3 puts it in the v2   ->  PDEATHSIG=SIGKILL; exec minirun-init
 *   cgroup); the parent sleeps until the exec    spawn mode (signals stay blocked)
 *   write pid to v2 cgroup.procs if no clone3    join the v1 cgroups: write 0 to their tasks
 *   --userns: write /proc/PID/uid_map and        (waits: its user namespace maps nothing yet;
 *   gid_map (security.write_id_maps)             with one it waits before the exec)
 *   sync 1: write go byte on go_fd           ->  read go byte (EOF: parent gone -> exit)
 *                                                unshare(CLONE_NEWCGROUP); mounts;
 *                                                pivot_root; /proc /sys /dev; hostname; lo up
 *                                                fork COMMAND's process (it waits), confine
 *                                                itself, let COMMAND exec
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

/* What the child needs to exec minirun-init: all prepared by the parent, so that a vfork
 * child does nothing but system calls on its own stack. */
struct init_exec {
    int helper_fd;     /* the sealed minirun-init */
    int report_fd;     /* where a failure to exec it is reported */
    int detached;      /* no PDEATHSIG (minirun-oci create) */
    int become_root;   /* fork-like child of a user namespace: sync 1, then its root */
    int go_fd;
    const struct mr_spawn_req *req;
    int *fds;
    int n_fds;
    char *argv[6];
};

static int exec_init(void *arg)
{
    const struct init_exec *x = arg;
    char *envp[] = {NULL};

    /* If minirun dies, so does the container (the kernel then kills the PID namespace);
     * not for `minirun-oci create`, which returns leaving the container to its caller. */
    if (!x->detached)
        prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (x->become_root) {
        mr_spawn_join(x->req, x->report_fd, x->go_fd);
        if (mr_userns_become_root() < 0)
            mr_setup_failed(x->report_fd, "become root of the user namespace", errno);
    }
    for (int i = 0; i < x->n_fds; i++)
        if (fcntl(x->fds[i], F_SETFD, 0) < 0)
            mr_setup_failed(x->report_fd, "keep an fd for minirun-init", errno);
    mr_setup_failed(x->report_fd, "exec minirun-init", -mr_execveat_nondumpable(x->helper_fd, x->argv, envp));
    return 125;
}

/* clone3 into exec_init on a stack of our own frame, CLONE_VM | CLONE_VFORK: we sleep
 * until the child has exec'd (or exited); it shares our memory until then. The child
 * starts on the new stack, where only an assembly trampoline can call into C.
 * Elsewhere than x86-64, glibc's clone() does it, without CLONE_INTO_CGROUP. */
#if defined(__x86_64__)
#define HAVE_CLONE3_ON_STACK 1
static long clone3_on_stack(struct mr_clone_args *args, int (*fn)(void *), void *arg)
{
    register long rax __asm__("rax") = SYS_clone3;
    register void *r12 __asm__("r12") = (void *)fn; /* syscall keeps all but rax, rcx, r11 */
    register void *r13 __asm__("r13") = arg;

    __asm__ volatile("syscall\n\t"
                     "test %%rax, %%rax\n\t"
                     "jnz 1f\n\t"
                     "xor %%ebp, %%ebp\n\t" /* the child: the outermost frame */
                     "mov %%r13, %%rdi\n\t"
                     "call *%%r12\n\t"
                     "mov %%eax, %%edi\n\t"
                     "mov $60, %%eax\n\t" /* SYS_exit */
                     "syscall\n\t"
                     "hlt\n"
                     "1:"
                     : "+r"(rax)
                     : "D"(args), "S"(sizeof(*args)), "r"(r12), "r"(r13)
                     : "rcx", "r11", "memory");
    return rax;
}
#endif

static int clone3_missing(int err)
{
    return err == ENOSYS || err == E2BIG || err == EINVAL;
}

/* The child, never outside its cgroups: clone3 starts it inside the cgroup v2
 * directory (CLONE_INTO_CGROUP); plain clone where the kernel lacks clone3 (the
 * parent then adds it, *used_clone3 = 0). A user namespace's child is fork-like. */
static pid_t clone_child(const struct mr_spawn_req *req, struct init_exec *x, char *stack, size_t stack_size,
                         int *used_clone3)
{
    struct mr_clone_args args;
    uint64_t vfork = x->become_root ? 0 : CLONE_VM | CLONE_VFORK;
    long pid;

    memset(&args, 0, sizeof(args));
    args.flags = req->clone_flags | vfork;
    args.exit_signal = SIGCHLD;
    if (req->cgroup_fd >= 0) {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = (uint64_t)req->cgroup_fd;
    }
    *used_clone3 = 1;
    if (!vfork) {
        pid = syscall(SYS_clone3, &args, sizeof(args));
        if (pid == 0)
            _exit(exec_init(x));
        if (pid > 0 || !clone3_missing(errno))
            return (pid_t)pid;
    }
#ifdef HAVE_CLONE3_ON_STACK
    else {
        args.stack = (uint64_t)(uintptr_t)stack;
        args.stack_size = stack_size;
        pid = clone3_on_stack(&args, exec_init, x);
        if (pid >= 0)
            return (pid_t)pid;
        errno = (int)-pid;
        if (!clone3_missing(errno))
            return -1;
    }
#endif
    *used_clone3 = 0;
    if (vfork)
        return clone(exec_init, stack + stack_size, (int)(req->clone_flags | vfork | SIGCHLD), x);
    pid = syscall(SYS_clone, (unsigned long)(req->clone_flags | SIGCHLD), 0, 0, 0, 0);
    if (pid == 0)
        _exit(exec_init(x));
    return (pid_t)pid;
}

int mr_spawn(const struct mr_spawn_req *req, struct mr_spawn_out *out, char *step)
{
    /* the vfork child's stack: it runs exec_init and, if the exec fails, a report */
    static const size_t stack_size = 64 << 10;
    char *stack = alloca(stack_size + 16);
    int sv[2] = {-1, -1}, go[2] = {-1, -1}, blob = -1, n_fds, *fds;
    char blob_arg[16], report_arg[16], go_arg[16];
    struct init_exec x;
    sigset_t all, old;
    pid_t pid;
    int err;

    memset(out, 0, sizeof(out[0]));
    stack = (char *)(((uintptr_t)stack + 15) & ~(uintptr_t)15);
    if (req->helper_fd < 0)
        return mr_step(step, EINVAL, "spawn: no minirun-init to exec");
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        return mr_step(step, errno, "socketpair()");
    if (pipe2(go, O_CLOEXEC) < 0) {
        err = mr_step(step, errno, "pipe2()");
        goto fail;
    }
    if ((blob = mr_spawn_req_to_memfd(req, step)) < 0) {
        err = blob;
        goto fail;
    }
    memset(&x, 0, sizeof(x));
    x.helper_fd = req->helper_fd;
    x.report_fd = sv[1];
    x.detached = req->detached;
    x.become_root = (req->clone_flags & CLONE_NEWUSER) != 0;
    x.go_fd = go[0];
    x.req = req;
    n_fds = mr_spawn_req_n_fds(req);
    fds = alloca(sizeof(int) * (size_t)n_fds);
    n_fds = mr_spawn_req_fds(req, fds, n_fds, sv[1], x.become_root ? -1 : go[0], blob); /* go[0]: see exec_init */
    x.fds = fds;
    x.n_fds = n_fds;
    snprintf(blob_arg, sizeof(blob_arg), "%d", blob);
    snprintf(report_arg, sizeof(report_arg), "%d", sv[1]);
    snprintf(go_arg, sizeof(go_arg), "%d", x.become_root ? -1 : go[0]);
    x.argv[0] = "minirun-init";
    x.argv[1] = "spawn";
    x.argv[2] = blob_arg;
    x.argv[3] = report_arg;
    x.argv[4] = go_arg;
    x.argv[5] = NULL;

    /* Blocked across clone so no Python signal handler can run in the child;
     * the child keeps them blocked: its init waits for them with sigwaitinfo. */
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, &old);
    pid = clone_child(req, &x, stack, stack_size, &out->used_clone3);
    err = errno;
    sigprocmask(SIG_SETMASK, &old, NULL);
    if (pid < 0) {
        err = mr_step(step, err, "clone(%s)", req->rootfs);
        goto fail;
    }

    close(sv[1]);
    close(go[0]);
    close(blob);
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
    if (blob >= 0)
        close(blob);
    return err;
}
