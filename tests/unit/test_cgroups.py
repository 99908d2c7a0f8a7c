"""cgroup detection and both drivers, against fake cgroup trees in a tmp dir (no root).

FakeCgroupFs plays the kernel's part where minirun relies on it: mkdir fills a new
cgroup with the files of its hierarchy (on v2: of the controllers its parent enables),
a write replaces the value (and +/- edits cgroup.subtree_control), rmdir refuses a
cgroup that still has children or processes. The real fs functions still do the I/O,
so a write to a file the kernel would not have fails as it would on a host. Every
successful write is logged, relative to the tree root, to check values and order.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from minirun import cgroups, ociverbs
from minirun.cgroups import devicefilter, fs, knobs, v1, v2
from minirun.devices import DEFAULT_RULES
from minirun.errors import CgroupError, HostError, SpecError
from minirun.spec import Limits


@pytest.fixture(autouse=True)
def default_parent(monkeypatch):
    """minirun's default cgroup parent, whatever this session's is (tests/isolation.py)."""
    monkeypatch.setattr(cgroups, "PARENT", "minirun")

MAX = "9223372036854771712"  # v1 "unlimited" as the kernel reads it back
MIB = 1 << 20

# This host (Debian 12 workplace, kernel 6.18): hybrid, cpu and cpuacct NOT co-mounted.
HOST_MOUNTINFO = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""
HOST_MOUNTS = {
    "/sys/fs/cgroup/cpu": {"cpu"},
    "/sys/fs/cgroup/cpuacct": {"cpuacct"},
    "/sys/fs/cgroup/cpuset": {"cpuset"},
    "/sys/fs/cgroup/memory": {"memory"},
    "/sys/fs/cgroup/devices": {"devices"},
    "/sys/fs/cgroup/freezer": {"freezer"},
    "/sys/fs/cgroup/blkio": {"blkio"},
    "/sys/fs/cgroup/pids": {"pids"},
    "/sys/fs/cgroup/systemd": {"name=systemd"},
    "/sys/fs/cgroup/unified": None,
}

# systemd on a current distribution: cgroup2 only.
UNIFIED_MOUNTINFO = """\
22 27 0:20 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
26 22 0:24 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
"""
UNIFIED_MOUNTS = {"/sys/fs/cgroup": None}

# CentOS 7 style: v1 only, cpu and cpuacct co-mounted, name=systemd, no pids hierarchy.
LEGACY_MOUNTINFO = """\
24 18 0:20 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:8 - tmpfs tmpfs ro,mode=755
25 24 0:21 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:9 - cgroup cgroup rw,xattr,release_agent=/usr/lib/systemd/systemd-cgroups-agent,name=systemd
27 24 0:23 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:10 - cgroup cgroup rw,cpu,cpuacct
28 24 0:24 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,memory
29 24 0:25 / /sys/fs/cgroup/cpuset rw,nosuid,nodev,noexec,relatime shared:12 - cgroup cgroup rw,cpuset
30 24 0:26 / /sys/fs/cgroup/net_cls,net_prio rw,nosuid,nodev,noexec,relatime shared:13 - cgroup cgroup rw,net_cls,net_prio
31 24 0:27 / /sys/fs/cgroup/devices rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,devices
"""
LEGACY_MOUNTS = {
    "/sys/fs/cgroup/cpu,cpuacct": {"cpu", "cpuacct"},
    "/sys/fs/cgroup/memory": {"memory"},
    "/sys/fs/cgroup/cpuset": {"cpuset"},
    "/sys/fs/cgroup/devices": {"devices"},
    "/sys/fs/cgroup/systemd": {"name=systemd"},
    "/sys/fs/cgroup/net_cls,net_prio": {"net_cls", "net_prio"},
}

V1_COMMON = {"cgroup.procs": "", "tasks": "", "notify_on_release": "0", "cgroup.clone_children": "0"}
V1_FILES = {
    "cpu": {"cpu.cfs_period_us": "100000", "cpu.cfs_quota_us": "-1", "cpu.shares": "1024"},
    "cpuacct": {"cpuacct.usage": "0"},
    "cpuset": {"cpuset.cpus": "", "cpuset.mems": ""},
    "memory": {
        "memory.limit_in_bytes": MAX,
        "memory.memsw.limit_in_bytes": MAX,
        "memory.swappiness": "60",
        "memory.usage_in_bytes": "0",
        "memory.max_usage_in_bytes": "0",
        "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n",
    },
    "pids": {"pids.max": "max", "pids.current": "0"},
    "devices": {"devices.allow": "", "devices.deny": "", "devices.list": "a *:* rwm"},
    "freezer": {"freezer.state": "THAWED"},
}
V1_ROOT = {"cpuset": {"cpuset.cpus": "0-3", "cpuset.mems": "0"}}

V2_CORE = {
    "cgroup.procs": "",
    "cgroup.kill": "",
    "cgroup.events": "populated 0\nfrozen 0\n",
    "cgroup.freeze": "0",
    "cgroup.controllers": "",
    "cgroup.subtree_control": "",
    "cpu.stat": "usage_usec 0\nuser_usec 0\nsystem_usec 0\n",
}
V2_FILES = {
    "cpu": {"cpu.max": "max 100000", "cpu.weight": "100"},
    "cpuset": {"cpuset.cpus": "", "cpuset.mems": "", "cpuset.cpus.effective": "0-3", "cpuset.mems.effective": "0"},
    "memory": {
        "memory.max": "max",
        "memory.swap.max": "max",
        "memory.current": "0",
        "memory.peak": "0",
        "memory.events": "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n",
    },
    "pids": {"pids.max": "max", "pids.current": "0"},
}
V2_ROOT = {"cgroup.procs": "1\n", "cpuset.cpus.effective": "0-3", "cpuset.mems.effective": "0", "cpu.stat": ""}


def _fill(path: Path, files: dict[str, str]) -> None:
    for name, value in files.items():
        (path / name).write_text(value)


class FakeCgroupFs:
    def __init__(
        self,
        tmp: Path,
        mountinfo: str,
        mounts: dict,
        v2_controllers: str = "",
        v2_subtree: str = "",
        drop: tuple[str, ...] = (),
    ):
        self.root = str(tmp / "root")
        self.mounts = {self.root + m: c for m, c in mounts.items()}  # controllers; None: the v2 mount
        self.drop = set(drop)  # files the "kernel" lacks, e.g. no swap accounting
        self.log: list[tuple[str, str]] = []
        for mountpoint, controllers in self.mounts.items():
            path = Path(mountpoint)
            path.mkdir(parents=True)
            if controllers is None:
                _fill(path, {**V2_ROOT, "cgroup.controllers": v2_controllers, "cgroup.subtree_control": v2_subtree})
            else:
                _fill(path, self._v1_files(controllers, root=True))
        self.mountinfo = str(tmp / "mountinfo")
        Path(self.mountinfo).write_text(mountinfo)
        self._real = (fs.write, fs.mkdir, fs.rmdir, fs.write_each)

    def install(self, monkeypatch) -> FakeCgroupFs:
        monkeypatch.setattr(fs, "write", self.write)
        monkeypatch.setattr(fs, "write_each", self.write_each)
        monkeypatch.setattr(fs, "mkdir", self.mkdir)
        monkeypatch.setattr(fs, "rmdir", self.rmdir)
        monkeypatch.setattr(v2, "attach_device_filter", self.attach_device_filter)
        # Killing and removing is C on the real kernel (csrc/ocicgroup.c, tested on this
        # host's cgroups by tests/integration/test_cgroups_host.py): here, its effect on the fake tree.
        for name in ("cgroup_kill", "cgroup_destroy", "cgroup_pids", "cgroup_remove_if_unused"):
            monkeypatch.setattr(ociverbs, name, getattr(self, name))
        return self

    def detect(self) -> cgroups.Layout:
        return cgroups.detect(self.mountinfo, self.root)

    def rel(self, path: str) -> str:
        return path[len(self.root) :]

    def read(self, rel: str) -> str:
        return Path(self.root + rel).read_text()

    def writes(self, under: str = "") -> list[tuple[str, str]]:
        return [(p, v) for p, v in self.log if p.startswith(under)]

    # -- the kernel's part --

    def _v1_files(self, controllers: set[str], root: bool = False) -> dict[str, str]:
        files = dict(V1_COMMON)
        for c in sorted(controllers):
            files.update(V1_FILES.get(c, {}))
            if root:
                files.update(V1_ROOT.get(c, {}))
        return {k: v for k, v in files.items() if k not in self.drop}

    def _mount_of(self, path: str) -> str:
        return max((m for m in self.mounts if path.startswith(m + "/")), key=len)

    def write(self, path: str, value, *, missing_ok: bool = False) -> bool:
        content = str(value)  # what a read returns afterwards
        if os.path.basename(path) == "cgroup.subtree_control" and os.path.exists(path):
            content = self._edit_subtree(path, str(value))
        ok = self._real[0](path, value, missing_ok=missing_ok)
        if ok:
            self.log.append((self.rel(path), str(value)))
            Path(path).write_text(content)
            if os.path.basename(path) == "cgroup.freeze":  # no task to wait for: frozen at once
                events = Path(os.path.dirname(path), "cgroup.events")
                events.write_text(events.read_text().replace(f"frozen {1 - int(value)}", f"frozen {value}"))
        return ok

    def write_each(self, path: str, values) -> None:
        self._real[3](path, values)
        self.log.extend((self.rel(path), str(value)) for value in values)
        Path(path).write_text(str(values[-1]))

    def attach_device_filter(self, path: str, prog: bytes) -> None:
        """bpf(BPF_PROG_ATTACH, BPF_CGROUP_DEVICE): logged as a write of the program."""
        assert os.path.isdir(path) and prog and len(prog) % 8 == 0
        self.log.append((self.rel(path) + "/<devices bpf>", f"{len(prog) // 8} insns"))

    def _edit_subtree(self, path: str, value: str) -> str:
        enabled = set(Path(path).read_text().split())
        available = set(Path(os.path.dirname(path), "cgroup.controllers").read_text().split())
        for token in value.split():
            name = token[1:]
            if name not in available:
                raise CgroupError(f"write {value} to {path}: No such file or directory")
            (enabled.add if token[0] == "+" else enabled.discard)(name)
        return " ".join(sorted(enabled))

    def mkdir(self, path: str, *, exist_ok: bool = False) -> bool:
        created = self._real[1](path, exist_ok=exist_ok)
        if created:
            controllers = self.mounts[self._mount_of(path)]
            if controllers is None:
                parent_enabled = Path(os.path.dirname(path), "cgroup.subtree_control").read_text().split()
                files = {**V2_CORE, "cgroup.controllers": " ".join(parent_enabled)}
                for c in parent_enabled:
                    files.update(V2_FILES.get(c, {}))
            else:
                files = self._v1_files(controllers)
                parent = Path(os.path.dirname(path))
                if "cpuset" in controllers and (parent / "cgroup.clone_children").read_text() == "1":
                    files.update({name: (parent / name).read_text() for name in
                                  ("cpuset.cpus", "cpuset.mems", "cgroup.clone_children")})
            _fill(Path(path), {k: v for k, v in files.items() if k not in self.drop})
        return created

    def cgroup_pids(self, dirs: list[str]) -> list[int]:
        return sorted({int(p) for d in dirs for p in (fs.read_if_exists(d + "/cgroup.procs") or "").split()})

    def cgroup_kill(self, dirs: list[str], unified: int) -> None:
        if unified >= 0 and os.path.exists(dirs[unified] + "/cgroup.kill"):
            self.write(dirs[unified] + "/cgroup.kill", 1)
            return
        for pid in self.cgroup_pids(dirs):
            os.kill(pid, 9)

    def cgroup_destroy(self, dirs: list[str], unified: int) -> None:
        self.cgroup_kill(dirs, unified)
        for d in reversed(dirs):
            self._remove_tree(d)

    def _remove_tree(self, path: str) -> None:
        if os.path.isdir(path):
            for entry in os.scandir(path):
                if entry.is_dir():
                    self._remove_tree(entry.path)
            Path(path, "cgroup.procs").write_text("")  # killed, as cgroup_kill made them
            self.rmdir(path)

    def cgroup_remove_if_unused(self, dirs: list[str]) -> bool:
        live = [d for d in dirs if os.path.isdir(d)]
        if self.cgroup_pids(live) or any(e.is_dir() for d in live for e in os.scandir(d)):
            return False
        for d in reversed(live):
            self.rmdir(d)
        return True

    def rmdir(self, path: str) -> bool:
        if os.path.isdir(path):
            busy = any(e.is_dir() for e in os.scandir(path)) or Path(path, "cgroup.procs").read_text().strip()
            if busy:
                raise CgroupError(f"rmdir {path}: Device or resource busy")
            for entry in os.scandir(path):
                os.unlink(entry.path)
        return self._real[2](path)


@pytest.fixture
def hybrid(tmp_path, monkeypatch) -> FakeCgroupFs:
    return FakeCgroupFs(tmp_path, HOST_MOUNTINFO, HOST_MOUNTS, v2_controllers="hugetlb\n").install(monkeypatch)


@pytest.fixture
def unified(tmp_path, monkeypatch) -> FakeCgroupFs:
    every = "cpuset cpu io memory hugetlb pids rdma misc"
    return FakeCgroupFs(tmp_path, UNIFIED_MOUNTINFO, UNIFIED_MOUNTS, every, "cpuset cpu io memory pids").install(
        monkeypatch
    )


@pytest.fixture
def legacy(tmp_path, monkeypatch) -> FakeCgroupFs:
    return FakeCgroupFs(tmp_path, LEGACY_MOUNTINFO, LEGACY_MOUNTS).install(monkeypatch)


ALL_LIMITS = Limits(cpu_quota=50_000, cpuset_cpus="1", memory=64 * MIB, pids=10)
DEVICES_V1 = [("devices.deny", "a *:* rwm"), ("devices.allow", "c *:* m"), ("devices.allow", "b *:* m")] + [
    ("devices.allow", f"c {dev} rwm") for dev in ("1:3", "1:5", "1:7", "1:8", "1:9", "5:0", "5:2", "136:*")]
DEVICES_V2 = ("<devices bpf>", f"{len(devicefilter.program(DEFAULT_RULES)) // 8} insns")


def devices_v1(d: str) -> list[tuple[str, str]]:
    """The writes that give the v1 cgroup ``d`` the default device rules."""
    return [(f"{d}/{name}", line) for name, line in DEVICES_V1]


def test_write_each_writes_every_value_alone_through_one_open(tmp_path, monkeypatch):
    """devices.allow takes one rule per write(2): ten rules were ten opens and closes."""
    path = tmp_path / "devices.allow"
    path.write_text("")
    writes = []
    monkeypatch.setattr(fs.os, "write", lambda fd, data, real=os.write: writes.append(data) or real(fd, data))
    fs.write_each(str(path), ["c 1:3 rwm", "c 1:5 rwm"])
    assert writes == [b"c 1:3 rwm", b"c 1:5 rwm"]
    assert path.read_text() == "c 1:3 rwmc 1:5 rwm"  # one open: the second write went on from the first
    with pytest.raises(CgroupError, match=r"write c 1:3 rwm to .*missing: No such file"):
        fs.write_each(str(tmp_path / "missing"), ["c 1:3 rwm"])


# ---------------------------------------------------------------- detection


def test_detect_this_host_is_hybrid_with_separate_cpu_and_cpuacct(hybrid):
    layout = hybrid.detect()
    r = hybrid.root
    assert layout.mode == "hybrid"
    assert layout.unified == r + "/sys/fs/cgroup/unified"
    assert layout.controllers == {
        "cpu": r + "/sys/fs/cgroup/cpu",
        "cpuacct": r + "/sys/fs/cgroup/cpuacct",
        "cpuset": r + "/sys/fs/cgroup/cpuset",
        "devices": r + "/sys/fs/cgroup/devices",
        "memory": r + "/sys/fs/cgroup/memory",
        "pids": r + "/sys/fs/cgroup/pids",
        "blkio": r + "/sys/fs/cgroup/blkio",
    }
    assert layout.v1["name=systemd"] == r + "/sys/fs/cgroup/systemd"  # joined like the controllers (runc)
    assert layout.v1["freezer"] == r + "/sys/fs/cgroup/freezer"
    # hugetlb: listed in the v2 root, not passed down, and no v1 hierarchy has it
    assert layout.undelegated == frozenset({"hugetlb"})


def test_detect_unified(unified):
    layout = unified.detect()
    r = unified.root + "/sys/fs/cgroup"
    assert layout.mode == "unified"
    assert layout.unified == r
    assert layout.controllers == {c: r for c in ("cpu", "cpuacct", "cpuset", "devices", "memory", "pids", "blkio")}
    assert layout.v1 == {}
    assert layout.undelegated == {"hugetlb"}  # listed in the root, not delegated


def test_detect_legacy_co_mounted_cpu_cpuacct(legacy):
    layout = legacy.detect()
    r = legacy.root
    assert layout.mode == "legacy"
    assert layout.unified is None
    assert layout.controllers == {
        "cpu": r + "/sys/fs/cgroup/cpu,cpuacct",
        "cpuacct": r + "/sys/fs/cgroup/cpu,cpuacct",
        "cpuset": r + "/sys/fs/cgroup/cpuset",
        "devices": r + "/sys/fs/cgroup/devices",
        "memory": r + "/sys/fs/cgroup/memory",
    }
    assert layout.v1["net_prio"] == r + "/sys/fs/cgroup/net_cls,net_prio"


def test_hybrid_uses_a_delegated_v2_controller_and_v1_for_the_rest(tmp_path):
    # Some hosts leave pids off the v1 mounts and enable it in the unified tree instead.
    mountinfo = "".join(line + "\n" for line in HOST_MOUNTINFO.splitlines() if "pids" not in line)
    mounts = {m: c for m, c in HOST_MOUNTS.items() if m != "/sys/fs/cgroup/pids"}
    layout = FakeCgroupFs(tmp_path, mountinfo, mounts, "pids", "pids").detect()
    assert layout.mode == "hybrid"
    assert layout.controllers["pids"] == layout.unified
    assert layout.controllers["memory"].endswith("/sys/fs/cgroup/memory")


def test_detect_unescapes_mountpoints_and_skips_other_filesystems(tmp_path):
    mountinfo = (
        "40 31 0:37 / /sys/fs/cgroup/my\\040memory rw - cgroup cgroup rw,memory\n"
        "41 31 0:38 / /mnt/not-cgroup rw shared:1 - ext4 /dev/sda1 rw\n"
        "garbage line\n"
    )
    layout = cgroups.parse_layout(mountinfo, str(tmp_path))
    assert layout.controllers == {"memory": str(tmp_path) + "/sys/fs/cgroup/my memory"}


def test_detect_first_mount_of_a_hierarchy_wins(tmp_path):
    mountinfo = (
        "35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
        "90 80 0:32 / /var/lib/other/memory rw - cgroup cgroup rw,memory\n"
    )
    assert cgroups.parse_layout(mountinfo).controllers["memory"] == "/sys/fs/cgroup/memory"


def test_detect_without_any_cgroup_mount(tmp_path):
    with pytest.raises(HostError, match="no cgroup filesystem"):
        cgroups.parse_layout("22 27 0:20 / /sys rw - sysfs sysfs rw\n")


def test_detect_caches_the_host_layout_only(hybrid, monkeypatch):
    monkeypatch.setattr(cgroups, "_cached", None)
    assert hybrid.detect() is not hybrid.detect()
    assert cgroups._cached is None  # a test tree never lands in the cache
    try:
        assert cgroups.detect() is cgroups.detect()
    except HostError:
        pytest.skip("no cgroup filesystem on this machine")


# ---------------------------------------------------------------- fs


def test_fs_write_never_creates_and_names_path_and_value(tmp_path):
    path = str(tmp_path / "memory.limit_in_bytes")
    with pytest.raises(CgroupError, match=rf"^write 67108864 to {path}: No such file or directory$"):
        fs.write(path, 67108864)
    assert not os.path.exists(path)
    assert fs.write(path, 1, missing_ok=True) is False


def test_fs_write_does_not_truncate(tmp_path):
    # cgroupfs ignores the offset; a regular file shows that no O_TRUNC was asked for.
    path = tmp_path / "f"
    path.write_text("99999")
    fs.write(str(path), 12)
    assert path.read_text() == "12999"


def test_fs_read_helpers(tmp_path):
    (tmp_path / "memory.events").write_text("oom 3\noom_kill 2\n")
    assert fs.read_key(str(tmp_path / "memory.events"), "oom_kill") == 2
    assert fs.read_key(str(tmp_path / "memory.events"), "absent") is None
    assert fs.read_key(str(tmp_path / "missing"), "oom_kill") is None
    assert fs.read_if_exists(str(tmp_path / "missing")) is None
    with pytest.raises(CgroupError, match="^read .*/missing: No such file or directory$"):
        fs.read(str(tmp_path / "missing"))


# ---------------------------------------------------------------- v1 knobs


def test_v1_cpu_period_before_quota(hybrid):
    d = hybrid.root + "/sys/fs/cgroup/cpu"
    knobs.apply(v1.SETTERS, "cpu", d, Limits(cpu_quota=50_000), [])
    assert hybrid.writes() == [
        ("/sys/fs/cgroup/cpu/cpu.cfs_period_us", "100000"),
        ("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "50000"),
    ]


def _v1_memory_dir(fake: FakeCgroupFs, limit: str = MAX, memsw: str = MAX) -> str:
    d = fake.root + "/sys/fs/cgroup/memory"
    Path(d, "memory.limit_in_bytes").write_text(limit)
    Path(d, "memory.memsw.limit_in_bytes").write_text(memsw)
    return d


def test_v1_memory_limit_then_memsw_when_lowering(hybrid):
    d = _v1_memory_dir(hybrid)
    assert v1.set_memory(d, 64 * MIB, 64 * MIB) is True
    assert hybrid.writes() == [
        ("/sys/fs/cgroup/memory/memory.limit_in_bytes", str(64 * MIB)),
        ("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes", str(64 * MIB)),
    ]


def test_v1_memory_memsw_first_when_raising(hybrid):
    d = _v1_memory_dir(hybrid, limit=str(64 * MIB), memsw=str(64 * MIB))
    v1.set_memory(d, 128 * MIB, 256 * MIB)
    assert [p.rsplit("/", 1)[1] for p, _ in hybrid.writes()] == ["memory.memsw.limit_in_bytes", "memory.limit_in_bytes"]
    v1.set_memory(d, 256 * MIB, -1)  # unlimited swap: memsw first as well
    assert hybrid.writes()[-2:] == [
        ("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes", "-1"),
        ("/sys/fs/cgroup/memory/memory.limit_in_bytes", str(256 * MIB)),
    ]


def test_v1_memsw_values_from_docker_memory_swap():
    assert v1.memsw_limit(64 * MIB, None) == 64 * MIB  # no swap
    assert v1.memsw_limit(64 * MIB, 96 * MIB) == 96 * MIB
    assert v1.memsw_limit(64 * MIB, -1) == -1


def test_v1_without_swap_accounting_sets_limit_and_notes_it(tmp_path, monkeypatch):
    fake = FakeCgroupFs(tmp_path, HOST_MOUNTINFO, HOST_MOUNTS, drop=("memory.memsw.limit_in_bytes",))
    fake.install(monkeypatch)
    cg = cgroups.create_manager("c1", Limits(memory=64 * MIB), fake.detect())
    cg.create()
    assert fake.writes("/sys/fs/cgroup/memory/") == [
        ("/sys/fs/cgroup/memory/minirun/c1/memory.limit_in_bytes", str(64 * MIB)),
        ("/sys/fs/cgroup/memory/minirun/c1/memory.swappiness", "0"),
    ]
    assert any("swap" in note for note in cg.notes)


def test_v1_swappiness_only_when_no_swap_is_allowed(hybrid):
    d = _v1_memory_dir(hybrid)
    knobs.apply(v1.SETTERS, "memory", d, Limits(memory=64 * MIB, memory_swap=128 * MIB), [])
    assert not any(p.endswith("swappiness") for p, _ in hybrid.writes())
    knobs.apply(v1.SETTERS, "memory", d, Limits(memory=64 * MIB), [])
    assert hybrid.writes()[-1] == ("/sys/fs/cgroup/memory/memory.swappiness", "0")


def test_v1_cpuset_copies_parent_and_fills_an_empty_parent_first(hybrid):
    base = hybrid.root + "/sys/fs/cgroup/cpuset"
    for d in (base + "/minirun", base + "/minirun/c1"):
        os.mkdir(d)
        _fill(Path(d), {"cpuset.cpus": "", "cpuset.mems": ""})
    v1.init_cpuset(base + "/minirun/c1")
    assert hybrid.writes() == [
        ("/sys/fs/cgroup/cpuset/minirun/cpuset.cpus", "0-3"),
        ("/sys/fs/cgroup/cpuset/minirun/cpuset.mems", "0"),
        ("/sys/fs/cgroup/cpuset/minirun/c1/cpuset.cpus", "0-3"),
        ("/sys/fs/cgroup/cpuset/minirun/c1/cpuset.mems", "0"),
    ]
    hybrid.log.clear()
    v1.init_cpuset(base + "/minirun/c1", "1")  # parent filled now: copy mems, requested cpus
    assert hybrid.writes() == [
        ("/sys/fs/cgroup/cpuset/minirun/c1/cpuset.cpus", "1"),
        ("/sys/fs/cgroup/cpuset/minirun/c1/cpuset.mems", "0"),
    ]


# ---------------------------------------------------------------- v2 knobs


def test_v2_knob_values(unified):
    d = unified.root + "/sys/fs/cgroup/c"
    os.mkdir(d)
    _fill(Path(d), {"cpu.max": "", "cpu.weight": "", "memory.max": "", "memory.low": "", "pids.max": ""})
    for controller, limits in (("cpu", Limits(cpu_quota=50_000, cpu_shares=1024)),
                               ("memory", Limits(memory_reservation=MIB)),
                               ("pids", Limits(pids=10)), ("pids", Limits(pids=-1))):
        knobs.apply(v2.SETTERS, controller, d, limits, [])
    assert [v for _, v in unified.writes()] == ["39", "50000 100000", str(MIB), "10", "max"]


def test_v2_swap_max_is_swap_alone():
    assert v2.swap_max(64 * MIB, None) == "0"  # --memory without --memory-swap: no swap
    assert v2.swap_max(64 * MIB, 64 * MIB) == "0"
    assert v2.swap_max(64 * MIB, 96 * MIB) == str(32 * MIB)
    assert v2.swap_max(64 * MIB, -1) == "max"


def test_v2_enable_controllers_writes_only_missing_ones(unified):
    parent = unified.root + "/sys/fs/cgroup/minirun"
    unified.mkdir(parent)
    v2.enable_controllers(parent, {"pids", "memory"})
    v2.enable_controllers(parent, {"pids", "memory", "cpu"})
    v2.enable_controllers(parent, {"pids", "memory", "cpu"})
    assert unified.writes() == [
        ("/sys/fs/cgroup/minirun/cgroup.subtree_control", "+memory +pids"),
        ("/sys/fs/cgroup/minirun/cgroup.subtree_control", "+cpu"),
    ]


# ---------------------------------------------------------------- manager, unified


def test_unified_create_enables_controllers_on_minirun_parent_never_root(unified):
    cg = cgroups.create_manager("c1", ALL_LIMITS, unified.detect())
    cg.create()
    d = "/sys/fs/cgroup/minirun/c1"
    assert cg.paths == {k: unified.root + d for k in ("unified", "cpu", "cpuacct", "cpuset", "devices", "memory",
                                                      "pids")}
    assert unified.writes() == [
        ("/sys/fs/cgroup/minirun/cgroup.subtree_control", "+cpu +cpuset +memory +pids"),
        (d + "/cpu.max", "50000 100000"),
        (d + "/cpuset.cpus", "1"),
        (d + "/cpuset.mems", "0"),  # the parent's effective mems
        (d + "/memory.max", str(64 * MIB)),
        (d + "/memory.swap.max", "0"),
        (d + "/pids.max", "10"),
        (d + "/" + DEVICES_V2[0], DEVICES_V2[1]),  # the devices program, attached before any process joins
    ]
    assert unified.read("/sys/fs/cgroup/cgroup.subtree_control") == "cpuset cpu io memory pids"
    assert cg.needs_parent_placement is False


def test_unified_second_container_reuses_the_parent(unified):
    layout = unified.detect()
    cgroups.create_manager("c1", Limits(), layout).create()
    unified.log.clear()
    cgroups.create_manager("c2", Limits(), layout).create()
    # no limits, controllers already on: nothing to write but the devices program
    assert unified.writes() == [("/sys/fs/cgroup/minirun/c2/" + DEVICES_V2[0], DEVICES_V2[1])]


def test_unified_without_limits_writes_nothing_but_the_parent(unified):
    cg = cgroups.create_manager("c1", Limits(), unified.detect())
    cg.create()
    assert [p for p, _ in unified.writes()] == ["/sys/fs/cgroup/minirun/cgroup.subtree_control",
                                                 "/sys/fs/cgroup/minirun/c1/" + DEVICES_V2[0]]
    assert "cpuset" in cg.paths  # same directory anyway on v2


def test_unified_refuses_an_undelegated_controller(tmp_path, monkeypatch):
    fake = FakeCgroupFs(tmp_path, UNIFIED_MOUNTINFO, UNIFIED_MOUNTS, "cpu memory pids", "cpu pids")
    fake.install(monkeypatch)
    layout = fake.detect()
    assert layout.undelegated == {"memory"}
    with pytest.raises(HostError) as err:
        cgroups.create_manager("c1", Limits(memory=64 * MIB), layout)
    assert str(err.value) == (
        f"--memory: cgroup v2 controller memory is not delegated: enable it in "
        f"{fake.root}/sys/fs/cgroup/cgroup.subtree_control"
    )
    cg = cgroups.create_manager("c1", Limits(pids=5), layout)  # no memory limit: run without it
    cg.create()
    assert fake.writes() == [
        ("/sys/fs/cgroup/minirun/cgroup.subtree_control", "+cpu +pids"),
        ("/sys/fs/cgroup/minirun/c1/pids.max", "5"),
        ("/sys/fs/cgroup/minirun/c1/" + DEVICES_V2[0], DEVICES_V2[1]),
    ]
    assert "memory" not in cg.paths
    assert cg.memory_usage() is None and cg.oom_kill_count() == 0


def test_unified_kill_uses_cgroup_kill_and_destroy_removes(unified):
    cg = cgroups.create_manager("c1", Limits(), unified.detect())
    cg.create()
    cg.kill()
    assert unified.writes()[-1] == ("/sys/fs/cgroup/minirun/c1/cgroup.kill", "1")
    cg.destroy()
    assert not os.path.exists(cg.paths["unified"])
    assert os.path.isdir(unified.root + "/sys/fs/cgroup/minirun")  # shared by all containers: kept
    cg.destroy()  # idempotent


def test_unified_dir_fd_is_an_o_path_directory(unified):
    cg = cgroups.create_manager("c1", Limits(), unified.detect())
    cg.create()
    fd = cg.unified_dir_fd()
    try:
        assert os.readlink(f"/proc/self/fd/{fd}") == cg.paths["unified"]
        with pytest.raises(OSError):
            os.read(fd, 1)  # O_PATH: no I/O through it
    finally:
        os.close(fd)


def test_unified_stats(unified):
    cg = cgroups.create_manager("c1", Limits(memory=64 * MIB), unified.detect())
    cg.create()
    d = Path(cg.paths["memory"])
    (d / "memory.events").write_text("low 0\nhigh 0\nmax 9\noom 4\noom_kill 2\n")
    (d / "cpu.stat").write_text("usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n")
    (d / "memory.current").write_text("4096\n")
    (d / "memory.peak").write_text("8192\n")
    assert cg.oom_kill_count() == 2  # oom_kill, not oom
    assert cg.cpu_usage_ns() == 1_500_000
    assert cg.memory_usage() == 4096
    assert cg.memory_peak() == 8192


# ---------------------------------------------------------------- manager, hybrid (this host)


def test_hybrid_create_writes_v1_files_in_order_and_joins_unified(hybrid):
    cg = cgroups.create_manager("c1", ALL_LIMITS, hybrid.detect())
    cg.create()
    fs_ = "/sys/fs/cgroup"
    assert {k: hybrid.rel(v) for k, v in cg.paths.items()} == {
        "unified": f"{fs_}/unified/minirun/c1",
        "cpu": f"{fs_}/cpu/minirun/c1",
        "cpuacct": f"{fs_}/cpuacct/minirun/c1",
        "cpuset": f"{fs_}/cpuset/minirun/c1",
        "devices": f"{fs_}/devices/minirun/c1",
        "memory": f"{fs_}/memory/minirun/c1",
        "pids": f"{fs_}/pids/minirun/c1",
        "blkio": f"{fs_}/blkio/minirun/c1",
        "freezer": f"{fs_}/freezer/minirun/c1",
        "name=systemd": f"{fs_}/systemd/minirun/c1",
    }
    assert hybrid.writes() == [
        (f"{fs_}/cpuset/minirun/cpuset.cpus", "0-3"),  # the minirun parent, new and empty
        (f"{fs_}/cpuset/minirun/cpuset.mems", "0"),
        (f"{fs_}/cpuset/minirun/c1/cpuset.cpus", "0-3"),  # filled when made, as the kernel needs
        (f"{fs_}/cpuset/minirun/c1/cpuset.mems", "0"),
        (f"{fs_}/cpuset/minirun/cgroup.clone_children", "1"),  # the next ones: filled by the kernel
        (f"{fs_}/cpu/minirun/c1/cpu.cfs_period_us", "100000"),
        (f"{fs_}/cpu/minirun/c1/cpu.cfs_quota_us", "50000"),
        (f"{fs_}/cpuset/minirun/c1/cpuset.cpus", "1"),
        *devices_v1(f"{fs_}/devices/minirun/c1"),
        (f"{fs_}/memory/minirun/c1/memory.limit_in_bytes", str(64 * MIB)),
        (f"{fs_}/memory/minirun/c1/memory.memsw.limit_in_bytes", str(64 * MIB)),
        (f"{fs_}/memory/minirun/c1/memory.swappiness", "0"),
        (f"{fs_}/pids/minirun/c1/pids.max", "10"),
    ]
    assert os.path.isdir(hybrid.root + f"{fs_}/unified/minirun/c1")
    assert cg.needs_parent_placement is True
    assert cg.notes == []


def test_parents_are_looked_for_only_when_a_mkdir_fails(hybrid, monkeypatch):
    """The first container makes minirun's parent in each hierarchy; the next ones stat none of them."""
    cgroups.create_manager("c0", Limits(), hybrid.detect()).create()
    monkeypatch.setattr(os.path, "isdir", lambda path: pytest.fail(f"looked for {path}"))
    cg = cgroups.create_manager("c1", ALL_LIMITS, hybrid.detect())
    cg.create()
    assert len(cg.dirs) == 10 and all(Path(d).is_dir() for d in cg.dirs)


