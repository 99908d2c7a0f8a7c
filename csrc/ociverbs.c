/*
 * ociverbs.c - start, kill, delete, and the text of ps and list, for minirun-oci (see
 * ociverbs.h), with runc's words (containerd, docker and podman match on some of them),
 * and the helpers the oci*.c files share (oci.h).
 *
 *   ocistore.c   the state root, a container's record, status, lock, signal, removal
 *   ocicgroup.c  its cgroup in every hierarchy: pids, kill, destroy
 *   ocilog.c     the --log file's records, as runc's logrus writes them
 *   ocips.c      ps's default table, `ps -ef`'s lines read from /proc
 *   ocicli.c     oci_verbs_main: runc's command line, for the native front only
 *
 * The rules are store.py's and state.py's, which these replace for minirun-oci.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "minirun.h"
#include "oci.h"

/* ---------------------------------------------------------------- messages */

static void (*warn_sink)(const char *msg);

void mr_oci_set_warn(void (*warn)(const char *msg))
{
    warn_sink = warn;
}

void oci_say(const char *prefix, const char *msg)
{
    struct mr_buf b = {0};

    mr_buf_printf(&b, "%s: %s%s\n", PROGRAM, prefix, msg);
    if (!b.failed && write(2, b.p, b.len) < 0) {
        /* a read-only or closed stderr (containerd's shim): the message still went to --log */
    }
    mr_buf_free(&b);
}

