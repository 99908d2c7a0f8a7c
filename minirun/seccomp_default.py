"""The default seccomp profile: Docker's current one, in its own format (built by minirun/seccomp.py).

The syscall lists follow moby's profiles/seccomp/default.json (Apache-2.0) as of
Docker 25+: everything not listed fails with EPERM (syscalls newer than the
profile with ENOSYS, see seccomp.py), and what needs a capability is allowed
only when COMMAND keeps it (``includes.caps``), so `--cap-add SYS_ADMIN` also
opens mount(2), and `--cap-add SYS_PTRACE` kcmp(2). Its ``archMap`` adds the
x86 and x32 sub-architectures to the x86_64 filter, as Docker's does.

Changes from the profile minirun had before: io_uring_setup, io_uring_enter and
io_uring_register are no longer allowed (Docker dropped them: io_uring has been
the source of many kernel exploits); cachestat, fchmodat2, map_shadow_stack and
futex_wait/wake/requeue (kernels 6.5-6.7) are.

One addition of minirun's: mknod(2)/mknodat(2) may make anything but block and
character devices (FIFOs, sockets, regular files), which fail with EPERM.
Docker relies on the devices cgroup to stop a container from opening a device
node it made (CAP_MKNOD is in the default set); until minirun has one, it
refuses to make them at all. Written as allow rules by file type, since
libseccomp lets an unconditional rule override a conditional one.
"""

S_IFMT = 0o170000
# the file types mknod(2) may create besides devices: regular (0 or S_IFREG), FIFO, socket
MKNOD_TYPES = (0, 0o100000, 0o010000, 0o140000)

ALLOWED = """
accept accept4 access adjtimex alarm bind brk cachestat capget capset chdir chmod chown chown32 clock_adjtime
clock_adjtime64 clock_getres clock_getres_time64 clock_gettime clock_gettime64 clock_nanosleep
clock_nanosleep_time64 close close_range connect copy_file_range creat dup dup2 dup3 epoll_create
epoll_create1 epoll_ctl epoll_ctl_old epoll_pwait epoll_pwait2 epoll_wait epoll_wait_old eventfd eventfd2
execve execveat exit exit_group faccessat faccessat2 fadvise64 fadvise64_64 fallocate fanotify_mark fchdir
fchmod fchmodat fchmodat2 fchown fchown32 fchownat fcntl fcntl64 fdatasync fgetxattr flistxattr flock fork
fremovexattr fsetxattr fstat fstat64 fstatat64 fstatfs fstatfs64 fsync ftruncate ftruncate64 futex
futex_requeue futex_time64 futex_wait futex_waitv futex_wake futimesat get_robust_list get_thread_area getcpu
getcwd getdents getdents64 getegid getegid32 geteuid geteuid32 getgid getgid32 getgroups getgroups32 getitimer
getpeername getpgid getpgrp getpid getppid getpriority getrandom getresgid getresgid32 getresuid getresuid32
getrlimit getrusage getsid getsockname getsockopt gettid gettimeofday getuid getuid32 getxattr
inotify_add_watch inotify_init inotify_init1 inotify_rm_watch io_cancel io_destroy io_getevents io_pgetevents
io_pgetevents_time64 io_setup io_submit ioctl ioprio_get ioprio_set ipc kill landlock_add_rule
landlock_create_ruleset landlock_restrict_self lchown lchown32 lgetxattr link linkat listen listxattr
llistxattr _llseek lremovexattr lseek lsetxattr lstat lstat64 madvise map_shadow_stack membarrier memfd_create
memfd_secret mincore mkdir mkdirat mlock mlock2 mlockall mmap mmap2 mprotect mq_getsetattr mq_notify mq_open
mq_timedreceive mq_timedreceive_time64 mq_timedsend mq_timedsend_time64 mq_unlink mremap msgctl msgget msgrcv
msgsnd msync munlock munlockall munmap name_to_handle_at nanosleep newfstatat _newselect open openat openat2
pause pidfd_open pidfd_send_signal pipe pipe2 pkey_alloc pkey_free pkey_mprotect poll ppoll ppoll_time64 prctl
pread64 preadv preadv2 prlimit64 process_mrelease pselect6 pselect6_time64 pwrite64 pwritev pwritev2 read
readahead readlink readlinkat readv recv recvfrom recvmmsg recvmmsg_time64 recvmsg remap_file_pages
removexattr rename renameat renameat2 restart_syscall rmdir rseq rt_sigaction rt_sigpending rt_sigprocmask
rt_sigqueueinfo rt_sigreturn rt_sigsuspend rt_sigtimedwait rt_sigtimedwait_time64 rt_tgsigqueueinfo
sched_get_priority_max sched_get_priority_min sched_getaffinity sched_getattr sched_getparam
sched_getscheduler sched_rr_get_interval sched_rr_get_interval_time64 sched_setaffinity sched_setattr
sched_setparam sched_setscheduler sched_yield seccomp select semctl semget semop semtimedop semtimedop_time64
send sendfile sendfile64 sendmmsg sendmsg sendto set_robust_list set_thread_area set_tid_address setfsgid
setfsgid32 setfsuid setfsuid32 setgid setgid32 setgroups setgroups32 setitimer setpgid setpriority setregid
setregid32 setresgid setresgid32 setresuid setresuid32 setreuid setreuid32 setrlimit setsid setsockopt setuid
setuid32 setxattr shmat shmctl shmdt shmget shutdown sigaltstack signalfd signalfd4 sigprocmask sigreturn
socketcall socketpair splice stat stat64 statfs statfs64 statx symlink symlinkat sync sync_file_range syncfs
sysinfo tee tgkill time timer_create timer_delete timer_getoverrun timer_gettime timer_gettime64 timer_settime
timer_settime64 timerfd_create timerfd_gettime timerfd_gettime64 timerfd_settime timerfd_settime64 times tkill
truncate truncate64 ugetrlimit umask uname unlink unlinkat utime utimensat utimensat_time64 utimes vfork
vmsplice wait4 waitid waitpid write writev
""".split()


