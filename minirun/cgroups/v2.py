"""cgroup v2 (unified) knobs: one small function per file, each taking the cgroup dir.

All controllers share one directory per container. Values follow the kernel's
Documentation/admin-guide/cgroup-v2.rst; "max" means unlimited everywhere.
"""

from __future__ import annotations

import os

from ..errors import CgroupError, HostError
from ..spec import Limits
from . import fs

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


def set_cpu_max(path: str, quota: int | None, period: int) -> None:
    fs.write(os.path.join(path, "cpu.max"), f"{'max' if quota is None else quota} {period}")


def set_memory_max(path: str, limit: int) -> None:
    fs.write(os.path.join(path, "memory.max"), limit)


def swap_max(memory: int, memory_swap: int | None) -> str:
    """memory.swap.max from docker's memory+swap total: swap alone, 0 when none was asked."""
    if memory_swap is None:
        return "0"
    if memory_swap == -1:
        return "max"
    return str(memory_swap - memory)


def set_swap_max(path: str, value: str) -> bool:
    """False if the kernel has no swap accounting (no memory.swap.max)."""
    return fs.write(os.path.join(path, "memory.swap.max"), value, missing_ok=True)


def set_pids_max(path: str, limit: int) -> None:
    fs.write(os.path.join(path, "pids.max"), "max" if limit == -1 else limit)


def set_cpuset(path: str, cpus: str | None, mems: str | None = None) -> None:
    if cpus is not None:
        fs.write(os.path.join(path, "cpuset.cpus"), cpus)
    if mems is not None:
        fs.write(os.path.join(path, "cpuset.mems"), mems)
    # Empty mems already means "the parent's"; pinning them keeps v1 and v2 alike.
    elif not fs.read(os.path.join(path, "cpuset.mems")).strip():
        parent_mems = fs.read(os.path.join(os.path.dirname(path), "cpuset.mems.effective")).strip()
        fs.write(os.path.join(path, "cpuset.mems"), parent_mems)


def set_devices(path: str, rules) -> None:
    """No devices files in v2: a BPF program attached to the cgroup checks every open
    and mknod of a device node (see devicefilter.py)."""
    from .devicefilter import program

    attach_device_filter(path, program(rules))


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


def set_cpu_weight(path: str, weight: int) -> None:
    fs.write(os.path.join(path, "cpu.weight"), weight)


def set_memory_low(path: str, limit: int) -> None:
    fs.write(os.path.join(path, "memory.low"), limit)


def apply(controller: str, path: str, limits: Limits, notes: list[str]) -> None:
    """Write the limits of one controller; an unset limit keeps the kernel default (max)."""
    if controller == "cpu" and limits.cpu_shares is not None:
        set_cpu_weight(path, shares_to_weight(limits.cpu_shares))
    if controller == "memory" and limits.memory_reservation is not None:
        set_memory_low(path, limits.memory_reservation)
    if controller == "cpu" and limits.cpu_quota is not None:
        set_cpu_max(path, limits.cpu_quota, limits.cpu_period)
    elif controller == "memory" and limits.memory is not None:
        set_memory_max(path, limits.memory)
        if not set_swap_max(path, swap_max(limits.memory, limits.memory_swap)):
            notes.append("no swap accounting (memory.swap.max absent): swap is not limited")
    elif controller == "pids" and limits.pids is not None:
        set_pids_max(path, limits.pids)
    elif controller == "cpuset" and (limits.cpuset_cpus is not None or limits.cpuset_mems is not None):
        set_cpuset(path, limits.cpuset_cpus, limits.cpuset_mems)
    elif controller == "devices":
        set_devices(path, limits.devices)
    elif controller == "blkio":
        set_io(path, limits)
    elif controller == "hugetlb":
        set_hugetlb(path, limits)
    if controller == "memory":
        notes.extend(ignored_v1_only(limits))


def ignored_v1_only(limits: Limits) -> list[str]:
    """OCI memory fields v2 has no file for: runc ignores them there, and so do we, saying so."""
    fields = (("swappiness", limits.memory_swappiness is not None), ("disableOOMKiller", limits.oom_kill_disable),
              ("kernel", limits.kernel_memory is not None), ("kernelTCP", limits.kernel_tcp is not None))
    return [f"linux.resources.memory.{name} ignored: cgroup v2 has no such setting" for name, asked in fields if asked]


def blkio_to_io_weight(weight: int) -> int:
    """v1 blkio weight [10, 1000] -> v2 io.weight [1, 10000], as runc converts it."""
    return 1 + (max(10, min(weight, 1000)) - 10) * 9999 // 990


def set_io(path: str, limits: Limits) -> None:
    """OCI blockIO on v2, as runc maps it: the weight to io.bfq.weight (BFQ's own scale,
    the same as v1's) where BFQ is there, else converted to io.weight (blk-iocost);
    per-device weights to io.bfq.weight only; throttles to io.max lines. What v2
    cannot express (leaf weights) or this kernel cannot set is an error naming the field."""
    bfq = os.path.join(path, "io.bfq.weight")
    has_bfq = os.path.exists(bfq)
    if limits.blkio_weight is not None:
        written = fs.write(bfq, limits.blkio_weight) if has_bfq else fs.write(
            os.path.join(path, "io.weight"), blkio_to_io_weight(limits.blkio_weight), missing_ok=True)
        if not written:
            raise HostError(f"linux.resources.blockIO.weight {limits.blkio_weight}: this kernel cannot set it "
                            f"(neither io.bfq.weight nor io.weight in {path}: no BFQ, no blk-iocost)")
    if limits.blkio_leaf_weight is not None:
        raise HostError("linux.resources.blockIO.leafWeight: cgroup v2 has no leaf weights")
    for major, minor, weight, leaf in limits.blkio_weight_device:
        if leaf:
            raise HostError("linux.resources.blockIO.weightDevice leafWeight: cgroup v2 has no leaf weights")
        if weight:
            if not has_bfq:
                raise HostError(f"linux.resources.blockIO.weightDevice {major}:{minor} {weight}: this kernel "
                                f"cannot set it (no io.bfq.weight in {path}: no BFQ)")
            fs.write(bfq, f"{major}:{minor} {weight}")
    for kind, major, minor, rate in limits.blkio_throttle:
        fs.write(os.path.join(path, "io.max"), f"{major}:{minor} {kind}={rate or 'max'}")


def set_hugetlb(path: str, limits: Limits) -> None:
    for size, limit in limits.hugepage_limits:
        fs.write(os.path.join(path, f"hugetlb.{size}.max"), limit)


def kill(path: str) -> bool:
    """SIGKILL everything in the cgroup at once (kernel 5.14+); False without cgroup.kill."""
    return fs.write(os.path.join(path, "cgroup.kill"), 1, missing_ok=True)


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
