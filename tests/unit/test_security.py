"""Capabilities, --security-opt, user namespace maps, masked paths: pure logic, no root."""

from __future__ import annotations

import os

import pytest

from minirun import security
from minirun.errors import HostError, SpecError
from minirun.security import (ALL_CAPS, CAP_NUMBER, DEFAULT_CAP_MASK, DEFAULT_CAPS, cap_mask, normalize_cap,
                              options_to_spec, parse_id_map, tweak_caps)

DOCKER_DEFAULT = {"CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID", "SETFCAP",
                  "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE"}


def test_the_default_set_is_dockers_14_and_its_mask_is_precomputed_right():
    assert {c[4:] for c in DEFAULT_CAPS} == DOCKER_DEFAULT
    assert cap_mask(DEFAULT_CAPS) == DEFAULT_CAP_MASK


def test_capability_numbers_match_libcap():
    prctl = pytest.importorskip("prctl")
    for name, number in CAP_NUMBER.items():
        if hasattr(prctl, name):  # python-prctl may predate the newest ones (CHECKPOINT_RESTORE)
            assert getattr(prctl, name) == number, name
    assert prctl.CAP_LAST_CAP <= max(CAP_NUMBER.values())


@pytest.mark.parametrize("text, expected", [
    ("net_raw", "CAP_NET_RAW"), ("NET_RAW", "CAP_NET_RAW"), ("CAP_NET_RAW", "CAP_NET_RAW"), ("cap_sys_admin",
     "CAP_SYS_ADMIN"), ("all", "ALL"), (" ALL ", "ALL"),
])
def test_names_with_or_without_the_prefix(text, expected):
    assert normalize_cap(text) == expected


@pytest.mark.parametrize("bad", ["NET_RAWW", "CAP_", "", "CAP_ALL", "sys-admin"])
def test_unknown_names_are_refused(bad):
    with pytest.raises(SpecError, match="unknown capability"):
        normalize_cap(bad, "--cap-add value")


def test_docker_rules_for_add_and_drop():
    assert tweak_caps() == DEFAULT_CAPS
    assert "CAP_NET_RAW" not in tweak_caps(cap_drop=["net_raw"])
    assert "CAP_SYS_ADMIN" in tweak_caps(cap_add=["SYS_ADMIN"])
    assert tweak_caps(cap_drop=["ALL"]) == ()
    assert tweak_caps(cap_add=["NET_ADMIN"], cap_drop=["ALL"]) == ("CAP_NET_ADMIN",)
    assert tweak_caps(cap_add=["ALL"]) == ALL_CAPS
    assert set(tweak_caps(cap_add=["ALL"], cap_drop=["SYS_ADMIN"])) == set(ALL_CAPS) - {"CAP_SYS_ADMIN"}
    # added wins over dropped, as in Docker
    assert "CAP_CHOWN" in tweak_caps(cap_add=["CHOWN"], cap_drop=["CHOWN"])
    # sorted by number, no duplicates
    caps = tweak_caps(cap_add=["KILL", "CAP_KILL"])
    assert list(caps) == sorted(set(caps), key=CAP_NUMBER.__getitem__)


def test_security_opt():
    assert security.parse_security_opt(["no-new-privileges=false"]) == {"no_new_privileges": False}
    assert security.parse_security_opt(["no-new-privileges"]) == {"no_new_privileges": True}
    assert security.parse_security_opt(["seccomp=unconfined"]) == {"seccomp": None}
    for bad in ["no-new-privileges=maybe", "apparmor=unconfined", "seccomp=", "label=disable"]:
        with pytest.raises(SpecError, match="--security-opt"):
            security.parse_security_opt([bad])


