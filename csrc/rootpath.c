/*
 * rootpath.c - every path minirun creates or mounts on inside a container,
 * resolved inside its root, and every mount made through the resulting fd.
 *
 * A root filesystem is untrusted: `data -> /etc` in it must not make
 * `-v SRC:/data/sub` land on (or create) the host's /etc/sub, before pivot_root
 * when the root is only a host directory, nor after it (CVE-2019-19921 and
 * CVE-2023-27561 class). So a path is never handed to mount(2) or mkdir(2) as a
 * string. It is resolved as if the root were `/` (absolute symlinks restart at
 * the root, `..` stops there):
 *
 *   - openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS) when the kernel has it
 *     (5.6) and nothing is missing;
 *   - else, and to create what is missing, a walk of our own, one component at
 *     a time with O_PATH|O_NOFOLLOW, following symlinks ourselves (at most 40)
 *     and creating missing directories with mkdirat() on the resolved parent.
 *
 * The mount then goes onto the fd: move_mount() of a tree cloned by open_tree()
 * for binds (5.2), mount(2) on "." after fchdir(fd) for a directory, or on
 * /proc/self/fd/N for a file. Bind flags (ro, nosuid, nodev, noexec) are set on
 * the cloned tree with mount_setattr(AT_RECURSIVE) (5.12) before it is
 * attached, which changes those flags only: whatever the source mounts had
 * (nosuid, nodev, noexec ...) stays. Without it, each mount of the tree is
 * remounted from /proc/self/mountinfo, repeating its own flags (a bind remount
 * that drops a locked flag fails with EPERM in a user namespace, and silently
 * drops it elsewhere).
 *
 * MINIRUN_LEGACY_MOUNT_API=1 in minirun's environment makes this file behave
 * as on a kernel without openat2, open_tree/move_mount and mount_setattr, so
 * the tests prove the fallbacks too.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "minirun.h"

/* Older headers lack these; the numbers are the same on every architecture. */
#ifndef SYS_open_tree
#define SYS_open_tree 428
#endif
#ifndef SYS_move_mount
#define SYS_move_mount 429
#endif
#ifndef SYS_openat2
#define SYS_openat2 437
#endif
#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442
#endif

struct mr_open_how {
    uint64_t flags, mode, resolve;
};
#define MR_RESOLVE_NO_MAGICLINKS 0x02
#define MR_RESOLVE_IN_ROOT 0x10

struct mr_mount_attr {
    uint64_t attr_set, attr_clr, propagation, userns_fd;
};
#define MR_MOUNT_ATTR_RDONLY 0x01
#define MR_MOUNT_ATTR_NOSUID 0x02
#define MR_MOUNT_ATTR_NODEV 0x04
#define MR_MOUNT_ATTR_NOEXEC 0x08

#define MR_OPEN_TREE_CLONE 1
#define MR_AT_RECURSIVE 0x8000
#define MR_MOVE_MOUNT_F_EMPTY_PATH 0x04
#define MR_MOVE_MOUNT_T_EMPTY_PATH 0x40

#ifndef PROC_SUPER_MAGIC
#define PROC_SUPER_MAGIC 0x9fa0
#endif

#define MAX_LINKS 40  /* as the kernel's ELOOP limit */
#define MAX_DEPTH 128 /* directories deep */

/* 1: behave as on a kernel without the new calls (read each time: cheap, and
 * the unit tests flip it within one process). */
static int legacy_api(void)
{
    const char *v = getenv("MINIRUN_LEGACY_MOUNT_API");

    return v && *v && strcmp(v, "0") != 0;
}

/* A syscall the kernel (or a filter) refuses as unknown: take the fallback. */
static int unsupported(int err)
{
    return err == ENOSYS || err == EPERM || err == E2BIG || err == EINVAL;
}

/* ---------------------------------------------------------------- resolution */

