/*
 * probe.c - escape attempts, one per subcommand, for the isolation tests.
 *
 *   gcc -static -O2 -o probe csrc/probe.c     (tests/integration/test_escape.py does this)
 *   probe SUBCOMMAND [ARGS...]
 *
 * Exit status: 0 = the attempt got through (an ESCAPE inside a container),
 * 1 = blocked (EPERM, EACCES, EROFS ... printed on stdout), 2 = not applicable
 * here (this kernel lacks the feature), 3 = usage error.
 *
 * Dangerous calls are made with arguments the kernel rejects only after its
 * permission checks (reboot with a wrong magic number, delete_module of a
 * module that does not exist ...): EPERM means the container stopped it, any
 * other error means the call reached the kernel's handler, i.e. it would have
 * worked with real arguments. Nothing here changes the host. The probe list
 * with its expectations is minirun/probes.py.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sched.h>
#include <unistd.h>

static int escaped(const char *what)
{
    printf("ESCAPED: %s\n", what);
    return 0;
}

static int blocked(const char *what, int err)
{
    printf("blocked: %s: %s\n", what, strerror(err));
    return 1;
}

static int not_here(const char *what, int err)
{
    printf("n/a: %s: %s\n", what, strerror(err));
    return 2;
}

/* A privileged call made with arguments that fail after the permission check. */
static int reached(const char *what, long ret)
{
    int err = errno;

    if (ret >= 0)
        return escaped(what);
    if (err == EPERM || err == EACCES)
        return blocked(what, err);
    if (err == ENOSYS)
        return not_here(what, err);
    printf("ESCAPED: %s reached the kernel (%s)\n", what, strerror(err));
    return 0;
}

/* A host process whose command line contains MARKER is visible and signalable. */
static int find_proc(const char *marker)
{
    DIR *d = opendir("/proc");
    struct dirent *e;
    char path[64], buf[4096];

    if (!d)
        return blocked("opendir(/proc)", errno);
    while ((e = readdir(d))) {
        int pid = atoi(e->d_name), fd;
        ssize_t n;

        if (pid <= 0 || pid == getpid())
            continue;
        snprintf(path, sizeof(path), "/proc/%d/cmdline", pid);
        if ((fd = open(path, O_RDONLY)) < 0)
            continue;
        n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        for (ssize_t i = 0; i < n; i++)
            if (!buf[i])
                buf[i] = ' ';
        buf[n > 0 ? n : 0] = '\0';
        if (strstr(buf, marker)) {
            if (kill(pid, 0) < 0)
                return blocked("kill(marker process, 0)", errno);
            printf("ESCAPED: pid %d runs %s and can be signalled\n", pid, marker);
            return 0;
        }
    }
    printf("blocked: no process with %s in sight\n", marker);
    return 1;
}

static int make_node(const char *path, mode_t type, int major, int minor)
{
    unlink(path);
    return mknod(path, type | 0600, makedev(major, minor));
}

/* mknod a device node, open it, read from it. */
static int open_device(char type, int major, int minor)
{
    const char *node = "/dev/minirun-probe-node";
    char buf[512];
    int fd;

    if (make_node(node, type == 'b' ? S_IFBLK : S_IFCHR, major, minor) < 0)
        return blocked("mknod", errno);
    fd = open(node, O_RDONLY);
    if (fd < 0) {
        int err = errno;

        unlink(node);
        return (err == ENXIO || err == ENODEV) ? not_here("open(device): no such device here", err)
                                               : blocked("open(device)", err);
    }
    if (read(fd, buf, sizeof(buf)) < 0) {
        int err = errno;

        close(fd);
        unlink(node);
        return blocked("read(device)", err);
    }
    close(fd);
    unlink(node);
    return escaped("opened and read a device node made with mknod");
}

