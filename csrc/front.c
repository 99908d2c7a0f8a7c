/*
 * front.c - the `minirun` and `minirun-oci` executables, as every install
 * path installs them (setup.py builds them into the scripts directory: a
 * wheel's, an sdist's, an editable install's).
 *
 * pip's console script runs the interpreter with site (the .pth files, ~3 ms)
 * and imports re (~3.5 ms) before minirun's own code, and an engine starts
 * minirun-oci four or five times per container. This execs the interpreter
 * with -I -S and the sys.path entries site would have given for minirun:
 *
 *     PYTHON -I -S -c BOOT SITEDIR [CHECKOUT] -- ARGV0 ARGS...
 *
 * SITEDIR is the site-packages beside this executable that holds minirun, or
 * the one whose .pth file names the checkout that holds it (an editable
 * install in compat mode, as `make venv` makes). BOOT (minirun/front.py)
 * calls site.main() after all if an import misses. Where no such SITEDIR is
 * found (an editable install's import hook, an unusual scheme) it runs the
 * slower, sure way pip's console script does: PYTHON -c BOOT -- ARGV0 ARGS...
 * with site. minirun-oci first tries its native verbs (ociverbs.h).
 *
 * An interpreter is run only where no user but root and the caller could have put it, nor
 * anything above it (trusted()): engines run minirun-oci as root.
 *
 * Built with FRONT_PYVER (the X.Y of the interpreter the cffi extension is
 * built for), FRONT_PYTHON (that interpreter, the first guess where none sits
 * beside this file) and FRONT_ENTRY (the function BOOT calls, "module:name").
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifdef FRONT_OCI
#include "ociverbs.h"
#ifndef OCI_NOT_NATIVE
#define OCI_NOT_NATIVE (-2) /* oci_verbs_main's "not mine: run Python" */
#endif
#endif

/* errors.py's contract for a host that lacks something: runc's 1, docker's 125 */
#ifdef FRONT_OCI
#define PROGRAM "minirun-oci"
#define HOST_LACKS 1
#else
#define PROGRAM "minirun"
#define HOST_LACKS 125
#endif

#if !defined(FRONT_PYVER) || !defined(FRONT_PYTHON) || !defined(FRONT_ENTRY)
#error "setup.py defines FRONT_PYVER, FRONT_PYTHON and FRONT_ENTRY"
#endif

/* Where a scheme puts site-packages, from the scripts directory's parent: venv, posix_prefix
   and posix_user; Debian's /usr/local; lib64 where platlib is there (Fedora); Debian's /usr. */
static const char *const SITE_DIRS[] = {
    "lib/python" FRONT_PYVER "/site-packages", "lib/python" FRONT_PYVER "/dist-packages",
    "lib64/python" FRONT_PYVER "/site-packages", "lib/python3/dist-packages",
};

/* -c's sys.argv is ["-c", PATHS..., "--", ARGV0, ARGS...]; '' (the working directory, on the slow
   path) never goes on sys.path: a bundle directory is no place to import from. */
static const char BOOT[] =
    "import sys;a=sys.argv;n=a.index('--');sys.path[:]=[p for p in sys.path if p]+a[1:n];sys.argv=a[n+1:];"
    "from minirun.front import start;start('" FRONT_ENTRY "')";

static int join(char *out, const char *dir, const char *name)
{
    int n = snprintf(out, PATH_MAX, "%s/%s", dir, name);
    return n > 0 && n < PATH_MAX;
}