def _file_type(index: int, kind: int) -> dict:
    return {"index": index, "op": "SCMP_CMP_MASKED_EQ", "value": S_IFMT, "valueTwo": kind}


def _allow(names, caps=None, **rule) -> dict:
    entry = {"names": names.split() if isinstance(names, str) else names, "action": "SCMP_ACT_ALLOW", **rule}
    if caps:
        entry["includes"] = {"caps": [caps]}
    return entry


DEFAULT_PROFILE = {
    "defaultAction": "SCMP_ACT_ERRNO",
    "defaultErrnoRet": 1,
    # Docker's entries for other hosts (arm64, s390x, ...) and their rules are left out: only the
    # host's own entry counts, and minirun runs on x86_64.
    "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]}],
    "syscalls": [
        # minirun: no device nodes (see the module docstring)
        *(_allow("mknod", args=[_file_type(1, t)]) for t in MKNOD_TYPES),
        *(_allow("mknodat", args=[_file_type(2, t)]) for t in MKNOD_TYPES),
        # Docker's
        _allow(ALLOWED),
        _allow("process_vm_readv process_vm_writev ptrace", includes={"minKernel": "4.8"}),
        _allow("socket", args=[{"index": 0, "value": 40, "op": "SCMP_CMP_NE"}]),  # no AF_VSOCK
        *(_allow("personality", args=[{"index": 0, "value": v, "op": "SCMP_CMP_EQ"}])
          for v in (0, 8, 0x20000, 0x20008, 0xFFFFFFFF)),
        _allow("arch_prctl", includes={"arches": ["amd64", "x32"]}),
        _allow("modify_ldt", includes={"arches": ["amd64", "x32", "x86"]}),
        _allow("open_by_handle_at", "CAP_DAC_READ_SEARCH"),
        _allow("bpf clone clone3 fanotify_init fsconfig fsmount fsopen fspick lookup_dcookie mount mount_setattr "
               "move_mount open_tree perf_event_open quotactl quotactl_fd setdomainname sethostname setns syslog "
               "umount umount2 unshare", "CAP_SYS_ADMIN"),
        # clone without CAP_SYS_ADMIN: no CLONE_NEW* flag (0x7e020000: user, pid, net, uts, ipc, ns, cgroup)
        _allow("clone", args=[{"index": 0, "value": 0x7E020000, "op": "SCMP_CMP_MASKED_EQ"}],
               excludes={"caps": ["CAP_SYS_ADMIN"], "arches": ["s390", "s390x"]}),
        # clone3 hides its flags in a struct: ENOSYS makes libc fall back to clone
        {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38, "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
        _allow("reboot", "CAP_SYS_BOOT"),
        _allow("chroot", "CAP_SYS_CHROOT"),
        _allow("delete_module init_module finit_module", "CAP_SYS_MODULE"),
        _allow("acct", "CAP_SYS_PACCT"),
        _allow("kcmp pidfd_getfd process_madvise process_vm_readv process_vm_writev ptrace", "CAP_SYS_PTRACE"),
        _allow("iopl ioperm", "CAP_SYS_RAWIO"),
        _allow("settimeofday stime clock_settime clock_settime64", "CAP_SYS_TIME"),
        _allow("vhangup", "CAP_SYS_TTY_CONFIG"),
        _allow("get_mempolicy mbind set_mempolicy set_mempolicy_home_node", "CAP_SYS_NICE"),
        _allow("syslog", "CAP_SYSLOG"),
        _allow("bpf", "CAP_BPF"),
        _allow("perf_event_open", "CAP_PERFMON"),
    ],
}
