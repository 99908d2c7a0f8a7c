/*
 * reap.c - the container's PID 1 once COMMAND's process is forked: make itself a
 * reaper and nothing more, let COMMAND exec, then forward signals to it, reap
 * every zombie of the namespace and report COMMAND's exit.
 *
 * Only in the static minirun-init (init_main.c), which the container's init is
 * from its clone on (spawn.c), so that an idle container holds a ~100 KiB
 * program, never a copy of the Python interpreter.
 *
 * Order (init.c forks COMMAND's process first; it waits on the sync socket):
 *   PID 1 (minirun-init, non-dumpable)      COMMAND's process
 *                                           console, fds, working directory
 *   confine: no groups, capabilities        (waits for one byte)
 *   but KILL, no_new_privs, signal mask
 *   and dispositions, seccomp filter
 *   send one byte                       ->  credentials, seccomp, execve COMMAND
 *   EOF: EXEC_OK / a record: EXEC_FAILED <-
 *   forward signals, reap
 * So no process of the container ever sees PID 1 half-made, and nothing in it can
 * attach to PID 1 for a gain:
 * without CAP_SYS_PTRACE it is non-dumpable; with it (which lets a tracer into any
 * process of its user namespace, as in runc), PID 1 holds no capability COMMAND
 * lacks and its filter allows only what the loop below calls.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "minirun.h"

/* capset(2)'s ABI (musl has no linux/capability.h) */
struct mr_cap_header {
    uint32_t version;
    int pid;
};
struct mr_cap_data {
    uint32_t effective, permitted, inheritable;
};
#define MR_CAP_V3 0x20080522

/* Allow only the syscalls of mr_init_run past this point; everything else fails with EPERM
 * (not a kill: a stray call must not take the container down). Other architectures than
 * these two go without, as the kernel would need their numbers checked. */
#if defined(__x86_64__)
#define MR_AUDIT_ARCH 0xc000003eU /* AUDIT_ARCH_X86_64; x32 numbers (bit 30) match nothing below */
#elif defined(__aarch64__)
#define MR_AUDIT_ARCH 0xc00000b7U /* AUDIT_ARCH_AARCH64 */
#endif
static int reaper_filter(char *step)
{
#ifdef MR_AUDIT_ARCH
#define LD(off) {0x20, 0, 0, (off)}                 /* BPF_LD | BPF_W | BPF_ABS: seccomp_data */
#define ALLOW(nr) {0x15, 0, 1, (nr)}, {0x06, 0, 0, 0x7fff0000U} /* JEQ nr: RET ALLOW */
    struct mr_sock_filter insns[] = {
        LD(4),                                       /* arch */
        {0x15, 1, 0, MR_AUDIT_ARCH},
        {0x06, 0, 0, 0x00050000U | EPERM},           /* RET ERRNO */
        LD(0),                                       /* nr */
        ALLOW(SYS_rt_sigtimedwait), ALLOW(SYS_wait4), ALLOW(SYS_kill), ALLOW(SYS_sendto), ALLOW(SYS_read),
        ALLOW(SYS_close), ALLOW(SYS_exit_group), ALLOW(SYS_exit), ALLOW(SYS_restart_syscall),
        ALLOW(SYS_rt_sigreturn),
        {0x06, 0, 0, 0x00050000U | EPERM},
    };
    struct mr_sock_fprog prog = {sizeof(insns) / sizeof(insns[0]), insns};

    if (syscall(SYS_seccomp, MR_SECCOMP_SET_MODE_FILTER, 0, &prog) < 0 && errno != ENOSYS && errno != EINVAL) {
        snprintf(step, MR_STEP_MAX, "init: load its seccomp filter");
        return -errno;
    }
#undef LD
#undef ALLOW
#else
    (void)step;
#endif
    return 0;
}

/* What a reaper needs and nothing else: no supplementary groups, no capability but keep_caps
 * (CAP_KILL, so that forwarding still reaches a COMMAND that changed its uid, as gosu does;
 * tini has all of COMMAND's), no_new_privs, the forwarded signals and SIGCHLD blocked for
 * sigwaitinfo, job control ignored, the synchronous signals left to the kernel, the filter. */
