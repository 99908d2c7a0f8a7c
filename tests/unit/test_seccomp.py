"""seccomp filters, run instruction by instruction (seccomp_bpf.evaluate).

Each decision is minirun's compiled program run on one system call as the
kernel would; the differential tests hold it to libseccomp's own program (plus
runc's ENOSYS stub: tests/unit/libseccomp_reference.py), what runc loads.
tests/integration/test_escape.py checks the same filters in real containers.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import sys

import pytest

from minirun import seccomp
from minirun._seccomp import lib
from minirun.seccomp import ProfileError, SeccompFilter, build_filter, filter_for
from minirun.seccomp_build import (AUDIT_ARCH_I386, AUDIT_ARCH_X86_64, RET_ALLOW, RET_ERRNO, RET_KILL_PROCESS, RET_LOG,
                                   RET_TRAP, evaluate)
from minirun.seccomp_default import DEFAULT_PROFILE
from minirun.security import ALL_CAPS, DEFAULT_CAPS

import libseccomp_reference

EPERM = RET_ERRNO | 1
EINVAL = RET_ERRNO | 22
ENOSYS = RET_ERRNO | 38
AUDIT_ARCH_AARCH64 = 0xC00000B7
X32 = 0x40000000
DATA = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data")


def NR(name: str) -> int:
    nr = lib.seccomp_syscall_resolve_name(name.encode())
    assert nr >= 0, name
    return nr


def NR_ARCH(arch: str, name: str) -> int:
    return lib.seccomp_syscall_resolve_name_arch(lib.seccomp_arch_resolve_name(arch.encode()), name.encode())


@pytest.fixture(scope="module")
def default():
    return build_filter(DEFAULT_PROFILE, DEFAULT_CAPS, kernel=(6, 1)).program


def run(program, name, *args, arch=AUDIT_ARCH_X86_64):
    return evaluate(program, NR(name) if isinstance(name, str) else name, args, arch)


# What Docker's default profile refuses.
REFUSED = ["kexec_load", "init_module", "finit_module", "delete_module", "reboot", "swapon", "swapoff", "mount",
           "umount2", "pivot_root", "keyctl", "add_key", "request_key", "bpf", "perf_event_open", "userfaultfd",
           "open_by_handle_at", "acct", "settimeofday", "clock_settime", "unshare", "setns", "iopl", "ioperm",
           "kexec_file_load", "syslog", "quotactl", "lookup_dcookie", "vhangup", "kcmp", "pidfd_getfd",
           "move_mount", "fsopen", "open_tree", "sethostname", "setdomainname", "create_module",
           "io_uring_setup", "io_uring_enter", "io_uring_register"]  # io_uring: Docker 25 dropped it
ALLOWED = ["read", "write", "openat", "close", "execve", "exit_group", "mmap", "brk", "fork", "vfork", "wait4",
           "rt_sigaction", "capset", "setuid", "setgroups", "prctl", "chroot", "ptrace", "getdents64", "socketpair",
           "arch_prctl", "seccomp", "statx", "io_setup", "fchmodat2", "futex_waitv"]


@pytest.mark.parametrize("name", REFUSED)
def test_default_refuses_with_eperm(default, name):
    assert run(default, name) == EPERM


@pytest.mark.parametrize("name", ALLOWED)
def test_default_allows_everyday_calls(default, name):
    assert run(default, name) == RET_ALLOW


def test_default_argument_rules(default):
    CLONE_NEWUSER, CLONE_NEWNS, SIGCHLD_FORK = 0x10000000, 0x00020000, 0x01200011
    assert run(default, "clone", SIGCHLD_FORK) == RET_ALLOW
    assert run(default, "clone", SIGCHLD_FORK | CLONE_NEWUSER) == EPERM
    assert run(default, "clone", CLONE_NEWNS) == EPERM
    assert run(default, "clone3") == ENOSYS  # libc falls back to clone, which is checked
    assert run(default, "socket", 2, 1, 0) == RET_ALLOW  # AF_INET
    assert run(default, "socket", 40, 1, 0) == EPERM  # AF_VSOCK
    assert run(default, "personality", 0) == RET_ALLOW
    assert run(default, "personality", 0x0400000) == EPERM  # READ_IMPLIES_EXEC
    # minirun's addition: no device nodes, but FIFOs, sockets and plain files are fine
    S_IFCHR, S_IFBLK, S_IFIFO, S_IFSOCK = 0o020000, 0o060000, 0o010000, 0o140000
    assert run(default, "mknod", 0, S_IFBLK | 0o600, 0) == EPERM
    assert run(default, "mknod", 0, S_IFCHR | 0o600, 0) == EPERM
    assert run(default, "mknodat", 0, 0, S_IFBLK | 0o600, 0) == EPERM
    assert run(default, "mknod", 0, S_IFIFO | 0o600, 0) == RET_ALLOW
    assert run(default, "mknodat", 0, 0, S_IFSOCK | 0o600, 0) == RET_ALLOW
    assert run(default, "mknodat", 0, 0, 0o600, 0) == RET_ALLOW
    # the high half of a 64-bit argument counts too
    assert run(default, "personality", 1 << 32) == EPERM


def test_architectures_as_docker_and_runc(default):
    """Docker's archMap puts x86 and x32 in the x86_64 filter: their calls follow the same rules."""
    assert run(default, NR_ARCH("x86", "read"), arch=AUDIT_ARCH_I386) == RET_ALLOW  # `int 0x80`
    assert run(default, NR_ARCH("x86", "mount"), arch=AUDIT_ARCH_I386) == EPERM
    assert run(default, NR_ARCH("x86", "chown32"), arch=AUDIT_ARCH_I386) == RET_ALLOW  # an x86-only name
    assert run(default, NR_ARCH("x32", "read")) == RET_ALLOW
    assert run(default, NR_ARCH("x32", "mount")) == EPERM
    assert run(default, 0, arch=AUDIT_ARCH_AARCH64) == RET_KILL_PROCESS  # not in the filter
    only_64 = build_filter(profile("SCMP_ACT_ERRNO", {"names": ["read"], "action": "SCMP_ACT_ALLOW"},
                                   architectures=["SCMP_ARCH_X86_64"])).program
    assert run(only_64, "read") == RET_ALLOW
    assert run(only_64, 3, arch=AUDIT_ARCH_I386) == RET_KILL_PROCESS
    assert run(only_64, NR_ARCH("x32", "read")) == RET_KILL_PROCESS


