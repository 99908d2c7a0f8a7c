"""cgroup v1 (legacy) knobs: one small function per file, each taking the cgroup dir.

Each controller lives in its own hierarchy (or shares one, like ``cpu,cpuacct``), so
every function gets the directory of that controller's hierarchy. "-1" means unlimited.
"""

from __future__ import annotations

import errno
import os

from ..errors import CgroupError, HostError
from ..spec import Limits
from . import fs


def set_cpu(path: str, quota: int, period: int) -> None:
    # Period first: the quota is checked against the period in force.
    fs.write(os.path.join(path, "cpu.cfs_period_us"), period)
    fs.write(os.path.join(path, "cpu.cfs_quota_us"), quota)


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


def set_swappiness(path: str, value: int) -> None:
    fs.write(os.path.join(path, "memory.swappiness"), value, missing_ok=True)


def set_pids(path: str, limit: int) -> None:
    fs.write(os.path.join(path, "pids.max"), "max" if limit == -1 else limit)


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


def set_cpuset(path: str, cpus: str | None, mems: str | None) -> None:
    if cpus is not None:
        fs.write(os.path.join(path, "cpuset.cpus"), cpus)
    if mems is not None:
        fs.write(os.path.join(path, "cpuset.mems"), mems)


def _blkio_missing(path: str, field: str, value, files: str) -> HostError:
    return HostError(f"linux.resources.blockIO.{field} {value}: this kernel cannot set it ({files} missing in "
                     f"{path}: no CFQ or BFQ I/O scheduler)")


def set_blkio(path: str, limits: Limits) -> None:
    """OCI blockIO as runc writes it: BFQ's weight files where they exist, else CFQ's;
    one line per device to the throttle files. A weight nothing can set is an error
    naming the field: kernels since 5.0 have no CFQ, and BFQ may not be built."""
    bfq = os.path.exists(os.path.join(path, "blkio.bfq.weight"))
    weight = "blkio.bfq.weight" if bfq else "blkio.weight"
    weight_device = "blkio.bfq.weight_device" if bfq else "blkio.weight_device"
    if limits.blkio_weight is not None:
        if not fs.write(os.path.join(path, weight), limits.blkio_weight, missing_ok=True):
            raise _blkio_missing(path, "weight", limits.blkio_weight, "blkio.weight and blkio.bfq.weight")
    if limits.blkio_leaf_weight is not None:
        if not fs.write(os.path.join(path, "blkio.leaf_weight"), limits.blkio_leaf_weight, missing_ok=True):
            raise _blkio_missing(path, "leafWeight", limits.blkio_leaf_weight, "blkio.leaf_weight (CFQ only)")
    for major, minor, dev_weight, leaf in limits.blkio_weight_device:
        if dev_weight and not fs.write(os.path.join(path, weight_device), f"{major}:{minor} {dev_weight}",
                                       missing_ok=True):
            raise _blkio_missing(path, "weightDevice", f"{major}:{minor} {dev_weight}", weight_device)
        if leaf and not fs.write(os.path.join(path, "blkio.leaf_weight_device"), f"{major}:{minor} {leaf}",
                                 missing_ok=True):
            raise _blkio_missing(path, "weightDevice leafWeight", f"{major}:{minor} {leaf}",
                                 "blkio.leaf_weight_device (CFQ only)")
    for kind, major, minor, rate in limits.blkio_throttle:
        fs.write(os.path.join(path, THROTTLE_FILES[kind]), f"{major}:{minor} {rate}")


THROTTLE_FILES = {"rbps": "blkio.throttle.read_bps_device", "wbps": "blkio.throttle.write_bps_device",
                  "riops": "blkio.throttle.read_iops_device", "wiops": "blkio.throttle.write_iops_device"}


def set_hugetlb(path: str, limits: Limits) -> None:
    for size, limit in limits.hugepage_limits:
        fs.write(os.path.join(path, f"hugetlb.{size}.limit_in_bytes"), limit)


def set_devices(path: str, rules) -> None:
    """The device rules, one write each, in order (the kernel applies each at once).

    A new cgroup starts with its parent's list (everything, under minirun's parent),
    so the list must begin with a type "a" rule: "a" to devices.deny empties it.
    """
    if not rules or rules[0].type != "a":
        raise ValueError("device rules must start with a rule for all devices")
    for rule in rules:
        fs.write(os.path.join(path, "devices.allow" if rule.allow else "devices.deny"), rule.v1_line())


def set_cpu_shares(path: str, shares: int) -> None:
    fs.write(os.path.join(path, "cpu.shares"), shares)


def set_memory_reservation(path: str, limit: int) -> None:
    fs.write(os.path.join(path, "memory.soft_limit_in_bytes"), limit)


def apply(controller: str, path: str, limits: Limits, notes: list[str]) -> None:
    """Write the limits of one controller; an unset limit keeps the kernel default (-1)."""
    if controller == "cpu" and limits.cpu_shares is not None:
        set_cpu_shares(path, limits.cpu_shares)
    if controller == "memory" and limits.memory_reservation is not None:
        set_memory_reservation(path, limits.memory_reservation)
    if controller == "cpu" and limits.cpu_quota is not None:
        set_cpu(path, limits.cpu_quota, limits.cpu_period)
    elif controller == "memory" and limits.memory is not None:
        memsw = memsw_limit(limits.memory, limits.memory_swap)
        if not set_memory(path, limits.memory, memsw):
            notes.append("no swap accounting (memory.memsw.* absent): swap is not limited")
        if memsw == limits.memory:
            set_swappiness(path, 0)  # no swap allowed: do not even try reclaiming to swap
    elif controller == "pids" and limits.pids is not None:
        set_pids(path, limits.pids)
    elif controller == "cpuset":  # filled from the parent when made (Cgroup._make): only what is asked
        set_cpuset(path, limits.cpuset_cpus, limits.cpuset_mems)
    elif controller == "devices":
        set_devices(path, limits.devices)
    elif controller == "blkio":
        set_blkio(path, limits)
    elif controller == "hugetlb":
        set_hugetlb(path, limits)
    if controller == "memory":  # after the swappiness set above for "no swap": an explicit one wins
        set_memory_extras(path, limits, notes)


def set_memory_extras(path: str, limits: Limits, notes: list[str]) -> None:
    """OCI memory fields that only v1 has, written as runc writes them. Kernel memory
    limits are deprecated by the kernel (the file is gone in some builds, writes are
    refused with EOPNOTSUPP by others): where it cannot take one, it is ignored with a note."""
    if limits.memory_swappiness is not None:
        fs.write(os.path.join(path, "memory.swappiness"), limits.memory_swappiness)
    if limits.oom_kill_disable:
        fs.write(os.path.join(path, "memory.oom_control"), 1)
    for field, value, name in (("kernel", limits.kernel_memory, "memory.kmem.limit_in_bytes"),
                               ("kernelTCP", limits.kernel_tcp, "memory.kmem.tcp.limit_in_bytes")):
        if value is not None and not _write_if_supported(os.path.join(path, name), value):
            notes.append(f"linux.resources.memory.{field} ignored: this kernel has no {name}")


def _write_if_supported(path: str, value: int) -> bool:
    try:
        return fs.write(path, value, missing_ok=True)
    except CgroupError as err:
        if getattr(err.__cause__, "errno", None) in (errno.EOPNOTSUPP, errno.ENOTSUP):
            return False
        raise


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