void oci_warn(const char *fmt, ...)
{
    char msg[MR_OCI_MSG_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (warn_sink)
        warn_sink(msg);
    else
        oci_say("warning: ", msg);
}

int oci_fail(struct mr_oci_error *e, int kind, const char *fmt, ...)
{
    va_list ap;

    e->kind = kind;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
    va_end(ap);
    return -1;
}

/* An OSError as errors.message words it: "FILE: strerror", or the strerror alone. */
int oci_fail_os(struct mr_oci_error *e, const char *path, int err)
{
    if (path)
        return oci_fail(e, MR_OCI_OS, "%s: %s", path, strerror(err));
    return oci_fail(e, MR_OCI_OS, "%s", strerror(err));
}

/* Python's oci_repr() of a str, as the messages quote ids: 'id' (or "it's"). */
const char *oci_repr(const char *s)
{
    static __thread char bufs[4][1200];
    static __thread int next;
    char *out = bufs[next++ & 3], *o = out, *end = out + sizeof(bufs[0]) - 8;
    char q = strchr(s, '\'') && !strchr(s, '"') ? '"' : '\'';

    *o++ = q;
    for (const unsigned char *p = (const unsigned char *)s; *p && o < end; p++) {
        if (*p == q || *p == '\\')
            o += sprintf(o, "\\%c", *p);
        else if (*p == '\n')
            o += sprintf(o, "\\n");
        else if (*p == '\r')
            o += sprintf(o, "\\r");
        else if (*p == '\t')
            o += sprintf(o, "\\t");
        else if (*p < 0x20 || *p == 0x7f)
            o += sprintf(o, "\\x%02x", *p);
        else
            *o++ = (char)*p;
    }
    *o++ = q;
    *o = '\0';
    return out;
}

char *oci_join(const char *a, const char *b)
{
    char *p;

    if (b[0] == '/') /* os.path.join: an absolute part starts over */
        return strdup(b);
    if (asprintf(&p, "%s%s%s", a, a[0] && a[strlen(a) - 1] == '/' ? "" : "/", b) < 0)
        return NULL;
    return p;
}

void oci_sleep(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};

    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

double oci_monotonic(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* errors.message: one line, whatever the text held. */
void oci_one_line(char *s)
{
    size_t n = strlen(s);

    while (n && (s[n - 1] == '\n' || s[n - 1] == '\r'))
        s[--n] = '\0';
    for (char *p = s; *p; p++)
        if (*p == '\n' || *p == '\r' || *p == '\v' || *p == '\f')
            *p = ' ';
}

/* ---------------------------------------------------------------- signals */

static const struct {
    const char *name;
    int sig;
} SIGNALS[] = {
    {"HUP", 1}, {"INT", 2}, {"QUIT", 3}, {"ILL", 4}, {"TRAP", 5}, {"ABRT", 6}, {"IOT", 6}, {"BUS", 7},
    {"FPE", 8}, {"KILL", 9}, {"USR1", 10}, {"SEGV", 11}, {"USR2", 12}, {"PIPE", 13}, {"ALRM", 14},
    {"TERM", 15}, {"STKFLT", 16}, {"CHLD", 17}, {"CLD", 17}, {"CONT", 18}, {"STOP", 19}, {"TSTP", 20},
    {"TTIN", 21}, {"TTOU", 22}, {"URG", 23}, {"XCPU", 24}, {"XFSZ", 25}, {"VTALRM", 26}, {"PROF", 27},
    {"WINCH", 28}, {"IO", 29}, {"POLL", 29}, {"PWR", 30}, {"SYS", 31}, {"RTMIN", 34}, {"RTMAX", 64},
};

int mr_oci_parse_signal(const char *text)
{
    char up[64];
    const char *name;
    size_t n = 0;

    while (*text == ' ' || (*text >= '\t' && *text <= '\r'))
        text++;
    for (; *text && n < sizeof(up) - 1; text++)
        up[n++] = (char)(*text >= 'a' && *text <= 'z' ? *text - 32 : *text);
    while (n && (up[n - 1] == ' ' || (up[n - 1] >= '\t' && up[n - 1] <= '\r')))
        n--;
    up[n] = '\0';
    if (n && strspn(up, "0123456789") == n) {
        long v = n < 10 ? strtol(up, NULL, 10) : -1;

        return v >= 0 && v <= INT_MAX ? (int)v : -1;
    }
    name = strncmp(up, "SIG", 3) ? up : up + 3;
    for (size_t i = 0; i < sizeof(SIGNALS) / sizeof(SIGNALS[0]); i++)
        if (!strcmp(name, SIGNALS[i].name))
            return SIGNALS[i].sig;
    return -1;
}

/* ---------------------------------------------------------------- hooks */

static char **string_list(const struct mr_json *list)
{
    size_t n = mr_json_count(list), i = 0;
    char **out = calloc(n + 1, sizeof(char *));

    if (!out)
        return NULL;
    for (const struct mr_json *c = list ? list->child : NULL; c; c = c->next)
        if (c->type == MJ_STRING)
            out[i++] = c->text;
    return out;
}

/* Each hook of `hooks` (a JSON list of OCI hook objects), through hooks.c's runner. */
static int run_hooks(const char *kind, const struct mr_json *hooks, const char *state, int fatal,
                     struct mr_oci_error *e)
{
    for (const struct mr_json *h = hooks && hooks->type == MJ_ARRAY ? hooks->child : NULL; h; h = h->next) {
        const char *path = mr_json_str(mr_json_get(h, "path"));
        const struct mr_json *args = mr_json_get(h, "args"), *env = mr_json_get(h, "env");
        const char *only_path[2] = {path, NULL};
        char step[MR_STEP_MAX];
        struct mr_hook hook = {path, NULL, NULL, 0};
        long long timeout;
        char **argv = NULL, **envp = NULL;
        int err = 0, ret;

        if (!path) {
            snprintf(step, sizeof(step), "%s hook: no path", kind);
            ret = -1;
        } else {
            argv = mr_json_truthy(args) ? string_list(args) : NULL;
            envp = env && env->type == MJ_ARRAY ? string_list(env) : NULL;
            hook.argv = argv ? (const char *const *)argv : only_path;
            hook.envp = (const char *const *)envp; /* none: the runtime's own environment */
            if (mr_json_int(mr_json_get(h, "timeout"), &timeout) == 0 && timeout > 0)
                hook.timeout = timeout > INT_MAX ? INT_MAX : (int)timeout;
            ret = mr_run_hooks(kind, &hook, 1, state, NULL, step, &err);
        }
        free(argv);
        free(envp);
        if (ret < 0) {
            oci_one_line(step);
            if (fatal)
                return oci_fail(e, MR_OCI_SETUP, "%s", step);
            oci_warn("%s", step);
        }
    }
    return 0;
}

/* The hooks of `kind` recorded in the state, with its oci_state on their stdin. */
static void run_recorded_hooks(const char *root, const struct mr_json *st, const char *kind)
{
    const struct mr_json *hooks = mr_json_get(mr_json_get(st, "hooks"), kind);
    struct mr_oci_error e;
    char *state;

    if (!mr_json_truthy(hooks))
        return;
    state = oci_state_text(root, st, -1, &e);
    if (!state) {
        oci_warn("%s hooks: %s", kind, e.msg);
        return;
    }
    run_hooks(kind, hooks, state, 0, &e);
    free(state);
}

int mr_oci_run_hooks(const char *kind, const char *hooks_json, const char *state_json, int fatal,
                     struct mr_oci_error *e)
{
    struct mr_json *hooks = mr_json_parse(hooks_json, strlen(hooks_json));
    int ret;

    if (!hooks)
        return oci_fail(e, MR_OCI_SPEC, "%s hooks: not a JSON list", kind);
    ret = run_hooks(kind, hooks, state_json, fatal, e);
    mr_json_free(hooks);
    return ret;
}

/* ---------------------------------------------------------------- start */

/* Release the waiting process: open the fifo for reading and take its byte; with
 * startContainer hooks, read on to its execve (EOF) or their failure's message.
 * `pid`/`pid_start`: the recorded process (the liveness rule says when it is gone). */
int mr_release_exec_fifo(const char *state_dir, const char *id, long long pid, long long pid_start, int has_start,
                         int start_waits, struct mr_oci_error *e)
{
    char *fifo = oci_join(state_dir, FIFO);
    struct mr_buf failure = {0};
    char c, chunk[4096];
    int fd, ret = 0;

    if (!fifo)
        return oci_fail_os(e, NULL, ENOMEM);
    fd = open(fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        ret = errno == ENOENT ? oci_fail(e, MR_OCI_SPEC, "cannot start container %s: it has already been started",
                                     oci_repr(id))
                              : oci_fail_os(e, fifo, errno);
        free(fifo);
        return ret;
    }
    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};
        int ready = poll(&p, 1, 100);

        if (ready < 0 && errno != EINTR) {
            ret = oci_fail_os(e, fifo, errno);
            goto out;
        }
        if (ready > 0) {
            ssize_t n = read(fd, &c, 1);

            if (n == 1)
                break;
            if (n < 0 && (errno == EAGAIN || errno == EINTR))
                continue;
            ret = oci_fail(e, MR_OCI_SETUP, "container %s: its process exited before it was started", oci_repr(id));
            goto out;
        }
        if (ready == 0 && !mr_pid_alive(pid, pid_start, has_start)) {
            ret = oci_fail(e, MR_OCI_SETUP, "container %s: its process exited before it was started", oci_repr(id));
            goto out;
        }
    }
    if (unlink(fifo) < 0) {
        ret = oci_fail_os(e, fifo, errno);
        goto out;
    }
    if (start_waits) {
        for (;;) {
            struct pollfd p = {fd, POLLIN, 0};
            int ready = poll(&p, 1, 100);

            if (ready > 0) {
                ssize_t n = read(fd, chunk, sizeof(chunk));

                if (n < 0 && (errno == EAGAIN || errno == EINTR))
                    continue;
                if (n <= 0)
                    break;
                mr_buf_put(&failure, chunk, (size_t)n);
            } else if (ready == 0 && !mr_pid_alive(pid, pid_start, has_start)) {
                break;
            }
        }
        if (failure.len) {
            char *s = failure.p, *end = s + failure.len;

            while (s < end && strchr(" \t\n\r\v\f", *s))
                s++;
            while (end > s && strchr(" \t\n\r\v\f", end[-1]))
                end--;
            *end = '\0';
            oci_one_line(s);
            ret = oci_fail(e, MR_OCI_SETUP, "%s", s);
        }
    }
out:
    mr_buf_free(&failure);
    close(fd);
    free(fifo);
    return ret;
}

