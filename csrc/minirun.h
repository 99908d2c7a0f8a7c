/*
 * minirun.h - the only contract between the C extension and Python.
 *
 * Everything here is also declared to cffi in ffibuild.py (keep the two in step).
 * Error convention (as in crun): a function returns 0 (or a pid) on success and
 * -errno on failure, and names the failing step, with its argument, in `step`.
 */
#ifndef MINIRUN_H
#define MINIRUN_H

#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/types.h>

#define MR_STEP_MAX 240

/* What older libc headers, and musl's (the static helpers), lack: defined once. */
#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_RAISE 2
#define PR_CAP_AMBIENT_CLEAR_ALL 4
#endif
#define MR_SECCOMP_SET_MODE_FILTER 1 /* seccomp(2)'s operation; musl has no linux/seccomp.h */
#define MR_CONSOLE_FD 4 /* where the container's init keeps req->console_fd (spawn.c) */

/* One operation of the in-container filesystem plan, built as data by
 * minirun/mounts.py and executed by the child (rootpath.c, mr_apply_op). Every
 * target is a container path, resolved inside the root (before pivot_root the
 * rootfs, after it "/"); missing directories are created there, never outside.
 * Sources of binds are paths in the child's own view (host paths before the pivot). */
enum mr_op_kind {
    MR_OP_MOUNT = 1,   /* mkdir -p target (a file for a file bind), then mount(source, target, fstype, flags,
                        * data). MS_BIND: open_tree + move_mount; with MS_REC the ro/nosuid/nodev/noexec
                        * in flags apply to every mount of the tree, whose own flags are kept */
    MR_OP_MKNOD = 2,   /* mknod(target, mode, makedev(major, minor)), then chmod(mode), chown(uid, gid) */
    MR_OP_SYMLINK = 3, /* symlink(source, target); for both, an entry already at target is replaced,
                        * or with MR_NODE_KEEP in flags left as it is */
    MR_OP_MKDIR = 4,   /* mkdir -p target, then chmod(mode) */
    MR_OP_MASK = 5,    /* the container's /dev/null (checked: 1:3) or an empty read-only tmpfs over target;
                        * skipped if missing */
    MR_OP_READONLY = 6, /* bind target onto itself read-only, recursively; skipped if missing */
    MR_OP_NODEV = 7,    /* nodev on the mount at target and every mount under it, other flags kept */
    MR_OP_WRITE = 8,   /* write data to the existing file target (a sysctl under /proc/sys) */
};

/* An OCI hook (hooks.c): createContainer and startContainer run by the container's process,
 * the others by the runtime. */
struct mr_hook {
    const char *path;
    const char *const *argv;   /* NULL-terminated */
    const char *const *envp;   /* NULL-terminated; NULL: the runner's own environment */
    int timeout;               /* seconds; 0: none */
};

#define MR_NODE_KEEP 1 /* flags of MR_OP_MKNOD, MR_OP_SYMLINK: keep what exists (runc's /dev) */

struct mr_op {
    int kind;
    const char *source;
    const char *target;
    const char *fstype;
    unsigned long flags;
    const char *data;
    unsigned int mode;
    unsigned int major;
    unsigned int minor;
    unsigned int uid; /* MR_OP_MKNOD's owner */
    unsigned int gid;
    int source_fd;    /* a bind's source as a detached tree (mr_open_bind_tree), attached as is; -1: by path */
};

/* clone3(2)'s argument, our own copy: older libc headers lack struct clone_args or
 * its cgroup field. spawn.c (the container's init) and exec.c (minirun exec). */
struct mr_clone_args {
    uint64_t flags, pidfd, child_tid, parent_tid, exit_signal;
    uint64_t stack, stack_size, tls, set_tid, set_tid_size, cgroup;
};
#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif

/* What the parent asks the child to become. mr_spawn packs it, pointees and all,
 * for minirun-init (spawnreq.c): every pointer here is named in walk_req() there. */
