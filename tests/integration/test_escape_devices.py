"""Device nodes from a hostile rootfs, volume or mknod: the devices cgroup and nodev mounts stop them.

The attacker ships nodes in the root filesystem (``mknod kmsg c 1 11`` needs no
privilege inside the container: the file is just there), finds one in a volume,
or makes one with mknod once seccomp is off. Two layers stand in the way: the
root, the overlay and the volumes are mounted nodev (EACCES), and the devices
cgroup allows only the OCI default devices (EPERM), on cgroup v1 through
devices.deny/devices.allow and on v2 through a BPF program (this file also runs
in the pure cgroup v2 guest, tests/vm/test_cgroup_v2_lane.py). Each refusal sits
beside its positive control: the same node works on the host, with --device, or
with --privileged, so a test that could never succeed proves nothing.

Nodes are only opened, never written to or read from beyond one byte of the disk.
"""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import sys

import pytest

from helpers import inspect, minirun, popen_minirun, wait_for
from minirun import cgroups
from minirun.probes import root_device

EPERM, EACCES = os.strerror(1), os.strerror(13)
# A shell function that prints "NAME ok" or "NAME FAIL <error>" for each attempt.
TRY = 'try() { n=$1; shift; if out=$("$@" 2>&1); then echo "$n ok"; else echo "$n FAIL $out"; fi; }; '


@pytest.fixture(scope="module")
def disk() -> tuple[int, int]:
    """A block device the host itself may open: its root disk, else the first loop device.

    (Some hosts keep even root away from their own disk; the control needs one that opens.)
    """
    major, minor, _ = root_device()
    for rdev, path in ((os.makedev(major, minor), "root device"), (os.makedev(7, 0), "/dev/loop0")):
        node = f"/run/minirun-test-blk-{os.getpid()}"
        try:
            os.mknod(node, 0o600 | stat.S_IFBLK, rdev)
            os.close(os.open(node, os.O_RDONLY))
            return os.major(rdev), os.minor(rdev)
        except OSError:
            continue
        finally:
            if os.path.exists(node):
                os.unlink(node)
    return 0, 0


@pytest.fixture(scope="module")
def hostile(tmp_path_factory, rootfs, disk):
    """A copy of the busybox rootfs shipping device nodes: kmsg, a block device, a console elsewhere."""
    root = tmp_path_factory.mktemp("hostile") / "rootfs"
    shutil.copytree(rootfs, root, symlinks=True)
    os.mknod(root / "kmsg", 0o666 | stat.S_IFCHR, os.makedev(1, 11))
    os.makedirs(root / "usr/share/misc", exist_ok=True)
    os.mknod(root / "usr/share/misc/console", 0o666 | stat.S_IFCHR, os.makedev(5, 1))
    if disk[0]:
        os.mknod(root / "disk", 0o600 | stat.S_IFBLK, os.makedev(*disk))
    return str(root)


def host_opens(node) -> None:
    """Skip unless the host itself can open ``node``: a nodev /tmp (the pure-v2 guest's)
    makes the node inert before any container is involved, and the control meaningless."""
    try:
        os.close(os.open(node, os.O_WRONLY if stat.S_ISCHR(os.stat(node).st_mode) else os.O_RDONLY))
    except PermissionError as err:
        pytest.skip(f"the host itself cannot open {node} ({err.strerror}: its file system is nodev here)")


def attempts(options, rootfs, script, *, expect_rc=0) -> dict[str, str]:
    """Run ``script`` (lines from TRY) in a container: {name: "ok" | "FAIL <error>"}."""
    out = minirun("run", *options, rootfs, "/bin/sh", "-c", TRY + script)
    assert out.returncode == expect_rc, out.stdout + out.stderr
    results = {}
    for line in out.stdout.splitlines():
        name, _, rest = line.partition(" ")
        results[name] = rest
    return results


def refused(result: str, *errors: str) -> bool:
    return result.startswith("FAIL") and any(e in result for e in errors)


# ---------------------------------------------------------------- nodes shipped in the rootfs


def test_a_char_node_in_the_rootfs_cannot_be_opened(hostile):
    r = attempts((), hostile, "try kmsg sh -c ': > /kmsg'; try console sh -c ': < /usr/share/misc/console'; "
                               "grep -c ' / .*nodev' /proc/self/mountinfo")
    assert refused(r["kmsg"], EACCES), r  # nodev stops it first
    assert refused(r["console"], EACCES), r


