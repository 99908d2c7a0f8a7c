"""The filesystem a container sees inside its root, as a plan of operations.

Built here as plain data and executed by the C child, in order (csrc/init.c,
csrc/rootpath.c). Every target is a path inside the container: the child
resolves it inside the root, so a symlink or ``..`` in the rootfs can never
send a mount, a mkdir or a device node outside it. It follows the OCI runtime-spec's defaults: a fresh
/proc for the new PID namespace, /sys read-only, /dev as a small tmpfs holding
only the default devices, devpts with its own ptmx, /dev/shm and /dev/mqueue.
"""

from __future__ import annotations

import os
import stat

from ._native import lib
from .record import Record
from .seccomp_filter import kernel_version

# mount(2)'s flags, as <sys/mount.h> has them (through cffi: csrc/ffibuild.py)
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = lib.MS_RDONLY, lib.MS_NOSUID, lib.MS_NODEV, lib.MS_NOEXEC
MS_SYNCHRONOUS, MS_REMOUNT, MS_MANDLOCK, MS_DIRSYNC = lib.MS_SYNCHRONOUS, lib.MS_REMOUNT, lib.MS_MANDLOCK, lib.MS_DIRSYNC
MS_NOATIME, MS_NODIRATIME, MS_BIND, MS_REC = lib.MS_NOATIME, lib.MS_NODIRATIME, lib.MS_BIND, lib.MS_REC
MS_UNBINDABLE, MS_PRIVATE, MS_SLAVE, MS_SHARED = lib.MS_UNBINDABLE, lib.MS_PRIVATE, lib.MS_SLAVE, lib.MS_SHARED
MS_RELATIME, MS_STRICTATIME = lib.MS_RELATIME, lib.MS_STRICTATIME

# Plan operations (enum mr_op_kind in csrc/minirun.h, executed by csrc/rootpath.c).
OP_MOUNT, OP_MKNOD, OP_SYMLINK, OP_MKDIR = lib.MR_OP_MOUNT, lib.MR_OP_MKNOD, lib.MR_OP_SYMLINK, lib.MR_OP_MKDIR
OP_MASK, OP_READONLY = lib.MR_OP_MASK, lib.MR_OP_READONLY  # masked and read-only paths; a missing target is skipped
OP_NODEV = lib.MR_OP_NODEV  # nodev on a mount and every mount under it
OP_WRITE = lib.MR_OP_WRITE  # write data to an existing file (an OCI sysctl)
NODE_KEEP = lib.MR_NODE_KEEP  # flags of OP_MKNOD and OP_SYMLINK: an existing entry stays (else it is replaced)


class Op(Record, frozen=True):
    kind: int
    target: str
    source: str | None = None
    fstype: str | None = None
    flags: int = 0
    data: str | None = None
    mode: int = 0
    major: int = 0
    minor: int = 0
    uid: int = 0  # OP_MKNOD's owner
    gid: int = 0
    source_fd: int = -1  # a bind's source cloned by the parent (syscalls.bind_sources_as_trees)


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


def with_devices(plan: tuple, devices) -> tuple:
    """``plan`` plus the nodes of ``devices`` (--device), made last; a default node that a
    device replaces (``--device /dev/null``) is left out."""
    if not devices:
        return plan
    paths = {d.path for d in devices}
    kept = tuple(op for op in plan if not (op.kind == OP_MKNOD and op.target in paths))
    return kept + node_ops(devices)


def node_ops(devices) -> tuple:
    """Operations that create ``devices`` (devices.Device records) after /dev is mounted."""
    ops = []
    for d in devices:
        parent = os.path.dirname(d.path)
        if parent not in ("/", "/dev"):
            ops.append(Op(OP_MKDIR, parent, mode=0o755))
        kind = stat.S_IFCHR if d.type == "c" else stat.S_IFBLK
        ops.append(Op(OP_MKNOD, d.path, source=d.source or None, mode=kind | d.file_mode, major=d.major,
                      minor=d.minor))
    return tuple(ops)


