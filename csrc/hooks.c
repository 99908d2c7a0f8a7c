/*
 * hooks.c - the OCI hooks the container's own process runs (minirun-oci):
 *
 *   createContainer  init.c, in the container's namespaces once the mounts are made,
 *                    before pivot_root (so the path is the runtime's), cwd the rootfs
 *   startContainer   mr_become_command, after `start` opened the exec fifo and the
 *                    credentials are the process's, just before execve (so the path
 *                    is the container's), cwd process.cwd
 *
 * as runc runs them, and the ones the runtime runs itself, through the same runner:
 *
 *   prestart, createRuntime   minirun-oci create (minirun/oci/hooks.py, through cffi)
 *   poststart, poststop       start and delete (ociverbs.c)
 *
 * Each hook is forked and exec'd with the state JSON on its stdin and its stdout and
 * stderr in a pipe whose first bytes go into the failure message; past its timeout it
 * is killed. One runner, so every kind fails with the same words.
 *
 * No malloc: this runs in a child cloned from a threaded Python process.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "minirun.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

static int host_pid;

void mr_hooks_note_pid(void)
{
    char buf[32];
    ssize_t n = readlink("/proc/self", buf, sizeof(buf) - 1);

    /* Still the runtime's /proc (nothing is mounted yet): "self" is our pid as the
     * runtime sees it, which the state's pid is. */
    if (n > 0) {
        buf[n] = '\0';
        sscanf(buf, "%d", &host_pid);
    }
}

static long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

extern char **environ;

static void __attribute__((noreturn)) hook_child(const struct mr_hook *hook, int in, int out)
{
    sigset_t none;

    if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0)
        _exit(127);
    mr_close_fds(3, -1, -1);
    for (int sig = 1; sig < NSIG; sig++) /* the init blocks them all; SIGPIPE may be ignored */
        signal(sig, SIG_DFL);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    /* No env: the runner's own (runc's exec.Cmd with a nil Env) */
    execve(hook->path, (char *const *)hook->argv, hook->envp ? (char *const *)hook->envp : environ);
    dprintf(1, "exec %s: %s", hook->path, strerror(errno));
    _exit(127);
}

