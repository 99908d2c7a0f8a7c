"""config.json -> ContainerSpec + Extras (minirun/oci/bundle.py): pure logic, no containers."""

from __future__ import annotations

import json
import os
import re
import resource
import subprocess

import pytest

from minirun.errors import SpecError
from minirun.oci import bundle as B
from minirun.oci.main import UsageError, parse
from minirun.oci.runtime import parse_signal
from minirun.ids import check_id
from minirun.settings import OCI_CGROUP_PARENT


@pytest.fixture
def config(tmp_path):
    (tmp_path / "rootfs").mkdir()
    subprocess.run(["runc", "spec", "--bundle", str(tmp_path)], check=True)
    return json.loads((tmp_path / "config.json").read_text())


def test_runc_spec_maps_onto_the_spec(config, tmp_path):
    spec, extras = B.to_spec(config, str(tmp_path), "c1")
    assert spec.rootfs == str(tmp_path / "rootfs") and spec.readonly_root
    assert spec.process.args == ["sh"] and spec.hostname == "runc" and not spec.overlay
    assert set(spec.namespaces) == {"pid", "network", "ipc", "uts", "mount"} and spec.network == "none"
    assert spec.process.capabilities == ("CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_AUDIT_WRITE")
    assert spec.process.no_new_privileges and spec.seccomp is None
    assert "/proc/kcore" in spec.masked_paths and "/proc/sys" in spec.readonly_paths
    assert extras.env == config["process"]["env"] and extras.terminal
    assert extras.rlimits == [(7, 1024, 1024)]  # RLIMIT_NOFILE
    assert extras.cgroups_path == f"{OCI_CGROUP_PARENT}/c1"  # minirun-oci, or this session's
    targets = [op.target for op in extras.pre_plan]
    assert targets[:2] == ["/proc", "/dev"]  # container paths, resolved inside the root by csrc/rootpath.c
    assert "/dev/null" in targets  # runc's default devices on the new /dev


def test_rlimit_all_ones_is_unlimited(config, tmp_path):
    """docker's --ulimit core=-1 arrives as the uint64 all-ones: RLIM_INFINITY, as runc applies it."""
    config["process"]["rlimits"] = [{"type": "RLIMIT_CORE", "soft": (1 << 64) - 1, "hard": (1 << 64) - 1}]
    _, extras = B.to_spec(config, str(tmp_path), "c1")
    assert extras.rlimits == [(4, resource.RLIM_INFINITY, resource.RLIM_INFINITY)]


def test_resources_map_to_limits(config, tmp_path):
    config["linux"]["resources"].update(memory={"limit": 64 << 20, "swap": 128 << 20, "reservation": 32 << 20},
                                        cpu={"quota": 50000, "period": 100000, "shares": 512},
                                        pids={"limit": 10})
    spec, _ = B.to_spec(config, str(tmp_path), "c1")
    limits = spec.limits
    assert (limits.memory, limits.memory_swap, limits.memory_reservation) == (64 << 20, 128 << 20, 32 << 20)
    assert (limits.cpu_quota, limits.cpu_period, limits.cpu_shares, limits.pids) == (50000, 100000, 512, 10)