/* The component-by-component walk. Returns an O_PATH fd of the resolved path
 * or -errno. If the last component is missing and `parent` is given, returns
 * -ENOENT with *parent an fd of the directory that should hold it and `leaf`
 * its name: the caller creates it there. */
static int walk(int root_fd, const char *path, int how, int *parent, char *leaf)
{
    char rest[PATH_MAX * 2], target[PATH_MAX], name[NAME_MAX + 1];
    int stack[MAX_DEPTH + 1], depth = 0, links = 0, ret;
    char *p = rest;

    if (strlen(path) >= sizeof(rest))
        return -ENAMETOOLONG;
    strcpy(rest, path);
    stack[0] = root_fd;
    for (;;) {
        size_t len;
        int fd, last;
        struct stat st;

        while (*p == '/')
            p++;
        if (!*p) { /* the path ends on a directory we hold */
            ret = fcntl(stack[depth], F_DUPFD_CLOEXEC, 0);
            if (ret < 0)
                ret = -errno;
            goto out;
        }
        len = strcspn(p, "/");
        if (len > NAME_MAX) {
            ret = -ENAMETOOLONG;
            goto out;
        }
        memcpy(name, p, len);
        name[len] = '\0';
        p += len;
        last = p[strspn(p, "/")] == '\0';
        if (!strcmp(name, "."))
            continue;
        if (!strcmp(name, "..")) { /* never above the root */
            if (depth > 0)
                close(stack[depth--]);
            continue;
        }
        fd = openat(stack[depth], name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0 && errno == ENOENT) {
            if (last && !(how & MR_IN_ROOT_MKDIR)) {
                if (parent && (how & MR_IN_ROOT_MKDIR_PARENTS)) {
                    ret = fcntl(stack[depth], F_DUPFD_CLOEXEC, 0);
                    if (ret < 0) {
                        ret = -errno;
                        goto out;
                    }
                    *parent = ret;
                    strcpy(leaf, name);
                }
                ret = -ENOENT;
                goto out;
            }
            if (!(how & (MR_IN_ROOT_MKDIR | MR_IN_ROOT_MKDIR_PARENTS))) {
                ret = -ENOENT;
                goto out;
            }
            if (mkdirat(stack[depth], name, 0755) < 0 && errno != EEXIST) {
                ret = -errno;
                goto out;
            }
            fd = openat(stack[depth], name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
        }
        if (fd < 0) {
            ret = -errno;
            goto out;
        }
        if (fstat(fd, &st) < 0) {
            ret = -errno;
            close(fd);
            goto out;
        }
        /* As the kernel: a trailing slash follows even a NOFOLLOW last link. */
        if (S_ISLNK(st.st_mode) && !(last && *p != '/' && (how & MR_IN_ROOT_NOFOLLOW))) {
            /* Follow it ourselves: its text replaces the component, an absolute
             * one restarting at the root, never at the host's. */
            ssize_t n = readlinkat(fd, "", target, sizeof(target) - 1);
            size_t tail = strlen(p);

            close(fd);
            if (n < 0) {
                ret = -errno;
                goto out;
            }
            if (++links > MAX_LINKS) {
                ret = -ELOOP;
                goto out;
            }
            if ((size_t)n + 1 + tail >= sizeof(rest)) {
                ret = -ENAMETOOLONG;
                goto out;
            }
            target[n] = '\0';
            memmove(rest + n + 1, p, tail + 1);
            memcpy(rest, target, (size_t)n);
            rest[n] = '/';
            p = rest;
            if (target[0] == '/')
                while (depth > 0)
                    close(stack[depth--]);
            continue;
        }
        if (last) {
            ret = fd;
            goto out;
        }
        if (!S_ISDIR(st.st_mode)) {
            close(fd);
            ret = -ENOTDIR;
            goto out;
        }
        if (depth == MAX_DEPTH) {
            close(fd);
            ret = -ENAMETOOLONG;
            goto out;
        }
        stack[++depth] = fd;
    }
out:
    while (depth > 0)
        close(stack[depth--]);
    return ret;
}

int mr_open_in_root(int root_fd, const char *path, int how, int *parent, char *leaf)
{
    if (parent)
        *parent = -1;
    if (!legacy_api()) {
        struct mr_open_how oh = {O_PATH | O_CLOEXEC, 0, MR_RESOLVE_IN_ROOT | MR_RESOLVE_NO_MAGICLINKS};
        int fd;

        if (how & MR_IN_ROOT_NOFOLLOW)
            oh.flags |= O_NOFOLLOW;
        fd = (int)syscall(SYS_openat2, root_fd, path, &oh, sizeof(oh));
        if (fd >= 0)
            return fd;
        /* ENOENT: something to create, which the walk does; EAGAIN: a rename
         * raced a "..", which the walk does not care about. */
        if (errno != ENOENT && errno != EAGAIN && !unsupported(errno))
            return -errno;
        if (errno == ENOENT && !(how & (MR_IN_ROOT_MKDIR | MR_IN_ROOT_MKDIR_PARENTS)))
            return -ENOENT;
    }
    return walk(root_fd, path, how, parent, leaf);
}

/* ---------------------------------------------------------------- flags */

/* statvfs flags -> the mount flags a bind remount must repeat (it may not
 * clear nosuid, nodev, noexec or the atime mode of the mount it changes). */
static unsigned long kept_flags(const struct statvfs *sv)
{
    static const struct { unsigned long st, ms; } map[] = {
        {ST_NOSUID, MS_NOSUID},     {ST_NODEV, MS_NODEV},         {ST_NOEXEC, MS_NOEXEC},
        {ST_NOATIME, MS_NOATIME},   {ST_NODIRATIME, MS_NODIRATIME}, {ST_RELATIME, MS_RELATIME},
        {ST_RDONLY, MS_RDONLY},
    };
    unsigned long flags = 0;

    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
        if (sv->f_flag & map[i].st)
            flags |= map[i].ms;
    return flags;
}

/* The MS_ flags of a bind op that mount_setattr can set on its tree. */
#define BIND_ATTRS (MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)

static uint64_t mount_attrs(unsigned long ms)
{
    return (ms & MS_RDONLY ? MR_MOUNT_ATTR_RDONLY : 0) | (ms & MS_NOSUID ? MR_MOUNT_ATTR_NOSUID : 0) |
           (ms & MS_NODEV ? MR_MOUNT_ATTR_NODEV : 0) | (ms & MS_NOEXEC ? MR_MOUNT_ATTR_NOEXEC : 0);
}

/* "/proc/self/fd/N": a path for mount(2) that is the fd's object, for targets
 * that are not directories (directories use fchdir and "."). */
static const char *fd_path(int fd, char *buf, size_t size)
{
    snprintf(buf, size, "/proc/self/fd/%d", fd);
    return buf;
}

/* mount(2) with the target given as an fd, cwd restored to root_fd after. */
static int mount_on_fd(const char *source, int fd, const char *fstype, unsigned long flags, const char *data,
                       int root_fd)
{
    struct stat st;
    char buf[64];
    int ret, err;

    if (fstat(fd, &st) < 0)
        return -1;
    if (!S_ISDIR(st.st_mode))
        return mount(source, fd_path(fd, buf, sizeof(buf)), fstype, flags, data);
    if (fchdir(fd) < 0)
        return -1;
    ret = mount(source, ".", fstype, flags, data);
    err = errno;
    (void)!fchdir(root_fd);
    errno = err;
    return ret;
}

/* A bind remount of the mount at `path` (seen from this process) with `attrs`
 * added to its own flags. */
static int remount_keeping(const char *path, unsigned long attrs)
{
    struct statvfs sv;

    if (statvfs(path, &sv) < 0)
        return -1;
    return mount(NULL, path, NULL, MS_BIND | MS_REMOUNT | kept_flags(&sv) | attrs, NULL);
}

/* Undo mountinfo's octal escapes (\040 for a space ...) in place. */
static void unescape(char *s)
{
    char *d = s;

    for (; *s; s++) {
        if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' && s[3] >= '0' && s[3] <= '7') {
            *d++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
            s += 3;
        } else {
            *d++ = *s;
        }
    }
    *d = '\0';
}