def nodev_root_ops(rootfs: str, overlay: bool) -> tuple[Op, ...]:
    """Make the container's root and every mount under it (volumes) nodev, so that a
    device node shipped in the rootfs or found in a volume cannot be opened.

    The overlay is a mount already; a plain rootfs directory is bound onto itself first.
    Goes after the volumes and before anything mounted in /dev.
    """
    bind = () if overlay else (Op(OP_MOUNT, "/", source=rootfs, flags=MS_BIND | MS_REC),)
    return bind + (Op(OP_NODEV, "/"),)


_TMPFS_FLAGS = {"nosuid": MS_NOSUID, "nodev": MS_NODEV, "noexec": MS_NOEXEC, "ro": MS_RDONLY}
_TMPFS_UNDO = {"suid": MS_NOSUID, "dev": MS_NODEV, "exec": MS_NOEXEC, "rw": MS_RDONLY}  # later wins, as docker's


VOLATILE = kernel_version() >= (5, 10)  # overlayfs's "volatile" option


def overlay_op(lower: str, upper: str, work: str, volatile: bool = False) -> Op:
    """The copy-on-write root, mounted on the root itself (target ``/``): reads fall
    through to ``lower``, writes land in ``upper``. ``volatile``: for an upper on the host's
    disk that no mount will use again (a detached container's: never restarted, removed by
    `rm`, or by gc once a reboot lost its state), overlayfs syncs nothing (Linux 5.10): as
    the mount goes, it would otherwise sync the whole filesystem of the upper, the host's
    /var/lib, and the exiting container would wait for every tenant's dirty data."""
    for path in (lower, upper, work):
        if any(c in path for c in ",:\\"):
            raise ValueError(f"overlay paths cannot contain ',', ':' or '\\\\': {path}")
    data = f"lowerdir={lower},upperdir={upper},workdir={work}" + (",volatile" if volatile and VOLATILE else "")
    return Op(OP_MOUNT, "/", source="overlay", fstype="overlay", data=data)


def scratch_upper_ops(upper: str, work: str) -> tuple[Op, ...]:
    """For a root whose writes go with the container: a tmpfs of the container's own mount
    namespace under the overlay's ``upper`` and ``work`` (both on the root, where the overlay
    then goes on top). Nothing on the host to make, sync or remove at each run (on a disk,
    ~0.7 ms of directory work and discards here; overlayfs's sync of the whole upper
    filesystem as the mount goes), and nothing of the host's /run for a container to fill:
    its pages are charged to the container's memory cgroup, and the tmpfs is gone with the
    namespace."""
    return (Op(OP_MOUNT, "/", source="tmpfs", fstype="tmpfs", flags=MS_NOSUID | MS_NODEV, data="mode=0700"),
            Op(OP_MKDIR, "/" + os.path.basename(upper), mode=0o755), Op(OP_MKDIR, "/" + os.path.basename(work), mode=0o755))


def user_mount_ops(mounts) -> tuple[tuple[Op, ...], tuple[Op, ...]]:
    """OCI-style mounts -> (before pivot_root, after pivot_root) operations.

    Bind mounts need the host path of their source, so they are made before the
    pivot (their destination still resolved inside the root); tmpfs mounts are
    made inside the new root.
    """
    pre: list[Op] = []
    post: list[Op] = []
    for m in mounts:
        if m.type == "bind":
            # ro applies to every mount under the source too, each keeping its own
            # nosuid/nodev/noexec (mount_setattr in csrc/rootpath.c).
            flags = MS_BIND | MS_REC | (MS_RDONLY if "ro" in m.options else 0)
            pre.append(Op(OP_MOUNT, m.destination, source=m.source, fstype=None, flags=flags))
        elif m.type == "tmpfs":
            flags = 0
            data = ["mode=1777"] if not any(o.startswith("mode=") for o in m.options) else []
            for opt in m.options:
                if opt in _TMPFS_FLAGS:
                    flags |= _TMPFS_FLAGS[opt]
                elif opt in _TMPFS_UNDO:
                    flags &= ~_TMPFS_UNDO[opt]
                elif "=" in opt:
                    data.append(opt)
            post.append(Op(OP_MOUNT, m.destination, source="tmpfs", fstype="tmpfs", flags=flags, data=",".join(data)))
        else:
            raise ValueError(f"unsupported mount type {m.type!r} for {m.destination}")
    return tuple(pre), tuple(post)
