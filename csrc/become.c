/*
 * become.c - the last steps of a process about to become COMMAND: terminal,
 * fds, working directory, HOME, credentials, seccomp, then the execve.
 *
 * Only in the static minirun-init: COMMAND's process is a fork of it, of the
 * container's init (init.c) or of the process that joined a running container
 * (join.c), run from the sealed memfd, so /proc/self/exe is that copy during
 * the execve (command.c).
 */
#define _GNU_SOURCE
#include <alloca.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "minirun.h"

static void __attribute__((noreturn)) exec_failed(const struct mr_spawn_req *req, int pipe_fd, int err,
                                                  const char *step)
{
    mr_exec_failed(pipe_fd, req->oci_process, err, step);
}

/* execve COMMAND from here: this process is a fork of the container's init, which is
 * minirun-init run from the sealed memfd, so /proc/self/exe is that copy during the
 * execve (command.c says why it must be). The failure pipe goes at the execve: EOF
 * tells the waiter COMMAND runs.
 *
 * With seccomp_deferred, mr_security_before_exec left the filter unloaded: it goes on
 * now, after every syscall of ours but the execve (and a failure's report), as runc-dmz
 * loads it: a profile that kills fcntl or prctl only ever sees COMMAND. */
static void __attribute__((noreturn)) exec_command(const struct mr_spawn_req *req, int pipe_fd, int seccomp_deferred)
{
    char step[MR_STEP_MAX];
    int err;

    if (fcntl(pipe_fd, F_SETFD, FD_CLOEXEC) < 0)
        exec_failed(req, pipe_fd, errno, "minirun-init: close the failure pipe at exec");
    if (seccomp_deferred && (err = mr_load_seccomp(req, step)) < 0)
        exec_failed(req, pipe_fd, -err, step);
    mr_exec_command((char *const *)req->argv, (char *const *)req->envp, req->path ? req->path : "", pipe_fd,
                    req->oci_process);
}

/* runc's rule (setupUser): an environment without HOME, or with an empty one, gets
 * the user's home from the container's /etc/passwd, "/" if it has no entry. Read as
 * the container's root, before setuid; anything but a regular file is not read. */
static const char *home_from_passwd(int uid)
{
    static char data[1 << 16], home[4096 + sizeof("HOME=")];
    struct stat st;
    ssize_t n, len = 0;
    int fd = open("/etc/passwd", O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);

    strcpy(home, "HOME=/");
    if (fd < 0)
        return home;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
        while (len < (ssize_t)sizeof(data) - 1 && (n = read(fd, data + len, sizeof(data) - 1 - (size_t)len)) > 0)
            len += n;
    close(fd);
    data[len] = '\0';
    /* name:password:uid:gid:gecos:home:shell, the first entry of that uid */
    for (char *line = data; *line;) {
        char *end = strchrnul(line, '\n'), *field[6], *p = line, *num_end;
        int nf = 0;

        if (*end)
            *end++ = '\0';
        while (nf < 6) {
            field[nf++] = p;
            if (!(p = strchr(p, ':')))
                break;
            *p++ = '\0';
        }
        if (nf == 6 && *field[2] && strtol(field[2], &num_end, 10) == uid && !*num_end) {
            if (*field[5])
                snprintf(home, sizeof(home), "HOME=%s", field[5]);
            break;
        }
        line = end;
    }
    return home;
}

static int lacks_home(const char *const *envp)
{
    for (; envp && *envp; envp++)
        if (!strncmp(*envp, "HOME=", 5) && (*envp)[5])
            return 0;
    return 1;
}

/* The one way to become COMMAND, for `run` (forked by the init) and `exec`
 * (exec.c): already in the container's cgroups and namespaces; in runc's order:
 * nothing of minirun's but stdio, not dumpable until execve, working directory,
 * capabilities, user, no_new_privs, seccomp, execve. */
