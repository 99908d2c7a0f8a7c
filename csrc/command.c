/*
 * command.c - the last step of becoming COMMAND: execve it, looking it up in
 * the container's PATH, and report a failure to whoever waits.
 *
 * Compiled twice, like reap.c: into the extension and into the static
 * minirun-init, whose "exec" mode is what normally runs this (init_main.c). The
 * extension's process execs minirun-init from a sealed memfd first, so that
 * while COMMAND's execve runs, /proc/self/exe is that sealed copy, never a host
 * file: a COMMAND that is `#!/proc/self/exe` cannot reach the host's binary to
 * overwrite it (CVE-2019-5736).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "minirun.h"

void mr_exec_failed(int pipe_fd, int oci_process, int err, const char *step)
{
    if (oci_process) {
        /* PID 1 itself failed: tell whoever waits on the report socket (`run`), or, once
         * `create` has returned, the container's stderr, which the engine shows. */
        struct mr_report rep;

        memset(&rep, 0, sizeof(rep));
        rep.kind = MR_REPORT_EXEC_FAILED;
        rep.err = err;
        strncpy(rep.step, step, sizeof(rep.step) - 1);
        if (send(pipe_fd, &rep, sizeof(rep), MSG_NOSIGNAL) < 0)
            dprintf(2, "minirun-oci: %s: %s\n", step, strerror(err));
        _exit(err == ENOENT ? 127 : 126);
    } else {
        struct mr_exec_failure f;

        memset(&f, 0, sizeof(f));
        f.err = err;
        strncpy(f.step, step, sizeof(f.step) - 1);
        (void)!write(pipe_fd, &f, sizeof(f));
        _exit(127);
    }
}

/* execvpe would use minirun's own PATH, not the container's. ENOENT only if no candidate exists. */
void mr_exec_command(char *const argv[], char *const envp[], const char *path, int pipe_fd, int oci_process)
{
    const char *name = argv[0];
    char candidate[4096], step[MR_STEP_MAX];
    int saw_eacces = 0;

    if (strchr(name, '/')) {
        execve(name, argv, envp);
        snprintf(step, sizeof(step), "exec %s", name);
        mr_exec_failed(pipe_fd, oci_process, errno, step);
    }
    for (const char *dir = path; dir && *dir;) {
        const char *end = strchrnul(dir, ':');
        int len = (int)(end - dir);

        snprintf(candidate, sizeof(candidate), "%.*s/%s", len ? len : 1, len ? dir : ".", name);
        execve(candidate, argv, envp);
        if (errno == EACCES)
            saw_eacces = 1;
        else if (errno != ENOENT && errno != ENOTDIR) {
            snprintf(step, sizeof(step), "exec %.200s", candidate);
            mr_exec_failed(pipe_fd, oci_process, errno, step);
        }
        dir = *end ? end + 1 : end;
    }
    snprintf(step, sizeof(step), "exec %s", name);
    mr_exec_failed(pipe_fd, oci_process, saw_eacces ? EACCES : ENOENT, step);
}

/* runc's check at create (exec.LookPath in standard_init_linux.go): COMMAND must be
 * there before `create` returns, so that engines report a missing one at create, as
 * docker does with 127. Go's rules: a name with a slash must be an executable
 * non-directory; a bare name, one in some PATH directory. A relative name with a
 * slash is left to execve: the working directory is made only later. Returns 0,
 * ENOENT or EACCES. */
int mr_find_command(const char *name, const char *path)
{
    char candidate[4096];
    struct stat st;

    if (strchr(name, '/')) {
        if (name[0] != '/')
            return 0;
        if (stat(name, &st) < 0)
            return errno == ENOTDIR ? ENOENT : errno;
        return S_ISDIR(st.st_mode) || !(st.st_mode & 0111) ? EACCES : 0;
    }
    for (const char *dir = path; dir && *dir;) {
        const char *end = strchrnul(dir, ':');
        int len = (int)(end - dir);

        snprintf(candidate, sizeof(candidate), "%.*s/%s", len ? len : 1, len ? dir : ".", name);
        if (stat(candidate, &st) == 0 && !S_ISDIR(st.st_mode) && (st.st_mode & 0111))
            return 0;
        dir = *end ? end + 1 : end;
    }
    return ENOENT;
}
