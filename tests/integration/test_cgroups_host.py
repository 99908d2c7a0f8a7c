"""The cgroup drivers on the real host (root): limits land in the kernel's files, the
processes are found and killed, and destroy() leaves nothing under any minirun parent.

Written against whatever this machine has: v1 files on hybrid/legacy hosts, v2 files on
a unified one (the QEMU guest lane). Note that `minirun gc` removes minirun cgroups that
have no state directory, these tests' included.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from helpers import wait_for
from minirun import cgroups
from minirun.errors import CgroupError, HostError
from minirun.spec import Limits

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create cgroups")

MIB = 1 << 20
LIMITS = Limits(cpu_quota=50_000, cpuset_cpus="0", memory=64 * MIB, pids=10)


def _id(tag: str) -> str:
    return f"minirun-test-{tag}-{os.getpid()}"


def _read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def _left(container_id: str, layout: cgroups.Layout) -> list[str]:
    dirs = [os.path.join(m, cgroups.PARENT, container_id) for m in layout.mountpoints()]
    return [d for d in dirs if os.path.exists(d)]


def _on_v2(cg: cgroups.Cgroup, controller: str) -> bool:
    return cg.paths[controller] == cg.paths.get("unified")


def _check_limits(cg: cgroups.Cgroup) -> None:
    cpu, memory, pids, cpuset = (cg.paths[c] for c in ("cpu", "memory", "pids", "cpuset"))
    if _on_v2(cg, "cpu"):
        assert _read(f"{cpu}/cpu.max") == "50000 100000"
    else:
        assert _read(f"{cpu}/cpu.cfs_period_us") == "100000"
        assert _read(f"{cpu}/cpu.cfs_quota_us") == "50000"
    if _on_v2(cg, "memory"):
        assert _read(f"{memory}/memory.max") == str(64 * MIB)
        if os.path.exists(f"{memory}/memory.swap.max"):
            assert _read(f"{memory}/memory.swap.max") == "0"
    else:
        assert _read(f"{memory}/memory.limit_in_bytes") == str(64 * MIB)
        if os.path.exists(f"{memory}/memory.memsw.limit_in_bytes"):
            assert _read(f"{memory}/memory.memsw.limit_in_bytes") == str(64 * MIB)
        if os.path.exists(f"{memory}/memory.swappiness"):
            assert _read(f"{memory}/memory.swappiness") == "0"
    assert _read(f"{pids}/pids.max") == "10"
    assert _read(f"{cpuset}/cpuset.cpus") == "0"
    assert _read(f"{cpuset}/cpuset.mems") != ""


def _cgroup_lines(pid: int) -> list[str]:
    with open(f"/proc/{pid}/cgroup") as f:
        return f.read().splitlines()


def _stop(child: subprocess.Popen | None) -> None:
    if child is not None and child.poll() is None:
        child.kill()
    if child is not None:
        child.wait()


def test_limits_processes_and_destroy():
    layout = cgroups.detect()
    container_id = _id("limits")
    cg = cgroups.create_manager(container_id, LIMITS, layout)
    child = None
    try:
        cg.create()
        assert sorted(_left(container_id, layout)) == sorted(cg.dirs)
        _check_limits(cg)
        assert cg.notes == [] or all("swap" in n for n in cg.notes)

        child = subprocess.Popen(["sleep", "30"])
        cg.add_pid(child.pid)
        assert cg.pids() == [child.pid]
        joined = [line for line in _cgroup_lines(child.pid) if line.endswith(f"/{cgroups.PARENT}/{container_id}")]
        assert len(joined) == len(cg.dirs)  # one line per hierarchy it is in
        assert cg.cpu_usage_ns() is not None and cg.memory_usage() is not None
        assert cg.oom_kill_count() == 0

        cg.destroy()
        assert child.wait(timeout=5) == -signal.SIGKILL
        assert _left(container_id, layout) == []
        assert container_id not in cgroups.stale_ids(layout)
        cg.destroy()  # idempotent
    finally:
        _stop(child)
        cgroups.remove(container_id, layout)


def test_legacy_view_kills_by_signal_loop(tmp_path):
    """Without a unified hierarchy there is no cgroup.kill: the signal loop must do."""
    with open(cgroups.MOUNTINFO) as f:
        v1_only = "".join(line for line in f if " - cgroup2 " not in line)
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(v1_only)
    try:
        layout = cgroups.detect(str(mountinfo))
    except HostError:  # a pure v2 host: nothing is left once cgroup2 is hidden
        layout = None
    if layout is None or not layout.controllers:
        pytest.skip("this host has no cgroup v1 hierarchy")
    container_id = _id("legacy")
    cg = cgroups.create_manager(container_id, Limits(), layout)
    child = None
    try:
        cg.create()
        assert cg.unified_dir_fd() is None
        # A shell with children of its own: every process must go, not only the one added.
        # It forks only once it is in the cgroup (after the line on stdin).
        child = subprocess.Popen(["sh", "-c", "read go; sleep 30 & sleep 30 & wait"], stdin=subprocess.PIPE)
        cg.add_pid(child.pid)
        assert child.stdin is not None
        child.stdin.write(b"go\n")
        child.stdin.close()
        assert wait_for(lambda: len(cg.pids()) == 3, 30), cg.pids()  # the shell forks after it was added
        cg.destroy()
        assert child.wait(timeout=5) == -signal.SIGKILL
        assert _left(container_id, layout) == []
    finally:
        _stop(child)
        cgroups.remove(container_id, layout)


def test_child_places_itself_through_v1_tasks_fds():
    layout = cgroups.detect()
    container_id = _id("self")
    cg = cgroups.create_manager(container_id, Limits(), layout)
    if not cg.needs_parent_placement:
        pytest.skip("no v1 hierarchy here: clone3(CLONE_INTO_CGROUP) does all the placing")
    child = None
    fds: list[int] = []
    try:
        cg.create()
        fds = cg.self_placement_fds()
        code = (
            "import os, sys, time\nfor fd in sys.argv[1:]: os.write(int(fd), b'0')\nprint(flush=True)\ntime.sleep(30)"
        )
        child = subprocess.Popen(
            [sys.executable, "-S", "-c", code, *map(str, fds)], pass_fds=fds, stdout=subprocess.PIPE
        )
        assert child.stdout is not None and child.stdout.readline() == b"\n"
        v1_dirs = [d for d in cg.dirs if d != cg.paths.get("unified")]
        joined = [line for line in _cgroup_lines(child.pid) if line.endswith(f"/{cgroups.PARENT}/{container_id}")]
        assert len(joined) == len(v1_dirs)
        cg.destroy()
        assert child.wait(timeout=5) == -signal.SIGKILL
    finally:
        for fd in fds:
            os.close(fd)
        if child is not None and child.stdout is not None:
            child.stdout.close()
        _stop(child)
        cgroups.remove(container_id, layout)


def test_oom_kill_is_counted():
    layout = cgroups.detect()
    container_id = _id("oom")
    cg = cgroups.create_manager(container_id, Limits(memory=32 * MIB), layout)
    child = None
    try:
        cg.create()
        hog = "import sys\nsys.stdin.readline()\nb = bytearray(512 << 20)\nb[::4096] = b'x' * len(b[::4096])"
        child = subprocess.Popen([sys.executable, "-S", "-c", hog], stdin=subprocess.PIPE)
        cg.add_pid(child.pid)
        assert child.stdin is not None
        child.stdin.write(b"go\n")
        child.stdin.close()
        assert child.wait(timeout=20) == -signal.SIGKILL
        assert cg.oom_kill_count() >= 1
        assert (cg.memory_peak() or 0) <= 32 * MIB
    finally:
        _stop(child)
        cg.destroy()
        cgroups.remove(container_id, layout)


def test_refused_value_rolls_back_everything():
    layout = cgroups.detect()
    if "cpuset" not in layout.controllers or os.cpu_count() and os.cpu_count() > 63:
        pytest.skip("needs a cpuset controller and fewer than 64 CPUs")
    container_id = _id("rollback")
    cg = cgroups.create_manager(container_id, Limits(memory=64 * MIB, cpuset_cpus="63"), layout)
    try:
        with pytest.raises(CgroupError, match=r"^write 63 to .*/cpuset.cpus: "):
            cg.create()
        assert _left(container_id, layout) == []
    finally:
        cgroups.remove(container_id, layout)


def _a_disk() -> tuple[int, int] | None:
    """major, minor of a whole disk this machine has (blk-throttle takes disks only)."""
    for name in sorted(os.listdir("/sys/block")):
        if name.startswith(("loop", "ram", "zram", "nbd")):
            continue
        try:
            major, minor = _read(f"/sys/block/{name}/dev").split(":")
        except OSError:
            continue
        return int(major), int(minor)
    return None


def test_block_io_and_mems_land_in_the_kernels_files():
    """OCI blockIO and cpu.mems (minirun-oci) through both drivers: v1 blkio.throttle.*
    here, v2 io.max in the pure-v2 lane; a weight where no I/O scheduler takes one is an
    error naming the field, and nothing is left."""
    layout = cgroups.detect()
    if "blkio" not in layout.controllers:
        pytest.skip("no blkio/io controller")
    disk = _a_disk()  # the guest lane has none (its root is 9p): the weight and mems parts still run
    major, minor = disk or (0, 0)
    throttle = (("rbps", major, minor, 4 * MIB), ("wiops", major, minor, 50)) if disk else ()
    cg = cgroups.create_manager(_id("blkio"), Limits(blkio_throttle=throttle, cpuset_mems="0"), layout)
    cg.create()
    try:
        blkio, cpuset = cg.paths.get("blkio"), cg.paths["cpuset"]
        if disk and _on_v2(cg, "blkio"):
            assert f"{major}:{minor} rbps={4 * MIB} wbps=max riops=max wiops=50" in _read(f"{blkio}/io.max")
        elif disk:
            assert _read(f"{blkio}/blkio.throttle.read_bps_device") == f"{major}:{minor} {4 * MIB}"
            assert _read(f"{blkio}/blkio.throttle.write_iops_device") == f"{major}:{minor} 50"
        assert _read(f"{cpuset}/cpuset.mems") == "0"
    finally:
        cg.destroy()
    assert _left(_id("blkio"), layout) == []
    weighted = cgroups.create_manager(_id("weight"), Limits(blkio_weight=500), layout)
    try:
        weighted.create()
    except HostError as err:  # no CFQ/BFQ (v1), no BFQ/iocost (v2): this hybrid host
        assert str(err).startswith("linux.resources.blockIO.weight 500: this kernel cannot set it")
    else:
        d = weighted.paths["blkio"]
        files = [f for f in ("blkio.bfq.weight", "blkio.weight", "io.bfq.weight", "io.weight")
                 if os.path.exists(os.path.join(d, f))]
        assert any(_read(os.path.join(d, f)).split()[-1] in ("500", str(1 + 490 * 9999 // 990)) for f in files)
        weighted.destroy()
    assert _left(_id("weight"), layout) == []


def test_freeze_and_thaw_through_the_manager():
    """pause/resume's mechanism on this host's freezer (cgroup.freeze here and in the v2
    lane, freezer.state on legacy hosts): freeze() returns once every task has stopped,
    and a manager made from the recorded paths (another minirun-oci process) sees it."""
    layout = cgroups.detect()
    container_id = _id("freeze")
    cg = cgroups.create_manager(container_id, Limits(), layout)
    child = None
    try:
        cg.create()
        assert cg.freeze_file is not None, "no freezer on this host"
        # Echoes each line it reads: it answers only while it runs.
        child = subprocess.Popen(["sh", "-c", "while read line; do echo $line; done"], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE)
        assert child.stdin is not None and child.stdout is not None
        cg.add_pid(child.pid)
        child.stdin.write(b"before\n")
        child.stdin.flush()
        assert child.stdout.readline() == b"before\n"  # positive control: it runs

        cg.freeze(True)
        if cg.freeze_file.endswith("cgroup.freeze"):
            assert "frozen 1" in _read(os.path.join(os.path.dirname(cg.freeze_file), "cgroup.events")).splitlines()
        else:
            assert _read(cg.freeze_file) == "FROZEN"
        again = cgroups.existing(container_id, layout, paths=cg.paths)
        assert again.frozen() and again.freeze_file == cg.freeze_file
        child.stdin.write(b"during\n")
        child.stdin.flush()
        again.freeze(False)
        assert not cg.frozen()
        assert child.stdout.readline() == b"during\n"  # answered once thawed
    finally:
        _stop(child)
        cg.destroy()
        cgroups.remove(container_id, layout)