@pytest.mark.parametrize("change, message", [
    (lambda c: c["linux"]["resources"].update(hugepageLimits=[{"pageSize": "3MB", "limit": 1}]),
     "linux.resources.hugepageLimits[0].pageSize '3MB': this host's huge page sizes are"),
    (lambda c: c["linux"]["resources"].update(hugepageLimits=[{"pageSize": "2MB", "limit": -1}]),
     "linux.resources.hugepageLimits[0].limit -1"),
    (lambda c: c["linux"]["resources"].update(blockIO={"weight": 5}), "linux.resources.blockIO.weight 5"),
    (lambda c: c["linux"]["resources"].update(blockIO={"weightDevice": [{"major": 8, "weight": 100}]}),
     "linux.resources.blockIO.weightDevice[0]: needs major and minor"),
    (lambda c: c["linux"]["resources"].update(blockIO={"throttleReadBpsDevice": [{"major": 8, "minor": 0}]}),
     "linux.resources.blockIO.throttleReadBpsDevice[0].rate None"),
    (lambda c: c["linux"]["resources"].update(cpu={"mems": "0-63"}), "linux.resources.cpu.mems value '0-63'"),
    (lambda c: c["linux"]["resources"].update(cpu={"mems": "x"}), "linux.resources.cpu.mems value 'x'"),
    (lambda c: c["linux"]["resources"].update(memory={"swappiness": 101}),
     "linux.resources.memory.swappiness 101: must be between 0 and 100"),
    (lambda c: c["linux"]["resources"].update(memory={"limit": 64 << 20, "swap": 32 << 20}),
     "linux.resources.memory.swap must be at least linux.resources.memory.limit"),
    (lambda c: c["linux"]["resources"].update(memory={"swap": 64 << 20}),
     "linux.resources.memory.swap needs linux.resources.memory.limit"),
    (lambda c: c["linux"]["resources"].update(blockIO={"weightDevice": [{"major": 8, "minor": 0, "weight": 2}]}),
     "linux.resources.blockIO.weightDevice 8:0 weight 2: must be between 10 and 1000"),
    # A rule for all devices with less than rwm: v1 took it as all of rwm, v2's program refused it.
    (lambda c: c["linux"]["resources"].update(devices=[{"allow": True, "type": "a", "access": "r"}]),
     "linux.resources.devices: invalid rule 'a *:* r': a rule for all devices is for rwm"),
    (lambda c: c["linux"].update(intelRdt={"closID": "x"}), "linux.intelRdt"),
    (lambda c: c["linux"]["namespaces"].append({"type": "time"}), "unknown namespace type 'time'"),
    (lambda c: c["linux"]["namespaces"].append({"type": "pid", "path": "/proc/1/ns/pid"}), "listed twice"),
    (lambda c: c["linux"].update(uidMappings=[{"containerID": 0, "hostID": 1000, "size": 1}]), "need a new user"),
    (lambda c: c.update(hooks={"createContainer": [{"path": "true"}]}), "hooks.createContainer[0].path"),
    (lambda c: c.update(hooks={"startContainer": [{"path": "/bin/true", "timeout": 0}]}),
     "hooks.startContainer[0].timeout 0: must be a number of seconds above 0"),
    (lambda c: c.update(hooks={"startContainer": [{"path": "/bin/true", "args": ["true", 1]}]}),
     "hooks.startContainer[0].args: must be a list of strings"),
    (lambda c: c.update(hooks={"postStart": [{"path": "/bin/true"}]}), "hooks.postStart: unknown hook kind"),
    (lambda c: c["process"].update(rlimits=[{"type": "RLIMIT_BOGUS", "soft": 1, "hard": 1}]), "RLIMIT_BOGUS"),
    (lambda c: c["process"].update(rlimits=[{"type": "RLIMIT_CORE", "soft": -2, "hard": 1}]), "RLIMIT_CORE"),
    (lambda c: c["linux"].update(cgroupsPath="system.slice:minirun:x"), "systemd"),
    # else it ran in minirun's own minirun/<id> and recorded "", which delete then left behind
    (lambda c: c["linux"].update(cgroupsPath="/"), "linux.cgroupsPath '/': a hierarchy's root"),
    (lambda c: c["linux"].update(cgroupsPath="//."), "linux.cgroupsPath '//.': a hierarchy's root"),
    (lambda c: c.update(mounts=[{"destination": "/x", "type": "bind", "source": "/no/such"}]), "does not exist"),
    (lambda c: c["process"].update(args=[]), "process.args"),
    (lambda c: c.update(ociVersion="0.9"), "unsupported"),
])
def test_what_cannot_be_honoured_is_an_error_naming_the_field(config, tmp_path, change, message):
    change(config)
    with pytest.raises(SpecError, match=re.escape(message)):
        B.to_spec(config, str(tmp_path), "c1")


def test_v1_memory_fields_map_to_limits_and_never_abort(config, tmp_path):
    """docker's --memory-swappiness, --oom-kill-disable and --kernel-memory: runc applies
    them on v1 (the cgroup drivers say where they are ignored); -1 is docker's "unset"."""
    config["linux"]["resources"]["memory"] = {"limit": 64 << 20, "swappiness": 30, "disableOOMKiller": True,
                                              "kernel": 32 << 20, "kernelTCP": 16 << 20}
    limits = B.to_spec(config, str(tmp_path), "c1")[0].limits
    assert (limits.memory_swappiness, limits.oom_kill_disable, limits.kernel_memory, limits.kernel_tcp) == (
        30, True, 32 << 20, 16 << 20)
    config["linux"]["resources"]["memory"] = {"swappiness": -1}
    limits = B.to_spec(config, str(tmp_path), "c1")[0].limits
    assert (limits.memory_swappiness, limits.oom_kill_disable, limits.kernel_memory) == (None, False, None)


