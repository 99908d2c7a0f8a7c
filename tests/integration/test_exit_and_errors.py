"""Exit statuses, signals, and bad input: docker's codes, one line, nothing left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from helpers import minirun, popen_minirun, wait_for
from minirun.state import STATE_ROOT
from minirun.settings import CGROUP_PARENT


def one_line_error(proc, code: int, *fragments: str) -> None:
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got: {proc.stderr!r}"
    assert lines[0].startswith("minirun: ")
    assert "Traceback" not in proc.stderr
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.mark.parametrize("script, code", [("exit 0", 0), ("exit 3", 3), ("exit 255", 255),
                                          ("kill -KILL $$", 137), ("kill -TERM $$", 143), ("kill -SEGV $$", 139)])
def test_exit_status_is_the_commands(rootfs, script, code):
    assert minirun("run", rootfs, "/bin/sh", "-c", script).returncode == code


def test_command_not_found_is_127(rootfs):
    one_line_error(minirun("run", rootfs, "no-such-command"), 127, "no-such-command", "not found")
    one_line_error(minirun("run", rootfs, "/bin/nope"), 127, "/bin/nope")


def test_command_not_executable_is_126(rootfs):
    one_line_error(minirun("run", rootfs, "/etc/passwd"), 126, "/etc/passwd")
    one_line_error(minirun("run", rootfs, "/etc"), 126)


@pytest.mark.parametrize("args, fragment", [
    (["--memory", "12XB"], "--memory"),
    (["--memory", "0"], "--memory"),
    (["--memory", "-5m"], "--memory"),
    (["--memory", "1k"], "--memory 1k is below the minimum of 6m"),
    (["--memory", "6291455"], "--memory 6291455 is below the minimum of 6m"),
    (["--hostname", "h" * 300], "300 bytes long, the kernel allows at most 64"),
    (["--hostname", "a b"], "invalid hostname"),
    (["--memory-swap", "1m", "--memory", "64m"], "--memory-swap"),
    (["--cpus", "0"], "--cpus"),
    (["--cpus", "-1"], "--cpus"),
    (["--cpus", str((os.cpu_count() or 1) + 1)], "--cpus"),
    (["--cpus", "lots"], "--cpus"),
    (["--pids-limit", "0"], "--pids-limit"),
    (["--pids-limit", "-3"], "--pids-limit"),
    (["--cpuset-cpus", "99"], "--cpuset-cpus"),
    (["--user", "bob"], "--user"),
    (["-e", "NOEQUALS"], "-e"),
    (["--name", "bad/name"], "name"),
    (["--no-such-option"], "no-such-option"),
])
def test_bad_options_are_refused_with_one_line(rootfs, args, fragment):
    proc = minirun("run", *args, rootfs, "/bin/true")
    one_line_error(proc, 125, fragment)
    assert len(proc.stderr) < 200, "the error echoes too much of the input"


@pytest.mark.parametrize("args", [["--memory", "1k"], ["--hostname", "h" * 300]])
def test_bad_limits_are_refused_before_a_detached_start(rootfs, args):
    # -d forks a supervisor: the check must come first, so no state or cgroup is created (the leak check)
    one_line_error(minirun("run", "-d", "--name", "bad-detached", *args, rootfs, "/bin/sleep", "5"), 125)
    assert minirun("inspect", "bad-detached").returncode == 125


def test_memory_at_the_floor_runs(rootfs):
    assert minirun("run", "--memory", "6m", rootfs, "/bin/true").returncode == 0


def test_missing_rootfs(tmp_path):
    one_line_error(minirun("run", str(tmp_path / "nope"), "/bin/true"), 125, "no such directory")


def test_rootfs_that_is_a_file(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    one_line_error(minirun("run", str(f), "/bin/true"), 125, "not a directory")


def test_not_root_is_refused(rootfs):
    # The interpreter may live where nobody cannot read (e.g. under /root), so load
    # the CLI first, then drop to nobody and run it as a non-root user would.
    code = ("import os, minirun.entry, minirun.cli, minirun.runverb, minirun.container, minirun.spec; "
            "os.setgroups([]); os.setgid(65534); os.setuid(65534); "
            f"minirun.entry.main(['run', {rootfs!r}, '/bin/true'])")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    one_line_error(proc, 125, "minirun must run as root")


def test_debug_shows_the_traceback(tmp_path):
    proc = minirun("run", "--debug", str(tmp_path / "nope"), "/bin/true")
    assert proc.returncode == 125 and "Traceback" in proc.stderr


def test_kernel_without_a_namespace_type(rootfs, tmp_path, monkeypatch):
    """A kernel lacking a namespace is refused before anything is created."""
    from minirun import container
    from minirun.errors import HostError
    from minirun.spec import ContainerSpec, Process

    for ns in ["pid", "mnt", "uts", "ipc"]:  # no net, no cgroup
        (tmp_path / ns).write_text("")
    monkeypatch.setattr(container, "NS_DIR", str(tmp_path))
    with pytest.raises(HostError, match="no network namespace"):
        container.run(ContainerSpec(rootfs=rootfs, process=Process(["/bin/true"])))
    # the cgroup namespace is optional: dropped where the kernel lacks it
    assert container.available_namespaces(["pid", "mount", "cgroup"], str(tmp_path)) == ("pid", "mount")


def test_the_kernels_namespaces_are_looked_up_once_per_process(tmp_path):
    """A program running many containers stats /proc/self/ns once, not six times a run."""
    from minirun import container

    (tmp_path / "pid").write_text("")
    assert container.available_namespaces(["pid", "cgroup"], str(tmp_path)) == ("pid",)
    (tmp_path / "cgroup").write_text("")  # a kernel does not gain one while we run: not looked for again
    assert container.available_namespaces(["pid", "cgroup"], str(tmp_path)) == ("pid",)
    assert container.available_namespaces(["cgroup"], str(tmp_path)) == ("cgroup",)  # another question




def dead(pid: int) -> bool:
    """Gone, or a zombie waiting for the host's init to reap it."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