@pytest.mark.parametrize("overlay", [True, False], ids=["overlay", "no-overlay"])
def test_the_devices_cgroup_alone_stops_a_shipped_node(hostile, overlay):
    # A --device turns nodev off (a device was asked for): only the cgroup is left.
    host_opens(os.path.join(hostile, "kmsg"))
    opts = ("--device", "/dev/null:/opt/null") + (() if overlay else ("--no-overlay",))
    r = attempts(opts, hostile, "try kmsg sh -c ': > /kmsg'; try null sh -c ': > /opt/null'")
    assert refused(r["kmsg"], EPERM), r
    assert r["null"] == "ok", r  # the mount is not nodev: the allowed device works


def test_positive_control_the_shipped_node_works_on_the_host_and_with_device(hostile):
    host_opens(os.path.join(hostile, "kmsg"))  # the host: the node is real
    r = attempts(("--device", "/dev/kmsg"), hostile, "try kmsg sh -c ': > /kmsg'")
    assert r["kmsg"] == "ok", r


def test_a_block_node_in_the_rootfs_cannot_be_opened(hostile, disk):
    if not disk[0]:
        pytest.skip("the host itself cannot open its root disk or /dev/loop0")
    host_opens(os.path.join(hostile, "disk"))
    r = attempts(("--device", "/dev/null:/opt/null"), hostile, "try disk sh -c ': < /disk'")
    assert refused(r["disk"], EPERM), r
    r = attempts((), hostile, "try disk sh -c ': < /disk'")
    assert refused(r["disk"], EACCES), r
    # Controls: the host opens the same node; so does --privileged (all devices, no nodev).
    os.close(os.open(os.path.join(hostile, "disk"), os.O_RDONLY))
    r = attempts(("--privileged",), hostile, "try disk sh -c ': < /disk'")
    assert r["disk"] == "ok", r


# ---------------------------------------------------------------- nodes made with mknod


NODES = [("kmsg", "c 1 11"), ("mem", "c 1 1"), ("console", "c 5 1"), ("tty0", "c 4 0"), ("tun", "c 10 200")]


@pytest.mark.parametrize("name,node", NODES, ids=[n for n, _ in NODES])
def test_mknod_with_seccomp_off_makes_a_node_that_cannot_be_opened(rootfs, name, node):
    # Docker's default capabilities include MKNOD; without seccomp, mknod works (the cgroup
    # allows "m", as runc's does) in /dev, the one mount that is not nodev. Opening it must not.
    script = f"try mknod mknod /dev/x {node}; try open sh -c ': < /dev/x'; try openw sh -c ': > /dev/x'"
    r = attempts(("--security-opt", "seccomp=unconfined"), rootfs, script)
    assert r["mknod"] == "ok", r
    assert refused(r["open"], EPERM) and refused(r["openw"], EPERM), r


def test_positive_control_mknod_and_open_with_the_device_allowed(rootfs):
    script = "try mknod mknod /dev/x c 1 11; try openw sh -c ': > /dev/x'"
    r = attempts(("--security-opt", "seccomp=unconfined", "--device", "/dev/kmsg"), rootfs, script)
    assert r == {"mknod": "ok", "openw": "ok"}, r


def test_mknod_of_a_block_device_in_a_tmpfs_mounted_with_dev(rootfs, disk):
    if not disk[0]:
        pytest.skip("the host itself cannot open its root disk or /dev/loop0")
    script = f"try mknod mknod /tmp2/d b {disk[0]} {disk[1]}; try read sh -c ': < /tmp2/d'"
    r = attempts(("--security-opt", "seccomp=unconfined", "--tmpfs", "/tmp2:dev"), rootfs, script)
    assert r["mknod"] == "ok", r  # a tmpfs asked for with "dev": the node is there...
    assert refused(r["read"], EPERM), r  # ...and the cgroup still refuses it
    r = attempts(("--security-opt", "seccomp=unconfined", "--tmpfs", "/tmp2"), rootfs, script)
    assert refused(r["read"], EACCES), r  # without "dev", docker's default for --tmpfs: nodev


