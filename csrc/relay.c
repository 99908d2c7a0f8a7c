/*
 * relay.c - published ports (-p): the one TCP relay, for a foreground run (minirun/portproxy.py
 * calls mr_relay_serve through cffi, in a thread, without the GIL) and a detached one
 * (csrc/shim.c polls mr_relay_fd beside its other fds and calls mr_relay_step).
 *
 * Each listener's connections are relayed to a fixed address (the container's on the
 * bridge). Nothing blocks and no client can deny the others:
 *   - every socket is non-blocking, driven by one epoll set (level-triggered);
 *   - a connection holds one buffer per direction, allocated only while it has data in
 *     flight (an idle connection costs ~150 bytes); while a direction's buffer is full,
 *     its source is not read: a client that never reads stalls only its own connection;
 *   - the connection table grows as clients come, up to MR_RELAY_MAX_CONNS; at that bound,
 *     or when the process runs out of file descriptors, connections are closed to make
 *     room (so idle connections cannot lock new clients out): those idle the longest
 *     of the client address holding the most connections (an IPv6 /64 counts as one
 *     address), a few at a time, so one host opening thousands evicts its own, not
 *     everyone else's, and pays for the counting once per few accepts;
 *   - one read per ready socket per step: a busy connection cannot starve the others.
 * EOF from one side is passed on as a shutdown(SHUT_WR) of the other once its buffer is
 * delivered (a client that sends a request and half-closes still gets the answer); the
 * connection goes when both directions are done, or at the first error.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "minirun.h"

#define CHUNK 16384
#define MAX_EVENTS 256
#define ACCEPTS_PER_STEP 64

enum { LISTENER, END };

struct listener {
    int kind; /* LISTENER: first, as in struct end, to tell epoll's data apart */
    int fd;
    struct sockaddr_storage to;
    socklen_t to_len;
};

struct conn;
struct end {       /* one socket of a connection */
    int kind;      /* END */
    int fd;
    struct conn *conn;
    char *buf;     /* read from this end, to be written to the other; NULL when empty */
    size_t len, off;
    int eof;       /* this end said EOF: nothing more to read from it */
    int shut;      /* we shut down writing to this end: that direction is done */
    uint32_t watched; /* the events epoll waits for on it (0: not in the set) */
};

struct conn {
    struct end end[2];   /* 0: the client, 1: the container */
    unsigned char source[16]; /* the client's address as eviction counts it (source_key) */
    int connecting;      /* end[1]'s non-blocking connect is under way */
    int dead;            /* closed during this step; freed at its end */
    struct conn *older, *newer; /* least recently active first */
    struct conn *next_dead;
};

struct mr_relay {
    int epfd;
    int spare_fd; /* held in reserve: when fds run out, freed to accept a client and close it */
    struct listener **ports;
    int n_ports;
    struct conn *oldest, *newest;
    int n_conns;
    struct conn *dead;
    struct tally *tally; /* eviction's scratch table, TALLY_SLOTS long, made at the first eviction */
};

/* Counting connections per client address at eviction: an open-addressing table twice
 * the connection bound, so it never fills. */
#define TALLY_SLOTS (2 * MR_RELAY_MAX_CONNS)
#define EVICT_BATCH 16 /* connections closed per count, at the bound */
struct tally {
    struct conn *oldest; /* NULL: a free slot */
    int count;
};

static void lru_unlink(struct mr_relay *r, struct conn *c)
{
    if (c->older)
        c->older->newer = c->newer;
    else
        r->oldest = c->newer;
    if (c->newer)
        c->newer->older = c->older;
    else
        r->newest = c->older;
    c->older = c->newer = NULL;
}

static void lru_push(struct mr_relay *r, struct conn *c)
{
    c->older = r->newest;
    c->newer = NULL;
    if (r->newest)
        r->newest->newer = c;
    else
        r->oldest = c;
    r->newest = c;
}

static void touch(struct mr_relay *r, struct conn *c)
{
    if (r->newest != c) {
        lru_unlink(r, c);
        lru_push(r, c);
    }
}

