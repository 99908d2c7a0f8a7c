/*
 * spawnreq.c - what the two sides of a spawn share: the parent (spawn.c, in the
 * extension) and the container's init (minirun-init's spawn mode, init.c). The
 * request (struct mr_spawn_req) as one flat blob, the fds it names, and the
 * init's first steps.
 *
 * The container's init is minirun-init from its first instruction on: the
 * parent (the extension, in a Python process) packs the request into a memfd,
 * a vfork-style child execs minirun-init with it, and minirun-init unpacks it
 * (spawn.c says why). Every pointer of the request is named once, in
 * walk_req(): packing copies what each points to into the blob and stores its
 * offset there, unpacking turns the offsets back into pointers into the blob.
 *
 * Layout: struct mr_spawn_blob, the request's copy, then the data it points to,
 * each piece 8-byte aligned. An offset is stored plus one: 0 stays NULL.
 */
#define _GNU_SOURCE
#include <alloca.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "minirun.h"

#define BLOB_MAGIC 0x6d72737071UL /* "mrspq" */

struct mr_spawn_blob {
    uint64_t magic;
    uint64_t req_size; /* sizeof(struct mr_spawn_req) of the build that packed it */
    uint64_t size;     /* the whole blob */
    struct mr_spawn_req req;
};

enum walk_mode { MEASURE, PACK, UNPACK };

struct walker {
    enum walk_mode mode;
    char *base;  /* the blob (PACK, UNPACK) */
    size_t used; /* MEASURE, PACK: bytes placed so far */
    size_t size; /* UNPACK: the blob's size */
    int bad;     /* UNPACK: an offset outside the blob */
};

static size_t align8(size_t n)
{
    return (n + 7) & ~(size_t)7;
}

/* One pointer field *p to len bytes. MEASURE: counts them, returns the original.
 * PACK: copies them into the blob, stores the offset, returns the copy.
 * UNPACK: turns the offset into a pointer into the blob and returns it. */
static void *field(struct walker *w, const void **p, size_t len)
{
    uintptr_t off;

    if (!*p)
        return NULL;
    switch (w->mode) {
    case MEASURE:
        w->used = align8(w->used) + len;
        return (void *)*p;
    case PACK:
        off = align8(w->used);
        memcpy(w->base + off, *p, len);
        w->used = off + len;
        *p = (const void *)(off + 1);
        return w->base + off;
    case UNPACK:
        off = (uintptr_t)*p - 1;
        if (off > w->size || len > w->size - off) { /* an empty array may sit at the very end */
            w->bad = 1;
            *p = NULL;
            return NULL;
        }
        *p = w->base + off;
        return w->base + off;
    }
    return NULL;
}

static void str(struct walker *w, const char **p)
{
    const char *s = *p;

    if (w->mode == UNPACK) {
        s = field(w, (const void **)p, 1);
        if (s && !memchr(s, 0, w->size - (size_t)(s - w->base))) /* unterminated: not ours */
            w->bad = 1, *p = NULL;
        return;
    }
    if (s)
        field(w, (const void **)p, strlen(s) + 1);
}

/* A NULL-terminated array of strings (argv, envp). */
static void strv(struct walker *w, const char *const **p)
{
    const char **v;
    size_t n = 0;

    if (w->mode != UNPACK && *p)
        while ((*p)[n])
            n++;
    v = field(w, (const void **)p, (n + 1) * sizeof(char *));
    /* UNPACK: only the array's first entry is known to be inside the blob; each next one is checked */
    for (size_t i = 0; v && !w->bad; i++) {
        if (w->mode == UNPACK && (size_t)((char *)&v[i] - w->base) + sizeof(char *) > w->size) {
            w->bad = 1;
            break;
        }
        if (!v[i])
            break;
        str(w, &v[i]);
    }
}

static void array(struct walker *w, const void **p, size_t n, size_t size)
{
    field(w, p, n * size);
}

static void ops(struct walker *w, const struct mr_op **p, int n)
{
    struct mr_op *op = field(w, (const void **)p, (size_t)n * sizeof(struct mr_op));

    for (int i = 0; op && i < n; i++) {
        str(w, &op[i].source);
        str(w, &op[i].target);
        str(w, &op[i].fstype);
        str(w, &op[i].data);
    }
}

static void hooks(struct walker *w, const struct mr_hook **p, int n)
{
    struct mr_hook *hook = field(w, (const void **)p, (size_t)n * sizeof(struct mr_hook));

    for (int i = 0; hook && i < n; i++) {
        str(w, &hook[i].path);
        strv(w, &hook[i].argv);
        strv(w, &hook[i].envp);
    }
}

