"""minirun/sysctl.py: which sysctls and UTS names a container may set (runc's validator
rules), and the /proc/sys writes they become."""

from __future__ import annotations

import os

import pytest

from minirun import sysctl
from minirun.errors import SpecError
from minirun.mounts import OP_WRITE

ALL = ("pid", "network", "ipc", "uts", "mount")


@pytest.mark.parametrize("key, created, error", [
    ("kernel.msgmax", ("network", "uts"), 'sysctl "kernel.msgmax" is not allowed in the hosts ipc namespace'),
    ("kernel.shm_rmid_forced", (), "is not allowed in the hosts ipc namespace"),
    ("fs.mqueue.queues_max", ("uts",), "is not allowed in the hosts ipc namespace"),
    ("fs/mqueue/msg_max", (), "is not allowed in the hosts ipc namespace"),  # the slash form is the same file
    ("net.ipv4.ip_forward", ("ipc",), 'sysctl "net.ipv4.ip_forward" not allowed in host network namespace'),
    ("kernel.core_pattern", ALL, 'sysctl "kernel.core_pattern" is not in a separate kernel namespace'),
    ("kernel.msg_next_id", ALL, "is not in a separate kernel namespace"),  # not in runc's list
    ("vm.overcommit_memory", ALL, "is not in a separate kernel namespace"),
    ("kernel.domainname", ("ipc",), "is not in a separate kernel namespace"),
    ("kernel.hostname", ALL, 'is not allowed as it conflicts with the OCI "hostname" field'),
    ("kernel.hostname", (), "is not in a separate kernel namespace"),
    ("net/../kernel/core_pattern", ALL, "invalid name"),
    ("net..x", ALL, "invalid name"),
])
def test_refused(key, created, error):
    with pytest.raises(SpecError, match=error.replace("(", r"\(")):
        sysctl.check({key: "1"}, "", "", created, {})


@pytest.mark.parametrize("key", ["kernel.msgmax", "kernel.sem", "fs.mqueue.queues_max", "net.ipv4.ip_forward",
                                 "net.core.somaxconn", "kernel.domainname"])
def test_allowed_in_new_namespaces(key):
    sysctl.check({key: "1"}, "h", "d", ALL, {})


def test_joined_namespaces_count_unless_they_are_the_runtimes_own(tmp_path):
    own = {"network": "/proc/self/ns/net", "ipc": f"/proc/{os.getpid()}/ns/ipc", "uts": "/proc/self/ns/uts"}
    with pytest.raises(SpecError, match="not allowed in host network namespace"):
        sysctl.check({"net.ipv4.ip_forward": "1"}, "", "", (), own)
    with pytest.raises(SpecError, match="hosts ipc namespace"):
        sysctl.check({"kernel.sem": "1"}, "", "", (), own)
    with pytest.raises(SpecError, match="unable to set hostname without a private UTS namespace"):
        sysctl.check({}, "h", "", (), own)
    other = {kind: str(tmp_path / kind) for kind in own}  # any other file: not this process's namespace
    for path in other.values():
        open(path, "w").close()
    sysctl.check({"net.ipv4.ip_forward": "1", "kernel.sem": "1"}, "h", "d", (), other)
    with pytest.raises(SpecError, match="no/such: No such file"):
        sysctl.check({"kernel.sem": "1"}, "", "", (), {"ipc": "/no/such"})


@pytest.mark.parametrize("field", ["hostname", "domainname"])
def test_uts_names_need_a_uts_namespace(field):
    names = {"hostname": "", "domainname": "", field: "x"}
    with pytest.raises(SpecError, match=f"unable to set {field} without a private UTS namespace"):
        sysctl.check({}, names["hostname"], names["domainname"], ("ipc", "network"), {})
    sysctl.check({}, names["hostname"], names["domainname"], ("uts",), {})


def test_ops_write_proc_sys_and_parse_takes_key_value():
    assert [(op.kind, op.target, op.data) for op in sysctl.ops({"net.ipv4.ip_forward": 1})] == [
        (OP_WRITE, "/proc/sys/net/ipv4/ip_forward", "1")]
    assert sysctl.parse(["net.ipv4.ping_group_range=0 1", "kernel.sem=1=2"]) == {
        "net.ipv4.ping_group_range": "0 1", "kernel.sem": "1=2"}
    with pytest.raises(SpecError, match="invalid --sysctl value 'x': use KEY=VALUE"):
        sysctl.parse(["x"])
