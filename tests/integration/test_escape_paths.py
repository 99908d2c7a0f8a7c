"""Escape attempts through paths and volume flags (issue 10, doors 2, 5 and 6).

A hostile root filesystem (a copy of the busybox one with links planted in it)
tries to steer volumes, /proc, /sys, /dev and the working directory to the
host; read-only volumes try to stay writable below a submount, or to lose the
source's nosuid/nodev/noexec. Each attempt sits beside its positive control:
on the host, the planted link does lead out, and the same write or exec works
where the protection does not apply. The tests also run with
MINIRUN_LEGACY_MOUNT_API=1, the fallbacks of kernels without openat2,
open_tree/move_mount and mount_setattr (csrc/rootpath.c).
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import tempfile

import pytest

from helpers import minirun

import minirun as api
from minirun.spec import ContainerSpec, Mount, Process


@pytest.fixture(params=["new-api", "legacy-api"])
def env(request):
    """The environment of minirun: the kernel's new mount calls, or their fallbacks."""
    e = dict(os.environ)
    e.pop("MINIRUN_LEGACY_MOUNT_API", None)
    if request.param == "legacy-api":
        e["MINIRUN_LEGACY_MOUNT_API"] = "1"
    return e


@pytest.fixture
def hostile(rootfs, tmp_path):
    """(a copy of the rootfs, an empty host directory its planted links point at)."""
    copy, host_dir = tmp_path / "rootfs", tmp_path / "host-dir"
    shutil.copytree(rootfs, copy, symlinks=True)
    host_dir.mkdir()
    return copy, host_dir


def plant(copy, name: str, to: str) -> None:
    path = copy / name
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    os.symlink(to, path)


def test_a_symlink_in_the_rootfs_cannot_steer_a_volume_to_the_host(hostile, tmp_path, env):
    copy, host_dir = hostile
    plant(copy, "data", str(host_dir))
    plant(copy, "rel", "../" * 12 + str(host_dir).lstrip("/"))
    src = tmp_path / "src"
    src.mkdir()
    (src / "in").write_text("volume\n")
    # positive control: in the host's view, both links lead to the host directory
    assert os.path.realpath(copy / "data" / "sub") == os.path.realpath(copy / "rel" / "sub") == f"{host_dir}/sub"
    for target in ("/data/sub", "/rel/sub"):
        out = minirun("run", "-v", f"{src}:{target}", str(copy), "/bin/sh", "-c",
                      f"cat {target}/in; echo out > {target}/out", env=env)
        assert out.returncode == 0, out.stderr
        assert out.stdout == "volume\n", "the volume is where the container sees the path"
        assert (src / "out").read_text() == "out\n"
        assert os.listdir(host_dir) == [], "nothing is created on the host"
    # --no-overlay: what the link needs is created inside the rootfs itself
    out = minirun("run", "--no-overlay", "-v", f"{src}:/data/sub", str(copy), "/bin/cat", "/data/sub/in", env=env)
    assert out.returncode == 0 and out.stdout == "volume\n", out.stderr
    assert os.listdir(host_dir) == [] and os.path.isdir(f"{copy}{host_dir}/sub")


def test_dotdot_in_a_mount_destination_stops_at_the_root(rootfs, tmp_path, env, monkeypatch):
    """Through the Python API, which takes OCI-style destinations as given."""
    for key in ("MINIRUN_LEGACY_MOUNT_API",):
        monkeypatch.delenv(key, raising=False)
        if key in env:
            monkeypatch.setenv(key, env[key])
    host_dir, src = tmp_path / "host-dir", tmp_path / "src"
    host_dir.mkdir()
    src.mkdir()
    escape = "/.." * 16 + f"{host_dir}/sub"
    # positive control: resolved on the host from any root, those '..' lead to the host directory
    assert os.path.normpath(f"/run/minirun/x/root{escape}") == f"{host_dir}/sub"
    spec = ContainerSpec(rootfs=rootfs, process=Process(["/bin/sh", "-c", f"echo in > {host_dir}/sub/f"]),
                         mounts=[Mount(destination=escape, type="bind", source=str(src), options=["rbind", "rw"])])
    result = api.run(spec)
    assert result.exit_code == 0
    assert (src / "f").read_text() == "in\n", "the volume is at the path clamped to the root"
    assert os.listdir(host_dir) == []