def test_syscalls_newer_than_the_profile_get_enosys(default):
    """runc's stub: above the highest number the profile names, ENOSYS lets libc fall back."""
    highest = max(NR(n) for n in ["futex_requeue", "fchmodat2", "read"])
    assert run(default, highest + 1) == run(default, 1000) == ENOSYS
    assert run(default, 335) == EPERM  # a hole below the highest: the default action
    assert run(default, 9999, arch=AUDIT_ARCH_I386) == ENOSYS
    assert run(default, X32 | 9999) == ENOSYS
    allow_all = build_filter(profile("SCMP_ACT_ALLOW", {"names": ["getpid"], "action": "SCMP_ACT_ERRNO"})).program
    assert run(allow_all, 1000) == RET_ALLOW  # an allow-by-default profile allows the unknown too


def test_capabilities_open_their_syscalls():
    program = build_filter(DEFAULT_PROFILE, DEFAULT_CAPS + ("CAP_SYS_ADMIN", "CAP_SYS_BOOT"), kernel=(6, 1)).program
    assert run(program, "mount") == run(program, "unshare") == run(program, "reboot") == RET_ALLOW
    assert run(program, "clone", 0x10000000) == RET_ALLOW
    assert run(program, "clone3") == RET_ALLOW
    assert run(program, "init_module") == EPERM
    assert run(build_filter(DEFAULT_PROFILE, ALL_CAPS, kernel=(6, 1)).program, "init_module") == RET_ALLOW


def test_min_kernel():
    old = build_filter(DEFAULT_PROFILE, DEFAULT_CAPS, kernel=(4, 4)).program
    assert run(old, "ptrace") == EPERM
    assert run(build_filter(DEFAULT_PROFILE, DEFAULT_CAPS, kernel=(4, 8)).program, "ptrace") == RET_ALLOW


# ---------------------------------------------------------------- differential: libseccomp vs the old compiler

# The only decisions that changed, each a fix (minirun/seccomp_default.py says why).
FIXES = {
    "io_uring_setup": (RET_ALLOW, EPERM), "io_uring_enter": (RET_ALLOW, EPERM),
    "io_uring_register": (RET_ALLOW, EPERM),  # Docker 25's profile no longer allows io_uring
    # kernel 6.5-6.7 syscalls Docker's current profile allows; the old table stopped at 450
    "cachestat": (ENOSYS, RET_ALLOW), "fchmodat2": (ENOSYS, RET_ALLOW), "map_shadow_stack": (ENOSYS, RET_ALLOW),
    "futex_wake": (ENOSYS, RET_ALLOW), "futex_wait": (ENOSYS, RET_ALLOW), "futex_requeue": (ENOSYS, RET_ALLOW),
}


@pytest.mark.parametrize("case", ["default", "sys_admin", "all"])
def test_same_decisions_as_the_hand_assembled_filter(case):
    """Every x86_64 syscall number and every argument case of the default profile, for three capability sets,
    decided as the old compiler did (tests/data/seccomp_reference_decisions.json, frozen before it went)."""
    with open(os.path.join(DATA, "seccomp_reference_decisions.json")) as f:
        reference = json.load(f)
    fixes = {NR(name): change for name, change in FIXES.items()}
    old_case = reference["cases"][case]
    program = build_filter(DEFAULT_PROFILE, old_case["caps"], kernel=(6, 1)).program
    checked = 0
    for nr, old in old_case["plain"].items():
        nr = int(nr)
        expected = fixes[nr][1] if nr in fixes else old
        if nr in fixes:
            assert old == fixes[nr][0], f"syscall {nr}: the reference changed"
        assert evaluate(program, nr) == expected, f"syscall {nr} ({reference['names'].get(str(nr))})"
        checked += 1
    for name, args, old in old_case["args"]:
        assert run(program, name, *args) == old, (name, args)
        checked += 1
    assert checked > 500


# ---------------------------------------------------------------- custom profiles

def profile(default="SCMP_ACT_ALLOW", *rules, **extra):
    return {"defaultAction": default, "syscalls": list(rules), **extra}


# ---------------------------------------------------------------- differential: minirun's compiler vs libseccomp's

MULTIPLEXED = {"x86": ("socketcall", "ipc")}  # i386 calls whose rules also land on these, tested with arguments
BAD_ARCH = AUDIT_ARCH_AARCH64


