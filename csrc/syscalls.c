/*
 * syscalls.c - helpers the other files share: naming a failed step (the error
 * convention of minirun.h), closing inherited fds, a network namespace's loopback
 * and a new network namespace.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
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

int mr_loopback_up(void)
{
    struct ifreq ifr;
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    int ret = -1;

    if (s < 0)
        return -1;
    memset(&ifr, 0, sizeof(ifr));
    strcpy(ifr.ifr_name, "lo");
    if (ioctl(s, SIOCGIFFLAGS, &ifr) == 0) {
        ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
        ret = ioctl(s, SIOCSIFFLAGS, &ifr);
    }
    close(s);
    return ret;
}

/* A new network namespace with its loopback up, for a container to join (setns) in place
 * of the clone making one: minirun/aside.py makes them ahead on a thread of its own.
 * The calling thread goes back to its own namespace. The namespace's fd (close-on-exec),
 * or -errno with the step. */
int mr_netns_make(char *step)
{
    int home = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC), fd = -1, err = 0;

    if (home < 0)
        return mr_step(step, errno, "open(/proc/thread-self/ns/net)");
    if (unshare(CLONE_NEWNET) < 0) {
        err = mr_step(step, errno, "unshare(network namespace)");
    } else {
        if (mr_loopback_up() < 0)
            err = mr_step(step, errno, "bring up loopback");
        else if ((fd = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC)) < 0)
            err = mr_step(step, errno, "open(/proc/thread-self/ns/net)");
        if (setns(home, CLONE_NEWNET) < 0 && !err)
            err = mr_step(step, errno, "setns(back to the thread's network namespace)");
    }
    close(home);
    if (err && fd >= 0)
        close(fd);
    return err ? err : fd;
}
