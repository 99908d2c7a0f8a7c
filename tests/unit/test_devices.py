"""Device rules -> the v2 BPF program and the v1 lines, `--device` parsing, the mount plan (no root)."""

from __future__ import annotations

import itertools
import os
import stat
import struct

import pytest

from minirun.cgroups import devicefilter
from minirun.cgroups.devicefilter import evaluate, program
from minirun.container import _root_and_plans
from minirun.devices import ALLOW_ALL, DEFAULT_RULES, Device, DeviceRule, dev_mounts_needed, parse_device
from minirun.errors import SpecError
from minirun.mounts import DEFAULT_PLAN, MS_BIND, MS_NODEV, MS_REC, OP_MKDIR, OP_MKNOD, OP_MOUNT, OP_NODEV, Op, with_devices
from minirun.spec import ContainerSpec, Limits, Process

ACCESSES = ["".join(c) for n in (1, 2, 3) for c in itertools.combinations("rwm", n)]


def last_match(rules, dev_type: str, major: int, minor: int, access: str) -> bool:
    """The reference: the v1 controller's reading, the last rule that covers the access decides."""
    verdict = False
    for r in rules:
        if r.type != "a" and (r.type != dev_type or r.major not in (None, major) or r.minor not in (None, minor)):
            continue
        if set(access) <= set(r.access):
            verdict = r.allow
        elif not r.allow and set(access) & set(r.access):
            verdict = False  # a deny of part of what is asked refuses the whole access
    return verdict


# (type, major, minor, access) -> allowed, for the default rules
DEFAULT_CASES = [
    (("c", 1, 3, "rw"), True),  # null
    (("c", 1, 5, "r"), True),  # zero
    (("c", 1, 7, "w"), True),  # full
    (("c", 1, 8, "r"), True),  # random
    (("c", 1, 9, "r"), True),  # urandom
    (("c", 5, 0, "rw"), True),  # tty
    (("c", 5, 2, "rw"), True),  # ptmx
    (("c", 136, 7, "rw"), True),  # /dev/pts/7
    (("c", 1, 11, "w"), False),  # kmsg
    (("c", 1, 11, "m"), True),  # mknod is allowed, opening is not
    (("c", 1, 1, "r"), False),  # mem
    (("c", 5, 1, "rw"), False),  # console
    (("c", 4, 0, "rw"), False),  # tty0
    (("c", 10, 200, "rw"), False),  # tun: not in the default list (runc dropped it too)
    (("b", 8, 0, "r"), False),  # sda
    (("b", 8, 0, "m"), True),
    (("b", 1, 3, "r"), False),  # a block device with null's numbers is another device
    (("c", 136, 7, "rwm"), True),
]


@pytest.mark.parametrize("case,allowed", DEFAULT_CASES, ids=[" ".join(map(str, c)) for c, _ in DEFAULT_CASES])
def test_default_program_allows_exactly_the_oci_defaults(case, allowed):
    assert evaluate(program(DEFAULT_RULES), *case) is allowed
    assert last_match(DEFAULT_RULES, *case) is allowed


RULE_SETS = {
    "default": DEFAULT_RULES,
    "device r only": DEFAULT_RULES + (DeviceRule(True, "c", 10, 200, "r"),),
    "device rw, block": DEFAULT_RULES + (DeviceRule(True, "b", 7, 0, "rw"),),
    "allow all": ALLOW_ALL,
    "allow-list with a deny after": (DeviceRule(False, "a"), DeviceRule(True, "c", 1, None, "rwm"),
                                     DeviceRule(False, "c", 1, 11, "rwm")),
    "deny-list": (DeviceRule(True, "a"), DeviceRule(False, "b", None, None, "rwm"), DeviceRule(False, "c", 1, 1, "rw")),
    "rules before the last 'a' do not count": (DeviceRule(True, "c", 1, 11, "rwm"), DeviceRule(False, "a"),
                                               DeviceRule(True, "c", 1, 3, "r")),
}
PROBES = [(t, ma, mi) for t in "cb" for ma, mi in ((1, 1), (1, 3), (1, 11), (5, 2), (7, 0), (10, 200), (136, 0))]


