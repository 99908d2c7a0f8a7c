/*
 * seccomp_call: make one system call and print what came back, for the
 * seccomp tests (tests/integration/test_seccomp_profiles.py).
 *
 *   seccomp_call NR [ARG...]        x86_64 system call NR with up to 6 arguments
 *   seccomp_call i386 NR [ARG...]   the same through int 0x80 (the x86 ABI, up to 3 arguments)
 *
 * Prints "ok RET" or "errno N"; arguments are numbers (0x... accepted).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static long i386_call(long nr, long a, long b, long c)
{
    long ret;

    __asm__ volatile("int $0x80" : "=a"(ret) : "0"(nr), "b"(a), "c"(b), "d"(c) : "memory");
    return ret;
}

int main(int argc, char **argv)
{
    int i386 = argc > 1 && strcmp(argv[1], "i386") == 0;
    long v[7] = {0};
    long ret;

    for (int i = 1 + i386, j = 0; i < argc && j < 7; i++, j++)
        v[j] = (long)strtoull(argv[i], NULL, 0);
    if (i386) {
        ret = i386_call(v[0], v[1], v[2], v[3]);
        if (ret < 0 && ret > -4096) {
            printf("errno %ld\n", -ret);
            return 0;
        }
    } else {
        ret = syscall(v[0], v[1], v[2], v[3], v[4], v[5], v[6]);
        if (ret < 0) {
            printf("errno %d\n", errno);
            return 0;
        }
    }
    printf("ok %ld\n", ret);
    return 0;
}
