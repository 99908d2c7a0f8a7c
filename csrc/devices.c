/*
 * devices.c - keeping the host's devices out: the cgroup v2 devices filter (load a
 * BPF program, attach it to a cgroup) and nodev mounts.
 *
 * The program itself is built as data in Python (minirun/cgroups/devicefilter.py,
 * from the container's device rules); this file only makes the two bpf(2) calls,
 * which Python's os module lacks. Called by the parent, before the container's
 * init is placed in the cgroup, so nothing in the container ever runs unfiltered.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "minirun.h"

static int sys_bpf(int cmd, union bpf_attr *attr)
{
    return (int)syscall(SYS_bpf, cmd, attr, sizeof(*attr));
}

int mr_attach_device_filter(const void *insns, int n_insns, int cgroup_fd, char *step)
{
    static char log[4096];
    union bpf_attr attr;
    int prog, err;

    memset(&attr, 0, sizeof(attr));
    attr.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
    attr.insns = (uint64_t)(uintptr_t)insns;
    attr.insn_cnt = (uint32_t)n_insns;
    attr.license = (uint64_t)(uintptr_t) "Apache-2.0"; /* no GPL-only helper is called */
    prog = sys_bpf(BPF_PROG_LOAD, &attr);
    if (prog < 0 && errno == EACCES) { /* rejected by the verifier: load again for its log */
        err = errno;
        attr.log_buf = (uint64_t)(uintptr_t)log;
        attr.log_size = sizeof(log);
        attr.log_level = 1;
        log[0] = '\0';
        if (sys_bpf(BPF_PROG_LOAD, &attr) < 0)
            return mr_step(step, err, "bpf(PROG_LOAD, devices filter): %.150s", log);
    }
    if (prog < 0)
        return mr_step(step, errno, "bpf(PROG_LOAD, devices filter)");

    /* ALLOW_MULTI, as runc and systemd: programs attached above (a systemd unit's)
     * keep running too, and a device must pass all of them. */
    memset(&attr, 0, sizeof(attr));
    attr.target_fd = (uint32_t)cgroup_fd;
    attr.attach_bpf_fd = (uint32_t)prog;
    attr.attach_type = BPF_CGROUP_DEVICE;
    attr.attach_flags = BPF_F_ALLOW_MULTI;
    if (sys_bpf(BPF_PROG_ATTACH, &attr) < 0) {
        err = errno;
        close(prog);
        return mr_step(step, err, "bpf(PROG_ATTACH, devices filter)");
    }
    /* The cgroup holds the program now; it goes when the cgroup is removed. */
    close(prog);
    return 0;
}

/* ---- nodev mounts: device nodes shipped in the rootfs or a volume stay inert ---- */

#ifndef MOUNT_ATTR_NODEV
#define MOUNT_ATTR_NODEV 0x00000004
#endif
#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif
#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442
#endif

struct mr_mount_attr { /* struct mount_attr (linux/mount.h clashes with sys/mount.h) */
    uint64_t attr_set, attr_clr, propagation, userns_fd;
};

/* Remount the mount at `target` with `add` on top of the per-mount flags it has: a
 * bind remount replaces them all, and the kernel refuses to drop locked ones. */
int mr_remount_adding(const char *target, unsigned long add, char *step)
{
    static const struct { unsigned long st, ms; } kept[] = {
        {ST_RDONLY, MS_RDONLY},     {ST_NOSUID, MS_NOSUID},         {ST_NODEV, MS_NODEV},
        {ST_NOEXEC, MS_NOEXEC},     {ST_NOATIME, MS_NOATIME},       {ST_NODIRATIME, MS_NODIRATIME},
        {ST_RELATIME, MS_RELATIME},
    };
    unsigned long flags = MS_BIND | MS_REMOUNT | add;
    struct statvfs sv;

    if (statvfs(target, &sv) < 0)
        return mr_step(step, errno, "statvfs(%s)", target);
    for (size_t i = 0; i < sizeof(kept) / sizeof(kept[0]); i++)
        if (sv.f_flag & kept[i].st)
            flags |= kept[i].ms;
    if (mount(NULL, target, NULL, flags, NULL) < 0)
        return mr_step(step, errno, "remount(%s)", target);
    return 0;
}

/* nodev on the mount at `target` and every mount under it, other flags kept
 * (mount_setattr, Linux 5.12); older kernels: `target` itself by a remount. */
int mr_mount_nodev(const char *target, char *step)
{
    struct mr_mount_attr attr = {.attr_set = MOUNT_ATTR_NODEV};

    if (syscall(SYS_mount_setattr, AT_FDCWD, target, AT_RECURSIVE, &attr, sizeof(attr)) == 0)
        return 0;
    if (errno != ENOSYS)
        return mr_step(step, errno, "mount_setattr(%s, nodev)", target);
    return mr_remount_adding(target, MS_NODEV, step);
}
