/*
 * devices.c - keeping the host's devices out: the cgroup v2 devices filter (load a
 * BPF program, attach it to a cgroup). nodev mounts are rootpath.c's MR_OP_NODEV.
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