static int open_fifo(const char *root, const char *id, const struct mr_json *st, struct mr_oci_error *e)
{
    char *dir = oci_state_dir(root, id);
    long long pid = 0, pid_start = 0;
    int has_start, ret;

    if (!dir)
        return oci_fail_os(e, NULL, ENOMEM);
    if (mr_json_int(mr_json_get(st, "pid"), &pid) < 0)
        pid = 0;
    has_start = mr_json_int(mr_json_get(st, "pid_start"), &pid_start) == 0;
    ret = mr_release_exec_fifo(dir, id, pid, pid_start, has_start, mr_json_truthy(mr_json_get(st, "start_waits")), e);
    free(dir);
    return ret;
}

int mr_oci_start(const char *root, const char *id, struct mr_oci_error *e)
{
    struct mr_json *st;
    int lock, status, ret;

    /* Two starts: one releases the process, the other finds it running. */
    if ((lock = mr_oci_lock(root, id, e)) < 0)
        return -1;
    if (!(st = oci_read_state(root, id, e))) {
        close(lock);
        return -1;
    }
    status = oci_record_status(root, st);
    if (status != MR_OCI_CREATED)
        ret = oci_fail(e, MR_OCI_SPEC, "cannot start container %s: it is %s, not created", oci_repr(id),
                       OCI_STATUS[status]);
    else
        ret = open_fifo(root, id, st, e);
    close(lock);
    if (ret == 0)
        run_recorded_hooks(root, st, "poststart");
    mr_json_free(st);
    return ret;
}

