/*
 * shim.c - minirun-shim, what stays on the host beside a detached container.
 *
 *     minirun-shim REPORT_FD INIT_PID LOG_FD MASTER_FD LISTEN_FD -- FINISH ARGS...
 *
 * The Python supervisor (minirun/lifecycle.py) starts the container, then execs
 * this static program, as conmon stays beside runc: idle, a container costs its
 * few pages instead of an interpreter. It waits for the init's exit report on
 * REPORT_FD (struct mr_report) and reaps INIT_PID, its child. With a terminal
 * (MASTER_FD >= 0) it also relays the pty: output to LOG_FD and to every client
 * of the listening SOCK_SEQPACKET socket LISTEN_FD (`minirun attach`), whose
 * packets are b"d" + input or b"w" + rows, columns (two native unsigned shorts).
 * Once the container is gone it execs FINISH ARGS... STATUS (the wait status):
 * Python again, for the cleanup (cgroups, network, state; lifecycle.finish).
 * Every fd the finish needs, the state lock among them, passes through both execs.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "minirun.h"

#define CHUNK 16384
#define MAX_CLIENTS 16
#define DRAIN_LIMIT (1 << 20) /* at exit, read at most this much more from a pty still being written */

extern char **environ;

static int log_fd = -1, master = -1, listener = -1;
static int clients[MAX_CLIENTS];
static int n_clients;
static char pending[CHUNK];
static size_t n_pending;

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

/* Relay until the report fd is readable: the init reported COMMAND's exit, or died. */
static void relay_until(int report_fd)
{
    for (;;) {
        struct pollfd fds[3 + MAX_CLIENTS];
        int n = 0;

        fds[n++] = (struct pollfd){.fd = report_fd, .events = POLLIN};
        fds[n++] = (struct pollfd){.fd = master, .events = POLLIN | (n_pending ? POLLOUT : 0)};
        fds[n++] = (struct pollfd){.fd = listener, .events = POLLIN};
        for (int i = 0; i < n_clients; i++)
            fds[n++] = (struct pollfd){.fd = clients[i], .events = POLLIN};
        if (poll(fds, (nfds_t)n, -1) < 0)
            continue;
        if (fds[0].revents)
            return;
        if (fds[1].revents & (POLLIN | POLLHUP | POLLERR) && relay_master() < 0)
            master = -1; /* poll ignores a negative fd from now on */
        if (fds[1].revents & POLLOUT)
            flush_input();
        if (fds[2].revents & POLLIN) {
            int c = accept4(listener, NULL, NULL, SOCK_CLOEXEC);

            if (c >= 0 && n_clients < MAX_CLIENTS)
                clients[n_clients++] = c;
            else if (c >= 0)
                close(c);
        }
        for (int i = n_clients - 1; i >= 0; i--) /* clients came after fds[2], in order */
            if (fds[3 + i].revents)
                client_packet(i);
        flush_input();
    }
}

static int parse_fd(const char *s)
{
    char *end;
    long v = strtol(s, &end, 10);

    return *end || v < -1 || v > 1 << 20 ? -2 : (int)v;
}

int main(int argc, char **argv)
{
    struct mr_report rep;
    int report_fd, init_pid, status = 0, reported = 0;
    char status_arg[16];
    ssize_t n;

    if (argc < 8 || strcmp(argv[6], "--") != 0) {
        fprintf(stderr, "usage: minirun-shim REPORT_FD INIT_PID LOG_FD MASTER_FD LISTEN_FD -- FINISH...\n");
        return 125;
    }
    report_fd = parse_fd(argv[1]);
    init_pid = parse_fd(argv[2]);
    log_fd = parse_fd(argv[3]);
    master = parse_fd(argv[4]);
    listener = parse_fd(argv[5]);
    if (report_fd < 0 || init_pid <= 0 || log_fd < -1 || master < -1 || listener < -1)
        return 125;

    if (master >= 0) {
        fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK);
        relay_until(report_fd);
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
    if (master >= 0)
        close(master);
    if (listener >= 0)
        close(listener);
    close(report_fd);

    snprintf(status_arg, sizeof(status_arg), "%d", status);
    {
        char **finish = calloc((size_t)(argc - 7 + 2), sizeof(char *));

        if (!finish)
            return 125;
        for (int i = 7; i < argc; i++)
            finish[i - 7] = argv[i];
        finish[argc - 7] = status_arg;
        execve(finish[0], finish, environ);
        perror("minirun-shim: exec of the finish step");
    }
    return 125;
}