/* mknod the host's root block device, mount it, look for a file of the host's. */
static int mount_device(int major, int minor, const char *fstype, const char *relpath)
{
    const char *node = "/dev/minirun-probe-disk", *dir = "/tmp/minirun-probe-mnt";
    char path[4096];
    int ok;

    if (make_node(node, S_IFBLK, major, minor) < 0)
        return blocked("mknod(host block device)", errno);
    mkdir("/tmp", 01777);
    mkdir(dir, 0700);
    if (mount(node, dir, fstype, MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0) {
        int err = errno;

        unlink(node);
        return blocked("mount(host block device)", err);
    }
    snprintf(path, sizeof(path), "%s/%s", dir, relpath);
    ok = access(path, F_OK) == 0;
    umount2(dir, MNT_DETACH);
    unlink(node);
    if (!ok) {
        printf("blocked: mounted the device but %s is not on it\n", relpath);
        return 1;
    }
    return escaped("mounted the host's root device and found the host's file on it");
}

static int write_bytes(const char *path, const char *data, size_t len)
{
    int fd = open(path, O_WRONLY);

    if (fd < 0)
        return errno == ENOENT ? not_here(path, errno) : blocked(path, errno);
    if (write(fd, data, len) < 0) {
        int err = errno;

        close(fd);
        return blocked("write", err);
    }
    close(fd);
    return escaped("wrote to the file");
}

/* Read up to len bytes of path into buf: -1 when done, else the probe's verdict. */
static int read_some(const char *path, char *buf, size_t len, ssize_t *n)
{
    int fd = open(path, O_RDONLY);

    if (fd < 0)
        return errno == ENOENT ? not_here(path, errno) : blocked(path, errno);
    *n = read(fd, buf, len);
    close(fd);
    if (*n < 0)
        return blocked("read", errno);
    return -1;
}

/* Write back what a file already holds (no change, but needs write access). */
static int rewrite(const char *path)
{
    char buf[4096];
    ssize_t n;
    int ret = read_some(path, buf, sizeof(buf), &n);

    if (ret >= 0)
        return ret;
    return write_bytes(path, buf, n > 0 ? (size_t)n : 1);
}

static int write_file(const char *path, const char *data)
{
    return write_bytes(path, data, strlen(data));
}

static int read_file(const char *path)
{
    char buf[4096];
    ssize_t n;
    int ret = read_some(path, buf, sizeof(buf), &n);

    if (ret >= 0)
        return ret;
    if (n == 0) {
        printf("blocked: %s reads as empty\n", path);
        return 1;
    }
    return escaped("read the file's contents");
}

static int tcp_connect(const char *addr, int port)
{
    struct sockaddr_in sa;
    int s = socket(AF_INET, SOCK_STREAM, 0);

    if (s < 0)
        return blocked("socket", errno);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    inet_pton(AF_INET, addr, &sa.sin_addr);
    if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0)
        return blocked("connect", errno);
    close(s);
    return escaped("connected to a listener in the host's network namespace");
}

static int ptrace_pid(int pid)
{
    if (ptrace(PTRACE_ATTACH, pid, 0, 0) < 0)
        return errno == ESRCH ? not_here("ptrace: no such process", errno) : blocked("ptrace(PTRACE_ATTACH)", errno);
    waitpid(pid, NULL, __WALL);
    ptrace(PTRACE_DETACH, pid, 0, 0);
    return escaped("attached to a process outside the container's privilege");
}

/* One field of /proc/PID/status ("CapPrm", "Seccomp" ...), as a number in base; 0 if absent. */
static unsigned long long status_field(int pid, const char *field, int base)
{
    char path[64], line[256];
    unsigned long long v = 0;
    size_t len = strlen(field);
    FILE *f;

    snprintf(path, sizeof(path), pid ? "/proc/%d/status" : "/proc/self/status", pid);
    if (!(f = fopen(path, "r")))
        return 0;
    while (fgets(line, sizeof(line), f))
        if (!strncmp(line, field, len) && line[len] == ':') {
            v = strtoull(line + len + 1, NULL, base);
            break;
        }
    fclose(f);
    return v;
}

/* Spin on PTRACE_SEIZE of every pid to come (the next few after the highest taken), as a
 * process of the container would to catch a process minirun starts in it before that
 * one is sealed. Each seize stops the tracee, prints what it was, and lets it go:
 *   seized PID exe=/proc/PID/exe's target seccomp=N
 * Runs until killed. */