def test_a_node_in_a_volume_cannot_be_opened(rootfs, tmp_path):
    vol = tmp_path / "vol"
    vol.mkdir()
    os.mknod(vol / "kmsg", 0o666 | stat.S_IFCHR, os.makedev(1, 11))
    host_opens(str(vol / "kmsg"))  # control: on the host it opens
    r = attempts(("-v", f"{vol}:/vol"), rootfs, "try kmsg sh -c ': > /vol/kmsg'; grep ' /vol ' /proc/self/mountinfo")
    assert refused(r["kmsg"], EACCES), r
    r = attempts(("-v", f"{vol}:/vol:ro", "--device", "/dev/null:/opt/null"), rootfs, "try kmsg sh -c ': > /vol/kmsg'")
    assert refused(r["kmsg"], EPERM), r


# ---------------------------------------------------------------- what stays allowed


def test_the_default_devices_work(rootfs):
    script = ("try null sh -c 'echo x > /dev/null'; try zero head -c1 /dev/zero; try full head -c1 /dev/full; "
              "try random head -c1 /dev/random; try urandom head -c1 /dev/urandom; "
              "try ptmx sh -c 'exec 3<>/dev/ptmx'; try kmsg test -e /dev/kmsg")
    r = attempts((), rootfs, script)
    assert all(r[n] == "ok" for n in ("null", "zero", "full", "random", "urandom", "ptmx")), r
    assert r["kmsg"].startswith("FAIL"), r  # not made, and not allowed either


def test_device_with_read_only_permission(rootfs):
    # loop-control: a device outside the defaults whose open alone does nothing.
    if not os.path.exists("/dev/loop-control"):
        pytest.skip("no /dev/loop-control on this host")
    script = "ls -l /dev/myctl; try read sh -c ': < /dev/myctl'; try write sh -c ': > /dev/myctl'"
    out = minirun("run", "--device", "/dev/loop-control:/dev/myctl:r", rootfs, "/bin/sh", "-c", TRY + script)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("crw") and " 10, 237 " in out.stdout.splitlines()[0], out.stdout
    r = dict(line.partition(" ")[::2] for line in out.stdout.splitlines()[1:])
    assert r["read"] == "ok" and refused(r["write"], EPERM), r


def test_device_permissions_add_to_the_defaults_as_in_docker(rootfs):
    # The cgroup judges devices, not paths: /dev/mynull is c 1:3 like /dev/null, whose
    # default rule allows rwm, so ":r" takes nothing away (docker behaves the same).
    script = "try read cat /dev/mynull; try write sh -c 'echo x > /dev/mynull'; try null sh -c 'echo x > /dev/null'"
    r = attempts(("--device", "/dev/null:/dev/mynull:r"), rootfs, script)
    assert r == {"read": "ok", "write": "ok", "null": "ok"}, r


def test_device_at_the_default_path_replaces_the_default_node(rootfs):
    r = attempts(("--device", "/dev/null"), rootfs, "try null sh -c 'echo x > /dev/null'")
    assert r["null"] == "ok", r


@pytest.mark.parametrize("value,words", [
    ("/dev/no-such-node", "No such file or directory"),
    ("/etc/hostname", "is not a device node"),
    ("/dev/null:/dev/x:rwx", "bad permissions 'rwx'"),
    ("/dev/null:relative", "is not an absolute path"),
])
def test_bad_device_is_one_line_and_exit_125(rootfs, value, words):
    out = minirun("run", "--device", value, rootfs, "/bin/true")
    assert out.returncode == 125
    assert out.stderr.count("\n") == 1 and out.stderr.startswith("minirun: invalid --device value"), out.stderr
    assert words in out.stderr


# ---------------------------------------------------------------- exec, and the cgroup's life


def test_exec_is_held_by_the_same_devices_cgroup(hostile):
    host_opens(os.path.join(hostile, "kmsg"))
    name = f"devexec{os.getpid()}"
    out = minirun("run", "-d", "--name", name, "--device", "/dev/null:/opt/null", hostile, "/bin/sleep", "60")
    assert out.returncode == 0, out.stderr
    try:
        st = inspect(name)
        dirs = set(st["cgroups"].values())
        assert st["cgroups"].get("devices") in dirs and os.path.isdir(st["cgroups"]["devices"])
        ex = minirun("exec", name, "/bin/sh", "-c", TRY + "try kmsg sh -c ': > /kmsg'; try null sh -c ': > /opt/null'")
        assert ex.returncode == 0, ex.stderr
        r = dict(line.partition(" ")[::2] for line in ex.stdout.splitlines())
        assert refused(r["kmsg"], EPERM) and r["null"] == "ok", r
    finally:
        minirun("rm", "-f", name)
    assert not os.path.exists(st["cgroups"]["devices"])


