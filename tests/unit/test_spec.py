"""Pure logic: option parsing, the spec's defaults, the mount plan (no root needed)."""

from __future__ import annotations

import pytest

from minirun.errors import SpecError
from minirun.mounts import DEFAULT_PLAN, OP_MKNOD, OP_MOUNT, OP_SYMLINK
from minirun.spec import Limits, Process, parse_cpus, parse_cpuset, parse_env, parse_size, parse_user


@pytest.mark.parametrize("text, expected", [
    ("64m", 64 << 20), ("64M", 64 << 20), ("64MiB", 64 << 20), ("64mb", 64 << 20), ("1g", 1 << 30),
    ("512k", 512 << 10), ("1048576", 1 << 20), ("100b", 100), ("1.5g", 3 << 29),
])
def test_sizes(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["12XB", "0", "-5", "-5m", "", "m", "1.2.3m", "0m"])
def test_bad_sizes(text):
    with pytest.raises(SpecError, match="--memory"):
        parse_size(text)


def test_cpus():
    assert parse_cpus("0.5", 2) == 0.5
    assert parse_cpus("2", 2) == 2.0
    for bad in ["0", "-1", "3", "nan", "x"]:
        with pytest.raises(SpecError, match="--cpus"):
            parse_cpus(bad, 2)


def test_cpus_become_a_cfs_quota():
    limits = Limits.from_cpus(0.5)
    assert (limits.cpu_quota, limits.cpu_period, limits.cpus) == (50_000, 100_000, 0.5)
    assert Limits.from_cpus(None).cpu_quota is None


def test_cpuset():
    assert parse_cpuset("0-1", 4) == "0,1"
    assert parse_cpuset("3,0-1", 4) == "0,1,3"
    for bad in ["4", "1-0", "a", "0-1-2", "-1"]:
        with pytest.raises(SpecError, match="--cpuset-cpus"):
            parse_cpuset(bad, 4)


def test_user_and_env():
    assert parse_user("1000") == (1000, 1000)
    assert parse_user("1000:5") == (1000, 5)
    with pytest.raises(SpecError):
        parse_user("root")
    assert parse_env(["A=1", "B="]) == ["A=1", "B="]
    with pytest.raises(SpecError):
        parse_env(["NOEQUALS"])


def test_swap_must_cover_memory():
    with pytest.raises(SpecError, match="--memory-swap"):
        Limits(memory=64 << 20, memory_swap=32 << 20).validate()
    with pytest.raises(SpecError, match="needs --memory"):
        Limits(memory_swap=64 << 20).validate()
    Limits(memory=64 << 20, memory_swap=-1).validate()


def test_limits_are_validated_in_one_place_with_the_front_ends_names():
    from minirun.devices import DeviceRule

    with pytest.raises(SpecError, match=r"^swap must be at least mem \(it counts memory plus swap\)$"):
        Limits(memory=64 << 20, memory_swap=32 << 20).validate({"memory": "mem", "memory_swap": "swap"})
    with pytest.raises(SpecError, match="memory swappiness 101: must be between 0 and 100"):
        Limits(memory_swappiness=101).validate()
    with pytest.raises(SpecError, match="blkio weight 5: must be between 10 and 1000"):
        Limits(blkio_weight=5).validate()
    with pytest.raises(SpecError, match="a rule for all devices is for rwm"):  # the v2 program has no other meaning
        Limits(devices=(DeviceRule(False, "a"), DeviceRule(True, "a", access="r"))).validate()
    with pytest.raises(SpecError, match="must start with a rule for all devices"):
        Limits(devices=(DeviceRule(True, "c", 1, 3),)).validate()
    Limits(memory_swappiness=0, blkio_weight=10, blkio_weight_device=((8, 0, 0, 1000),)).validate()


def test_environment_defaults_and_overrides():
    env = Process(["/bin/sh"], env=["PATH=/bin", "A=1"]).full_env("box")
    assert env == ["PATH=/bin", "HOSTNAME=box", "HOME=/root", "A=1"]