struct mr_spawn_req {
    const char *rootfs;        /* absolute path of the new root */
    const char *hostname;      /* NULL: keep */
    uint64_t clone_flags;      /* CLONE_NEW* passed to clone3/clone */
    int unshare_cgroupns;      /* unshare(CLONE_NEWCGROUP) once placed in the cgroups */
    int cgroup_fd;             /* cgroup2 dir for CLONE_INTO_CGROUP, or -1 */
    const int *tasks_fds;      /* cgroup v1 `tasks` files the child joins by itself */
    int n_tasks_fds;
    const struct mr_op *pre_ops; /* before pivot_root, host paths: overlay root, volumes */
    int n_pre_ops;
    const struct mr_op *ops;     /* after pivot_root, container paths: /proc, /dev, tmpfs */
    int n_ops;
    int readonly_root;           /* remount / read-only once everything is mounted */
    uint32_t net_addr;           /* bridge networking: eth0's IPv4 address, netmask and */
    uint32_t net_mask;           /* default gateway, network byte order; the parent has */
    uint32_t net_gateway;        /* moved eth0 in before sync 1. net_addr 0: no eth0 */
    const char *const *argv;   /* COMMAND, NULL-terminated */
    const char *const *envp;   /* its environment, NULL-terminated */
    const char *path;          /* PATH used to look COMMAND up inside the container */
    const char *cwd;
    int uid;
    int gid;
    int stdio[3];              /* fds to become COMMAND's 0, 1, 2; -1 keeps minirun's */
    /* security (security.c) */
    int security;                /* 0: leave COMMAND's credentials alone (callers that predate this) */
    uint64_t cap_mask;           /* bounding, permitted, effective: bit N = capability N */
    uint64_t cap_inheritable;
    int no_new_privs;
    const void *seccomp_filter;  /* struct sock_filter[], or NULL for none */
    int seccomp_len;             /* its number of instructions */
    unsigned int seccomp_flags;  /* SECCOMP_FILTER_FLAG_* for seccomp(2) (the profile's "flags") */
    /* terminal (console.c): zero leaves COMMAND's stdio as given */
    int terminal;                /* 1: COMMAND gets a pty of the container's devpts as its terminal */
    int console_fd;              /* with terminal: unix socket the pty master is sent over (SCM_RIGHTS) */
    int console_bind;            /* with terminal: bind the pty onto /dev/console (a container's COMMAND) */
    unsigned short console_rows; /* with terminal: initial window size (OCI process.consoleSize), */
    unsigned short console_cols; /* 0 0 leaves the kernel's default */
    int cap_sets;                /* 1: the OCI sets below; cap_mask is then the bounding set only */
    uint64_t cap_effective;
    uint64_t cap_permitted;
    uint64_t cap_ambient;        /* raised best effort, as runc does */
    /* the OCI process model (minirun-oci); all 0 for `minirun run` */
    int oci_process;             /* COMMAND is the container's PID 1: exec it, no minirun init */
    int detached;                /* no PDEATHSIG: the container outlives the process that created it */
    int exec_fifo_fd;            /* > 0: O_PATH fd of the exec fifo; open(O_WRONLY) blocks until `start` */
    int preserve_fds;            /* fds 3 .. 3+N-1 pass through to COMMAND */
    const int *join_fds;         /* namespaces to join (setns) instead of creating them */
    int n_join_fds;
    const char *domainname;      /* NULL: keep */
    int set_groups;              /* 1: setgroups(groups) instead of dropping every supplementary group */
    const uint32_t *groups;
    int n_groups;
    int has_umask;               /* 0: umask 022 */
    unsigned int umask;
    int cwd_must_exist;          /* 1: chdir only, as runc's exec; 0: a missing cwd is made (docker's -w) */
    int helper_fd;               /* sealed memfd of the static minirun-init, which the child execs at
                                  * once (spawn.c, exec.c); -1 inside minirun-init itself */
    /* OCI hooks run by the container's process (hooks.c); the state is its JSON object
     * without the closing brace: status and pid are added there */
    const struct mr_hook *create_hooks; /* createContainer: after the mounts, before pivot_root */
    int n_create_hooks;
    const struct mr_hook *start_hooks;  /* startContainer: after `start`, just before execve */
    int n_start_hooks;
    const char *hook_state;
    int runtime_hooks;                  /* pause for the runtime's prestart and createRuntime (MR_REPORT_HOOKS) */
};

struct mr_spawn_out {
    int pid;         /* the container's init, in the parent's PID namespace */
    int report_fd;   /* parent's end of the report socket (SOCK_SEQPACKET) */
    int go_fd;       /* write one byte to release the child; close to abort */
    int used_clone3; /* 1 if clone3 (and CLONE_INTO_CGROUP when asked) was used */
};