def test_dotdot_through_a_planted_link_stops_at_the_root(hostile, tmp_path, env):
    copy, host_dir = hostile
    plant(copy, "up", "../../../../../../../../..")
    src = tmp_path / "src"
    src.mkdir()
    out = minirun("run", "--no-overlay", "-v", f"{src}:/up/{host_dir}/sub", str(copy), "/bin/sh", "-c",
                  f"echo in > {host_dir}/sub/f", env=env)
    assert out.returncode == 0, out.stderr
    assert (src / "f").read_text() == "in\n"
    assert os.listdir(host_dir) == [] and os.path.isdir(f"{copy}{host_dir}/sub")


@pytest.mark.parametrize("name, fstype", [("proc", "proc"), ("sys", "sysfs")])
def test_proc_and_sys_refuse_a_symlink_in_the_rootfs(hostile, env, name, fstype):
    copy, host_dir = hostile
    ok = minirun("run", str(copy), "/bin/true", env=env)  # positive control: the same copy, unplanted
    assert ok.returncode == 0, ok.stderr
    plant(copy, name, str(host_dir))
    out = minirun("run", str(copy), "/bin/true", env=env)
    assert out.returncode == 125
    assert out.stderr.startswith(f"minirun: mount {fstype} on /{name}: a symlink in the rootfs"), out.stderr
    assert len(out.stderr.splitlines()) == 1 and os.listdir(host_dir) == []


def test_proc_symlink_is_refused_in_a_user_namespace_too(rootfs, env):
    """There /proc, /sys and /dev are mounted before pivot_root, in the host's view."""
    # where the mapped root can reach it: pytest's tmp_path sits under a 0700 directory of the host's root
    top = pathlib.Path(tempfile.mkdtemp(prefix="minirun-userns-", dir="/var/tmp"))
    try:
        top.chmod(0o755)
        copy, host_dir = top / "rootfs", top / "host-dir"
        shutil.copytree(rootfs, copy, symlinks=True)
        host_dir.mkdir()
        _check_userns_proc_symlink(copy, host_dir, env)
    finally:
        shutil.rmtree(top)


def _check_userns_proc_symlink(copy, host_dir, env):
    args = ["run", "--userns-map", "0:100000:65536", "--no-overlay", str(copy), "/bin/true"]
    ok = minirun(*args, env=env)
    assert ok.returncode == 0, ok.stderr
    plant(copy, "proc", str(host_dir))
    out = minirun(*args, env=env)
    assert out.returncode == 125 and "a symlink in the rootfs" in out.stderr, out.stderr
    assert os.listdir(host_dir) == []


