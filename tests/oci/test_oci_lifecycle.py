"""minirun-oci's verbs on real bundles: runc's own config, the create/start split, the
OCI process model (process.args is PID 1), exec, ps, pause, update, hooks."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

from conftest import OCI, run_to_files, write_config
from helpers import wait_for

HERE = os.path.dirname(os.path.abspath(__file__))


def test_runc_spec_bundle_runs(tmp_path, rootfs, oci):
    """The config `runc spec` writes, with terminal off and a root path, runs as runc runs it."""
    bundle = tmp_path / "runc-bundle"
    bundle.mkdir()
    shutil.copytree(rootfs, bundle / "rootfs", symlinks=True)
    subprocess.run(["runc", "spec"], cwd=bundle, check=True)
    config = json.loads((bundle / "config.json").read_text())
    config["process"]["terminal"] = False
    config["process"]["args"] = ["/bin/sh", "-c", "echo pid=$$ host=$(hostname); cat /proc/self/status; exit 7"]
    (bundle / "config.json").write_text(json.dumps(config))
    out = oci("run", "--bundle", str(bundle), "runc-spec")
    assert out.returncode == 7, out.stderr
    assert "pid=1 host=runc" in out.stdout  # process.args is PID 1; hostname from config
    caps = {line.split(":")[0]: int(line.split()[1], 16) for line in out.stdout.splitlines() if line.startswith("Cap")}
    assert caps["CapBnd"] == caps["CapEff"] == (1 << 29) | (1 << 5) | (1 << 10)  # AUDIT_WRITE KILL NET_BIND_SERVICE
    assert "NoNewPrivs:\t1" in out.stdout
    assert os.listdir(oci.root) == []


def test_create_waits_until_start_and_the_subreaper_reaps(tmp_path, bundle, state_root):
    marker = tmp_path / "started"
    path = bundle(["/bin/sh", "-c", "touch /out/started; exit 3"])
    config = json.load(open(os.path.join(path, "config.json")))
    config["mounts"].append({"destination": "/out", "type": "bind", "source": str(tmp_path), "options": ["rbind"]})
    write_config(path, config)
    out = subprocess.run([sys.executable, os.path.join(HERE, "subreaper_harness.py"), OCI, state_root, path, "life",
                          str(tmp_path / "pid")], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["create_rc"] == 0, result["create_err"]
    assert result["parent_is_me"], "the container process must be reparented to the caller (a subreaper)"
    assert result["state_created"] == "created"
    assert result["start_rc"] == 0 and result["exit_code"] == 3
    assert result["state_after"] == "stopped" and result["delete_rc"] == 0
    assert marker.exists()


def test_lifecycle_states_and_nothing_runs_before_start(tmp_path, bundle, oci):
    path = bundle(["/bin/sh", "-c", "echo ran > /dev/shm/x; sleep 60"])
    pid_file = tmp_path / "pid"
    out = oci("create", "--bundle", path, "--pid-file", str(pid_file), "lc")
    assert out.returncode == 0, out.stderr
    pid = int(pid_file.read_text())
    st = oci.state("lc")
    assert st["status"] == "created" and st["pid"] == pid and st["bundle"] == path
    assert {"ociVersion", "id", "rootfs", "created", "owner", "annotations"} <= st.keys()
    # Waiting before execve: still the runtime's code, not /bin/sh.
    assert os.readlink(f"/proc/{pid}/exe") != "/bin/busybox"
    assert oci("start", "lc").returncode == 0
    assert oci.state("lc")["status"] == "running"
    again = oci("start", "lc")
    assert again.returncode != 0 and "minirun-oci: " in again.stderr and oci.log_errors()
    refused = oci("delete", "lc")
    assert refused.returncode != 0 and "running" in refused.stderr
    assert oci("kill", "lc", "KILL").returncode == 0
    assert wait_for(lambda: oci.state("lc")["status"] == "stopped", 30)
    assert oci("delete", "lc").returncode == 0
    assert oci("state", "lc").returncode != 0


def test_kill_by_number_and_delete_force(bundle, oci):
    path = bundle(["/bin/sleep", "60"])
    assert oci("run", "--detach", "--bundle", path, "k1").returncode == 0
    assert oci.state("k1")["status"] == "running"
    assert oci("kill", "k1", "9").returncode == 0
    assert oci("delete", "--force", "k1").returncode == 0
    assert oci("run", "-d", "--bundle", path, "k2").returncode == 0
    assert oci("exec", "--detach", "k2", "/bin/sleep", "60").returncode == 0
    table = oci("ps", "k2").stdout.splitlines()
    assert "PID" in table[0] and len(table) == 3  # header, PID 1, the exec'd sleep
    assert oci("kill", "--all", "k2", "KILL").returncode == 0  # every process of its cgroup
    assert wait_for(lambda: oci.state("k2")["status"] == "stopped", 30)
    assert [s["status"] for s in json.loads(oci("list", "--format", "json").stdout)] == ["stopped"]
    assert oci("delete", "k2").returncode == 0
    assert oci("run", "-d", "--bundle", path, "k3").returncode == 0  # the same cgroupsPath, free again
    assert oci("delete", "--force", "k3").returncode == 0  # kills a running one
    assert oci("list", "--quiet").stdout.strip() == ""


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


def test_a_foreground_runs_process_dies_with_it_whatever_its_user(tmp_path, bundle, oci):
    """A foreground `run`'s PID 1 has PDEATHSIG: a SIGKILLed minirun-oci takes it down. Its
    setuid to process.user cleared it (the kernel does at a new euid): set again after. Control:
    uid 0, where nothing clears it."""
    for uid in (0, 1000):
        path = bundle(["/bin/sleep", "300"])
        with open(os.path.join(path, "config.json")) as f:
            config = json.load(f)
        config["process"]["user"] = {"uid": uid, "gid": uid}
        write_config(path, config)
        pid_file = tmp_path / f"pid{uid}"
        proc = subprocess.Popen([OCI, "--root", oci.root, "run", "--pid-file", str(pid_file), "--bundle", path,
                                 f"pd{uid}"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        assert wait_for(lambda: pid_file.exists() and pid_file.read_text().strip())
        pid = int(pid_file.read_text())
        try:
            assert wait_for(lambda: open(f"/proc/{pid}/comm").read() == "sleep\n")  # past its setuid
            proc.kill()
            proc.wait()
            assert wait_for(lambda: _gone(pid)), f"uid {uid}: PID 1 survived minirun-oci's SIGKILL"
        finally:
            if not _gone(pid):
                os.kill(pid, 9)
            assert oci("delete", "--force", f"pd{uid}").returncode == 0


def test_kill_of_a_stopped_container_speaks_as_runc(bundle, oci):
    """containerd's shim sends `kill --all ID 9` after every exit and counts an error as
    "already gone" only if it says `container not running` (or a few other runc texts):
    runc 1.1 answers 0 for --all, and that text for a plain kill."""
    path = bundle(["/bin/true"])
    assert oci("create", "--bundle", path, "gone").returncode == 0
    assert oci("start", "gone").returncode == 0
    assert wait_for(lambda: oci.state("gone")["status"] == "stopped", 30)
    assert oci("kill", "--all", "gone", "9").returncode == 0
    out = oci("kill", "gone", "9")
    assert out.returncode != 0 and "container not running" in out.stderr, out.stderr
    assert oci("delete", "gone").returncode == 0


def test_a_warning_to_a_read_only_stderr_is_not_fatal(bundle, oci):
    """containerd's shim starts the sandbox's runtime calls with fd 2 a read-only
    /dev/null; a warning (here: an AppArmor profile this host cannot apply) must not turn
    into EBADF and exit 120."""
    path = bundle(["/bin/true"])
    with open(path + "/config.json") as f:
        config = json.load(f)
    config["process"]["apparmorProfile"] = "cri-containerd.apparmor.d"
    with open(path + "/config.json", "w") as f:
        json.dump(config, f)
    with open(os.devnull) as ro:
        out = subprocess.run([OCI, "--root", oci.root, "--log", oci.log, "--log-format", "json", "run",
                              "--bundle", path, "quietwarn"], stdout=subprocess.DEVNULL, stderr=ro, timeout=30)
    assert out.returncode == 0
    with open(oci.log) as f:  # the warning still reached the engine's --log file
        assert any(json.loads(line)["level"] == "warning" for line in f)


def test_exec_with_a_missing_cwd_fails(bundle, oci):
    """runc's exec changes to process.cwd and fails if it is missing (only create makes it)."""
    path = bundle(["/bin/sleep", "60"])
    config = json.load(open(os.path.join(path, "config.json")))
    config["mounts"].append({"destination": "/scratch", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]})
    write_config(path, config)
    assert oci("run", "-d", "--bundle", path, "nocwd").returncode == 0
    try:
        out = oci("exec", "--cwd", "/scratch/nonexist", "nocwd", "/bin/pwd")
        assert out.returncode != 0 and "chdir(/scratch/nonexist)" in out.stderr, out.stdout + out.stderr
        assert oci("exec", "nocwd", "/bin/sh", "-c", "test -e /scratch/nonexist").returncode == 1  # not made
        assert oci("exec", "--cwd", "/scratch", "nocwd", "/bin/pwd").stdout == "/scratch\n"
    finally:
        oci("delete", "--force", "nocwd")


