"""config.json fields that need the kernel's help, each checked by its effect on real
containers: blockIO (a write throttled below what the disk does), cpu.mems (seen from
inside), hugepageLimits (an error naming it where there is no hugetlb controller),
the createContainer and startContainer hooks (where and when they run), and joining
pid and mount namespaces by path."""

from __future__ import annotations

import json
import os

import pytest

from conftest import write_config
from helpers import wait_for


def _config(path: str) -> dict:
    with open(os.path.join(path, "config.json")) as f:
        return json.load(f)


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def _disk_of(path: str) -> tuple[int, int]:
    """major, minor of the whole disk holding ``path`` (blk-throttle limits disks, not partitions)."""
    dev = os.stat(path).st_dev
    sys_dir = os.path.realpath(f"/sys/dev/block/{os.major(dev)}:{os.minor(dev)}")
    if os.path.exists(os.path.join(sys_dir, "partition")):
        sys_dir = os.path.dirname(sys_dir)
    with open(os.path.join(sys_dir, "dev")) as f:
        major, minor = f.read().strip().split(":")
    return int(major), int(minor)


def _has_blkio() -> bool:
    return os.path.isdir("/sys/fs/cgroup/blkio") or "io" in open("/sys/fs/cgroup/cgroup.controllers").read().split() \
        if os.path.exists("/sys/fs/cgroup/cgroup.controllers") else os.path.isdir("/sys/fs/cgroup/blkio")


# A direct write of 1.5 MiB, timed inside with /proc/uptime (centiseconds), and the
# container's own throttle file as its cgroup mount shows it.
WRITE = ("read t0 _ < /proc/uptime; dd if=/dev/zero of=/out/f bs=64k count=24 oflag=direct 2>/dev/null; "
         "read t1 _ < /proc/uptime; rm /out/f; echo ms=$(( (${t1%.*}${t1#*.} - ${t0%.*}${t0#*.}) * 10 )); "
         "cat /sys/fs/cgroup/blkio/blkio.throttle.write_bps_device 2>/dev/null || cat /sys/fs/cgroup/io.max")


def _write_bundle(bundle, tmp_path, blkio: dict | None) -> str:
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    path = bundle(["/bin/sh", "-c", WRITE])
    config = _config(path)
    # runc's spec mounts the cgroups at /sys/fs/cgroup already
    config["mounts"].append({"destination": "/out", "type": "bind", "source": str(out), "options": ["rbind"]})
    if blkio:
        config["linux"]["resources"]["blockIO"] = blkio
    write_config(path, config)
    return path


@pytest.mark.skipif(not _has_blkio(), reason="no blkio/io cgroup controller")
def test_block_io_throttle_slows_a_direct_write(tmp_path, bundle, oci):
    major, minor = _disk_of(str(tmp_path))
    free = oci("run", "--bundle", _write_bundle(bundle, tmp_path, None), "io-free")
    assert free.returncode == 0, free.stderr
    free_ms = int(free.stdout.split()[0][3:])
    limit = {"throttleWriteBpsDevice": [{"major": major, "minor": minor, "rate": 1 << 20}]}
    slow = oci("run", "--bundle", _write_bundle(bundle, tmp_path, limit), "io-slow")
    assert slow.returncode == 0, slow.stderr
    lines = slow.stdout.splitlines()
    slow_ms = int(lines[0][3:])
    # 1.5 MiB at 1 MiB/s: at least 1.4 s (blk-throttle has no burst allowance), far above free
    assert slow_ms >= 1400 and slow_ms > free_ms + 1000, (free_ms, slow_ms)
    assert lines[1] in (f"{major}:{minor} {1 << 20}", f"{major}:{minor} rbps=max wbps={1 << 20} riops=max wiops=max")


def _blkio_weight_settable() -> bool:
    for d in ("/sys/fs/cgroup/blkio", "/sys/fs/cgroup"):
        if any(os.path.exists(os.path.join(d, f)) for f in ("blkio.bfq.weight", "blkio.weight", "io.bfq.weight",
                                                            "io.weight")):
            return True
    return False


@pytest.mark.skipif(_blkio_weight_settable(), reason="this kernel has a proportional I/O scheduler")
def test_block_io_weight_without_cfq_or_bfq_names_the_field(tmp_path, bundle, oci):
    path = _write_bundle(bundle, tmp_path, {"weight": 500})
    out = oci("create", "--bundle", path, "io-weight")
    assert out.returncode != 0
    assert out.stderr.startswith("minirun-oci: linux.resources.blockIO.weight 500: this kernel cannot set it"), out.stderr
    assert len(out.stderr.splitlines()) == 1
    assert not os.path.exists(os.path.join(oci.root, "io-weight"))