/* ---------------------------------------------------------------- kill */

int mr_oci_kill(const char *root, const char *id, int sig, int all, struct mr_oci_error *e)
{
    struct mr_json *st;
    struct oci_pids pids = {0};
    int lock, stopped, ret = 0;

    if ((lock = mr_oci_lock(root, id, e)) < 0)
        return -1;
    if (!(st = oci_read_state(root, id, e))) {
        close(lock);
        return -1;
    }
    stopped = oci_record_status(root, st) == MR_OCI_STOPPED;
    if (stopped && !all) {
        /* containerd's shim treats only these words as "already gone" (runc's text). */
        ret = oci_fail(e, MR_OCI_SPEC, "container %s: container not running", oci_repr(id));
        goto out;
    }
    const char *relpath = mr_json_str(mr_json_get(st, "cgroup"));
    int named = relpath && relpath[0] && strcmp(relpath, ".") && strcmp(relpath, "/");

    /* Not a half-made record's: its cgroup may never have been made, and be another's.
     * runc 1.1: --all signals what is in the cgroup (after an exit, what is left: a --pid
     * host container's orphans) and succeeds when nothing is. */
    if (all && !mr_json_truthy(mr_json_get(st, "creating")) && (!stopped || named)) {
        struct oci_cgroup cg;

        if ((ret = oci_record_cgroup(st, &cg, e)) < 0)
            goto out;
        ret = oci_read_pids(cg.dirs, cg.n, &pids, e);
        oci_cgroup_free(&cg);
        if (ret < 0)
            goto out;
    }
    for (size_t i = 0; i < pids.n; i++)
        if (kill((pid_t)pids.v[i], sig) < 0 && errno != ESRCH) {
            ret = oci_fail_os(e, NULL, errno);
            goto out;
        }
    /* Else the process itself, through a pidfd checked against its start time. */
    if (!stopped && !pids.n) {
        int sent = oci_send_signal(st, sig, e);

        if (sent < 0)
            ret = -1;
        else if (!sent && !all)
            ret = oci_fail(e, MR_OCI_SPEC, "container %s: container not running", oci_repr(id));
    }
out:
    free(pids.v);
    close(lock);
    mr_json_free(st);
    return ret;
}

/* ---------------------------------------------------------------- delete */

static int thaw(const struct mr_json *st, struct mr_oci_error *e)
{
    const char *path = mr_json_str(mr_json_get(st, "freeze_file"));
    size_t n = path ? strlen(path) : 0;
    const char *value = n >= 14 && !strcmp(path + n - 14, "/freezer.state") ? "THAWED" : "0";
    int fd;

    if (!n)
        return oci_fail(e, MR_OCI_SPEC, "pause/resume needs a freezer (cgroup.freeze or the v1 freezer), which this "
                    "container's cgroup lacks");
    fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0 || write(fd, value, strlen(value)) < 0) {
        int err = errno;

        if (fd >= 0)
            close(fd);
        return oci_fail(e, MR_OCI_CGROUP, "write %s to %s: %s", value, path, strerror(err));
    }
    close(fd);
    return 0;
}

