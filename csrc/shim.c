/*
 * shim.c - minirun-shim, what stays on the host beside a detached container.
 *
 *     minirun-shim REPORT_FD INIT_PID LOG_DIR_FD MASTER_FD LISTEN_FD [-o OUT_FD] [-l MAX_SIZE:MAX_FILES]
 *                  [-s STATE_DIR_FD] [-p FD:ADDR:PORT]... -- FINISH ARGS...
 *
 * The Python supervisor (minirun/lifecycle.py) starts the container, then execs
 * this static program, as conmon stays beside runc: idle, a container costs its
 * few pages instead of an interpreter. It waits for the init's exit report on
 * REPORT_FD (struct mr_report) and reaps INIT_PID, its child. With a terminal
 * (MASTER_FD >= 0) it also relays the pty (csrc/attach.c): output to the log and
 * to every client of the listening SOCK_SEQPACKET socket LISTEN_FD (`minirun
 * attach`), whose packets attach.c applies (the protocol is in minirun.h).
 * Without one, COMMAND's stdout and stderr come on the pipe OUT_FD, to the log.
 * The log is the file "log" in the directory LOG_DIR_FD (on disk, not /run), and
 * the shim is its only writer: past MAX_SIZE bytes (0: no bound) it is rotated to
 * log.1, log.1 to log.2 ... keeping MAX_FILES files in all, as docker's json-file
 * driver does with --log-opt max-size/max-file (max-file 1: the file is emptied).
 * Each -p is a published port: FD listens on the host, and every connection is
 * relayed to ADDR:PORT, the container's address on the bridge, by csrc/relay.c,
 * the relay a foreground run uses too (minirun/portproxy.py).
 * The signals of mr_passed_signals (minirun.h) sent to the shim are passed to the
 * init (and so to COMMAND), as the Python supervisor did.
 * Once the container is gone it execs FINISH ARGS... STATUS (the wait status):
 * Python again, for the cleanup (cgroups, network, state; lifecycle.finish).
 * Every fd the finish needs, the state lock among them, passes through both execs.
 * Before that exec, the shim leaves its own exit record, MR_SHIM_EXIT_RECORD, in the
 * state directory STATE_DIR_FD: COMMAND's wait status, and why the finish step could
 * not be exec'd if it could not, so neither that failure nor a finish that dies
 * half-way loses the status (gc and `minirun ps` read it; minirun/cleanup.py).
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
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/signalfd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "minirun.h"

#define CHUNK 16384
#define MAX_CLIENTS 16

extern char **environ;

static int log_dir = -1, log_fd = -1, out_fd = -1, listener = -1, sig_fd = -1, state_dir = -1;
static int spare_fd = -1; /* held in reserve: when fds run out, freed to accept an attach client and close it */
static long long log_size, log_max_size;
static int log_max_files = 1;
static struct mr_relay *relay;
static struct mr_pty pty;
static pid_t init_pid;
static int clients[MAX_CLIENTS];
static int n_clients;

static void drop_client(int i)
{
    close(clients[i]);
    clients[i] = clients[--n_clients];
}

/* "log" (index 0) or "log.N", the Nth older rotation */
static void log_name(char *name, size_t size, int index)
{
    if (index)
        snprintf(name, size, "log.%d", index);
    else
        snprintf(name, size, "log");
}

static void log_open(void)
{
    struct stat st;

    log_fd = openat(log_dir, "log", O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0640);
    log_size = log_fd >= 0 && fstat(log_fd, &st) == 0 ? st.st_size : 0;
}

/* log.N-2 -> log.N-1, ..., log -> log.1, then a new log; renames within the directory
 * fd, so no path outside it is ever followed. With one file the log is emptied instead. */
static void log_rotate(void)
{
    char from[32], to[32];

    if (log_max_files <= 1) {
        if (ftruncate(log_fd, 0) == 0)
            log_size = 0;
        return;
    }
    for (int i = log_max_files - 1; i > 0; i--) {
        log_name(from, sizeof(from), i - 1);
        log_name(to, sizeof(to), i);
        renameat(log_dir, from, log_dir, to); /* ENOENT: not that many rotations yet */
    }
    close(log_fd);
    log_open();
}