def test_a_symlinked_dev_is_resolved_inside_the_root(hostile, env):
    copy, host_dir = hostile
    plant(copy, "dev", str(host_dir))
    out = minirun("run", "--no-overlay", str(copy), "/bin/sh", "-c",
                  "ls -l /dev/null; echo hidden > /dev/null; cat /proc/keys | wc -c", env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("crw-rw-rw-") and "1,   3" in out.stdout
    assert out.stdout.split()[-1] == "0", "the masks still bind the real null device"
    assert os.listdir(host_dir) == [], "the tmpfs and the nodes went inside the root"


def test_nothing_but_proc_is_mounted_into_proc(hostile, env):
    """A planted `dev -> /proc` would cover the container's proc, masks and all (runc refuses it too)."""
    copy, _ = hostile
    plant(copy, "dev", "/proc")
    out = minirun("run", str(copy), "/bin/true", env=env)
    assert out.returncode == 125 and out.stderr == "minirun: mount on /dev: the path leads into /proc: " \
        "Operation not permitted\n", out.stderr
    # positive control: the same link to an ordinary directory of the root works
    os.unlink(copy / "dev")
    plant(copy, "dev", "/tmp")
    out = minirun("run", str(copy), "/bin/sh", "-c", "test -c /tmp/null && echo NULL", env=env)
    assert out.returncode == 0 and out.stdout == "NULL\n", out.stderr


def test_workdir_through_a_planted_link_stays_inside(hostile, env):
    copy, host_dir = hostile
    plant(copy, "w", str(host_dir))
    out = minirun("run", "--no-overlay", "-w", "/w/made", str(copy), "/bin/sh", "-c", "pwd -P; touch here", env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"{host_dir}/made"  # the container's own path of that name
    assert os.listdir(host_dir) == []
    assert os.path.exists(f"{copy}{host_dir}/made/here")  # positive control: the write itself worked


def test_exec_workdir_through_a_planted_link_stays_inside(hostile, env):
    """`minirun exec -w` resolves in the running container's root too."""
    copy, host_dir = hostile
    plant(copy, "w", str(host_dir))
    name = f"paths-exec-{os.getpid()}"
    started = minirun("run", "-d", "--name", name, "--no-overlay", str(copy), "/bin/sleep", "60", env=env)
    assert started.returncode == 0, started.stderr
    try:
        out = minirun("exec", "-w", "/w/made", name, "/bin/sh", "-c", "pwd -P; touch here", env=env)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == f"{host_dir}/made"
        assert os.listdir(host_dir) == [] and os.path.exists(f"{copy}{host_dir}/made/here")
    finally:
        minirun("rm", "-f", name)


@pytest.fixture
def mounted(tmp_path):
    """Mount a tmpfs with the given options at a path; unmounted after the test."""
    made = []

    def mount(path, options):
        os.makedirs(path, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size=8m,{options}", "tmpfs", str(path)], check=True)
        made.append(path)
        return path

    yield mount
    for path in reversed(made):
        subprocess.run(["umount", str(path)], check=True)


def test_read_only_volume_is_read_only_below_its_submounts(rootfs, tmp_path, mounted, env):
    src = tmp_path / "src"
    mounted(src / "sub", "mode=0755")
    script = ("echo top > /v/top 2>/dev/null && echo TOP-WRITTEN; echo sub > /v/sub/f 2>/dev/null && "
              "echo SUB-WRITTEN; grep ' /v/sub ' /proc/self/mountinfo | cut -d' ' -f6")
    out = minirun("run", "-v", f"{src}:/v:ro", rootfs, "/bin/sh", "-c", script, env=env)
    assert out.returncode == 0, out.stderr
    assert "WRITTEN" not in out.stdout
    assert out.stdout.split()[-1].split(",")[0] == "ro"
    assert not (src / "sub" / "f").exists()
    # positive control: the same writes without :ro reach the host
    out = minirun("run", "-v", f"{src}:/v", rootfs, "/bin/sh", "-c", script, env=env)
    assert "TOP-WRITTEN" in out.stdout and "SUB-WRITTEN" in out.stdout, out.stderr
    assert (src / "sub" / "f").read_text() == "sub\n"


def test_read_only_volume_keeps_the_sources_nosuid_nodev_noexec(rootfs, tmp_path, mounted, env):
    locked = mounted(tmp_path / "locked", "nosuid,nodev,noexec")
    plain = tmp_path / "plain"  # pytest's tmp dir: on an exec-able filesystem
    plain.mkdir()
    for d in (locked, plain):
        shutil.copy(os.path.join(rootfs, "bin", "busybox"), d / "true")  # busybox runs the applet it is named
    script = ("grep -E ' /(locked|plain) ' /proc/self/mountinfo | cut -d' ' -f5,6; "
              "/locked/true && echo LOCKED-RAN; /plain/true && echo PLAIN-RAN; exit 0")
    for mode in (":ro", ""):
        out = minirun("run", "-v", f"{locked}:/locked{mode}", "-v", f"{plain}:/plain{mode}", rootfs, "/bin/sh", "-c",
                      script, env=env)
        assert out.returncode == 0, out.stderr
        flags = dict(line.split() for line in out.stdout.splitlines() if line.startswith("/"))
        assert {"nosuid", "nodev", "noexec"} <= set(flags["/locked"].split(",")), flags
        assert flags["/locked"].startswith("ro," if mode else "rw,") and "noexec" not in flags["/plain"]
        assert "LOCKED-RAN" not in out.stdout, "noexec holds inside"
        assert "PLAIN-RAN" in out.stdout, "positive control: the same binary runs from an exec-able volume"


def test_read_only_root_keeps_its_flags(rootfs, env):
    """--read-only is a remount too: it must not drop what the root already had."""
    out = minirun("run", "--read-only", rootfs, "/bin/sh", "-c",
                  "grep ' / / ' /proc/self/mountinfo | cut -d' ' -f6; touch /x 2>/dev/null && echo WROTE; exit 0", env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[0].startswith("ro,") and "WROTE" not in out.stdout
    out = minirun("run", rootfs, "/bin/sh", "-c", "touch /x && echo WROTE", env=env)  # positive control
    assert "WROTE" in out.stdout


def test_file_volume_gets_a_file_mount_point(rootfs, tmp_path, env):
    f = tmp_path / "conf"
    f.write_text("conf\n")
    out = minirun("run", "-v", f"{f}:/etc/new/conf:ro", rootfs, "/bin/sh", "-c",
                  "cat /etc/new/conf; (echo x > /etc/new/conf) 2>/dev/null && echo WROTE; exit 0", env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "conf\n" and f.read_text() == "conf\n"
