"""cgroup v1 (legacy): the setter table (SETTERS), the freezer, the counters.

Each controller lives in its own hierarchy (or shares one, like ``cpu,cpuacct``), so
every function gets the directory of that controller's hierarchy. "-1" means unlimited.
"""

from __future__ import annotations

import errno
import os
import time

from ..errors import CgroupError, HostError
from ..spec import Limits
from . import fs
from .knobs import file, limit_or_max


def memsw_limit(memory: int, memory_swap: int | None) -> int:
    """memsw counts memory+swap, as docker's --memory-swap does; None means no swap at all."""
    return memory if memory_swap is None else memory_swap


def set_memory(path: str, limit: int, memsw: int) -> bool:
    """Set memory.limit_in_bytes and memory.memsw.limit_in_bytes; False if memsw is absent.

    The kernel refuses any moment where memsw < limit, so when memsw grows past its
    current value it goes first, otherwise limit goes first (a new cgroup starts at
    the maximum, hence limit then memsw).
    """
    limit_file = os.path.join(path, "memory.limit_in_bytes")
    memsw_file = os.path.join(path, "memory.memsw.limit_in_bytes")
    current = fs.read_if_exists(memsw_file)
    if current is None:  # booted without swap accounting
        fs.write(limit_file, limit)
        return False
    if memsw == -1 or memsw > int(current):
        fs.write(memsw_file, memsw)
        fs.write(limit_file, limit)
    else:
        fs.write(limit_file, limit)
        fs.write(memsw_file, memsw)
    return True


def init_cpuset(path: str, cpus: str | None = None, mems: str | None = None) -> None:
    """Fill a new cpuset cgroup from its parent: it starts with empty cpus and mems,
    and a cgroup without both refuses every task (ENOSPC). ``cpus``/``mems``: a subset
    of the parent's instead (the kernel refuses any other with EINVAL).

    If the parent is itself still empty (minirun's parent, just made by a concurrent
    run), it is filled from its own parent first.
    """
    parent = os.path.dirname(path)
    parent_mems = fs.read(os.path.join(parent, "cpuset.mems")).strip()
    if not parent_mems:
        init_cpuset(parent)
        parent_mems = fs.read(os.path.join(parent, "cpuset.mems")).strip()
    if cpus is None:
        cpus = fs.read(os.path.join(parent, "cpuset.cpus")).strip()
    fs.write(os.path.join(path, "cpuset.cpus"), cpus)
    fs.write(os.path.join(path, "cpuset.mems"), parent_mems if mems is None else mems)


def _blkio_missing(path: str, field: str, value, files: str) -> HostError:
    return HostError(f"linux.resources.blockIO.{field} {value}: this kernel cannot set it ({files} missing in "
                     f"{path}: no CFQ or BFQ I/O scheduler)")


def _weight_files(path: str) -> tuple[str, str]:
    """BFQ's weight files where the kernel has them, else CFQ's (runc's choice)."""
    if os.path.exists(os.path.join(path, "blkio.bfq.weight")):
        return "blkio.bfq.weight", "blkio.bfq.weight_device"
    return "blkio.weight", "blkio.weight_device"


def set_blkio_weight(path: str, limits: Limits, notes: list[str]) -> None:
    """A weight nothing can set is an error naming the field: kernels since 5.0 have no
    CFQ, and BFQ may not be built."""
    if not fs.write(os.path.join(path, _weight_files(path)[0]), limits.blkio_weight, missing_ok=True):
        raise _blkio_missing(path, "weight", limits.blkio_weight, "blkio.weight and blkio.bfq.weight")


def set_blkio_leaf_weight(path: str, limits: Limits, notes: list[str]) -> None:
    if not fs.write(os.path.join(path, "blkio.leaf_weight"), limits.blkio_leaf_weight, missing_ok=True):
        raise _blkio_missing(path, "leafWeight", limits.blkio_leaf_weight, "blkio.leaf_weight (CFQ only)")