/* Append to the log, rotating at the bound: every file holds at most log_max_size bytes. */
static void log_write(const char *buf, size_t len)
{
    while (len && log_fd >= 0) {
        size_t n = len;

        if (log_max_size > 0) {
            if (log_size >= log_max_size) {
                log_rotate();
                if (log_fd < 0 || log_size >= log_max_size)
                    return; /* could not rotate: lose the output, never the container */
            }
            if ((long long)n > log_max_size - log_size)
                n = (size_t)(log_max_size - log_size);
        }
        mr_write_all(log_fd, buf, n); /* a full disk loses log, never the container */
        log_size += (long long)n;
        buf += n;
        len -= n;
    }
}


/* the pty's output (mr_sink): to the log and to every attached client */
static void output(void *ctx, const char *buf, size_t len)
{
    (void)ctx;
    log_write(buf, len);
    for (int i = n_clients - 1; i >= 0; i--) /* a client that does not keep up loses output: the log has it */
        if (send(clients[i], buf, len, MSG_DONTWAIT | MSG_NOSIGNAL) < 0 && errno != EAGAIN && errno != EINTR)
            drop_client(i);
}

/* One read of the output pipe into the log: > 0 bytes relayed, 0 nothing there now, -1 at
 * its end (every writer closed it). The pty goes to the log and to attached clients (output). */
static ssize_t relay_output_pipe(void)
{
    char buf[CHUNK];
    ssize_t n = read(out_fd, buf, sizeof(buf));

    if (n > 0) {
        log_write(buf, (size_t)n);
        return n;
    }
    return n < 0 && (errno == EAGAIN || errno == EINTR) ? 0 : -1;
}

static void client_packet(int i)
{
    char buf[1 + MR_ATTACH_CHUNK];
    ssize_t n = recv(clients[i], buf, sizeof(buf), MSG_DONTWAIT);

    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        drop_client(i);
        return;
    }
    mr_attach_packet(&pty, buf, (size_t)n);
}

/* A new attach client, or none: past MAX_CLIENTS, or when fds run out (the published ports'
 * relay may hold them all), it is accepted and closed at once rather than left in the
 * backlog, where it would keep the listener readable and the loop spinning. */
static void accept_client(void)
{
    int c = accept4(listener, NULL, NULL, SOCK_CLOEXEC);

    if (c < 0 && (errno == EMFILE || errno == ENFILE) && spare_fd >= 0) {
        close(spare_fd);
        c = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
        if (c >= 0)
            close(c);
        spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        return;
    }
    if (c < 0 && errno != EAGAIN && errno != EINTR && errno != ECONNABORTED) {
        close(listener); /* cannot accept any more: stop listening rather than spin */
        listener = -1;
    } else if (c >= 0 && n_clients < MAX_CLIENTS) {
        clients[n_clients++] = c;
    } else if (c >= 0) {
        close(c);
    }
}

/* The signals sent to the shim go to the container's init, which passes them to COMMAND,
 * as the Python supervisor did: the container then ends its own way and the finish step
 * records it. */
static void forward_signals(void)
{
    struct signalfd_siginfo si;
    ssize_t n;

    while ((n = read(sig_fd, &si, sizeof(si))) == (ssize_t)sizeof(si))
        kill(init_pid, (int)si.ssi_signo);
    if (n < 0 && errno != EAGAIN && errno != EINTR) {
        close(sig_fd); /* never seen: the signals stay blocked, pending, rather than spin */
        sig_fd = -1;
    }
}

/* Relay until the report fd is readable: the init reported COMMAND's exit, or died.
 * poll's fds: the report fd, the forwarded signals, the pty master, the attach
 * listener, COMMAND's output pipe, the published ports' relay (csrc/relay.c), then
 * the attach clients. Every revents is acted on, and an fd whose read fails leaves the
 * set (a negative fd is ignored by poll): nothing stays ready unread, so it never spins. */
