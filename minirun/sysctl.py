"""Kernel parameters and UTS names a container may set: only those of a namespace it
does not share with the host. Checked once, for `minirun run --sysctl`/`--hostname` and
for config.json's linux.sysctl/hostname/domainname, before anything exists.

runc's rules (libcontainer/configs/validate/validator.go, ``sysctl`` and ``hostname``):

    kernel.msgmax msgmnb msgmni sem shmall shmmax shmmni shm_rmid_forced, fs.mqueue.*
                                        need an ipc namespace of the container's own
    net.*                               need a network namespace that is not the runtime's
    kernel.domainname                   needs a uts namespace
    kernel.hostname                     refused: the OCI "hostname" field sets it
    anything else                       refused: it is the host's (kernel.core_pattern ...)
    hostname, domainname                need a uts namespace

A namespace joined by path counts as the container's own unless it is the runtime's
(the host's): runc checks that for net; here for ipc and uts as well, since joining
/proc/1/ns/ipc by path would otherwise write the host's values just the same.
"""

from __future__ import annotations

import os

from .errors import SpecError
from .mounts import OP_WRITE, Op

# runc 1.1's list of the ipc-namespaced ones under kernel.
IPC_SYSCTLS = frozenset({"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
                         "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced"})
_NS_FILE = {"ipc": "ipc", "network": "net", "uts": "uts"}


def check(sysctl: dict[str, str], hostname: str, domainname: str, created, joined: dict[str, str]) -> None:
    """Raise SpecError, in runc's words, for a setting that would reach the host.

    ``created``: the namespaces (OCI names) the container gets new; ``joined``: type ->
    path of those it joins."""
    private = {kind: _private(kind, created, joined) for kind in _NS_FILE}
    for key in sysctl:
        name = _name(key)
        if name in IPC_SYSCTLS or name.startswith("fs.mqueue."):
            if not private["ipc"]:
                raise SpecError(f'sysctl "{key}" is not allowed in the hosts ipc namespace')
        elif name.startswith("net."):
            if not private["network"]:
                raise SpecError(f'sysctl "{key}" not allowed in host network namespace')
        elif name == "kernel.hostname" and private["uts"]:
            raise SpecError(f'sysctl "{key}" is not allowed as it conflicts with the OCI "hostname" field')
        elif not (name == "kernel.domainname" and private["uts"]):
            raise SpecError(f'sysctl "{key}" is not in a separate kernel namespace')
    for field, value in (("hostname", hostname), ("domainname", domainname)):
        if value and not private["uts"]:
            raise SpecError(f"unable to set {field} without a private UTS namespace")


def ops(sysctl: dict[str, str]) -> tuple[Op, ...]:
    """Writes to /proc/sys, made after pivot_root in the container's namespaces (a
    /proc/sys/net file is the network namespace's of whoever opens it)."""
    return tuple(Op(OP_WRITE, "/proc/sys/" + key.replace(".", "/"), data=str(value)) for key, value in sysctl.items())


def parse(items) -> dict[str, str]:
    """``--sysctl KEY=VALUE`` (repeatable), docker's syntax."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SpecError(f"invalid --sysctl value {item!r}: use KEY=VALUE, e.g. net.ipv4.ip_forward=1")
        out[key.strip()] = value
    return out


def _name(key: str) -> str:
    """The dotted name of ``key`` (runc writes /proc/sys/ + key with dots as slashes)."""
    parts = key.replace(".", "/").split("/")
    if not all(p and p not in (".", "..") for p in parts):
        raise SpecError(f"sysctl {key!r}: invalid name")
    return ".".join(parts)


def _private(kind: str, created, joined: dict[str, str]) -> bool:
    if kind in created:
        return True
    path = joined.get(kind)
    if path is None:
        return False
    try:
        given, own = os.stat(path), os.stat(f"/proc/self/ns/{_NS_FILE[kind]}")
    except OSError as err:
        raise SpecError(f"linux.namespaces: {kind} namespace path {path}: {err.strerror}") from None
    return (given.st_dev, given.st_ino) != (own.st_dev, own.st_ino)
