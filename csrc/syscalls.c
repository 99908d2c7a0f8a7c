/*
 * syscalls.c - helpers the other files share: naming a failed step (the error
 * convention of minirun.h) and closing inherited fds.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
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

static void close_from_to(int from, unsigned int to)
{
    if (syscall(SYS_close_range, (unsigned)from, to, 0U) < 0)
        for (int fd = from; (unsigned)fd <= to && fd < 1024; fd++)
            close(fd);
}

/* Close every fd >= from but the n in keep (-1: none), so that nothing the caller had
 * open (a host file, a socket, a directory: CVE-2024-21626) reaches the container.
 * close_range since Linux 5.9; below that, the usual loop. */
void mr_close_fds_but(int from, const int *keep, int n)
{
    int next;

    for (;;) { /* the lowest kept fd >= from, each time: n is a handful */
        next = -1;
        for (int i = 0; i < n; i++)
            if (keep[i] >= from && (next < 0 || keep[i] < next))
                next = keep[i];
        if (next < 0)
            break;
        if (next > from)
            close_from_to(from, (unsigned)next - 1);
        from = next + 1;
    }
    close_from_to(from, ~0U);
}

void mr_close_fds(int from, int keep_a, int keep_b)
{
    int keep[2] = {keep_a, keep_b};

    mr_close_fds_but(from, keep, 2);
}

/* Python's os.setns arrived in 3.12. */
int mr_setns(int fd, int nstype, char *step)
{
    if (setns(fd, nstype) < 0)
        return mr_step(step, errno, "setns(%d)", fd);
    return 0;
}