static void relay_until(int report_fd)
{
    static struct pollfd fds[6 + MAX_CLIENTS];

    for (;;) {
        int n = 0, clients_now = n_clients;

        fds[n++] = (struct pollfd){.fd = report_fd, .events = POLLIN};
        fds[n++] = (struct pollfd){.fd = sig_fd, .events = POLLIN};
        fds[n++] = (struct pollfd){.fd = pty.hung_up ? -1 : pty.master,
                                   .events = POLLIN | (pty.n_pending ? POLLOUT : 0)};
        fds[n++] = (struct pollfd){.fd = listener, .events = POLLIN};
        fds[n++] = (struct pollfd){.fd = out_fd, .events = POLLIN};
        fds[n++] = (struct pollfd){.fd = relay ? mr_relay_fd(relay) : -1, .events = POLLIN};
        for (int i = 0; i < n_clients; i++)
            fds[n++] = (struct pollfd){.fd = clients[i], .events = POLLIN};
        if (poll(fds, (nfds_t)n, -1) < 0) {
            if (errno == EINTR)
                continue;
            return; /* cannot wait any more (never seen): reap and finish rather than spin */
        }
        if (fds[0].revents)
            return;
        if (fds[1].revents)
            forward_signals();
        if (fds[2].revents & ~POLLOUT)
            mr_pty_output(&pty, output, NULL); /* hangs up (leaves the set) at the pty's end or an error */
        if (fds[3].revents)
            accept_client();
        if (fds[4].revents && relay_output_pipe() < 0) {
            close(out_fd); /* every writer is gone; nothing more will come */
            out_fd = -1;
        }
        if (fds[5].revents)
            mr_relay_step(relay);
        /* Clients polled this turn, by fd: output() may have dropped some already, and
         * drop_client moves the last one into the gap. */
        for (int k = clients_now - 1; k >= 0; k--) {
            if (!fds[6 + k].revents)
                continue;
            for (int i = 0; i < n_clients; i++)
                if (clients[i] == fds[6 + k].fd) {
                    client_packet(i);
                    break;
                }
        }
        mr_pty_flush(&pty); /* what the pty could not take before */
    }
}

/* A decimal in [-1, max], else -2. */
static int parse_int(const char *s, long max)
{
    char *end;
    long v = strtol(s, &end, 10);

    return !*s || *end || v < -1 || v > max ? -2 : (int)v;
}

/* The room for the published ports' connections: as many fds as the hard limit allows
 * (relay.c closes the connection idle the longest when they run out). */
static void raise_fd_limit(void)
{
    struct rlimit lim;

    if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
        lim.rlim_cur = lim.rlim_max;
        setrlimit(RLIMIT_NOFILE, &lim);
    }
}

static int usage(void)
{
    fprintf(stderr, "usage: minirun-shim REPORT_FD INIT_PID LOG_DIR_FD MASTER_FD LISTEN_FD [-o OUT_FD] "
            "[-l MAX_SIZE:MAX_FILES] [-s STATE_DIR_FD] [-p FD:ADDR:PORT]... -- FINISH...\n");
    return 125;
}

/* MR_SHIM_EXIT_RECORD in the state directory, replaced whole (a reader sees the old record or
 * the new): the wait status, then the shim's own failure, if any. */
static void write_exit_record(int status, const char *failure, int err)
{
    char text[MR_STEP_MAX + 64];
    int fd, len;

    if (state_dir < 0)
        return;
    len = snprintf(text, sizeof(text), "%d\n", status);
    if (failure)
        len += snprintf(text + len, sizeof(text) - (size_t)len, "%s: %s\n", failure, strerror(err));
    fd = openat(state_dir, "." MR_SHIM_EXIT_RECORD ".tmp", O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC,
                0600);
    if (fd < 0)
        return;
    mr_write_all(fd, text, (size_t)len);
    close(fd);
    renameat(state_dir, "." MR_SHIM_EXIT_RECORD ".tmp", state_dir, MR_SHIM_EXIT_RECORD);
}

