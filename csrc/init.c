/*
 * init.c - the container's PID 1: set the container up, start COMMAND, reap.
 *
 * Runs in the child created by spawn.c, in C only (see the note there). Setup
 * order matters and follows runc/crun:
 *   1. make every mount private before touching anything, so no mount or
 *      unmount of ours propagates back to the host;
 *   2. bind the rootfs onto itself: pivot_root needs the new root to be a mount;
 *   3. pivot_root(".", ".") and detach the old root (no chroot: a chroot can be
 *      escaped, and the host's mounts would stay reachable);
 *   4. mount /proc, /sys, /dev ... inside the new root, so a symlink planted in
 *      the rootfs can only ever resolve inside it;
 *   5. hostname, loopback up, then fork COMMAND's process, become minirun-init,
 *      confined to a reaper (reap.c), and only then let COMMAND exec: it stays
 *      a tiny init that forwards signals to it and reaps every zombie of the
 *      namespace.
 * Any failure is reported to the parent as one record naming the step.
 */
#define _GNU_SOURCE
#include <alloca.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/filter.h>
#include <net/if.h>
#include <net/route.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "minirun.h"

#ifndef CLONE_NEWCGROUP
#define CLONE_NEWCGROUP 0x02000000
#endif

/* On failure of EXPR: report "step" built from the format and exit. */
#define TRY(fd, expr, ...)                                   \
    do {                                                     \
        if ((expr) < 0) {                                    \
            int err_ = errno;                                \
            char step_[MR_STEP_MAX];                         \
            snprintf(step_, sizeof(step_), __VA_ARGS__);     \
            mr_setup_failed(fd, step_, err_);                \
        }                                                    \
    } while (0)

static void apply_ops(int fd, const char *root, const struct mr_op *ops, int n);

static void enter_rootfs(int fd, const struct mr_spawn_req *req)
{
    const char *rootfs = req->rootfs;
    int oldroot, newroot;

    TRY(fd, mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), "make / private");
    /* The overlay root and the volumes need host paths, so they go in before the
     * pivot; they live in this mount namespace only and vanish with it. Their
     * targets are still resolved inside the rootfs (rootpath.c). */
    apply_ops(fd, rootfs, req->pre_ops, req->n_pre_ops);
    TRY(fd, mount(rootfs, rootfs, NULL, MS_BIND | MS_REC, NULL), "bind mount(%s)", rootfs);
    TRY(fd, oldroot = open("/", O_DIRECTORY | O_RDONLY | O_CLOEXEC), "open(/)");
    TRY(fd, newroot = open(rootfs, O_DIRECTORY | O_RDONLY | O_CLOEXEC), "open(%s)", rootfs);
    TRY(fd, fchdir(newroot), "chdir(%s)", rootfs);
    if (req->runtime_hooks) { /* OCI prestart and createRuntime, run by the runtime now: runc's order */
        char go;

        mr_send_report(fd, MR_REPORT_HOOKS, 0, 0, 0, NULL);
        if (recv(fd, &go, 1, 0) != 1)
            _exit(125); /* a hook failed: the runtime gave up on us */
    }
    if (req->n_create_hooks) { /* OCI createContainer: mounts made, the runtime's paths still visible */
        char step[MR_STEP_MAX];
        int err;

        if (mr_run_hooks("createContainer", req->create_hooks, req->n_create_hooks, req->hook_state, "creating",
                         step, &err) < 0)
            mr_setup_failed(fd, step, err);
    }
    /* pivot_root(".", ".") stacks the old root on top of the new one at "/"; it
     * needs no put_old directory inside the rootfs, which may be read-only. */
    TRY(fd, syscall(SYS_pivot_root, ".", "."), "pivot_root(%s)", rootfs);
    TRY(fd, fchdir(oldroot), "chdir(old root)");
    TRY(fd, mount(NULL, ".", NULL, MS_REC | MS_SLAVE, NULL), "make old root slave");
    TRY(fd, umount2(".", MNT_DETACH), "umount2(old root)");
    TRY(fd, chdir("/"), "chdir(/)");
    close(oldroot);
    close(newroot);
}

/* Every operation goes through rootpath.c, resolved inside the root held by
 * root_fd: the rootfs before pivot_root, "/" after. A mount on the root itself
 * (the overlay) covers root_fd's directory: reopen the root by its path. */
