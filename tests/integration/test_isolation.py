"""Isolation, proved from inside real containers."""

from __future__ import annotations

import os
import socket

import pytest

from helpers import minirun, ran_to


def sh(rootfs: str, script: str, *options: str):
    return minirun("run", *options, rootfs, "/bin/sh", "-c", script)


def test_command_runs_under_a_minimal_init_as_pid_1(rootfs):
    out = sh(rootfs, 'echo "$$"; cat /proc/1/comm')
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["2", "minirun-init"]


def test_host_processes_are_invisible(rootfs):
    out = sh(rootfs, "ls -d /proc/[0-9]* | wc -l; if test -e /proc/%d; then echo HOST-PID-VISIBLE; fi" % os.getpid())
    assert out.returncode == 0, out.stderr
    assert "HOST-PID-VISIBLE" not in out.stdout
    # init, sh, ls and wc at most
    assert int(out.stdout.split()[0]) <= 4


def test_only_loopback_is_visible_and_it_is_up(rootfs):
    out = sh(rootfs, "ls /sys/class/net; cat /sys/class/net/lo/operstate; ping -c1 -W1 127.0.0.1 >/dev/null && echo PING-OK")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.split()
    assert lines[0] == "lo" and len(lines) == 3, f"host interfaces leaked in: {out.stdout}"
    assert lines[-1] == "PING-OK"


def test_every_namespace_differs_from_the_hosts(rootfs):
    kinds = ["pid", "mnt", "uts", "ipc", "net", "cgroup"]
    out = sh(rootfs, " ; ".join(f"readlink /proc/self/ns/{k}" for k in kinds))
    assert out.returncode == 0, out.stderr
    inside = out.stdout.split()
    host = [os.readlink(f"/proc/self/ns/{k}") for k in kinds]
    assert len(inside) == len(kinds)
    for kind, a, b in zip(kinds, inside, host):
        assert a != b, f"{kind} namespace shared with the host"


def test_hostname_is_its_own(rootfs):
    host_before = socket.gethostname()
    # sethostname needs CAP_SYS_ADMIN, which Docker's default set (and minirun's) leaves out
    out = sh(rootfs, "hostname; hostname changed-inside; hostname", "--hostname", "box", "--cap-add", "SYS_ADMIN")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["box", "changed-inside"]
    assert socket.gethostname() == host_before


def test_hostname_defaults_to_the_container_id(rootfs):
    out = sh(rootfs, "hostname", "--name", "named-box")
    assert out.stdout.strip() == "named-box"


def test_mount_table_is_its_own(rootfs):
    out = sh(rootfs, "mount -t tmpfs scratch /tmp && cat /proc/self/mountinfo", "--cap-add", "SYS_ADMIN")
    assert out.returncode == 0, out.stderr
    inside = out.stdout
    assert " /tmp " in inside and " /proc " in inside
    # nothing of the host's mount table reaches in, the old root is gone
    mount_points = [line.split()[4] for line in inside.splitlines()]
    assert not [m for m in mount_points if m.startswith(("/sys/fs/cgroup", "/work", "/run", "/var"))]
    with open("/proc/self/mountinfo") as f:
        assert "scratch" not in f.read(), "a container mount propagated to the host"


def test_host_files_are_out_of_reach(rootfs):
    marker = f"/tmp/minirun-host-marker-{os.getpid()}"
    with open(marker, "w") as f:
        f.write("host\n")
    probe = f"cat {marker} 2>/dev/null && echo REACHED; ls /proc/1/root/{marker} 2>/dev/null && echo REACHED; echo DONE"
    try:
        assert ran_to(sh(rootfs, probe), "DONE") == []
        # positive control: the same probe sees the file once it is put in the container's reach (through
        # PID 1's root too, which --privileged's CAP_SYS_PTRACE may open although init is not dumpable)
        out = sh(rootfs, probe, "-v", f"{marker}:{marker}:ro", "--privileged")
        assert ran_to(out, "DONE") == ["host", "REACHED", f"/proc/1/root/{marker}", "REACHED"]
    finally:
        os.unlink(marker)