def _ruled_numbers(profile: dict, arch: str) -> set[int]:
    """The numbers on ``arch`` where some rule of ``profile`` tests arguments (where argument cases matter)."""
    token = lib.seccomp_arch_resolve_name(arch.encode())
    names = {name for rule in profile.get("syscalls") or () if rule.get("args")
             for name in rule.get("names") or [rule.get("name")]}
    names |= set(MULTIPLEXED.get(arch, ()))
    numbers = {lib.seccomp_syscall_resolve_name_arch(token, name.encode()) for name in names}
    return {nr for nr in numbers if nr >= 0}


def _argument_values(profile: dict) -> list[int]:
    values = {0, 1, 2, 8, 40, 0xFFFFFFFF, 1 << 32, (1 << 32) | 8, (1 << 64) - 1, 0x7E020000}
    for rule in profile.get("syscalls") or ():
        for arg in rule.get("args") or ():
            for v in (arg.get("value", 0), arg.get("valueTwo", 0) or 0):
                values |= {(v + d) % (1 << 64) for d in (-1, 0, 1)} | {v | 1 << 32, v & 0xFFFFFFFF}
    return sorted(values)


def assert_decides_as_libseccomp(profile: dict, caps=()):
    ours = build_filter(profile, caps, kernel=(6, 1)).program
    theirs = libseccomp_reference.program(profile, caps)
    numbers = list(range(600)) + [1000, 0x3FFFFFFF, 0x7FFFFFFF, 0x80000000, 0xBFFFFFFF, 0xC0000000, 0xFFFFFFFE, 0xFFFFFFFF]
    values = _argument_values(profile)
    for arch, high, arch_name in ((AUDIT_ARCH_X86_64, 0, "x86_64"), (AUDIT_ARCH_X86_64, X32, "x32"),
                                  (AUDIT_ARCH_I386, 0, "x86"), (BAD_ARCH, 0, None)):
        ruled = _ruled_numbers(profile, arch_name) if arch_name else set()
        for number in numbers:
            nr = (number | high) & 0xFFFFFFFF
            cases = [(0,) * 6]
            if nr in ruled:
                cases += [tuple(v if i == index else 0 for i in range(6)) for index in range(3) for v in values]
                cases += [(a, b, 0, 0, 0, 0) for a in values[::3] for b in values[::3]]
            for args in cases:
                assert evaluate(ours, nr, args, arch) == evaluate(theirs, nr, args, arch), \
                    f"arch {arch:#x} nr {nr:#x} args {[hex(a) for a in args[:3]]}"
    return ours, theirs


@pytest.mark.parametrize("caps", [(), DEFAULT_CAPS, ("CAP_SYS_ADMIN", *DEFAULT_CAPS), ALL_CAPS],
                         ids=["none", "default", "sys_admin", "all"])
def test_dockers_profile_decides_as_libseccomp(caps):
    assert_decides_as_libseccomp(DEFAULT_PROFILE, caps)


@pytest.mark.parametrize("caps", [DEFAULT_CAPS, ALL_CAPS], ids=["default", "all"])
def test_containers_common_profile_decides_as_libseccomp(caps):
    with open(os.path.join(DATA, "containers-common-seccomp.json")) as f:
        assert_decides_as_libseccomp(json.load(f), caps)


ALL_ARCHES = ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
ARG_RULES = [  # every comparison, on 64-bit values, and calls that i386 multiplexes
    {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
    {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
     "args": [{"index": 0, "value": 0x1_0000_0008, "op": "SCMP_CMP_EQ"}]},
    {"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 2, "value": 0x1_0000_0000, "op": "SCMP_CMP_LT"}]},
    {"names": ["write"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 2, "value": 0x1_0000_0005, "op": "SCMP_CMP_LE"}]},
    {"names": ["pread64"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 1, "value": 0xFFFF_FFFF, "op": "SCMP_CMP_GT"}]},
    {"names": ["pwrite64"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 1, "value": 0x2_0000_0000, "op": "SCMP_CMP_GE"}]},
    {"names": ["socket"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 40, "op": "SCMP_CMP_NE"},
                                                                {"index": 1, "value": 1, "op": "SCMP_CMP_EQ"}]},
    {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
     "args": [{"index": 0, "value": 0xFFFF_0000_7E02_0000, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]},
    {"names": ["kill"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 1, "value": 0x1_0000_0009, "op": "SCMP_CMP_NE"}]},
    {"names": ["semget", "shmat", "accept", "recvmmsg", "accept4"], "action": "SCMP_ACT_ALLOW"},
    {"names": ["msgsnd"], "action": "SCMP_ACT_ERRNO", "errnoRet": 7, "args": [{"index": 3, "value": 2, "op": "SCMP_CMP_EQ"}]},
    {"names": ["getpid", "getppid", "gettid", "exit", "exit_group"], "action": "SCMP_ACT_ALLOW"},
    {"names": ["ptrace"], "action": "SCMP_ACT_KILL_PROCESS"},
    {"names": ["mount"], "action": "SCMP_ACT_TRAP"},
    {"names": ["uname"], "action": "SCMP_ACT_LOG"},
]