static void apply_ops(int fd, const char *root, const struct mr_op *ops, int n)
{
    char step[MR_STEP_MAX];
    int root_fd, err;

    TRY(fd, root_fd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC), "open(%s)", root);
    for (int i = 0; i < n; i++) {
        if ((err = mr_apply_op(root_fd, &ops[i], step)) < 0)
            mr_setup_failed(fd, step, -err);
        if (!strcmp(ops[i].target, "/")) {
            close(root_fd);
            TRY(fd, root_fd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC), "open(%s)", root);
        }
    }
    close(root_fd);
}

static int loopback_up(void)
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

/* eth0 was moved into our namespace by the parent (pyroute2): give it its
 * address, bring it up and route everything through the bridge's address. */
static int configure_eth0(const struct mr_spawn_req *req)
{
    struct sockaddr_in *sin;
    struct rtentry route;
    struct ifreq ifr;
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), ret = -1;

    if (s < 0)
        return -1;
    memset(&ifr, 0, sizeof(ifr));
    strcpy(ifr.ifr_name, "eth0");
    sin = (struct sockaddr_in *)&ifr.ifr_addr;
    sin->sin_family = AF_INET;
    sin->sin_addr.s_addr = req->net_addr;
    if (ioctl(s, SIOCSIFADDR, &ifr) < 0)
        goto out;
    sin->sin_addr.s_addr = req->net_mask;
    if (ioctl(s, SIOCSIFNETMASK, &ifr) < 0 || ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
        goto out;
    ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
    if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
        goto out;
    memset(&route, 0, sizeof(route));
    ((struct sockaddr_in *)&route.rt_dst)->sin_family = AF_INET;
    ((struct sockaddr_in *)&route.rt_genmask)->sin_family = AF_INET;
    sin = (struct sockaddr_in *)&route.rt_gateway;
    sin->sin_family = AF_INET;
    sin->sin_addr.s_addr = req->net_gateway;
    route.rt_flags = RTF_UP | RTF_GATEWAY;
    ret = ioctl(s, SIOCADDRT, &route);
out:
    close(s);
    return ret;
}

static void __attribute__((noreturn)) exec_failed(const struct mr_spawn_req *req, int pipe_fd, int err,
                                                  const char *step)
{
    mr_exec_failed(pipe_fd, req->oci_process, err, step);
}

/* execve COMMAND through minirun-init's exec mode, run from the sealed memfd
 * req->helper_fd (command.c says why). The failure pipe stays open across that
 * first exec: minirun-init reports on it; a helper that cannot be exec'd is
 * COMMAND's exec failure, named as such.
 *
 * With seccomp_deferred, mr_security_before_exec left the filter unloaded: the
 * helper loads it itself after its own syscalls (its exec, libc's start, prctl,
 * fcntl), just before COMMAND's execve, as runc-dmz does; it gets the program in
 * a memfd named in its argv. */