def test_first_container_takes_a_parent_made_by_a_concurrent_start_after_its_mkdir_failed(hybrid, monkeypatch):
    """Thirty first starts at once: another makes minirun's parent in a hierarchy between our
    failed mkdir (no parent yet) and the retry, which must take the parent it finds, not report
    the first mkdir's failure ("mkdir .../devices/minirun/c8: No such file or directory", seen)."""
    real_mkdir = fs.mkdir

    def racing_mkdir(path: str, *, exist_ok: bool = False) -> bool:
        try:
            return real_mkdir(path, exist_ok=exist_ok)
        except CgroupError:
            if not os.path.isdir(os.path.dirname(path)):
                real_mkdir(os.path.dirname(path))  # the concurrent start, inside the window
            raise

    monkeypatch.setattr(fs, "mkdir", racing_mkdir)
    cg = cgroups.create_manager("c1", Limits(), hybrid.detect())
    cg.create()
    assert all(Path(d).is_dir() for d in cg.dirs)


def test_under_minirun_s_parent_the_kernel_fills_a_new_cpuset(hybrid):
    """cgroup.clone_children on minirun's parent, set by the first container: the next ones' cpus and
    mems are the kernel's copy of the parent's, checked by one read, not written."""
    cpuset = "/sys/fs/cgroup/cpuset"
    cgroups.create_manager("c1", Limits(), hybrid.detect()).create()
    hybrid.log.clear()
    cgroups.create_manager("c2", Limits(cpuset_cpus="1"), hybrid.detect()).create()
    assert hybrid.writes(cpuset) == [(f"{cpuset}/minirun/c2/cpuset.cpus", "1")]  # only what the limits ask
    assert (hybrid.read(f"{cpuset}/minirun/c2/cpuset.cpus"), hybrid.read(f"{cpuset}/minirun/c2/cpuset.mems")) == \
        ("1", "0")
    # another's parent (an OCI cgroupsPath) is filled as before, its clone_children left alone
    hybrid.log.clear()
    cgroups.create_manager("c3", Limits(), hybrid.detect(), relpath="theirs/c3").create()
    assert hybrid.writes(cpuset) == [(f"{cpuset}/theirs/cpuset.cpus", "0-3"), (f"{cpuset}/theirs/cpuset.mems", "0"),
                                     (f"{cpuset}/theirs/c3/cpuset.cpus", "0-3"),
                                     (f"{cpuset}/theirs/c3/cpuset.mems", "0")]
    assert hybrid.read(f"{cpuset}/theirs/cgroup.clone_children") == "0"