/* Every pointer of struct mr_spawn_req: a new one is added here, or it arrives dangling. */
static void walk_req(struct walker *w, struct mr_spawn_req *r)
{
    str(w, &r->rootfs);
    str(w, &r->hostname);
    array(w, (const void **)&r->tasks_fds, (size_t)r->n_tasks_fds, sizeof(int));
    ops(w, &r->pre_ops, r->n_pre_ops);
    ops(w, &r->ops, r->n_ops);
    strv(w, &r->argv);
    strv(w, &r->envp);
    str(w, &r->path);
    str(w, &r->cwd);
    array(w, &r->seccomp_filter, (size_t)r->seccomp_len, 8 /* struct sock_filter */);
    array(w, (const void **)&r->join_fds, (size_t)r->n_join_fds, sizeof(int));
    str(w, &r->domainname);
    array(w, (const void **)&r->groups, (size_t)r->n_groups, sizeof(uint32_t));
    hooks(w, &r->create_hooks, r->n_create_hooks);
    hooks(w, &r->start_hooks, r->n_start_hooks);
    str(w, &r->hook_state);
}

/* The fds minirun-init needs across its exec: all the request names, and the caller's own.
 * The child clears their close-on-exec flags (spawn.c), and minirun-init sets them again on
 * its own (init.c, join.c). */
int mr_spawn_req_fds(const struct mr_spawn_req *req, int *fds, int max, const int *own, int n_own)
{
    int n = 0;

#define KEEP(fd) do { if ((fd) >= 0 && n < max) fds[n++] = (fd); } while (0)
    for (int i = 0; i < n_own; i++)
        KEEP(own[i]);
    for (int i = 0; i < req->n_tasks_fds; i++)
        KEEP(req->tasks_fds[i]);
    for (int i = 0; i < 3; i++)
        KEEP(req->stdio[i]);
    if (req->terminal)
        KEEP(req->console_fd);
    if (req->exec_fifo_fd > 0)
        KEEP(req->exec_fifo_fd);
    for (int i = 0; i < req->n_join_fds; i++)
        KEEP(req->join_fds[i]);
    for (int i = 0; i < req->n_pre_ops; i++)
        KEEP(req->pre_ops[i].source_fd);
    for (int i = 0; i < req->n_ops; i++)
        KEEP(req->ops[i].source_fd);
#undef KEEP
    return n;
}

int mr_spawn_req_n_fds(const struct mr_spawn_req *req, int n_own)
{
    return n_own + req->n_tasks_fds + 3 + 1 + 1 + req->n_join_fds + req->n_pre_ops + req->n_ops;
}

/* Close-on-exec again, what mr_spawn_req_fds named but stdio's 0..2 (COMMAND's): 0 or -errno. */
int mr_spawn_req_cloexec(const struct mr_spawn_req *req, const int *own, int n_own)
{
    int n = mr_spawn_req_n_fds(req, n_own), *fds = alloca(sizeof(int) * (size_t)n);

    n = mr_spawn_req_fds(req, fds, n, own, n_own);
    for (int i = 0; i < n; i++)
        if (fds[i] > 2 && fcntl(fds[i], F_SETFD, FD_CLOEXEC) < 0)
            return -errno;
    return 0;
}

/* An OCI PID 1, set up, before it waits for `start`: it keeps stdio, --preserve-fds, the report
 * socket, the exec fifo and the console socket; the rest goes now, not at COMMAND's execve: the
 * caller's other fds, close-on-exec until then, and what the setup spent (cgroup v1 tasks files,
 * namespaces joined, bind trees), even in a gap of --preserve-fds. A created container can be
 * entered by `exec` long before `start`. */
void mr_spawn_req_close_spent(const struct mr_spawn_req *req, int report_fd)
{
    int keep[3] = {report_fd, req->exec_fifo_fd > 0 ? req->exec_fifo_fd : -1, req->terminal ? req->console_fd : -1};
    int n = mr_spawn_req_n_fds(req, 0), *fds = alloca(sizeof(int) * (size_t)n);

    n = mr_spawn_req_fds(req, fds, n, NULL, 0);
    for (int i = 0; i < n; i++)
        if (fds[i] > 2 && fds[i] != keep[0] && fds[i] != keep[1] && fds[i] != keep[2])
            close(fds[i]);
    mr_close_fds_but(req->preserve_fds < INT_MAX - 3 ? 3 + req->preserve_fds : INT_MAX, keep, 3);
}

