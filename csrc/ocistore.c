/*
 * ocistore.c - minirun-oci's state store (store.py's rules):
 *
 *   <root>/<id>/state.json   written by `create` (minirun/oci/runtime.py, store.write)
 *   <root>/<id>/exec.fifo    exists until `start` has released the process
 *
 * The root is used only if nobody else may write it or a directory above it; a verb
 * that changes a container holds the flock of its directory; the container's process
 * is signalled through a pidfd checked against its recorded start time (its pid may be
 * another's by now); trees are removed through directory fds, never following a link.
 * Status: stopped once the process is gone (or a zombie, or another one under its
 * pid), created while the fifo exists, paused while the cgroup's freezer says so,
 * running otherwise.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "oci.h"

const char *const OCI_STATUS[] = {"created", "running", "stopped", "paused"};

/* ---------------------------------------------------------------- ids and the root */

static int id_char(char c, const char *extra)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || (c && strchr(extra, c));
}

/* ids.check_id: `oci`, runc's ids (letters, digits and _ + - ., neither . nor ..);
 * else docker's names ([a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}). `len`: a NUL inside is refused. */
int mr_check_id(const char *id, size_t len, int oci, struct mr_oci_error *e)
{
    int ok = len > 0 && strlen(id) == len;

    if (oci) {
        ok = ok && len <= 1024 && strcmp(id, ".") && strcmp(id, "..");
        for (const char *p = id; ok && *p; p++)
            ok = id_char(*p, "_+-.");
        if (!ok)
            return oci_fail(e, MR_OCI_STORE, "invalid container id %s: use letters, digits, '_', '+', '-', '.' "
                            "(no '/', not '.' or '..')", oci_repr(id));
        return 0;
    }
    ok = ok && len <= 64 && id_char(id[0], "");
    for (const char *p = id; ok && *p; p++)
        ok = id_char(*p, "_.-");
    if (!ok)
        return oci_fail(e, MR_OCI_STORE, "invalid container name %s: use letters, digits, '_', '.', '-' (at most 64)",
                        oci_repr(id));
    return 0;
}

int mr_oci_check_id(const char *id, struct mr_oci_error *e)
{
    return mr_check_id(id, strlen(id), 1, e);
}

/* os.path.realpath: what exists resolved (a dangling link too: to where it points),
 * what does not yet appended as written. */
static char *realpath_lenient(const char *path, int depth)
{
    char *abs = NULL, *real, *slash, *parent, *out = NULL;
    char cwd[PATH_MAX];

    if (path[0] != '/') {
        if (!getcwd(cwd, sizeof(cwd)) || asprintf(&abs, "%s/%s", cwd, path) < 0)
            return NULL;
    } else if (!(abs = strdup(path))) {
        return NULL;
    }
    for (size_t n = strlen(abs); n > 1 && abs[n - 1] == '/'; n--)
        abs[n - 1] = '\0';
    real = realpath(abs, NULL);
    if (real || (errno != ENOENT && errno != ENOTDIR) || !strcmp(abs, "/")) {
        free(abs);
        return real;
    }
    slash = strrchr(abs, '/');
    *slash = '\0';
    parent = realpath_lenient(abs[0] ? abs : "/", depth);
    if (parent) {
        const char *name = slash + 1;
        char target[PATH_MAX], *next;
        struct stat sb;
        ssize_t n;

        if (!strcmp(name, ".") || !name[0]) {
            out = parent;
            parent = NULL;
        } else if (!strcmp(name, "..")) {
            char *up = strrchr(parent, '/');

            up[up == parent ? 1 : 0] = '\0';
            out = parent;
            parent = NULL;
        } else if (asprintf(&out, "%s%s%s", parent, strcmp(parent, "/") ? "/" : "", name) < 0) {
            out = NULL;
        } else if (depth < 40 && lstat(out, &sb) == 0 && S_ISLNK(sb.st_mode) &&
                   (n = readlink(out, target, sizeof(target) - 1)) > 0) {
            target[n] = '\0';
            if (target[0] == '/')
                next = strdup(target);
            else if (asprintf(&next, "%s/%s", parent, target) < 0)
                next = NULL;
            if (next) {
                free(out);
                out = realpath_lenient(next, depth + 1);
                free(next);
            }
        }
    }
    free(parent);
    free(abs);
    return out;
}