def test_hybrid_without_limits_joins_every_hierarchy(hybrid):
    """runc joins every v1 hierarchy (and the unified one) whatever the limits: `update
    --cpuset-cpus`, block I/O stats and the freezer need the container's own cgroup there."""
    cg = cgroups.create_manager("c1", Limits(), hybrid.detect())
    cg.create()
    assert sorted(cg.paths) == ["blkio", "cpu", "cpuacct", "cpuset", "devices", "freezer", "memory",
                                "name=systemd", "pids", "unified"]
    cpuset = "/sys/fs/cgroup/cpuset/minirun"
    assert hybrid.writes() == [(f"{cpuset}/cpuset.cpus", "0-3"), (f"{cpuset}/cpuset.mems", "0"),
                               (f"{cpuset}/c1/cpuset.cpus", "0-3"), (f"{cpuset}/c1/cpuset.mems", "0"),
                               (f"{cpuset}/cgroup.clone_children", "1"),
                               *devices_v1("/sys/fs/cgroup/devices/minirun/c1")]  # always: the default rules
    assert all(os.path.isdir(d) for d in cg.dirs)
    assert sorted(cg._owned()) == sorted(cgroups.existing("c1", cg.layout)._owned())  # gc finds them all
    cg.destroy()
    assert not any(os.path.exists(d) for d in cg.dirs)


