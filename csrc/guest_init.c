/*
 * guest_init.c: PID 1 of a `minirun vm run` guest.
 *
 * Why a static C program and not a busybox script: the same init must work for
 * an initramfs built from any ROOTFS (which may have no shell at all) and for
 * `--share-root DIR`, where it has to load kernel modules and mount the 9p root
 * before any userland exists.  A static binary needs nothing from the guest,
 * starts in about a millisecond (a shell script forks for every step, which is
 * slow under TCG), and can decode wait statuses exactly (signals included).
 * It is compiled on demand by minirun/vm/guest.py with `gcc -static -Os`.
 *
 * How the exit status reaches the host: a second 8250 UART (/dev/ttyS1), which
 * the host wires to a socket it reads.  Alternatives we rejected:
 *   - isa-debug-exit makes QEMU exit at once with status (value << 1) | 1,
 *     which cannot carry codes >= 128 (death by signal N -> 128+N), skips the
 *     QMP SHUTDOWN event and carries no timing markers;
 *   - a marker on the console shares the stream with COMMAND's output (which
 *     could print the marker itself) and with kernel messages;
 *   - virtio-serial needs virtio_console + virtio_pci, modules in Debian's
 *     kernels, so every boot would need a module-loading step.
 * The 8250 driver is built into every x86 kernel, so ttyS1 is always there and
 * the channel stays separate from COMMAND's output.
 *
 * Control lines written to ttyS1 (one per line, host timestamps them):
 *   minirun:init <kernel release>     PID 1 is running
 *   minirun:start                     about to execve COMMAND
 *   minirun:exit <code>               COMMAND exited with <code>
 *   minirun:signal <n>                COMMAND was killed by signal <n>
 *   minirun:error <message>           init itself failed (host exits 125)
 *
 * Kernel modules: the host puts the ones asked for (9p's for --share-root, any
 * --module) into the initramfs, from the booted kernel's own package, and lists
 * them in load order.  Before loading them, init empties
 * /proc/sys/kernel/modprobe: the kernel then never runs a usermode modprobe,
 * so a guest on the host's root over 9p cannot pick modules out of the host's
 * /lib/modules (present on one machine, absent on the next).  A module nobody
 * asked for fails the same way everywhere.
 *
 * Configuration comes from /.minirun/config in the initramfs: a list of
 * NUL-terminated key, value pairs (arg, env, hostname, cwd, root9p, rw, mod,
 * off).  Keys may repeat (arg, env, mod), in order.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#define CONFIG_PATH "/.minirun/config"
#define MAX_ITEMS 4096

static int ctl = -1;
static int power_off = 1; /* 0: reboot (microvm has no ACPI; QEMU runs with -no-reboot) */