/* Fallback for mount_setattr(AT_RECURSIVE): remount the mount that fd is the
 * root of, then every mount below it (found by parent id in mountinfo). */
static int remount_tree(int fd, unsigned long attrs, int recursive, char *step, const char *what)
{
    static char info[1 << 20]; /* bss: costs nothing until read into */
    static char *lines[8192];
    static int ids[8192], parents[8192], chosen[8192];
    char buf[256], *at;
    int n_lines = 0, top = -1, added, mfd;
    ssize_t n, len = 0;

    snprintf(buf, sizeof(buf), "/proc/self/fdinfo/%d", fd);
    mfd = open(buf, O_RDONLY | O_CLOEXEC);
    if (mfd < 0)
        return mr_step(step, errno, "read the mount id of %s", what);
    n = read(mfd, buf, sizeof(buf) - 1);
    close(mfd);
    buf[n > 0 ? n : 0] = '\0';
    if ((at = strstr(buf, "mnt_id:")) != NULL)
        top = atoi(at + 7);
    if (top <= 0)
        return mr_step(step, EIO, "read the mount id of %s", what);
    mfd = open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC);
    if (mfd < 0)
        return mr_step(step, errno, "open /proc/self/mountinfo");
    while (len < (ssize_t)sizeof(info) - 1 && (n = read(mfd, info + len, sizeof(info) - 1 - (size_t)len)) > 0)
        len += n;
    close(mfd);
    info[len] = '\0';
    for (at = info; *at && n_lines < (int)(sizeof(lines) / sizeof(lines[0])); n_lines++) {
        char *end = strchrnul(at, '\n');

        lines[n_lines] = at;
        at = *end ? end + 1 : end;
        *end = '\0';
        if (sscanf(lines[n_lines], "%d %d", &ids[n_lines], &parents[n_lines]) != 2)
            ids[n_lines] = parents[n_lines] = -1;
        chosen[n_lines] = ids[n_lines] == top;
    }
    /* The top mount and, to a fixed point, every mount whose parent is chosen. */
    do {
        added = 0;
        for (int i = 0; recursive && i < n_lines; i++)
            for (int j = 0; !chosen[i] && j < n_lines; j++)
                if (chosen[j] && ids[j] == parents[i])
                    chosen[i] = added = 1;
    } while (added);
    for (int i = 0; i < n_lines; i++) {
        char *mnt = lines[i];

        if (!chosen[i])
            continue;
        /* fields: id parent major:minor root mountpoint ... */
        for (int f = 0; f < 4 && mnt; f++)
            mnt = strchr(mnt, ' ') ? strchr(mnt, ' ') + 1 : NULL;
        if (!mnt)
            continue;
        *strchrnul(mnt, ' ') = '\0';
        unescape(mnt);
        if (remount_keeping(mnt, attrs) < 0)
            return mr_step(step, errno, "remount %s (%s)", mnt, what);
    }
    return 0;
}

