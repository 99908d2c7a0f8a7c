/*
 * attach.c - a container's terminal on the host side: the one pty relay and both ends of
 * the attach protocol (minirun.h: MR_ATTACH_INPUT, MR_ATTACH_RESIZE).
 *
 *   `run -t`, `exec -t`    minirun/tty.py calls mr_tty_relay through cffi: the pty master
 *                          to minirun's own terminal and its keystrokes back;
 *   minirun-shim           (shim.c) a detached container's pty: its output to the log and to
 *                          every attached client, their packets (mr_attach_packet) to the pty;
 *   `minirun attach`       tty.py calls mr_attach_client: the user's terminal to one such
 *                          client connection, with docker's detach keys.
 * Every fd a poll here reports is acted on, and one that fails is dropped from the poll:
 * nothing is left ready and unread, so no loop spins.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <termios.h>
#include <unistd.h>

#include "minirun.h"

#define DRAIN_LIMIT (1 << 20) /* at exit, read at most this much more from a pty still being written */

void mr_pty_init(struct mr_pty *p, int master)
{
    p->master = master;
    p->hung_up = master < 0;
    p->n_pending = 0;
    if (master >= 0)
        fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK);
}

static int pty_fd(const struct mr_pty *p)
{
    return p->hung_up ? -1 : p->master;
}

void mr_pty_flush(struct mr_pty *p)
{
    ssize_t n;

    if (!p->n_pending || p->hung_up)
        return;
    n = write(p->master, p->pending, p->n_pending);
    if (n > 0) {
        memmove(p->pending, p->pending + n, p->n_pending - (size_t)n);
        p->n_pending -= (size_t)n;
    } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
        p->n_pending = 0;
    }
}

void mr_pty_input(struct mr_pty *p, const char *buf, size_t len)
{
    size_t room = sizeof(p->pending) - p->n_pending;

    if (p->hung_up)
        return;
    if (len > room)
        len = room; /* input beyond a full buffer is lost, as on a real terminal */
    memcpy(p->pending + p->n_pending, buf, len);
    p->n_pending += len;
    mr_pty_flush(p);
}

