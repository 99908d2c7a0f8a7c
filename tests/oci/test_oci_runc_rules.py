"""Behaviours runc's own suite (and containerd's, docker's) checks, on real bundles:
the capability sets as runc applies them, HOME from the container's /etc/passwd,
a hook's inherited environment, /dev as runc sets it up (a bound /dev left alone,
existing nodes and links kept, /dev/ptmx always the devpts link), bind sources
reached as the runtime, process.cwd on a read-only root, mount propagation, and
--preserve-fds with gaps. Each expectation is what runc 1.1 prints for the same bundle."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys

from conftest import OCI, write_config
from helpers import wait_for


def _config(path: str) -> dict:
    with open(os.path.join(path, "config.json")) as f:
        return json.load(f)


def _caps(text: str) -> dict[str, str]:
    """/proc/self/status's Cap lines -> {"Inh": "0000000000000021", ...}."""
    return {line[3:6]: line.split()[1] for line in text.splitlines() if line.startswith("Cap")}


# ---------------------------------------------------------------- capabilities

def test_capability_sets_as_runc_applies_them(bundle, oci):
    """Inheritable as given, even where permitted lacks it; ambient where both hold it;
    an unknown name skipped with runc's warning, not refused."""
    path = bundle(["/bin/grep", "Cap", "/proc/self/status"])
    config = _config(path)
    caps = config["process"]["capabilities"]  # runc spec: AUDIT_WRITE, KILL, NET_BIND_SERVICE
    caps["bounding"] += ["CAP_CHOWN", "CAP_NOPE"]
    caps["inheritable"] = ["CAP_KILL", "CAP_CHOWN"]
    write_config(path, config)
    out = oci("run", "--bundle", path, "caps")
    assert out.returncode == 0, out.stderr
    assert _caps(out.stdout) == {"Inh": "0000000000000021", "Prm": "0000000020000420", "Eff": "0000000020000420",
                                 "Bnd": "0000000020000421", "Amb": "0000000000000020"}
    assert "ignoring unknown or unavailable capabilities: [CAP_NOPE]" in out.stderr


def test_exec_takes_the_containers_sets_and_cap_adds_to_them(bundle, oci):
    """runc's "runc exec --cap" test: with no capabilities, exec has none; each --cap
    joins bounding, effective and permitted (ambient too, which needs inheritable)."""
    path = bundle(["/bin/sleep", "60"])
    config = _config(path)
    config["process"]["capabilities"] = {}
    write_config(path, config)
    assert oci("run", "-d", "--bundle", path, "execcap").returncode == 0
    try:
        out = oci("exec", "execcap", "grep", "Cap", "/proc/self/status")
        assert out.returncode == 0, out.stderr
        assert set(_caps(out.stdout).values()) == {"0000000000000000"}, out.stdout
        out = oci("exec", "--cap", "CAP_KILL", "--cap", "CAP_AUDIT_WRITE", "execcap",
                  "grep", "Cap", "/proc/self/status")
        assert out.returncode == 0, out.stderr
        assert _caps(out.stdout) == {"Inh": "0000000000000000", "Prm": "0000000020000020", "Eff": "0000000020000020",
                                     "Bnd": "0000000020000020", "Amb": "0000000000000000"}
    finally:
        assert oci("delete", "--force", "execcap").returncode == 0


# ---------------------------------------------------------------- HOME, hooks

def test_home_comes_from_the_containers_passwd(tmp_path, bundle, oci):
    """runc's setupUser: without HOME in process.env, the user's home in /etc/passwd,
    "/" for a uid it does not list; for run and exec alike. A HOME given is kept."""
    path = bundle(["/bin/sh", "-c", 'echo "$HOME"; sleep 60'])
    config = _config(path)
    config["process"]["env"] = ["PATH=/bin:/usr/bin"]
    write_config(path, config)
    assert oci("run", "-d", "--bundle", path, "home").returncode == 0
    try:
        shown = oci("exec", "home", "sh", "-c", 'echo "$HOME"')
        assert shown.stdout.strip() == "/root", shown.stderr
        assert oci("exec", "--user", "1000", "home", "sh", "-c", 'echo "$HOME"').stdout.strip() == "/"
        assert oci("exec", "--env", "HOME=/given", "home", "sh", "-c", 'echo "$HOME"').stdout.strip() == "/given"
        process = tmp_path / "process.json"
        process.write_text(json.dumps({"args": ["sh", "-c", 'echo "$HOME"'], "cwd": "/", "env": ["PATH=/bin"],
                                       "user": {"uid": 65534, "gid": 65534}}))
        assert oci("exec", "--process", str(process), "home").stdout.strip() == "/nonexistent"
    finally:
        assert oci("delete", "--force", "home").returncode == 0
    path = bundle(["/bin/sh", "-c", 'echo "$HOME"'])
    out = oci("run", "--bundle", path, "home2")
    assert (out.returncode, out.stdout.strip()) == (0, "/root"), out.stderr