int main(int argc, char **argv)
{
    struct mr_report rep;
    int report_fd, master, status = 0, reported = 0, finish_at = 6;
    char status_arg[16];
    ssize_t n;

    if (argc < finish_at)
        return usage();
    for (; finish_at + 1 < argc && argv[finish_at][0] == '-' && strcmp(argv[finish_at], "--"); finish_at += 2) {
        const char *opt = argv[finish_at], *val = argv[finish_at + 1];
        int used = 0;

        if (strcmp(opt, "-p") == 0) {
            char addr[INET_ADDRSTRLEN];
            int fd, to_port;

            if (sscanf(val, "%d:%15[0-9.]:%d%n", &fd, addr, &to_port, &used) != 3 || val[used] || fd < 0 ||
                (!relay && !(relay = mr_relay_new())) || mr_relay_add_port(relay, fd, addr, to_port) < 0)
                return usage();
        } else if (strcmp(opt, "-o") == 0) {
            if ((out_fd = parse_int(val, 1 << 20)) < 0)
                return usage();
        } else if (strcmp(opt, "-s") == 0) {
            if ((state_dir = parse_int(val, 1 << 20)) < 0)
                return usage();
        } else if (strcmp(opt, "-l") == 0) {
            if (sscanf(val, "%lld:%d%n", &log_max_size, &log_max_files, &used) != 2 || val[used] ||
                log_max_size < 0 || log_max_files < 1 || log_max_files > 1000)
                return usage();
        } else {
            return usage();
        }
    }
    if (argc < finish_at + 2 || strcmp(argv[finish_at], "--") != 0)
        return usage();
    report_fd = parse_int(argv[1], 1 << 20);
    init_pid = parse_int(argv[2], INT_MAX); /* pid_max goes up to 2^22 */
    log_dir = parse_int(argv[3], 1 << 20);
    master = parse_int(argv[4], 1 << 20);
    listener = parse_int(argv[5], 1 << 20);
    if (report_fd < 0 || init_pid <= 0 || log_dir < -1 || master < -1 || listener < -1)
        return usage();
    if (log_dir >= 0)
        log_open();

    {
        sigset_t forwarded;

        sigemptyset(&forwarded);
        for (size_t i = 0; i < sizeof(mr_passed_signals) / sizeof(mr_passed_signals[0]); i++)
            sigaddset(&forwarded, mr_passed_signals[i]);
        /* kept blocked through the exec of the finish step, which must not die half-way */
        sigprocmask(SIG_BLOCK, &forwarded, NULL);
        sig_fd = signalfd(-1, &forwarded, SFD_CLOEXEC | SFD_NONBLOCK);
        signal(SIGCHLD, SIG_DFL); /* an inherited SIG_IGN would make waitpid below fail */
    }
    mr_pty_init(&pty, master);
    if (listener >= 0)
        spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (out_fd >= 0)
        fcntl(out_fd, F_SETFL, fcntl(out_fd, F_GETFL) | O_NONBLOCK);
    if (relay)
        raise_fd_limit();
    relay_until(report_fd);
    mr_pty_drain(&pty, output, NULL);
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
    if (out_fd >= 0) { /* the init is reaped: its namespace's processes, the pipe's writers, are gone */
        struct pollfd pipe_fd = {.fd = out_fd, .events = POLLIN};

        /* to EOF; the timeout only guards against a writer outside the namespace */
        while (poll(&pipe_fd, 1, 1000) > 0 && relay_output_pipe() >= 0)
            ;
        close(out_fd);
    }
    mr_relay_free(relay); /* the published ports' clients see the end */
    for (int i = 6; i < finish_at; i += 2) /* and their listeners go */
        if (strcmp(argv[i], "-p") == 0)
            close(atoi(argv[i + 1]));
    if (log_fd >= 0)
        close(log_fd);
    if (log_dir >= 0)
        close(log_dir);
    if (master >= 0)
        close(master);
    if (listener >= 0)
        close(listener);
    if (spare_fd >= 0)
        close(spare_fd);
    close(report_fd);
    write_exit_record(status, NULL, 0);

    snprintf(status_arg, sizeof(status_arg), "%d", status);
    {
        int first = finish_at + 1;
        char **finish = calloc((size_t)(argc - first + 2), sizeof(char *));

        if (finish) {
            for (int i = first; i < argc; i++)
                finish[i - first] = argv[i];
            finish[argc - first] = status_arg;
            execve(finish[0], finish, environ);
        }
        {
            int err = errno;

            write_exit_record(status, "minirun-shim: exec of the finish step", err);
            fprintf(stderr, "minirun-shim: exec of the finish step: %s\n", strerror(err));
        }
    }
    return 125;
}
