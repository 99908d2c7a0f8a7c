/*
 * init_main.c - minirun-init, the container's PID 1 once COMMAND runs.
 *
 *     minirun-init REPORT_FD COMMAND_PID
 *
 * init.c sets the container up in a forked copy of the Python process, starts
 * COMMAND, then execs this static program through an fd opened before
 * pivot_root (the container's root never holds it). Idle, a container then
 * costs this program's few pages, not the interpreter's megabytes.
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "minirun.h"

int main(int argc, char **argv)
{
    char *end;
    long fd, pid;

    /* An exec makes us dumpable again: keep the container's processes out of our
     * /proc/1/exe and memory (the door of CVE-2019-5736). */
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    if (argc != 3)
        return 125;
    fd = strtol(argv[1], &end, 10);
    if (*end || fd < 0)
        return 125;
    pid = strtol(argv[2], &end, 10);
    if (*end || pid <= 0)
        return 125;
    mr_reap_and_forward((int)fd, (pid_t)pid);
}
