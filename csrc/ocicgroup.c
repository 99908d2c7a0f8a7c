/*
 * ocicgroup.c - a container's cgroup as minirun-oci's delete and kill --all reach it:
 * its relative path (state.json "cgroup") below every cgroup hierarchy mounted here,
 * as minirun/cgroups' Cgroup.pids, kill, destroy and remove_if_unused do.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <fcntl.h>

#include "oci.h"

void oci_cgroup_free(struct oci_cgroup *cg)
{
    for (int i = 0; i < cg->n; i++)
        free(cg->dirs[i]);
    cg->n = 0;
}

/* mountinfo's octal escapes (\040 for a space) undone in place. */
static void unescape(char *s)
{
    char *o = s;

    for (char *p = s; *p; p++) {
        if (p[0] == '\\' && p[1] >= '0' && p[1] <= '3' && p[2] >= '0' && p[2] <= '7' && p[3] >= '0' && p[3] <= '7') {
            *o++ = (char)((p[1] - '0') * 64 + (p[2] - '0') * 8 + (p[3] - '0'));
            p += 3;
        } else {
            *o++ = *p;
        }
    }
    *o = '\0';
}

static int add_dir(struct oci_cgroup *cg, const char *mountpoint, const char *relpath)
{
    char *dir;

    if (cg->n == (int)(sizeof(cg->dirs) / sizeof(cg->dirs[0])) || !(dir = oci_join(mountpoint, relpath)))
        return -1;
    for (int i = 0; i < cg->n; i++)
        if (!strcmp(cg->dirs[i], dir)) {
            free(dir);
            return 0;
        }
    cg->dirs[cg->n++] = dir;
    return 0;
}

/* Every hierarchy's directory of `relpath` (cgroups.Layout.mountpoints: the unified one
 * first, then the v1 hierarchies of minirun's controllers, then the others; the first
 * mount of each hierarchy). */
static int cgroup_of(const char *relpath, struct oci_cgroup *cg, struct mr_oci_error *e)
{
    static const char *const controllers[] = {"cpu", "cpuacct", "cpuset", "devices", "memory", "pids", "blkio",
                                              "hugetlb"};
    static const char *const flags[] = {"rw", "ro", "noprefix", "clone_children", "xattr", "cpuset_v2_mode",
                                        "favordynmods", "nofavordynmods"};
    char *option_names[64], *option_mounts[64], *unified = NULL, *line = NULL;
    size_t cap = 0;
    int n_options = 0, ret = 0;
    FILE *f = fopen("/proc/self/mountinfo", "re");

    cg->n = 0;
    cg->unified = -1;
    if (!f)
        return oci_fail(e, MR_OCI_OS, "cannot read /proc/self/mountinfo: %s", strerror(errno));
    while (getline(&line, &cap, f) > 0) {
        char *sep = strstr(line, " - "), *fields[5], *save = NULL, *fstype, *superopts, *mountpoint;
        int i = 0;

        if (!sep)
            continue;
        *sep = '\0';
        for (char *tok = strtok_r(line, " ", &save); tok && i < 5; tok = strtok_r(NULL, " ", &save))
            fields[i++] = tok;
        fstype = strtok_r(sep + 3, " \n", &save);
        strtok_r(NULL, " \n", &save); /* the source */
        superopts = strtok_r(NULL, " \n", &save);
        if (i < 5 || !fstype || !superopts || (strcmp(fstype, "cgroup") && strcmp(fstype, "cgroup2")))
            continue;
        mountpoint = fields[4];
        unescape(mountpoint);
        if (!strcmp(fstype, "cgroup2")) {
            if (!unified)
                unified = strdup(mountpoint);
            continue;
        }
        for (char *opt = strtok_r(superopts, ",", &save); opt; opt = strtok_r(NULL, ",", &save)) {
            int wanted = !strncmp(opt, "name=", 5), seen = 0;

            if (!wanted && !strchr(opt, '=')) {
                wanted = 1;
                for (size_t k = 0; k < sizeof(flags) / sizeof(flags[0]); k++)
                    if (!strcmp(opt, flags[k]))
                        wanted = 0;
            }
            for (int k = 0; k < n_options; k++)
                seen |= !strcmp(option_names[k], opt);
            if (wanted && !seen && n_options < 64) {
                option_names[n_options] = strdup(opt);
                option_mounts[n_options++] = strdup(mountpoint);
            }
        }
    }
    free(line);
    fclose(f);
    if (unified) {
        cg->unified = 0;
        ret |= add_dir(cg, unified, relpath);
    }
    for (size_t c = 0; c < sizeof(controllers) / sizeof(controllers[0]); c++)
        for (int k = 0; k < n_options; k++)
            if (!strcmp(option_names[k], controllers[c]))
                ret |= add_dir(cg, option_mounts[k], relpath);
    for (int k = 0; k < n_options; k++)
        ret |= add_dir(cg, option_mounts[k], relpath);
    for (int k = 0; k < n_options; k++) {
        free(option_names[k]);
        free(option_mounts[k]);
    }
    if (ret < 0 || (!cg->n && !unified)) {
        free(unified);
        oci_cgroup_free(cg);
        if (ret < 0)
            return oci_fail_os(e, NULL, ENOMEM);
        return oci_fail(e, MR_OCI_OS, "no cgroup filesystem is mounted (none in /proc/self/mountinfo)");
    }
    free(unified);
    return 0;
}