def set_blkio_weight_device(path: str, limits: Limits, notes: list[str]) -> None:
    weight_device = _weight_files(path)[1]
    for major, minor, dev_weight, leaf in limits.blkio_weight_device:
        if dev_weight and not fs.write(os.path.join(path, weight_device), f"{major}:{minor} {dev_weight}",
                                       missing_ok=True):
            raise _blkio_missing(path, "weightDevice", f"{major}:{minor} {dev_weight}", weight_device)
        if leaf and not fs.write(os.path.join(path, "blkio.leaf_weight_device"), f"{major}:{minor} {leaf}",
                                 missing_ok=True):
            raise _blkio_missing(path, "weightDevice leafWeight", f"{major}:{minor} {leaf}",
                                 "blkio.leaf_weight_device (CFQ only)")


def set_blkio_throttle(path: str, limits: Limits, notes: list[str]) -> None:
    """One line per device to the throttle files."""
    for kind, major, minor, rate in limits.blkio_throttle:
        fs.write(os.path.join(path, THROTTLE_FILES[kind]), f"{major}:{minor} {rate}")


THROTTLE_FILES = {"rbps": "blkio.throttle.read_bps_device", "wbps": "blkio.throttle.write_bps_device",
                  "riops": "blkio.throttle.read_iops_device", "wiops": "blkio.throttle.write_iops_device"}


def set_hugetlb(path: str, limits: Limits, notes: list[str]) -> None:
    for size, limit in limits.hugepage_limits:
        fs.write(os.path.join(path, f"hugetlb.{size}.limit_in_bytes"), limit)


def set_devices(path: str, limits: Limits, notes: list[str]) -> None:
    """The device rules, one write each, in order (the kernel applies each at once).

    A new cgroup starts with its parent's list (everything, under minirun's parent);
    Limits.validate saw to it that the list begins with a type "a" rule, which
    written to devices.deny empties it.
    """
    rules = list(limits.devices)
    while rules:  # a run of allow (or deny) rules goes through one open of its file (itertools: ~0.07 ms)
        allow = rules[0].allow
        end = next((i for i, rule in enumerate(rules) if rule.allow != allow), len(rules))
        fs.write_each(os.path.join(path, "devices.allow" if allow else "devices.deny"),
                      [rule.v1_line() for rule in rules[:end]])
        del rules[:end]


def set_memory_and_swap(path: str, limits: Limits, notes: list[str]) -> None:
    memsw = memsw_limit(limits.memory, limits.memory_swap)
    if not set_memory(path, limits.memory, memsw):
        notes.append("no swap accounting (memory.memsw.* absent): swap is not limited")
    if memsw == limits.memory:  # no swap allowed: do not even try reclaiming to swap
        fs.write(os.path.join(path, "memory.swappiness"), 0, missing_ok=True)


def _deprecated(field: str, name: str):
    """Kernel memory limits, deprecated by the kernel (the file is gone in some builds,
    writes are refused with EOPNOTSUPP by others): where it cannot take one, it is
    ignored with a note, as runc warns."""

    def setter(path: str, limits: Limits, notes: list[str]) -> None:
        value = getattr(limits, "kernel_memory" if field == "kernel" else "kernel_tcp")
        if not _write_if_supported(os.path.join(path, name), value):
            notes.append(f"linux.resources.memory.{field} ignored: this kernel has no {name}")

    return setter


def _write_if_supported(path: str, value: int) -> bool:
    try:
        return fs.write(path, value, missing_ok=True)
    except CgroupError as err:
        if getattr(err.__cause__, "errno", None) in (errno.EOPNOTSUPP, errno.ENOTSUP):
            return False
        raise