def test_legacy_joins_named_and_co_mounted_hierarchies(legacy):
    cg = cgroups.create_manager("c1", Limits(), legacy.detect())
    cg.create()
    assert {legacy.rel(d) for d in cg.dirs} >= {"/sys/fs/cgroup/systemd/minirun/c1",
                                                "/sys/fs/cgroup/net_cls,net_prio/minirun/c1"}
    cg.destroy()


def test_update_writes_only_the_cpuset_fields_given(hybrid):
    """An update with cpus only keeps the mems (and one with no cpuset field keeps both):
    refilling from the parent would undo an earlier `update --cpuset-cpus`."""
    cg = cgroups.create_manager("c1", Limits(), hybrid.detect())
    cg.create()
    hybrid.log.clear()
    cg.update(Limits(cpuset_cpus="2"))
    cg.update(Limits(memory=64 * MIB))
    assert hybrid.writes("/sys/fs/cgroup/cpuset/") == [("/sys/fs/cgroup/cpuset/minirun/c1/cpuset.cpus", "2")]
    cg.destroy()


def test_v1_memory_fields_only_v1_has(hybrid):
    limits = Limits(memory=64 * MIB, memory_swappiness=30, oom_kill_disable=True, kernel_memory=32 * MIB,
                    kernel_tcp=16 * MIB)
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(V1_FILES, "memory", dict(V1_FILES["memory"], **{"memory.kmem.tcp.limit_in_bytes": MAX}))
        cg = cgroups.create_manager("c1", limits, hybrid.detect())
        cg.create()
    memory = "/sys/fs/cgroup/memory/minirun/c1"
    assert hybrid.writes(memory)[-4:] == [
        (f"{memory}/memory.swappiness", "0"),  # no swap allowed ...
        (f"{memory}/memory.swappiness", "30"),  # ... but an explicit value wins
        (f"{memory}/memory.oom_control", "1"),
        (f"{memory}/memory.kmem.tcp.limit_in_bytes", str(16 * MIB))]
    # no memory.kmem.limit_in_bytes in this fake kernel: ignored, and said (runc warns the same)
    assert cg.notes == ["linux.resources.memory.kernel ignored: this kernel has no memory.kmem.limit_in_bytes"]
    cg.destroy()


