"""cffi builder (API, out-of-line mode) for minirun._native.

Compiled by `pip install .` through setup.py's ``cffi_modules``. The cdef below
mirrors csrc/minirun.h: keep them in step.
"""

import os

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))

ffibuilder = FFI()
ffibuilder.cdef(
    """
    #define MR_STEP_MAX ...
    #define MR_OP_MOUNT ...
    #define MR_OP_MKNOD ...
    #define MR_OP_SYMLINK ...
    #define MR_OP_MKDIR ...
    #define MR_OP_MASK ...
    #define MR_OP_READONLY ...
    #define MR_OP_NODEV ...
    #define MR_OP_WRITE ...
    #define MR_NODE_KEEP ...
    #define MR_REPORT_SETUP_FAILED ...
    #define MR_REPORT_EXEC_OK ...
    #define MR_REPORT_EXEC_FAILED ...
    #define MR_REPORT_EXITED ...
    #define MR_REPORT_CREATED ...
    #define MR_REPORT_HOOKS ...

    #define CLONE_NEWNS ...
    #define CLONE_NEWUTS ...
    #define CLONE_NEWIPC ...
    #define CLONE_NEWPID ...
    #define CLONE_NEWNET ...
    #define CLONE_NEWCGROUP ...
    #define CLONE_NEWUSER ...
    #define MS_RDONLY ...
    #define MS_NOSUID ...
    #define MS_NODEV ...
    #define MS_NOEXEC ...
    #define MS_SYNCHRONOUS ...
    #define MS_REMOUNT ...
    #define MS_MANDLOCK ...
    #define MS_DIRSYNC ...
    #define MS_NOATIME ...
    #define MS_NODIRATIME ...
    #define MS_BIND ...
    #define MS_REC ...
    #define MS_UNBINDABLE ...
    #define MS_PRIVATE ...
    #define MS_SLAVE ...
    #define MS_SHARED ...
    #define MS_RELATIME ...
    #define MS_STRICTATIME ...
    #define MNT_DETACH ...

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
        unsigned int uid;
        unsigned int gid;
        int source_fd;
    };

    struct mr_hook {
        const char *path;
        const char *const *argv;
        const char *const *envp;
        int timeout;
    };
    struct mr_spawn_req {
        const char *rootfs;
        const char *hostname;
        uint64_t clone_flags;
        int unshare_cgroupns;
        int cgroup_fd;
        const int *tasks_fds;
        int n_tasks_fds;
        const struct mr_op *pre_ops;
        int n_pre_ops;
        const struct mr_op *ops;
        int n_ops;
        int readonly_root;
        uint32_t net_addr;
        uint32_t net_mask;
        uint32_t net_gateway;
        const char *const *argv;
        const char *const *envp;
        const char *path;
        const char *cwd;
        int uid;
        int gid;
        int stdio[3];
        /* security (security.c) */
        int security;
        uint64_t cap_mask;
        uint64_t cap_inheritable;
        int no_new_privs;
        const void *seccomp_filter;
        int seccomp_len;
        unsigned int seccomp_flags;
        int terminal;
        int console_fd;
        int console_bind;
        unsigned short console_rows;
        unsigned short console_cols;
        int cap_sets;
        uint64_t cap_effective;
        uint64_t cap_permitted;
        uint64_t cap_ambient;
        int oci_process;
        int detached;
        int exec_fifo_fd;
        int preserve_fds;
        const int *join_fds;
        int n_join_fds;
        const char *domainname;
        int set_groups;
        const uint32_t *groups;
        int n_groups;
        int has_umask;
        unsigned int umask;
        int cwd_must_exist;
        int helper_fd;
        const struct mr_hook *create_hooks;
        int n_create_hooks;
        const struct mr_hook *start_hooks;
        int n_start_hooks;
        const char *hook_state;
        int runtime_hooks;
    };

    struct mr_spawn_out {
        int pid;
        int report_fd;
        int go_fd;
        int used_clone3;
    };

    struct mr_report {
        int32_t kind;
        int32_t err;
        int32_t status;
        int32_t pid;
        char step[...];
    };

    int mr_spawn(const struct mr_spawn_req *req, struct mr_spawn_out *out, char *step);
    int mr_setns(int fd, int nstype, char *step);
    int mr_netns_make(char *step);
    int mr_aside_take_netns(void);
    int mr_aside_close(int fd);
    int mr_aside_settled(int timeout_ms);
    int mr_exec(const struct mr_spawn_req *req, int pidfd, int ns_flags, int *exec_err, char *step);

    #define MR_IN_ROOT_MKDIR ...
    #define MR_IN_ROOT_MKDIR_PARENTS ...
    #define MR_IN_ROOT_NOFOLLOW ...
    int mr_open_in_root(int root_fd, const char *path, int how, int *parent, char *leaf);
    int mr_open_bind_tree(const char *source, int recursive, unsigned long attrs, char *step);
    int mr_attach_device_filter(const void *insns, int n_insns, int cgroup_fd, char *step);

    static const int mr_passed_signals[...];
    static const char *const MR_SHIM_EXIT_RECORD;

    struct mr_pty { int master; int hung_up; ...; };
    void mr_pty_init(struct mr_pty *p, int master);
    struct mr_tty_relay { struct mr_pty pty; int in_fd, out_fd, wake_fd; int out_ok; ...; };
    int mr_tty_relay(struct mr_tty_relay *t, int until_fd);
    struct mr_attach_client { int sock, in_fd, out_fd, wake_fd; const char *keys; int n_keys; int held; ...; };
    int mr_attach_client(struct mr_attach_client *c);
    int mr_attach_send_size(int sock, unsigned short rows, unsigned short cols);
    size_t mr_detach_filter(const char *keys, int n_keys, int *held, const char *in, size_t len, char *out,
                            int *detached);

    #define MR_RELAY_MAX_CONNS ...
    struct mr_relay;
    struct mr_relay *mr_relay_new(void);
    int mr_relay_add_port(struct mr_relay *r, int listen_fd, const char *to_addr, int to_port);
    int mr_relay_connections(const struct mr_relay *r);
    int mr_relay_serve(struct mr_relay *r, int stop_fd);
    void mr_relay_free(struct mr_relay *r);

    extern "Python" void mr_oci_python_warn(const char *msg);
    """
)