def test_security_opt_seccomp_file(tmp_path):
    profile = tmp_path / "p.json"
    profile.write_text('{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": []}')
    assert security.parse_security_opt([f"seccomp={profile}"]) == {
        "seccomp": {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": []}}
    profile.write_text("{not json")
    with pytest.raises(SpecError, match="not valid JSON"):
        security.parse_security_opt([f"seccomp={profile}"])
    with pytest.raises(SpecError, match="No such file"):
        security.parse_security_opt([f"seccomp={tmp_path}/missing.json"])


def test_privileged_turns_everything_off():
    proc, spec = options_to_spec(privileged=True)
    assert proc == {"capabilities": ALL_CAPS, "no_new_privileges": False}
    assert spec == {"seccomp": None, "masked_paths": (), "readonly_paths": ()}


def test_a_named_capability_the_host_lacks_is_an_error(monkeypatch):
    prctl = pytest.importorskip("prctl")
    monkeypatch.setattr(prctl, "capbset_read", lambda cap: cap != CAP_NUMBER["CAP_SYS_TIME"])
    with pytest.raises(HostError, match="CAP_SYS_TIME"):
        options_to_spec(cap_add=["SYS_TIME"])
    options_to_spec(cap_add=["ALL"])  # ALL means "what the host grants": no error


def test_userns_maps(tmp_path):
    assert parse_id_map("0:100000:65536") == (0, 100000, 65536)
    for bad in ["0:100000", "a:b:c", "0:-1:10", "0:1:0"]:
        with pytest.raises(SpecError, match="--userns-map"):
            parse_id_map(bad)
    subuid, subgid = tmp_path / "subuid", tmp_path / "subgid"
    subuid.write_text("alice:10000:100\nroot:200000:65536\n")
    subgid.write_text("root:300000:65536\n")
    assert security.default_id_maps(str(subuid), str(subgid)) == ([(0, 200000, 65536)], [(0, 300000, 65536)])
    subgid.write_text("alice:1:2\n")
    with pytest.raises(HostError, match="subordinate"):
        security.default_id_maps(str(subuid), str(subgid))
    assert security.id_map_text([(0, 100000, 65536), (65536, 5, 1)]) == "0 100000 65536\n65536 5 1\n"


def test_native_args_for_the_default_spec_use_dockers_filter():
    from minirun.seccomp import build_filter
    from minirun.spec import ContainerSpec, Process

    args = security.native_args(ContainerSpec(rootfs="/", process=Process(["x"])))
    assert args["caps"] == args["inheritable"] == DEFAULT_CAP_MASK
    assert args["no_new_privs"] is True
    assert (args["seccomp"], args["seccomp_flags"]) == build_filter("default", security.DEFAULT_CAPS)
    kinds = [op.kind for op in args["path_ops"]]
    assert kinds.count(security.OP_MASK) == len(security.DEFAULT_MASKED_PATHS)
    assert kinds.count(security.OP_READONLY) == len(security.DEFAULT_READONLY_PATHS)
    # a non-root user gets no inheritable capabilities (CVE-2022-24769)
    args = security.native_args(ContainerSpec(rootfs="/", process=Process(["x"], uid=1000)))
    assert args["inheritable"] == 0 and args["caps"] == DEFAULT_CAP_MASK


def test_masked_and_readonly_lists_cover_the_issue():
    for path in ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug", "/proc/acpi", "/proc/scsi",
                 "/sys/firmware"]:
        assert path in security.DEFAULT_MASKED_PATHS
    assert set(security.DEFAULT_READONLY_PATHS) == {"/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus",
                                                    "/proc/fs"}


def test_plan_op_kinds_match_the_c_header():
    from minirun import syscalls

    from minirun import mounts

    for name in ("MOUNT", "MKNOD", "SYMLINK", "MKDIR", "MASK", "READONLY", "NODEV", "WRITE"):
        assert getattr(mounts, f"OP_{name}") == getattr(syscalls.lib, f"MR_OP_{name}"), name
    assert mounts.NODE_KEEP == syscalls.lib.MR_NODE_KEEP


def test_the_fast_parser_knows_the_new_options():
    from minirun.runopts import parse_fast

    values = parse_fast(["--cap-add", "NET_ADMIN", "--cap-drop=ALL", "--security-opt", "seccomp=unconfined",
                         "--privileged", "--userns", "--userns-map", "0:100000:65536", "R", "sh"])
    assert values["cap_add"] == ["NET_ADMIN"] and values["cap_drop"] == ["ALL"]
    assert values["security_opt"] == ["seccomp=unconfined"] and values["privileged"] and values["userns"]
    assert values["userns_map"] == ["0:100000:65536"]


def test_the_init_copy_is_sealed():
    """The memfd the container's PID 1 and COMMAND's last exec run from (csrc/command.c)."""
    import fcntl

    from minirun import syscalls

    fd = syscalls.sealed_init()
    assert fd >= 0, "minirun-init is not built"
    assert syscalls.sealed_init() == fd  # one copy per process
    try:
        seals = fcntl.fcntl(fd, fcntl.F_GET_SEALS)
        assert seals & syscalls._SEALS == syscalls._SEALS
        with pytest.raises(PermissionError):
            os.write(fd, b"x")
        reopened = os.open(f"/proc/self/fd/{fd}", os.O_WRONLY)  # as an attacker holding the fd would
        try:
            with pytest.raises(PermissionError):
                os.pwrite(reopened, b"x", 0)
        finally:
            os.close(reopened)
        with open(syscalls.INIT_PATH, "rb") as f:
            assert os.pread(fd, 1 << 20, 0) == f.read()
    finally:
        os.close(fd)
    fresh = syscalls.sealed_init()  # its fd closed under it: a new copy
    assert fresh >= 0 and os.fstat(fresh).st_size == os.path.getsize(syscalls.INIT_PATH)