def test_a_hook_without_env_inherits_its_runners_environment(tmp_path, bundle, oci):
    """runc runs hooks as exec.Cmd, whose nil Env inherits: prestart and poststop from
    the runtime's environment, createContainer from the container process's (runc's
    init has process.env by then). An empty env stays empty."""
    out_dir = tmp_path / "hooks"
    out_dir.mkdir()
    path = bundle(["/bin/true"])
    config = _config(path)
    config["process"]["env"] = ["PATH=/bin", "FROM_PROCESS=yes"]

    def hook(name: str, env=None) -> dict:
        entry = {"path": "/bin/sh", "args": ["sh", "-c", f'echo "$FROM_RUNTIME/$FROM_PROCESS" > {out_dir}/{name}']}
        if env is not None:
            entry["env"] = env
        return entry

    config["hooks"] = {"prestart": [hook("prestart"), hook("prestart-empty", [])],
                       "createContainer": [hook("createContainer")], "poststop": [hook("poststop")]}
    write_config(path, config)
    out = oci("run", "--bundle", path, "hookenv", env=dict(os.environ, FROM_RUNTIME="runtime"))
    assert out.returncode == 0, out.stderr
    seen = {p.name: p.read_text().strip() for p in out_dir.iterdir()}
    assert seen == {"prestart": "runtime/", "prestart-empty": "/", "createContainer": "/yes", "poststop": "runtime/"}


# ---------------------------------------------------------------- /dev