def test_exec_ps_pause_resume_update(tmp_path, bundle, oci):
    path = bundle(["/bin/sleep", "60"])
    assert oci("run", "-d", "--bundle", path, "ex").returncode == 0
    try:
        out = oci("exec", "--env", "GREETING=hi", "--cwd", "/tmp", "ex", "/bin/sh", "-c", 'echo "$GREETING $(pwd) $$"')
        assert out.returncode == 0, out.stderr
        greeting, cwd, pid = out.stdout.split()
        assert (greeting, cwd) == ("hi", "/tmp") and int(pid) > 1
        assert oci("exec", "ex", "/bin/sh", "-c", "exit 4").returncode == 4
        missing = oci("exec", "ex", "/no/such")
        assert missing.returncode == 127
        process = tmp_path / "process.json"
        process.write_text(json.dumps({"args": ["/bin/sh", "-c", "id -u; id -G"], "cwd": "/",
                                       "user": {"uid": 1000, "gid": 1000, "additionalGids": [5, 7]}, "env": []}))
        out = oci("exec", "--process", str(process), "ex")
        assert out.stdout.split("\n")[:2] == ["1000", "1000 5 7"], out.stderr
        ps = oci("ps", "--format", "json", "ex")
        assert json.loads(ps.stdout) == [oci.state("ex")["pid"]]
        assert oci("pause", "ex").returncode == 0
        assert oci.state("ex")["status"] == "paused"
        assert _kernel_says_frozen(oci.state("ex")["pid"]) in (True, None)  # pause returns once every task stopped
        assert oci("resume", "ex").returncode == 0
        assert oci.state("ex")["status"] == "running"
        assert _kernel_says_frozen(oci.state("ex")["pid"]) in (False, None)
        resources = tmp_path / "resources.json"
        resources.write_text(json.dumps({"pids": {"limit": 42}}))
        assert oci("update", "--resources", str(resources), "ex").returncode == 0
        cg = open(f"/proc/{oci.state('ex')['pid']}/cgroup").read()
        pids_path = next(line.split(":", 2)[2] for line in cg.splitlines() if ":pids:" in line)
        assert open(f"/sys/fs/cgroup/pids{pids_path}/pids.max").read().strip() == "42"
    finally:
        assert oci("delete", "--force", "ex").returncode == 0


