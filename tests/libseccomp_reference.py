"""The filter libseccomp itself compiles from a resolved profile, plus runc's -ENOSYS stub in front:
what runc loads, and what minirun's own compiler (minirun/seccomp_bpf.py) must decide alike.

minirun compiled its filters this way until the programs got too long to load quickly (1268
instructions for Docker's profile); this copy stays as the tests' reference (tests/unit/test_seccomp.py).
"""

from __future__ import annotations

import os

from minirun._seccomp import ffi, lib
from minirun.seccomp_bpf import (AUDIT_ARCH_I386, AUDIT_ARCH_X86_64, JMP_JA, JMP_JEQ_K, JMP_JGT_K, JMP_JSET_K,
                                 LD_W_ABS, RET_ALLOW, RET_ERRNO, RET_K, RET_KILL_PROCESS, RET_LOG, X32_SYSCALL_BIT,
                                 assemble)
from minirun.seccomp_build import resolve

ENOSYS = 38


def program(profile, caps=(), kernel=(6, 1)) -> bytes:
    spec = resolve(profile, caps, kernel)
    ctx = lib.seccomp_init(spec.default)
    assert ctx != ffi.NULL
    try:
        tokens = [lib.seccomp_arch_native()]
        for name in spec.arches:
            token = lib.seccomp_arch_resolve_name(name.lower().removeprefix("scmp_arch_").encode())
            if token not in tokens:
                assert lib.seccomp_arch_add(ctx, token) == 0
                tokens.append(token)
        assert lib.seccomp_attr_set(ctx, lib.SCMP_FLTATR_ACT_BADARCH, RET_KILL_PROCESS) == 0
        assert lib.seccomp_attr_set(ctx, lib.SCMP_FLTATR_CTL_OPTIMIZE, 2) == 0
        for names, action, cond_lists in spec.rules:
            if action == spec.default:
                continue
            for name in names:
                nr = lib.seccomp_syscall_resolve_name(name.encode())
                if nr == lib.__NR_SCMP_ERROR:
                    continue
                for conds in cond_lists:
                    array = ffi.new("struct scmp_arg_cmp[]", conds or 1)
                    assert lib.seccomp_rule_add_array(ctx, action, nr, len(conds), array) == 0, name
        fd = os.memfd_create("reference", os.MFD_CLOEXEC)
        try:
            assert lib.seccomp_export_bpf(ctx, fd) == 0
            exported = os.pread(fd, os.lseek(fd, 0, os.SEEK_END), 0)
        finally:
            os.close(fd)
    finally:
        lib.seccomp_release(ctx)
    return _enosys_stub(spec, tokens) + exported


def _enosys_stub(spec, tokens) -> bytes:
    """runc's: syscalls above the highest one the profile names, per architecture, get -ENOSYS."""
    if spec.default in (RET_ALLOW, RET_LOG) or spec.default == RET_ERRNO | ENOSYS:
        return b""
    highest: dict[int, int] = {}
    for names, _action, _conds in spec.rules:
        for name in names:
            for token in tokens:
                nr = lib.seccomp_syscall_resolve_name_arch(token, name.encode())
                if nr >= 0:
                    highest[token] = max(highest.get(token, -1), nr)
    if not highest:
        return b""
    x86_64, x32, i386 = (lib.seccomp_arch_resolve_name(n) for n in (b"x86_64", b"x32", b"x86"))
    code: list = []

    def emit(op, k=0, jt=0, jf=0):
        code.append([op, jt, jf, k])

    emit(LD_W_ABS, 4)
    if x86_64 in highest or x32 in highest:
        emit(JMP_JEQ_K, AUDIT_ARCH_X86_64, 0, "next")
        emit(LD_W_ABS, 0)
        emit(JMP_JSET_K, X32_SYSCALL_BIT, "x32", 0)
        emit(JMP_JGT_K, highest.get(x86_64, 0xFFFFFFFF), "enosys", "filter")
        code.append("x32")
        emit(JMP_JGT_K, highest.get(x32, 0xFFFFFFFF), "enosys", "filter")
        code.append("next")
        emit(LD_W_ABS, 4)
    if i386 in highest:
        emit(JMP_JEQ_K, AUDIT_ARCH_I386, 0, "filter")
        emit(LD_W_ABS, 0)
        emit(JMP_JGT_K, highest[i386], "enosys", "filter")
    emit(JMP_JA, "filter")
    code.append("enosys")
    emit(RET_K, RET_ERRNO | ENOSYS)
    code.append("filter")
    return assemble(code)
