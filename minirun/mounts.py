"""The filesystem a container sees inside its root, as a plan of operations.

Built here as plain data and executed by the C child after pivot_root (see
csrc/init.c), in order. It follows the OCI runtime-spec's defaults: a fresh
/proc for the new PID namespace, /sys read-only, /dev as a small tmpfs holding
only the default devices, devpts with its own ptmx, /dev/shm and /dev/mqueue.
"""

from __future__ import annotations

import stat
from dataclasses import dataclass

# Values match <sys/mount.h>; checked against the compiled module in tests.
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_REC = 0x4000
MS_STRICTATIME = 0x1000000

OP_MOUNT, OP_MKNOD, OP_SYMLINK, OP_MKDIR = 1, 2, 3, 4


@dataclass(frozen=True)
class Op:
    kind: int
    target: str
    source: str | None = None
    fstype: str | None = None
    flags: int = 0
    data: str | None = None
    mode: int = 0
    major: int = 0
    minor: int = 0


# The OCI default devices: (name, major, minor).
DEFAULT_DEVICES = (
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
)

DEV_LINKS = (
    ("/proc/self/fd", "/dev/fd"),
    ("/proc/self/fd/0", "/dev/stdin"),
    ("/proc/self/fd/1", "/dev/stdout"),
    ("/proc/self/fd/2", "/dev/stderr"),
    ("pts/ptmx", "/dev/ptmx"),
)


def _mount(target: str, fstype: str, flags: int, data: str | None = None, source: str | None = None) -> Op:
    return Op(OP_MOUNT, target, source=source or fstype, fstype=fstype, flags=flags, data=data)


def default_plan() -> tuple[Op, ...]:
    """The mounts, device nodes and links every container gets, in order."""
    secure = MS_NOSUID | MS_NODEV | MS_NOEXEC
    plan = [
        _mount("/proc", "proc", secure),
        _mount("/sys", "sysfs", secure | MS_RDONLY),
        _mount("/dev", "tmpfs", MS_NOSUID | MS_STRICTATIME, "mode=755,size=65536k"),
    ]
    plan += [Op(OP_MKNOD, f"/dev/{name}", mode=stat.S_IFCHR | 0o666, major=major, minor=minor)
             for name, major, minor in DEFAULT_DEVICES]
    plan += [
        _mount("/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620"),
        _mount("/dev/shm", "tmpfs", secure, "mode=1777,size=65536k", source="shm"),
        _mount("/dev/mqueue", "mqueue", secure),
    ]
    plan += [Op(OP_SYMLINK, link, source=to) for to, link in DEV_LINKS]
    return tuple(plan)


DEFAULT_PLAN = default_plan()