/* Records the child sends on report_fd, one per datagram. */
enum mr_report_kind {
    MR_REPORT_SETUP_FAILED = 1, /* err, step: a setup step failed, nothing was exec'd */
    MR_REPORT_EXEC_OK = 2,      /* pid: COMMAND is running (pid inside the container) */
    MR_REPORT_EXEC_FAILED = 3,  /* err, step: COMMAND could not be exec'd */
    MR_REPORT_EXITED = 4,       /* status: COMMAND's wait status */
    MR_REPORT_CREATED = 5,      /* oci_process: set up, waiting on the exec fifo before execve */
    MR_REPORT_HOOKS = 6,        /* runtime_hooks: mounts made, before createContainer and pivot_root;
                                 * waits for one byte back once the runtime ran prestart and createRuntime */
};

struct mr_report {
    int32_t kind;
    int32_t err;
    int32_t status;
    int32_t pid;
    char step[MR_STEP_MAX];
};

int mr_spawn(const struct mr_spawn_req *req, struct mr_spawn_out *out, char *step);

/* spawnreq.c: the request as one blob in a memfd (CLOEXEC), which minirun-init reads back:
 * the fd, or -errno with the step; the request (malloc'd, never freed), or NULL with the step
 * and *err. */
int mr_spawn_req_to_memfd(const struct mr_spawn_req *req, char *step);
struct mr_spawn_req *mr_spawn_req_from_fd(int fd, char *step, int *err);
/* The fds minirun-init needs across its exec: the request's and the n_own in own (-1: none),
 * into fds, at most max (mr_spawn_req_n_fds); returns how many. */
int mr_spawn_req_fds(const struct mr_spawn_req *req, int *fds, int max, const int *own, int n_own);
int mr_spawn_req_n_fds(const struct mr_spawn_req *req, int n_own);
/* minirun-init: those fds close-on-exec again (but 0..2): 0 or -errno */
int mr_spawn_req_cloexec(const struct mr_spawn_req *req, const int *own, int n_own);
/* minirun-init: an OCI PID 1 once set up closes every fd but stdio, --preserve-fds, report_fd,
 * the exec fifo and the console socket */
void mr_spawn_req_close_spent(const struct mr_spawn_req *req, int report_fd);

/* spawn.c: clone a child that execs the sealed minirun-init (helper_fd) with argv at once: a
 * vfork (CLONE_VM | CLONE_VFORK, the caller asleep until the exec) with clone_flags, into the
 * cgroup v2 directory cgroup_fd (-1: none; *used_clone3 0: the kernel could not, add it), or,
 * with become_root, a fork-like child that waits for sync 1 on go_fd and becomes the root of
 * its new user namespace first. fds: made inheritable for the exec. A failure to exec goes to
 * fail_fd: a setup report (spawn), or with fail_as_exec an mr_exec_failure (exec.c). Returns
 * the pid, or -1 with errno. */
struct mr_init_exec {
    int helper_fd;
    char *const *argv;
    const int *fds;
    int n_fds;
    int fail_fd;
    int fail_as_exec;
    int pdeathsig;   /* SIGKILL when the caller dies */
    int become_root;
    int go_fd;
    int go_peer_fd;                 /* become_root: the parent's end of go_fd, closed in the child */
    const struct mr_spawn_req *req; /* become_root: its tasks fds are joined before sync 1 */
};
pid_t mr_clone_init(const struct mr_init_exec *x, uint64_t clone_flags, int cgroup_fd, int *used_clone3);

/* join.c, only in minirun-init: its join mode, the process exec.c clones (exec.c says the order). */
void mr_join_child(const struct mr_spawn_req *req, int pidfd, int ns_flags, int pid_pipe, int exec_pipe)
    __attribute__((noreturn));

/* init.c: minirun-init's spawn mode, the container's init from its exec on. go_fd >= 0: join
 * the cgroups, wait for sync 1 on it; -1: the forked child did that already (spawn.c). */
void mr_spawn_child(const struct mr_spawn_req *req, int report_fd, int go_fd) __attribute__((noreturn));
/* spawnreq.c: the first steps of the container's init: join the cgroup v1 hierarchies, wait for sync 1 */
void mr_spawn_join(const struct mr_spawn_req *req, int report_fd, int go_fd);

int mr_setns(int fd, int nstype, char *step); /* syscalls.c; 0 or -errno */
int mr_loopback_up(void);                      /* syscalls.c: the current network namespace's lo; -1 and errno */
int mr_netns_make(char *step);                 /* syscalls.c: a new one's fd, or -errno */