static void __attribute__((noreturn)) exec_command(const struct mr_spawn_req *req, int pipe_fd, int seccomp_deferred)
{
    char fd_arg[16], oci_arg[2] = {req->oci_process ? '1' : '0', 0}, filter_arg[64] = "-", self[32];
    int n = 0, err;
    const char **argv;

    while (req->argv[n])
        n++;
    argv = alloca(sizeof(char *) * (size_t)(n + 7));
    argv[0] = "minirun-init";
    argv[1] = "exec";
    argv[2] = fd_arg;
    argv[3] = oci_arg;
    argv[4] = filter_arg;
    argv[5] = req->path ? req->path : "";
    memcpy(argv + 6, req->argv, sizeof(char *) * (size_t)(n + 1));
    snprintf(fd_arg, sizeof(fd_arg), "%d", pipe_fd);
    snprintf(self, sizeof(self), "/proc/self/fd/%d", req->helper_fd);
    if (seccomp_deferred) {
        /* Not CLOEXEC: the helper maps it and closes it. Nobody else can reach it:
         * this process is not dumpable, and the helper makes itself so at once. */
        size_t size = (size_t)req->seccomp_len * sizeof(struct sock_filter), done = 0;
        int filter_fd = (int)syscall(SYS_memfd_create, "minirun-seccomp", 0U);
        ssize_t w = 0;

        while (filter_fd >= 0 && done < size &&
               ((w = write(filter_fd, (const char *)req->seccomp_filter + done, size - done)) > 0 ||
                (w < 0 && errno == EINTR)))
            done += w > 0 ? (size_t)w : 0;
        if (filter_fd < 0 || done < size)
            exec_failed(req, pipe_fd, filter_fd < 0 || w < 0 ? errno : EIO, "minirun-init: pass the seccomp filter");
        snprintf(filter_arg, sizeof(filter_arg), "%d:%d:%u", filter_fd, req->seccomp_len, req->seccomp_flags);
    }
    if (fcntl(pipe_fd, F_SETFD, 0) < 0)
        exec_failed(req, pipe_fd, errno, "minirun-init: keep the failure pipe");
    /* execveat first: "/proc/self/fd/N" is looked up in the container's root,
     * whose image could supply that path where no /proc is mounted. The /proc
     * path is for a profile without execveat, which only matters when the
     * filter is in force already: no no_new_privs, or startContainer hooks.
     * Non-dumpable from its start: this process is visible in the container,
     * which must never catch the helper before its seccomp filter (security.c). */
    err = -mr_execveat_nondumpable(req->helper_fd, (char *const *)argv, (char *const *)req->envp);
    if (req->security && req->seccomp_filter && !seccomp_deferred) {
        execve(self, (char *const *)argv, (char *const *)req->envp);
        err = errno;
    }
    exec_failed(req, pipe_fd, err, "minirun-init: execveat (the helper that execs COMMAND)");
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

    /* Until execve (which resets it), this process holds host memory and maybe
     * host fds, and /proc/PID/exe is minirun's interpreter on the host: no
     * process of the container may ptrace it or open those (CVE-2019-5736). */
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    /* The terminal first, before the fds COMMAND must not keep are closed: it
     * needs req->console_fd, and leaves only the pty as stdio (console.c). */
    if (req->terminal && (err = mr_setup_console(req, step)) < 0)
        exec_failed(req, pipe_fd, -err, step);
    /* Only stdio and the CLOEXEC failure pipe: whatever the caller had open
     * stays outside (CVE-2024-21626). An OCI PID 1 keeps --preserve-fds and the
     * exec fifo it waits on below: spawn.c made every other fd close-on-exec. */
    if (!req->oci_process)
        mr_close_fds(3, pipe_fd, req->helper_fd);

    /* Undo what the Python parent had: its handlers and, above all, its ignored
     * SIGPIPE, which exec would otherwise pass on to COMMAND. */
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
    umask(req->has_umask ? req->umask : 022);
    /* The no_new_privs filter goes on last, in minirun-init when it runs (exec_command);
     * startContainer hooks run under it, as in runc, so with any it is loaded here. */
    seccomp_deferred = req->helper_fd >= 0 && req->security && req->no_new_privs && req->seccomp_filter &&
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

/* What the init keeps (reap.c): CAP_KILL, if the container has it, to forward signals. */
static uint64_t reaper_caps(const struct mr_spawn_req *req)
{
    return !req->security || (req->cap_mask >> 5 & 1) ? 1ULL << 5 /* CAP_KILL */ : 0;
}

/* Become the static minirun-init (init_main.c), from the sealed memfd the parent
 * made: the reaper (reap.c) in a few pages instead of this forked interpreter.
 * COMMAND's process waits on sync_fd until the init is complete; if the exec
 * fails, the setup fails, and COMMAND's process dies with the PID namespace. */
static void __attribute__((noreturn)) become_init(const struct mr_spawn_req *req, int report_fd, pid_t command,
                                                  int sync_fd)
{
    char fd_arg[16], pid_arg[16], sync_arg[16], caps_arg[24];
    char *argv[] = {"minirun-init", fd_arg, pid_arg, sync_arg, caps_arg, NULL};
    char *envp[] = {NULL};

    /* By the fd only, never "/proc/self/fd/N": that path is looked up in the
     * container's root, whose image could supply it where no /proc is mounted.
     * (exec_command keeps that fallback for a seccomp profile without execveat;
     * no filter applies to this process.) */
    int err;

    snprintf(fd_arg, sizeof(fd_arg), "%d", report_fd);
    snprintf(pid_arg, sizeof(pid_arg), "%d", command);
    snprintf(sync_arg, sizeof(sync_arg), "%d", sync_fd);
    snprintf(caps_arg, sizeof(caps_arg), "%llu", (unsigned long long)reaper_caps(req));
    if (fcntl(report_fd, F_SETFD, 0) < 0 || fcntl(sync_fd, F_SETFD, 0) < 0)
        err = -errno;
    else
        err = mr_execveat_nondumpable(req->helper_fd, argv, envp);
    mr_setup_failed(report_fd, "init: exec minirun-init", -err);
}

/* runc's check at create (exec.LookPath in standard_init_linux.go): COMMAND must be
 * there before `create` returns, so that engines report a missing one at create, as
 * docker does with 127. Go's rules: a name with a slash must be an executable
 * non-directory; a bare name, one in some PATH directory. A relative name with a
 * slash is left to execve: the working directory is made only later. Returns 0,
 * ENOENT or EACCES. */
int mr_find_command(const char *name, const char *path)
{
    char candidate[4096];
    struct stat st;

    if (strchr(name, '/')) {
        if (name[0] != '/')
            return 0;
        if (stat(name, &st) < 0)
            return errno == ENOTDIR ? ENOENT : errno;
        return S_ISDIR(st.st_mode) || !(st.st_mode & 0111) ? EACCES : 0;
    }
    for (const char *dirs = path; mr_path_candidate(&dirs, name, candidate, sizeof(candidate));)
        if (stat(candidate, &st) == 0 && !S_ISDIR(st.st_mode) && (st.st_mode & 0111))
            return 0;
    return ENOENT;
}

void mr_container_init(const struct mr_spawn_req *req, int fd)
{
    int sync[2];
    pid_t command;

    umask(0);
    if (req->clone_flags & CLONE_NEWUSER) /* security.c; the parent wrote our id maps before sync 1 */
        TRY(fd, mr_userns_become_root(), "become root of the user namespace");
    for (int i = 0; i < req->n_join_fds; i++) /* OCI namespaces given by path */
        TRY(fd, setns(req->join_fds[i], 0), "join namespace (setns fd %d)", req->join_fds[i]);
    if (req->unshare_cgroupns)
        TRY(fd, unshare(CLONE_NEWCGROUP), "unshare(cgroup namespace)");
    enter_rootfs(fd, req);
    apply_ops(fd, "/", req->ops, req->n_ops);
    if (req->oci_process) { /* runc: process.cwd is made now, before the root may turn read-only */
        char step[MR_STEP_MAX];
        int root_fd, cwd_fd;

        TRY(fd, root_fd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC), "open(/)");
        if ((cwd_fd = mr_open_in_root(root_fd, req->cwd, MR_IN_ROOT_MKDIR, NULL, NULL)) < 0) {
            snprintf(step, sizeof(step), "create process.cwd %s", req->cwd);
            mr_setup_failed(fd, step, -cwd_fd);
        }
        close(cwd_fd);
        close(root_fd);
    }
    if (req->readonly_root) {
        char step[MR_STEP_MAX];
        int root_fd, err;

        TRY(fd, root_fd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC), "open(/)");
        if ((err = mr_readonly_root(root_fd, step)) < 0)
            mr_setup_failed(fd, step, -err);
        close(root_fd);
    }
    if (req->hostname)
        TRY(fd, sethostname(req->hostname, strlen(req->hostname)), "sethostname(%s)", req->hostname);
    if (req->domainname)
        TRY(fd, setdomainname(req->domainname, strlen(req->domainname)), "setdomainname(%s)", req->domainname);
    if (req->clone_flags & CLONE_NEWNET)
        TRY(fd, loopback_up(), "bring up loopback");
    if (req->net_addr)
        TRY(fd, configure_eth0(req), "configure eth0");
    /* A session of our own: Ctrl-C on the user's terminal reaches minirun only,
     * which forwards it once, instead of hitting every process of the container. */
    TRY(fd, setsid(), "setsid()");

    if (req->oci_process) { /* COMMAND is PID 1 (the engine brings its own init) */
        int missing = mr_find_command(req->argv[0], req->path);

        if (missing) /* create fails, as runc's does (mr_find_command) */
            mr_exec_failed(fd, 1, missing, req->argv[0]);
        mr_send_report(fd, MR_REPORT_CREATED, 0, 0, getpid(), NULL);
        mr_become_command(req, fd, 0);
    }

    /* One socket both ways: the init's go-ahead to COMMAND's process, and back EOF at its
     * execve (close-on-exec) or the record of its failure. */
    TRY(fd, socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sync), "socketpair()");
    command = (pid_t)syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
    TRY(fd, command, "fork()");
    if (command == 0) {
        close(fd);
        close(sync[0]);
        mr_become_command(req, sync[1], 1);
    }
    close(sync[1]);
    if (req->terminal)
        close(req->console_fd); /* COMMAND has its copy: the init keeps no end of the terminal */
    become_init(req, fd, command, sync[0]);
}
