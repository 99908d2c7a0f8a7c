"""The container's PID 1 and the processes minirun starts in a container, against a process of
the container that attacks them (issue 18, doors 3 to 5), each beside its positive control.

PID 1 (minirun-init) confines itself before COMMAND may exec (csrc/reap.c): no capability but
CAP_KILL, no_new_privs, non-dumpable, its own seccomp filter, named, its signals set up. The
processes `exec` starts in the container are non-dumpable from the fork on, and the helper they
exec (the sealed minirun-init) starts non-dumpable too (csrc/security.c): like runc's, no
minirun process is ever both visible in the container and open to a ptrace from it. A
container holding CAP_SYS_PTRACE gets past non-dumpable: PID 1's guard keeps it out
(minirun/seccomp_guard.py).
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from helpers import build_probe, minirun, popen_minirun, wait_for
from minirun.probes import BLOCKED, ESCAPED, PROBE_DIR

PROBE = f"{PROBE_DIR}/probe"


@pytest.fixture(scope="module")
def probe_dir(tmp_path_factory):
    return build_probe(tmp_path_factory.mktemp("probe"))


def _status(text: str) -> dict:
    return {line.split(":")[0]: line.split(":", 1)[1].strip() for line in text.splitlines() if ":" in line}


# -- door 3: what PID 1 holds ----------------------------------------------------------------------------

def test_init_holds_only_what_a_reaper_needs(rootfs):
    out = minirun("run", rootfs, "/bin/sh", "-c", "cat /proc/1/status; echo ---; cat /proc/self/status")
    assert out.returncode == 0, out.stderr
    init, command = (_status(part) for part in out.stdout.split("---"))
    assert init["Name"] == "minirun-init"
    # CAP_KILL only (to forward signals to a COMMAND that changed its uid), and none to regain
    assert init["CapPrm"] == init["CapEff"] == init["CapBnd"] == f"{1 << 5:016x}", init
    assert init["CapInh"] == init["CapAmb"] == "0" * 16
    assert (init["NoNewPrivs"], init["Seccomp"]) == ("1", "2")
    assert init["Groups"] == ""
    # control: COMMAND itself holds docker's default set, more than its init
    assert int(command["CapPrm"], 16) & ~int(init["CapPrm"], 16), command
    # the container's bounding set caps it: without KILL, the init keeps nothing at all
    out = minirun("run", "--cap-drop", "KILL", rootfs, "/bin/cat", "/proc/1/status")
    assert _status(out.stdout)["CapPrm"] == "0" * 16, out.stdout


def test_init_cannot_be_ptraced(rootfs, probe_dir):
    """Without CAP_SYS_PTRACE, PID 1 is non-dumpable and out of reach."""
    out = minirun("run", "-v", f"{probe_dir}:{PROBE_DIR}:ro", rootfs, PROBE, "ptrace", "1")
    assert out.returncode == BLOCKED and "Operation not permitted" in out.stdout, out.stdout + out.stderr


# What reaches a process through ptrace_may_access: the attempt on PID 1, and the same on a sibling
ATTEMPTS = {"ptrace": "ptrace {pid}", "proc-mem": "read-mem {pid} proc-mem", "vm-readv": "read-mem {pid} vm-readv"}


@pytest.mark.parametrize("seccomp", ["default", "unconfined"])
@pytest.mark.parametrize("attempt", sorted(ATTEMPTS))
def test_init_is_out_of_reach_of_a_sys_ptrace_container(rootfs, probe_dir, attempt, seccomp):
    """With CAP_SYS_PTRACE the kernel skips the non-dumpable check (ptrace_has_cap): runc and
    crun let such a container attach to its init. minirun puts its PID 1 guard in front of the
    container's filter, and alone under seccomp=unconfined (PID 1 is minirun's, not the
    profile's), and masks /proc/1/mem (minirun/seccomp_guard.py). Control, in the same
    container: the same attempt on a sibling the probe started gets through, as gdb's does."""
    probe = ATTEMPTS[attempt]
    script = (f"{PROBE} {probe.format(pid=1)}; echo init=$?; sleep 60 & {PROBE} {probe.format(pid='$!')}; "
              "echo sibling=$?; kill $!")
    sec = ("--security-opt", "seccomp=unconfined") if seccomp == "unconfined" else ()
    out = minirun("run", "-v", f"{probe_dir}:{PROBE_DIR}:ro", "--cap-add", "SYS_PTRACE", *sec, rootfs,
                  "/bin/sh", "-c", script)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"init={BLOCKED}" in out.stdout and f"sibling={ESCAPED}" in out.stdout, out.stdout


def test_exec_in_a_sys_ptrace_container_cannot_reach_init(rootfs, probe_dir):
    """`exec` gives its process the container's recorded filter, PID 1's guard included."""
    name = "esc-ptrace-exec"
    out = minirun("run", "-d", "--name", name, "--cap-add", "SYS_PTRACE", "-v", f"{probe_dir}:{PROBE_DIR}:ro",
                  rootfs, "sleep", "600")
    assert out.returncode == 0, out.stderr
    try:
        out = minirun("exec", name, PROBE, "ptrace", "1")
        assert out.returncode == BLOCKED and "Operation not permitted" in out.stdout, out.stdout + out.stderr
        # control: the exec'd probe attaches to COMMAND (sleep)
        out = minirun("exec", name, "/bin/sh", "-c", f"{PROBE} ptrace $(pidof sleep)")
        assert out.returncode == ESCAPED, out.stdout + out.stderr
    finally:
        minirun("rm", "-f", name)