static int delete_locked(const char *root, const char *id, const char *dir, int force, struct mr_oci_error *e)
{
    struct mr_json *st = oci_read_state(root, id, e);
    char *state_json;
    struct stat sb;
    int status, ret = 0;

    if (!st) {
        if (e->kind != MR_OCI_STORE || !(state_json = oci_join(dir, "state.json")))
            return -1;
        ret = lstat(state_json, &sb);
        free(state_json);
        if (ret == 0)
            return -1;
        return mr_rmtree(dir, e); /* a create that died before it wrote anything: nothing else exists */
    }
    status = oci_record_status(root, st);
    if ((status == MR_OCI_RUNNING || status == MR_OCI_PAUSED) && !force) {
        ret = oci_fail(e, MR_OCI_SPEC, "cannot delete container %s that is %s: stop it first or use --force",
                       oci_repr(id), OCI_STATUS[status]);
        goto out;
    }
    if (status == MR_OCI_PAUSED && (ret = thaw(st, e)) < 0)
        goto out;
    if (status != MR_OCI_STOPPED && (ret = oci_send_signal(st, SIGKILL, e)) < 0)
        goto out;
    ret = 0;
    const struct mr_json *cgroup = mr_json_get(st, "cgroup");

    if (mr_json_truthy(cgroup)) {
        struct oci_cgroup cg;

        if ((ret = oci_record_cgroup(st, &cg, e)) < 0)
            goto out;
        if (mr_json_truthy(mr_json_get(st, "creating"))) {
            /* create records the path before it makes the cgroup: if it died before, the
             * path may be another's (a cgroupsPath of /system.slice), so only if unused. */
            ret = oci_cgroup_remove_if_unused(&cg, e);
            if (ret == 0)
                oci_warn("cgroup %s of half-created container %s is in use: left alone", mr_json_str(cgroup),
                         oci_repr(id));
            ret = ret < 0 ? -1 : 0;
        } else {
            ret = oci_cgroup_destroy(&cg, e); /* kills whatever is left in it, and waits for it to leave */
        }
        oci_cgroup_free(&cg);
        if (ret < 0)
            goto out;
    }
    for (double deadline = oci_monotonic() + 5; oci_alive(st) && oci_monotonic() < deadline;)
        oci_sleep(0.005);
    run_recorded_hooks(root, st, "poststop");
    ret = mr_rmtree(dir, e);
out:
    mr_json_free(st);
    return ret;
}

int mr_oci_delete(const char *root, const char *id, int force, struct mr_oci_error *e)
{
    char *dir;
    struct stat sb;
    int lock, ret;

    if (mr_oci_check_id(id, e) < 0)
        return -1;
    if (!(dir = oci_state_dir(root, id)))
        return oci_fail_os(e, NULL, ENOMEM);
    lock = mr_oci_lock(root, id, e); /* a concurrent verb waits, then finds it gone */
    ret = lock < 0 ? -1 : delete_locked(root, id, dir, force, e);
    if (lock >= 0)
        close(lock);
    if (ret < 0 && e->kind == MR_OCI_STORE && force && lstat(dir, &sb) < 0)
        ret = 0; /* as runc: nothing to do */
    free(dir);
    return ret;
}

/* ---------------------------------------------------------------- ps, list */

/* The pids in the container's cgroup, sorted. */
static int container_pids(const char *root, const char *id, struct oci_pids *pids, struct mr_oci_error *e)
{
    struct mr_json *st = oci_read_state(root, id, e);
    struct oci_cgroup cg;
    int ret;

    if (!st)
        return -1;
    ret = oci_record_cgroup(st, &cg, e);
    mr_json_free(st);
    if (ret < 0)
        return -1;
    ret = oci_read_pids(cg.dirs, cg.n, pids, e);
    oci_cgroup_free(&cg);
    return ret;
}

static void put_pids_json(struct mr_buf *b, const struct oci_pids *pids)
{
    mr_buf_puts(b, "[");
    for (size_t i = 0; i < pids->n; i++)
        mr_buf_printf(b, "%s%lld", i ? ", " : "", pids->v[i]);
    mr_buf_puts(b, "]");
}