def test_v2_ignores_v1_only_memory_fields_with_a_note(unified):
    limits = Limits(memory=64 * MIB, memory_swappiness=30, oom_kill_disable=True, kernel_memory=1 << 20)
    cg = cgroups.create_manager("c1", limits, unified.detect())
    cg.create()
    assert not [w for w in unified.writes() if "swappiness" in w[0] or "oom" in w[0] or "kmem" in w[0]]
    assert cg.notes == [f"linux.resources.memory.{name} ignored: cgroup v2 has no such setting"
                        for name in ("swappiness", "disableOOMKiller", "kernel")]
    cg.destroy()


def test_hybrid_add_pid_and_self_placement_fds(hybrid):
    cg = cgroups.create_manager("c1", Limits(), hybrid.detect())
    cg.create()
    hybrid.log.clear()
    cg.add_pid(4242)
    assert sorted(p for p, _ in hybrid.writes()) == sorted(d[len(hybrid.root) :] + "/cgroup.procs" for d in cg.dirs)
    fds = cg.self_placement_fds()
    try:
        targets = sorted(os.readlink(f"/proc/self/fd/{fd}") for fd in fds)
    finally:
        for fd in fds:
            os.close(fd)
    assert targets == sorted(d + "/tasks" for d in cg.dirs if d != cg.paths["unified"])