static void drop(struct mr_relay *r, struct conn *c)
{
    if (c->dead)
        return;
    for (int i = 0; i < 2; i++) {
        /* explicitly: a fork of the foreground runner's process may still share the fd,
         * and then close() would leave it in the set, its events pointing at freed memory */
        if (c->end[i].watched)
            epoll_ctl(r->epfd, EPOLL_CTL_DEL, c->end[i].fd, NULL);
        close(c->end[i].fd);
        free(c->end[i].buf);
        c->end[i].buf = NULL;
    }
    c->dead = 1;
    lru_unlink(r, c);
    r->n_conns--;
    c->next_dead = r->dead; /* events of this step may still point at it */
    r->dead = c;
}

/* The address a connection is counted under: IPv4 as ::ffff:a.b.c.d, IPv6 by its /64
 * (a single host commonly holds a whole /64). */
static void source_key(const struct sockaddr_storage *ss, unsigned char key[16])
{
    memset(key, 0, 16);
    if (ss->ss_family == AF_INET) {
        key[10] = key[11] = 0xff;
        memcpy(key + 12, &((const struct sockaddr_in *)ss)->sin_addr, 4);
    } else if (ss->ss_family == AF_INET6) {
        const unsigned char *a = ((const struct sockaddr_in6 *)ss)->sin6_addr.s6_addr;
        static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

        memcpy(key, a, memcmp(a, mapped, sizeof(mapped)) ? 8 : 16);
    }
}

static unsigned tally_hash(const unsigned char key[16])
{
    unsigned h = 2166136261u; /* FNV-1a */

    for (int i = 0; i < 16; i++)
        h = (h ^ key[i]) * 16777619u;
    return h % TALLY_SLOTS;
}

/* The connections to close for room: up to EVICT_BATCH of the address holding the most
 * (ties: the first to reach that count), idle the longest first. Counting walks every
 * connection, so a flood at the bound pays for it once per batch, not per accept. */
static void drop_for_room(struct mr_relay *r)
{
    struct tally *best = NULL;
    unsigned char source[16];
    int dropped = 0;

    if (!r->tally && !(r->tally = malloc(TALLY_SLOTS * sizeof(*r->tally)))) {
        if (r->oldest) /* no memory to count with: the idle-longest of all */
            drop(r, r->oldest);
        return;
    }
    memset(r->tally, 0, TALLY_SLOTS * sizeof(*r->tally));
    for (struct conn *c = r->oldest; c; c = c->newer) { /* oldest first: each address's first is its idlest */
        struct tally *t = &r->tally[tally_hash(c->source)];

        while (t->oldest && memcmp(t->oldest->source, c->source, sizeof(c->source)))
            t = t == &r->tally[TALLY_SLOTS - 1] ? r->tally : t + 1;
        if (!t->oldest)
            t->oldest = c;
        if (++t->count > (best ? best->count : 0))
            best = t;
    }
    if (!best)
        return;
    memcpy(source, best->oldest->source, sizeof(source));
    for (struct conn *c = best->oldest, *next; c && dropped < EVICT_BATCH; c = next) {
        next = c->newer; /* read first: drop unlinks c */
        if (!memcmp(c->source, source, sizeof(source))) {
            drop(r, c);
            dropped++;
        }
    }
}

/* Ask epoll for what this end needs now. An end needing nothing leaves the set: a
 * hang-up is reported whatever one asks for, and would wake us for nothing. */
static int watch(struct mr_relay *r, struct end *e)
{
    struct conn *c = e->conn;
    struct end *other = &c->end[e == &c->end[0]];
    uint32_t want;
    struct epoll_event ev;

    if (c->connecting)
        want = e == &c->end[1] ? EPOLLOUT : 0;
    else
        want = (!e->len && !e->eof ? EPOLLIN : 0) | (other->len ? EPOLLOUT : 0);
    if (want == e->watched)
        return 0;
    ev.events = want;
    ev.data.ptr = e;
    if (epoll_ctl(r->epfd, !e->watched ? EPOLL_CTL_ADD : want ? EPOLL_CTL_MOD : EPOLL_CTL_DEL, e->fd, &ev) < 0)
        return -1;
    e->watched = want;
    return 0;
}