char *mr_oci_pids(const char *root, const char *id, struct mr_oci_error *e)
{
    struct oci_pids pids = {0};
    struct mr_buf b = {0};

    if (container_pids(root, id, &pids, e) < 0) {
        free(pids.v);
        return NULL;
    }
    put_pids_json(&b, &pids);
    free(pids.v);
    return b.p;
}

/* Characters, not bytes, as Python's ljust counts. */
static size_t width(const char *s)
{
    size_t n = 0;

    for (; *s; s++)
        n += ((unsigned char)*s & 0xc0) != 0x80;
    return n;
}

char *mr_oci_list_text(const char *root, int quiet, const char *format, struct mr_oci_error *e)
{
    char **ids;
    struct mr_json **states;
    struct mr_buf out = {0};
    size_t n_ids, count = 0;
    int ret = 0;

    if (oci_list_ids(root, &ids, &n_ids, e) < 0)
        return NULL;
    states = calloc(n_ids + 1, sizeof(*states));
    if (!states) {
        oci_free_ids(ids, n_ids);
        oci_fail_os(e, NULL, ENOMEM);
        return NULL;
    }
    for (size_t i = 0; i < n_ids; i++) { /* one that cannot be read is left out */
        struct mr_oci_error skip;

        if ((states[count] = oci_read_state(root, ids[i], &skip)))
            count++;
    }
    if (quiet) {
        for (size_t i = 0; i < count; i++) {
            mr_buf_puts(&out, i ? "\n" : "");
            mr_buf_puts(&out, oci_record_id(states[i]));
        }
        mr_buf_puts(&out, "\n");
    } else if (format && !strcmp(format, "json")) {
        mr_buf_puts(&out, "[");
        for (size_t i = 0; i < count && !ret; i++) {
            mr_buf_puts(&out, i ? ", " : "");
            ret = oci_write_state(&out, root, states[i], -1, 0, e);
        }
        mr_buf_puts(&out, "]\n");
    } else {
        static const char *const header[6] = {"ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"};
        char *cells[count + 1][6];
        size_t widths[6] = {0};

        for (int c = 0; c < 6; c++)
            cells[0][c] = strdup(header[c]);
        for (size_t i = 0; i < count; i++) {
            struct mr_buf row = {0};
            struct mr_json *state;

            /* the same fields as `state` shows, from the same writer */
            if ((ret = oci_write_state(&row, root, states[i], -1, 0, e)) < 0 ||
                !(state = mr_json_parse(row.p, row.len))) {
                mr_buf_free(&row);
                for (size_t k = 0; k < i; k++)
                    for (int c = 0; c < 6; c++)
                        free(cells[k + 1][c]);
                for (int c = 0; c < 6; c++)
                    free(cells[0][c]);
                if (ret == 0)
                    ret = oci_fail_os(e, NULL, ENOMEM);
                goto done;
            }
            mr_buf_free(&row);
            static const char *const keys[6] = {"id", "pid", "status", "bundle", "created", "owner"};

            for (int c = 0; c < 6; c++) {
                const struct mr_json *v = mr_json_get(state, keys[c]);
                struct mr_buf cell = {0};

                if (v && (v->type == MJ_STRING || v->type == MJ_NUMBER))
                    mr_buf_put(&cell, v->text, v->len);
                else if (v)
                    mr_json_write(&cell, v, -1, 0);
                mr_buf_puts(&cell, "");
                cells[i + 1][c] = cell.p;
            }
            mr_json_free(state);
        }
        for (size_t r = 0; r <= count; r++)
            for (int c = 0; c < 6; c++)
                if (width(cells[r][c]) > widths[c])
                    widths[c] = width(cells[r][c]);
        for (size_t r = 0; r <= count; r++) {
            size_t start = out.len;

            for (int c = 0; c < 6; c++) {
                mr_buf_puts(&out, c ? "   " : "");
                mr_buf_puts(&out, cells[r][c]);
                for (size_t k = width(cells[r][c]); k < widths[c]; k++)
                    mr_buf_puts(&out, " ");
                free(cells[r][c]);
            }
            while (out.len > start && out.p[out.len - 1] == ' ') /* rstrip */
                out.p[--out.len] = '\0';
            mr_buf_puts(&out, "\n");
        }
    }
    if (!ret && out.failed)
        ret = oci_fail_os(e, NULL, ENOMEM);
done:
    for (size_t i = 0; i < count; i++)
        mr_json_free(states[i]);
    free(states);
    oci_free_ids(ids, n_ids);
    if (ret < 0)
        mr_buf_free(&out);
    return out.p;
}

