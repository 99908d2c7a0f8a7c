/*
 * shim.c - minirun-shim, what stays on the host beside a detached container.
 *
 *     minirun-shim REPORT_FD INIT_PID LOG_FD MASTER_FD LISTEN_FD [-p FD:ADDR:PORT]... -- FINISH ARGS...
 *
 * The Python supervisor (minirun/lifecycle.py) starts the container, then execs
 * this static program, as conmon stays beside runc: idle, a container costs its
 * few pages instead of an interpreter. It waits for the init's exit report on
 * REPORT_FD (struct mr_report) and reaps INIT_PID, its child. With a terminal
 * (MASTER_FD >= 0) it also relays the pty: output to LOG_FD and to every client
 * of the listening SOCK_SEQPACKET socket LISTEN_FD (`minirun attach`), whose
 * packets are b"d" + input or b"w" + rows, columns (two native unsigned shorts).
 * Each -p is a published port (-p HOSTPORT:CTRPORT): FD listens on the host's
 * loopback, and every connection is relayed to ADDR:PORT, the container's
 * address on the bridge, as minirun/portproxy.py does for a foreground run.
 * SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 sent to the shim are
 * passed to the init (and so to COMMAND), as the Python supervisor did.
 * Once the container is gone it execs FINISH ARGS... STATUS (the wait status):
 * Python again, for the cleanup (cgroups, network, state; lifecycle.finish).
 * Every fd the finish needs, the state lock among them, passes through both execs.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "minirun.h"

#define CHUNK 16384
#define MAX_CLIENTS 16
#define DRAIN_LIMIT (1 << 20) /* at exit, read at most this much more from a pty still being written */
#define MAX_PORTS 32
static const int FORWARDED[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};
#define MAX_CONNS 64

extern char **environ;

static int log_fd = -1, master = -1, listener = -1, sig_fd = -1;
static pid_t init_pid;
static int clients[MAX_CLIENTS];
static int n_clients;
static char pending[CHUNK];
static size_t n_pending;

/* Published ports: a listener each, and the connections relayed through them. A
 * connection is two sockets and a buffer per direction. EOF from one side is
 * passed on as a shutdown(SHUT_WR) of the other once its buffer is delivered (a
 * client that sends a request and half-closes still gets the answer); the
 * connection goes when both directions are done, or at the first error. */
struct port {
    int fd;
    struct sockaddr_in to;
};
struct conn {
    int fd[2];      /* 0: the client on the host's loopback, 1: the container */
    int connecting; /* fd[1]'s non-blocking connect is under way */
    char buf[2][CHUNK]; /* buf[i]: read from fd[i], to be written to fd[1 - i] */
    size_t len[2], off[2];
    int eof[2];     /* fd[i] said EOF: nothing more to read from it */
    int shut[2];    /* we shut down writing to fd[i]: that direction is done */
};
static struct port ports[MAX_PORTS];
static int n_ports;
static struct conn *conns[MAX_CONNS];
static int n_conns;

static void write_all(int fd, const char *buf, size_t len)
{
    while (len) {
        ssize_t n = write(fd, buf, len);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return; /* a full disk loses log, never the container */
        buf += n;
        len -= (size_t)n;
    }
}

static void drop_client(int i)
{
    close(clients[i]);
    clients[i] = clients[--n_clients];
}

static void output(const char *buf, size_t len)
{
    if (log_fd >= 0)
        write_all(log_fd, buf, len);
    for (int i = n_clients - 1; i >= 0; i--) /* a client that does not keep up loses output: the log has it */
        if (send(clients[i], buf, len, MSG_DONTWAIT | MSG_NOSIGNAL) < 0 && errno != EAGAIN && errno != EINTR)
            drop_client(i);
}

/* > 0 bytes relayed, 0 nothing there now, -1 no process holds the pty any more (EIO). */
static ssize_t relay_master(void)
{
    char buf[CHUNK];
    ssize_t n = read(master, buf, sizeof(buf));

    if (n > 0) {
        output(buf, (size_t)n);
        return n;
    }
    return n < 0 && (errno == EAGAIN || errno == EINTR) ? 0 : -1;
}