/* Once everything read from `from` is delivered after its EOF, pass the EOF on. */
static void pass_eof(struct end *from, struct end *to)
{
    if (from->eof && !from->len && !to->shut) {
        shutdown(to->fd, SHUT_WR);
        to->shut = 1;
    }
}

/* Write what `from` sent to `to`: 0, or -1 on an error (the connection goes). */
static int flush(struct end *from, struct end *to)
{
    while (from->len) {
        ssize_t n = send(to->fd, from->buf + from->off, from->len - from->off, MSG_NOSIGNAL | MSG_DONTWAIT);

        if (n < 0)
            return errno == EAGAIN || errno == EINTR ? 0 : -1;
        from->off += (size_t)n;
        if (from->off == from->len) {
            free(from->buf);
            from->buf = NULL;
            from->off = from->len = 0;
        }
    }
    pass_eof(from, to);
    return 0;
}

/* One read from `e` (there is no data of its in flight), passed on at once if `to` takes it. */
static int fill(struct end *e, struct end *to)
{
    ssize_t n;

    if (!e->buf && !(e->buf = malloc(CHUNK)))
        return 0; /* out of memory: try again on the next step */
    n = recv(e->fd, e->buf, CHUNK, MSG_DONTWAIT);
    if (n < 0)
        return errno == EAGAIN || errno == EINTR ? 0 : -1;
    if (n == 0) {
        free(e->buf);
        e->buf = NULL;
        e->eof = 1;
        pass_eof(e, to);
        return 0;
    }
    e->len = (size_t)n;
    return flush(e, to);
}