/* aside.c: a thread for what a loop of containers need not do on their CPU (minirun/aside.py).
 * take_netns: a new network namespace's fd for the caller to close, or -1 (none made yet; the
 * first call starts the thread). close: 1 if the thread closes `fd`, 0 to close it yourself.
 * settled: 1 once the thread has nothing left to do, 0 at the timeout. */
int mr_aside_take_netns(void);
int mr_aside_close(int fd);
int mr_aside_settled(int timeout_ms);

/* devices.c: load the BPF_PROG_TYPE_CGROUP_DEVICE program `insns` (struct bpf_insn[],
 * built by minirun/cgroups/devicefilter.py) and attach it to the cgroup v2 directory
 * open on cgroup_fd (O_RDONLY: O_PATH is refused). 0 or -errno with the step. */
int mr_attach_device_filter(const void *insns, int n_insns, int cgroup_fd, char *step);

/* Join a running container: its cgroups (req->cgroup_fd, req->tasks_fds), then
 * the namespaces ns_flags (CLONE_NEW*) of the process pidfd (its init), then
 * exec req->argv as req->uid in req->cwd. Returns COMMAND's pid (a child of the
 * caller), or -errno with the step; an exec failure comes back in *exec_err. */
int mr_exec(const struct mr_spawn_req *req, int pidfd, int ns_flags, int *exec_err, char *step);

/* console.c, called by the process about to become COMMAND (mr_become_command),
 * inside the container's root and before it drops privileges: open a pty of the
 * devpts mounted at /dev/pts, set its window size, bind it onto /dev/console if
 * req->console_bind, send the master with the pty's path over req->console_fd
 * (as runc does to an OCI --console-socket), then start a session with the pty
 * as controlling terminal and stdin, stdout, stderr. 0 or -errno with the step,
 * which starts with "terminal: ". */
int mr_setup_console(const struct mr_spawn_req *req, char *step);

/* relay.c: published ports, the one TCP relay of a foreground run (through cffi) and of
 * minirun-shim. Connections to each listening fd are relayed to TO_ADDR:TO_PORT; the
 * listening fds stay the caller's. mr_relay_fd is readable when mr_relay_step has work;
 * mr_relay_serve steps until stop_fd is readable (0, or -errno). */
#define MR_RELAY_MAX_CONNS 4096 /* beyond it, the connection idle the longest makes room */
struct mr_relay;
struct mr_relay *mr_relay_new(void);
int mr_relay_add_port(struct mr_relay *r, int listen_fd, const char *to_addr, int to_port); /* 0 or -errno */
int mr_relay_fd(const struct mr_relay *r);
int mr_relay_connections(const struct mr_relay *r);
void mr_relay_step(struct mr_relay *r);
int mr_relay_serve(struct mr_relay *r, int stop_fd);
void mr_relay_free(struct mr_relay *r);

/* attach.c: a container's terminal on the host side, the one pty relay of `run -t` and
 * `exec -t` (minirun/tty.py, through cffi) and of minirun-shim, and the attach protocol
 * between minirun-shim and `minirun attach` (tty.py, through cffi): SOCK_SEQPACKET packets,
 * each one byte of kind then its data. */
#define MR_ATTACH_INPUT 'd'  /* client -> shim: keystrokes for the pty */
#define MR_ATTACH_RESIZE 'w' /* client -> shim: struct mr_attach_size, the client's window */
#define MR_ATTACH_CHUNK 16384 /* the most a read, and so a packet's data, carries */
struct mr_attach_size {
    unsigned short rows, cols;
};

/* A pty master with the keystrokes it could not take yet (it is non-blocking: a COMMAND
 * that does not read never blocks its own output); input beyond a full buffer is lost,
 * as on a real terminal. hung_up: no process holds the pty any more (the fd stays open). */
struct mr_pty {
    int master;
    int hung_up;
    size_t n_pending;
    char pending[MR_ATTACH_CHUNK];
};
typedef void mr_sink(void *ctx, const char *buf, size_t len);
void mr_pty_init(struct mr_pty *p, int master);
void mr_pty_input(struct mr_pty *p, const char *buf, size_t len); /* queue, then write what it takes */
void mr_pty_flush(struct mr_pty *p); /* write what it takes of the queue */
ssize_t mr_pty_output(struct mr_pty *p, mr_sink *sink, void *ctx); /* one read: > 0 passed on, 0 none now,
                                                                    * -1 hung up */