/* store.checked_root (state.check_trusted_dir): the root resolved once, and refused
 * unless it, if it exists, is ours alone, and so is every directory above it but for
 * sticky ones: its state.json names the pids signalled and the hooks `delete` runs. */
char *mr_oci_checked_root(const char *root, struct mr_oci_error *e)
{
    char *real = realpath_lenient(root, 0), *current;
    uid_t euid = geteuid();

    if (!real) {
        oci_fail_os(e, root, errno);
        return NULL;
    }
    current = malloc(strlen(real) + 2);
    if (!current) {
        free(real);
        oci_fail_os(e, NULL, ENOMEM);
        return NULL;
    }
    for (size_t end = 0;; end++) {
        struct stat st;

        if (real[end] != '/' && real[end] != '\0')
            continue;
        memcpy(current, real, end);
        current[end] = '\0';
        if (!end)
            strcpy(current, "/");
        if (lstat(current, &st) < 0) {
            if (errno == ENOENT)
                break; /* made later, by us */
            oci_fail_os(e, current, errno);
            goto refused;
        }
        int last = !strcmp(current, real);
        int owner_ok = st.st_uid == euid || (!last && st.st_uid == 0);
        int open_to_others = (st.st_mode & 022) && (last || !(st.st_mode & S_ISVTX));

        if (!S_ISDIR(st.st_mode) || !owner_ok || open_to_others) {
            oci_fail(e, MR_OCI_STORE, "refusing the state directory %s: %s is %s of uid %u, mode %o, which uid %u "
                 "does not control alone", root, current, S_ISDIR(st.st_mode) ? "a directory" : "not a directory",
                 (unsigned)st.st_uid, (unsigned)(st.st_mode & 07777), (unsigned)euid);
            goto refused;
        }
        if (last || !real[end] || (end == 0 && !real[1]))
            break;
    }
    free(current);
    return real;
refused:
    free(current);
    free(real);
    return NULL;
}

char *oci_state_dir(const char *root, const char *id)
{
    return oci_join(root, id);
}

/* ---------------------------------------------------------------- the record */

struct mr_json *oci_read_state(const char *root, const char *id, struct mr_oci_error *e)
{
    char *dir, *path;
    struct mr_buf b = {0};
    struct mr_json *st;
    char chunk[8192];
    int fd;

    if (mr_oci_check_id(id, e) < 0)
        return NULL;
    dir = oci_state_dir(root, id);
    path = dir ? oci_join(dir, "state.json") : NULL;
    free(dir);
    if (!path) {
        oci_fail_os(e, NULL, ENOMEM);
        return NULL;
    }
    fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            oci_fail(e, MR_OCI_STORE, "container %s does not exist", oci_repr(id));
        else
            oci_fail_os(e, path, errno);
        free(path);
        return NULL;
    }
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof(chunk));

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            oci_fail_os(e, path, errno);
            close(fd);
            free(path);
            mr_buf_free(&b);
            return NULL;
        }
        if (!n)
            break;
        mr_buf_put(&b, chunk, (size_t)n);
    }
    close(fd);
    free(path);
    st = b.failed ? NULL : mr_json_parse(b.p ? b.p : "", b.len);
    mr_buf_free(&b);
    if (!st || st->type != MJ_OBJECT || !mr_json_str(mr_json_get(st, "id"))) {
        mr_json_free(st);
        oci_fail(e, MR_OCI_STORE, "container %s: state.json is damaged", oci_repr(id));
        return NULL;
    }
    return st;
}

const char *oci_record_id(const struct mr_json *st)
{
    return mr_json_str(mr_json_get(st, "id"));
}

/* The directory's flock for one change of the container (store.locked): a waiter that
 * gets it after the directory was removed (or made again) finds the container gone. */
