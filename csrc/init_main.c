/*
 * init_main.c - minirun-init: the container's PID 1 once COMMAND runs, and the
 * last exec on the way to COMMAND.
 *
 *     minirun-init REPORT_FD COMMAND_PID
 *     minirun-init exec PIPE_FD OCI PATH COMMAND [ARGS...]
 *
 * Static, and run from a sealed memfd the parent fills from this file
 * (minirun/syscalls.py), never from the host file itself. The first form:
 * init.c sets the container up in a forked copy of the Python process, starts
 * COMMAND, then execs this, so an idle container holds a few pages instead of
 * the interpreter (reap.c). The second: the process about to become COMMAND,
 * its credentials and seccomp filter in place, execs this, which execs COMMAND
 * (command.c): during that execve /proc/self/exe is the sealed copy, which a
 * `#!/proc/self/exe` COMMAND cannot write through (CVE-2019-5736).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "minirun.h"

extern char **environ;

static int number(const char *s, long min)
{
    char *end;
    long v = strtol(s, &end, 10);

    return *s && !*end && v >= min && v <= 1 << 30 ? (int)v : -1;
}

int main(int argc, char **argv)
{
    /* An exec makes us dumpable again: keep the container's processes out of our
     * memory and fds until the next exec. */
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    prctl(PR_SET_NAME, "minirun-init", 0, 0, 0); /* run from a memfd, the kernel named us after its fd */
    if (argc >= 6 && strcmp(argv[1], "exec") == 0) {
        int pipe_fd = number(argv[2], 0);

        if (pipe_fd < 0)
            return 125;
        fcntl(pipe_fd, F_SETFD, FD_CLOEXEC); /* EOF on it tells the waiter COMMAND runs */
        mr_exec_command(argv + 5, environ, argv[4], pipe_fd, argv[3][0] == '1');
    }
    if (argc == 3 && number(argv[1], 0) >= 0 && number(argv[2], 1) > 0)
        mr_reap_and_forward(number(argv[1], 0), number(argv[2], 1));
    /* e.g. a COMMAND that is `#!/proc/self/exe`: it gets us, not a host binary */
    (void)!write(2, "minirun-init: not a program to run\n", 35);
    return 125;
}