void mr_pty_drain(struct mr_pty *p, mr_sink *sink, void *ctx); /* what COMMAND wrote just before it exited */
void mr_attach_packet(struct mr_pty *p, const char *buf, size_t len); /* a client's packet, applied */
int mr_write_all(int fd, const char *buf, size_t len); /* blocking, all of it: 1, or 0 once the
                                                        * reader is gone or the disk full (EPIPE, EIO, ENOSPC) */

/* The relay of `run -t`, `exec -t`: in_fd (minirun's terminal; -1: none) to the pty, the pty to
 * out_fd, until until_fd (the init's report socket, a pidfd) is readable, then the drain. Returns
 * 1 then, 0 when woken by wake_fd (Python's signal wakeup fd: its handlers run, e.g. a resize,
 * then it calls again; the state is kept here), -errno if poll fails. */
struct mr_tty_relay {
    struct mr_pty pty;
    int in_fd, out_fd, wake_fd;
    int out_ok;
};
int mr_tty_relay(struct mr_tty_relay *t, int until_fd);

/* `minirun attach`: in_fd to the shim's pty as MR_ATTACH_INPUT packets on sock, the packets
 * the shim sends to out_fd, until the detach keys are typed (returns 1) or the shim closes the
 * connection (2: the container's terminal is gone); 0 and -errno as for mr_tty_relay. */
struct mr_attach_client {
    int sock, in_fd, out_fd, wake_fd;
    const char *keys; /* the detach sequence, n_keys long (0: none) */
    int n_keys;
    int held;         /* how many of the keys were typed so far, held back */
};
int mr_attach_client(struct mr_attach_client *c);
int mr_attach_send_size(int sock, unsigned short rows, unsigned short cols); /* 0 or -errno */
/* The detach keys in typed input, across reads, as docker finds them: the keys of a partial
 * match are held back (*held of them), and passed on if the sequence breaks. Writes what to
 * pass on to out (room for len + n_keys bytes), returns its length; *detached when complete. */
size_t mr_detach_filter(const char *keys, int n_keys, int *held, const char *in, size_t len, char *out,
                        int *detached);

/* security.c, called by init.c: 0 or -errno with the step */
int mr_security_before_setuid(const struct mr_spawn_req *req, char *step);
int mr_security_before_exec(const struct mr_spawn_req *req, int defer_seccomp, char *step); /* defer_seccomp:
                                                        * leave the no_new_privs filter to the caller */
int mr_load_seccomp(const struct mr_spawn_req *req, char *step); /* req->seccomp_filter, now */
int mr_userns_become_root(void); /* -1 and errno */

/* rootpath.c: paths inside a root, and the mounts on them. mr_open_in_root
 * returns an O_PATH fd of PATH resolved as if root_fd were "/" (symlinks and
 * ".." never leave it), or -errno. With MR_IN_ROOT_MKDIR_PARENTS and a missing
 * last component it returns -ENOENT with *parent (an fd) and leaf set. */
#define MR_IN_ROOT_MKDIR 1          /* create missing directories, the last one too */
#define MR_IN_ROOT_MKDIR_PARENTS 2  /* create missing directories but the last component */
#define MR_IN_ROOT_NOFOLLOW 4       /* a symlink as last component is returned, not followed */
int mr_open_in_root(int root_fd, const char *path, int how, int *parent, char *leaf);
int mr_apply_op(int root_fd, const struct mr_op *op, char *step);
int mr_readonly_root(int root_fd, char *step);
int mr_open_bind_tree(const char *source, int recursive, unsigned long attrs, char *step); /* fd or -errno */

/* hooks.c: run the hooks in order with the state on stdin, stopping at the first that
 * fails: 0, or -1 with *err (0: the hook ran and failed) and the step naming it. The
 * state is whole when status is NULL, else it lacks its closing brace and gets status
 * and pid. A hook's NULL envp: the runner's environment.
 * mr_hooks_note_pid, before any mount: remember our pid as the runtime sees it. */
int mr_run_hooks(const char *kind, const struct mr_hook *hooks, int n, const char *state, const char *status,
                 char *step, int *err);
void mr_hooks_note_pid(void);

/* internal, shared between the .c files */
struct mr_exec_failure {
    int err;
    char step[MR_STEP_MAX];
};
/* await_init (`run`): pipe_fd is a socket to the container's init, which sends one byte once it is
 * complete (mr_init_run); COMMAND's process waits for it before its credentials and execve. */