def test_cpu_mems_seen_from_inside(bundle, oci):
    path = bundle(["/bin/sh", "-c", "grep -E '^(Cpus|Mems)_allowed_list' /proc/self/status; "
                                    "cat /sys/fs/cgroup/cpuset/cpuset.mems 2>/dev/null || cat /sys/fs/cgroup/cpuset.mems"])
    config = _config(path)
    config["linux"]["resources"]["cpu"] = {"cpus": "0", "mems": "0"}
    write_config(path, config)
    out = oci("run", "--bundle", path, "mems")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:3] == ["Cpus_allowed_list:\t0", "Mems_allowed_list:\t0", "0"]
    config["linux"]["resources"]["cpu"] = {"mems": "1"}  # this host has node 0 only
    write_config(path, config)
    out = oci("create", "--bundle", path, "mems2")
    assert out.returncode != 0 and "linux.resources.cpu.mems value '1': this host has memory nodes 0-0" in out.stderr


def test_unlimited_rlimit_is_the_uint64_all_ones(bundle, oci):
    """docker's `--ulimit core=-1` reaches the runtime as 2^64-1 (RLIM_INFINITY): runc applies it."""
    path = bundle(["/bin/sh", "-c", "ulimit -c; ulimit -Hc"])
    config = _config(path)
    config["process"]["rlimits"] = [{"type": "RLIMIT_CORE", "soft": (1 << 64) - 1, "hard": (1 << 64) - 1}]
    write_config(path, config)
    out = oci("run", "--bundle", path, "unlimited")
    assert (out.returncode, out.stdout) == (0, "unlimited\nunlimited\n"), out.stderr


def _hugetlb_usable() -> bool:
    if os.path.isdir("/sys/fs/cgroup/hugetlb"):
        return True
    for root in ("/sys/fs/cgroup", "/sys/fs/cgroup/unified"):
        try:
            with open(os.path.join(root, "cgroup.subtree_control")) as f:
                if "hugetlb" in f.read().split():
                    return True
        except OSError:
            pass
    return False


@pytest.mark.skipif(_hugetlb_usable(), reason="this host has a usable hugetlb controller")
def test_hugepage_limits_without_a_hugetlb_controller_names_the_field(bundle, oci):
    path = bundle(["/bin/true"])
    config = _config(path)
    config["linux"]["resources"]["hugepageLimits"] = [{"pageSize": "2MB", "limit": 4 << 20}]
    write_config(path, config)
    for verb in ("create", "run"):
        out = oci(verb, "--bundle", path, "huge")
        assert out.returncode != 0
        assert out.stderr.startswith("minirun-oci: linux.resources.hugepageLimits"), out.stderr
        assert "hugetlb" in out.stderr and len(out.stderr.splitlines()) == 1
        assert not os.path.exists(os.path.join(oci.root, "huge"))


class _Holder:
    """A process holding a fresh namespace (``unshare --mount`` or ``--pid --fork``), the
    way an engine keeps a pod's namespaces: killed and reaped at the end."""

    def __init__(self, *flags: str):
        import subprocess

        self.proc = subprocess.Popen(["unshare", *flags, "sleep", "120"])
        self.pid = self.proc.pid
        try:
            if "--fork" in flags:  # the sleep is the new pid namespace's init, a child of unshare
                assert wait_for(lambda: _read(f"/proc/{self.pid}/task/{self.pid}/children").split(), 30)
                self.pid = int(_read(f"/proc/{self.pid}/task/{self.pid}/children").split()[0])
            # the namespace is made once the holder has exec'd sleep (unshare execs after unsharing)
            assert wait_for(lambda: _read(f"/proc/{self.pid}/cmdline") == "sleep\x00120\x00", 30), "no holder"
        except BaseException:
            self.stop()
            raise

    def ns(self, name: str) -> str:
        return f"/proc/{self.pid}/ns/{name}"

    def stop(self) -> None:
        import signal

        for pid in {self.pid, self.proc.pid}:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait()