def _kernel_says_frozen(pid: int) -> bool | None:
    """cgroup.events "frozen" of the process's v2 cgroup (None on a v1-only host)."""
    line = next((x for x in open(f"/proc/{pid}/cgroup").read().splitlines() if x.startswith("0::")), None)
    mount = "/sys/fs/cgroup/unified" if os.path.isdir("/sys/fs/cgroup/unified") else "/sys/fs/cgroup"
    if line is None or not os.path.exists(f"{mount}{line[3:]}/cgroup.events"):
        return None
    with open(f"{mount}{line[3:]}/cgroup.events") as f:
        return "frozen 1" in f.read().splitlines()


def test_config_fields_seen_from_inside(tmp_path, bundle, oci):
    hook_out = tmp_path / "hooks"
    hook_out.mkdir()
    script = ("echo host=$(hostname) domain=$(cat /proc/sys/kernel/domainname) cwd=$(pwd) umask=$(umask); "
              "echo ids=$(id -u):$(id -g):$(id -G); echo nofile=$(ulimit -n); "
              "echo oom=$(cat /proc/self/oom_score_adj); echo ping=$(cat /proc/sys/net/ipv4/ping_group_range); "
              "echo env=$FOO; touch /rofs 2>/dev/null && echo rootfs=rw || echo rootfs=ro; "
              "touch /data/x 2>/dev/null && echo data=rw || echo data=ro; touch /scratch/x && echo scratch=rw; "
              "wc -c < /etc/passwd")
    path = bundle(["/bin/sh", "-c", script])
    config = json.load(open(os.path.join(path, "config.json")))
    config["hostname"], config["domainname"] = "inside", "example.org"
    proc = config["process"]
    proc.update(cwd="/tmp", env=["PATH=/bin:/usr/bin", "FOO=bar"], oomScoreAdj=123,
                rlimits=[{"type": "RLIMIT_NOFILE", "soft": 321, "hard": 321}])
    proc["user"] = {"uid": 0, "gid": 0, "additionalGids": [10, 20], "umask": 0o077}  # root: ro must refuse it
    config["linux"]["maskedPaths"].append("/etc/passwd")  # a file known not to be empty
    config["linux"]["sysctl"] = {"net.ipv4.ping_group_range": "0 1"}
    config["mounts"] += [
        {"destination": "/data", "type": "bind", "source": str(tmp_path), "options": ["rbind", "ro", "nosuid"]},
        {"destination": "/scratch", "type": "tmpfs", "source": "tmpfs", "options": ["mode=1777", "size=1m"]}]
    hook = {"path": "/bin/sh", "args": ["sh", "-c", f"cat > {hook_out}/$0", "KIND"], "env": ["PATH=/usr/bin:/bin"]}
    config["hooks"] = {kind: [dict(hook, args=hook["args"][:-1] + [kind])] for kind in
                       ("prestart", "createRuntime", "poststart", "poststop")}
    write_config(path, config)
    out = oci("run", "--bundle", path, "fields")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.split("\n")
    assert lines[0] == "host=inside domain=example.org cwd=/tmp umask=0077"
    assert lines[1] == "ids=0:0:0 10 20"
    assert lines[2:6] == ["nofile=321", "oom=123", "ping=0 1", "env=bar"]
    assert lines[6:9] == ["rootfs=ro", "data=ro", "scratch=rw"]
    assert lines[9].strip() == "0"  # maskedPaths: /etc/passwd reads as /dev/null
    assert os.path.getsize(os.path.join(config["root"]["path"], "etc/passwd")) > 0
    for kind in ("prestart", "createRuntime", "poststart", "poststop"):
        state = json.loads((hook_out / kind).read_text())
        assert state["id"] == "fields" and state["bundle"] == path, kind
    # run while the container is set up, before pivot_root (runc's order): "creating"
    assert json.loads((hook_out / "prestart").read_text())["status"] == "creating"