def test_default_plan_follows_the_oci_defaults():
    mounts = {op.target: op for op in DEFAULT_PLAN if op.kind == OP_MOUNT}
    assert mounts["/proc"].fstype == "proc"
    assert mounts["/sys"].fstype == "sysfs" and mounts["/sys"].flags & 1  # MS_RDONLY
    assert mounts["/dev"].fstype == "tmpfs"
    assert "newinstance" in mounts["/dev/pts"].data
    nodes = {op.target for op in DEFAULT_PLAN if op.kind == OP_MKNOD}
    assert nodes == {f"/dev/{n}" for n in ["null", "zero", "full", "random", "urandom", "tty"]}
    links = {op.target: op.source for op in DEFAULT_PLAN if op.kind == OP_SYMLINK}
    assert links["/dev/ptmx"] == "pts/ptmx" and links["/dev/fd"] == "/proc/self/fd"
    # /dev must be mounted before anything is created in it
    order = [op.target for op in DEFAULT_PLAN]
    assert order.index("/dev") < min(order.index(n) for n in nodes)


def test_plan_constants_come_from_the_c_header():
    """Declared once, in csrc/minirun.h and <sys/mount.h>: Python reads them through cffi."""
    from minirun import mounts, syscalls

    for name in ["MS_RDONLY", "MS_NOSUID", "MS_NODEV", "MS_NOEXEC", "MS_REMOUNT", "MS_BIND", "MS_REC",
                 "MS_STRICTATIME", "MS_RELATIME", "MS_SHARED"]:
        assert getattr(mounts, name) == getattr(syscalls.lib, name), name
    for name in ["MOUNT", "MKNOD", "SYMLINK", "MKDIR", "MASK", "READONLY", "NODEV", "WRITE"]:
        assert getattr(mounts, f"OP_{name}") == getattr(syscalls.lib, f"MR_OP_{name}"), name


def test_native_errors_name_the_step():
    from minirun import syscalls

    with pytest.raises(OSError) as info:  # two zero instructions: a program the verifier refuses
        syscalls.attach_device_filter(bytes(16), -1)
    assert str(info.value).startswith("bpf(PROG_LOAD, devices filter): ")
    assert info.value.errno > 0


def test_sizes_and_names_are_what_the_regexes_said():
    """parse_size and valid_id do without re (its import costs every start ~5 ms): they
    must accept exactly what the patterns they replace matched."""
    import random
    import re

    from minirun.spec import _split_size, valid_id

    size_re = r"^\s*(\d+(?:\.\d+)?)\s*([bkmgt]?)(?:i?b)?\s*$"
    id_re = r"[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}"
    rng = random.Random(1)
    alphabet = "0123456789.bkmgtiBKMGTI \t\n-_x\u0666"
    for length in range(7):
        for _ in range(3000):
            text = "".join(rng.choice(alphabet) for _ in range(length))
            match = re.match(size_re, text, re.IGNORECASE)
            assert _split_size(text) == ((match.group(1), match.group(2).lower()) if match else None), text
    for length in range(70):
        for _ in range(300):
            tail = "".join(rng.choice("aZ09_.-\n \u00e9/") for _ in range(min(length, 4)))
            text = "a" * (length - len(tail)) + tail if rng.random() < 0.5 else tail + "a" * (length - len(tail))
            assert valid_id(text) == (re.fullmatch(id_re, text) is not None), text


def test_publish_takes_docker_address_forms():
    from minirun.spec import parse_publish

    assert parse_publish("8080:80") == ("127.0.0.1", 8080, 80)
    assert parse_publish("127.0.0.1:8080:80/tcp") == ("127.0.0.1", 8080, 80)
    assert parse_publish("0.0.0.0:8080:80") == ("0.0.0.0", 8080, 80)
    assert parse_publish("[::1]:8080:80") == ("::1", 8080, 80)


@pytest.mark.parametrize("value", ["8080", "8080:80/udp", "host:8080:80", "[::1]8080:80", "::1:8080:80", "1:2:3:4",
                                   "0:80", "127.0.0.1::80"])
def test_publish_refuses_the_rest(value):
    from minirun.spec import parse_publish

    with pytest.raises(SpecError):
        parse_publish(value)