static int confine(uint64_t keep_caps, sigset_t *wait_set, char *step)
{
    struct mr_cap_header hdr = {MR_CAP_V3, 0};
    struct mr_cap_data caps[2];

    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    prctl(PR_SET_NAME, "minirun-init", 0, 0, 0);
    /* EPERM: a rootless user namespace, where setgroups is denied and there are none to drop */
    if (setgroups(0, NULL) < 0 && errno != EPERM)
        return snprintf(step, MR_STEP_MAX, "init: setgroups()"), -errno;
    for (int cap = 0; cap < 64; cap++) {
        int has = prctl(PR_CAPBSET_READ, cap, 0, 0, 0);

        if (has < 0)
            break; /* EINVAL past the kernel's last capability */
        if (has && !(keep_caps >> cap & 1) && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0)
            return snprintf(step, MR_STEP_MAX, "init: drop capability %d from the bounding set", cap), -errno;
    }
    if (syscall(SYS_capget, &hdr, caps) < 0)
        return snprintf(step, MR_STEP_MAX, "init: capget()"), -errno;
    for (int i = 0; i < 2; i++) {
        caps[i].permitted &= (uint32_t)(keep_caps >> (32 * i));
        caps[i].effective = caps[i].permitted;
        caps[i].inheritable = 0;
    }
    if (syscall(SYS_capset, &hdr, caps) < 0)
        return snprintf(step, MR_STEP_MAX, "init: capset()"), -errno;
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
        return snprintf(step, MR_STEP_MAX, "init: clear ambient capabilities"), -errno;
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return snprintf(step, MR_STEP_MAX, "init: prctl(PR_SET_NO_NEW_PRIVS)"), -errno;
    sigemptyset(wait_set);
    for (int sig = 1; sig < NSIG; sig++) {
        if (mr_forwarded_signal(sig) || sig == SIGCHLD)
            sigaddset(wait_set, sig); /* fails, harmlessly, for the libc's own real-time signals */
        else if (sig == SIGTSTP || sig == SIGTTIN || sig == SIGTTOU)
            signal(sig, SIG_IGN);
        else if (sig != SIGKILL && sig != SIGSTOP)
            signal(sig, SIG_DFL);
    }
    if (sigprocmask(SIG_SETMASK, wait_set, NULL) < 0)
        return snprintf(step, MR_STEP_MAX, "init: sigprocmask()"), -errno;
    return reaper_filter(step);
}

/* From the fork on, every signal is blocked (an exec keeps the mask and what is pending), so
 * none sent to PID 1 is lost before the loop; what is not forwarded is dropped there. */
void mr_init_run(int report_fd, pid_t command, int sync_fd, uint64_t keep_caps)
{
    struct mr_exec_failure failure;
    char step[MR_STEP_MAX];
    sigset_t wait_set;
    siginfo_t si;
    int status, err;
    pid_t pid;
    ssize_t n;

    if ((err = confine(keep_caps, &wait_set, step)) < 0)
        mr_setup_failed(report_fd, step, -err); /* COMMAND's process dies with the namespace */
    /* Complete: COMMAND's process may go on. Then EOF on the CLOEXEC socket means its
     * execve succeeded, a record that it failed (mr_exec_failed). */
    while (send(sync_fd, "", 1, MSG_NOSIGNAL) < 0 && errno == EINTR)
        ;
    memset(&failure, 0, sizeof(failure));
    do
        n = read(sync_fd, &failure, sizeof(failure));
    while (n < 0 && errno == EINTR);
    close(sync_fd);
    if (n > 0) {
        failure.step[MR_STEP_MAX - 1] = 0; /* written by the container's side: never trust it to end */
        mr_send_report(report_fd, MR_REPORT_EXEC_FAILED, failure.err, 0, command, failure.step);
        while (waitpid(command, NULL, 0) < 0 && errno == EINTR)
            ;
        _exit(mr_exec_failure_status(failure.err));
    }
    mr_send_report(report_fd, MR_REPORT_EXEC_OK, 0, 0, command, NULL);

    for (;;) {
        int sig = sigwaitinfo(&wait_set, &si);

        if (sig < 0)
            continue;
        if (sig != SIGCHLD) {
            if (mr_forwarded_signal(sig))
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