static int seize_new(void)
{
    static unsigned char done[1 << 22];
    int hi = 0, window = 16;
    DIR *d = opendir("/proc");
    struct dirent *e;

    if (!d)
        return blocked("opendir(/proc)", errno);
    while ((e = readdir(d)))
        if (atoi(e->d_name) > hi)
            hi = atoi(e->d_name);
    closedir(d);
    printf("ready: pids after %d\n", hi);
    for (;;) {
        int exists[64] = {0};

        for (int i = 1; i <= window; i++) {
            int pid = hi + i;

            if (pid >= (int)sizeof(done) || done[pid]) {
                exists[i] = 1;
                continue;
            }
            if (ptrace(PTRACE_SEIZE, pid, 0, 0) == 0) {
                char path[64], exe[256] = "?";
                int status = 0;
                ssize_t n;

                ptrace(PTRACE_INTERRUPT, pid, 0, 0);
                if (waitpid(pid, &status, __WALL) == pid && (WIFEXITED(status) || WIFSIGNALED(status))) {
                    printf("seized %d, gone before it stopped\n", pid); /* an exec'd COMMAND's quick exit */
                } else {
                    snprintf(path, sizeof(path), "/proc/%d/exe", pid);
                    if ((n = readlink(path, exe, sizeof(exe) - 1)) >= 0)
                        exe[n] = 0;
                    printf("seized %d exe=%s seccomp=%llu\n", pid, exe, status_field(pid, "Seccomp", 10));
                    ptrace(PTRACE_DETACH, pid, 0, 0);
                }
                done[pid] = 1;
            }
            exists[i] = done[pid] || errno == EPERM; /* EPERM: there, not ours yet */
        }
        /* move on past pids seized, or gone for good (a later one exists) */
        for (;;) {
            int later = 0;

            for (int i = 2; i <= window; i++)
                later |= exists[i];
            if (!(done[hi + 1] || (!exists[1] && later)))
                break;
            hi++;
            memmove(exists + 1, exists + 2, sizeof(int) * (size_t)(window - 1));
            exists[window] = 0;
        }
    }
}

/* The classic chroot escape: chroot into a subdirectory while keeping the
 * cwd outside it, walk up, chroot("."). Succeeds if we then see `marker`,
 * an absolute path that exists only on the host. */
static int chroot_escape(const char *marker)
{
    mkdir("/tmp", 01777);
    mkdir("/tmp/minirun-probe-jail", 0700);
    if (chroot("/tmp/minirun-probe-jail") < 0)
        return blocked("chroot", errno);
    for (int i = 0; i < 256; i++)
        if (chdir("..") < 0)
            return blocked("chdir(..)", errno);
    if (chroot(".") < 0)
        return blocked("chroot(.)", errno);
    if (access(marker, F_OK) == 0)
        return escaped("walked out of the root and found the host's file");
    printf("blocked: at the top of the tree, and %s is not there\n", marker);
    return 1;
}

static int remount_root_rw(void)
{
    int fd;

    if (mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND, NULL) < 0)
        return blocked("remount / read-write", errno);
    fd = open("/minirun-probe-rw", O_WRONLY | O_CREAT, 0600);
    if (fd < 0)
        return blocked("remounted, but create /minirun-probe-rw", errno);
    close(fd);
    unlink("/minirun-probe-rw");
    return escaped("remounted / read-write and wrote to it");
}

static int raise_hard_rlimit(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return blocked("getrlimit", errno);
    if (rl.rlim_max == RLIM_INFINITY)
        return not_here("the hard limit is already unlimited", EINVAL);
    rl.rlim_max += 1;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
        return blocked("setrlimit(RLIMIT_NOFILE, hard + 1)", errno);
    return escaped("raised the hard limit of RLIMIT_NOFILE");
}

/* Read PID's memory at the start of its first readable mapping (from /proc/PID/maps), through
 * HOW: "proc-mem" (/proc/PID/mem) or "vm-readv" (process_vm_readv). A masked /proc/PID/mem
 * (/dev/null) reads nothing. */
static int read_mem(int pid, const char *how)
{
    char path[64], line[512], perms[8], buf[16];
    unsigned long start = 0, addr;
    ssize_t n;
    FILE *f;
    int fd;

    snprintf(path, sizeof(path), "/proc/%d/maps", pid);
    if (!(f = fopen(path, "r")))
        return blocked("open /proc/PID/maps", errno);
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "%lx-%*x %7s", &addr, perms) == 2 && perms[0] == 'r') {
            start = addr;
            break;
        }
    fclose(f);
    if (!start)
        return not_here("no readable mapping in /proc/PID/maps", ENOENT);
    if (!strcmp(how, "vm-readv")) {
        struct iovec local = {buf, sizeof(buf)}, remote = {(void *)start, sizeof(buf)};

        n = syscall(SYS_process_vm_readv, pid, &local, 1, &remote, 1, 0);
        return n <= 0 ? blocked("process_vm_readv", n < 0 ? errno : EIO) : escaped("read its memory (process_vm_readv)");
    }
    snprintf(path, sizeof(path), "/proc/%d/mem", pid);
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return blocked("open /proc/PID/mem", errno);
    n = pread(fd, buf, sizeof(buf), (off_t)start);
    close(fd);
    return n <= 0 ? blocked("read /proc/PID/mem", n < 0 ? errno : EIO) : escaped("read its memory (/proc/PID/mem)");
}