def test_join_pid_and_mount_namespaces_by_path(bundle, oci, rootfs):
    """runc's semantics: the container process is a child of a setns(pid) caller, so it is
    in that pid namespace (not its PID 1); the rootfs is set up in the joined mount
    namespace, whose other processes then see the container's root as theirs."""
    mnt_holder = _Holder("--mount", "--propagation", "private")
    try:
        pid_holder = _Holder("--pid", "--fork")
    except BaseException:
        mnt_holder.stop()
        raise
    try:
        path = bundle(["/bin/sh", "-c", "readlink /proc/self/ns/mnt; readlink /proc/self/ns/pid; echo pid=$$; "
                                        "cat /proc/1/cmdline | tr '\\0' ' '; echo; hostname"])
        config = _config(path)
        config["linux"]["namespaces"] = [{"type": "pid", "path": pid_holder.ns("pid")}, {"type": "uts"},
                                         {"type": "mount", "path": mnt_holder.ns("mnt")}, {"type": "ipc"}]
        write_config(path, config)
        out = oci("run", "--bundle", path, "joined")
        assert out.returncode == 0, out.stderr
        lines = out.stdout.splitlines()
        assert lines[:2] == [os.readlink(mnt_holder.ns("mnt")), os.readlink(pid_holder.ns("pid"))]
        assert lines[2] != "pid=1" and lines[3].strip() == "sleep 120"  # the holder is that namespace's init
        assert lines[4] == "runc"
        # pivot_root in the joined namespace moved its other processes' root too, as under runc
        assert os.stat(f"/proc/{mnt_holder.pid}/root").st_ino == os.stat(rootfs).st_ino
        assert os.readlink("/proc/self/ns/pid") != lines[1]  # and minirun-oci went back to its own
    finally:
        mnt_holder.stop()
        pid_holder.stop()


def test_hooks_see_the_runtimes_pid_of_a_process_that_joins_a_mount_namespace_with_another_proc(
        tmp_path, bundle, oci):
    """The hooks' state names the container's process by the pid the runtime sees. It is noted
    before the process joins the namespaces given by path: in a joined mount namespace whose /proc
    is another pid namespace's, /proc/self no longer answers with it (it said 1 or nothing)."""
    holder = _Holder("--mount", "--propagation", "private", "--pid", "--fork", "--mount-proc")
    try:
        seen = tmp_path / "seen"
        path = bundle(["/bin/true"])
        config = _config(path)
        config["linux"]["namespaces"] = [{"type": "pid"}, {"type": "uts"}, {"type": "mount", "path": holder.ns("mnt")}]
        config["hooks"] = {"createContainer": [{"path": "/bin/sh", "args": ["sh", "-c", f"cat > {seen}"]}]}
        write_config(path, config)
        created = oci("create", "--bundle", path, "joinedproc")
        assert created.returncode == 0, created.stderr
        try:
            assert json.loads(seen.read_text())["pid"] == oci.state("joinedproc")["pid"]
        finally:
            assert oci("delete", "--force", "joinedproc").returncode == 0
    finally:
        holder.stop()


def test_joining_the_runtimes_own_mount_namespace_is_refused(bundle, oci):
    path = bundle(["/bin/true"])
    config = _config(path)
    own = f"/proc/{os.getpid()}/ns/mnt"  # the test's, minirun-oci's too
    config["linux"]["namespaces"] = [{"type": "pid"}, {"type": "mount", "path": own}]
    write_config(path, config)
    out = oci("run", "--bundle", path, "hostmnt")
    assert out.returncode != 0
    assert f"linux.namespaces: mount namespace path {own}: is minirun-oci's own" in out.stderr, out.stderr
    config["linux"]["namespaces"] = [{"type": "mount"}, {"type": "pid", "path": "/proc/self/ns/net"}]
    write_config(path, config)
    out = oci("run", "--bundle", path, "wrongtype")
    assert out.returncode != 0 and "not a pid namespace (a network namespace)" in out.stderr, out.stderr


# Each hook appends a line to /out/order (the container's view) and writes what it saw.
HOOK = ('{{ echo "mnt=$(readlink /proc/self/ns/mnt) root=$(stat -L -c %i /) cwd=$(pwd) uid=$(id -u)"; cat; echo; }} '
        '> {out}/{kind}; echo {kind} >> {out}/order')