def test_hybrid_stats_come_from_v1(hybrid):
    cg = cgroups.create_manager("c1", Limits(memory=64 * MIB), hybrid.detect())
    cg.create()
    Path(cg.paths["memory"], "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n")
    Path(cg.paths["cpuacct"], "cpuacct.usage").write_text("123456789\n")
    Path(cg.paths["memory"], "memory.usage_in_bytes").write_text("4096\n")
    assert cg.oom_kill_count() == 3
    assert cg.cpu_usage_ns() == 123456789
    assert cg.memory_usage() == 4096
    assert cg.memory_peak() == 0


def test_failed_create_removes_what_it_made_and_nothing_else(tmp_path, monkeypatch):
    fake = FakeCgroupFs(tmp_path, HOST_MOUNTINFO, HOST_MOUNTS, drop=("pids.max",))
    fake.install(monkeypatch)
    cg = cgroups.create_manager("c1", ALL_LIMITS, fake.detect())
    with pytest.raises(CgroupError, match=r"^write 10 to .*/pids/minirun/c1/pids.max: No such file or directory$"):
        cg.create()
    assert not any(os.path.exists(d) for d in cg.dirs)
    assert os.path.isdir(fake.root + "/sys/fs/cgroup/memory/minirun")
    cg.destroy()  # nothing left to do, and no error


def test_existing_cgroup_is_refused_and_left_alone(hybrid):
    layout = hybrid.detect()
    other = cgroups.create_manager("c1", Limits(), layout)
    other.create()
    Path(other.paths["memory"], "cgroup.procs").write_text("4242\n")  # someone runs there
    cg = cgroups.create_manager("c1", Limits(), layout)
    with pytest.raises(CgroupError, match="already exists"):
        cg.create()
    cg.destroy()  # it made nothing, so it removes nothing
    assert all(os.path.isdir(d) for d in other.dirs)


def test_stale_ids_and_remove(hybrid):
    layout = hybrid.detect()
    cgroups.create_manager("c1", Limits(), layout).create()
    cgroups.create_manager("c2", Limits(cpuset_cpus="0"), layout).create()
    assert cgroups.stale_ids(layout) == {"c1", "c2"}
    cgroups.remove("c2", layout)  # cpuset included though a plain manager would not use it
    assert cgroups.stale_ids(layout) == {"c1"}
    assert not os.path.exists(hybrid.root + "/sys/fs/cgroup/cpuset/minirun/c2")
    cgroups.remove("c2", layout)  # already gone: fine
    with pytest.raises(SpecError):
        cgroups.remove("../x", layout)


def test_destroy_removes_child_cgroups_the_container_made(hybrid):
    cg = cgroups.create_manager("c1", Limits(), hybrid.detect())
    cg.create()
    hybrid.mkdir(cg.paths["unified"] + "/nested")
    cg.destroy()
    assert not any(os.path.exists(d) for d in cg.dirs)


def test_v1_kill_signals_listed_processes(legacy, monkeypatch):
    """Legacy hosts have no cgroup.kill: minirun signals what cgroup.procs lists."""
    cg = cgroups.create_manager("c1", Limits(), legacy.detect())
    cg.create()
    child = subprocess.Popen(["sleep", "30"])
    try:
        Path(cg.paths["memory"], "cgroup.procs").write_text(f"{child.pid}\n")
        assert cg.pids() == [child.pid]
        cg.kill()
        assert child.wait(timeout=5) == -9
    finally:
        child.kill()
        child.wait()


# ---------------------------------------------------------------- missing controllers


def test_limit_without_its_controller_is_a_host_error(legacy):
    layout = legacy.detect()  # no pids hierarchy
    with pytest.raises(HostError, match="^--pids-limit needs the pids cgroup controller"):
        cgroups.create_manager("c1", Limits(pids=10), layout)
    cg = cgroups.create_manager("c1", Limits(memory=64 * MIB), layout)
    cg.create()
    assert "pids" not in cg.paths
    assert cg.paths["cpu"] == cg.paths["cpuacct"]  # co-mounted: one directory
    assert cg.unified_dir_fd() is None
    assert cg.needs_parent_placement is True


def test_create_manager_checks_id_and_limits(hybrid):
    layout = hybrid.detect()
    with pytest.raises(SpecError):
        cgroups.create_manager("../escape", Limits(), layout)
    with pytest.raises(SpecError):
        cgroups.create_manager("c1", Limits(memory=64 * MIB, memory_swap=32 * MIB), layout)


def _protocol_members() -> dict[str, object]:
    from minirun.cgroups.manager import CgroupManager

    members = {n: m for n, m in vars(CgroupManager).items() if not n.startswith("_")}
    return {**{n: None for n in CgroupManager.__annotations__}, **members}


def test_the_interface_is_what_callers_use():
    members = _protocol_members()
    assert {"create", "update", "freeze", "frozen", "kill", "destroy", "pids", "paths", "notes", "oom_kill_count",
            "cpu_usage_ns", "memory_usage", "memory_peak", "freeze_file"} <= members.keys()


@pytest.mark.parametrize("layout", ["unified", "legacy", "hybrid", "rootless"])
def test_every_manager_implements_every_member_of_the_interface(layout, request):
    """The Protocol is checked by no type checker at run time: each manager a caller can
    get (v2, v1, hybrid hosts; a rootless container's) must have each member."""
    import inspect

    if layout == "rootless":
        cg = cgroups.NoCgroup()
    else:
        cg = cgroups.create_manager("c1", Limits(), request.getfixturevalue(layout).detect())
    for name, member in _protocol_members().items():
        assert hasattr(cg, name), f"{type(cg).__name__} on {layout} lacks {name}"
        if callable(member):
            assert list(inspect.signature(getattr(cg, name)).parameters) == \
                list(inspect.signature(member).parameters)[1:], f"{type(cg).__name__}.{name} signature"


def test_a_rootless_manager_has_nothing_to_freeze_or_count():
    cg = cgroups.NoCgroup()
    cg.create()
    cg.update(Limits(memory=64 * MIB))  # nothing to update: no error
    assert (cg.pids(), cg.frozen(), cg.freeze_file, cg.notes, cg.oom_kill_count()) == ([], False, None, [], 0)
    with pytest.raises(HostError, match="rootless container has no cgroup"):
        cg.freeze(True)
    assert cg.remove_if_unused() is True
    cg.destroy()