def test_v1_devices_cgroup_holds_the_rules(rootfs):
    layout = cgroups.detect()
    if layout.controllers.get("devices") == layout.unified:
        pytest.skip("cgroup v2 here: the rules are a BPF program (test_bpf_program_on_a_real_cgroup)")
    name = f"devlist{os.getpid()}"
    proc = popen_minirun("run", "--name", name, "--device", "/dev/null:/dev/mynull:r", rootfs, "/bin/sleep", "60")
    path = os.path.join(layout.controllers["devices"], cgroups.PARENT, name)
    try:
        assert wait_for(lambda: os.path.exists(os.path.join(path, "tasks")) and open(os.path.join(path, "tasks")).read())
        listed = open(os.path.join(path, "devices.list")).read().split("\n")
        assert "a *:* rwm" not in listed and "c 1:11 rwm" not in listed
        assert {"c *:* m", "b *:* m", "c 1:3 rwm", "c 136:* rwm", "c 5:2 rwm"} <= set(listed), listed
    finally:
        proc.send_signal(signal.SIGKILL)  # minirun itself dies: its leftovers are gc's job
        proc.wait()
    assert os.path.isdir(path)
    gc = minirun("gc")
    assert gc.returncode == 0, gc.stderr
    assert not os.path.exists(path)


def test_bpf_program_on_a_real_cgroup(tmp_path):
    """The v2 filter on a cgroup2 directory of this host (on a hybrid host, in its unified
    hierarchy, where the kernel runs device programs too), probed from a process inside."""
    from minirun.cgroups import devicefilter, v2
    from minirun.devices import DEFAULT_RULES, DeviceRule

    layout = cgroups.detect()
    if not layout.unified:
        pytest.skip("no cgroup2 hierarchy on this host")
    parent = os.path.join(layout.unified, cgroups.PARENT)
    os.makedirs(parent, exist_ok=True)
    path = os.path.join(parent, f"bpftest{os.getpid()}")
    os.mkdir(path)
    rules = DEFAULT_RULES + (DeviceRule(True, "c", 1, 11, "r"),)  # /dev/kmsg: read only
    code = (
        "import os, sys\n"
        "open(sys.argv[1] + '/cgroup.procs', 'w').write(str(os.getpid()))\n"
        "for path, flags in (('/dev/null', os.O_RDWR), ('/dev/zero', os.O_RDONLY), ('/dev/kmsg', os.O_WRONLY),\n"
        "                    ('/dev/kmsg', os.O_RDONLY), ('/dev/tty0', os.O_RDONLY), ('/dev/ptmx', os.O_RDWR)):\n"
        "    try:\n"
        "        os.close(os.open(path, flags)); print(path, flags, 'ok')\n"
        "    except OSError as e:\n"
        "        print(path, flags, e.errno)\n")
    try:
        v2.attach_device_filter(path, devicefilter.program(rules))
        out = subprocess.run([sys.executable, "-c", code, path], capture_output=True, text=True, timeout=30)
    finally:
        # the process has exited; the kernel may take a moment to let go of the cgroup
        wait_for(lambda: os.rmdir(path) is None, 30)  # if it stays busy, the leak check names it
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines == [f"/dev/null {os.O_RDWR} ok", f"/dev/zero {os.O_RDONLY} ok", f"/dev/kmsg {os.O_WRONLY} 1",
                     f"/dev/kmsg {os.O_RDONLY} ok", f"/dev/tty0 {os.O_RDONLY} 1", f"/dev/ptmx {os.O_RDWR} ok"], lines
    # Control: the same opens outside the cgroup all succeed.
    host = subprocess.run([sys.executable, "-c", code.replace("open(sys.argv[1]", "0 and open(sys.argv[1]"), path],
                          capture_output=True, text=True, timeout=30)
    assert [line.endswith(" ok") for line in host.stdout.splitlines()] == [True] * 6, host.stdout + host.stderr