ssize_t mr_pty_output(struct mr_pty *p, mr_sink *sink, void *ctx)
{
    char buf[MR_ATTACH_CHUNK];
    ssize_t n;

    if (p->hung_up)
        return -1;
    n = read(p->master, buf, sizeof(buf));
    if (n > 0) {
        sink(ctx, buf, (size_t)n);
        return n;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return 0;
    p->hung_up = 1; /* EIO: every holder of the pty closed it; the exit report follows */
    p->n_pending = 0;
    return -1;
}

/* A non-blocking read of a pty master first waits for the kernel's flip-buffer work, so
 * nothing read (EAGAIN) means nothing is left. */
void mr_pty_drain(struct mr_pty *p, mr_sink *sink, void *ctx)
{
    for (size_t total = 0; total < DRAIN_LIMIT;) {
        ssize_t got = mr_pty_output(p, sink, ctx);

        if (got <= 0)
            return;
        total += (size_t)got;
    }
}

void mr_attach_packet(struct mr_pty *p, const char *buf, size_t len)
{
    if (len >= 1 && buf[0] == MR_ATTACH_INPUT) {
        mr_pty_input(p, buf + 1, len - 1);
    } else if (len == 1 + sizeof(struct mr_attach_size) && buf[0] == MR_ATTACH_RESIZE && !p->hung_up) {
        struct mr_attach_size size;
        struct winsize ws = {0};

        memcpy(&size, buf + 1, sizeof(size));
        ws.ws_row = size.rows;
        ws.ws_col = size.cols;
        ioctl(p->master, TIOCSWINSZ, &ws); /* the kernel sends SIGWINCH to the pty's foreground job */
    }
}

int mr_write_all(int fd, const char *buf, size_t len)
{
    while (len) {
        ssize_t n = write(fd, buf, len);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return 0;
        buf += n;
        len -= (size_t)n;
    }
    return 1;
}

/* Python's signal wakeup fd: empty it and return to let the handlers run. */
static void drain_wakeups(int fd)
{
    char buf[64];

    while (read(fd, buf, sizeof(buf)) > 0)
        ;
}

/* One read of the user's input; -1 once it ended (EOF, a terminal that hung up: EIO). */
static ssize_t read_input(int fd, char *buf, size_t size)
{
    ssize_t n = read(fd, buf, size);

    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return 0;
    return n > 0 ? n : -1;
}

static void to_out(void *ctx, const char *buf, size_t len)
{
    struct mr_tty_relay *t = ctx;

    t->out_ok = t->out_ok && mr_write_all(t->out_fd, buf, len);
}

int mr_tty_relay(struct mr_tty_relay *t, int until_fd)
{
    char buf[MR_ATTACH_CHUNK];

    for (;;) {
        struct pollfd fds[4] = {
            {.fd = until_fd, .events = POLLIN},
            {.fd = t->wake_fd, .events = POLLIN},
            {.fd = pty_fd(&t->pty), .events = POLLIN | (t->pty.n_pending ? POLLOUT : 0)},
            {.fd = t->in_fd, .events = POLLIN},
        };
        ssize_t n;

        if (poll(fds, 4, -1) < 0)
            return errno == EINTR ? 0 : -errno;
        if (fds[0].revents) {
            mr_pty_drain(&t->pty, to_out, t);
            return 1;
        }
        if (fds[1].revents) {
            drain_wakeups(t->wake_fd);
            return 0;
        }
        if (fds[2].revents & ~POLLOUT)
            mr_pty_output(&t->pty, to_out, t);
        if (fds[3].revents) {
            if ((n = read_input(t->in_fd, buf, sizeof(buf))) < 0)
                t->in_fd = -1; /* no more input: the pty keeps its output coming */
            else
                mr_pty_input(&t->pty, buf, (size_t)n);
        }
        mr_pty_flush(&t->pty);
    }
}

size_t mr_detach_filter(const char *keys, int n_keys, int *held, const char *in, size_t len, char *out,
                        int *detached)
{
    size_t n = 0;

    *detached = 0;
    for (size_t i = 0; i < len; i++) {
        if (n_keys && in[i] == keys[*held]) {
            if (++*held == n_keys) {
                *held = 0;
                *detached = 1;
                return n;
            }
            continue;
        }
        memcpy(out + n, keys, (size_t)*held); /* the sequence broke: what was held goes on */
        n += (size_t)*held;
        *held = 0;
        if (n_keys && in[i] == keys[0])
            *held = 1;
        else
            out[n++] = in[i];
    }
    return n;
}

int mr_attach_send_size(int sock, unsigned short rows, unsigned short cols)
{
    char packet[1 + sizeof(struct mr_attach_size)] = {MR_ATTACH_RESIZE};
    struct mr_attach_size size = {rows, cols};

    memcpy(packet + 1, &size, sizeof(size));
    return send(sock, packet, sizeof(packet), MSG_NOSIGNAL) < 0 ? -errno : 0;
}

int mr_attach_client(struct mr_attach_client *c)
{
    char buf[1 << 17], typed[MR_ATTACH_CHUNK], packet[1 + MR_ATTACH_CHUNK] = {MR_ATTACH_INPUT};

    if (c->n_keys < 0 || c->n_keys >= MR_ATTACH_CHUNK / 2)
        return -EINVAL;
    for (;;) {
        struct pollfd fds[3] = {
            {.fd = c->sock, .events = POLLIN},
            {.fd = c->wake_fd, .events = POLLIN},
            {.fd = c->in_fd, .events = POLLIN},
        };
        ssize_t n;

        if (poll(fds, 3, -1) < 0)
            return errno == EINTR ? 0 : -errno;
        if (fds[0].revents) {
            n = recv(c->sock, buf, sizeof(buf), MSG_DONTWAIT);
            if (n <= 0 && !(n < 0 && (errno == EAGAIN || errno == EINTR)))
                return 2;
            if (n > 0)
                mr_write_all(c->out_fd, buf, (size_t)n);
        }
        if (fds[1].revents) {
            drain_wakeups(c->wake_fd);
            return 0;
        }
        if (fds[2].revents) {
            int detached;
            size_t len;

            /* with the keys held back from before, a packet's data stays within MR_ATTACH_CHUNK */
            if ((n = read_input(c->in_fd, typed, sizeof(typed) - (size_t)c->n_keys)) < 0) {
                c->in_fd = -1; /* no more input: the output still comes */
                continue;
            }
            len = mr_detach_filter(c->keys, c->n_keys, &c->held, typed, (size_t)n, packet + 1, &detached);
            if (len && send(c->sock, packet, 1 + len, MSG_NOSIGNAL) < 0 && errno != EINTR)
                return 2;
            if (detached)
                return 1;
        }
    }
}