def _hooks_bundle(bundle, tmp_path, create_hook: dict, start_hook: dict | None = None) -> str:
    out, bin_dir = tmp_path / "out", tmp_path / "hookbin"
    out.mkdir(exist_ok=True)
    bin_dir.mkdir(exist_ok=True)
    # /out/main appears (renamed into place) only once both lines are written: the test waits for it
    path = bundle(["/bin/sh", "-c", "echo main >> /out/order; readlink /proc/self/ns/mnt > /out/main.tmp; "
                   "mv /out/main.tmp /out/main"])
    config = _config(path)
    config["process"]["user"] = {"uid": 1000, "gid": 1000}
    config["mounts"] += [{"destination": "/out", "type": "bind", "source": str(out), "options": ["rbind"]},
                         {"destination": "/hookbin", "type": "bind", "source": str(bin_dir), "options": ["rbind", "ro"]}]
    os.chmod(out, 0o777)
    # run by the runtime, as root: the file stays writable for the process's user
    runtime_hook = {"path": "/bin/sh", "args": ["sh", "-c", f"echo $0 >> {out}/order; chmod 666 {out}/order", "KIND"]}
    config["hooks"] = {"createContainer": [create_hook],
                       **{kind: [dict(runtime_hook, args=runtime_hook["args"][:-1] + [kind])]
                          for kind in ("prestart", "createRuntime")}}
    if start_hook:
        config["hooks"]["startContainer"] = [start_hook]
    write_config(path, config)
    return path


def test_create_and_start_container_hooks_run_where_and_when_the_spec_says(tmp_path, bundle, oci, rootfs):
    """createContainer: in the container's namespaces, once the mounts are made (it writes
    through the /out bind mount, from the rootfs as its cwd), before pivot_root (its root is
    still the host's), its path the runtime's (a host file). startContainer: after `start`,
    before the process's execve, its path the container's (/hookbin exists only there),
    as the process's user."""
    out = tmp_path / "out"
    create_script = tmp_path / "create-hook.sh"  # outside the rootfs: found in the runtime's view only
    create_script.write_text("#!/bin/sh\n" + HOOK.format(out="./out", kind="createContainer") + "\n")
    create_script.chmod(0o755)
    (tmp_path / "hookbin").mkdir()
    start_script = tmp_path / "hookbin" / "start-hook.sh"
    start_script.write_text("#!/bin/sh\n" + HOOK.format(out="/out", kind="startContainer") + "\n")
    start_script.chmod(0o755)
    path = _hooks_bundle(bundle, tmp_path, {"path": str(create_script), "env": ["PATH=/usr/bin:/bin"], "timeout": 10},
                         {"path": "/hookbin/start-hook.sh", "args": ["start-hook"], "env": ["PATH=/bin"]})
    created = oci("create", "--bundle", path, "hooks")
    assert created.returncode == 0, created.stderr
    try:
        pid = oci.state("hooks")["pid"]
        # at create, in the spec's order; startContainer waits for start
        assert (out / "order").read_text() == "prestart\ncreateRuntime\ncreateContainer\n"
        start = oci("start", "hooks")
        assert start.returncode == 0, start.stderr
        assert wait_for((out / "main").exists, 30)
        assert (out / "order").read_text() == "prestart\ncreateRuntime\ncreateContainer\nstartContainer\nmain\n"
        container_mnt = (out / "main").read_text().strip()
        assert container_mnt != os.readlink("/proc/self/ns/mnt")
        host_root = os.stat("/").st_ino
        seen, state = {}, {}
        for kind in ("createContainer", "startContainer"):
            first, state_json = (out / kind).read_text().split("\n")[:2]
            seen[kind] = dict(item.split("=", 1) for item in first.split())
            state[kind] = json.loads(state_json)
            assert seen[kind]["mnt"] == container_mnt, kind
            assert state[kind]["id"] == "hooks" and state[kind]["pid"] == pid and state[kind]["bundle"] == path
        assert seen["createContainer"]["cwd"] == rootfs and seen["createContainer"]["root"] == str(host_root)
        assert seen["createContainer"]["uid"] == "0" and state["createContainer"]["status"] == "creating"
        assert seen["startContainer"]["root"] == str(os.stat(rootfs).st_ino)  # pivoted: the container's root
        assert seen["startContainer"]["uid"] == "1000" and state["startContainer"]["status"] == "created"
    finally:
        assert oci("delete", "--force", "hooks").returncode == 0


