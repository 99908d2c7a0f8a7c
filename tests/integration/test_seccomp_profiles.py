"""seccomp profiles in real containers: Docker's default, podman's, and custom ones.

A static helper (seccomp_call.c, compiled here and mounted read-only) makes one
system call and prints its outcome, so each decision of the filter is seen
from inside the container, beside the same call unconfined (the positive
control: the call itself works, or fails for its own reason, without a filter).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from helpers import minirun
from minirun._seccomp import lib
from minirun.seccomp_default import DEFAULT_PROFILE

HERE = os.path.dirname(os.path.abspath(__file__))
PODMAN_PROFILE = os.path.join(HERE, "..", "data", "containers-common-seccomp.json")
EPERM, EFAULT, ENOSYS = "errno 1", "errno 14", "errno 38"


def nr(name: str, arch: str = "x86_64") -> str:
    return str(lib.seccomp_syscall_resolve_name_arch(lib.seccomp_arch_resolve_name(arch.encode()), name.encode()))


@pytest.fixture(scope="module")
def helper(tmp_path_factory):
    if not shutil.which("gcc"):
        pytest.skip("gcc is needed to build the syscall helper")
    out = tmp_path_factory.mktemp("seccomp-call")
    build = subprocess.run(["gcc", "-static", "-O2", "-o", str(out / "call"), os.path.join(HERE, "seccomp_call.c")],
                           capture_output=True, text=True)
    if build.returncode != 0:
        pytest.skip(f"cannot build a static helper: {build.stderr.strip()[-300:]}")
    return str(out)


def calls(rootfs, helper, options, *calls):
    """Each call (a tuple of helper arguments) in one container; returns the outcomes in order."""
    script = "; ".join("/sc/call " + " ".join(c) for c in calls)
    out = minirun("run", "-v", f"{helper}:/sc:ro", *options, rootfs, "/bin/sh", "-c", script)
    assert out.returncode == 0, out.stderr
    return out.stdout.splitlines()


def test_dockers_default_profile(rootfs, helper):
    cases = [(nr("getppid"),), (nr("io_uring_setup"), "0", "0"), (nr("mount"),), (nr("clone3"),), ("1000",),
             ("i386", nr("getpid", "x86")), ("i386", nr("mount", "x86"))]
    default = calls(rootfs, helper, (), *cases)
    unconfined = calls(rootfs, helper, ("--security-opt", "seccomp=unconfined"), *cases)
    assert default[0].startswith("ok") and unconfined[0].startswith("ok")
    assert default[1] == EPERM and unconfined[1] == EFAULT  # io_uring: Docker no longer allows it
    assert default[2] == EPERM and unconfined[2] != EPERM  # (CAP_SYS_ADMIN's absence alone gives EPERM too)
    assert default[3] == ENOSYS and unconfined[3] != ENOSYS  # clone3: libc falls back to clone
    assert default[4] == unconfined[4] == ENOSYS  # newer than the profile: ENOSYS, as without a filter
    if unconfined[5] == ENOSYS:
        pytest.skip("this kernel has no x86 (int 0x80) emulation")
    assert default[5].startswith("ok") and unconfined[5].startswith("ok")  # x86 is in the filter, as in Docker
    assert default[6] == EPERM


def test_dockers_profile_as_a_file_behaves_like_the_default(rootfs, helper, tmp_path):
    path = tmp_path / "docker.json"
    path.write_text(json.dumps(DEFAULT_PROFILE))
    cases = [(nr("getppid"),), (nr("io_uring_setup"), "0", "0"), (nr("clone3"),)]
    out = calls(rootfs, helper, ("--security-opt", f"seccomp={path}"), *cases)
    assert out[0].startswith("ok") and out[1:] == [EPERM, ENOSYS]


def test_podmans_default_profile(rootfs, helper):
    """containers-common's seccomp.json: ENOSYS for what it does not list, EPERM where it says so."""
    cases = [(nr("getppid"),), (nr("io_uring_setup"), "0", "0"), (nr("kexec_load"),), (nr("add_key"),)]
    out = calls(rootfs, helper, ("--security-opt", f"seccomp={PODMAN_PROFILE}"), *cases)
    assert out[0].startswith("ok")
    assert out[1:] == [ENOSYS, EPERM, ENOSYS]


