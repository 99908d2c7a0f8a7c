/*
 * syscalls.c - helpers the other files share: naming a failed step (the error
 * convention of minirun.h) and closing inherited fds.
 */
#define _GNU_SOURCE
#include <errno.h>
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