static void client_packet(int i)
{
    char buf[CHUNK + 1];
    ssize_t n = recv(clients[i], buf, sizeof(buf), MSG_DONTWAIT);

    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        drop_client(i);
        return;
    }
    if (buf[0] == 'd' && master >= 0) {
        size_t room = sizeof(pending) - n_pending, len = (size_t)n - 1;

        if (len > room)
            len = room; /* input beyond a full buffer is lost, as on a real terminal */
        memcpy(pending + n_pending, buf + 1, len);
        n_pending += len;
    } else if (buf[0] == 'w' && n == 1 + 2 * sizeof(unsigned short) && master >= 0) {
        unsigned short size[2];
        struct winsize ws = {0};

        memcpy(size, buf + 1, sizeof(size));
        ws.ws_row = size[0];
        ws.ws_col = size[1];
        ioctl(master, TIOCSWINSZ, &ws);
    }
}

static void flush_input(void)
{
    ssize_t n;

    if (!n_pending || master < 0)
        return;
    n = write(master, pending, n_pending);
    if (n > 0) {
        memmove(pending, pending + n, n_pending - (size_t)n);
        n_pending -= (size_t)n;
    } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
        n_pending = 0;
    }
}

static void drop_conn(int i)
{
    close(conns[i]->fd[0]);
    close(conns[i]->fd[1]);
    free(conns[i]);
    conns[i] = conns[--n_conns];
}

static void accept_conn(const struct port *port)
{
    int client = accept4(port->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK), up;
    struct conn *c;

    if (client < 0)
        return;
    if (n_conns == MAX_CONNS || !(c = calloc(1, sizeof(*c)))) {
        close(client);
        return;
    }
    up = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (up < 0 || (connect(up, (const struct sockaddr *)&port->to, sizeof(port->to)) < 0 && errno != EINPROGRESS)) {
        if (up >= 0)
            close(up);
        close(client);
        free(c);
        return;
    }
    c->fd[0] = client;
    c->fd[1] = up;
    c->connecting = 1;
    conns[n_conns++] = c;
}

/* Once everything read from fd[from] is delivered after its EOF, pass the EOF on. */
static void pass_eof(struct conn *c, int from)
{
    if (c->eof[from] && !c->len[from] && !c->shut[1 - from]) {
        shutdown(c->fd[1 - from], SHUT_WR);
        c->shut[1 - from] = 1;
    }
}