def test_errno_rule_without_errnoret_gives_eperm(rootfs, helper, tmp_path):
    """runc's rule: defaultErrnoRet is the default action's; an errno rule that names none returns EPERM."""
    profile = json.loads(json.dumps(DEFAULT_PROFILE))
    profile["defaultErrnoRet"] = 38
    for rule in profile["syscalls"]:
        rule["names"] = [n for n in rule["names"] if n not in ("getppid", "getpgrp")]
    profile["syscalls"] += [{"names": ["getppid"], "action": "SCMP_ACT_ERRNO"},
                            {"names": ["getpgrp"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(profile))
    out = calls(rootfs, helper, ("--security-opt", f"seccomp={path}"), (nr("getppid"),), (nr("getpgrp"),),
                (nr("io_uring_setup"), "0", "0"), (nr("getpid"),))
    assert out[:3] == [EPERM, "errno 13", ENOSYS] and out[3].startswith("ok")


def test_oci_shape_with_sub_architectures_and_flags(rootfs, helper, tmp_path):
    """What engines write into config.json: x86_64 with x86 and x32, defaultErrnoRet, flags."""
    path = tmp_path / "oci.json"
    path.write_text(json.dumps({
        "defaultAction": "SCMP_ACT_ALLOW", "defaultErrnoRet": 1,
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "flags": ["SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_LOG"],
        "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}]}))
    out = calls(rootfs, helper, ("--security-opt", f"seccomp={path}"), (nr("getppid"),), (nr("getpid"),),
                ("i386", nr("getppid", "x86")))
    assert out[0] == ENOSYS and out[1].startswith("ok")
    assert out[2] in (ENOSYS,)  # the x86 call is filtered too (or the kernel lacks int 0x80: ENOSYS either way)


def test_notify_is_refused_clearly(rootfs, tmp_path):
    path = tmp_path / "notify.json"
    path.write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/agent.sock",
                                "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}))
    out = minirun("run", "--security-opt", f"seccomp={path}", rootfs, "/bin/true")
    assert out.returncode == 125 and out.stderr.startswith("minirun: ") and "listenerPath" in out.stderr
    assert "Traceback" not in out.stderr


# COMMAND is exec'd through minirun-init (a sealed memfd, against CVE-2019-5736), whose own
# syscalls must not meet the profile: it loads the filter itself, right before COMMAND's execve,
# as runc-dmz does. Before that, a profile killing fcntl or prctl killed COMMAND (exit 159).
KILL = "SCMP_ACT_KILL_PROCESS"
DENY_MKDIR = {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}
HELPER_KILLERS = {
    "fcntl": [{"names": ["fcntl"], "action": KILL}],
    # busybox's echo asks prctl for its name itself: kill what minirun-init calls, not that
    "prctl": [{"names": ["prctl"], "action": KILL, "args": [{"index": 0, "value": v, "op": "SCMP_CMP_EQ"}]}
              for v in (4, 15)],  # PR_SET_DUMPABLE, PR_SET_NAME
}


def _profile(tmp_path, name, rules):
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": rules}))
    return f"seccomp={path}"


@pytest.mark.parametrize("syscall", sorted(HELPER_KILLERS))
def test_a_profile_killing_the_helpers_syscalls_still_runs_command(rootfs, tmp_path, syscall):
    opt = _profile(tmp_path, syscall, HELPER_KILLERS[syscall] + [DENY_MKDIR])
    out = minirun("run", "--rm", "--security-opt", opt, rootfs, "/bin/echo", "hello")
    assert (out.returncode, out.stdout, out.stderr) == (0, "hello\n", "")
    # ... and the filter is COMMAND's: the same profile refuses its mkdir, where none lets it through
    denied = minirun("run", "--rm", "--security-opt", opt, rootfs, "/bin/mkdir", "/tmp/x")
    assert denied.returncode == 1 and "Operation not permitted" in denied.stderr
    allowed = minirun("run", "--rm", "--security-opt", _profile(tmp_path, "none", []), rootfs, "/bin/mkdir", "/tmp/x")
    assert allowed.returncode == 0, allowed.stderr


def test_the_profile_still_kills_command_itself(rootfs, tmp_path):
    """The kill rule is in force once COMMAND runs: busybox's echo calls prctl(PR_GET_NAME)."""
    opt = _profile(tmp_path, "prctl-all", [{"names": ["prctl"], "action": KILL}])
    out = minirun("run", "--rm", "--security-opt", opt, rootfs, "/bin/echo", "hello")
    assert out.returncode == 128 + 31 and out.stdout == ""  # SIGSYS


def test_without_the_helper_nothing_runs(rootfs):
    """minirun-init is what execs COMMAND and reaps (csrc/reap.c, command.c): there is no
    in-process way round it, so a build without it fails at once, saying what is missing."""
    script = ("import sys; from minirun import syscalls; syscalls.INIT_PATH = '/nonexistent/minirun-init'; "
              "from minirun.entry import main; sys.argv[0] = 'minirun'; main()")
    out = subprocess.run([sys.executable, "-c", script, "run", "--rm", rootfs, "/bin/echo", "hello"],
                         capture_output=True, text=True, timeout=60)
    assert (out.returncode, out.stdout) == (125, "")
    assert "/nonexistent/minirun-init is missing" in out.stderr


def test_a_filter_that_fails_to_load_is_an_exec_failure_naming_it(rootfs):
    """Loaded by minirun-init just before COMMAND's execve, a refused filter is COMMAND's exec failure."""
    script = ("import sys; from minirun import security\n"
              "real = security.native_args\n"
              "security.native_args = lambda spec: {**real(spec), 'seccomp': bytes.fromhex('ffff000000000000')}\n"
              "from minirun.entry import main; sys.argv[0] = 'minirun'; main()\n")
    out = subprocess.run([sys.executable, "-c", script, "run", "--rm", rootfs, "/bin/echo", "hello"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 126 and out.stdout == ""
    assert out.stderr == "minirun: load seccomp filter (1 instructions, flags 0): Invalid argument\n"
