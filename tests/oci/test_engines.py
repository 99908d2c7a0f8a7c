"""Real engines drive minirun-oci: podman 4.3 (through conmon) and containerd 1.6
(through containerd-shim-runc-v2, the shim Kubernetes uses), on private storage.

Host specifics (see docs/oci.md): podman needs `--cgroup-manager cgroupfs --events-backend
file`, and rlimits within this host's hard limits (runc fails the same way without).
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import tarfile

import pytest

import containerd as containerd_daemon
from conftest import OCI, run_to_files
from isolation import hold_engine_lane
from helpers import wait_for

pytestmark = pytest.mark.skipif(not (shutil.which("podman") and shutil.which("containerd")),
                                reason="podman and containerd not installed (make deps)")

IMAGE = "localhost/minirun-busybox:latest"


def _ulimits() -> list[str]:
    nofile = min(resource.getrlimit(resource.RLIMIT_NOFILE)[1], 4096)
    nproc = min(resource.getrlimit(resource.RLIMIT_NPROC)[1], 4096)
    return ["--ulimit", f"nofile={nofile}:{nofile}", "--ulimit", f"nproc={nproc}:{nproc}"]


class Podman:
    def __init__(self, base: str):
        self.dir = base
        self.base = ["podman", "--root", f"{base}/root", "--runroot", f"{base}/runroot", "--cgroup-manager",
                     "cgroupfs", "--events-backend", "file", "--runtime", OCI]

    def __call__(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        # cwd: conmon leaves an "oom" marker file in its working directory.
        return run_to_files(self.base + list(args), timeout=timeout, cwd=self.dir)

    def run(self, *args: str, **kw) -> subprocess.CompletedProcess:
        # podman's own seccomp profile is applied (its X86/X32 arches and defaultErrnoRet
        # compile with minirun/seccomp.py here): no --security-opt seccomp=unconfined.
        return self("run", "--rm", "--network", "none", *_ulimits(), *args, **kw)


@pytest.fixture(scope="module")
def podman(tmp_path_factory, rootfs):
    base = str(tmp_path_factory.mktemp("podman"))
    engine = Podman(base)
    tar = os.path.join(base, "busybox.tar")
    with tarfile.open(tar, "w") as t:
        t.add(rootfs, arcname=".")
    out = engine("import", tar, IMAGE)
    assert out.returncode == 0, out.stderr
    yield engine
    engine("rm", "--all", "--force", "--time", "0")
    engine("rmi", "--all", "--force")
    subprocess.run(["umount", "-R", f"{base}/root/overlay"], capture_output=True)
    shutil.rmtree(base, ignore_errors=True)


def test_podman_output_exit_code_pid1(podman):
    out = podman.run(IMAGE, "/bin/sh", "-c", "echo hello from $$; exit 3")
    assert out.returncode == 3, out.stderr
    assert out.stdout == "hello from 1\n"  # process.args is PID 1: no minirun init inside


def test_podman_tty_through_the_console_socket(podman):
    # podman -t: conmon passes --console-socket and relays the master it receives
    out = podman.run("-t", IMAGE, "/bin/sh", "-c", "tty; [ -t 0 ] && [ -t 1 ] && [ -t 2 ] && echo all-tty; exit 4")
    assert out.returncode == 4, out.stderr
    lines = out.stdout.replace("\r", "").split("\n")
    assert lines[:2] == ["/dev/pts/0", "all-tty"], out.stdout  # the container's own devpts


def test_podman_memory_oom_is_137(podman):
    out = podman.run("--memory", "32m", IMAGE, "/bin/sh", "-c",
                     "echo started; x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived")
    assert out.returncode == 137, (out.stdout, out.stderr)
    assert out.stdout == "started\n", out.stdout  # it ran, and was killed before the end


def test_podman_pids_limit(podman):
    out = podman.run("--pids-limit", "8", IMAGE, "/bin/sh", "-c",
                     "for i in 1 2 3 4 5 6 7 8 9 10 11 12; do sleep 5 & done 2>&1; echo end")
    assert "can't fork" in out.stdout + out.stderr, (out.stdout, out.stderr)
    ok = podman.run("--pids-limit", "32", IMAGE, "/bin/sh", "-c", "for i in 1 2 3 4 5 6; do true & done; wait; echo ok")
    assert ok.returncode == 0 and "can't fork" not in ok.stdout + ok.stderr


def test_podman_cpus(podman):
    # /sys/fs/cgroup/cpu is the container's own cgroup, as runc binds it without a cgroup namespace.
    out = podman.run("--cpus", "0.5", IMAGE, "/bin/sh", "-c",
                     "cat /sys/fs/cgroup/cpu*/cpu.cfs_quota_us /sys/fs/cgroup/cpu*/cpu.cfs_period_us | sort -u")
    assert out.returncode == 0, out.stderr
    assert sorted(out.stdout.split()) == ["100000", "50000"]


def test_podman_detach_exec_stop_rm(podman):
    out = podman("run", "-d", "--network", "none", *_ulimits(), "--name", "mr-oci-d", IMAGE, "/bin/sleep", "300")
    assert out.returncode == 0, out.stderr
    try:
        ex = podman("exec", "mr-oci-d", "/bin/sh", "-c", "echo exec $(cat /proc/1/cmdline | tr '\\0' ' ')")
        assert ex.returncode == 0, ex.stderr
        assert ex.stdout.strip() == "exec /bin/sleep 300"
        assert podman("exec", "mr-oci-d", "/bin/sh", "-c", "exit 6").returncode == 6
        inspect = json.loads(podman("inspect", "mr-oci-d").stdout)[0]
        assert inspect["State"]["Status"] == "running"
        assert podman("stop", "-t", "1", "mr-oci-d").returncode == 0  # sleep as PID 1 ignores TERM: KILL after 1 s
        assert json.loads(podman("inspect", "mr-oci-d").stdout)[0]["State"]["Status"] == "exited"
    finally:
        assert podman("rm", "-f", "mr-oci-d").returncode == 0


# ---------------------------------------------------------------- containerd


class Containerd(containerd_daemon.Containerd):
    def ctr(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return run_to_files(self.command + list(args), timeout=timeout)  # files: the shims keep pipes open


@pytest.fixture(scope="module")
def containerd(tmp_path_factory, podman):
    base = str(tmp_path_factory.mktemp("containerd"))
    archive = os.path.join(base, "busybox-oci.tar")
    out = podman("save", "--format", "oci-archive", "-o", archive, IMAGE)
    assert out.returncode == 0, out.stderr
    release_lane = hold_engine_lane()  # /run/containerd is shared with any other containerd of a test
    made_run_dir = not os.path.exists("/run/containerd")  # the shim's fifos, sockets and runtime --root
    engine = Containerd(base)
    try:
        out = engine.ctr("images", "import", "--base-name", IMAGE.rsplit(":", 1)[0], archive)
        assert out.returncode == 0, out.stderr
        yield engine
    finally:
        engine.stop()
        if made_run_dir:  # ours to remove if we made it
            shutil.rmtree("/run/containerd", ignore_errors=True)
        shutil.rmtree(base, ignore_errors=True)
        release_lane()


def test_ctr_run_rm_exit_codes(containerd):
    out = containerd.ctr("run", "--runc-binary", OCI, "--rm", IMAGE, "mr-oci-c1", "/bin/sh", "-c",
                         "echo hello from $$; exit 5")
    assert out.returncode == 5, out.stderr
    assert "hello from 1" in out.stdout
    ok = containerd.ctr("run", "--runc-binary", OCI, "--rm", IMAGE, "mr-oci-c2", "/bin/true")
    assert ok.returncode == 0, ok.stderr


def test_ctr_detached_task_exec_kill_delete(containerd):
    out = containerd.ctr("run", "--runc-binary", OCI, "-d", IMAGE, "mr-oci-c3", "/bin/sleep", "300")
    assert out.returncode == 0, out.stderr
    try:
        tasks = containerd.ctr("task", "ls").stdout
        assert "mr-oci-c3" in tasks and "RUNNING" in tasks
        ex = containerd.ctr("task", "exec", "--exec-id", "e1", "mr-oci-c3", "/bin/sh", "-c", "echo in; exit 2")
        assert ex.returncode == 2 and ex.stdout.strip() == "in", ex.stderr
        assert len(containerd.ctr("task", "ps", "mr-oci-c3").stdout.splitlines()) == 2  # header, PID 1
        assert containerd.ctr("task", "pause", "mr-oci-c3").returncode == 0  # cgroup.freeze
        assert "PAUSED" in containerd.ctr("task", "ls").stdout
        assert containerd.ctr("task", "resume", "mr-oci-c3").returncode == 0
        assert "RUNNING" in containerd.ctr("task", "ls").stdout
        assert containerd.ctr("task", "kill", "-s", "KILL", "mr-oci-c3").returncode == 0
        assert wait_for(lambda: "STOPPED" in containerd.ctr("task", "ls").stdout, 60)
    finally:
        containerd.ctr("task", "delete", "-f", "mr-oci-c3")
        assert containerd.ctr("containers", "delete", "mr-oci-c3").returncode == 0