/* runtime._cgroup: the recorded relative path, which a container always has. */
int oci_record_cgroup(const struct mr_json *st, struct oci_cgroup *cg, struct mr_oci_error *e)
{
    const char *relpath = mr_json_str(mr_json_get(st, "cgroup"));

    if (!relpath || !relpath[0] || !strcmp(relpath, ".") || !strcmp(relpath, "/"))
        return oci_fail(e, MR_OCI_SPEC, "container %s: no cgroup recorded", oci_repr(oci_record_id(st)));
    return cgroup_of(relpath, cg, e);
}

static int pid_cmp(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;

    return x < y ? -1 : x > y;
}

/* What the cgroup.procs of `dirs` list, sorted, each once; missing files count as empty. */
int oci_read_pids(char *const *dirs, int n, struct oci_pids *out, struct mr_oci_error *e)
{
    out->n = 0;
    for (int i = 0; i < n; i++) {
        char *path = oci_join(dirs[i], "cgroup.procs"), buf[4096], *p;
        size_t have = 0;
        int fd;

        if (!path)
            return oci_fail_os(e, NULL, ENOMEM);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            int err = errno;

            if (err != ENOENT) {
                oci_fail(e, MR_OCI_CGROUP, "read %s: %s", path, strerror(err));
                free(path);
                return -1;
            }
            free(path);
            continue;
        }
        for (;;) { /* a page at a time; a number cut at the end of a chunk is kept for the next */
            ssize_t r = read(fd, buf + have, sizeof(buf) - 1 - have);

            if (r < 0 && errno == EINTR)
                continue;
            if (r < 0) {
                oci_fail(e, MR_OCI_CGROUP, "read %s: %s", path, strerror(errno));
                close(fd);
                free(path);
                return -1;
            }
            have += (size_t)r;
            buf[have] = '\0';
            p = buf;
            for (;;) {
                char *end;
                long long pid;

                while (*p == '\n' || *p == ' ')
                    p++;
                if (!*p)
                    break;
                end = p + strcspn(p, " \n");
                if (!*end && r > 0)
                    break; /* perhaps incomplete */
                pid = strtoll(p, NULL, 10);
                if (out->n == out->cap) {
                    size_t cap = out->cap ? out->cap * 2 : 64;
                    long long *v = realloc(out->v, cap * sizeof(*v));

                    if (!v) {
                        close(fd);
                        free(path);
                        return oci_fail_os(e, NULL, ENOMEM);
                    }
                    out->v = v;
                    out->cap = cap;
                }
                out->v[out->n++] = pid;
                p = end;
            }
            have = strlen(p);
            memmove(buf, p, have);
            if (!r)
                break;
        }
        close(fd);
        free(path);
    }
    qsort(out->v, out->n, sizeof(*out->v), pid_cmp);
    size_t k = 0;

    for (size_t i = 0; i < out->n; i++)
        if (!k || out->v[k - 1] != out->v[i])
            out->v[k++] = out->v[i];
    out->n = k;
    return 0;
}

