/*
 * syscalls.c - thin wrappers over the syscalls Python's os module lacks.
 *
 * Each returns 0 on success or -errno, and writes "call(argument)" into `step`
 * so the Python side can raise OSError(errno, strerror) naming what failed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "minirun.h"

/* Record the failing step and return -err: `return mr_step(step, errno, "mount(%s)", t);` */
int mr_step(char *step, int err, const char *fmt, ...)
{
    if (step) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(step, MR_STEP_MAX, fmt, ap);
        va_end(ap);
    }
    return -err;
}

/* Close every fd >= from except keep, so that nothing the caller had open
 * (a host file, a socket, a directory: CVE-2024-21626) reaches the container.
 * close_range since Linux 5.9; below that, the usual loop. */
void mr_close_fds(int from, int keep)
{
    if (keep >= from) {
        if (keep > from && syscall(SYS_close_range, (unsigned)from, (unsigned)keep - 1, 0U) < 0)
            for (int fd = from; fd < keep; fd++)
                close(fd);
        from = keep + 1;
    }
    if (syscall(SYS_close_range, (unsigned)from, ~0U, 0U) < 0)
        for (int fd = from; fd < 1024; fd++)
            close(fd);
}

int mr_mount(const char *source, const char *target, const char *fstype, unsigned long flags,
             const char *data, char *step)
{
    if (mount(source, target, fstype, flags, data) < 0)
        return mr_step(step, errno, "mount(%s)", target);
    return 0;
}

int mr_umount2(const char *target, int flags, char *step)
{
    if (umount2(target, flags) < 0)
        return mr_step(step, errno, "umount2(%s)", target);
    return 0;
}

/* glibc has no wrapper for pivot_root(2). */
int mr_pivot_root(const char *new_root, const char *put_old, char *step)
{
    if (syscall(SYS_pivot_root, new_root, put_old) < 0)
        return mr_step(step, errno, "pivot_root(%s)", new_root);
    return 0;
}

int mr_unshare(int flags, char *step)
{
    if (unshare(flags) < 0)
        return mr_step(step, errno, "unshare(0x%x)", flags);
    return 0;
}

int mr_setns(int fd, int nstype, char *step)
{
    if (setns(fd, nstype) < 0)
        return mr_step(step, errno, "setns(%d)", fd);
    return 0;
}

int mr_sethostname(const char *name, char *step)
{
    if (sethostname(name, strlen(name)) < 0)
        return mr_step(step, errno, "sethostname(%s)", name);
    return 0;
}
