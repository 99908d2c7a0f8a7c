/*
 * netns.c - a container's network namespace, made ahead on a thread of its own.
 *
 * A new network namespace is the dearest part of a container's clone (~0.3 ms
 * of its ~0.5 here: the kernel registers the namespace's sysctl tables, its
 * loopback device and every protocol's per-namespace state), and it needs
 * nothing from the container's plan. So the parent starts a thread that
 * unshares one, brings its loopback up and opens it, while Python goes on with
 * the claim, the cgroups and the request; the init then joins it (setns, the
 * request's join_fds: csrc/init.c) instead of the clone making one. On a host
 * whose other core is busy nothing is gained, nor lost but the thread's start.
 *
 * Only for a namespace owned by the host's user namespace, as the clone's would
 * be: one that a user namespace of the container is to own is made inside it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include "minirun.h"

static void *make_netns(void *arg)
{
    struct mr_netns_ahead *a = arg;

    if (unshare(CLONE_NEWNET) < 0)
        a->err = mr_step(a->step, errno, "unshare(network namespace)");
    else if (mr_loopback_up() < 0)
        a->err = mr_step(a->step, errno, "bring up loopback");
    else if ((a->fd = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC)) < 0)
        a->err = mr_step(a->step, errno, "open(/proc/thread-self/ns/net)");
    return NULL; /* the thread's exit drops its hold on the namespace: the fd keeps it */
}

int mr_netns_ahead_start(struct mr_netns_ahead *a)
{
    sigset_t all, old;
    int err;

    a->fd = -1;
    a->err = 0;
    a->step[0] = '\0';
    /* no signal for the thread: Python handles them on its main thread */
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    err = pthread_create(&a->thread, NULL, make_netns, a);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    a->running = err == 0;
    return err ? mr_step(a->step, err, "start a thread for the network namespace") : 0;
}

int mr_netns_ahead_finish(struct mr_netns_ahead *a)
{
    if (a->running) {
        pthread_join(a->thread, NULL);
        a->running = 0;
    }
    return a->err ? a->err : a->fd;
}