static int holds_package(const char *dir)
{
    char init[PATH_MAX];
    return join(init, dir, "minirun/__init__.py") && access(init, R_OK) == 0;
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

static int is_pth(const struct dirent *entry)
{
    size_t len = strlen(entry->d_name);
    return len > 4 && strcmp(entry->d_name + len - 4, ".pth") == 0 && entry->d_name[0] != '.';
}

/* The first path line of SITEDIR's .pth files (in site's order: by name) that holds minirun, as
   site reads them: '#' comments and import lines skipped, a relative path taken from SITEDIR. */
static int checkout_from_pth(const char *sitedir, char *checkout)
{
    struct dirent **names;
    int count = scandir(sitedir, &names, is_pth, by_name);
    int found = 0;
    for (int i = 0; i < count; i++) {
        char pth[PATH_MAX], line[PATH_MAX];
        FILE *f = !found && join(pth, sitedir, names[i]->d_name) ? fopen(pth, "re") : NULL;
        while (f && fgets(line, sizeof line, f)) {
            line[strcspn(line, "\r\n")] = '\0';
            size_t len = strlen(line);
            while (len && (line[len - 1] == ' ' || line[len - 1] == '\t'))
                line[--len] = '\0';
            if (!len || line[0] == '#' || strncmp(line, "import ", 7) == 0 || strncmp(line, "import\t", 7) == 0)
                continue;
            int fits = line[0] == '/' ? (snprintf(checkout, PATH_MAX, "%s", line) < PATH_MAX)
                                      : join(checkout, sitedir, line);
            if (fits && holds_package(checkout)) {
                found = 1;
                break;
            }
        }
        if (f)
            fclose(f);
        free(names[i]);
    }
    if (count >= 0)
        free(names);
    return found;
}

static int executable(const char *path)
{
    return access(path, X_OK) == 0;
}

/* Only root and the user running us can change it: no other owner, no write bit for
   others (or a group not ours) unless a sticky directory (/tmp), whose entries are judged in turn. */
static int ours(const struct stat *st)
{
    mode_t others = S_IWOTH | (st->st_gid == 0 || st->st_gid == getegid() ? 0 : S_IWGRP);
    return (st->st_uid == 0 || st->st_uid == geteuid()) &&
           (S_ISLNK(st->st_mode) || !(st->st_mode & others) || (S_ISDIR(st->st_mode) && st->st_mode & S_ISVTX));
}

static int chain_is_ours(const char *path)
{
    char prefix[PATH_MAX];
    struct stat st;
    size_t len = strlen(path);

    if (path[0] != '/' || len >= PATH_MAX || lstat("/", &st) != 0 || !ours(&st))
        return 0;
    for (size_t i = 1; i <= len; i++) {
        if (path[i] != '/' && path[i] != '\0')
            continue;
        memcpy(prefix, path, i);
        prefix[i] = '\0';
        if (lstat(prefix, &st) != 0 || !ours(&st))
            return 0;
    }
    return 1;
}

/* An interpreter to run: neither it nor a directory above it (its pyvenv.cfg, its standard
   library) in another user's hands, as named (a link judged where it sits) and as resolved. The
   build's interpreter may be in a home or a build venv in /tmp, gone since, that root must not run;
   a PATH entry may be relative (the bundle an engine runs us in) or another user's. */
static int trusted(const char *python)
{
    char real[PATH_MAX];
    return executable(python) && realpath(python, real) && chain_is_ours(python) && chain_is_ours(real);
}

/* The first NAME on PATH that ACCEPT takes, as exec's search finds it (an empty entry: "."). */
static int on_path(const char *name, char *found, int (*accept)(const char *))
{
    const char *path = getenv("PATH");
    while (path && *path) {
        size_t len = strcspn(path, ":");
        int n = snprintf(found, PATH_MAX, "%.*s/%s", (int)len, len ? path : ".", name);
        if (n > 0 && n < PATH_MAX && accept(found))
            return 1;
        path += len + (path[len] == ':');
    }
    return 0;
}

/* This executable's real directory (a symlink to it, as an engine's config may hold, is followed);
   without /proc, from ARGV0 as exec or a PATH search found it. */
static int own_dir(const char *argv0, char *dir)
{
    char found[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", dir, PATH_MAX - 1);
    if (n > 0)
        dir[n] = '\0';
    else if (!(strchr(argv0, '/') ? realpath(argv0, dir) : on_path(argv0, found, executable) ? realpath(found, dir) : NULL))
        return 0;
    char *slash = strrchr(dir, '/');
    if (!slash)
        return 0;
    *slash = '\0';
    return 1;
}

int main(int argc, char **argv)
{
#ifdef FRONT_OCI
    int status = oci_verbs_main(argc, argv);
    if (status != OCI_NOT_NATIVE)
        return status;
#endif
    const char *argv0 = argc > 0 ? argv[0] : "minirun";
    char bindir[PATH_MAX], base[PATH_MAX], sitedir[PATH_MAX], checkout[PATH_MAX];
    const char *paths[2] = {NULL, NULL};
    const char *pythons[4] = {NULL, FRONT_PYTHON, "/usr/bin/python" FRONT_PYVER, "/usr/local/bin/python" FRONT_PYVER};
    char beside[PATH_MAX];

    if (own_dir(argv0, bindir)) {
        if (join(beside, bindir, "python" FRONT_PYVER))
            pythons[0] = beside;
        snprintf(base, sizeof base, "%s", bindir);
        char *slash = strrchr(base, '/');
        if (slash)
            *slash = '\0';
        for (size_t i = 0; i < sizeof SITE_DIRS / sizeof *SITE_DIRS && !paths[0]; i++) {
            if (!join(sitedir, base, SITE_DIRS[i]))
                continue;
            if (holds_package(sitedir)) {
                paths[0] = sitedir;
            } else if (checkout_from_pth(sitedir, checkout)) {
                paths[0] = sitedir;
                paths[1] = checkout;
            }
        }
    }

    /* PYTHON FLAGS... -c BOOT PATHS... -- ARGV0 ARGS... NULL */
    char **args = calloc((size_t)argc + 10, sizeof *args);
    if (!args)
        return HOST_LACKS;
    int n = 1;
    if (paths[0]) {
        args[n++] = "-I";
        args[n++] = "-S";
    }
    args[n++] = "-c";
    args[n++] = (char *)BOOT;
    for (int i = 0; i < 2 && paths[i]; i++)
        args[n++] = (char *)paths[i];
    args[n++] = "--";
    args[n++] = (char *)argv0;
    for (int i = 1; i < argc; i++)
        args[n++] = argv[i];

    for (size_t i = 0; i < sizeof pythons / sizeof *pythons; i++) {
        if (pythons[i] && trusted(pythons[i])) {
            args[0] = (char *)pythons[i];
            execv(pythons[i], args);
        }
    }
    char searched[PATH_MAX];
    if (on_path("python" FRONT_PYVER, searched, trusted)) {
        args[0] = searched;
        execv(searched, args);
    }
    fprintf(stderr, PROGRAM ": no python" FRONT_PYVER " to run minirun with: none beside it, at " FRONT_PYTHON
            ", in /usr/bin, /usr/local/bin or on PATH that only root and this user can change\n");
    return HOST_LACKS;
}