static void ctl_write(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int n;

	if (ctl < 0)
		return;
	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if (n > (int)sizeof(buf) - 2)
		n = sizeof(buf) - 2;
	buf[n++] = '\n';
	/* The UART is slow under TCG; loop over short writes. */
	for (int off = 0; off < n;) {
		ssize_t w = write(ctl, buf + off, n - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		off += w;
	}
	tcdrain(ctl);
}

static void halt_now(void)
{
	sync();
	reboot(power_off ? RB_POWER_OFF : RB_AUTOBOOT);
	/* Only reached if reboot() failed: a hung guest is caught by the host's timeout. */
	for (;;)
		pause();
}

static void die(const char *fmt, ...)
{
	char msg[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	dprintf(2, "minirun-init: %s\n", msg);
	ctl_write("minirun:error %s", msg);
	halt_now();
}

static void do_mount(const char *src, const char *dst, const char *type, unsigned long flags, const char *data,
		     int required)
{
	mkdir(dst, 0755); /* may fail on a read-only root where it already exists */
	if (mount(src, dst, type, flags, data) < 0 && required)
		die("mount %s on %s: %s", type, dst, strerror(errno));
}

static void open_ctl(void)
{
	struct termios t;

	ctl = open("/dev/ttyS1", O_WRONLY | O_NOCTTY | O_CLOEXEC);
	if (ctl < 0)
		return;
	if (tcgetattr(ctl, &t) == 0) {
		cfmakeraw(&t);
		cfsetospeed(&t, B115200);
		tcsetattr(ctl, TCSANOW, &t);
	}
}

/* COMMAND's output goes to the console: turn off "\n" -> "\r\n" so the host gets the bytes as written. */
static void raw_output(int fd)
{
	struct termios t;

	if (tcgetattr(fd, &t) == 0) {
		t.c_oflag &= ~OPOST;
		tcsetattr(fd, TCSANOW, &t);
	}
}

static char *read_config(size_t *len)
{
	int fd = open(CONFIG_PATH, O_RDONLY | O_CLOEXEC);
	struct stat st;
	char *buf;
	size_t off = 0;

	if (fd < 0 || fstat(fd, &st) < 0)
		die("open %s: %s", CONFIG_PATH, strerror(errno));
	buf = malloc(st.st_size + 1);
	if (!buf)
		die("out of memory");
	while (off < (size_t)st.st_size) {
		ssize_t r = read(fd, buf + off, st.st_size - off);
		if (r <= 0)
			die("read %s: %s", CONFIG_PATH, r < 0 ? strerror(errno) : "short read");
		off += r;
	}
	buf[off] = 0;
	close(fd);
	*len = off;
	return buf;
}

/* An empty modprobe path turns request_module() off (kernel/kmod.c returns -ENOENT). */
static void disable_module_autoload(void)
{
	int fd;

	mkdir("/proc", 0755);
	if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
		die("mount proc: %s", strerror(errno));
	fd = open("/proc/sys/kernel/modprobe", O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, "\n", 1) != 1)
		die("turn off module autoloading (/proc/sys/kernel/modprobe): %s", strerror(errno));
	close(fd);
	umount2("/proc", MNT_DETACH);
}

static void load_module(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		die("open module %s: %s", path, strerror(errno));
	if (syscall(SYS_finit_module, fd, "", 0) < 0 && errno != EEXIST)
		die("load module %s: %s", path, strerror(errno));
	close(fd);
}

/* The kernel offers a cgroup v2-only layout when nothing mounted v1: enable every controller for children. */
static void setup_cgroup2(void)
{
	char ctrl[512], line[600];
	int fd;
	ssize_t n;

	if (mount("cgroup2", "/sys/fs/cgroup", "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC, "nsdelegate") < 0)
		return;
	fd = open("/sys/fs/cgroup/cgroup.controllers", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	n = read(fd, ctrl, sizeof(ctrl) - 1);
	close(fd);
	if (n <= 0)
		return;
	ctrl[n] = 0;
	fd = open("/sys/fs/cgroup/cgroup.subtree_control", O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	/* One write per controller, so that one refusal does not block the others. */
	for (char *save = NULL, *c = strtok_r(ctrl, " \n", &save); c; c = strtok_r(NULL, " \n", &save)) {
		snprintf(line, sizeof(line), "+%s", c);
		if (write(fd, line, strlen(line)) < 0)
			dprintf(2, "minirun-init: enable cgroup controller %s: %s\n", c, strerror(errno));
	}
	close(fd);
}

static void mount_basics(void)
{
	do_mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, 1);
	do_mount("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, 1);
	do_mount("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755", 0); /* EBUSY: already there */
	do_mount("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "gid=5,mode=620,ptmxmode=666", 0);
	do_mount("shm", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777", 0);
	setup_cgroup2();
}

int main(void)
{
	char *argv[MAX_ITEMS], *envp[MAX_ITEMS], *mods[256];
	const char *hostname = "minirun-vm", *cwd = "/", *root9p = NULL;
	int argc = 0, envc = 0, nmods = 0, rw = 0;
	struct utsname uts;
	size_t len;
	char *cfg;
	pid_t child;
	int status;

	/* The kernel gave us /dev/console from the initramfs as fds 0-2; /dev itself comes next. */
	mkdir("/dev", 0755);
	mount("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755");
	open_ctl();
	uname(&uts);
	ctl_write("minirun:init %s", uts.release);

	cfg = read_config(&len);
	for (size_t i = 0; i < len;) {
		char *key = cfg + i, *val;

		i += strlen(key) + 1;
		if (i >= len)
			break;
		val = cfg + i;
		i += strlen(val) + 1;
		if (!strcmp(key, "arg") && argc < MAX_ITEMS - 1)
			argv[argc++] = val;
		else if (!strcmp(key, "env") && envc < MAX_ITEMS - 1)
			envp[envc++] = val;
		else if (!strcmp(key, "mod") && nmods < 256)
			mods[nmods++] = val;
		else if (!strcmp(key, "hostname"))
			hostname = val;
		else if (!strcmp(key, "cwd"))
			cwd = val;
		else if (!strcmp(key, "root9p"))
			root9p = val;
		else if (!strcmp(key, "rw"))
			rw = !strcmp(val, "1");
		else if (!strcmp(key, "off"))
			power_off = strcmp(val, "reboot") != 0;
	}
	argv[argc] = NULL;
	envp[envc] = NULL;
	if (argc == 0)
		die("no command in %s", CONFIG_PATH);

	disable_module_autoload();
	for (int i = 0; i < nmods; i++)
		load_module(mods[i]);

	if (root9p) {
		/* Mount the host directory and make it "/" (what switch_root does, minus deleting the initramfs). */
		char opts[256];

		snprintf(opts, sizeof(opts), "trans=virtio,version=9p2000.L,access=any,msize=512000,cache=%s",
			 rw ? "none" : "loose");
		mkdir("/newroot", 0755);
		if (mount(root9p, "/newroot", "9p", rw ? 0 : MS_RDONLY, opts) < 0)
			die("mount 9p tag %s: %s", root9p, strerror(errno));
		if (chdir("/newroot") < 0 || mount(".", "/", NULL, MS_MOVE, NULL) < 0 || chroot(".") < 0)
			die("switch to the 9p root: %s", strerror(errno));
		chdir("/");
		/* The shared root may be read-only: give the guest its own writable /tmp and /run,
		 * keeping the shared /tmp reachable as /run/host/tmp (a checkout may live there). */
		do_mount("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755", 0);
		mkdir("/run/host", 0755);
		do_mount("/tmp", "/run/host/tmp", NULL, MS_BIND, NULL, 0);
		do_mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777", 0);
	}
	mount_basics();

	if (sethostname(hostname, strlen(hostname)) < 0)
		dprintf(2, "minirun-init: sethostname: %s\n", strerror(errno));
	raw_output(1);

	child = fork();
	if (child < 0)
		die("fork: %s", strerror(errno));
	if (child == 0) {
		sigset_t all;

		sigemptyset(&all);
		sigprocmask(SIG_SETMASK, &all, NULL);
		setsid();
		ioctl(0, TIOCSCTTY, 0);
		if (chdir(cwd) < 0) {
			dprintf(2, "minirun-init: chdir %s: %s\n", cwd, strerror(errno));
			ctl_write("minirun:exit 126");
			_exit(126);
		}
		environ = envp;
		ctl_write("minirun:start");
		execvp(argv[0], argv);
		dprintf(2, "minirun-init: exec %s: %s\n", argv[0], strerror(errno));
		_exit(errno == ENOENT ? 127 : 126);
	}

	/* PID 1 reaps every orphan; only COMMAND's status is reported. */
	for (;;) {
		pid_t pid = waitpid(-1, &status, 0);

		if (pid < 0 && errno == EINTR)
			continue;
		if (pid < 0)
			die("waitpid: %s", strerror(errno));
		if (pid == child)
			break;
	}
	if (WIFSIGNALED(status))
		ctl_write("minirun:signal %d", WTERMSIG(status));
	else
		ctl_write("minirun:exit %d", WEXITSTATUS(status));
	kill(-1, SIGKILL);
	halt_now();
	return 0;
}
