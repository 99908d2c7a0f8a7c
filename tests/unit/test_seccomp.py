"""The hand-assembled seccomp filter, run instruction by instruction (seccomp.evaluate)."""

from __future__ import annotations

import struct

import pytest

from minirun import seccomp
from minirun.seccomp import (RET_ALLOW, RET_ERRNO, RET_KILL_PROCESS, RET_LOG, RET_TRAP, ProfileError, compile_profile,
                             evaluate)
from minirun.security import ALL_CAPS, DEFAULT_CAPS
from minirun.seccomp_default import DEFAULT_PROFILE
from minirun.syscall_table import X86_64 as NR

EPERM = RET_ERRNO | 1
ENOSYS = RET_ERRNO | 38
ARCH_I386 = 0x40000003


@pytest.fixture(scope="module")
def default():
    return compile_profile(DEFAULT_PROFILE, DEFAULT_CAPS, kernel=(6, 1))


def run(program, name, *args, arch=seccomp.AUDIT_ARCH_X86_64):
    return evaluate(program, NR[name] if isinstance(name, str) else name, args, arch)


# What the issue lists as refused by Docker's default profile.
REFUSED = ["kexec_load", "init_module", "finit_module", "delete_module", "reboot", "swapon", "swapoff", "mount",
           "umount2", "pivot_root", "keyctl", "add_key", "request_key", "bpf", "perf_event_open", "userfaultfd",
           "open_by_handle_at", "acct", "settimeofday", "clock_settime", "unshare", "setns", "iopl", "ioperm",
           "kexec_file_load", "syslog", "quotactl", "lookup_dcookie", "vhangup", "kcmp", "pidfd_getfd",
           "move_mount", "fsopen", "open_tree", "sethostname", "setdomainname", "create_module"]
ALLOWED = ["read", "write", "openat", "close", "execve", "exit_group", "mmap", "brk", "fork", "vfork", "wait4",
           "rt_sigaction", "capset", "setuid", "setgroups", "prctl", "chroot", "ptrace", "getdents64", "socketpair",
           "arch_prctl", "seccomp", "statx", "io_uring_setup", "mknod", "mknodat"]


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
    # minirun's addition: no device nodes, but FIFOs and plain files are fine
    S_IFCHR, S_IFBLK, S_IFIFO = 0o020000, 0o060000, 0o010000
    assert run(default, "mknod", 0, S_IFBLK | 0o600, 0) == EPERM
    assert run(default, "mknod", 0, S_IFCHR | 0o600, 0) == EPERM
    assert run(default, "mknodat", 0, 0, S_IFBLK | 0o600, 0) == EPERM
    assert run(default, "mknod", 0, S_IFIFO | 0o600, 0) == RET_ALLOW
    assert run(default, "mknodat", 0, 0, 0o600, 0) == RET_ALLOW
    # the high half of a 64-bit argument counts too
    assert run(default, "personality", 1 << 32) == EPERM


def test_architecture_and_abi_checks(default):
    assert run(default, "read", arch=ARCH_I386) == RET_KILL_PROCESS  # `int 0x80`: other numbers
    assert run(default, 0x40000000 | NR["read"]) == RET_KILL_PROCESS  # x32
    assert run(default, max(NR.values()) + 1) == ENOSYS  # newer than our table: libc may fall back
    assert run(default, 335) == EPERM  # a hole in the table, below the highest number


def test_capabilities_open_their_syscalls():
    program = compile_profile(DEFAULT_PROFILE, DEFAULT_CAPS + ("CAP_SYS_ADMIN", "CAP_SYS_BOOT"), kernel=(6, 1))
    assert run(program, "mount") == run(program, "unshare") == run(program, "reboot") == RET_ALLOW
    assert run(program, "clone", 0x10000000) == RET_ALLOW
    assert run(program, "clone3") == RET_ALLOW
    assert run(program, "init_module") == EPERM
    assert run(compile_profile(DEFAULT_PROFILE, ALL_CAPS, kernel=(6, 1)), "init_module") == RET_ALLOW


def test_min_kernel():
    old = compile_profile(DEFAULT_PROFILE, DEFAULT_CAPS, kernel=(4, 4))
    assert run(old, "ptrace") == EPERM
    assert run(compile_profile(DEFAULT_PROFILE, DEFAULT_CAPS, kernel=(4, 8)), "ptrace") == RET_ALLOW


def test_the_precompiled_default_is_current():
    from minirun.seccomp_precompiled import DEFAULT_PROGRAM

    assert DEFAULT_PROGRAM == compile_profile(DEFAULT_PROFILE, DEFAULT_CAPS, kernel=(4, 8)), \
        "stale: run `python -m minirun.seccomp`"


def test_program_is_small_and_well_formed(default):
    assert len(default) % 8 == 0 and len(default) // 8 < 512
    for i in range(0, len(default), 8):
        code, jt, jf, k = struct.unpack_from("<HBBI", default, i)
        assert code in (0x20, 0x54, 0x05, 0x15, 0x25, 0x35, 0x06)
        if code == 0x05:  # ja stays inside the program
            assert i // 8 + 1 + k < len(default) // 8
    # the first check is the architecture
    assert struct.unpack_from("<HBBI", default, 0) == (0x20, 0, 0, 4)


def test_every_syscall_decision_matches_the_profile_semantics(default):
    """Exhaustive: the tree gives, for every number, what the rules say."""
    default_action, rules = seccomp.parse_profile(DEFAULT_PROFILE, DEFAULT_CAPS, kernel=(6, 1))
    for nr in range(max(NR.values()) + 1):
        expected = rules[nr][1] if nr in rules else default_action
        assert evaluate(default, nr, (0x01200011, 0, 0, 0, 0, 0)) in (expected, RET_ALLOW, EPERM, ENOSYS), nr
        if nr not in rules or not rules[nr][0]:
            assert evaluate(default, nr) == expected, nr