/* ---------------------------------------------------------------- binds */

/* Bind `source` (a path in this process's view, or source_fd if >= 0) onto the
 * already resolved target_fd, then add `attrs` (MS_RDONLY, MS_NOSUID, MS_NODEV,
 * MS_NOEXEC) to every mount of the new tree, keeping the flags each had. */
static int bind_onto(int root_fd, const char *source, int source_fd, int target_fd, const char *target,
                     int recursive, unsigned long attrs, char *step)
{
    char src_buf[64];
    int tree = -1, fd, ret;

    if (!legacy_api()) {
        unsigned int ot = MR_OPEN_TREE_CLONE | O_CLOEXEC | (recursive ? MR_AT_RECURSIVE : 0);

        if (source_fd >= 0)
            tree = (int)syscall(SYS_open_tree, source_fd, "", ot | AT_EMPTY_PATH);
        else
            tree = (int)syscall(SYS_open_tree, AT_FDCWD, source, ot);
        if (tree < 0 && !unsupported(errno))
            return mr_step(step, errno, "open_tree(%s) for %s", source, target);
    }
    if (tree >= 0) {
        struct mr_mount_attr ma = {mount_attrs(attrs), 0, 0, 0};

        /* On the detached tree, before anyone can see it writable. */
        if (ma.attr_set && syscall(SYS_mount_setattr, tree, "", AT_EMPTY_PATH | (recursive ? MR_AT_RECURSIVE : 0),
                                   &ma, sizeof(ma)) == 0)
            attrs = 0;
        else if (ma.attr_set && !unsupported(errno)) {
            ret = mr_step(step, errno, "mount_setattr(%s)", target);
            close(tree);
            return ret;
        }
        ret = (int)syscall(SYS_move_mount, tree, "", target_fd, "",
                           MR_MOVE_MOUNT_F_EMPTY_PATH | MR_MOVE_MOUNT_T_EMPTY_PATH);
        if (ret < 0)
            ret = mr_step(step, errno, "move_mount(%s)", target);
        close(tree);
        if (ret < 0)
            return ret;
    } else {
        if (source_fd >= 0)
            source = fd_path(source_fd, src_buf, sizeof(src_buf));
        if (mount_on_fd(source, target_fd, NULL, MS_BIND | (recursive ? MS_REC : 0), NULL, root_fd) < 0)
            return mr_step(step, errno, "bind mount(%s)", target);
    }
    if (!attrs) /* none asked, or mount_setattr set them */
        return 0;
    /* target_fd is what the bind now covers: resolve again to reach the new mount. */
    fd = mr_open_in_root(root_fd, target, 0, NULL, NULL);
    if (fd < 0)
        return mr_step(step, -fd, "reopen %s", target);
    ret = remount_tree(fd, attrs, recursive, step, target);
    close(fd);
    return ret;
}