static int sigkill_all(const struct oci_pids *pids)
{
    /* A pid read from cgroup.procs could exit and be reused before the kill; with pids
     * allocated in sequence that needs a full wrap of pid_max within microseconds. */
    for (size_t i = 0; i < pids->n; i++)
        kill((pid_t)pids->v[i], SIGKILL);
    return pids->n > 0;
}

static double backoff(int attempt)
{
    double s = 0.0002 * (double)(1 << (attempt < 16 ? attempt : 16));

    return s < 0.01 ? s : 0.01;
}

/* Cgroup.kill: cgroup.kill where there is one, else SIGKILL what cgroup.procs lists until empty. */
static int cgroup_kill(const struct oci_cgroup *cg, struct mr_oci_error *e)
{
    struct oci_pids pids = {0};

    if (cg->unified >= 0) {
        char *path = oci_join(cg->dirs[cg->unified], "cgroup.kill");
        int fd = path ? open(path, O_WRONLY | O_CLOEXEC) : -1, err = errno;

        if (fd >= 0) {
            int ok = write(fd, "1", 1) == 1;

            err = errno;
            close(fd);
            if (ok) {
                free(path);
                return 0;
            }
        }
        if (!path || err != ENOENT) {
            oci_fail(e, MR_OCI_CGROUP, "write 1 to %s: %s", path ? path : "cgroup.kill", strerror(path ? err : ENOMEM));
            free(path);
            return -1;
        }
        free(path);
    }
    for (int attempt = 0; attempt < CGROUP_ATTEMPTS; attempt++) {
        if (oci_read_pids(cg->dirs, cg->n, &pids, e) < 0) {
            free(pids.v);
            return -1;
        }
        if (!sigkill_all(&pids))
            break;
        oci_sleep(backoff(attempt));
    }
    free(pids.v);
    return 0;
}

static int list_subdirs(const char *path, char ***names, int *n, struct mr_oci_error *e)
{
    DIR *d = opendir(path);
    struct dirent *ent;

    *names = NULL;
    *n = 0;
    if (!d)
        return errno == ENOENT ? 0 : oci_fail(e, MR_OCI_CGROUP, "list %s: %s", path, strerror(errno));
    while ((ent = readdir(d))) {
        char **grown;

        if (ent->d_type != DT_DIR || !strcmp(ent->d_name, ".") || !strcmp(ent->d_name, ".."))
            continue;
        grown = realloc(*names, (size_t)(*n + 1) * sizeof(char *));
        if (!grown)
            break;
        *names = grown;
        (*names)[(*n)++] = strdup(ent->d_name);
    }
    closedir(d);
    return 0;
}

/* cgroups._remove_tree: rmdir, clearing what keeps it busy (processes still exiting,
 * child cgroups the container made itself). */
static int remove_cgroup_tree(const char *path, struct mr_oci_error *e)
{
    for (int attempt = 0; attempt < CGROUP_ATTEMPTS; attempt++) {
        char **children;
        int n, ret = 0;
        struct oci_pids pids = {0};

        if (rmdir(path) == 0 || errno == ENOENT)
            return 0;
        if (errno != EBUSY)
            return oci_fail(e, MR_OCI_CGROUP, "rmdir %s: %s", path, strerror(errno));
        if (list_subdirs(path, &children, &n, e) < 0)
            return -1;
        for (int i = 0; i < n; i++) {
            char *child = oci_join(path, children[i]);

            if (!ret && child)
                ret = remove_cgroup_tree(child, e);
            free(child);
            free(children[i]);
        }
        free(children);
        if (ret < 0)
            return -1;
        if (oci_read_pids((char *const *)&path, 1, &pids, e) < 0) {
            free(pids.v);
            return -1;
        }
        sigkill_all(&pids);
        free(pids.v);
        oci_sleep(backoff(attempt));
    }
    if (rmdir(path) == 0 || errno == ENOENT)
        return 0;
    return oci_fail(e, MR_OCI_CGROUP, "rmdir %s: %s", path, strerror(errno));
}

