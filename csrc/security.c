/*
 * security.c - what COMMAND may do: capabilities, no_new_privs, seccomp. (The
 * masked and read-only paths are mount plan operations: rootpath.c.)
 *
 * The policy is built as data by minirun/security.py and minirun/seccomp.py;
 * this file only applies it, in COMMAND's process (init.c, mr_become_command),
 * in runc's order:
 *
 *   mr_security_before_setuid   still root with every capability:
 *                               drop the bounding set (needs CAP_SETPCAP),
 *                               PR_SET_KEEPCAPS so setuid() to a non-root user
 *                               keeps the permitted set for the capset below;
 *                               if no_new_privs is off, load seccomp now: without
 *                               no_new_privs the kernel wants CAP_SYS_ADMIN for it,
 *                               which COMMAND may be about to lose
 *   setgroups, setgid, setuid   (init.c)
 *   mr_security_before_exec     capset effective = permitted = the set,
 *                               inheritable as asked (within the bounding
 *                               set); ambient cleared, then raised as asked;
 *                               no_new_privs; seccomp last, so the filter only
 *                               sees COMMAND (it allows execve itself); or,
 *                               defer_seccomp, not at all: minirun-init loads
 *                               it after its own syscalls, right before
 *                               COMMAND's execve, as runc-dmz does (init.c)
 *
 * The container's init (PID 1) confines itself before COMMAND may exec (reap.c).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdint.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "minirun.h"


/* seccomp(2) rather than prctl: only it takes the profile's flags (LOG,
 * SPEC_ALLOW, TSYNC). The program was built and exported by libseccomp in the
 * parent (minirun/seccomp.py); nothing here interprets it. */
int mr_load_seccomp(const struct mr_spawn_req *req, char *step)
{
    struct sock_fprog prog;

    prog.len = (unsigned short)req->seccomp_len;
    prog.filter = (struct sock_filter *)req->seccomp_filter;
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, req->seccomp_flags, &prog) != 0)
        return mr_step(step, errno, "load seccomp filter (%d instructions, flags %#x)", req->seccomp_len,
                       req->seccomp_flags);
    return 0;
}

int mr_security_before_setuid(const struct mr_spawn_req *req, char *step)
{
    if (!req->security)
        return 0;
    /* PR_CAPBSET_READ fails with EINVAL past the kernel's last capability. */
    for (int cap = 0; cap < 64; cap++) {
        int has = prctl(PR_CAPBSET_READ, cap, 0, 0, 0);

        if (has < 0)
            break;
        if (has && !(req->cap_mask >> cap & 1) && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0)
            return mr_step(step, errno, "drop capability %d from the bounding set", cap);
    }
    if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
        return mr_step(step, errno, "prctl(PR_SET_KEEPCAPS)");
    if (!req->no_new_privs && req->seccomp_filter)
        return mr_load_seccomp(req, step);
    return 0;
}

int mr_security_before_exec(const struct mr_spawn_req *req, int defer_seccomp, char *step)
{
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct cur[2], want[2];

    if (!req->security)
        return 0;
    if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0)
        return mr_step(step, errno, "prctl(PR_SET_KEEPCAPS)");
    if (syscall(SYS_capget, &hdr, cur) < 0)
        return mr_step(step, errno, "capget()");
    /* Only what we still hold can be kept: a capability the host never gave
     * minirun is silently absent (Python refuses an explicit --cap-add of it). */
    memset(want, 0, sizeof(want));
    for (int i = 0; i < 2; i++) {
        uint32_t set = (uint32_t)(req->cap_mask >> (32 * i)) & cur[i].permitted;

        want[i].permitted = want[i].effective = set;
        if (req->cap_sets) { /* OCI: each set as given (cap_mask is the bounding set) */
            want[i].permitted = (uint32_t)(req->cap_permitted >> (32 * i)) & cur[i].permitted;
            want[i].effective = (uint32_t)(req->cap_effective >> (32 * i)) & want[i].permitted;
        }
        /* Inheritable as asked, even beyond permitted (runc): the kernel only wants it
         * within the bounding set and what we hold. */
        want[i].inheritable = (uint32_t)(req->cap_inheritable >> (32 * i)) & (uint32_t)(req->cap_mask >> (32 * i)) &
                              (cur[i].permitted | cur[i].inheritable);
    }
    if (syscall(SYS_capset, &hdr, want) < 0)
        return mr_step(step, errno, "capset()");
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
        return mr_step(step, errno, "clear ambient capabilities");
    /* Ambient needs the capability permitted and inheritable; runc skips what the
     * kernel refuses, and so do we. */
    for (int cap = 0; req->cap_sets && cap < 64; cap++)
        if (req->cap_ambient >> cap & 1)
            prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0);
    if (req->no_new_privs) {
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
            return mr_step(step, errno, "prctl(PR_SET_NO_NEW_PRIVS)");
        if (req->seccomp_filter && !defer_seccomp)
            return mr_load_seccomp(req, step);
    }
    return 0;
}

/* In a new user namespace, the init still carries the host uid it was cloned
 * with, which the namespace does not map: files it created would fail with
 * EOVERFLOW. Once the parent has written the maps (sync 1), become the
 * namespace's root, i.e. the first id of the mapped host range. */
int mr_userns_become_root(void)
{
    if (setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0)
        return -1;
    return 0;
}

/* execveat(fd) of the sealed minirun-init, a memfd of mode 0111 (minirun/syscalls.py). A
 * program the execing process cannot read starts non-dumpable (the kernel's would_dump), so
 * nothing in the container can attach to it before its own prctl and seccomp filter; root
 * reads anything with CAP_DAC_OVERRIDE or CAP_DAC_READ_SEARCH effective, so those two leave
 * the effective set for the execve, which recomputes it from the permitted set (and COMMAND's
 * execve, next, again): nothing else changes. If the exec fails, the set is put back. Only
 * returns on failure, -errno. A profile that denies capset leaves the caps, not the exec. */
int mr_execveat_nondumpable(int fd, char *const argv[], char *const envp[])
{
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct caps[2];
    uint32_t effective;
    int lowered = 0, err;

    if (syscall(SYS_capget, &hdr, caps) == 0) {
        effective = caps[0].effective;
        caps[0].effective &= ~((1U << CAP_DAC_OVERRIDE) | (1U << CAP_DAC_READ_SEARCH));
        lowered = syscall(SYS_capset, &hdr, caps) == 0;
    }
    syscall(SYS_execveat, fd, "", argv, envp, AT_EMPTY_PATH);
    err = errno;
    if (lowered) {
        caps[0].effective = effective;
        syscall(SYS_capset, &hdr, caps);
    }
    return -err;
}