EXCLUSIVE_RULES = [  # one call's argument rules deciding differently where they cannot both hold; the first
    # rule without arguments winning over later ones
    {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
    {"names": ["personality"], "action": "SCMP_ACT_TRAP", "args": [{"index": 0, "value": 9, "op": "SCMP_CMP_EQ"},
                                                                     {"index": 1, "value": 3, "op": "SCMP_CMP_GT"}]},
    {"names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": 5,
     "args": [{"index": 0, "value": 10, "op": "SCMP_CMP_EQ"}, {"index": 1, "value": 3, "op": "SCMP_CMP_EQ"}]},
    {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
     "args": [{"index": 0, "value": 0xF0, "valueTwo": 0x10, "op": "SCMP_CMP_MASKED_EQ"}]},
    {"names": ["clone"], "action": "SCMP_ACT_LOG",
     "args": [{"index": 0, "value": 0x30, "valueTwo": 0x20, "op": "SCMP_CMP_MASKED_EQ"}]},
    {"names": ["getpid"], "action": "SCMP_ACT_TRAP"},
    {"names": ["getpid"], "action": "SCMP_ACT_ALLOW"},
]


@pytest.mark.parametrize("custom", [
    profile("SCMP_ACT_ERRNO", *ARG_RULES, architectures=ALL_ARCHES),
    profile("SCMP_ACT_ERRNO", *ARG_RULES),  # the native architecture alone: x32 and i386 calls are killed
    profile("SCMP_ACT_ERRNO", *ARG_RULES, architectures=["SCMP_ARCH_X86_64", "SCMP_ARCH_X32"]),
    profile("SCMP_ACT_ALLOW", *[dict(r, action="SCMP_ACT_ERRNO") for r in ARG_RULES], architectures=ALL_ARCHES),
    profile("SCMP_ACT_KILL_PROCESS", *ARG_RULES, architectures=["SCMP_ARCH_X86"]),
    profile("SCMP_ACT_ERRNO", defaultErrnoRet=38, *ARG_RULES, architectures=ALL_ARCHES),
    profile("SCMP_ACT_ERRNO", *EXCLUSIVE_RULES, architectures=ALL_ARCHES),
], ids=["all-arches", "native", "x32", "denylist", "i386-kill", "enosys-default", "exclusive"])
def test_custom_profiles_decide_as_libseccomp(custom):
    assert_decides_as_libseccomp(custom)


def test_exclusive_rules_decide_as_written_on_every_abi():
    """kill(pid > 1, sig != 9) gets EAGAIN here. libseccomp's program for these two rules lets (2, 0) through to the
    default on i386 and x32 (not on x86_64): its trees for 32-bit ABIs merge NE rules badly (libseccomp#118)."""
    rules = profile("SCMP_ACT_ERRNO",
                    {"names": ["kill"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 1, "value": 9, "op": "SCMP_CMP_EQ"}]},
                    {"names": ["kill"], "action": "SCMP_ACT_ERRNO", "errnoRet": 11,
                     "args": [{"index": 1, "value": 9, "op": "SCMP_CMP_NE"}, {"index": 0, "value": 1, "op": "SCMP_CMP_GT"}]},
                    architectures=ALL_ARCHES)
    program = build_filter(rules).program
    for nr, arch in ((NR("kill"), AUDIT_ARCH_X86_64), (NR_ARCH("x32", "kill"), AUDIT_ARCH_X86_64),
                     (NR_ARCH("x86", "kill"), AUDIT_ARCH_I386)):
        assert evaluate(program, nr, (2, 0), arch) == RET_ERRNO | 11
        assert evaluate(program, nr, (2, 9), arch) == RET_ALLOW
        assert evaluate(program, nr, (1, 0), arch) == EPERM