def test_block_io_mems_and_hugepages_map_to_limits(config, tmp_path):
    config["linux"]["resources"].update(
        cpu={"cpus": "0", "mems": "0"}, hugepageLimits=[{"pageSize": "2MB", "limit": 4 << 20}],
        blockIO={"weight": 500, "leafWeight": 300,
                 "weightDevice": [{"major": 8, "minor": 0, "weight": 700}, {"major": 8, "minor": 16}],
                 "throttleReadBpsDevice": [{"major": 254, "minor": 0, "rate": 1 << 20}],
                 "throttleWriteBpsDevice": [{"major": 254, "minor": 0, "rate": 2 << 20}],
                 "throttleReadIOPSDevice": [{"major": 254, "minor": 0, "rate": 100}],
                 "throttleWriteIOPSDevice": [{"major": 254, "minor": 0, "rate": 0}]})
    limits = B.to_spec(config, str(tmp_path), "c1")[0].limits
    assert (limits.cpuset_cpus, limits.cpuset_mems) == ("0", "0")
    assert (limits.blkio_weight, limits.blkio_leaf_weight) == (500, 300)
    assert limits.blkio_weight_device == ((8, 0, 700, 0),)  # an entry with no weight sets nothing
    assert limits.blkio_throttle == (("rbps", 254, 0, 1 << 20), ("wbps", 254, 0, 2 << 20), ("riops", 254, 0, 100),
                                     ("wiops", 254, 0, 0))
    assert limits.hugepage_limits == (("2MB", 4 << 20),)
    assert B._page_size_name(2048) == "2MB" and B._page_size_name(1 << 20) == "1GB" and B._page_size_name(64) == "64KB"


def test_joining_pid_and_mount_namespaces_by_path(config, tmp_path):
    """The paths are checked to be namespaces of their type; the mount namespace the
    runtime runs in (the host's) is refused: the container's root is pivoted in a joined one."""
    net = "/proc/self/ns/net"
    config["linux"]["namespaces"] = [{"type": "pid", "path": "/proc/self/ns/pid"}, {"type": "mount"}]
    spec, extras = B.to_spec(config, str(tmp_path), "c1")
    assert extras.join == {"pid": "/proc/self/ns/pid"} and spec.namespaces == ("mount",)
    for bad, message in (
            ([{"type": "mount", "path": "/proc/self/ns/mnt"}], "is minirun-oci's own mount namespace"),
            ([{"type": "mount"}, {"type": "pid", "path": net}], "not a pid namespace (a network namespace)"),
            ([{"type": "mount", "path": net}], "not a mount namespace"),
            ([{"type": "mount"}, {"type": "pid", "path": "/no/such"}], "/no/such: No such file or directory"),
            ([{"type": "mount"}, {"type": "user", "path": "/proc/self/ns/user"}], "joining a user namespace"),
            ([{"type": "pid"}], "needs a mount namespace, new or joined")):
        config["linux"]["namespaces"] = bad
        with pytest.raises(SpecError, match=re.escape(message)):
            B.to_spec(config, str(tmp_path), "c1")


def test_every_hook_kind_is_taken(config, tmp_path):
    hook = {"path": "/bin/true", "args": ["true"], "env": ["A=b"], "timeout": 3}
    config["hooks"] = {kind: [hook] for kind in B.HOOK_KINDS}
    _, extras = B.to_spec(config, str(tmp_path), "c1")
    assert extras.hooks == config["hooks"]


def test_selinux_label_is_a_warning(config, tmp_path):
    config["process"]["selinuxLabel"] = "system_u:system_r:container_t:s0"
    _, extras = B.to_spec(config, str(tmp_path), "c1")
    assert any("SELinux" in w for w in extras.warnings)


