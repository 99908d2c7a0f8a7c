/*
 * console.c - the terminal of a container process (`run -t`, `exec -t`, OCI
 * `terminal: true` with `--console-socket`): the one place a pty is made.
 *
 * The pty comes from the container's own devpts instance (mounted with
 * newinstance,ptmxmode=0666 by minirun/mounts.py), so this runs inside the
 * container's root, in the process about to become COMMAND, before it drops
 * its privileges: `tty` then prints a /dev/pts/N that exists inside, and the
 * host's devpts is never touched. The master goes to whoever relays the
 * terminal over a unix socket with SCM_RIGHTS, the pty's path as the message:
 * exactly what runc sends to an OCI console socket, so minirun's own
 * socketpair and an OCI --console-socket are served by the same code.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <termios.h>
#include <unistd.h>

#include "minirun.h"

#ifndef TIOCGPTPEER
#define TIOCGPTPEER _IO('T', 0x41)
#endif

static int send_master(int sock, int master, const char *name)
{
    char control[CMSG_SPACE(sizeof(int))];
    struct iovec iov = {.iov_base = (void *)name, .iov_len = strlen(name)};
    struct msghdr msg;
    struct cmsghdr *cmsg;
    ssize_t n;

    memset(&msg, 0, sizeof(msg));
    memset(control, 0, sizeof(control));
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cmsg), &master, sizeof(int));
    do
        n = sendmsg(sock, &msg, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    return n < 0 ? -1 : 0;
}

/* runc binds the pty onto /dev/console (a file it creates) rather than making a
 * 5:1 node: /dev/console then names this container's terminal, not the host's. */
static int bind_console(const char *pts)
{
    int fd = open("/dev/console", O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0666);

    if (fd < 0)
        return -1;
    close(fd);
    return mount(pts, "/dev/console", NULL, MS_BIND, NULL);
}

int mr_setup_console(const struct mr_spawn_req *req, char *step)
{
    struct winsize ws = {.ws_row = req->console_rows, .ws_col = req->console_cols};
    char name[64];
    unsigned int n;
    int unlock = 0, master, slave = -1, err;

    master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (master < 0)
        return mr_step(step, errno, "terminal: open(/dev/ptmx)");
    if (ioctl(master, TIOCSPTLCK, &unlock) < 0 || ioctl(master, TIOCGPTN, &n) < 0) {
        err = mr_step(step, errno, "terminal: unlock the pty");
        goto fail;
    }
    snprintf(name, sizeof(name), "/dev/pts/%u", n);
    /* TIOCGPTPEER opens the peer of this very master, whatever the container may
     * have put at /dev/pts; the path is the fallback for kernels before 4.13. */
    slave = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (slave < 0)
        slave = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (slave < 0) {
        err = mr_step(step, errno, "terminal: open(%s)", name);
        goto fail;
    }
    if ((ws.ws_row || ws.ws_col) && ioctl(slave, TIOCSWINSZ, &ws) < 0) {
        err = mr_step(step, errno, "terminal: set the window size");
        goto fail;
    }
    /* COMMAND may open its terminal by name (ttyname, /dev/tty) as its own user. */
    if ((req->uid || req->gid) && fchown(slave, req->uid, req->gid) < 0) {
        err = mr_step(step, errno, "terminal: chown(%s)", name);
        goto fail;
    }
    if (req->console_bind && bind_console(name) < 0) {
        err = mr_step(step, errno, "terminal: bind %s onto /dev/console", name);
        goto fail;
    }
    if (send_master(req->console_fd, master, name) < 0) {
        err = mr_step(step, errno, "terminal: send the pty master");
        goto fail;
    }
    close(master);
    close(req->console_fd);
    /* A session of its own with the pty as controlling terminal: the line
     * discipline then sends Ctrl-C, Ctrl-Z and Ctrl-\ to COMMAND's foreground
     * job, and job control works inside. A process that leads its session already (an OCI
     * container's PID 1, after the init's setsid) keeps it: it has no terminal yet. */
    if ((getsid(0) != getpid() && setsid() < 0) || ioctl(slave, TIOCSCTTY, 0) < 0)
        return mr_step(step, errno, "terminal: make %s the controlling terminal", name);
    for (int fd = 0; fd < 3; fd++)
        if (dup2(slave, fd) < 0)
            return mr_step(step, errno, "terminal: dup2(%s)", name);
    if (slave > 2)
        close(slave);
    return 0;
fail:
    close(master);
    if (slave >= 0)
        close(slave);
    return err;
}