/* A bind in a new user namespace (minirun-oci): the parent, still the host's root,
 * clones the source tree with its flags set before the child exists, and the child
 * attaches it (MR_OP_MOUNT with source_fd), as the namespace's root may not be able
 * to walk to the source (runc opens its mount sources in the runtime's context too).
 * -errno where this kernel cannot (no open_tree, no mount_setattr): the child then
 * binds by path. */
int mr_open_bind_tree(const char *source, int recursive, unsigned long attrs, char *step)
{
    struct mr_mount_attr ma = {mount_attrs(attrs), 0, 0, 0};
    unsigned int at_rec = recursive ? MR_AT_RECURSIVE : 0;
    int tree, ret;

    if (legacy_api())
        return mr_step(step, ENOSYS, "open_tree(%s)", source);
    tree = (int)syscall(SYS_open_tree, AT_FDCWD, source, MR_OPEN_TREE_CLONE | O_CLOEXEC | at_rec);
    if (tree < 0)
        return mr_step(step, errno, "open_tree(%s)", source);
    if (ma.attr_set && syscall(SYS_mount_setattr, tree, "", AT_EMPTY_PATH | at_rec, &ma, sizeof(ma)) < 0) {
        ret = mr_step(step, errno, "mount_setattr(%s)", source);
        close(tree);
        return ret;
    }
    return tree;
}

/* MR_OP_MASK's source: the container's /dev/null, checked to be the null
 * device, so a rootfs cannot turn a mask into a bind of a file of its choice. */