static void ready(struct mr_relay *r, struct end *e, uint32_t events)
{
    struct conn *c = e->conn;
    int side = e == &c->end[1];
    struct end *other = &c->end[!side];

    if (c->dead)
        return;
    if (c->connecting) {
        int err = 0;
        socklen_t len = sizeof(err);

        if (getsockopt(e->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err) {
            drop(r, c); /* nothing listens in the container: the client sees the connection close */
            return;
        }
        c->connecting = 0;
    } else {
        if (events & EPOLLERR) {
            drop(r, c);
            return;
        }
        if (events & EPOLLOUT && flush(other, e) < 0) {
            drop(r, c);
            return;
        }
        if (events & (EPOLLIN | EPOLLHUP) && !e->len && !e->eof && fill(e, other) < 0) {
            drop(r, c);
            return;
        }
    }
    touch(r, c);
    if (c->end[0].shut && c->end[1].shut) {
        drop(r, c);
        return;
    }
    if (watch(r, &c->end[0]) < 0 || watch(r, &c->end[1]) < 0)
        drop(r, c);
}

/* accept4 (the client's address into `from`) or socket, retried once after closing a
 * connection (drop_for_room) when the process is out of file descriptors. */
static int open_fd(struct mr_relay *r, const struct listener *l, struct sockaddr_storage *from)
{
    for (int tries = 0; tries < 2; tries++) {
        socklen_t from_len = sizeof(*from);
        int fd = from ? accept4(l->fd, (struct sockaddr *)from, &from_len, SOCK_CLOEXEC | SOCK_NONBLOCK)
                           : socket(l->to.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

        if (fd >= 0 || (errno != EMFILE && errno != ENFILE && errno != ENOBUFS && errno != ENOMEM) || !r->oldest)
            return fd;
        drop_for_room(r);
    }
    return -1;
}

/* -1 when the listener has nothing more to accept now. */
static int accept_one(struct mr_relay *r, const struct listener *l)
{
    struct conn *c;
    struct sockaddr_storage from = {0};
    int client, up;

    if (r->n_conns >= MR_RELAY_MAX_CONNS)
        drop_for_room(r);
    client = open_fd(r, l, &from);
    if (client < 0) {
        if ((errno == EMFILE || errno == ENFILE) && r->spare_fd >= 0) {
            /* no fd to spare and no idle connection to close: refuse this client rather
             * than leave it in the backlog, where its readiness would wake us forever */
            close(r->spare_fd);
            client = accept(l->fd, NULL, NULL);
            if (client >= 0)
                close(client);
            r->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
            return client >= 0 ? 0 : -1;
        }
        return errno == EINTR || errno == ECONNABORTED ? 0 : -1;
    }
    up = open_fd(r, l, NULL);
    if (up < 0 || !(c = calloc(1, sizeof(*c)))) {
        if (up >= 0)
            close(up);
        close(client);
        return 0;
    }
    if (connect(up, (const struct sockaddr *)&l->to, l->to_len) < 0 && errno != EINPROGRESS) {
        close(up);
        close(client);
        free(c);
        return 0;
    }
    c->end[0] = (struct end){.kind = END, .fd = client, .conn = c};
    c->end[1] = (struct end){.kind = END, .fd = up, .conn = c};
    c->connecting = 1;
    source_key(&from, c->source);
    lru_push(r, c);
    r->n_conns++;
    if (watch(r, &c->end[1]) < 0)
        drop(r, c);
    return 0;
}

struct mr_relay *mr_relay_new(void)
{
    struct mr_relay *r = calloc(1, sizeof(*r));

    if (!r)
        return NULL;
    r->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (r->epfd < 0) {
        free(r);
        return NULL;
    }
    r->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    return r;
}

int mr_relay_add_port(struct mr_relay *r, int listen_fd, const char *to_addr, int to_port)
{
    struct listener *l = calloc(1, sizeof(*l)), **grown;
    struct sockaddr_in *in4 = (struct sockaddr_in *)&l->to;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&l->to;
    struct epoll_event ev = {.events = EPOLLIN};

    if (!l)
        return -ENOMEM;
    if (to_port <= 0 || to_port > 65535) {
        free(l);
        return -EINVAL;
    }
    if (inet_pton(AF_INET, to_addr, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons((uint16_t)to_port);
        l->to_len = sizeof(*in4);
    } else if (inet_pton(AF_INET6, to_addr, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)to_port);
        l->to_len = sizeof(*in6);
    } else {
        free(l);
        return -EINVAL;
    }
    l->kind = LISTENER;
    l->fd = listen_fd;
    ev.data.ptr = l;
    grown = realloc(r->ports, (size_t)(r->n_ports + 1) * sizeof(*grown));
    if (!grown || fcntl(listen_fd, F_SETFL, fcntl(listen_fd, F_GETFL) | O_NONBLOCK) < 0 ||
        epoll_ctl(r->epfd, EPOLL_CTL_ADD, listen_fd, &ev) < 0) {
        int err = grown ? errno : ENOMEM;

        if (grown)
            r->ports = grown;
        free(l);
        return -err;
    }
    r->ports = grown;
    r->ports[r->n_ports++] = l;
    return 0;
}

int mr_relay_fd(const struct mr_relay *r)
{
    return r->epfd;
}

int mr_relay_connections(const struct mr_relay *r)
{
    return r->n_conns;
}

static void free_dead(struct mr_relay *r)
{
    while (r->dead) {
        struct conn *c = r->dead;

        r->dead = c->next_dead;
        free(c);
    }
}

void mr_relay_step(struct mr_relay *r)
{
    struct epoll_event events[MAX_EVENTS];
    int n = epoll_wait(r->epfd, events, MAX_EVENTS, 0);

    for (int i = 0; i < n; i++) {
        int kind = *(int *)events[i].data.ptr;

        if (kind == LISTENER) {
            for (int k = 0; k < ACCEPTS_PER_STEP && accept_one(r, events[i].data.ptr) == 0; k++)
                ;
        } else {
            ready(r, events[i].data.ptr, events[i].events);
        }
    }
    free_dead(r);
}

int mr_relay_serve(struct mr_relay *r, int stop_fd)
{
    struct pollfd fds[2] = {{.fd = r->epfd, .events = POLLIN}, {.fd = stop_fd, .events = POLLIN}};

    for (;;) {
        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (fds[1].revents)
            return 0;
        if (fds[0].revents)
            mr_relay_step(r);
    }
}

void mr_relay_free(struct mr_relay *r)
{
    if (!r)
        return;
    while (r->oldest)
        drop(r, r->oldest);
    free_dead(r);
    for (int i = 0; i < r->n_ports; i++)
        free(r->ports[i]); /* the listening fds are the caller's */
    free(r->ports);
    free(r->tally);
    close(r->epfd);
    if (r->spare_fd >= 0)
        close(r->spare_fd);
    free(r);
}