# ---------------------------------------------------------------- custom profiles

def profile(default="SCMP_ACT_ALLOW", *rules, **extra):
    return {"defaultAction": default, "syscalls": list(rules), **extra}


def test_denylist_profile_with_actions():
    p = compile_profile(profile("SCMP_ACT_ALLOW",
                                {"names": ["getpid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
                                {"names": ["getppid"], "action": "SCMP_ACT_KILL_PROCESS"},
                                {"names": ["gettid"], "action": "SCMP_ACT_TRAP"},
                                {"name": "uname", "action": "SCMP_ACT_LOG"},
                                {"names": ["chown32", "read"], "action": "SCMP_ACT_ERRNO"}), DEFAULT_CAPS)
    assert run(p, "getpid") == RET_ERRNO | 13
    assert run(p, "getppid") == RET_KILL_PROCESS
    assert run(p, "gettid") == RET_TRAP
    assert run(p, "uname") == RET_LOG
    assert run(p, "read") == EPERM  # chown32 is not an x86_64 syscall: skipped
    assert run(p, "write") == RET_ALLOW
    assert run(p, max(NR.values()) + 5) == RET_ALLOW  # an allow-by-default profile allows the unknown too


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
    p = compile_profile(profile("SCMP_ACT_ALLOW", rule), DEFAULT_CAPS)
    for arg in hits:
        assert run(p, "ioctl", 0, arg) == EPERM, hex(arg)
    for arg in misses:
        assert run(p, "ioctl", 0, arg) == RET_ALLOW, hex(arg)


def test_all_conditions_of_a_rule_must_hold():
    rule = {"names": ["ioctl"], "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}, {"index": 2, "value": 3, "op": "SCMP_CMP_EQ"}]}
    p = compile_profile(profile("SCMP_ACT_ERRNO", rule), DEFAULT_CAPS)
    assert run(p, "ioctl", 1, 0, 3) == RET_ALLOW
    assert run(p, "ioctl", 1, 0, 4) == EPERM
    assert run(p, "ioctl", 2, 0, 3) == EPERM


def test_docker_includes_and_excludes():
    rules = [{"names": ["reboot"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_BOOT"]}},
             {"names": ["uname"], "action": "SCMP_ACT_ALLOW", "excludes": {"arches": ["amd64"]}},
             {"names": ["getpid"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["arm64"]}},
             {"names": ["gettid"], "action": "SCMP_ACT_ALLOW", "excludes": {"minKernel": "5.0"}}]
    p = compile_profile(profile("SCMP_ACT_ERRNO", *rules), DEFAULT_CAPS, kernel=(6, 1))
    assert [run(p, n) for n in ["reboot", "uname", "getpid", "gettid"]] == [EPERM] * 4
    p = compile_profile(profile("SCMP_ACT_ERRNO", *rules), ("SYS_BOOT",), kernel=(4, 19))
    assert run(p, "reboot") == run(p, "gettid") == RET_ALLOW


@pytest.mark.parametrize("bad, message", [
    ([], "top level"),
    ({"syscalls": []}, "defaultAction is missing"),
    (profile("SCMP_ACT_NOTIFY"), "SCMP_ACT_NOTIFY"),
    (profile("SCMP_ACT_BOGUS"), "unknown action"),
    (profile("SCMP_ACT_ALLOW", flags=["SECCOMP_FILTER_FLAG_LOG"]), "flags"),
    (profile("SCMP_ACT_ALLOW", listenerPath="/run/x.sock"), "listenerPath"),
    (profile("SCMP_ACT_ALLOW", architectures=["SCMP_ARCH_AARCH64"]), "SCMP_ARCH_X86_64"),
    (profile("SCMP_ACT_ALLOW", defaultaction="x"), "unsupported field"),
    (profile("SCMP_ACT_ALLOW", {"names": ["read"]}), "action is missing"),
    (profile("SCMP_ACT_ALLOW", {"names": "read", "action": "SCMP_ACT_ALLOW"}), "names must be a list"),
    (profile("SCMP_ACT_ALLOW", {"names": ["read"], "action": "SCMP_ACT_ALLOW", "errnoRet": 1}), "errnoRet only"),
    (profile("SCMP_ACT_ALLOW", {"names": ["read"], "action": "SCMP_ACT_ERRNO", "errnoRet": 70000}), "errnoRet"),
    (profile("SCMP_ACT_ALLOW", {"names": ["read"], "action": "SCMP_ACT_ERRNO",
                                "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}), "index"),
    (profile("SCMP_ACT_ALLOW", {"names": ["read"], "action": "SCMP_ACT_ERRNO",
                                "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_ALMOST"}]}), "unknown argument op"),
    (profile("SCMP_ACT_ALLOW", {"names": ["read"], "action": "SCMP_ACT_ERRNO",
                                "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_GT"},
                                         {"index": 0, "value": 9, "op": "SCMP_CMP_LT"}]}), "two conditions"),
    (profile("SCMP_ACT_ALLOW", {"names": ["read"], "action": "SCMP_ACT_ALLOW", "includes": {"user": ["x"]}}),
     "includes supports only"),
])
def test_what_is_not_supported_is_refused_clearly(bad, message):
    with pytest.raises(ProfileError, match=message):
        compile_profile(bad, DEFAULT_CAPS)


def test_dockers_own_file_loads_with_its_archmap():
    docker = dict(DEFAULT_PROFILE)
    del docker["architectures"]
    docker["archMap"] = [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
                         {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]}]
    p = compile_profile(docker, DEFAULT_CAPS, kernel=(6, 1))
    assert run(p, "mount") == EPERM and run(p, "read") == RET_ALLOW