def test_state_and_start_import_nothing_heavy(bundle, oci):
    path = bundle(["/bin/true"])
    assert oci("create", "--bundle", path, "light").returncode == 0
    try:
        for verb in ("state", "start"):
            probe = ("import sys; from minirun.oci.main import main; rc = main(['--root', %r, %r, 'light']); "
                     "heavy = [m for m in ('click', 'dataclasses', 'subprocess', 'minirun.syscalls', "
                     "'minirun.cgroups', 'minirun.spec', 'minirun.container') if m in sys.modules]; "
                     "print(rc, heavy)" % (oci.root, verb))
            out = run_to_files([sys.executable, "-c", probe])
            assert out.stdout.strip().endswith("0 []"), (verb, out.stdout, out.stderr)
    finally:
        assert oci("delete", "--force", "light").returncode == 0


def test_version_features_spec(tmp_path, oci):
    assert "minirun-oci version" in oci("--version").stdout
    features = json.loads(oci("features").stdout)
    assert "prestart" in features["hooks"] and "pid" in features["linux"]["namespaces"]
    assert oci("spec", "--bundle", str(tmp_path)).returncode == 0
    assert json.loads((tmp_path / "config.json").read_text())["root"]["path"] == "rootfs"
    assert oci("spec", "--bundle", str(tmp_path)).returncode != 0  # never overwrites
    systemd = oci("--systemd-cgroup", "state", "x")
    assert systemd.returncode != 0 and "systemd" in systemd.stderr


def test_user_namespace_with_id_mappings(bundle, oci):
    path = bundle(["/bin/sh", "-c", "cat /proc/self/uid_map /proc/self/gid_map; id -u; echo x > /dev/null && echo ok"])
    config = json.load(open(os.path.join(path, "config.json")))
    config["linux"]["namespaces"].append({"type": "user"})
    config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    write_config(path, config)
    out = oci("run", "--bundle", path, "userns")
    assert out.returncode == 0, out.stderr
    lines = [line.split() for line in out.stdout.splitlines()]
    assert lines[0] == lines[1] == ["0", "100000", "65536"]
    assert lines[2:] == [["0"], ["ok"]]  # root inside, an unprivileged host uid outside; /dev/null bound


def _mknod_config(path: str, devices=None) -> None:
    config = json.load(open(os.path.join(path, "config.json")))
    for kind in ("bounding", "effective", "permitted"):
        config["process"]["capabilities"][kind].append("CAP_MKNOD")
    if devices:
        config["linux"]["devices"] = devices
    write_config(path, config)


def test_devices_cgroup_from_the_config(bundle, oci):
    """linux.resources.devices as runc applies it: the engine's deny-all, runc's defaults after
    it, an allow rule per linux.devices node. A node made inside cannot be opened; the same
    device listed in linux.devices can."""
    script = "mknod /dev/k c 10 237 && { (: < /dev/k) && echo opened || echo refused; }; (: > /dev/null) && echo null-ok"
    denied = bundle(["/bin/sh", "-c", script])
    _mknod_config(denied)
    out = oci("run", "--bundle", denied, "devdeny")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["refused", "null-ok"], (out.stdout, out.stderr)
    assert "Operation not permitted" in out.stderr
    # the positive control: listed in linux.devices, so allowed
    allowed = bundle(["/bin/sh", "-c", "(: < /dev/loop-control) && echo opened"])
    _mknod_config(allowed, [{"path": "/dev/loop-control", "type": "c", "major": 10, "minor": 237, "fileMode": 0o600}])
    out = oci("run", "--bundle", allowed, "devallow")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["opened"]