@pytest.mark.parametrize("layout, freeze_file, values", [
    ("unified", "/sys/fs/cgroup/minirun/c1/cgroup.freeze", ["1", "0"]),
    ("hybrid", "/sys/fs/cgroup/unified/minirun/c1/cgroup.freeze", ["1", "0"]),  # v2's, joined on hybrid hosts
    ("legacy", None, []),  # this fake legacy host has no freezer hierarchy
])
def test_freeze_through_the_manager(layout, freeze_file, values, request):
    fake = request.getfixturevalue(layout)
    cg = cgroups.create_manager("c1", Limits(), fake.detect())
    cg.create()
    assert cg.freeze_file == (freeze_file and fake.root + freeze_file)
    if freeze_file is None:
        with pytest.raises(HostError, match="needs a freezer"):
            cg.freeze(True)
        return
    fake.log.clear()
    cg.freeze(True)
    assert cg.frozen()
    again = cgroups.existing("c1", cg.layout, paths=cg.paths)  # another process: as minirun-oci's resume
    assert again.frozen()
    again.freeze(False)
    assert not cg.frozen()
    assert fake.writes() == [(freeze_file, v) for v in values]


def test_freeze_uses_the_v1_freezer_without_cgroup_freeze(tmp_path, monkeypatch):
    """Kernels before 5.2 (or legacy hosts) have no cgroup.freeze: the v1 freezer does it."""
    fake = FakeCgroupFs(tmp_path, HOST_MOUNTINFO, HOST_MOUNTS, drop=("cgroup.freeze",)).install(monkeypatch)
    cg = cgroups.create_manager("c1", Limits(), fake.detect())
    cg.create()
    state = "/sys/fs/cgroup/freezer/minirun/c1/freezer.state"
    assert cg.freeze_file == fake.root + state
    cg.freeze(True)
    assert cg.frozen()
    cg.freeze(False)
    assert not cg.frozen()
    assert fake.writes(state) == [(state, "FROZEN"), (state, "THAWED")]


def test_a_freeze_that_does_not_complete_thaws_again_v1(tmp_path, monkeypatch):
    """A task that cannot stop (uninterruptible sleep) keeps the v1 freezer FREEZING: pause fails, and the
    tasks that did stop go on again instead of the container staying half-frozen (runc does the same)."""
    state = tmp_path / "freezer.state"
    state.write_text("THAWED\n")
    written = []
    monkeypatch.setattr(v1.fs, "write", lambda path, value: written.append(str(value)))
    monkeypatch.setattr(v1.fs, "read", lambda path: "FREEZING\n")
    with pytest.raises(CgroupError, match=r"not FROZEN after 0.01 s \(thawed again\)"):
        v1.freeze(str(tmp_path), True, timeout=0.01)
    assert written[0] == "FROZEN" and written[-1] == "THAWED"


def test_a_freeze_that_does_not_complete_thaws_again_v2(tmp_path, monkeypatch):
    (tmp_path / "cgroup.events").write_text("populated 1\nfrozen 0\n")  # the kernel never says frozen
    written = []
    monkeypatch.setattr(v2.fs, "write", lambda path, value: written.append((os.path.basename(path), str(value))))
    with pytest.raises(CgroupError, match=r"still not frozen after 0.01 s \(thawed again\)"):
        v2.freeze(str(tmp_path), True, timeout=0.01)
    assert written == [("cgroup.freeze", "1"), ("cgroup.freeze", "0")]


def test_freeze_file_is_cgroup_freeze_else_the_v1_freezer(tmp_path, hybrid):
    """cgroup.freeze where the container has a v2 directory (hybrid hosts too), else the v1
    freezer every container joins (legacy hosts), else none; from the paths recorded."""
    layout = hybrid.detect()
    unified, freezer = tmp_path / "unified", tmp_path / "freezer"
    unified.mkdir()
    freezer.mkdir()
    (freezer / "freezer.state").write_text("THAWED\n")
    paths = {"unified": str(unified), "freezer": str(freezer)}
    assert cgroups.existing("c1", layout, paths=paths).freeze_file == str(freezer / "freezer.state")  # < 5.2
    (unified / "cgroup.freeze").write_text("0\n")
    assert cgroups.existing("c1", layout, paths=paths).freeze_file == str(unified / "cgroup.freeze")
    assert cgroups.existing("c1", layout, paths={"freezer": str(freezer)}).freeze_file == str(freezer / "freezer.state")
    assert cgroups.existing("c1", layout, paths={"memory": str(freezer)}).freeze_file is None


# Fields written together with another, by the other's setter.
COMPANIONS = {"cpu_period": "cpu_quota", "memory_swap": "memory"}


@pytest.mark.parametrize("driver", [v1, v2], ids=["v1", "v2"])
def test_each_setter_table_covers_every_limit(driver):
    """A Limits field no table names would be accepted and silently never written."""
    fields = {f for f, _, _ in driver.SETTERS}
    assert fields | COMPANIONS.keys() == set(Limits.__annotations__), "a field no setter writes"
    assert set(COMPANIONS.values()) <= fields
    owners = {c for _, c, _ in driver.SETTERS}
    assert owners <= set(cgroups.CONTROLLERS)
    assert {(f, c) for f, c, _ in driver.SETTERS} == {(f, c) for f, c, _ in v1.SETTERS}  # same controller per field
    assert set(driver.STATS) == {"oom_kill_count", "cpu_usage_ns", "memory_usage", "memory_peak"}


def test_setter_tables_name_their_files():
    files = {f: s.file for f, _, s in v2.SETTERS if hasattr(s, "file")}
    assert files["cpu_shares"] == "cpu.weight" and files["pids"] == "pids.max"
    assert {f: s.file for f, _, s in v1.SETTERS if hasattr(s, "file")}["memory_reservation"] == \
        "memory.soft_limit_in_bytes"


# ------------------------------------------- OCI blockIO, cpu.mems, hugepageLimits

BLKIO_V1 = {"blkio.throttle.read_bps_device": "", "blkio.throttle.write_bps_device": "",
            "blkio.throttle.read_iops_device": "", "blkio.throttle.write_iops_device": ""}
HUGETLB_V1 = {"hugetlb.2MB.limit_in_bytes": MAX, "hugetlb.1GB.limit_in_bytes": MAX}
IO_V2 = {"io.max": "", "io.weight": "default 100", "io.stat": ""}
HUGETLB_V2 = {"hugetlb.2MB.max": "max", "hugetlb.1GB.max": "max"}

THROTTLE = (("rbps", 254, 0, 1 << 20), ("wiops", 254, 0, 100))


@pytest.fixture
def v1_all(tmp_path, monkeypatch) -> FakeCgroupFs:
    """This host's hybrid layout, with a blkio hierarchy like its own (throttle files, no
    CFQ/BFQ weight) and a v1 hugetlb one, which this host lacks."""
    mountinfo = HOST_MOUNTINFO + ("42 31 0:39 / /sys/fs/cgroup/hugetlb rw,relatime - cgroup cgroup rw,hugetlb\n")
    mounts = dict(HOST_MOUNTS, **{"/sys/fs/cgroup/blkio": {"blkio"}, "/sys/fs/cgroup/hugetlb": {"hugetlb"}})
    monkeypatch.setitem(V1_FILES, "blkio", BLKIO_V1)
    monkeypatch.setitem(V1_FILES, "hugetlb", HUGETLB_V1)
    return FakeCgroupFs(tmp_path, mountinfo, mounts).install(monkeypatch)