void mr_become_command(const struct mr_spawn_req *req, int pipe_fd, int await_init)
{
    struct mr_spawn_req with_home;
    char step[MR_STEP_MAX];
    sigset_t none;
    int err, root_fd, cwd_fd = -1, fifo_wfd = -1, seccomp_deferred;

    /* Until execve (which resets it), this process may hold host fds: no process
     * of the container may ptrace it or open them (CVE-2019-5736, CVE-2016-9962). */
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    /* The terminal first, before the fds COMMAND must not keep are closed: it
     * needs req->console_fd, and leaves only the pty as stdio (console.c). */
    if (req->terminal && (err = mr_setup_console(req, step)) < 0)
        exec_failed(req, pipe_fd, -err, step);
    /* Only stdio and the CLOEXEC failure pipe: whatever the caller had open
     * stays outside (CVE-2024-21626), but for `exec --preserve-fds` (runc's: the caller's
     * 3 .. 3+N-1; what we hold in a gap of them is close-on-exec, join.c). An OCI PID 1
     * keeps --preserve-fds and the exec fifo it waits on below: spawn.c made every other
     * fd close-on-exec. */
    if (!req->oci_process)
        mr_close_fds(req->preserve_fds < INT_MAX - 3 ? 3 + req->preserve_fds : INT_MAX, pipe_fd, -1);

    /* Undo what came down from the Python caller through minirun-init's exec: its
     * signal mask and, above all, its ignored SIGPIPE, which exec passes on to COMMAND. */
    for (int sig = 1; sig < NSIG; sig++)
        signal(sig, SIG_DFL);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);

    /* `minirun-oci create`: wait here, set up, until `start` opens the fifo for reading. */
    if (req->exec_fifo_fd > 0) {
        char fifo[64];
        int wfd;

        snprintf(fifo, sizeof(fifo), "/proc/self/fd/%d", req->exec_fifo_fd);
        do
            wfd = open(fifo, O_WRONLY | O_CLOEXEC);
        while (wfd < 0 && errno == EINTR);
        if (wfd < 0 || write(wfd, "0", 1) != 1)
            exec_failed(req, pipe_fd, errno, "open exec fifo");
        if (req->oci_process && req->n_start_hooks)
            fifo_wfd = wfd; /* `start` reads until execve closes it, or a hook's failure */
        else
            close(wfd);
        close(req->exec_fifo_fd);
    }
    /* -w: created if missing, as docker does (runc's exec only changes to it),
     * and resolved inside the root (rootpath.c): a symlink in the image cannot
     * send it outside. */
    if ((root_fd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0 ||
        (cwd_fd = mr_open_in_root(root_fd, req->cwd, req->cwd_must_exist ? 0 : MR_IN_ROOT_MKDIR, NULL, NULL)) < 0 ||
        fchdir(cwd_fd) < 0) {
        snprintf(step, sizeof(step), "chdir(%s)", req->cwd);
        exec_failed(req, pipe_fd, root_fd < 0 ? errno : cwd_fd < 0 ? -cwd_fd : errno, step);
    }
    close(cwd_fd);
    close(root_fd);
    if (lacks_home(req->envp)) {
        int n = 0, kept = 0;
        const char **envp;

        while (req->envp && req->envp[n])
            n++;
        envp = alloca(sizeof(char *) * (size_t)(n + 2));
        for (int i = 0; i < n; i++)
            if (strncmp(req->envp[i], "HOME=", 5))
                envp[kept++] = req->envp[i];
        envp[kept++] = home_from_passwd(req->uid);
        envp[kept] = NULL;
        with_home = *req;
        with_home.envp = envp;
        req = &with_home;
    }
    /* `run`: COMMAND may exist once the container's init is complete (reap.c), not before:
     * no process of the container ever sees PID 1 half-made. EOF: the init died. */
    if (await_init) {
        char go;
        ssize_t n;

        do
            n = read(pipe_fd, &go, 1);
        while (n < 0 && errno == EINTR);
        if (n != 1)
            _exit(125);
    }
    /* security.c: bounding set and keep-caps now, the rest after setuid */
    if ((err = mr_security_before_setuid(req, step)) < 0)
        exec_failed(req, pipe_fd, -err, step);
    /* EPERM: a rootless user namespace, where setgroups is denied (its writer had
     * to, to map a gid); there are no supplementary groups to drop there. */
    if (req->set_groups) {
        if (setgroups((size_t)req->n_groups, (const gid_t *)req->groups) < 0)
            exec_failed(req, pipe_fd, errno, "setgroups(additionalGids)");
    } else if (setgroups(0, NULL) < 0 && errno != EPERM)
        exec_failed(req, pipe_fd, errno, "setgroups()");
    if (setgid(req->gid) < 0) {
        snprintf(step, sizeof(step), "setgid(%d)", req->gid);
        exec_failed(req, pipe_fd, errno, step);
    }
    if (setuid(req->uid) < 0) {
        snprintf(step, sizeof(step), "setuid(%d)", req->uid);
        exec_failed(req, pipe_fd, errno, step);
    }
    /* A new euid clears the parent-death signal (commit_creds): an OCI PID 1 of a foreground
     * run gets it back, to die with minirun-oci as spawn.c set it to. */
    if (req->oci_process && !req->detached)
        prctl(PR_SET_PDEATHSIG, SIGKILL);
    umask(req->has_umask ? req->umask : 022);
    /* The no_new_privs filter goes on last, in minirun-init when it runs (exec_command);
     * startContainer hooks run under it, as in runc, so with any it is loaded here. */
    seccomp_deferred = req->security && req->no_new_privs && req->seccomp_filter &&
                       !(req->oci_process && req->n_start_hooks);
    if ((err = mr_security_before_exec(req, seccomp_deferred, step)) < 0)
        exec_failed(req, pipe_fd, -err, step);
    /* OCI startContainer, with the process's credentials and seccomp filter as runc runs
     * it: its failure goes to `start` through the fifo and to `run` as a report. */
    if (req->oci_process && req->n_start_hooks && mr_run_hooks("startContainer", req->start_hooks, req->n_start_hooks,
                                           req->hook_state, "created", step, &err) < 0) {
        if (fifo_wfd >= 0)
            dprintf(fifo_wfd, "%s%s%s", step, err ? ": " : "", err ? strerror(err) : "");
        mr_setup_failed(pipe_fd, step, err);
    }
    exec_command(req, pipe_fd, seccomp_deferred);
}