def test_sys_is_read_only_and_dev_is_minimal(rootfs):
    script = ("if touch /sys/kernel/x 2>/dev/null; then echo SYS-WRITABLE; fi; "
              "ls /dev; echo ---; echo hi > /dev/shm/f && cat /dev/shm/f; "
              "head -c 4 /dev/zero | wc -c; echo x > /dev/null && echo null-ok; test -c /dev/pts/ptmx && echo pts-ok")
    out = sh(rootfs, script)
    assert out.returncode == 0, out.stderr
    assert "SYS-WRITABLE" not in out.stdout
    devs = out.stdout.split("---")[0].split()
    for name in ["null", "zero", "full", "random", "urandom", "tty", "pts", "ptmx", "shm", "fd", "stdin", "stdout",
                 "stderr"]:
        assert name in devs, f"/dev/{name} missing"
    assert "sda" not in devs and "vda" not in devs and "kmsg" not in devs
    assert out.stdout.split("---")[1].split() == ["hi", "4", "null-ok", "pts-ok"]


def test_env_workdir_and_user(rootfs):
    out = sh(rootfs, 'echo "$GREETING"; pwd; id -u; id -g; echo "$PATH"', "-e", "GREETING=hello world", "-w", "/tmp/work",
             "--user", "1000:1001")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["hello world", "/tmp/work", "1000", "1001",
                                       "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]


def test_cgroup_namespace_shows_its_own_root(rootfs):
    out = sh(rootfs, "cat /proc/self/cgroup")
    assert out.returncode == 0, out.stderr
    for line in out.stdout.splitlines():
        assert line.endswith(":/"), f"cgroup path not virtualised: {line}"


def test_cgroup_namespace_root_is_the_containers_own_cgroup_in_every_hierarchy(rootfs):
    """Escape: a cgroup namespace's root in each hierarchy is where the process was when it
    unshared. A v1 hierarchy the container had not joined (freezer, blkio, name=systemd
    without a limit) had the host's root there, so a container allowed to mount cgroupfs
    listed (and could freeze) the host's tree. It now joins every hierarchy, as runc does.
    Positive control: the mount works and shows a freezer cgroup, the container's own
    (freezer.state exists in non-root cgroups only)."""
    if not os.path.isdir("/sys/fs/cgroup/freezer"):
        pytest.skip("no cgroup v1 freezer hierarchy on this host")
    out = sh(rootfs, "mount -t cgroup -o freezer cgroup /mnt && ls /mnt", "--cap-add", "SYS_ADMIN",
             "--security-opt", "seccomp=unconfined", "--tmpfs", "/mnt")
    assert out.returncode == 0, out.stderr
    entries = out.stdout.split()
    assert "freezer.state" in entries
    assert not [e for e in entries if "." not in e and e not in ("tasks", "notify_on_release")], entries


def test_zombies_are_reaped_by_init(rootfs):
    """The subshell exits at once and leaves an orphan that init must adopt and, once it
    exits, reap: its /proc entry goes (a zombie keeps one). Waited for, up to a deadline."""
    script = ('orphan=$( (true </dev/null >/dev/null 2>&1 & echo $!) ); echo orphan=$orphan; i=0; '
              'while [ -e /proc/$orphan ] && [ $i -lt 3000 ]; do usleep 10000; i=$((i+1)); done; '
              'cat /proc/$orphan/stat 2>/dev/null || echo REAPED')
    lines = sh(rootfs, script).stdout.splitlines()
    assert len(lines) == 2 and lines[0].startswith("orphan=") and int(lines[0][7:]) > 2, lines  # it ran, in its ns
    assert lines[1] == "REAPED", f"init left the orphan unreaped: {lines[1]}"


def test_python_api_returns_a_result(rootfs):
    from minirun import Limits, Process, ContainerSpec, run

    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        result = run(ContainerSpec(rootfs=rootfs, process=Process(["/bin/sh", "-c", "exit 5"]),
                                   limits=Limits(memory=32 << 20, pids=16)), stdio=(None, devnull, devnull))
    finally:
        os.close(devnull)
    assert result.exit_code == 5 and result.signal is None and not result.oom_killed
    assert 0 < result.timings["start"] <= result.timings["total"]