/* Run one hook to its end; 0, or -1 with *err (0: it ran and failed) and the step. */
static int run_hook(const char *kind, const struct mr_hook *hook, const char *state, const char *tail, char *step,
                    int *err)
{
    int in[2], out[2], pidfd = -1, status = 0, exited = 0, timed_out = 0;
    const char *seg[2] = {state, tail};
    size_t seg_len[2] = {strlen(state), strlen(tail)}, at = 0;
    char output[160], drain[512];
    size_t n_output = 0;
    long deadline = hook->timeout > 0 ? now_ms() + hook->timeout * 1000L : 0;
    pid_t pid;

    if (pipe2(in, O_CLOEXEC) < 0) {
        *err = errno;
        return mr_step(step, errno, "%s hook %s: pipe2()", kind, hook->path), -1;
    }
    if (pipe2(out, O_CLOEXEC) < 0) {
        *err = errno;
        close(in[0]);
        close(in[1]);
        return mr_step(step, errno, "%s hook %s: pipe2()", kind, hook->path), -1;
    }
    pid = (pid_t)syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
    if (pid == 0)
        hook_child(hook, in[0], out[1]);
    *err = errno;
    close(in[0]);
    close(out[1]);
    if (pid < 0) {
        close(in[1]);
        close(out[0]);
        return mr_step(step, *err, "%s hook %s: fork()", kind, hook->path), -1;
    }
    fcntl(in[1], F_SETFL, O_NONBLOCK);
    fcntl(out[0], F_SETFL, O_NONBLOCK);
    pidfd = (int)syscall(SYS_pidfd_open, pid, 0);

    while (!exited) {
        struct pollfd p[3];
        int np = 0, wait_ms = -1;

        if (deadline) {
            long left = deadline - now_ms();

            if (left <= 0) {
                timed_out = 1;
                kill(pid, SIGKILL);
                while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                    ;
                break;
            }
            wait_ms = (int)left;
        }
        if (pidfd < 0 && (wait_ms < 0 || wait_ms > 10))
            wait_ms = 10; /* no pidfd (before Linux 5.3): look at the child every 10 ms */
        if (pidfd >= 0)
            p[np++] = (struct pollfd){.fd = pidfd, .events = POLLIN};
        if (out[0] >= 0)
            p[np++] = (struct pollfd){.fd = out[0], .events = POLLIN};
        if (in[1] >= 0)
            p[np++] = (struct pollfd){.fd = in[1], .events = POLLOUT};
        if (poll(p, np, wait_ms) < 0 && errno != EINTR)
            break;
        if (in[1] >= 0) { /* the state, a part at a time if the hook reads slowly */
            while (at < 2) {
                ssize_t w = write(in[1], seg[at], seg_len[at]);

                if (w < 0)
                    break;
                seg[at] += w;
                seg_len[at] -= (size_t)w;
                if (!seg_len[at])
                    at++;
            }
            if (at == 2 || (errno != EAGAIN && errno != EINTR)) { /* all written, or EPIPE: it closed stdin */
                close(in[1]);
                in[1] = -1;
            }
        }
        while (out[0] >= 0) { /* keep the start of what it printed, discard the rest */
            ssize_t r = read(out[0], drain, sizeof(drain));

            if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
                close(out[0]);
                out[0] = -1;
            }
            if (r <= 0)
                break;
            for (ssize_t i = 0; i < r && n_output < sizeof(output) - 1; i++)
                output[n_output++] = drain[i];
        }
        /* Its end, not its stdout's: a daemon it started may keep the pipe open. */
        if (waitpid(pid, &status, WNOHANG) == pid)
            exited = 1;
    }
    if (pidfd >= 0)
        close(pidfd);
    if (in[1] >= 0)
        close(in[1]);
    if (out[0] >= 0) {
        ssize_t r = read(out[0], output + n_output, sizeof(output) - 1 - n_output);

        if (r > 0)
            n_output += (size_t)r;
        close(out[0]);
    }
    while (n_output && (output[n_output - 1] == '\n' || output[n_output - 1] == ' '))
        n_output--;
    output[n_output] = '\0';
    for (size_t i = 0; i < n_output; i++) /* one line: it ends up in one log record */
        if (output[i] == '\n')
            output[i] = ' ';
    if (timed_out) {
        *err = ETIMEDOUT;
        mr_step(step, ETIMEDOUT, "%s hook %s: timed out after %d s", kind, hook->path, hook->timeout);
        return -1;
    }
    if (!exited) {
        *err = errno;
        mr_step(step, errno, "%s hook %s: wait", kind, hook->path);
        return -1;
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 0;
    *err = 0;
    if (WIFEXITED(status))
        mr_step(step, 0, "%s hook %s: exit status %d%s%s", kind, hook->path, WEXITSTATUS(status),
                n_output ? ": " : "", output);
    else
        mr_step(step, 0, "%s hook %s: killed by signal %d%s%s", kind, hook->path, WTERMSIG(status),
                n_output ? ": " : "", output);
    return -1;
}

int mr_run_hooks(const char *kind, const struct mr_hook *hooks, int n, const char *state, const char *status,
                 char *step, int *err)
{
    struct sigaction ignore, old;
    char tail[96];
    int ret = 0;

    /* With a status, the state given is the JSON object without its closing brace: add
     * the moment's status and the pid (the runtime's view of it, as `state` shows it).
     * Without (the runtime's own hooks), it is whole. */
    tail[0] = '\0';
    if (status)
        snprintf(tail, sizeof(tail), ",\"status\":\"%s\",\"pid\":%d}", status, host_pid ? host_pid : getpid());
    /* A hook that does not read its stdin must not kill us with SIGPIPE. */
    memset(&ignore, 0, sizeof(ignore));
    ignore.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &ignore, &old);
    for (int i = 0; i < n && ret == 0; i++)
        ret = run_hook(kind, &hooks[i], state, tail, step, err);
    sigaction(SIGPIPE, &old, NULL);
    return ret;
}