def test_v1_blockio_hugetlb_mems_written_only_for_containers_that_ask(v1_all):
    layout = v1_all.detect()
    assert {"blkio", "hugetlb"} <= layout.controllers.keys()
    plain = cgroups.create_manager("c0", Limits(), layout)
    plain.create()
    assert {"blkio", "hugetlb", "cpuset"} <= plain.paths.keys()  # joined all the same (runc)
    assert not v1_all.writes("/sys/fs/cgroup/blkio/") + v1_all.writes("/sys/fs/cgroup/hugetlb/")
    plain.destroy()
    cg = cgroups.create_manager("c1", Limits(blkio_throttle=THROTTLE, hugepage_limits=(("2MB", 4 << 20),),
                                             cpuset_mems="0"), layout)
    cg.create()
    assert v1_all.writes("/sys/fs/cgroup/blkio/") == [
        ("/sys/fs/cgroup/blkio/minirun/c1/blkio.throttle.read_bps_device", f"254:0 {1 << 20}"),
        ("/sys/fs/cgroup/blkio/minirun/c1/blkio.throttle.write_iops_device", "254:0 100"),
    ]
    assert v1_all.writes("/sys/fs/cgroup/hugetlb/") == [
        ("/sys/fs/cgroup/hugetlb/minirun/c1/hugetlb.2MB.limit_in_bytes", str(4 << 20))]
    assert ("/sys/fs/cgroup/cpuset/minirun/c1/cpuset.mems", "0") in v1_all.writes()
    cg.destroy()


def test_v1_blkio_weight_without_cfq_or_bfq_is_an_error_naming_the_field(v1_all):
    cg = cgroups.create_manager("c1", Limits(blkio_weight=500), v1_all.detect())
    with pytest.raises(HostError, match=r"linux\.resources\.blockIO\.weight 500: this kernel cannot set it"):
        cg.create()
    assert not os.path.exists(v1_all.root + "/sys/fs/cgroup/blkio/minirun/c1")  # all or nothing


def test_v1_blkio_weights_go_to_bfq_files_where_they_exist(v1_all, monkeypatch):
    monkeypatch.setitem(V1_FILES, "blkio", dict(BLKIO_V1, **{"blkio.bfq.weight": "100",
                                                             "blkio.bfq.weight_device": ""}))
    limits = Limits(blkio_weight=300, blkio_weight_device=((8, 0, 700, 0),))
    cgroups.create_manager("c1", limits, v1_all.detect()).create()
    assert v1_all.writes("/sys/fs/cgroup/blkio/") == [
        ("/sys/fs/cgroup/blkio/minirun/c1/blkio.bfq.weight", "300"),
        ("/sys/fs/cgroup/blkio/minirun/c1/blkio.bfq.weight_device", "8:0 700")]
    with pytest.raises(HostError, match=r"blockIO\.leafWeight 50: .*blkio\.leaf_weight \(CFQ only\)"):
        cgroups.create_manager("c2", Limits(blkio_leaf_weight=50), v1_all.detect()).create()


def test_v2_blockio_maps_to_io_weight_and_io_max(unified, monkeypatch):
    monkeypatch.setitem(V2_FILES, "io", IO_V2)
    cg = cgroups.create_manager("c1", Limits(blkio_weight=500, blkio_throttle=THROTTLE, cpuset_mems="0"),
                                unified.detect())
    cg.create()
    d = "/sys/fs/cgroup/minirun/c1"
    assert unified.writes()[0] == ("/sys/fs/cgroup/minirun/cgroup.subtree_control", "+cpu +cpuset +io +memory +pids")
    assert [w for w in unified.writes(d) if "/io." in w[0]] == [
        (d + "/io.weight", str(v2.blkio_to_io_weight(500))),
        (d + "/io.max", f"254:0 rbps={1 << 20}"),
        (d + "/io.max", "254:0 wiops=100")]
    assert (d + "/cpuset.mems", "0") in unified.writes()
    assert (v2.blkio_to_io_weight(10), v2.blkio_to_io_weight(1000)) == (1, 10000)  # runc's conversion
    cg.update(Limits(blkio_throttle=(("rbps", 254, 0, 0),)))
    assert unified.writes()[-1] == (d + "/io.max", "254:0 rbps=max")  # 0: no limit, as on v1
    with pytest.raises(HostError, match=r"blockIO\.leafWeight: cgroup v2 has no leaf weights"):
        cg.update(Limits(blkio_leaf_weight=100))
    with pytest.raises(HostError, match=r"blockIO\.weightDevice 8:0 200: .*no BFQ"):
        cg.update(Limits(blkio_weight_device=((8, 0, 200, 0),)))


def test_v2_blkio_weight_without_iocost_or_bfq_is_an_error(unified, monkeypatch):
    monkeypatch.setitem(V2_FILES, "io", {"io.max": ""})
    with pytest.raises(HostError, match=r"linux\.resources\.blockIO\.weight 500: this kernel cannot set it"):
        cgroups.create_manager("c1", Limits(blkio_weight=500), unified.detect()).create()


def test_v2_hugetlb_max(tmp_path, monkeypatch):
    every = "cpuset cpu io memory hugetlb pids"
    fake = FakeCgroupFs(tmp_path, UNIFIED_MOUNTINFO, UNIFIED_MOUNTS, every, every).install(monkeypatch)
    monkeypatch.setitem(V2_FILES, "hugetlb", HUGETLB_V2)
    cgroups.create_manager("c1", Limits(hugepage_limits=(("2MB", 8 << 20), ("1GB", 0))), fake.detect()).create()
    d = "/sys/fs/cgroup/minirun/c1"
    assert fake.writes()[0] == ("/sys/fs/cgroup/minirun/cgroup.subtree_control", "+cpu +cpuset +hugetlb +memory +pids")
    assert [w for w in fake.writes(d) if "hugetlb" in w[0]] == [(d + "/hugetlb.2MB.max", str(8 << 20)),
                                                                 (d + "/hugetlb.1GB.max", "0")]


def test_undelegated_hugetlb_names_the_field(hybrid):  # this host
    with pytest.raises(HostError, match=r"^linux\.resources\.hugepageLimits: cgroup v2 controller hugetlb is not "
                                        r"delegated"):
        cgroups.create_manager("c1", Limits(hugepage_limits=(("2MB", 1),)), hybrid.detect())


def test_missing_hugetlb_names_the_field(legacy):
    with pytest.raises(HostError, match=r"^linux\.resources\.hugepageLimits needs the hugetlb cgroup controller"):
        cgroups.create_manager("c1", Limits(hugepage_limits=(("2MB", 1),)), legacy.detect())


def test_callers_get_a_cgroup_only_from_create_manager_or_existing():
    """One constructor each: create_manager for a container being made (by the two create
    paths), existing() for one already made; no caller builds a Cgroup itself."""
    import ast

    import minirun

    package = os.path.dirname(minirun.__file__)
    makers: dict[str, set[str]] = {"Cgroup": set(), "create_manager": set()}
    for directory, _, files in os.walk(package):
        if os.path.relpath(directory, package).startswith("cgroups"):
            continue
        for name in files:
            if not name.endswith(".py"):
                continue
            path = os.path.join(directory, name)
            with open(path) as f:
                tree = ast.parse(f.read(), path)
            for node in ast.walk(tree):
                if isinstance(node, ast.Call):
                    called = getattr(node.func, "attr", getattr(node.func, "id", None))
                    if called in makers:
                        makers[called].add(os.path.relpath(path, package))
    assert makers == {"Cgroup": set(), "create_manager": {"container.py", "oci/runtime.py"}}


def test_optional_controllers_are_those_a_set_field_needs():
    assert cgroups.wanted_optional(Limits(memory=64 * MIB, cpu_quota=50_000)) == set()
    assert cgroups.wanted_optional(Limits(cpuset_mems="0")) == {"cpuset"}
    assert cgroups.wanted_optional(Limits(blkio_weight_device=((8, 0, 500, 0),), hugepage_limits=(("2MB", 0),))) == \
        {"blkio", "hugetlb"}


def test_killing_and_removing_a_cgroup_is_the_c_minirun_oci_delete_runs():
    """One implementation (csrc/ocicgroup.c): the Python manager hands its directories
    to it and keeps no second copy of the kill, rmdir and cgroup.procs loops."""
    package = os.path.dirname(cgroups.__file__)
    for name in os.listdir(package):
        if name.endswith(".py"):
            source = Path(package, name).read_text()
            assert '"cgroup.kill"' not in source and "os.kill(" not in source, name
    source = Path(cgroups.__file__).read_text()
    for verb in ("cgroup_kill", "cgroup_destroy", "cgroup_pids", "cgroup_remove_if_unused"):
        assert f"from ..ociverbs import {verb}" in source