/* One side of a connection is ready (revents for fd[side]); 0, or -1 to drop the connection. */
static int pump(struct conn *c, int side, short revents)
{
    int other = 1 - side;

    if (side == 1 && c->connecting) {
        int err = 0;
        socklen_t len = sizeof(err);

        if (!(revents & (POLLOUT | POLLERR | POLLHUP)))
            return 0;
        if (getsockopt(c->fd[1], SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err)
            return -1; /* nothing listens in the container: the client sees the connection close */
        c->connecting = 0;
        return 0;
    }
    if (revents & POLLERR)
        return -1;
    if (revents & POLLOUT && c->len[other]) { /* what the other side sent, onward to this one */
        ssize_t n = send(c->fd[side], c->buf[other] + c->off[other], c->len[other] - c->off[other],
                         MSG_NOSIGNAL | MSG_DONTWAIT);

        if (n < 0 && errno != EAGAIN && errno != EINTR)
            return -1;
        if (n > 0 && (c->off[other] += (size_t)n) == c->len[other])
            c->off[other] = c->len[other] = 0;
        pass_eof(c, other);
    }
    if (revents & (POLLIN | POLLHUP) && !c->len[side] && !c->eof[side]) {
        ssize_t n = recv(c->fd[side], c->buf[side], CHUNK, MSG_DONTWAIT);

        if (n < 0 && errno != EAGAIN && errno != EINTR)
            return -1;
        if (n > 0)
            c->len[side] = (size_t)n;
        if (n == 0) {
            c->eof[side] = 1;
            pass_eof(c, side);
        }
    }
    return c->shut[0] && c->shut[1] ? -1 : 0;
}

/* What poll should wait for on one side of a connection. */
static short conn_events(const struct conn *c, int side)
{
    if (c->connecting)
        return side == 1 ? POLLOUT : 0;
    return (short)((c->len[side] || c->eof[side] ? 0 : POLLIN) | (c->len[1 - side] ? POLLOUT : 0));
}

/* SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 sent to the shim go to the
 * container's init, which passes them to COMMAND, as the Python supervisor did:
 * the container then ends its own way and the finish step records it. */
static void forward_signals(void)
{
    struct signalfd_siginfo si;

    while (read(sig_fd, &si, sizeof(si)) == (ssize_t)sizeof(si))
        kill(init_pid, (int)si.ssi_signo);
}

/* Relay until the report fd is readable: the init reported COMMAND's exit, or died.
 * poll's fds: the report fd, the forwarded signals, the pty master, the attach
 * listener, its clients, the published ports' listeners, then both sides of each
 * connection. */
static void relay_until(int report_fd)
{
    static struct pollfd fds[4 + MAX_CLIENTS + MAX_PORTS + 2 * MAX_CONNS];

    for (;;) {
        int n = 0, first_client, first_port, first_conn, conns_now = n_conns, clients_now = n_clients;

        fds[n++] = (struct pollfd){.fd = report_fd, .events = POLLIN};
        fds[n++] = (struct pollfd){.fd = sig_fd, .events = POLLIN};
        fds[n++] = (struct pollfd){.fd = master, .events = POLLIN | (n_pending ? POLLOUT : 0)};
        fds[n++] = (struct pollfd){.fd = listener, .events = POLLIN};
        first_client = n;
        for (int i = 0; i < n_clients; i++)
            fds[n++] = (struct pollfd){.fd = clients[i], .events = POLLIN};
        first_port = n;
        for (int i = 0; i < n_ports; i++)
            fds[n++] = (struct pollfd){.fd = ports[i].fd, .events = POLLIN};
        first_conn = n;
        for (int i = 0; i < conns_now; i++)
            for (int side = 0; side < 2; side++) {
                short events = conn_events(conns[i], side);

                /* nothing to read from it (done, or our buffer is full) nor to write to it: not
                 * polled, or a hang-up (reported whatever we ask) would spin */
                fds[n++] = (struct pollfd){.fd = events ? conns[i]->fd[side] : -1, .events = events};
            }
        if (poll(fds, (nfds_t)n, -1) < 0)
            continue;
        if (fds[0].revents)
            return;
        if (fds[1].revents)
            forward_signals();
        if (fds[2].revents & (POLLIN | POLLHUP | POLLERR) && relay_master() < 0) {
            close(master); /* no process holds the pty any more */
            master = -1;   /* poll ignores a negative fd from now on */
        }
        if (fds[2].revents & POLLOUT)
            flush_input();
        if (fds[3].revents & POLLIN) {
            int c = accept4(listener, NULL, NULL, SOCK_CLOEXEC);

            if (c >= 0 && n_clients < MAX_CLIENTS)
                clients[n_clients++] = c;
            else if (c >= 0)
                close(c);
        }
        /* Clients polled this turn, by fd: output() may have dropped some already, and
         * drop_client moves the last one into the gap. */
        for (int k = clients_now - 1; k >= 0; k--) {
            if (!fds[first_client + k].revents)
                continue;
            for (int i = 0; i < n_clients; i++)
                if (clients[i] == fds[first_client + k].fd) {
                    client_packet(i);
                    break;
                }
        }
        /* connections from the end too, for the same reason; new ones (accepted below) wait a turn */
        for (int i = conns_now - 1; i >= 0; i--) {
            struct pollfd *pair = &fds[first_conn + 2 * i];

            if ((pair[0].revents && pump(conns[i], 0, pair[0].revents) < 0) ||
                (pair[1].revents && pump(conns[i], 1, pair[1].revents) < 0))
                drop_conn(i);
        }
        for (int i = 0; i < n_ports; i++)
            if (fds[first_port + i].revents & POLLIN)
                accept_conn(&ports[i]);
        flush_input();
    }
}

/* A decimal in [-1, max], else -2. */
static int parse_int(const char *s, long max)
{
    char *end;
    long v = strtol(s, &end, 10);

    return !*s || *end || v < -1 || v > max ? -2 : (int)v;
}

int main(int argc, char **argv)
{
    struct mr_report rep;
    int report_fd, status = 0, reported = 0, finish_at = 6;
    char status_arg[16];
    ssize_t n;

    for (; finish_at + 1 < argc && strcmp(argv[finish_at], "-p") == 0 && n_ports < MAX_PORTS; finish_at += 2) {
        struct port *port = &ports[n_ports++];
        char addr[INET_ADDRSTRLEN];
        unsigned int to_port;
        int fd, used = 0;

        if (sscanf(argv[finish_at + 1], "%d:%15[0-9.]:%u%n", &fd, addr, &to_port, &used) != 3 ||
            argv[finish_at + 1][used] || fd < 0 || to_port > 65535 || inet_pton(AF_INET, addr, &port->to.sin_addr) != 1)
            return 125;
        port->fd = fd;
        port->to.sin_family = AF_INET;
        port->to.sin_port = htons((unsigned short)to_port);
    }
    if (argc < finish_at + 2 || strcmp(argv[finish_at], "--") != 0) {
        fprintf(stderr, "usage: minirun-shim REPORT_FD INIT_PID LOG_FD MASTER_FD LISTEN_FD [-p FD:ADDR:PORT]... "
                "-- FINISH...\n");
        return 125;
    }
    report_fd = parse_int(argv[1], 1 << 20);
    init_pid = parse_int(argv[2], INT_MAX); /* pid_max goes up to 2^22 */
    log_fd = parse_int(argv[3], 1 << 20);
    master = parse_int(argv[4], 1 << 20);
    listener = parse_int(argv[5], 1 << 20);
    if (report_fd < 0 || init_pid <= 0 || log_fd < -1 || master < -1 || listener < -1)
        return 125;

    {
        sigset_t forwarded;

        sigemptyset(&forwarded);
        for (size_t i = 0; i < sizeof(FORWARDED) / sizeof(FORWARDED[0]); i++)
            sigaddset(&forwarded, FORWARDED[i]);
        /* kept blocked through the exec of the finish step, which must not die half-way */
        sigprocmask(SIG_BLOCK, &forwarded, NULL);
        sig_fd = signalfd(-1, &forwarded, SFD_CLOEXEC | SFD_NONBLOCK);
        signal(SIGCHLD, SIG_DFL); /* an inherited SIG_IGN would make waitpid below fail */
    }
    if (master >= 0)
        fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK);
    for (int i = 0; i < n_ports; i++)
        fcntl(ports[i].fd, F_SETFL, fcntl(ports[i].fd, F_GETFL) | O_NONBLOCK);
    relay_until(report_fd);
    if (master >= 0) {
        for (size_t total = 0; master >= 0 && total < DRAIN_LIMIT;) { /* what COMMAND wrote just before */
            ssize_t got = relay_master();

            if (got <= 0)
                break;
            total += (size_t)got;
        }
    }
    do
        n = recv(report_fd, &rep, sizeof(rep), 0);
    while (n < 0 && errno == EINTR);
    if (n == (ssize_t)sizeof(rep) && rep.kind == MR_REPORT_EXITED) {
        status = rep.status;
        reported = 1;
    }
    {
        int init_status = 0;

        while (waitpid(init_pid, &init_status, 0) < 0 && errno == EINTR)
            ;
        if (!reported)
            status = init_status; /* killed before it could report: its own status */
    }
    for (int i = n_clients - 1; i >= 0; i--) /* attached clients see the end */
        drop_client(i);
    for (int i = n_conns - 1; i >= 0; i--) /* and so do the published ports' */
        drop_conn(i);
    for (int i = 0; i < n_ports; i++)
        close(ports[i].fd);
    if (master >= 0)
        close(master);
    if (listener >= 0)
        close(listener);
    close(report_fd);

    snprintf(status_arg, sizeof(status_arg), "%d", status);
    {
        int first = finish_at + 1;
        char **finish = calloc((size_t)(argc - first + 2), sizeof(char *));

        if (!finish)
            return 125;
        for (int i = first; i < argc; i++)
            finish[i - first] = argv[i];
        finish[argc - first] = status_arg;
        execve(finish[0], finish, environ);
        perror("minirun-shim: exec of the finish step");
    }
    return 125;
}
