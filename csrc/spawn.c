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

static int exec_init(void *arg)
{
    const struct mr_init_exec *x = arg;
    char *envp[] = {NULL};
    char step[MR_STEP_MAX];
    int err;

    /* If minirun dies, so does the container (the kernel then kills the PID namespace);
     * not for `minirun-oci create`, which returns leaving the container to its caller. */
    if (x->pdeathsig)
        prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (x->become_root) {
        close(x->go_peer_fd); /* our copy of the parent's end: its death must read as EOF */
        mr_spawn_join(x->req, x->fail_fd, x->go_fd);
        if (mr_userns_become_root() < 0)
            mr_setup_failed(x->fail_fd, "become root of the user namespace", errno);
        /* a new euid (0 mapped to another host uid) clears the parent-death signal (commit_creds) */
        if (x->pdeathsig)
            prctl(PR_SET_PDEATHSIG, SIGKILL);
    }
    err = 0;
    for (int i = 0; i < x->n_fds && !err; i++)
        if (fcntl(x->fds[i], F_SETFD, 0) < 0)
            err = mr_step(step, errno, "keep fd %d for minirun-init", x->fds[i]);
    if (!err)
        err = mr_step(step, -mr_execveat_nondumpable(x->helper_fd, x->argv, envp), "start minirun-init");
    if (x->fail_as_exec) /* exec.c's waiter reads an mr_exec_failure */
        mr_exec_failed(x->fail_fd, 0, -err, step);
    mr_setup_failed(x->fail_fd, step, -err);
    return 125;
}

/* clone3 into exec_init on a stack of the caller's frame, CLONE_VM | CLONE_VFORK: we sleep
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

pid_t mr_clone_init(const struct mr_init_exec *x, uint64_t clone_flags, int cgroup_fd, int *used_clone3)
{
    /* the vfork child's stack: it runs exec_init and, if the exec fails, a report */
    static const size_t stack_size = 64 << 10;
    char *stack = (char *)(((uintptr_t)alloca(stack_size + 16) + 15) & ~(uintptr_t)15);
    uint64_t vfork = x->become_root ? 0 : CLONE_VM | CLONE_VFORK;
    struct mr_clone_args args;
    sigset_t all, old;
    long pid;
    int err;

    memset(&args, 0, sizeof(args));
    args.flags = clone_flags | vfork;
    args.exit_signal = SIGCHLD;
    if (cgroup_fd >= 0) {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = (uint64_t)cgroup_fd;
    }
    /* Blocked across clone so no Python signal handler can run in the child; a
     * container's init keeps them blocked: it waits for them with sigwaitinfo. */
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, &old);
    *used_clone3 = 1;
    if (!vfork) {
        pid = syscall(SYS_clone3, &args, sizeof(args));
        if (pid == 0)
            _exit(exec_init((void *)x));
        if (pid > 0 || !clone3_missing(errno))
            goto out;
    }
#ifdef HAVE_CLONE3_ON_STACK
    else {
        args.stack = (uint64_t)(uintptr_t)stack;
        args.stack_size = stack_size;
        pid = clone3_on_stack(&args, exec_init, (void *)x);
        if (pid < 0)
            errno = (int)-pid;
        if (pid >= 0 || !clone3_missing(errno))
            goto out;
    }
#endif
    *used_clone3 = 0;
    if (vfork)
        pid = clone(exec_init, stack + stack_size, (int)(clone_flags | vfork | SIGCHLD), (void *)x);
    else if ((pid = syscall(SYS_clone, (unsigned long)(clone_flags | SIGCHLD), 0, 0, 0, 0)) == 0)
        _exit(exec_init((void *)x));
out:
    err = errno;
    sigprocmask(SIG_SETMASK, &old, NULL);
    errno = err;
    return (pid_t)(pid < 0 ? -1 : pid);
}

int mr_spawn(const struct mr_spawn_req *req, struct mr_spawn_out *out, char *step)
{
    int sv[2] = {-1, -1}, go[2] = {-1, -1}, blob = -1, own[3], n_fds, *fds;
    char blob_arg[16], report_arg[16], go_arg[16];
    struct mr_init_exec x;
    pid_t pid;
    int err;

    memset(out, 0, sizeof(out[0]));
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
    x.fail_fd = sv[1];
    x.pdeathsig = !req->detached;
    x.become_root = (req->clone_flags & CLONE_NEWUSER) != 0;
    x.go_fd = go[0];
    x.go_peer_fd = go[1];
    x.req = req;
    /* go[0] only to a vfork child's exec: a user namespace's child reads sync 1 before its own */
    own[0] = sv[1], own[1] = x.become_root ? -1 : go[0], own[2] = blob;
    n_fds = mr_spawn_req_n_fds(req, 3);
    fds = alloca(sizeof(int) * (size_t)n_fds);
    x.fds = fds;
    x.n_fds = mr_spawn_req_fds(req, fds, n_fds, own, 3);
    snprintf(blob_arg, sizeof(blob_arg), "%d", blob);
    snprintf(report_arg, sizeof(report_arg), "%d", sv[1]);
    snprintf(go_arg, sizeof(go_arg), "%d", own[1]);
    x.argv = (char *[]){"minirun-init", "spawn", blob_arg, report_arg, go_arg, NULL};

    pid = mr_clone_init(&x, req->clone_flags, req->cgroup_fd, &out->used_clone3);
    if (pid < 0) {
        err = mr_step(step, errno, "clone(%s)", req->rootfs);
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