def container_pids(name: str) -> list[int]:
    try:
        with open(f"/sys/fs/cgroup/pids/{CGROUP_PARENT}/{name}/cgroup.procs") as f:
            return [int(p) for p in f.read().split()]
    except FileNotFoundError:
        return []


def test_duplicate_name_is_refused_while_the_first_runs(rootfs):
    first = popen_minirun("run", "--name", "dup-name", rootfs, "/bin/sleep", "30")
    try:
        assert wait_for(lambda: len(container_pids("dup-name")) == 2), "first container did not start"
        one_line_error(minirun("run", "--name", "dup-name", rootfs, "/bin/true"), 125, "dup-name", "already in use")
        assert len(container_pids("dup-name")) == 2, "the refused run disturbed the first container"
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=10)
    assert first.returncode == 143


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_signals_to_minirun_reach_the_command(rootfs, sig):
    name = f"sig-{sig.name.lower()}"
    script = f'trap "echo got {sig.name[3:]}; exit 7" {sig.name[3:]}; echo ready; while :; do sleep 0.05; done'
    proc = popen_minirun("run", "--name", name, rootfs, "/bin/sh", "-c", script)
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 7, err
    assert out.strip() == f"got {sig.name[3:]}"


def test_unhandled_sigterm_ends_the_container_with_143(rootfs):
    proc = popen_minirun("run", "--name", "term-me", rootfs, "/bin/sleep", "30")
    assert wait_for(lambda: len(container_pids("term-me")) == 2)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=10)
    assert proc.returncode == 143


# With a user namespace the init becomes its root before its exec: a change of euid, at which
# the kernel clears the parent-death signal (commit_creds), so it is set again after it.
@pytest.mark.parametrize("options", [(), ("--userns-map", "0:100000:65536", "--no-overlay")], ids=["", "userns"])
def test_sigkilled_minirun_takes_its_container_down_and_gc_cleans_up(rootfs, options):
    proc = popen_minirun("run", "--name", "orphan", *options, rootfs, "/bin/sleep", "300")
    assert wait_for(lambda: len(container_pids("orphan")) == 2)
    pids = container_pids("orphan")
    proc.kill()
    proc.wait(timeout=10)  # not communicate(): a survivor holds the pipes
    proc.stdout.close()
    proc.stderr.close()
    try:
        # PR_SET_PDEATHSIG kills the init, and with it the whole PID namespace
        assert wait_for(lambda: container_pids("orphan") == []), "container survived minirun's SIGKILL"
    finally:
        for pid in container_pids("orphan"):  # a survivor would hold its cgroups
            os.kill(pid, signal.SIGKILL)
    for pid in pids:
        assert wait_for(lambda: dead(pid)), f"process {pid} survived"
    assert os.path.isdir(f"/sys/fs/cgroup/pids/{CGROUP_PARENT}/orphan"), "expected the stale cgroup a SIGKILL leaves"
    gc = minirun("gc")
    assert gc.returncode == 0 and "orphan" in gc.stdout
    assert not os.path.exists(f"/sys/fs/cgroup/pids/{CGROUP_PARENT}/orphan")
    assert not os.path.exists(os.path.join(STATE_ROOT, "orphan"))


def test_a_run_does_not_gc_others_but_reclaims_its_own_name(rootfs):
    """gc is a verb, not a scan before every start: a run leaves what another dead run
    left alone, and takes back (cgroup and state) only its own name."""
    proc = popen_minirun("run", "--name", "stale", rootfs, "/bin/sleep", "300")
    assert wait_for(lambda: len(container_pids("stale")) == 2)
    proc.kill()
    proc.communicate(timeout=10)
    assert minirun("run", rootfs, "/bin/true").returncode == 0
    assert os.path.isdir(f"/sys/fs/cgroup/pids/{CGROUP_PARENT}/stale"), "a run of another name scanned everything"
    assert os.path.isdir(os.path.join(STATE_ROOT, "stale"))
    # the name is free again: its run reclaims what the dead one left
    assert minirun("run", "--name", "stale", rootfs, "/bin/true").returncode == 0
    assert not os.path.exists(f"/sys/fs/cgroup/pids/{CGROUP_PARENT}/stale")


def test_container_killed_from_outside_is_reported_and_cleaned(rootfs):
    proc = popen_minirun("run", "--name", "victim", rootfs, "/bin/sleep", "300")
    assert wait_for(lambda: len(container_pids("victim")) == 2)
    for pid in container_pids("victim"):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:  # COMMAND, gone already with its PID namespace's init
            pass
    proc.communicate(timeout=10)
    assert proc.returncode == 137