def _fake_host_dev(where) -> str:
    """A directory shaped like a host's /dev (a node, a link, a ptmx), to bind as /dev
    without touching the real one."""
    where.mkdir()
    os.mknod(where / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    os.mknod(where / "ptmx", stat.S_IFCHR | 0o666, os.makedev(5, 2))
    os.symlink("/proc/self/fd", where / "fd")
    (where / "pts").mkdir()
    return str(where)


def test_a_bound_dev_is_used_as_it_is(tmp_path, bundle, oci):
    """runc's needsSetupDev: /dev bound from the host gets no default devices or links
    (creating them failed: `symlink(/dev/fd): File exists`), and nothing is added to it."""
    host_dev = _fake_host_dev(tmp_path / "dev")
    def nodes() -> list[str]:  # what is not a directory (the config's mount points are made there)
        return sorted(n for n in os.listdir(host_dev) if os.path.islink(os.path.join(host_dev, n)) or
                      not os.path.isdir(os.path.join(host_dev, n)))

    before = nodes()
    path = bundle(["/bin/sh", "-c", "ls /dev; readlink /dev/fd"])
    config = _config(path)
    config["mounts"] = [m if m["destination"] != "/dev" else
                        {"destination": "/dev", "type": "bind", "source": host_dev, "options": ["rbind"]}
                        for m in config["mounts"]]
    write_config(path, config)
    out = oci("run", "--bundle", path, "devbound")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["fd", "mqueue", "null", "ptmx", "pts", "shm", "/proc/self/fd"]
    assert nodes() == before


def test_devices_as_runc_makes_them(bundle, oci):
    """linux.devices: /dev/ptmx (docker's --device /dev/ptmx, and --privileged) ends as
    runc's link to the devpts ptmx; a default device listed again is made once; a node
    outside /dev is made there, owned by its uid and gid."""
    path = bundle(["/bin/sh", "-c", "readlink /dev/ptmx; ls -lLn /dev/ptmx /dev/tty | awk '{print $1,$3,$4,$5,$6}'; "
                                    "stat -c '%A %u %g %t %T' /mnt/devs/sub/null2"])
    config = _config(path)
    config["mounts"].append({"destination": "/mnt/devs", "type": "tmpfs", "source": "tmpfs", "options": ["mode=755"]})
    config["linux"]["devices"] = [
        {"path": "/dev/ptmx", "type": "c", "major": 5, "minor": 2, "fileMode": 0o666, "uid": 0, "gid": 0},
        {"path": "/dev/tty", "type": "c", "major": 5, "minor": 0},
        {"path": "/mnt/devs/sub/null2", "type": "c", "major": 1, "minor": 3, "fileMode": 0o640, "uid": 1000,
         "gid": 1001}]
    write_config(path, config)
    out = oci("run", "--bundle", path, "devices")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["pts/ptmx", "crw-rw-rw- 0 0 5, 2", "crw-rw-rw- 0 0 5, 0",
                                       "crw-r----- 1000 1001 1 3"]


# ---------------------------------------------------------------- mounts, cwd

def test_bind_source_is_reached_as_the_runtime_in_a_user_namespace(tmp_path, bundle, oci):
    """runc opens mount sources in the runtime's context: a source under a directory
    only the host's root may enter is bound, though the namespace's root could not walk there."""
    locked = tmp_path / "locked"
    (locked / "src").mkdir(parents=True)
    (locked / "src" / "file").write_text("reached\n")
    os.chmod(locked / "src", 0o755)
    os.chmod(locked, 0)
    path = bundle(["/bin/cat", "/data/file"])
    config = _config(path)
    config["linux"]["namespaces"].append({"type": "user"})
    config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    config["mounts"].append({"destination": "/data", "type": "bind", "source": str(locked / "src"),
                             "options": ["rbind", "ro"]})
    write_config(path, config)
    try:
        out = oci("run", "--bundle", path, "locked")
    finally:
        os.chmod(locked, 0o755)
    assert (out.returncode, out.stdout) == (0, "reached\n"), out.stderr


def test_a_missing_cwd_is_made_before_the_root_turns_read_only(tmp_path, bundle, oci, rootfs):
    """runc makes process.cwd in prepareRootfs, before the read-only remount."""
    own_root = tmp_path / "rootfs"
    shutil.copytree(rootfs, own_root, symlinks=True)
    path = bundle(["/bin/sh", "-c", "pwd; touch /x 2>/dev/null || echo ro"])
    config = _config(path)
    config["root"] = {"path": str(own_root), "readonly": True}
    config["process"]["cwd"] = "/new/work/dir"
    write_config(path, config)
    out = oci("run", "--bundle", path, "cwd")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["/new/work/dir", "ro"]
    assert (own_root / "new" / "work" / "dir").is_dir()


def test_mount_propagation_options_are_applied(tmp_path, bundle, oci):
    """runbindable (left out by the recursive bind pivot_root needs, before) and rshared
    on mounts of the config, as mountinfo shows them inside."""
    path = bundle(["/bin/sh", "-c", "grep -E ' /mnt/(u|s) ' /proc/self/mountinfo | "
                                    "awk '{o=\"\"; for (i=7; $i!=\"-\"; i++) o=o\" \"$i; print $5 o}'"])
    config = _config(path)
    config["mounts"] += [{"destination": "/mnt/u", "type": "tmpfs", "source": "tmpfs", "options": ["runbindable"]},
                         {"destination": "/mnt/s", "type": "tmpfs", "source": "tmpfs", "options": ["rshared"]}]
    write_config(path, config)
    out = oci("run", "--bundle", path, "propagation")
    assert out.returncode == 0, out.stderr
    lines = dict(line.split(" ", 1) for line in out.stdout.splitlines())
    assert lines["/mnt/u"] == "unbindable", out.stdout
    assert lines["/mnt/s"].startswith("shared:"), out.stdout


# ---------------------------------------------------------------- fds

def test_preserve_fds_with_gaps(tmp_path, bundle, oci):
    """fds 3 and 9 passed, 4 to 8 closed: both reach the process and nothing appears
    in the gap, not even the fds minirun-oci opened there for itself."""
    (tmp_path / "three").write_text("three\n")
    (tmp_path / "nine").write_text("nine\n")
    script = "cat <&3; cat <&9; for n in 4 5 6 7 8; do [ -e /proc/$$/fd/$n ] && echo open:$n; done; echo end"
    path = bundle(["/bin/sh", "-c", script])
    command = (f'exec "$0" --root {oci.root} run --preserve-fds 7 --bundle {path} gaps '
               f'3<{tmp_path}/three 9<{tmp_path}/nine')
    out = subprocess.run(["sh", "-c", command, OCI], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["three", "nine", "end"]


def test_exec_preserve_fds_with_gaps(tmp_path, bundle, oci):
    """`exec --preserve-fds` as runc's (podman exec --preserve-fds): the caller's 3 and 9 reach
    the exec'd process, its 12 (past 3+7) does not, and nothing appears in the gap 4 to 8, where
    minirun-oci opened fds of its own. Without the option, none of them."""
    path = bundle(["/bin/sleep", "60"])
    assert oci("run", "-d", "--bundle", path, "keepfds").returncode == 0
    try:
        for name in ("three", "nine", "twelve"):
            (tmp_path / name).write_text(f"{name}\n")
        script = ("for n in 3 9; do [ -e /proc/$$/fd/$n ] && cat <&$n; done; "
                  "for n in 4 5 6 7 8 10 11 12; do [ -e /proc/$$/fd/$n ] && echo open:$n; done; echo end")
        for option, expected in ((["--preserve-fds", "7"], ["three", "nine", "end"]), ([], ["end"])):
            command = " ".join(['exec "$0" --root', oci.root, "exec", *option, "keepfds", "sh", "-c", f"'{script}'",
                                f"3<{tmp_path}/three 9<{tmp_path}/nine 12<{tmp_path}/twelve"])
            out = subprocess.run(["sh", "-c", command, OCI], capture_output=True, text=True, timeout=30)
            assert out.returncode == 0, out.stderr
            assert out.stdout.split() == expected, option
        out = oci("exec", "--preserve-fds", "-1", "keepfds", "true")
        assert out.returncode == 255 and out.stderr.count("\n") == 1 and "--preserve-fds" in out.stderr, out
    finally:
        assert oci("delete", "--force", "keepfds").returncode == 0


def test_a_created_pid_1_holds_only_what_it_still_needs(tmp_path, bundle, oci):
    """A created container's PID 1 waits for `start` (and can be entered by `exec` meanwhile)
    holding stdio, --preserve-fds, the exec fifo and its report socket: not the caller's other
    fds (fd 12 here, which would only go at COMMAND's execve) nor the cgroup tasks files its
    setup wrote, even in a gap of --preserve-fds (4 to 8). Control: after `start`, COMMAND
    holds stdio and the preserved 3 and 9."""
    path = bundle(["/bin/sleep", "60"])
    passed = {3: "three", 9: "nine", 12: "twelve"}
    for name in passed.values():
        (tmp_path / name).write_text(name)
    # the caller: its files on 3, 9 and 12 (inheritable), 4 to 8 closed (subprocess closes them)
    launch = ("import os, sys\nfor fd, path in zip((3, 9, 12), sys.argv[1:4]):\n"
              "    os.dup2(os.open(path, os.O_RDONLY), fd)\n    os.set_inheritable(fd, True)\n"
              "os.execv(sys.argv[4], sys.argv[4:])")
    with open(tmp_path / "out", "w") as out:
        created = subprocess.run([sys.executable, "-c", launch, *(str(tmp_path / n) for n in passed.values()), OCI,
                                  "--root", oci.root, "create", "--preserve-fds", "7", "--pid-file",
                                  str(tmp_path / "pid"), "--bundle", path, "held"],
                                 stdin=subprocess.DEVNULL, stdout=out, stderr=out, timeout=30)
    assert created.returncode == 0, (tmp_path / "out").read_text()
    pid = int((tmp_path / "pid").read_text())
    try:
        held = {int(fd): os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}
        assert held[3].endswith("/three") and held[9].endswith("/nine")
        others = [os.path.basename(link) if "/" in link else link.split(":")[0]
                  for fd, link in held.items() if fd > 2 and fd not in (3, 9)]
        assert sorted(others) == ["exec.fifo", "socket"], held
        assert oci("start", "held").returncode == 0
        assert wait_for(lambda: open(f"/proc/{pid}/comm").read() == "sleep\n")
        assert sorted(int(fd) for fd in os.listdir(f"/proc/{pid}/fd")) == [0, 1, 2, 3, 9]
    finally:
        assert oci("delete", "--force", "held").returncode == 0