def test_init_fds_are_out_of_reach_of_a_sys_ptrace_container(rootfs, probe_dir):
    """pidfd_getfd (or /proc/1/fd) would hand COMMAND PID 1's pipes to minirun: pidfd_open(1) is
    refused and, seccomp not seeing which process a pidfd names, pidfd_getfd altogether (a
    debugger does not need it); /proc/1/fd and fdinfo are masked. Control: without SYS_PTRACE there
    is no guard, and without Docker's profile (which allows pidfd_getfd only with SYS_PTRACE) the
    probe takes a fd of a sibling of the same user."""
    vol = ("-v", f"{probe_dir}:{PROBE_DIR}:ro")
    out = minirun("run", *vol, "--cap-add", "SYS_PTRACE", rootfs, "/bin/sh", "-c",
                  f"{PROBE} pidfd-getfd 1; echo pidfd=$?; "
                  "for d in fd fdinfo task/1/fd task/1/fdinfo; do ls /proc/1/$d; done | wc -w")
    assert out.stdout.split()[-1] == "0" and "pidfd_open: Operation not permitted" in out.stdout, out.stdout
    out = minirun("run", *vol, "--security-opt", "seccomp=unconfined", rootfs, "/bin/sh", "-c",
                  f"sleep 60 & {PROBE} pidfd-getfd $!; r=$?; kill $!; exit $r")
    assert out.returncode == ESCAPED, out.stdout + out.stderr


def test_init_forwards_only_asynchronous_signals(rootfs):
    """SIGTRAP, SIGSEGV and SIGTSTP sent to PID 1 (as a ptrace attach or a careless `kill 1`
    does) are not COMMAND's: tini forwards none of the synchronous or job-control signals.
    SIGUSR1, sent after them, is; COMMAND's trap ends the run, so the order is the proof."""
    script = ('trap "echo got USR1; exit 0" USR1; kill -TRAP 1; kill -SEGV 1; kill -TSTP 1; kill -TTIN 1; '
              "kill -USR1 1; while :; do sleep 1; done")
    out = minirun("run", rootfs, "/bin/sh", "-c", script)
    assert (out.returncode, out.stdout) == (0, "got USR1\n"), out


# -- door 4: COMMAND never runs before PID 1 is complete -----------------------------------------------------

def test_command_never_sees_a_half_made_init_under_load(rootfs):
    """Before, EXEC_OK went out and COMMAND ran while PID 1 was still the forked interpreter,
    then exec'd minirun-init under COMMAND's eyes: /proc/1/comm read `memfd:minirun-i` between
    that exec and its prctl. Now COMMAND's process waits until minirun-init has confined itself.
    COMMAND watches PID 1 until it has been the small static program for 100 reads (statm in
    pages), reporting any other name and whether it first saw the interpreter. A busy loop
    keeps one of the two cores loaded; 300 starts, none may hang (each is bounded)."""
    watch = ('n=0; bad=; early=0; while [ $n -lt 100 ]; do read c < /proc/1/comm; [ "$c" = minirun-init ] || '
             'bad="$bad $c"; read s r < /proc/1/statm; if [ "$s" -lt 4096 ]; then n=$((n+1)); '
             'elif [ $n = 0 ]; then early=1; fi; done; echo "other names:$bad; interpreter seen: $early"')
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    seen: dict[str, int] = {}
    try:
        for _ in range(300):
            out = minirun("run", rootfs, "/bin/sh", "-c", watch, timeout=60)
            assert out.returncode == 0, out.stderr
            seen[out.stdout.strip()] = seen.get(out.stdout.strip(), 0) + 1
    finally:
        hog.kill()
        hog.wait()
    assert seen == {"other names:; interpreter seen: 0": 300}, seen


# -- door 5: no minirun process is visible in the container before its seccomp filter ---------------------

def _seized(logs: str) -> list[str]:
    return [line for line in logs.splitlines() if line.startswith("seized") and "gone before" not in line]


def test_exec_is_never_caught_before_its_seccomp_filter(rootfs, probe_dir):
    """A process of the container spins on PTRACE_SEIZE of every pid to come while the admin
    runs `exec` again and again. It used to catch the sealed minirun-init between its exec
    (dumpable again) and its prctl, before the seccomp filter it loads, and could have made
    seccomp(2) a no-op (issue 18: 3 runs of 4). Now whatever it catches is COMMAND, exec'd,
    under the filter; runc's rule: never visible in the container and dumpable at once."""
    name = "esc-seize"
    out = minirun("run", "-d", "--name", name, "-v", f"{probe_dir}:{PROBE_DIR}:ro", rootfs, PROBE, "seize-new")
    assert out.returncode == 0, out.stderr
    try:
        assert wait_for(lambda: "ready" in minirun("logs", name).stdout, 30)
        for _ in range(40):
            out = minirun("exec", name, "grep", "Seccomp:", "/proc/self/status")
            assert out.stdout == "Seccomp:\t2\n", out
        caught = _seized(minirun("logs", name).stdout)
        assert not [line for line in caught if "minirun" in line or "seccomp=2" not in line], caught
        # control: the attacker does seize a dumpable process it may trace once one is there
        sleeper = popen_minirun("exec", name, "sleep", "60")
        try:
            assert wait_for(lambda: len(_seized(minirun("logs", name).stdout)) > len(caught) and
                            "exe=/bin/busybox" in _seized(minirun("logs", name).stdout)[-1], 30), \
                minirun("logs", name).stdout
        finally:
            sleeper.kill()
            sleeper.wait()
    finally:
        minirun("rm", "-f", name)