@pytest.mark.parametrize("second", [
    {"index": 1, "value": 1, "op": "SCMP_CMP_EQ"},  # libseccomp: TRAP wins for (8, 1), whatever the order
    {"index": 0, "value": 8, "op": "SCMP_CMP_LE"},
    {"index": 0, "value": 0x1_0000_0008, "op": "SCMP_CMP_EQ"},  # the same call on a 32-bit ABI
])
def test_argument_rules_that_can_hold_at_once_and_disagree_are_refused(second):
    """Which one libseccomp lets decide hangs on its internal tree (runc documents no rule), so minirun refuses
    to guess, in one line that says what to change."""
    overlapping = profile("SCMP_ACT_ERRNO",
                          {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                           "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
                          {"names": ["personality"], "action": "SCMP_ACT_TRAP", "args": [second]},
                          architectures=ALL_ARCHES)
    with pytest.raises(ProfileError, match="rules for personality whose arguments can match at once decide "
                                           "differently.*make them exclusive"):
        build_filter(overlapping)


def test_dockers_filter_is_a_third_of_libseccomps():
    """~0.2 ms of every container's start is the kernel checking and JIT-compiling this program: libseccomp's
    tree compares each number on its own (1268 instructions), minirun's search compares ranges of them."""
    ours, theirs = assert_decides_as_libseccomp(DEFAULT_PROFILE, DEFAULT_CAPS)
    assert len(ours) // 8 <= 600 < len(theirs) // 8


def test_denylist_profile_with_actions():
    p = build_filter(profile("SCMP_ACT_ALLOW",
                             {"names": ["getpid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
                             {"names": ["getppid"], "action": "SCMP_ACT_KILL_PROCESS"},
                             {"names": ["gettid"], "action": "SCMP_ACT_TRAP"},
                             {"name": "uname", "action": "SCMP_ACT_LOG"},
                             {"names": ["no_such_call", "read"], "action": "SCMP_ACT_ERRNO"})).program
    assert run(p, "getpid") == RET_ERRNO | 13
    assert run(p, "getppid") == RET_KILL_PROCESS
    assert run(p, "gettid") == RET_TRAP
    assert run(p, "uname") == RET_LOG
    assert run(p, "read") == EPERM  # no_such_call is unknown to libseccomp: skipped, as runc does
    assert run(p, "write") == RET_ALLOW


def test_an_errno_rule_without_errnoret_returns_eperm_not_the_default_errno():
    """runc's rule (issue 10 item 8): defaultErrnoRet is for the default action only."""
    p = build_filter(profile("SCMP_ACT_ERRNO", {"names": ["read", "write", "exit_group"], "action": "SCMP_ACT_ALLOW"},
                             {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"},
                             {"names": ["rmdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
                             defaultErrnoRet=38)).program
    assert run(p, "mkdir") == EPERM
    assert run(p, "rmdir") == RET_ERRNO | 13
    assert run(p, "getpid") == ENOSYS


def test_containers_common_errno_names():
    p = build_filter(profile("SCMP_ACT_ERRNO", {"names": ["read"], "action": "SCMP_ACT_ALLOW"},
                             {"names": ["socket"], "action": "SCMP_ACT_ERRNO", "errno": "EINVAL"},
                             {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errno": "EACCES", "errnoRet": 2},
                             defaultErrno="ENOSYS")).program
    assert run(p, "getpid") == ENOSYS
    assert run(p, "socket") == EINVAL
    assert run(p, "mkdir") == RET_ERRNO | 2  # errnoRet wins over the name


@pytest.mark.parametrize("op, value, two, hits, misses", [
    ("SCMP_CMP_EQ", 5, 0, [5], [4, 6, 5 | 1 << 32]),
    ("SCMP_CMP_NE", 5, 0, [4, 6, 5 | 1 << 32], [5]),
    ("SCMP_CMP_LT", 1 << 32, 0, [0, (1 << 32) - 1], [1 << 32, (1 << 32) + 1, 1 << 63]),
    ("SCMP_CMP_LE", 1 << 32, 0, [0, 1 << 32], [(1 << 32) + 1, 2 << 32]),
    ("SCMP_CMP_GT", 7, 0, [8, 1 << 32, 1 << 63], [7, 0]),
    ("SCMP_CMP_GE", (3 << 32) | 7, 0, [(3 << 32) | 7, 4 << 32], [(3 << 32) | 6, 7, 2 << 32]),
    ("SCMP_CMP_MASKED_EQ", 0xFF00, 0x1200, [0x1200, 0x12FF, 0xFF1200], [0x1300, 0]),
    ("SCMP_CMP_MASKED_EQ", 0xF << 32, 1 << 32, [1 << 32, (1 << 32) | 99], [0, 2 << 32]),
])
def test_argument_comparisons_are_64_bit_and_unsigned(op, value, two, hits, misses):
    rule = {"names": ["ioctl"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 1, "value": value, "valueTwo": two,
                                                                       "op": op}]}
    p = build_filter(profile("SCMP_ACT_ALLOW", rule)).program
    for arg in hits:
        assert run(p, "ioctl", 0, arg) == EPERM, hex(arg)
    for arg in misses:
        assert run(p, "ioctl", 0, arg) == RET_ALLOW, hex(arg)


def test_all_conditions_of_a_rule_must_hold():
    rule = {"names": ["ioctl"], "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}, {"index": 2, "value": 3, "op": "SCMP_CMP_EQ"}]}
    p = build_filter(profile("SCMP_ACT_ERRNO", rule)).program
    assert run(p, "ioctl", 1, 0, 3) == RET_ALLOW
    assert run(p, "ioctl", 1, 0, 4) == EPERM
    assert run(p, "ioctl", 2, 0, 3) == EPERM


def test_two_conditions_on_one_argument_become_two_rules_as_in_runc():
    rule = {"names": ["ioctl"], "action": "SCMP_ACT_ERRNO",
            "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}, {"index": 0, "value": 9, "op": "SCMP_CMP_EQ"}]}
    p = build_filter(profile("SCMP_ACT_ALLOW", rule)).program
    assert run(p, "ioctl", 1) == run(p, "ioctl", 9) == EPERM
    assert run(p, "ioctl", 2) == RET_ALLOW


def test_docker_includes_and_excludes():
    rules = [{"names": ["reboot"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_BOOT"]}},
             {"names": ["uname"], "action": "SCMP_ACT_ALLOW", "excludes": {"arches": ["amd64"]}},
             {"names": ["getpid"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["arm64"]}},
             {"names": ["gettid"], "action": "SCMP_ACT_ALLOW", "excludes": {"minKernel": "5.0"}}]
    p = build_filter(profile("SCMP_ACT_ERRNO", *rules), DEFAULT_CAPS, kernel=(6, 1)).program
    assert [run(p, n) for n in ["reboot", "uname", "getpid", "gettid"]] == [EPERM] * 4
    p = build_filter(profile("SCMP_ACT_ERRNO", *rules), ("SYS_BOOT",), kernel=(4, 19)).program
    assert run(p, "reboot") == run(p, "gettid") == RET_ALLOW


def test_errnoret_beside_an_action_without_errno_is_ignored_as_in_runc():
    p = build_filter(profile("SCMP_ACT_ALLOW", {"names": ["read"], "action": "SCMP_ACT_KILL_PROCESS", "errnoRet": 1},
                             defaultErrnoRet=38)).program
    assert run(p, "read") == RET_KILL_PROCESS and run(p, "write") == RET_ALLOW


def test_flags_go_to_seccomp2():
    f = build_filter(profile("SCMP_ACT_ALLOW", flags=["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
                                                      "SECCOMP_FILTER_FLAG_TSYNC"]))
    assert f.flags == 2 | 4 | 1 and isinstance(f, SeccompFilter) and f == (f.program, f.flags)


@pytest.mark.parametrize("bad, message", [
    ([], "top level"),
    ({"syscalls": []}, "defaultAction is missing"),
    (profile("SCMP_ACT_NOTIFY"), "SCMP_ACT_NOTIFY"),
    (profile("SCMP_ACT_ERRNO", {"names": ["read"], "action": "SCMP_ACT_NOTIFY"}), "no seccomp agent"),
    (profile("SCMP_ACT_BOGUS"), "unknown action"),
    (profile("SCMP_ACT_ALLOW", flags=["SECCOMP_FILTER_FLAG_NEW_LISTENER"]), "seccomp agent"),
    (profile("SCMP_ACT_ALLOW", flags=["SECCOMP_FILTER_FLAG_FAST"]), "unknown flag"),
    (profile("SCMP_ACT_ALLOW", listenerPath="/run/x.sock"), "listenerPath"),
    (profile("SCMP_ACT_ALLOW", architectures=["SCMP_ARCH_VAX"]), "unknown architecture"),
    (profile("SCMP_ACT_ALLOW", architectures=["SCMP_ARCH_X86"], archMap=[{"architecture": "SCMP_ARCH_X86_64"}]),
     "either architectures or archMap"),
    (profile("SCMP_ACT_ALLOW", defaultaction="x"), "unsupported field"),
    (profile("SCMP_ACT_ALLOW", {"names": ["read"]}), "action is missing"),
    (profile("SCMP_ACT_ALLOW", {"names": "read", "action": "SCMP_ACT_ALLOW"}), "names must be a list"),
    (profile("SCMP_ACT_ALLOW", {"names": ["read"], "action": "SCMP_ACT_ERRNO", "errnoRet": 70000}), "errnoRet"),
    (profile("SCMP_ACT_ALLOW", {"names": ["read"], "action": "SCMP_ACT_ERRNO", "errno": "EWHATEVER"}), "errno name"),
    (profile("SCMP_ACT_ALLOW", {"names": ["read"], "action": "SCMP_ACT_ERRNO",
                                "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}), "index"),
    (profile("SCMP_ACT_ALLOW", {"names": ["read"], "action": "SCMP_ACT_ERRNO",
                                "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_ALMOST"}]}), "unknown argument op"),
    (profile("SCMP_ACT_ALLOW", {"names": ["read"], "action": "SCMP_ACT_ERRNO", "errnoRet": 5,
                                "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}]},
             {"names": ["read"], "action": "SCMP_ACT_ERRNO", "errnoRet": 6,
              "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}]}), "disagree"),
    (profile("SCMP_ACT_ALLOW", {"names": ["read"], "action": "SCMP_ACT_ALLOW", "includes": {"user": ["x"]}}),
     "includes supports only"),
])
def test_what_is_not_supported_is_refused_clearly(bad, message):
    with pytest.raises(ProfileError, match=message):
        build_filter(bad, DEFAULT_CAPS)


# ---------------------------------------------------------------- the engines' own profiles

def podman_profile():
    with open(os.path.join(DATA, "containers-common-seccomp.json")) as f:
        return json.load(f)


def test_podmans_default_profile_loads_and_decides():
    """containers-common's seccomp.json (podman's default): ENOSYS by default, named errnos, archMap.

    It leaves mount, unshare and setns to the capabilities (allowed here, as under podman)."""
    p = build_filter(podman_profile(), DEFAULT_CAPS, kernel=(6, 1)).program
    assert run(p, "read") == run(p, "clone", 0x01200011) == run(p, "mount") == run(p, "chroot") == RET_ALLOW
    assert run(p, "kexec_load") == run(p, "bpf") == run(p, "init_module") == EPERM  # its explicit EPERM rules
    assert run(p, "io_uring_setup") == run(p, "add_key") == ENOSYS  # not listed: its defaultErrno
    assert run(p, "socket", 16, 3, 9) == RET_ALLOW  # CAP_AUDIT_WRITE is kept
    assert run(p, NR_ARCH("x86", "read"), arch=AUDIT_ARCH_I386) == RET_ALLOW
    fewer = build_filter(podman_profile(), [c for c in DEFAULT_CAPS if c not in ("CAP_AUDIT_WRITE", "CAP_SYS_CHROOT")],
                         kernel=(6, 1)).program
    assert run(fewer, "chroot") == EPERM  # excludes: caps
    assert run(fewer, "socket", 16, 3, 9) == EINVAL  # AF_NETLINK / NETLINK_AUDIT: "errno": "EINVAL"
    assert run(fewer, "socket", 2, 1, 0) == RET_ALLOW


def test_dockers_archmap_and_an_oci_config_with_sub_architectures():
    """What podman and containerd write into config.json: the OCI shape, x86_64 with x86 and x32."""
    oci = {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38,
           "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
           "flags": ["SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
           "syscalls": [{"names": ["read", "write", "exit_group"], "action": "SCMP_ACT_ALLOW"},
                        {"names": ["mount"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}
    f = build_filter(oci)
    assert f.flags == 4
    assert run(f.program, "read") == RET_ALLOW and run(f.program, "mount") == EPERM
    assert run(f.program, "getpid") == ENOSYS
    assert run(f.program, NR_ARCH("x32", "read")) == RET_ALLOW
    assert run(f.program, NR_ARCH("x86", "write"), arch=AUDIT_ARCH_I386) == RET_ALLOW


def test_program_is_well_formed(default):
    assert len(default) % 8 == 0 and len(default) // 8 < 4096
    assert struct.unpack_from("<HBBI", default, 0) == (0x20, 0, 0, 4)  # the first check is the architecture


# ---------------------------------------------------------------- the cache

@pytest.fixture
def cache(tmp_path, monkeypatch):
    directory = tmp_path / "cache"
    monkeypatch.setattr(seccomp, "_cache_dir", lambda: str(directory))
    monkeypatch.setattr(seccomp, "_DEFAULT_FILTERS", {})  # as in a new process
    return directory


def programs(cache) -> list[str]:
    return [name for name in os.listdir(cache) if name != seccomp.INDEX]


def test_the_cache_returns_what_was_built(cache, monkeypatch):
    first = filter_for("default", DEFAULT_CAPS)
    assert first == build_filter("default", DEFAULT_CAPS)
    assert len(programs(cache)) == 1 and (os.stat(cache).st_mode & 0o777) == 0o700
    monkeypatch.setattr(seccomp, "build_filter", lambda *a, **k: pytest.fail("rebuilt despite the cache"))
    assert filter_for("default", DEFAULT_CAPS) == first


def test_the_default_filter_is_looked_up_once_per_process_and_capabilities(cache, monkeypatch):
    """A program running containers through the API reads no cache, index or source file again."""
    lookups = []
    monkeypatch.setattr(seccomp, "_source_id", lambda name, real=seccomp._source_id: lookups.append(name) or real(name))
    first = filter_for("default", DEFAULT_CAPS)
    looked_up = len(lookups)
    assert looked_up and filter_for("default", list(DEFAULT_CAPS)) is first and len(lookups) == looked_up
    assert filter_for("default", DEFAULT_CAPS + ("CAP_SYS_ADMIN",)) != first  # its own capabilities, its own filter
    assert len(lookups) > looked_up


def test_the_cache_key_covers_profile_and_capabilities(cache):
    filter_for("default", DEFAULT_CAPS)
    admin = filter_for("default", DEFAULT_CAPS + ("CAP_SYS_ADMIN",))
    logged = filter_for(profile("SCMP_ACT_ALLOW", flags=["SECCOMP_FILTER_FLAG_LOG"]))
    assert len(programs(cache)) == 3
    assert run(admin.program, "mount") == RET_ALLOW and logged.flags == 2
    assert filter_for(profile("SCMP_ACT_ALLOW", flags=["SECCOMP_FILTER_FLAG_LOG"])) == logged


def test_the_cache_key_covers_the_code_generator(cache, monkeypatch):
    """A program built by an older seccomp_bpf.py is not taken for the new one's."""
    first = seccomp._cache_key("default", DEFAULT_CAPS, (6, 1))
    real = seccomp._source_id
    monkeypatch.setattr(seccomp, "_source_id", lambda name: real(name) + ("changed" if name == "seccomp_bpf.py" else ""))
    assert seccomp._cache_key("default", DEFAULT_CAPS, (6, 1)) != first
    assert "seccomp_bpf.py" in seccomp._index_parts("default", DEFAULT_CAPS, (6, 1))


def _cached_default_in_a_new_process(cache, profile="default") -> tuple[str, list[str]]:
    code = (f"import sys; import minirun.seccomp as s; s._cache_dir = lambda: {str(cache)!r}; "
            f"f = s.filter_for({profile!r}, ['CAP_CHOWN', 'CAP_KILL']); "
            "print(f.program.hex(), sorted(m for m in ('minirun._seccomp', '_sha256', '_sha2') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    program, loaded = out.stdout.split(" ", 1)
    return program, eval(loaded)  # noqa: S307 - our own printed list


def test_a_cached_default_run_loads_no_libseccomp_and_hashes_nothing(cache):
    """The run path's profile: the index names its program while libseccomp's file is the same one."""
    built = filter_for("default", ["CAP_CHOWN", "CAP_KILL"]).program.hex()
    assert _cached_default_in_a_new_process(cache) == (built, [])
    # libseccomp replaced (another size, mtime or inode): the index line no longer holds, the key is made again
    index = cache / seccomp.INDEX
    index.write_text(re.sub(r"(/libseccomp[^\t]*:)\d+\t", r"\g<1>1\t", index.read_text()))
    program, loaded = _cached_default_in_a_new_process(cache)
    assert program == built and "minirun._seccomp" in loaded
    assert _cached_default_in_a_new_process(cache) == (built, [])  # and indexed again


def test_a_cached_oci_profile_loads_no_libseccomp(cache):
    """An engine's profile (minirun-oci create): its index line is a digest of it, and libseccomp stays unloaded."""
    oci = profile("SCMP_ACT_ERRNO", {"names": ["read", "write", "exit_group"], "action": "SCMP_ACT_ALLOW"})
    built = filter_for(oci, ["CAP_CHOWN", "CAP_KILL"]).program.hex()
    program, loaded = _cached_default_in_a_new_process(cache, oci)
    assert program == built and "minirun._seccomp" not in loaded
    other = dict(oci, defaultAction="SCMP_ACT_KILL")  # another profile misses, and is built, not mixed up
    assert _cached_default_in_a_new_process(cache, other)[0] == filter_for(other, ["CAP_CHOWN", "CAP_KILL"]).program.hex() != built


def test_a_cache_others_can_write_is_not_trusted(cache, monkeypatch):
    filter_for("default", DEFAULT_CAPS)
    (name,) = programs(cache)
    # a planted "allow everything" program, in a directory others may write to
    (cache / name).write_bytes(b"\0\0\0\0" + struct.pack("<HBBI", 0x06, 0, 0, RET_ALLOW))
    os.chmod(cache, 0o777)
    assert filter_for("default", DEFAULT_CAPS) == build_filter("default", DEFAULT_CAPS)
    shutil.rmtree(cache)


# -- PID 1's guard (minirun/seccomp_guard.py) ------------------------------------------------------------------

def test_pid1_guard_numbers_are_libseccomps():
    from minirun import seccomp_guard

    names = (b"ptrace", b"process_vm_readv", b"process_vm_writev", b"kcmp", b"pidfd_open", b"pidfd_getfd")
    for arch, table in ((b"x86_64", seccomp_guard.X86_64), (b"x32", seccomp_guard.X32), (b"x86", seccomp_guard.I386)):
        token = lib.seccomp_arch_resolve_name(arch)
        assert tuple(lib.seccomp_syscall_resolve_name_arch(token, n) for n in names) == table, arch


@pytest.mark.parametrize("arch,table", [(AUDIT_ARCH_X86_64, "X86_64"), (AUDIT_ARCH_X86_64, "X32"),
                                        (AUDIT_ARCH_I386, "I386")])
def test_pid1_guard_refuses_pid_1_and_passes_the_rest_to_the_filter(arch, table):
    from minirun import seccomp_guard

    ptrace, readv, writev, kcmp, pidfd_open, pidfd_getfd = getattr(seccomp_guard, table)
    docker = build_filter("default", DEFAULT_CAPS + ("CAP_SYS_PTRACE",)).program
    for rest in (docker, None, build_filter({"defaultAction": "SCMP_ACT_ERRNO"}).program):
        program = seccomp_guard.guarded(rest)  # None: seccomp=unconfined, the guard alone

        def run(nr, *args):
            return evaluate(program, nr, args, arch)

        assert run(ptrace, 16, 1) == run(ptrace, 0x4206, 1) == EPERM  # any request
        # the kernel truncates to pid_t: a high word must not get pid 1 past the guard
        assert run(ptrace, 16, 0x100000001) == EPERM
        assert run(readv, 1) == run(writev, 1) == run(pidfd_open, 1) == EPERM
        assert run(kcmp, 1, 7) == run(kcmp, 7, 1) == EPERM
        assert run(pidfd_getfd, 3, 0, 0) == EPERM  # its target is out of seccomp's sight
        # what is not PID 1 is the container's filter's to decide (a debugger's use)
        for call in ((ptrace, 16, 42), (readv, 42), (kcmp, 7, 8), (pidfd_open, 42), (0, 1), (1, 1)):
            assert run(*call) == (evaluate(rest, call[0], call[1:], arch) if rest else RET_ALLOW), call
    assert evaluate(seccomp_guard.guarded(None), 0x1234, (1,), 0xC00000B7) == RET_ALLOW  # aarch64: not ours


def test_pid1_guard_only_for_a_container_holding_sys_ptrace():
    from minirun import security, seccomp_guard
    from minirun.spec import ContainerSpec, Process

    def args(caps, seccomp="default"):
        spec = ContainerSpec(rootfs="/", seccomp=seccomp, process=Process(["x"], capabilities=caps))
        return security.guard_init(security.native_args(spec))

    plain = args(DEFAULT_CAPS)
    assert not plain["seccomp"].startswith(seccomp_guard.GUARD)
    assert not [op for op in plain["path_ops"] if op.target.startswith("/proc/1/")]
    traced = args(DEFAULT_CAPS + ("CAP_SYS_PTRACE",))
    assert traced["seccomp"].startswith(seccomp_guard.GUARD)
    assert {op.target for op in traced["path_ops"] if op.kind == security.OP_MASK} >= {"/proc/1/mem", "/proc/1/fd"}
    assert args(DEFAULT_CAPS + ("CAP_SYS_PTRACE",), None)["seccomp"] == seccomp_guard.guarded(None)
    assert args(DEFAULT_CAPS, None)["seccomp"] is None
    # with SYS_ADMIN a proc of its own reaches /proc/1/mem past any filter: no guard to pretend
    assert args(ALL_CAPS, None)["seccomp"] is None


def test_an_index_line_names_a_program_in_the_cache_only(cache):
    """The key read from the index becomes a file name: anything but a sha256 digest is not used."""
    first = filter_for("default", DEFAULT_CAPS)
    index = cache / seccomp.INDEX
    (cache.parent / "outside").write_bytes(b"\0\0\0\0" + struct.pack("<HBBI", 0x06, 0, 0, RET_ALLOW))
    index.write_text(re.sub(r"\t[0-9a-f]{64}$", "\t../outside", index.read_text().strip()) + "\n")
    assert filter_for("default", DEFAULT_CAPS) == first
