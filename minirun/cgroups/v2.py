"""cgroup v2 (unified): the setter table (SETTERS), the freezer, kill, the counters.

All controllers share one directory per container. Values follow the kernel's
Documentation/admin-guide/cgroup-v2.rst; "max" means unlimited everywhere.
"""

from __future__ import annotations

import os
import time

from ..errors import CgroupError, HostError
from ..spec import Limits
from . import fs
from .knobs import file, limit_or_max

# The v2 controllers minirun enables in its parent (by their v1 names, as everywhere in
# minirun.cgroups; NAME maps the one that differs); cpuacct has no v2 controller:
# usage is in cpu.stat, which every v2 cgroup has.
CONTROLLERS = ("cpu", "cpuset", "memory", "pids", "blkio", "hugetlb")
NAME = {"blkio": "io"}


def enable_controllers(parent: str, controllers: set[str] | frozenset[str]) -> None:
    """Let the children of ``parent`` use ``controllers`` (only ever minirun's own parent).

    Only missing ones are written: an existing parent usually has them all already,
    so the common case costs one read. The parent never holds a process, which is
    what the "no internal processes" rule requires of a cgroup with controllers on.
    """
    path = os.path.join(parent, "cgroup.subtree_control")
    missing = set(controllers) - set(fs.read(path).split())
    if missing:
        fs.write(path, " ".join(f"+{c}" for c in sorted(missing)))


def swap_max(memory: int, memory_swap: int | None) -> str:
    """memory.swap.max from docker's memory+swap total: swap alone, 0 when none was asked."""
    if memory_swap is None:
        return "0"
    if memory_swap == -1:
        return "max"
    return str(memory_swap - memory)


def set_swap_max(path: str, limits: Limits, notes: list[str]) -> None:
    if not fs.write(os.path.join(path, "memory.swap.max"), swap_max(limits.memory, limits.memory_swap),
                    missing_ok=True):
        notes.append("no swap accounting (memory.swap.max absent): swap is not limited")


def set_cpuset_cpus(path: str, limits: Limits, notes: list[str]) -> None:
    fs.write(os.path.join(path, "cpuset.cpus"), limits.cpuset_cpus)
    # Empty mems already means "the parent's"; pinning them keeps v1 and v2 alike.
    if limits.cpuset_mems is None and not fs.read(os.path.join(path, "cpuset.mems")).strip():
        parent_mems = fs.read(os.path.join(os.path.dirname(path), "cpuset.mems.effective")).strip()
        fs.write(os.path.join(path, "cpuset.mems"), parent_mems)


def set_devices(path: str, limits: Limits, notes: list[str]) -> None:
    """No devices files in v2: a BPF program attached to the cgroup checks every open
    and mknod of a device node (see devicefilter.py)."""
    from .devicefilter import program

    attach_device_filter(path, program(limits.devices))


def attach_device_filter(path: str, prog: bytes) -> None:
    from .. import syscalls  # the C extension, only where a v2 cgroup is made

    fd = fs.open_read_dir(path)
    try:
        syscalls.attach_device_filter(prog, fd)
    except syscalls.NativeError as err:
        raise CgroupError(f"{err.step} on {path}: {err.strerror}") from err
    finally:
        os.close(fd)


def shares_to_weight(shares: int) -> int:
    """v1 cpu.shares [2, 262144] -> v2 cpu.weight [1, 10000], as runc converts it."""
    return 1 + ((max(2, min(shares, 262144)) - 2) * 9999) // 262142


def v1_only(field: str):
    """An OCI memory field v2 has no file for: runc ignores it there, and so do we, saying so."""

    def setter(path: str, limits: Limits, notes: list[str]) -> None:
        notes.append(f"linux.resources.memory.{field} ignored: cgroup v2 has no such setting")

    return setter


def blkio_to_io_weight(weight: int) -> int:
    """v1 blkio weight [10, 1000] -> v2 io.weight [1, 10000], as runc converts it."""
    return 1 + (max(10, min(weight, 1000)) - 10) * 9999 // 990


# OCI blockIO on v2, as runc maps it: the weight to io.bfq.weight (BFQ's own scale, the
# same as v1's) where BFQ is there, else converted to io.weight (blk-iocost); per-device
# weights to io.bfq.weight only; throttles to io.max lines. What v2 cannot express (leaf
# weights) or this kernel cannot set is an error naming the field.

def set_io_weight(path: str, limits: Limits, notes: list[str]) -> None:
    bfq = os.path.join(path, "io.bfq.weight")
    written = fs.write(bfq, limits.blkio_weight) if os.path.exists(bfq) else fs.write(
        os.path.join(path, "io.weight"), blkio_to_io_weight(limits.blkio_weight), missing_ok=True)
    if not written:
        raise HostError(f"linux.resources.blockIO.weight {limits.blkio_weight}: this kernel cannot set it "
                        f"(neither io.bfq.weight nor io.weight in {path}: no BFQ, no blk-iocost)")


def no_leaf_weight(path: str, limits: Limits, notes: list[str]) -> None:
    raise HostError("linux.resources.blockIO.leafWeight: cgroup v2 has no leaf weights")


