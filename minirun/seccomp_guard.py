"""PID 1's guard: what keeps a container holding CAP_SYS_PTRACE out of its minirun-init (issue 18).

Without CAP_SYS_PTRACE, PID 1 is out of reach: it is non-dumpable (csrc/reap.c). With it the
kernel skips that check (ptrace_has_cap), for ptrace(2) and for every call and /proc file behind
the same ptrace_may_access. So under `minirun run` (security.guard_init; minirun-oci has no init
of its own: PID 1 is the bundle's process, traceable as under runc), a container whose bounding
set holds CAP_SYS_PTRACE gets, in front of its seccomp filter (or alone under
seccomp=unconfined: PID 1 is minirun's, not the profile's), a few instructions that return
EPERM for

- ptrace(any request, pid 1), process_vm_readv/writev(pid 1), kcmp(1, _) and kcmp(_, 1),
  pidfd_open(1): the low 32 bits of the argument are compared, because the kernel truncates
  each of these to a pid_t (a full 64-bit compare would let 0x100000001 through: measured,
  process_vm_readv((1 << 32) | getpid()) reads our own memory);
- pidfd_getfd, whatever its target: seccomp cannot see which process a pidfd names, and a
  pidfd for PID 1 may be had without pidfd_open (pidfs file handles, kernel 6.13+). Tracing
  works without it.

and the files the same check guards are masked (MASKED_PROC_PATHS): /proc/1/mem, environ,
fd and fdinfo, and their /proc/1/task/1 twins. Anything else in the container, COMMAND's children
included, stays traceable: gdb and strace keep working. A container that also holds
CAP_SYS_ADMIN (--privileged among others) gets no guard: it could unmount the masks or mount a
proc of its own and open /proc/1/mem there, past any filter.
Architectures: x86_64, x32 and i386, those of the default profile; others pass untouched.
"""

from __future__ import annotations

import errno

from .seccomp_bpf import (AUDIT_ARCH_I386, AUDIT_ARCH_X86_64, JMP_JA, JMP_JEQ_K, JMP_JSET_K, LD_W_ABS, RET_ALLOW,
                          RET_ERRNO, RET_K, X32_SYSCALL_BIT, assemble)

MASKED_PROC_PATHS = tuple(f"/proc/1/{task}{name}" for task in ("", "task/1/")
                          for name in ("mem", "environ", "fd", "fdinfo"))

# (ptrace, process_vm_readv, process_vm_writev, kcmp, pidfd_open, pidfd_getfd) per architecture;
# tests/unit check them against libseccomp's tables
X86_64 = (101, 310, 311, 312, 434, 438)
X32 = tuple(X32_SYSCALL_BIT | nr for nr in (521, 539, 540, 312, 434, 438))
I386 = (26, 347, 348, 349, 434, 438)

ARG0, ARG1 = 16, 24  # offsetof(struct seccomp_data, args[i]): the low 32 bits on little-endian


def _program() -> bytes:
    code: list = []

    def emit(op, k=0, jt=0, jf=0):
        code.append([op, jt, jf, k])

    def table(nrs, prefix):
        ptrace, readv, writev, kcmp, pidfd_open, pidfd_getfd = nrs
        code.append(prefix)
        for nr, target in ((ptrace, "arg1"), (readv, "arg0"), (writev, "arg0"), (kcmp, "kcmp"),
                           (pidfd_open, "arg0"), (pidfd_getfd, "deny")):
            emit(JMP_JEQ_K, nr, target, 0)
        emit(JMP_JA, "pass")

    emit(LD_W_ABS, 4)
    emit(JMP_JEQ_K, AUDIT_ARCH_X86_64, 0, "not_x86_64")
    emit(LD_W_ABS, 0)
    emit(JMP_JSET_K, X32_SYSCALL_BIT, "x32", "x86_64")
    table(X86_64, "x86_64")
    table(X32, "x32")
    code.append("not_x86_64")
    emit(JMP_JEQ_K, AUDIT_ARCH_I386, 0, "pass")
    emit(LD_W_ABS, 0)
    table(I386, "i386")
    code.append("kcmp")
    emit(LD_W_ABS, ARG0)
    emit(JMP_JEQ_K, 1, "deny", "arg1")
    code.append("arg1")
    emit(LD_W_ABS, ARG1)
    emit(JMP_JEQ_K, 1, "deny", "pass")
    code.append("arg0")
    emit(LD_W_ABS, ARG0)
    emit(JMP_JEQ_K, 1, "deny", "pass")
    code.append("deny")
    emit(RET_K, RET_ERRNO | errno.EPERM)
    code.append("pass")
    return assemble(code)


GUARD = _program()
ALLOW_ALL = assemble([[RET_K, 0, 0, RET_ALLOW]])


def guarded(program: bytes | None) -> bytes:
    """The guard in front of ``program`` (a whole filter: the guard falls through to its first
    instruction); under no filter, in front of one that allows everything."""
    return GUARD + (program or ALLOW_ALL)