/* Cgroup.destroy: kill, then remove every directory; the first failure is reported. */
int oci_cgroup_destroy(const struct oci_cgroup *cg, struct mr_oci_error *e)
{
    struct mr_oci_error later;
    int failed = 0;

    if (cg->n && cgroup_kill(cg, e) < 0)
        return -1;
    for (int i = cg->n - 1; i >= 0; i--)
        if (remove_cgroup_tree(cg->dirs[i], failed ? &later : e) < 0)
            failed = 1;
    return failed ? -1 : 0;
}

/* Cgroup.remove_if_unused: for a record whose create may never have made its cgroup,
 * which may then be another's: removed only once empty and without child cgroups,
 * nobody killed. 1 removed, 0 left alone, -1 error. */
int oci_cgroup_remove_if_unused(const struct oci_cgroup *cg, struct mr_oci_error *e)
{
    double deadline = oci_monotonic() + 2.0; /* a half-made child dies of its parent's death */
    struct oci_pids pids = {0};

    for (;;) {
        if (oci_read_pids(cg->dirs, cg->n, &pids, e) < 0) {
            free(pids.v);
            return -1;
        }
        if (!pids.n)
            break;
        if (oci_monotonic() > deadline) {
            free(pids.v);
            return 0;
        }
        oci_sleep(0.01);
    }
    free(pids.v);
    for (int i = 0; i < cg->n; i++) {
        char **children;
        int n;

        if (list_subdirs(cg->dirs[i], &children, &n, e) < 0)
            return -1;
        for (int k = 0; k < n; k++)
            free(children[k]);
        free(children);
        if (n)
            return 0;
    }
    for (int i = cg->n - 1; i >= 0; i--)
        if (rmdir(cg->dirs[i]) < 0 && errno != ENOENT)
            return oci_fail(e, MR_OCI_CGROUP, "rmdir %s: %s", cg->dirs[i], strerror(errno)); /* as destroy's */
    return 1;
}

/* The manager's directories as an oci_cgroup (borrowed strings: not freed). */
static int borrowed(char *const *dirs, int n, int unified, struct oci_cgroup *cg, struct mr_oci_error *e)
{
    if (n < 0 || n > (int)(sizeof(cg->dirs) / sizeof(cg->dirs[0])))
        return oci_fail(e, MR_OCI_CGROUP, "%d cgroup directories: at most %zu", n,
                        sizeof(cg->dirs) / sizeof(cg->dirs[0]));
    for (int i = 0; i < n; i++)
        cg->dirs[i] = dirs[i];
    cg->n = n;
    cg->unified = unified < n ? unified : -1;
    return 0;
}

int mr_cgroup_kill(char *const *dirs, int n, int unified, struct mr_oci_error *e)
{
    struct oci_cgroup cg;

    return borrowed(dirs, n, unified, &cg, e) < 0 ? -1 : cgroup_kill(&cg, e);
}

int mr_cgroup_destroy(char *const *dirs, int n, int unified, struct mr_oci_error *e)
{
    struct oci_cgroup cg;

    return borrowed(dirs, n, unified, &cg, e) < 0 ? -1 : oci_cgroup_destroy(&cg, e);
}

int mr_cgroup_remove_if_unused(char *const *dirs, int n, struct mr_oci_error *e)
{
    struct oci_cgroup cg;

    return borrowed(dirs, n, -1, &cg, e) < 0 ? -1 : oci_cgroup_remove_if_unused(&cg, e);
}

char *mr_cgroup_pids(char *const *dirs, int n, struct mr_oci_error *e)
{
    struct oci_pids pids = {0};
    struct mr_buf b = {0};

    if (oci_read_pids(dirs, n, &pids, e) < 0) {
        free(pids.v);
        return NULL;
    }
    mr_buf_puts(&b, "");
    for (size_t i = 0; i < pids.n; i++)
        mr_buf_printf(&b, "%s%lld", i ? " " : "", pids.v[i]);
    free(pids.v);
    if (b.failed || !b.p) {
        free(b.p);
        oci_fail_os(e, NULL, ENOMEM);
        return NULL;
    }
    return b.p;
}
