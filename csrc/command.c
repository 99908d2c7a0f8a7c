/*
 * command.c - the last step of becoming COMMAND: execve it, looking it up in
 * the container's PATH, and report a failure to whoever waits.
 *
 * Only in the static minirun-init, which runs from a sealed memfd, so that
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
    for (const char *dirs = path; mr_path_candidate(&dirs, name, candidate, sizeof(candidate));) {
        execve(candidate, argv, envp);
        if (errno == EACCES)
            saw_eacces = 1;
        else if (errno != ENOENT && errno != ENOTDIR) {
            snprintf(step, sizeof(step), "exec %.200s", candidate);
            mr_exec_failed(pipe_fd, oci_process, errno, step);
        }
    }
    snprintf(step, sizeof(step), "exec %s", name);
    mr_exec_failed(pipe_fd, oci_process, saw_eacces ? EACCES : ENOENT, step);
}