int mr_oci_lock(const char *root, const char *id, struct mr_oci_error *e)
{
    struct stat held, now;
    char *dir;
    int fd;

    if (mr_oci_check_id(id, e) < 0)
        return -1;
    if (!(dir = oci_state_dir(root, id)))
        return oci_fail_os(e, NULL, ENOMEM);
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        int err = errno;

        if (err == ENOENT || err == ENOTDIR)
            oci_fail(e, MR_OCI_STORE, "container %s does not exist", oci_repr(id));
        else
            oci_fail_os(e, dir, err);
        free(dir);
        return -1;
    }
    while (flock(fd, LOCK_EX) < 0) {
        if (errno != EINTR) {
            oci_fail_os(e, dir, errno);
            goto failed;
        }
    }
    if (fstat(fd, &held) < 0 || lstat(dir, &now) < 0 || held.st_dev != now.st_dev || held.st_ino != now.st_ino) {
        oci_fail(e, MR_OCI_STORE, "container %s does not exist", oci_repr(id));
        goto failed;
    }
    free(dir);
    return fd;
failed:
    close(fd);
    free(dir);
    return -1;
}

/* (start time in clock ticks, state letter) of a process: -1 once it is gone. */
static int proc_stat(long long pid, long long *started, char *letter)
{
    char path[64], buf[1024], *p;
    ssize_t n;
    int fd;

    snprintf(path, sizeof(path), "/proc/%lld/stat", pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    p = strrchr(buf, ')');
    if (!p)
        return -1;
    p++;
    for (int field = 0; field <= 19; field++) {
        char *end;

        while (*p == ' ' || *p == '\n')
            p++;
        if (!*p)
            return -1;
        if (field == 0)
            *letter = *p;
        if (field == 19) {
            *started = strtoll(p, &end, 10);
            return end > p ? 0 : -1;
        }
        while (*p && *p != ' ' && *p != '\n')
            p++;
    }
    return -1;
}

static int pid_alive(long long pid, long long pid_start, int has_start)
{
    long long started;
    char letter = 0;

    if (pid <= 0 || !has_start || proc_stat(pid, &started, &letter) < 0)
        return 0;
    return started == pid_start && letter != 'Z' && letter != 'X';
}

struct who {
    long long pid, pid_start;
    int has_start;
};

static struct who who_of(const struct mr_json *st)
{
    struct who w = {0, 0, 0};

    if (mr_json_int(mr_json_get(st, "pid"), &w.pid) < 0)
        w.pid = 0;
    w.has_start = mr_json_int(mr_json_get(st, "pid_start"), &w.pid_start) == 0;
    return w;
}

int mr_pid_alive(long long pid, long long pid_start, int has_start)
{
    return pid_alive(pid, pid_start, has_start);
}

long long mr_start_time(long long pid)
{
    long long started;
    char letter;

    return proc_stat(pid, &started, &letter) < 0 ? -1 : started;
}

int oci_alive(const struct mr_json *st)
{
    struct who w = who_of(st);

    return pid_alive(w.pid, w.pid_start, w.has_start);
}

int mr_oci_status(const char *root, const char *id, long long pid, long long pid_start, int has_start,
                  const char *freeze_file)
{
    char *dir, *fifo, text[32];
    struct stat sb;
    int found, fd;

    if (!pid_alive(pid, pid_start, has_start))
        return MR_OCI_STOPPED;
    dir = oci_state_dir(root, id);
    fifo = dir ? oci_join(dir, FIFO) : NULL;
    found = fifo && stat(fifo, &sb) == 0;
    free(dir);
    free(fifo);
    if (found)
        return MR_OCI_CREATED;
    if (freeze_file && freeze_file[0] && (fd = open(freeze_file, O_RDONLY | O_CLOEXEC)) >= 0) {
        ssize_t n = read(fd, text, sizeof(text) - 1);

        close(fd);
        if (n > 0) {
            text[n] = '\0';
            text[strcspn(text, " \t\n\r")] = '\0';
            if (!strcmp(text, "1") || !strcmp(text, "FROZEN") || !strcmp(text, "FREEZING"))
                return MR_OCI_PAUSED;
        }
    }
    return MR_OCI_RUNNING;
}

int oci_record_status(const char *root, const struct mr_json *st)
{
    struct who w = who_of(st);

    return mr_oci_status(root, oci_record_id(st), w.pid, w.pid_start, w.has_start,
                         mr_json_str(mr_json_get(st, "freeze_file")));
}

/* store.oci_state: the runtime-spec's state plus runc's rootfs, created and owner. */
int oci_write_state(struct mr_buf *b, const char *root, const struct mr_json *st, int indent, int level,
                           struct mr_oci_error *e)
{
    static const char *const copied[] = {"bundle", "rootfs", "created"};
    const struct mr_json *owner = mr_json_get(st, "owner"), *annotations = mr_json_get(st, "annotations");
    int status = oci_record_status(root, st);

    for (int i = 0; i < 3; i++)
        if (!mr_json_get(st, copied[i]))
            return oci_fail(e, MR_OCI_STORE, "container %s: state.json is damaged (no %s)", oci_repr(oci_record_id(st)),
                        copied[i]);
    mr_buf_puts(b, "{");
    mr_json_newline(b, indent, level + 1);
    mr_buf_puts(b, "\"ociVersion\": \"" OCI_VERSION "\"");
    mr_buf_puts(b, indent < 0 ? ", " : ",");
    mr_json_newline(b, indent, level + 1);
    mr_buf_puts(b, "\"id\": ");
    mr_json_write(b, mr_json_get(st, "id"), indent, level + 1);
    mr_buf_puts(b, indent < 0 ? ", " : ",");
    mr_json_newline(b, indent, level + 1);
    mr_buf_puts(b, "\"pid\": ");
    if (status != MR_OCI_STOPPED)
        mr_json_write(b, mr_json_get(st, "pid"), indent, level + 1);
    else
        mr_buf_puts(b, "0");
    mr_buf_puts(b, indent < 0 ? ", " : ",");
    mr_json_newline(b, indent, level + 1);
    mr_buf_printf(b, "\"status\": \"%s\"", OCI_STATUS[status]);
    for (int i = 0; i < 3; i++) {
        mr_buf_puts(b, indent < 0 ? ", " : ",");
        mr_json_newline(b, indent, level + 1);
        mr_buf_printf(b, "\"%s\": ", copied[i]);
        mr_json_write(b, mr_json_get(st, copied[i]), indent, level + 1);
    }
    mr_buf_puts(b, indent < 0 ? ", " : ",");
    mr_json_newline(b, indent, level + 1);
    mr_buf_puts(b, "\"owner\": ");
    if (owner)
        mr_json_write(b, owner, indent, level + 1);
    else
        mr_buf_puts(b, "\"\"");
    mr_buf_puts(b, indent < 0 ? ", " : ",");
    mr_json_newline(b, indent, level + 1);
    mr_buf_puts(b, "\"annotations\": ");
    if (mr_json_truthy(annotations))
        mr_json_write(b, annotations, indent, level + 1);
    else
        mr_buf_puts(b, "{}");
    mr_json_newline(b, indent, level);
    mr_buf_puts(b, "}");
    if (b->failed)
        return oci_fail_os(e, NULL, ENOMEM);
    return 0;
}

char *oci_state_text(const char *root, const struct mr_json *st, int indent, struct mr_oci_error *e)
{
    struct mr_buf b = {0};

    if (oci_write_state(&b, root, st, indent, 0, e) < 0) {
        mr_buf_free(&b);
        return NULL;
    }
    return b.p;
}

char *mr_oci_state(const char *root, const char *id, int indent, struct mr_oci_error *e)
{
    struct mr_json *st = oci_read_state(root, id, e);
    char *text;

    if (!st)
        return NULL;
    text = oci_state_text(root, st, indent, e);
    mr_json_free(st);
    return text;
}

/* state.send_signal: through a pidfd taken first, then checked against the recorded start
 * time, so it names the very process recorded or nothing. 1 sent, 0 gone, -1 error. */
int mr_send_signal(long long pid, long long pid_start, int has_start, int sig, struct mr_oci_error *e)
{
    long long started;
    char letter;
    int fd;

    if (pid <= 0 || !has_start || !pid_start)
        return 0;
    fd = (int)syscall(SYS_pidfd_open, (pid_t)pid, 0);
    if (fd < 0)
        return errno == ESRCH ? 0 : oci_fail_os(e, NULL, errno);
    if (proc_stat(pid, &started, &letter) < 0 || started != pid_start) {
        close(fd);
        return 0;
    }
    if (syscall(SYS_pidfd_send_signal, fd, sig, NULL, 0) < 0) {
        int err = errno;

        close(fd);
        return err == ESRCH ? 0 : oci_fail_os(e, NULL, err);
    }
    close(fd);
    return 1;
}

int oci_send_signal(const struct mr_json *st, int sig, struct mr_oci_error *e)
{
    struct who w = who_of(st);

    return mr_send_signal(w.pid, w.pid_start, w.has_start, sig, e);
}

/* ---------------------------------------------------------------- removing a state directory */

static int open_subdir(int dir_fd, const char *name)
{
    int flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC, fd, path_fd;
    char proc[64];

    fd = openat(dir_fd, name, flags);
    if (fd >= 0 || (errno != EACCES && errno != EPERM))
        return fd;
    /* Mode 000 (overlayfs's work/work): chmod it through an O_PATH fd of this very
     * directory, no name lookup in between. */
    path_fd = openat(dir_fd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (path_fd < 0)
        return -1;
    snprintf(proc, sizeof(proc), "/proc/self/fd/%d", path_fd);
    if (chmod(proc, 0700) < 0) {
        int err = errno;

        close(path_fd);
        errno = err;
        return -1;
    }
    close(path_fd);
    return openat(dir_fd, name, flags);
}

/* The layout getdents64(2) fills its buffer with (glibc declares none). */
struct linux_dirent64 {
    uint64_t d_ino;
    int64_t d_off;
    unsigned short d_reclen;
    unsigned char d_type;
    char d_name[];
};

#define DIRENT_BUF_SIZE 32768

/* state.rmtree's _remove_entry: `name` in dir_fd, a directory with all it holds, anything
 * else (a link included) by unlink: a link is removed, never followed. The directory is
 * read with getdents64 itself, not fdopendir, whose fstat and two fcntls per directory
 * (a detached container's data directory has dozens: the overlay's upper and work trees) check what
 * open_subdir's O_DIRECTORY | O_CLOEXEC made sure of already. */
static int remove_entry(int dir_fd, const char *name, struct mr_oci_error *e)
{
    int fd = open_subdir(dir_fd, name), ret = 0;
    char **names = NULL, *buf;
    int *is_dir = NULL, n = 0;
    long got;

    if (fd < 0) {
        if (errno == ENOENT)
            return 0;
        if (errno != ENOTDIR && errno != ELOOP)
            return oci_fail_os(e, name, errno);
        if (unlinkat(dir_fd, name, 0) < 0 && errno != ENOENT)
            return oci_fail_os(e, name, errno);
        return 0;
    }
    buf = malloc(DIRENT_BUF_SIZE); /* not on the stack: the tree is the container's, as deep as it made it */
    if (!buf) {
        close(fd);
        return oci_fail_os(e, name, ENOMEM);
    }
    /* An error reading ends the listing, as readdir's NULL did: the removal then says what is left. */
    while (!ret && (got = syscall(SYS_getdents64, fd, buf, DIRENT_BUF_SIZE)) > 0) {
        for (long at = 0; at < got && !ret;) {
            struct linux_dirent64 *ent = (struct linux_dirent64 *)(buf + at);
            char **grown_names;
            int *grown_dirs, dir = ent->d_type == DT_DIR;
            struct stat sb;

            at += ent->d_reclen;
            if (!strcmp(ent->d_name, ".") || !strcmp(ent->d_name, ".."))
                continue;
            if (ent->d_type == DT_UNKNOWN)
                dir = fstatat(fd, ent->d_name, &sb, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(sb.st_mode);
            grown_names = realloc(names, (size_t)(n + 1) * sizeof(*names));
            if (grown_names)
                names = grown_names;
            grown_dirs = realloc(is_dir, (size_t)(n + 1) * sizeof(*is_dir));
            if (grown_dirs)
                is_dir = grown_dirs;
            if (!grown_names || !grown_dirs || !(names[n] = strdup(ent->d_name))) {
                ret = oci_fail_os(e, NULL, ENOMEM);
                break;
            }
            is_dir[n++] = dir;
        }
    }
    free(buf);
    for (int i = 0; i < n; i++) {
        if (!ret) {
            if (is_dir[i])
                ret = remove_entry(fd, names[i], e);
            else if (unlinkat(fd, names[i], 0) < 0) {
                if (errno == EISDIR) /* replaced by a directory meanwhile */
                    ret = remove_entry(fd, names[i], e);
                else if (errno != ENOENT)
                    ret = oci_fail_os(e, names[i], errno);
            }
        }
        free(names[i]);
    }
    free(names);
    free(is_dir);
    close(fd);
    if (!ret && unlinkat(dir_fd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
        ret = oci_fail_os(e, name, errno);
    return ret;
}

/* Swapped in, not renamed over: ext4 (auto_da_alloc) writes a file's data out at once when it
 * replaces another by rename(2), and a state record lives milliseconds; swapped, it is never
 * written out (on this machine kind's ext4, without a journal and mounted -o discard, every block
 * allocated and then freed costs a synchronous discard: ~0.15 ms per update). Once swapped, the
 * record is in place: `tmp` then holds the old one, whose removal is best effort (a leftover has a
 * hidden name, and goes with the directory). rename(2) where the swap fails for any reason: nothing
 * to swap with yet, a filesystem or a seccomp filter that refuses it; its error is the one told. */
#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1) /* linux/fs.h; the static front's libc (musl 1.2.3) has no renameat2 */
#endif
int mr_replace_file(const char *tmp, const char *final, struct mr_oci_error *e)
{
    if (syscall(SYS_renameat2, AT_FDCWD, tmp, AT_FDCWD, final, RENAME_EXCHANGE) == 0) {
        unlink(tmp);
        return 0;
    }
    if (rename(tmp, final) == 0)
        return 0;
    return oci_fail_os(e, final, errno);
}

int mr_rmtree(const char *path, struct mr_oci_error *e)
{
    char *copy = strdup(path), *slash, *parent, *name;
    int parent_fd, ret;

    if (!copy)
        return oci_fail_os(e, NULL, ENOMEM);
    slash = strrchr(copy, '/');
    if (slash) {
        *slash = '\0';
        parent = slash == copy ? "/" : copy;
        name = slash + 1;
    } else {
        parent = ".";
        name = copy;
    }
    parent_fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (parent_fd < 0) {
        ret = errno == ENOENT ? 0 : oci_fail_os(e, parent, errno);
        free(copy);
        return ret;
    }
    ret = remove_entry(parent_fd, name, e);
    close(parent_fd);
    free(copy);
    return ret;
}

/* ---------------------------------------------------------------- the containers under the root */

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* store.list_ids: the names under the root that hold a state.json, sorted; not hidden ones. */
int oci_list_ids(const char *root, char ***ids, size_t *n, struct mr_oci_error *e)
{
    DIR *d = opendir(root);
    struct dirent *ent;

    *ids = NULL;
    *n = 0;
    if (!d)
        return errno == ENOENT ? 0 : oci_fail_os(e, root, errno);
    while ((ent = readdir(d))) {
        char *path;
        struct stat sb;
        char **grown;

        if (ent->d_name[0] == '.') /* nor a create's directory before its rename (.new-*) */
            continue;
        if (asprintf(&path, "%s/%s/state.json", root, ent->d_name) < 0)
            continue;
        if (stat(path, &sb) == 0 && S_ISREG(sb.st_mode) && (grown = realloc(*ids, (*n + 1) * sizeof(char *)))) {
            *ids = grown;
            (*ids)[(*n)++] = strdup(ent->d_name);
        }
        free(path);
    }
    closedir(d);
    if (*n)
        qsort(*ids, *n, sizeof(char *), name_cmp);
    return 0;
}

void oci_free_ids(char **ids, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(ids[i]);
    free(ids);
}

char *mr_oci_list_ids(const char *root, struct mr_oci_error *e)
{
    struct mr_buf b = {0};
    char **ids;
    size_t n;

    if (oci_list_ids(root, &ids, &n, e) < 0)
        return NULL;
    mr_buf_puts(&b, "");
    for (size_t i = 0; i < n; i++)
        mr_buf_printf(&b, "%s\n", ids[i]);
    oci_free_ids(ids, n);
    return b.p;
}