def test_mount_options():
    flags, propagation, data = B._flags(["rbind", "ro", "nosuid", "rprivate", "mode=755", "rw"], "m")
    assert flags == B.MS_BIND | B.MS_REC | B.MS_NOSUID and propagation == B.MS_PRIVATE | B.MS_REC
    assert data == ["mode=755"]


def test_bind_with_flags_is_one_op_on_the_container_path(tmp_path):
    # rootpath.c makes the mount point (a file for a file) and applies the flags to the bound tree
    (tmp_path / "hosts").write_text("x")
    ops = B._bind({"source": "hosts"}, "/etc/hosts", B.MS_BIND | B.MS_RDONLY | B.MS_REMOUNT, str(tmp_path), "mounts[0]")
    assert ops == [B.Op(B.OP_MOUNT, "/etc/hosts", source=str(tmp_path / "hosts"), flags=B.MS_BIND | B.MS_RDONLY)]


def test_cli_parsing_and_signals():
    opts, rest = parse(["--bundle=/b", "-pid-file", "/p", "id"], {"bundle": (True, False), "pid-file": (True, False)})
    assert opts == {"bundle": "/b", "pid-file": "/p"} and rest == ["id"]
    with pytest.raises(UsageError):
        parse(["--nope"], {})
    assert parse_signal("KILL") == parse_signal("SIGKILL") == parse_signal("9") == 9
    with pytest.raises(SpecError):
        parse_signal("SIGNOPE")


def test_update_flags_as_runc_takes_them():
    """`runc update --cpuset-cpus 0 --memory 64m ID`: the flags become the resources object."""
    from minirun.oci.main import VERBS, _update_resources

    opts, rest = parse(["--cpuset-cpus", "0", "--memory=64m", "--memory-swap", "-1", "--pids-limit", "9", "c1"],
                       VERBS["update"])
    assert rest == ["c1"]
    assert _update_resources(opts) == {"cpu": {"cpus": "0"}, "memory": {"limit": 64 << 20, "swap": -1},
                                       "pids": {"limit": 9}}
    with pytest.raises(UsageError, match="--memory"):
        _update_resources({"memory": "lots"})
    with pytest.raises(UsageError, match="--cpu-quota 'x': not a number"):
        _update_resources({"cpu-quota": "x"})


@pytest.mark.parametrize("bad", ["", ".", "..", "a/b", "a b", "é"])
def test_bad_ids(bad):
    with pytest.raises(SpecError, match="invalid container id"):
        check_id(bad, oci=True)
    assert check_id("abc-1.2_3+4", oci=True) == "abc-1.2_3+4"
    assert os.path.join("/r", check_id("x", oci=True)) == "/r/x"


def test_device_rules_as_runc_orders_them():
    from minirun.devices import DEFAULT_RULES, DeviceRule

    rules = B._device_rules([{"allow": False, "access": "rwm"}, {"allow": True, "type": "c", "major": 10,
                             "minor": -1, "access": "r"}], [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}])
    assert rules[0] == DeviceRule(False, "a")
    assert rules[1:3] == (DeviceRule(False, "a", None, None, "rwm"), DeviceRule(True, "c", 10, None, "r"))
    assert rules[3:-1] == DEFAULT_RULES[1:]
    assert rules[-1] == DeviceRule(True, "c", 10, 229, "rwm")
    from minirun.spec import Limits

    bad = Limits(devices=B._device_rules([{"allow": True, "access": "rwx"}], []))
    with pytest.raises(SpecError, match=re.escape("linux.resources.devices: invalid rule 'a *:* rwx'")):
        bad.validate(B.LIMIT_NAMES)


HYBRID_MOUNTINFO = """\
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
34 31 0:31 / /sys/fs/cgroup/freezer rw - cgroup cgroup rw,freezer
36 31 0:33 / /sys/fs/cgroup/devices rw - cgroup cgroup rw,devices
40 31 0:37 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
"""