/* One of PID's file descriptors (0) through pidfd_open and pidfd_getfd. */
static int pidfd_getfd_of(int pid)
{
    int pidfd = (int)syscall(SYS_pidfd_open, pid, 0), fd;

    if (pidfd < 0)
        return errno == ENOSYS ? not_here("pidfd_open", errno) : blocked("pidfd_open", errno);
    fd = (int)syscall(SYS_pidfd_getfd, pidfd, 0, 0);
    close(pidfd);
    return fd < 0 ? blocked("pidfd_getfd", errno) : escaped("took a file descriptor of it (pidfd_getfd)");
}

int main(int argc, char **argv)
{
    const char *cmd = argc > 1 ? argv[1] : "";

    setvbuf(stdout, NULL, _IONBF, 0);
    if (!strcmp(cmd, "find-proc") && argc == 3)
        return find_proc(argv[2]);
    if (!strcmp(cmd, "mount-device") && argc == 6)
        return mount_device(atoi(argv[2]), atoi(argv[3]), argv[4], argv[5]);
    if (!strcmp(cmd, "open-device") && argc == 5)
        return open_device(argv[2][0], atoi(argv[3]), atoi(argv[4]));
    if (!strcmp(cmd, "rewrite") && argc == 3)
        return rewrite(argv[2]);
    if (!strcmp(cmd, "write") && argc == 4)
        return write_file(argv[2], argv[3]);
    if (!strcmp(cmd, "read") && argc == 3)
        return read_file(argv[2]);
    if (!strcmp(cmd, "init-module"))
        return reached("init_module", syscall(SYS_init_module, NULL, 0, ""));
    if (!strcmp(cmd, "delete-module"))
        return reached("delete_module", syscall(SYS_delete_module, "minirun_probe_no_such_module", O_NONBLOCK));
    if (!strcmp(cmd, "reboot")) /* LINUX_REBOOT_MAGIC1 with a wrong second magic: EINVAL past the check */
        return reached("reboot", syscall(SYS_reboot, 0xfee1deadUL, 0UL, 0UL, NULL));
    if (!strcmp(cmd, "sethostname"))
        return reached("sethostname", sethostname("minirun-probe", 13));
    if (!strcmp(cmd, "connect") && argc == 4)
        return tcp_connect(argv[2], atoi(argv[3]));
    if (!strcmp(cmd, "ptrace") && argc == 3)
        return ptrace_pid(atoi(argv[2]));
    if (!strcmp(cmd, "read-mem") && argc == 4)
        return read_mem(atoi(argv[2]), argv[3]);
    if (!strcmp(cmd, "pidfd-getfd") && argc == 3)
        return pidfd_getfd_of(atoi(argv[2]));
    if (!strcmp(cmd, "seize-new"))
        return seize_new();
    if (!strcmp(cmd, "chroot-escape") && argc == 3)
        return chroot_escape(argv[2]);
    if (!strcmp(cmd, "remount-root-rw"))
        return remount_root_rw();
    if (!strcmp(cmd, "raw-socket")) {
        int s = socket(AF_INET, SOCK_RAW, IPPROTO_ICMP);

        return s < 0 ? blocked("socket(AF_INET, SOCK_RAW)", errno) : escaped("opened a raw socket");
    }
    if (!strcmp(cmd, "raise-rlimit"))
        return raise_hard_rlimit();
    if (!strcmp(cmd, "keyctl")) /* add_key(2) to the process keyring: the kernel keyring is not namespaced */
        return reached("add_key", syscall(SYS_add_key, "user", "minirun-probe", "x", 1, -2 /* process keyring */));
    if (!strcmp(cmd, "userns"))
        return reached("unshare(CLONE_NEWUSER)", unshare(CLONE_NEWUSER));
    fprintf(stderr, "usage: probe SUBCOMMAND [ARGS] (see csrc/probe.c)\n");
    return 3;
}