@pytest.mark.parametrize("name", RULE_SETS)
def test_program_agrees_with_the_v1_reading_on_every_access(name):
    rules = RULE_SETS[name]
    prog = program(rules)
    for (t, ma, mi), access in itertools.product(PROBES, ACCESSES):
        assert evaluate(prog, t, ma, mi, access) is last_match(rules, t, ma, mi, access), (t, ma, mi, access)


def test_a_device_rule_grants_only_its_access():
    prog = program(DEFAULT_RULES + (DeviceRule(True, "c", 10, 200, "r"),))
    assert evaluate(prog, "c", 10, 200, "r")
    assert not evaluate(prog, "c", 10, 200, "w")
    assert not evaluate(prog, "c", 10, 200, "rw")  # asks must be a subset
    assert not evaluate(prog, "c", 10, 201, "r")


def test_program_encoding():
    prog = program(ALLOW_ALL)
    insns = [struct.unpack("<BBhi", prog[i:i + 8]) for i in range(0, len(prog), 8)]
    assert insns[0] == (0x61, 0x12, 0, 0)  # r2 = *(u32 *)(r1 + 0): dst in the low nibble
    assert insns[3] == (0x74, 0x03, 0, 16)  # r3 >>= 16
    assert insns[-2:] == [(0xB7, 0, 0, 1), (0x95, 0, 0, 0)]  # nothing to check: return 1
    assert len(insns) == 8
    prog = program(DEFAULT_RULES)
    assert program(DEFAULT_RULES) == prog  # deterministic
    assert struct.unpack("<BBhi", prog[-16:-8]) == (0xB7, 0, 0, 0)  # an allow-list: deny by default


def test_rules_that_cannot_be_compiled_are_refused():
    with pytest.raises(ValueError):
        program((DeviceRule(False, "a", access="r"),))
    with pytest.raises(ValueError):
        program((DeviceRule(False, "a"), DeviceRule(True, "x", 1, 1)))


def test_v1_lines():
    assert [r.v1_line() for r in DEFAULT_RULES[:4]] == ["a *:* rwm", "c *:* m", "b *:* m", "c 1:3 rwm"]
    assert DEFAULT_RULES[-1].v1_line() == "c 136:* rwm"


# ---------------------------------------------------------------- --device


def test_parse_device_defaults_to_the_same_path_and_rwm():
    node, rule = parse_device("/dev/null")
    assert node == Device("/dev/null", "c", 1, 3, stat.S_IMODE(os.stat("/dev/null").st_mode), source="/dev/null")
    assert rule == DeviceRule(True, "c", 1, 3, "rwm")


@pytest.mark.parametrize("text,path,access", [
    ("/dev/null:/dev/mynull:r", "/dev/mynull", "r"),
    ("/dev/null:r", "/dev/null", "r"),  # two fields: permissions if they read as such
    ("/dev/null:mw", "/dev/null", "mw"),
    ("/dev/null:/opt/null", "/opt/null", "rwm"),
    ("/dev/null:/dev//x/", "/dev/x", "rwm"),
])
def test_parse_device_forms(text, path, access):
    node, rule = parse_device(text)
    assert (node.path, rule.access, node.source) == (path, access, "/dev/null")


@pytest.mark.parametrize("text,words", [
    ("/dev/null:/dev/x:rx", "bad permissions 'rx'"),
    ("/dev/null:/dev/x:rr", "bad permissions 'rr'"),
    ("/dev/null:/dev/x:", "bad permissions ''"),
    ("/dev/null:rwx", "'rwx' is not an absolute path"),  # docker reads it as a container path
    ("/dev/null:/dev/x:r:w", "use HOSTPATH[:CONTAINERPATH][:PERMISSIONS]"),
    ("dev/null", "'dev/null' is not an absolute path"),
    ("/dev/null:/", "'/' is not an absolute path other than /"),
    ("/dev/null:/dev/../x", "without '..'"),
    ("/dev/no-such-device", "/dev/no-such-device: No such file or directory"),
    ("/etc/hostname", "/etc/hostname is not a device node"),
    ("/dev", "/dev is not a device node"),
])
def test_parse_device_refuses(text, words):
    with pytest.raises(SpecError) as err:
        parse_device(text)
    assert words in str(err.value) and str(err.value).startswith("invalid --device value")


# ---------------------------------------------------------------- the mount plan