def header_cdef(name: str, leave_out: tuple[str, ...] = ()) -> str:
    """A header of csrc/ as cffi's cdef: its declarations written once, in the header.
    Comments and include guards go; a #define's value and an array's size are left to
    the compiler (cffi's ``...``); a line naming one of ``leave_out`` goes too."""
    import re

    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), name)) as f:
        text = re.sub(r"/\*.*?\*/", "", f.read(), flags=re.S)
    lines = []
    for line in text.splitlines():
        if line.startswith("#define ") and len(line.split()) >= 3:
            lines.append(f"#define {line.split()[1]} ...")
        elif not line.startswith("#") and not any(name in line for name in leave_out):
            lines.append(re.sub(r"\[[A-Z_][A-Z0-9_]*\]", "[...]", line))
    return "\n".join(lines)


# minirun-oci's verbs and the store, cgroup and id mechanics they share with Python.
ffibuilder.cdef(header_cdef("ociverbs.h", leave_out=("oci_verbs_main",)))  # the front's entry, not linked here

ffibuilder.set_source(
    "minirun._native",
    """
    #define _GNU_SOURCE
    #include <sched.h>
    #include <sys/mount.h>
    #include "minirun.h"
    #include "ociverbs.h"
    """,
    sources=[os.path.join("csrc", name) for name in (
        "syscalls.c", "aside.c", "spawn.c", "spawnreq.c", "report.c", "exec.c", "security.c", "rootpath.c", "devices.c",
        "hooks.c", "relay.c", "attach.c", "ociverbs.c", "ocistore.c", "ocips.c", "ocicgroup.c", "ocilog.c",
        "json.c")],
    include_dirs=[HERE],
    extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)


# minirun._seccomp: libseccomp, the filter compiler runc, crun and youki use: its syscall tables
# (minirun/seccomp_build.py), and its own compiler for the tests' reference program.
# A module of its own so that only building a filter links it: the default
# run loads a cached program (minirun/seccomp.py) and never maps libseccomp.
seccomp_ffibuilder = FFI()
seccomp_ffibuilder.cdef(
    """
    typedef void *scmp_filter_ctx;
    typedef uint64_t scmp_datum_t;
    struct scmp_version { unsigned int major; unsigned int minor; unsigned int micro; };
    enum scmp_compare { SCMP_CMP_NE, SCMP_CMP_LT, SCMP_CMP_LE, SCMP_CMP_EQ, SCMP_CMP_GE, SCMP_CMP_GT,
                        SCMP_CMP_MASKED_EQ, ... };
    enum scmp_filter_attr { SCMP_FLTATR_ACT_BADARCH, SCMP_FLTATR_CTL_NNP, SCMP_FLTATR_CTL_OPTIMIZE, ... };
    struct scmp_arg_cmp { unsigned int arg; enum scmp_compare op; scmp_datum_t datum_a; scmp_datum_t datum_b; };
    #define __NR_SCMP_ERROR ...

    const struct scmp_version *seccomp_version(void);
    unsigned int seccomp_api_get(void);
    scmp_filter_ctx seccomp_init(uint32_t def_action);
    void seccomp_release(scmp_filter_ctx ctx);
    int seccomp_attr_set(scmp_filter_ctx ctx, enum scmp_filter_attr attr, uint32_t value);
    uint32_t seccomp_arch_resolve_name(const char *arch_name);
    uint32_t seccomp_arch_native(void);
    int seccomp_arch_add(scmp_filter_ctx ctx, uint32_t arch_token);
    int seccomp_syscall_resolve_name(const char *name);
    int seccomp_syscall_resolve_name_arch(uint32_t arch_token, const char *name);
    int seccomp_rule_add_array(scmp_filter_ctx ctx, uint32_t action, int syscall, unsigned int arg_cnt,
                               const struct scmp_arg_cmp *arg_array);
    int seccomp_export_bpf(const scmp_filter_ctx ctx, int fd);
    """
)
seccomp_ffibuilder.set_source(
    "minirun._seccomp",
    "#include <seccomp.h>",
    libraries=["seccomp"],
    extra_compile_args=["-O2", "-Wall"],
)