def set_io_weight_device(path: str, limits: Limits, notes: list[str]) -> None:
    bfq = os.path.join(path, "io.bfq.weight")
    for major, minor, weight, leaf in limits.blkio_weight_device:
        if leaf:
            raise HostError("linux.resources.blockIO.weightDevice leafWeight: cgroup v2 has no leaf weights")
        if weight:
            if not os.path.exists(bfq):
                raise HostError(f"linux.resources.blockIO.weightDevice {major}:{minor} {weight}: this kernel "
                                f"cannot set it (no io.bfq.weight in {path}: no BFQ)")
            fs.write(bfq, f"{major}:{minor} {weight}")


def set_io_max(path: str, limits: Limits, notes: list[str]) -> None:
    for kind, major, minor, rate in limits.blkio_throttle:
        fs.write(os.path.join(path, "io.max"), f"{major}:{minor} {kind}={rate or 'max'}")


def set_hugetlb(path: str, limits: Limits, notes: list[str]) -> None:
    for size, limit in limits.hugepage_limits:
        fs.write(os.path.join(path, f"hugetlb.{size}.max"), limit)


# Limits field -> how v2 writes it, in the order written (knobs.py). An unset field
# keeps the kernel's default (max).
SETTERS = (
    ("cpu_shares", "cpu", file("cpu.weight", lambda lim: shares_to_weight(lim.cpu_shares))),
    ("cpu_quota", "cpu", file("cpu.max", lambda lim: f"{lim.cpu_quota} {lim.cpu_period}")),
    ("cpuset_cpus", "cpuset", set_cpuset_cpus),
    ("cpuset_mems", "cpuset", file("cpuset.mems", lambda lim: lim.cpuset_mems)),
    ("memory_reservation", "memory", file("memory.low", lambda lim: lim.memory_reservation)),
    ("memory", "memory", file("memory.max", lambda lim: lim.memory)),
    ("memory", "memory", set_swap_max),
    ("memory_swappiness", "memory", v1_only("swappiness")),
    ("oom_kill_disable", "memory", v1_only("disableOOMKiller")),
    ("kernel_memory", "memory", v1_only("kernel")),
    ("kernel_tcp", "memory", v1_only("kernelTCP")),
    ("pids", "pids", file("pids.max", lambda lim: limit_or_max(lim.pids))),
    ("devices", "devices", set_devices),
    ("blkio_weight", "blkio", set_io_weight),
    ("blkio_leaf_weight", "blkio", no_leaf_weight),
    ("blkio_weight_device", "blkio", set_io_weight_device),
    ("blkio_throttle", "blkio", set_io_max),
    ("hugepage_limits", "hugetlb", set_hugetlb),
)


FREEZE_FILE = "cgroup.freeze"  # kernel 5.2+; the root has none
FREEZE_TIMEOUT_S = 5.0


def freeze(path: str, frozen: bool, timeout: float = FREEZE_TIMEOUT_S) -> None:
    """Freeze or thaw, and return once the kernel says every task has (cgroup.events
    "frozen", which wakes poll() when it changes), as runc waits."""
    import select

    events = os.path.join(path, "cgroup.events")
    try:
        fd = os.open(events, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as err:
        raise CgroupError(f"open {events}: {err.strerror}") from err
    try:
        fs.write(os.path.join(path, FREEZE_FILE), 1 if frozen else 0)
        poller = select.poll()
        poller.register(fd, select.POLLPRI)
        deadline = time.monotonic() + timeout
        while True:
            os.lseek(fd, 0, os.SEEK_SET)
            if fs.parse_key(os.read(fd, 4096).decode(), "frozen") == int(frozen):
                return
            left = deadline - time.monotonic()
            if left <= 0:
                if frozen:  # not left half-frozen: what did stop goes on again, as runc does
                    fs.write(os.path.join(path, FREEZE_FILE), 0)
                    raise CgroupError(f"{events}: still not frozen after {timeout:g} s (thawed again)")
                raise CgroupError(f"{events}: still frozen after {timeout:g} s")
            poller.poll(left * 1000)  # a read re-arms it: kernfs wakes a poller after each change
    finally:
        os.close(fd)


def is_frozen(path: str) -> bool:
    """Asked to freeze (cgroup.events says when every task has stopped)."""
    return (fs.read_if_exists(os.path.join(path, FREEZE_FILE)) or "").strip() == "1"


def oom_kills(path: str) -> int:
    # "oom_kill", not "oom": "oom" counts limit hits, some of which reclaim resolved.
    return fs.read_key(os.path.join(path, "memory.events"), "oom_kill") or 0


def cpu_usage_ns(path: str) -> int | None:
    usec = fs.read_key(os.path.join(path, "cpu.stat"), "usage_usec")
    return None if usec is None else usec * 1000


def memory_usage(path: str) -> int | None:
    text = fs.read_if_exists(os.path.join(path, "memory.current"))
    return None if text is None else int(text)


def memory_peak(path: str) -> int | None:
    text = fs.read_if_exists(os.path.join(path, "memory.peak"))  # kernel 5.19+
    return None if text is None else int(text)


# What Cgroup reports -> (controller, reader of its directory).
STATS = {"oom_kill_count": ("memory", oom_kills), "cpu_usage_ns": ("cpuacct", cpu_usage_ns),
         "memory_usage": ("memory", memory_usage), "memory_peak": ("memory", memory_peak)}