@pytest.mark.parametrize("cgroupns", [False, True])
def test_cgroup_mount_shows_only_the_containers_own_cgroups(config, tmp_path, monkeypatch, cgroupns):
    """runc's getCgroupMounts: without a cgroup namespace each hierarchy is the container's
    own directory bound in (never the host's root); in one, each is mounted afresh, its
    root the container's cgroup (every hierarchy is joined, freezer and name=systemd too)."""
    from minirun import cgroups

    layout = cgroups.parse_layout(HYBRID_MOUNTINFO, "/nonexistent")  # no cgroup.controllers to read there
    monkeypatch.setattr(cgroups, "detect", lambda: layout)
    if cgroupns:
        config["linux"]["namespaces"].append({"type": "cgroup"})
    extras = B.to_spec(config, str(tmp_path), "c1")[1]
    ops = [op for op in extras.pre_plan if op.target.startswith("/sys/fs/cgroup")]
    assert ops[0].fstype == "tmpfs" and ops[-1].kind == B.OP_READONLY  # runc spec's cgroup mount is ro
    mounts = {op.target: op for op in ops[1:-1]}
    assert sorted(mounts) == ["/sys/fs/cgroup/cpu,cpuacct", "/sys/fs/cgroup/devices", "/sys/fs/cgroup/freezer",
                              "/sys/fs/cgroup/systemd", "/sys/fs/cgroup/unified"]
    for target, op in mounts.items():
        if cgroupns:
            assert op.fstype in ("cgroup", "cgroup2") and op.source == "cgroup"
        else:
            assert op.fstype is None and op.flags & B.MS_BIND
            assert op.source == "/nonexistent" + target + f"/{OCI_CGROUP_PARENT}/c1"  # the container's own directory
    if cgroupns:
        assert mounts["/sys/fs/cgroup/systemd"].data == "name=systemd"
        assert mounts["/sys/fs/cgroup/cpu,cpuacct"].data == "cpu,cpuacct"


def test_unknown_capabilities_are_a_warning_and_skipped(config, tmp_path):
    config["process"]["capabilities"]["bounding"] += ["CAP_NOPE", "CAP_CHOWN"]
    spec, extras = B.to_spec(config, str(tmp_path), "c1")
    assert "CAP_CHOWN" in spec.process.capabilities
    assert extras.warnings == ["ignoring unknown or unavailable capabilities: [CAP_NOPE]"]


def test_dev_plan_as_runc_makes_it(config, tmp_path):
    """Nodes and links kept where something is, /dev/ptmx replaced by the devpts link;
    a bound /dev gets nothing; a device may be anywhere, with an owner."""
    from minirun.mounts import NODE_KEEP, OP_MKNOD, OP_SYMLINK

    config["linux"]["devices"] = [{"path": "/opt/x", "type": "c", "major": 1, "minor": 3, "uid": 7, "gid": 8}]
    plan = B.to_spec(config, str(tmp_path), "c1")[1].pre_plan
    nodes = {op.target: op for op in plan if op.kind in (OP_MKNOD, OP_SYMLINK)}
    assert (nodes["/opt/x"].uid, nodes["/opt/x"].gid, nodes["/opt/x"].flags) == (7, 8, NODE_KEEP)
    assert nodes["/dev/fd"].flags == NODE_KEEP and nodes["/dev/ptmx"].flags == 0
    config["mounts"] = [{"destination": "/dev", "type": "bind", "source": "/dev", "options": ["rbind"]}]
    plan = B.to_spec(config, str(tmp_path), "c1")[1].pre_plan
    assert not [op for op in plan if op.kind in (OP_MKNOD, OP_SYMLINK)]


def test_mount_propagation_goes_after_the_pivot(config, tmp_path):
    config["mounts"].append({"destination": "/m", "type": "tmpfs", "source": "tmpfs", "options": ["runbindable"]})
    _, extras = B.to_spec(config, str(tmp_path), "c1")
    assert [op.flags for op in extras.plan if op.target == "/m"] == [B.MS_UNBINDABLE | B.MS_REC]
    assert [op.target for op in extras.pre_plan].count("/m") == 1  # the tmpfs itself, before it


def test_a_fifo_given_as_a_namespace_path_is_refused_not_waited_on(tmp_path):
    """O_RDONLY on a FIFO blocks until a writer comes: create would hang before the check."""
    import signal

    from minirun.oci.bundle import open_namespace

    fifo = tmp_path / "ns"
    os.mkfifo(fifo)
    signal.alarm(5)  # a hang fails the test instead of the suite
    try:
        with pytest.raises(SpecError, match="not a network namespace \\(not a namespace file\\)"):
            open_namespace("network", str(fifo))
    finally:
        signal.alarm(0)
