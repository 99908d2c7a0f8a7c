/*
 * aside.c - a thread of its own for the work a process that runs containers one
 * after another need not do on the CPU they run on (minirun/aside.py says what,
 * and why); C, so that it never waits for the interpreter's lock, nor makes the
 * caller wait for it.
 *
 * The caller's thread hands work over under `lock` and goes on: a network
 * namespace is taken from `ready`, an fd to close goes on `to_close`. A fork
 * waits until the thread is idle (a namespace takes ~0.4 ms), so that no fd is
 * half-way between the lists and the child, which closes its copies of both.
 * Before each round the thread moves to another CPU than the one the caller
 * last ran on: the containers' processes wake one another synchronously, and the
 * scheduler keeps them all there. If it cannot make a namespace, it closes what
 * it holds and ends: the clones make their own from then on.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "minirun.h"

#define READY_MAX 1     /* namespaces kept made ahead: a container takes ~4 ms here, a namespace ~0.4 */
#define TO_CLOSE_MAX 64 /* more waiting: the caller closes its fd itself */

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t work_to_do = PTHREAD_COND_INITIALIZER;
static pthread_cond_t settled; /* on CLOCK_MONOTONIC: init_settled() */
static int running; /* the thread runs (-1: it could not be started, or it ended) */
static int busy;    /* it works on what it took off the lists */
static int ready[READY_MAX], n_ready;
static int to_close[TO_CLOSE_MAX], n_to_close;
static int caller_cpu = -1;
static cpu_set_t allowed; /* the caller's CPUs, when the thread started */

static int netns_wanted(void)
{
    return n_ready < READY_MAX;
}

static void away_from(int cpu)
{
    cpu_set_t others = allowed;

    if (cpu < 0 || cpu >= CPU_SETSIZE)
        return;
    CPU_CLR(cpu, &others);
    if (CPU_COUNT(&others) > 0)
        sched_setaffinity(0, sizeof(others), &others); /* EINVAL: a cpuset changed meanwhile; stay */
}

static void *work(void *unused)
{
    char step[MR_STEP_MAX];
    int fds[TO_CLOSE_MAX], n, make, cpu, fd;

    (void)unused;
    pthread_mutex_lock(&lock);
    for (;;) {
        busy = 0;
        pthread_cond_broadcast(&settled);
        while (!n_to_close && !netns_wanted())
            pthread_cond_wait(&work_to_do, &lock);
        n = n_to_close;
        memcpy(fds, to_close, n * sizeof(int));
        n_to_close = 0;
        make = netns_wanted();
        cpu = caller_cpu;
        busy = 1;
        pthread_mutex_unlock(&lock);

        away_from(cpu);
        for (int i = 0; i < n; i++)
            close(fds[i]);
        fd = make ? mr_netns_make(step) : -1;

        pthread_mutex_lock(&lock);
        if (make && fd < 0)
            break; /* the clone says why, if it fails too; and the thread may be in that namespace */
        if (make)
            ready[n_ready++] = fd;
    }
    for (int i = 0; i < n_to_close; i++)
        close(to_close[i]);
    n_to_close = 0;
    running = -1;
    busy = 0;
    pthread_cond_broadcast(&settled);
    pthread_mutex_unlock(&lock);
    return NULL;
}

static void init_settled(void)
{
    pthread_condattr_t attr;

    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&settled, &attr);
    pthread_condattr_destroy(&attr);
}

/* fork: the child has no thread, none of the namespaces made ahead (two containers must
 * never share one), and closes its copies of the fds that wait to be closed. */
static void before_fork(void)
{
    pthread_mutex_lock(&lock);
    while (running == 1 && busy)
        pthread_cond_wait(&settled, &lock);
}

static void after_fork_in_parent(void)
{
    pthread_mutex_unlock(&lock);
}

static void after_fork_in_child(void)
{
    for (int i = 0; i < n_ready; i++)
        close(ready[i]);
    for (int i = 0; i < n_to_close; i++)
        close(to_close[i]);
    n_ready = n_to_close = 0;
    running = busy = 0;
    pthread_cond_init(&work_to_do, NULL);
    init_settled();
    pthread_mutex_unlock(&lock);
}

static void start(void) /* with the lock held */
{
    static int atfork;
    sigset_t all, old;
    pthread_attr_t attr;
    pthread_t thread;
    int err;

    if (!atfork) {
        init_settled();
        if (pthread_atfork(before_fork, after_fork_in_parent, after_fork_in_child) != 0) {
            running = -1;
            return;
        }
        atfork = 1;
    }
    if (sched_getaffinity(0, sizeof(allowed), &allowed) < 0)
        CPU_ZERO(&allowed);
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    /* No signal for the thread: minirun's forwarding must interrupt the caller's wait. */
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    err = pthread_create(&thread, &attr, work, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    running = err ? -1 : 1;
}

int mr_aside_take_netns(void)
{
    int fd;

    pthread_mutex_lock(&lock);
    caller_cpu = sched_getcpu();
    if (!running)
        start();
    fd = n_ready ? ready[--n_ready] : -1;
    pthread_cond_signal(&work_to_do);
    pthread_mutex_unlock(&lock);
    return fd;
}

int mr_aside_close(int fd)
{
    int taken = 0;

    pthread_mutex_lock(&lock);
    if (running == 1 && n_to_close < TO_CLOSE_MAX) {
        caller_cpu = sched_getcpu();
        to_close[n_to_close++] = fd;
        pthread_cond_signal(&work_to_do);
        taken = 1;
    }
    pthread_mutex_unlock(&lock);
    return taken;
}

int mr_aside_settled(int timeout_ms)
{
    struct timespec deadline;
    int waited = 0, idle;

    if (timeout_ms < 0)
        timeout_ms = 0;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
    if (deadline.tv_nsec >= 1000000000) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&lock);
    while (!(idle = running != 1 || !(busy || n_to_close || netns_wanted())) && waited != ETIMEDOUT)
        waited = pthread_cond_timedwait(&settled, &lock, &deadline);
    pthread_mutex_unlock(&lock);
    return idle;
}