/* `ps`: the container's pids as JSON, `ps -ef`'s lines for them (ocips.c), or the lines of
 * ps(1) run with the arguments given whose PID column names one of them. */
char *mr_oci_ps_text(const char *root, const char *id, const char *format, char *const *ps_args, int n_ps_args,
                     struct mr_oci_error *e)
{
    char *argv[68] = {"ps"};
    struct oci_pids pids = {0};
    struct mr_buf out = {0}, shown = {0};
    int pipe_fds[2], status = 0, col = 1, n = 1, err;
    posix_spawn_file_actions_t actions;
    pid_t child;

    if (container_pids(root, id, &pids, e) < 0)
        goto failed;
    if (!format)
        format = "table";
    if (!strcmp(format, "json")) {
        put_pids_json(&shown, &pids);
        mr_buf_puts(&shown, "\n");
        free(pids.v);
        return shown.p;
    }
    if (strcmp(format, "table")) {
        oci_fail(e, MR_OCI_SPEC, "--format %s: use table or json", oci_repr(format));
        goto failed;
    }
    if (!n_ps_args) {
        if (oci_ps_table(&pids, &shown, e) < 0)
            goto failed;
        free(pids.v);
        return shown.p;
    }
    if (pipe2(pipe_fds, O_CLOEXEC) < 0) {
        oci_fail_os(e, NULL, errno);
        goto failed;
    }
    for (int i = 0; i < n_ps_args && n < 67; i++)
        argv[n++] = ps_args[i];
    argv[n] = NULL;
    /* posix_spawn, not fork: the caller may be a threaded Python process */
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], 1);
    err = posix_spawnp(&child, "ps", &actions, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&actions);
    close(pipe_fds[1]);
    if (err) {
        close(pipe_fds[0]);
        oci_fail_os(e, "ps", err);
        goto failed;
    }
    for (;;) {
        char chunk[4096];
        ssize_t r = read(pipe_fds[0], chunk, sizeof(chunk));

        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        mr_buf_put(&out, chunk, (size_t)r);
    }
    close(pipe_fds[0]);
    while (waitpid(child, &status, 0) < 0 && errno == EINTR)
        ;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        oci_fail(e, MR_OCI_OS, "ps ...: exit status %d",
                 WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
        goto failed;
    }
    mr_buf_puts(&out, "");
    mr_buf_puts(&shown, "");
    for (char *line = out.p, *next; line && *line; line = next) {
        char *copy, *save = NULL, *field;
        int k = 0, show = 0;

        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        if (line == out.p) { /* the header: which column is PID */
            copy = strdup(line);
            for (field = copy ? strtok_r(copy, " \t", &save) : NULL; field; field = strtok_r(NULL, " \t", &save), k++)
                if (!strcmp(field, "PID")) {
                    col = k;
                    break;
                }
            free(copy);
            mr_buf_printf(&shown, "%s\n", line);
            continue;
        }
        copy = strdup(line);
        for (field = copy ? strtok_r(copy, " \t", &save) : NULL; field; field = strtok_r(NULL, " \t", &save), k++) {
            if (k != col)
                continue;
            if (strspn(field, "0123456789") == strlen(field))
                for (size_t i = 0; i < pids.n; i++)
                    show |= pids.v[i] == strtoll(field, NULL, 10);
            break;
        }
        free(copy);
        if (show)
            mr_buf_printf(&shown, "%s\n", line);
    }
    if (shown.failed) {
        oci_fail_os(e, NULL, ENOMEM);
        goto failed;
    }
    free(pids.v);
    mr_buf_free(&out);
    return shown.p;
failed:
    free(pids.v);
    mr_buf_free(&out);
    mr_buf_free(&shown);
    return NULL;
}

void mr_oci_free(void *p)
{
    free(p);
}
