"""Which device nodes a container may use: the devices cgroup's rules and `--device`.

Two OCI fields, two records:

    DeviceRule  <- linux.resources.devices[]  (allow, type a|c|b, major, minor, access rwm);
                   enforced by the devices cgroup: v1 devices.deny/devices.allow
                   (cgroups/v1.py), v2 a BPF program (cgroups/devicefilter.py)
    Device      <- linux.devices[]            (path, type, major, minor, fileMode): a node
                   made in the container's /dev (or wherever ``path`` says)

The default rules are runc's and crun's: deny everything, then allow mknod of any
node (opening it is what matters, and the seccomp profile refuses mknod anyway) and
the OCI default devices. A rule list is read as the kernel's v1 controller reads
writes to devices.allow/deny in order: the last rule that matches decides.
"""

from __future__ import annotations

import os
import stat

from .errors import SpecError
from .record import Record

ACCESS = "rwm"


class DeviceRule(Record, frozen=True):
    """One devices cgroup rule; ``None`` as major or minor is the wildcard ``*``."""

    allow: bool
    type: str = "a"  # a (all), c (char), b (block)
    major: int | None = None
    minor: int | None = None
    access: str = ACCESS

    def v1_line(self) -> str:
        """As written to devices.allow / devices.deny, e.g. ``c 1:3 rwm``, ``a *:* rwm``."""
        major = "*" if self.major is None else self.major
        minor = "*" if self.minor is None else self.minor
        return f"{self.type} {major}:{minor} {self.access}"


class Device(Record, frozen=True):
    """A device node to create in the container, copied from the host node ``source``."""

    path: str  # inside the container
    type: str  # c or b
    major: int
    minor: int
    file_mode: int = 0o666
    source: str = ""  # the host's node: what a container in a user namespace binds instead


def _char(major: int, minor: int | None) -> DeviceRule:
    return DeviceRule(True, "c", major, minor, ACCESS)


# runc's and crun's defaults (runc libcontainer/specconv AllowedDevices, without tun).
DEFAULT_RULES = (
    DeviceRule(False, "a"),                      # deny all, then:
    DeviceRule(True, "c", None, None, "m"),      # mknod of any node: open is what is checked
    DeviceRule(True, "b", None, None, "m"),
    _char(1, 3),     # /dev/null
    _char(1, 5),     # /dev/zero
    _char(1, 7),     # /dev/full
    _char(1, 8),     # /dev/random
    _char(1, 9),     # /dev/urandom
    _char(5, 0),     # /dev/tty
    _char(5, 2),     # /dev/ptmx (devpts' own ptmx, linked from /dev/ptmx)
    _char(136, None),  # /dev/pts/*
)
ALLOW_ALL = (DeviceRule(True, "a"),)  # --privileged


def parse_device(text: str) -> tuple[Device, DeviceRule]:
    """``--device HOST[:CTR][:rwm]`` (docker's) -> (the node to create, the rule that allows it).

    As docker splits it: with two fields the second is the permissions if it reads as
    such, else CTR; CTR defaults to HOST. HOST must be a character or block device node.
    """
    parts = str(text).split(":")
    if len(parts) == 3:
        host, ctr, access = parts
        if not _is_access(access):
            raise SpecError(f"invalid --device value {text!r}: bad permissions {access!r}: use r, w and m")
    elif len(parts) == 2:
        host, ctr, access = (parts[0], "", parts[1]) if _is_access(parts[1]) else (parts[0], parts[1], ACCESS)
    elif len(parts) == 1:
        host, ctr, access = parts[0], "", ACCESS
    else:
        raise SpecError(f"invalid --device value {text!r}: use HOSTPATH[:CONTAINERPATH][:PERMISSIONS]")
    ctr = ctr or host
    for path in (host, ctr):
        if not path.startswith("/") or path == "/" or ".." in path.split("/"):
            raise SpecError(f"invalid --device value {text!r}: {path!r} is not an absolute path other than /, "
                            "without '..'")
    try:
        st = os.stat(host)
    except OSError as err:
        raise SpecError(f"invalid --device value {text!r}: {host}: {err.strerror}") from None
    if stat.S_ISCHR(st.st_mode):
        kind = "c"
    elif stat.S_ISBLK(st.st_mode):
        kind = "b"
    else:
        raise SpecError(f"invalid --device value {text!r}: {host} is not a device node")
    major, minor = os.major(st.st_rdev), os.minor(st.st_rdev)
    node = Device(os.path.normpath(ctr), kind, major, minor, stat.S_IMODE(st.st_mode), source=host)
    return node, DeviceRule(True, kind, major, minor, access)


def _is_access(text: str) -> bool:
    """docker's validDeviceMode: one to three of r, w, m, each at most once."""
    return 0 < len(text) <= 3 and set(text) <= set(ACCESS) and len(set(text)) == len(text)


def dev_mounts_needed(devices, rules) -> bool:
    """False (mount the root, overlay and volumes nodev) unless the container is given
    devices beyond the defaults: a --device, or rules other than the default ones."""
    return bool(devices) or tuple(rules) != DEFAULT_RULES