int mr_spawn_req_to_memfd(const struct mr_spawn_req *req, char *step)
{
    struct walker w = {.mode = MEASURE, .used = sizeof(struct mr_spawn_blob)};
    struct mr_spawn_blob *blob;
    struct mr_spawn_req copy = *req;
    size_t done = 0;
    int fd, err;

    walk_req(&w, &copy);
    blob = calloc(1, w.used);
    if (!blob)
        return mr_step(step, ENOMEM, "pack the spawn request (%zu bytes)", w.used);
    blob->magic = BLOB_MAGIC;
    blob->req_size = sizeof(struct mr_spawn_req);
    blob->size = w.used;
    blob->req = *req;
    w = (struct walker){.mode = PACK, .base = (char *)blob, .used = sizeof(struct mr_spawn_blob)};
    walk_req(&w, &blob->req);
    fd = (int)syscall(SYS_memfd_create, "minirun-spawn", 1U /* MFD_CLOEXEC */);
    if (fd < 0) {
        err = mr_step(step, errno, "memfd_create(spawn request)");
        free(blob);
        return err;
    }
    while (done < blob->size) {
        ssize_t n = write(fd, (char *)blob + done, blob->size - done);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            err = mr_step(step, n < 0 ? errno : EIO, "write the spawn request");
            free(blob);
            close(fd);
            return err;
        }
        done += (size_t)n;
    }
    free(blob);
    return fd;
}

struct mr_spawn_req *mr_spawn_req_from_fd(int fd, char *step, int *err)
{
    struct mr_spawn_blob *blob;
    struct walker w = {.mode = UNPACK};
    struct stat st;
    size_t done = 0;

    if (fstat(fd, &st) < 0) {
        *err = -mr_step(step, errno, "minirun-init: fstat(spawn request)");
        return NULL;
    }
    if ((size_t)st.st_size < sizeof(*blob) || st.st_size > 64 << 20) {
        *err = -mr_step(step, EINVAL, "minirun-init: a spawn request of %lld bytes", (long long)st.st_size);
        return NULL;
    }
    blob = malloc((size_t)st.st_size);
    if (!blob) {
        *err = -mr_step(step, ENOMEM, "minirun-init: read the spawn request");
        return NULL;
    }
    while (done < (size_t)st.st_size) {
        ssize_t n = pread(fd, (char *)blob + done, (size_t)st.st_size - done, (off_t)done);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            *err = -mr_step(step, n < 0 ? errno : EIO, "minirun-init: read the spawn request");
            free(blob);
            return NULL;
        }
        done += (size_t)n;
    }
    if (blob->magic != BLOB_MAGIC || blob->req_size != sizeof(struct mr_spawn_req) || blob->size != done) {
        /* a minirun-init of another build than the extension's: reinstall */
        *err = -mr_step(step, EPROTO, "minirun-init: the spawn request is not of this build's format");
        free(blob);
        return NULL;
    }
    w.base = (char *)blob;
    w.size = done;
    walk_req(&w, &blob->req);
    if (w.bad) {
        *err = -mr_step(step, EPROTO, "minirun-init: a pointer of the spawn request is outside it");
        free(blob);
        return NULL;
    }
    blob->req.helper_fd = -1; /* the parent's fd of minirun-init: this is it */
    return &blob->req;
}

/* The init's first steps, in the child spawn.c cloned, before anything of the
 * container's: join the cgroup v1 hierarchies by writing "0" (ourselves) to their
 * `tasks` files. A single-threaded process moving itself skips the kernel's global
 * threadgroup lock that a parent's cgroup.procs write takes, and with it an RCU
 * grace period: ~0.1 ms instead of ~13 ms on the 6.18 hybrid host we measured.
 * Then sync 1: wait until the parent is done placing us (v2 without clone3, the
 * id maps of a user namespace, eth0). Also linked into the extension, whose forked
 * child of a user namespace runs this before it execs minirun-init (spawn.c). */
void mr_spawn_join(const struct mr_spawn_req *req, int report_fd, int go_fd)
{
    char c;
    ssize_t n;

    for (int i = 0; i < req->n_tasks_fds; i++)
        if (write(req->tasks_fds[i], "0", 1) != 1)
            mr_setup_failed(report_fd, "join cgroup v1 hierarchy (write 0 to tasks)", errno);
    do
        n = read(go_fd, &c, 1);
    while (n < 0 && errno == EINTR);
    if (n != 1)
        _exit(125); /* parent aborted or died before releasing us */
    close(go_fd);
}
