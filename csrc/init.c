/*
 * init.c - the container's PID 1: set the container up, start COMMAND, reap.
 *
 * Only in the static minirun-init, whose spawn mode (init_main.c) the child
 * created by spawn.c execs at once, with the request spawnreq.c packed. Setup
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
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
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

/* What the init keeps (reap.c): CAP_KILL, if the container has it, to forward signals. */
static uint64_t reaper_caps(const struct mr_spawn_req *req)
{
    return !req->security || (req->cap_mask >> 5 & 1) ? 1ULL << 5 /* CAP_KILL */ : 0;
}

/* Be the container's PID 1 from here on, the reaper (reap.c): this is minirun-init
 * already, run from the sealed memfd, non-dumpable. COMMAND's process waits on sync_fd
 * until the init is complete. */
static void __attribute__((noreturn)) become_init(const struct mr_spawn_req *req, int report_fd, pid_t command,
                                                  int sync_fd)
{
    mr_init_run(report_fd, command, sync_fd, reaper_caps(req));
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
        TRY(fd, mr_loopback_up(), "bring up loopback");
    if (req->net_addr)
        TRY(fd, configure_eth0(req), "configure eth0");
    /* A session of our own: Ctrl-C on the user's terminal reaches minirun only,
     * which forwards it once, instead of hitting every process of the container. */
    TRY(fd, setsid(), "setsid()");

    if (req->oci_process) { /* COMMAND is PID 1 (the engine brings its own init) */
        int missing;

        mr_spawn_req_close_spent(req, fd);
        missing = mr_find_command(req->argv[0], req->path);

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

/* minirun-init's spawn mode: the container's init, from the exec on (never returns). */
void mr_spawn_child(const struct mr_spawn_req *req, int report_fd, int go_fd)
{
    struct mr_spawn_req own = *req;
    int console = -1, ours[2] = {report_fd, go_fd};

    /* The fds spawn.c's child made inheritable for this exec are close-on-exec again (but
     * stdio's 0..2, which stay COMMAND's); nothing reaches COMMAND that the steps below
     * do not give it. */
    if (mr_spawn_req_cloexec(req, ours, 2) < 0)
        mr_setup_failed(report_fd, "minirun-init: close-on-exec again", errno);
    if (go_fd >= 0)
        mr_spawn_join(req, report_fd, go_fd);
    if (req->oci_process && (req->n_create_hooks || req->n_start_hooks))
        mr_hooks_note_pid(); /* the hooks' state has our pid as the runtime sees it: before a joined
                              * mount namespace's /proc answers for /proc/self */
    /* Namespaces given as fds (OCI's by path; minirun run's one is a network namespace made
     * ahead, minirun/aside.py, which setns checks it is), joined while those fds are open:
     * the rearranging below closes what it does not name. */
    for (int i = 0; i < req->n_join_fds; i++)
        TRY(report_fd, setns(req->join_fds[i], req->oci_process ? 0 : CLONE_NEWNET), "join namespace (setns fd %d)",
            req->join_fds[i]);

    /* Requested stdio first (dup2 clears O_CLOEXEC on the copies). Then everything
     * else the caller had open stays with the caller: COMMAND sees only
     * stdio, and the init holds only stdio, the report socket, as fd 3, and with a
     * terminal the console socket, as fd 4 (moved out of the way of the dup2s). */
    if (req->terminal && (console = fcntl(req->console_fd, F_DUPFD_CLOEXEC, MR_CONSOLE_FD + 1)) < 0)
        mr_setup_failed(report_fd, "terminal: keep the console socket", errno);
    for (int i = 0; i < 3; i++)
        if (req->stdio[i] >= 0 && req->stdio[i] != i && dup2(req->stdio[i], i) < 0)
            mr_setup_failed(report_fd, "dup2(stdio)", errno);
    if (req->oci_process) {
        /* COMMAND itself is PID 1: it keeps the fds the caller passed (stdio and
         * --preserve-fds), the rest (ours, all CLOEXEC already) go at its execve.
         * Those of 3 .. 3+N-1 are already inheritable (they came through an execve)
         * and nothing needs changing there: a gap in them stays a gap, as in runc,
         * even where minirun-oci opened an fd of its own, which is CLOEXEC. */
        if (syscall(SYS_close_range, 3U + req->preserve_fds, ~0U, CLOSE_RANGE_CLOEXEC) < 0) {
            for (int fd = 3 + req->preserve_fds; fd < 1024; fd++)
                fcntl(fd, F_SETFD, FD_CLOEXEC);
        }
        mr_container_init(&own, report_fd);
    }
    if (report_fd != 3) {
        if (dup3(report_fd, 3, O_CLOEXEC) < 0)
            mr_setup_failed(report_fd, "dup3(report socket)", errno);
        report_fd = 3;
    }
    if (console >= 0) {
        if (dup3(console, MR_CONSOLE_FD, O_CLOEXEC) < 0)
            mr_setup_failed(report_fd, "terminal: dup3(console socket)", errno);
        own.console_fd = MR_CONSOLE_FD;
    }
    mr_close_fds(4, console >= 0 ? MR_CONSOLE_FD : -1, -1);
    mr_container_init(&own, report_fd);
}