def test_device_nodes_come_last_and_replace_a_default_node():
    null = Device("/dev/null", "c", 1, 3, 0o666, "/dev/null")
    nested = Device("/dev/input/mice", "c", 13, 63, 0o660, "/dev/input/mice")
    plan = with_devices(DEFAULT_PLAN, [null, nested])
    nodes = [op for op in plan if op.kind == OP_MKNOD and op.target == "/dev/null"]
    assert len(nodes) == 1 and nodes[0] is plan[-3] and nodes[0].source == "/dev/null"
    assert plan[-2] == Op(OP_MKDIR, "/dev/input", mode=0o755)
    assert plan[-1] == Op(OP_MKNOD, "/dev/input/mice", source="/dev/input/mice", mode=stat.S_IFCHR | 0o660, major=13,
                          minor=63)
    assert with_devices(DEFAULT_PLAN, []) is DEFAULT_PLAN


def test_dev_mounts_are_needed_only_for_devices_beyond_the_defaults():
    assert not dev_mounts_needed([], DEFAULT_RULES)
    assert dev_mounts_needed([], ALLOW_ALL)
    assert dev_mounts_needed([Device("/dev/kmsg", "c", 1, 11)], DEFAULT_RULES + (DeviceRule(True, "c", 1, 11),))


def _plans(tmp_path, **spec):
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    return _root_and_plans(ContainerSpec(rootfs="/rootfs", process=Process(["/bin/true"]), **spec), str(state_dir),
                           data=None)


def test_root_and_volumes_are_nodev_by_default(tmp_path):
    root, pre, post = _plans(tmp_path)
    assert pre[-1] == Op(OP_NODEV, "/")  # the root, in the container's view: after the overlay and volumes
    assert pre[-2].fstype == "overlay"
    # under it, the foreground run's scratch tmpfs for upper and work: no devices either
    assert pre[0].fstype == "tmpfs" and pre[0].target == "/" and pre[0].flags & MS_NODEV and len(pre) == 5
    assert not any(op.kind == OP_NODEV for op in post)  # /dev itself must keep its devices


def test_plain_rootfs_is_bound_onto_itself_to_be_made_nodev(tmp_path):
    root, pre, _ = _plans(tmp_path, overlay=False)
    assert root == "/rootfs"
    assert pre == (Op(OP_MOUNT, "/", source="/rootfs", flags=MS_BIND | MS_REC), Op(OP_NODEV, "/"))


def test_no_nodev_when_a_device_is_asked_for(tmp_path):
    node, rule = parse_device("/dev/null:/opt/null:r")
    _, pre, post = _plans(tmp_path, devices=[node], limits=Limits(devices=DEFAULT_RULES + (rule,)))
    assert not any(op.kind == OP_NODEV for op in pre)
    assert post[-1].target == "/opt/null" and post[-2] == Op(OP_MKDIR, "/opt", mode=0o755)


def test_devicefilter_constants_match_the_kernel_headers():
    header = open("/usr/include/linux/bpf.h").read() if os.path.exists("/usr/include/linux/bpf.h") else ""
    if not header:
        pytest.skip("no /usr/include/linux/bpf.h")
    for name, value in (("BPF_DEVCG_ACC_MKNOD", devicefilter.ACC_MKNOD), ("BPF_DEVCG_ACC_READ", devicefilter.ACC_READ),
                        ("BPF_DEVCG_ACC_WRITE", devicefilter.ACC_WRITE), ("BPF_DEVCG_DEV_BLOCK", devicefilter.DEV_BLOCK),
                        ("BPF_DEVCG_DEV_CHAR", devicefilter.DEV_CHAR)):
        assert f"{name}\t= (1ULL << {value.bit_length() - 1})" in header or f"{name} = {value}" in header \
            or f"{name}\t= {value}" in header, name


@pytest.mark.parametrize("rules", [(), (DeviceRule(True, "c", 1, 3),), (DeviceRule(False, "a", access="r"),),
                                   DEFAULT_RULES + (DeviceRule(True, "x", 1, 3),),
                                   DEFAULT_RULES + (DeviceRule(True, "c", 1, 3, "rx"),)])
def test_limits_refuse_rules_the_drivers_cannot_apply(rules):
    with pytest.raises(SpecError):
        Limits(devices=rules).validate()
