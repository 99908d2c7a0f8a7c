/* The pod sandbox's process (what Kubernetes' pause image runs): PID 1 of the pod's PID
 * namespace when processes are shared, so it reaps whatever is re-parented to it, and it
 * holds the pod's namespaces until it is told to go (SIGINT/SIGTERM). */
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static void leave(int sig) { _exit(128 + sig); }

static void reap(int sig)
{
    (void)sig;
    while (waitpid(-1, NULL, WNOHANG) > 0)
        ;
}

int main(void)
{
    struct sigaction quit = {.sa_handler = leave}, child = {.sa_handler = reap, .sa_flags = SA_NOCLDSTOP};
    sigaction(SIGINT, &quit, NULL);
    sigaction(SIGTERM, &quit, NULL);
    sigaction(SIGCHLD, &child, NULL);
    for (;;)
        pause();
}