# Limits field -> how v1 writes it, in the order written (knobs.py). An unset field
# keeps the kernel's default (-1: unlimited). cpuset.cpus and .mems were filled from
# the parent when the directory was made (Cgroup._make): only what is asked is written.
SETTERS = (
    ("cpu_shares", "cpu", file("cpu.shares", lambda lim: lim.cpu_shares)),
    # Period first: the quota is checked against the period in force.
    ("cpu_quota", "cpu", file("cpu.cfs_period_us", lambda lim: lim.cpu_period)),
    ("cpu_quota", "cpu", file("cpu.cfs_quota_us", lambda lim: lim.cpu_quota)),
    ("cpuset_cpus", "cpuset", file("cpuset.cpus", lambda lim: lim.cpuset_cpus)),
    ("cpuset_mems", "cpuset", file("cpuset.mems", lambda lim: lim.cpuset_mems)),
    ("memory_reservation", "memory", file("memory.soft_limit_in_bytes", lambda lim: lim.memory_reservation)),
    ("memory", "memory", set_memory_and_swap),
    # After the swappiness of "no swap" above: an explicit one wins.
    ("memory_swappiness", "memory", file("memory.swappiness", lambda lim: lim.memory_swappiness)),
    ("oom_kill_disable", "memory", file("memory.oom_control", lambda lim: 1)),
    ("kernel_memory", "memory", _deprecated("kernel", "memory.kmem.limit_in_bytes")),
    ("kernel_tcp", "memory", _deprecated("kernelTCP", "memory.kmem.tcp.limit_in_bytes")),
    ("pids", "pids", file("pids.max", lambda lim: limit_or_max(lim.pids))),
    ("devices", "devices", set_devices),
    ("blkio_weight", "blkio", set_blkio_weight),
    ("blkio_leaf_weight", "blkio", set_blkio_leaf_weight),
    ("blkio_weight_device", "blkio", set_blkio_weight_device),
    ("blkio_throttle", "blkio", set_blkio_throttle),
    ("hugepage_limits", "hugetlb", set_hugetlb),
)


def freeze(path: str, frozen: bool, timeout: float = 5.0) -> None:
    """The v1 freezer: FREEZING until every task stopped, then FROZEN; return once it is
    (as runc does). It has no event to wait on: a read is what moves FREEZING on."""
    state_file = os.path.join(path, FREEZE_FILE)
    want = "FROZEN" if frozen else "THAWED"
    deadline = time.monotonic() + timeout
    fs.write(state_file, want)
    attempt = 0
    while fs.read(state_file).strip() != want:
        if time.monotonic() > deadline:
            if frozen:  # not left half-frozen: what did stop goes on again, as runc does
                fs.write(state_file, "THAWED")
                raise CgroupError(f"{state_file}: not {want} after {timeout:g} s (thawed again)")
            raise CgroupError(f"{state_file}: not {want} after {timeout:g} s")
        time.sleep(min(0.0002 * 2**attempt, 0.01))
        attempt += 1
        fs.write(state_file, want)  # runc writes again: a task forked meanwhile may have missed it


def is_frozen(path: str) -> bool:
    return (fs.read_if_exists(os.path.join(path, FREEZE_FILE)) or "").strip() in ("FROZEN", "FREEZING")


FREEZE_FILE = "freezer.state"  # in the freezer hierarchy; its root has none


def oom_kills(path: str) -> int:
    return fs.read_key(os.path.join(path, "memory.oom_control"), "oom_kill") or 0


def cpu_usage_ns(path: str) -> int | None:
    text = fs.read_if_exists(os.path.join(path, "cpuacct.usage"))
    return None if text is None else int(text)


def memory_usage(path: str) -> int | None:
    text = fs.read_if_exists(os.path.join(path, "memory.usage_in_bytes"))
    return None if text is None else int(text)


def memory_peak(path: str) -> int | None:
    text = fs.read_if_exists(os.path.join(path, "memory.max_usage_in_bytes"))
    return None if text is None else int(text)


# What Cgroup reports -> (controller, reader of its directory).
STATS = {"oom_kill_count": ("memory", oom_kills), "cpu_usage_ns": ("cpuacct", cpu_usage_ns),
         "memory_usage": ("memory", memory_usage), "memory_peak": ("memory", memory_peak)}