static int open_dev_null(int root_fd, char *step)
{
    struct stat st;
    int fd = mr_open_in_root(root_fd, "/dev/null", MR_IN_ROOT_NOFOLLOW, NULL, NULL);

    if (fd < 0)
        return mr_step(step, -fd, "open /dev/null");
    if (fstat(fd, &st) < 0 || !S_ISCHR(st.st_mode) || st.st_rdev != makedev(1, 3)) {
        close(fd);
        return mr_step(step, EINVAL, "/dev/null is not the null device (1:3)");
    }
    return fd;
}

/* ---------------------------------------------------------------- the plan */

static int is_dir_source(const struct mr_op *op)
{
    struct stat st;

    if (op->source_fd >= 0) /* a tree from mr_open_bind_tree */
        return fstat(op->source_fd, &st) == 0 && S_ISDIR(st.st_mode);
    return stat(op->source, &st) == 0 && S_ISDIR(st.st_mode);
}

/* A new node or link `leaf` in `parent`: mode and owner as asked (the umask and
 * the creator's ids are not what the plan says). */
static int make_node(int parent, const char *leaf, const struct mr_op *op, char *step)
{
    if (op->kind == MR_OP_SYMLINK) {
        if (symlinkat(op->source, parent, leaf) < 0)
            return mr_step(step, errno, "symlink(%s)", op->target);
        return 0;
    }
    if (mknodat(parent, leaf, op->mode, makedev(op->major, op->minor)) < 0 ||
        fchmodat(parent, leaf, op->mode & 07777, 0) < 0 ||
        ((op->uid || op->gid) && fchownat(parent, leaf, op->uid, op->gid, AT_SYMLINK_NOFOLLOW) < 0))
        return mr_step(step, errno, "mknod(%s)", op->target);
    return 0;
}

/* A node or link where the root already has something (--device /dev/x:/opt/x, a
 * linux.devices /dev/ptmx under runc's ptmx link): the entry is unlinked in its
 * resolved parent, so a link there is removed, not followed, and the new one is
 * made in its place. */
static int replace_node(int root_fd, const struct mr_op *op, char *step)
{
    char dir[PATH_MAX];
    const char *leaf = strrchr(op->target, '/');
    int parent, ret = 0;

    if (!leaf || !leaf[1] || (size_t)(leaf - op->target) >= sizeof(dir))
        return mr_step(step, EINVAL, "mknod(%s)", op->target);
    memcpy(dir, op->target, leaf - op->target);
    dir[leaf - op->target] = 0;
    parent = mr_open_in_root(root_fd, dir[0] ? dir : "/", 0, NULL, NULL);
    if (parent < 0)
        return mr_step(step, -parent, "resolve %s in the root", dir[0] ? dir : "/");
    leaf++;
    if (unlinkat(parent, leaf, 0) < 0 && errno != ENOENT)
        ret = mr_step(step, errno, "replace %s", op->target);
    else
        ret = make_node(parent, leaf, op, step);
    close(parent);
    return ret;
}

/* MR_OP_MOUNT, MR_OP_MKNOD, MR_OP_SYMLINK, MR_OP_MKDIR: the target and
 * missing parents are created inside the root. A file bind's target is created
 * as an empty file, any other mount's as a directory. */