def test_failing_or_slow_container_hooks_fail_create_and_start(tmp_path, bundle, oci):
    import time

    fail = {"path": "/bin/sh", "args": ["sh", "-c", "echo nope; exit 3"]}
    path = _hooks_bundle(bundle, tmp_path, fail)
    out = oci("create", "--bundle", path, "badhook")
    assert out.returncode != 0
    assert out.stderr == "minirun-oci: createContainer hook /bin/sh: exit status 3: nope\n", out.stderr
    assert not os.path.exists(os.path.join(oci.root, "badhook"))

    slow = {"path": "/bin/sleep", "args": ["sleep", "30"], "timeout": 1}
    path = _hooks_bundle(bundle, tmp_path, slow)
    t0 = time.monotonic()
    out = oci("run", "--bundle", path, "slowhook")
    assert out.returncode != 0 and "createContainer hook /bin/sleep: timed out after 1 s" in out.stderr, out.stderr
    assert time.monotonic() - t0 < 10

    ok = {"path": "/bin/true"}
    start_fail = {"path": "/bin/sh", "args": ["sh", "-c", "echo no start >&2; exit 4"]}
    path = _hooks_bundle(bundle, tmp_path, ok, start_fail)
    assert oci("create", "--bundle", path, "badstart").returncode == 0
    try:
        out = oci("start", "badstart")
        assert out.returncode != 0
        assert "startContainer hook /bin/sh: exit status 4: no start" in out.stderr, out.stderr
        assert not (tmp_path / "out" / "main").exists()  # the process never ran
        assert wait_for(lambda: oci.state("badstart")["status"] == "stopped", 30)
    finally:
        assert oci("delete", "--force", "badstart").returncode == 0
    out = oci("run", "--bundle", path, "badstart2")
    assert out.returncode != 0 and "startContainer hook /bin/sh: exit status 4: no start" in out.stderr, out.stderr


def test_update_keeps_the_device_rules_made_at_create(tmp_path, bundle, oci):
    """`update` changes the resources it is given; the devices cgroup stays as create made it
    (runc's update has no device rules)."""
    if not os.path.isdir("/sys/fs/cgroup/devices"):
        pytest.skip("no cgroup v1 devices hierarchy to read the rules from")
    path = bundle(["/bin/sleep", "60"])
    config = _config(path)
    config["linux"]["resources"]["devices"].append({"allow": True, "type": "c", "major": 10, "minor": 200,
                                                    "access": "rwm"})
    write_config(path, config)
    assert oci("run", "-d", "--bundle", path, "upd").returncode == 0
    try:
        cg = open(f"/proc/{oci.state('upd')['pid']}/cgroup").read()
        devices = "/sys/fs/cgroup/devices" + next(line.split(":", 2)[2] for line in cg.splitlines()
                                                  if ":devices:" in line) + "/devices.list"
        before = open(devices).read().split("\n")
        assert "c 10:200 rwm" in before
        resources = tmp_path / "resources.json"
        resources.write_text(json.dumps({"pids": {"limit": 42}}))
        assert oci("update", "--resources", str(resources), "upd").returncode == 0
        assert open(devices).read().split("\n") == before
    finally:
        assert oci("delete", "--force", "upd").returncode == 0


def test_joins_a_network_namespace_bind_mounted_elsewhere(bundle, oci):
    """CRI pods and `docker run --network host` hand the runtime an nsfs file bind-mounted
    outside /proc (``.../netns/cni-...``): its link text is its own path, so only the
    kernel (NS_GET_NSTYPE) can say what it is. runc joins it; so must we."""
    import subprocess

    name = f"mrtest-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        netns = f"/run/netns/{name}"
        path = bundle(["/bin/sh", "-c", "readlink /proc/self/ns/net"])
        config = _config(path)
        # uts too: `runc spec` sets a hostname, which needs a UTS namespace of its own (runc refuses it else)
        config["linux"]["namespaces"] = [{"type": "pid"}, {"type": "mount"}, {"type": "uts"},
                                         {"type": "network", "path": netns}]
        write_config(path, config)
        out = oci("run", "--bundle", path, "nsfsjoin")
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == f"net:[{os.stat(netns).st_ino}]"
        # the same file named as another kind is still refused
        config["linux"]["namespaces"] = [{"type": "mount"}, {"type": "pid", "path": netns}]
        write_config(path, config)
        out = oci("run", "--bundle", path, "nsfswrong")
        assert out.returncode != 0 and "not a pid namespace (a network namespace)" in out.stderr, out.stderr
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=True)