void mr_become_command(const struct mr_spawn_req *req, int pipe_fd, int await_init) __attribute__((noreturn));
void mr_close_fds(int from, int keep_a, int keep_b); /* close every fd >= from but those (-1: none) */
void mr_close_fds_but(int from, const int *keep, int n); /* the same, n of them */
int mr_step(char *step, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void mr_container_init(const struct mr_spawn_req *req, int report_fd) __attribute__((noreturn));

/* security.c: execveat the sealed minirun-init (mode 0111) so that it starts non-dumpable;
 * returns -errno if the exec fails. */
int mr_execveat_nondumpable(int fd, char *const argv[], char *const envp[]);

/* The signals the container's init passes on to COMMAND: every asynchronous one. Not the
 * synchronous ones, which only mean something to the process that faulted, nor job control,
 * which belongs to COMMAND's terminal, nor SIGCHLD, the init's own (tini's list, and SIGTSTP). */
static inline int mr_forwarded_signal(int sig)
{
    switch (sig) {
    case SIGFPE: case SIGILL: case SIGSEGV: case SIGBUS: case SIGABRT: case SIGTRAP: case SIGSYS:
    case SIGTSTP: case SIGTTIN: case SIGTTOU: case SIGCHLD: case SIGKILL: case SIGSTOP:
        return 0;
    default:
        return 1;
    }
}

/* The signals minirun passes on to the container's init while it runs, rather than die of
 * them and orphan the container: a foreground run and `exec` (minirun/container.py, through
 * cffi) and minirun-shim. The init passes them on to COMMAND (mr_forwarded_signal). */
static const int mr_passed_signals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};

/* minirun-shim's own exit record in the state directory, written before it execs the finish
 * step: "WAIT_STATUS\n", then, if that exec failed, a line saying so (shim.c). */
#define MR_SHIM_EXIT_RECORD "exit"

/* seccomp(2)'s program, our own copy: musl's headers carry no linux/filter.h */
struct mr_sock_filter {
    uint16_t code;
    uint8_t jt, jf;
    uint32_t k;
};
struct mr_sock_fprog {
    unsigned short len;
    struct mr_sock_filter *filter;
};

/* report.c, in the extension and in the static minirun-init: the records sent to the waiter. */
void mr_send_report(int fd, int kind, int err, int status, int pid, const char *step);
/* A SETUP_FAILED report naming the step, then exit 125: the child's every setup failure. */
void mr_setup_failed(int fd, const char *step, int err) __attribute__((noreturn));
/* COMMAND could not be exec'd: report on pipe_fd (an mr_exec_failure, or an mr_report for an
 * OCI PID 1) and exit. */
void mr_exec_failed(int pipe_fd, int oci_process, int err, const char *step) __attribute__((noreturn));

/* The container's exit status when COMMAND could not be exec'd, as a shell's: 127 not found, else 126. */
static inline int mr_exec_failure_status(int err)
{
    return err == ENOENT ? 127 : 126;
}

/* reap.c, only in minirun-init (init_main.c): the container's PID 1 once COMMAND's process is
 * forked and waits on sync_fd: confine itself to what a reaper needs (keep_caps: bit N =
 * capability N), release it, report EXEC_OK or EXEC_FAILED, then forward signals and reap
 * until COMMAND exits. */
void mr_init_run(int report_fd, int command, int sync_fd, uint64_t keep_caps) __attribute__((noreturn));

/* command.c, only in minirun-init: execve COMMAND, searching `path`; a failure is mr_exec_failed. */
void mr_exec_command(char *const argv[], char *const envp[], const char *path, int pipe_fd, int oci_process)
    __attribute__((noreturn));
/* init.c: an OCI `create`'s check that COMMAND is there (0, ENOENT or EACCES). */
int mr_find_command(const char *name, const char *path);

/* The container's PATH, walked the one way of mr_exec_command and mr_find_command: the next
 * candidate for name in *dirs into buf (an empty entry is the working directory), 0 once none is left. */
static inline int mr_path_candidate(const char **dirs, const char *name, char *buf, size_t size)
{
    const char *dir = *dirs, *end;
    int len;

    if (!dir || !*dir)
        return 0;
    for (end = dir; *end && *end != ':'; end++)
        ;
    len = (int)(end - dir);
    snprintf(buf, size, "%.*s/%s", len ? len : 1, len ? dir : ".", name);
    *dirs = *end ? end + 1 : end;
    return 1;
}

#endif