static int create_and_open(int root_fd, const struct mr_op *op, char *step)
{
    const char *t = op->target;
    int parent = -1, fd, nofollow = 0, err = 0;
    char leaf[NAME_MAX + 1];
    int as_dir = op->kind == MR_OP_MKDIR ||
                 (op->kind == MR_OP_MOUNT && (!(op->flags & MS_BIND) || is_dir_source(op)));

    /* runc's rule: proc and sysfs only on a real directory (a symlinked /proc
     * would put the kernel's files wherever the rootfs likes). */
    if (op->kind == MR_OP_MOUNT && op->fstype && (!strcmp(op->fstype, "proc") || !strcmp(op->fstype, "sysfs")))
        nofollow = MR_IN_ROOT_NOFOLLOW;
    if (op->kind == MR_OP_SYMLINK || op->kind == MR_OP_MKNOD) /* the link itself is the leaf */
        nofollow = MR_IN_ROOT_NOFOLLOW;
    fd = mr_open_in_root(root_fd, t, nofollow | (as_dir ? MR_IN_ROOT_MKDIR : MR_IN_ROOT_MKDIR_PARENTS), &parent, leaf);
    if (fd >= 0) {
        struct statfs sf;
        struct stat st;

        if (op->kind == MR_OP_MKNOD || op->kind == MR_OP_SYMLINK) { /* kept (runc's /dev), or replaced */
            close(fd);
            return op->flags & MR_NODE_KEEP ? 0 : replace_node(root_fd, op, step);
        }
        if (nofollow && fstat(fd, &st) == 0 && S_ISLNK(st.st_mode)) {
            close(fd);
            return mr_step(step, ELOOP, "mount %s on %s: a symlink in the rootfs (%s needs a real directory)",
                           op->fstype, t, op->fstype);
        }
        /* runc's rule too: nothing but proc itself lands in the container's
         * proc (a planted `dev -> /proc` would cover it and its masks). */
        if (op->kind == MR_OP_MOUNT && fstatfs(fd, &sf) == 0 && sf.f_type == PROC_SUPER_MAGIC) {
            close(fd);
            return mr_step(step, EPERM, "mount on %s: the path leads into /proc", t);
        }
        return fd;
    }
    if (fd != -ENOENT || parent < 0)
        return mr_step(step, -fd, "resolve %s in the root", t);
    switch (op->kind) {
    case MR_OP_MKNOD:
    case MR_OP_SYMLINK:
        err = make_node(parent, leaf, op, step);
        break;
    default: { /* a file bind's mount point */
        int f = openat(parent, leaf, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);

        if (f < 0)
            err = mr_step(step, errno, "create %s", t);
        else
            close(f);
    }
    }
    if (err == 0 && op->kind == MR_OP_MOUNT) {
        fd = openat(parent, leaf, O_PATH | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
            err = mr_step(step, errno, "open %s", t);
    }
    close(parent);
    return err < 0 ? err : op->kind == MR_OP_MOUNT ? fd : 0;
}

int mr_apply_op(int root_fd, const struct mr_op *op, char *step)
{
    const char *t = op->target;
    int fd, ret = 0;

    if (op->kind == MR_OP_MASK || op->kind == MR_OP_READONLY) {
        struct stat st;

        /* Paths this kernel does not have are skipped. */
        fd = mr_open_in_root(root_fd, t, 0, NULL, NULL);
        if (fd == -ENOENT || fd == -ENOTDIR)
            return 0;
        if (fd < 0)
            return mr_step(step, -fd, "resolve %s in the root", t);
        if (fstat(fd, &st) < 0)
            ret = mr_step(step, errno, "stat(%s)", t);
        else if (op->kind == MR_OP_READONLY)
            ret = bind_onto(root_fd, t, fd, fd, t, 1, MS_RDONLY, step);
        else if (S_ISDIR(st.st_mode)) {
            if (mount_on_fd("tmpfs", fd, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k,mode=555",
                            root_fd) < 0)
                ret = mr_step(step, errno, "mask %s (read-only tmpfs)", t);
        } else {
            int null_fd = open_dev_null(root_fd, step);

            ret = null_fd < 0 ? null_fd : bind_onto(root_fd, "/dev/null", null_fd, fd, t, 0, 0, step);
            if (null_fd >= 0)
                close(null_fd);
            if (ret < 0 && null_fd >= 0)
                ret = mr_step(step, -ret, "mask %s (bind /dev/null)", t);
        }
        close(fd);
        return ret;
    }
    if (op->kind == MR_OP_NODEV) { /* the mount at target and every mount under it; other flags kept */
        struct mr_mount_attr ma = {MR_MOUNT_ATTR_NODEV, 0, 0, 0};

        fd = mr_open_in_root(root_fd, t, 0, NULL, NULL);
        if (fd < 0)
            return mr_step(step, -fd, "resolve %s in the root", t);
        if (!legacy_api() && syscall(SYS_mount_setattr, fd, "", AT_EMPTY_PATH | MR_AT_RECURSIVE, &ma, sizeof(ma)) == 0)
            ret = 0;
        else if (!legacy_api() && !unsupported(errno))
            ret = mr_step(step, errno, "mount_setattr(%s, nodev)", t);
        else
            ret = remount_tree(fd, MS_NODEV, 1, step, t);
        close(fd);
        return ret;
    }
    if (op->kind == MR_OP_WRITE) { /* an OCI sysctl: an existing file, reached inside the root */
        char path[64];
        size_t len = strlen(op->data);
        int wfd;

        fd = mr_open_in_root(root_fd, t, 0, NULL, NULL);
        if (fd < 0)
            return mr_step(step, -fd, "resolve %s in the root", t);
        wfd = open(fd_path(fd, path, sizeof(path)), O_WRONLY | O_CLOEXEC);
        if (wfd < 0 || write(wfd, op->data, len) != (ssize_t)len)
            ret = mr_step(step, errno, "write %s to %s", op->data, t);
        if (wfd >= 0)
            close(wfd);
        close(fd);
        return ret;
    }
    if (op->kind == MR_OP_MOUNT && (op->flags & MS_REMOUNT))
        return mr_step(step, EINVAL, "remount(%s): give the flags on the mount itself", t);
    if (op->kind < MR_OP_MOUNT || op->kind > MR_OP_MKDIR)
        return mr_step(step, EINVAL, "unknown mount plan operation %d", op->kind);

    fd = create_and_open(root_fd, op, step);
    if (fd < 0 || op->kind == MR_OP_MKNOD || op->kind == MR_OP_SYMLINK)
        return fd < 0 ? fd : 0;
    switch (op->kind) {
    case MR_OP_MKDIR: {
        int dir = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

        if (dir < 0 || fchmod(dir, op->mode & 07777) < 0)
            ret = mr_step(step, errno, "chmod(%s)", t);
        if (dir >= 0)
            close(dir);
        break;
    }
    case MR_OP_MOUNT:
        if ((op->flags & MS_BIND) && op->source_fd >= 0) { /* cloned and flagged by the parent: attach it */
            if (syscall(SYS_move_mount, op->source_fd, "", fd, "", MR_MOVE_MOUNT_F_EMPTY_PATH |
                        MR_MOVE_MOUNT_T_EMPTY_PATH) < 0)
                ret = mr_step(step, errno, "move_mount(%s) for %s", op->source, t);
        } else if (op->flags & MS_BIND)
            ret = bind_onto(root_fd, op->source, -1, fd, t, !!(op->flags & MS_REC), op->flags & BIND_ATTRS, step);
        else if (mount_on_fd(op->source, fd, op->fstype, op->flags, op->data, root_fd) < 0)
            ret = mr_step(step, errno, "mount %s(%s)", op->fstype, t);
        break;
    }
    close(fd);
    return ret;
}

/* --read-only: the root's own mount, its other flags kept (not recursive:
 * /proc, /dev, volumes and tmpfs are mounts of their own). */
int mr_readonly_root(int root_fd, char *step)
{
    struct mr_mount_attr ma = {MR_MOUNT_ATTR_RDONLY, 0, 0, 0};

    if (!legacy_api() && syscall(SYS_mount_setattr, root_fd, "", AT_EMPTY_PATH, &ma, sizeof(ma)) == 0)
        return 0;
    if (!legacy_api() && !unsupported(errno))
        return mr_step(step, errno, "remount / read-only");
    if (remount_keeping("/", MS_RDONLY) < 0)
        return mr_step(step, errno, "remount / read-only");
    return 0;
}
