"""Docker's everyday commands on runc and on minirun-oci, side by side (issue 19).

Every test runs once per runtime (the `runtime` fixture): what passes on runc must
pass on minirun. Containers come from a busybox image imported from the test rootfs.
"""

from __future__ import annotations

import glob
import json
import os
import re
import urllib.request

from dockerd import IMAGE
from helpers import Terminal, free_port, wait_for


def _inspect(docker, name: str) -> dict:
    return json.loads(docker.ok("inspect", name))[0]


def _state(docker, name: str) -> dict:
    return _inspect(docker, name)["State"]


def _cgroup(docker, name: str, controller: str) -> str:
    """The container's directory in a v1 hierarchy on the host (cgroupfs driver, parent /docker)."""
    cid = _inspect(docker, name)["Id"]
    return f"/sys/fs/cgroup/{controller}/docker/{cid}"


def _read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def _detached(docker, runtime: str, *args: str) -> str:
    """`docker run -d` with ``args`` (options, then IMAGE and command): the container's name."""
    name = f"mr-{runtime}-{os.urandom(3).hex()}"
    docker.ok("run", "-d", "--runtime", runtime, "--name", name, *args)
    return name


SLEEPER = (IMAGE, "sleep", "300")


# ---------------------------------------------------------------- run, -it, exec, logs, stop


def test_run_output_and_exit_code(docker, runtime):
    out = docker("run", "--rm", "--runtime", runtime, IMAGE, "sh", "-c", "echo out; echo err >&2; exit 3")
    # (docker's own warnings, e.g. about forwarding, may come first on stderr)
    assert (out.returncode, out.stdout, out.stderr.endswith("err\n")) == (3, "out\n", True), out.stderr
    ok = docker("run", "--rm", "--runtime", runtime, "-e", "GREETING=hi", "-w", "/tmp", IMAGE,
                "sh", "-c", 'echo "$GREETING $(pwd) $$ $(hostname)"')
    greeting, cwd, pid, hostname = ok.stdout.split()
    assert (ok.returncode, greeting, cwd, pid, len(hostname)) == (0, "hi", "/tmp", "1", 12)


def test_run_interactive_tty(docker, runtime):
    with Terminal("run", "--rm", "-it", "--runtime", runtime, IMAGE, "sh", program=docker.argv()) as term:
        term.expect(rb"/ # ")
        term.send(b"tty; echo $((6 * 7))\r")  # (the size docker sets after start may come after the prompt)
        term.expect(rb"/dev/pts/0\r\n42\r\n")
        term.send(b"exit 5\r")
        assert term.wait() == 5


def test_attach_and_detach(docker, runtime):
    name = _detached(docker, runtime, "-it", IMAGE, "sh")
    with Terminal("attach", name, program=docker.argv()) as term:
        term.send(b"echo attached $$\r")
        term.expect(rb"attached 1\r\n")
        term.send(b"\x10\x11")  # Ctrl-P Ctrl-Q: detach, the shell keeps running
        term.expect(rb"read escape sequence")
        term.wait()  # docker 20.10's attach answers 1 after a detach, on runc too
    assert _state(docker, name)["Running"]


def test_home_from_passwd(docker, runtime):
    """runc sets HOME from the container's /etc/passwd when the process's env lacks it (run and exec)."""
    out = docker.ok("run", "--rm", "--runtime", runtime, "--user", "nobody", IMAGE, "sh", "-c", "echo $HOME")
    assert out == "/nonexistent\n"
    out = docker.ok("run", "--rm", "--runtime", runtime, "--user", "4242", IMAGE, "sh", "-c", "echo $HOME")
    assert out == "/\n"  # no passwd entry: runc's default
    name = _detached(docker, runtime, *SLEEPER)
    assert docker.ok("exec", name, "sh", "-c", "echo $HOME") == "/root\n"
    assert docker.ok("exec", "-u", "nobody", name, "sh", "-c", "echo $HOME") == "/nonexistent\n"


def test_exec_logs_stop(docker, runtime):
    name = _detached(docker, runtime, IMAGE, "sh", "-c",
                     "trap 'echo bye; exit 7' TERM; echo started; while :; do sleep 0.1; done")
    assert wait_for(lambda: "started" in docker.ok("logs", name), 20)
    out = docker("exec", "-e", "X=1", name, "sh", "-c", 'echo "in $X $(cat /proc/1/comm)"; exit 4')
    assert (out.returncode, out.stdout) == (4, "in 1 sh\n"), out.stderr
    assert docker.ok("exec", "-w", "/tmp", name, "pwd") == "/tmp\n"
    out = docker("exec", "-w", "/nonexist", name, "pwd")  # runc's exec does not make it
    assert out.returncode == 126 and "/nonexist" in out.stdout + out.stderr, out.stdout + out.stderr
    with Terminal("exec", "-it", name, "sh", "-c", "tty", program=docker.argv()) as term:
        term.expect(rb"/dev/pts/\d+")
        assert term.wait() == 0
    docker.ok("stop", "-t", "30", name)
    state = _state(docker, name)
    assert (state["Status"], state["ExitCode"], state["OOMKilled"]) == ("exited", 7, False)
    assert docker.ok("logs", name).split() == ["started", "bye"]


def test_restart_policy_on_failure(docker, runtime):
    """containerd's shim records each exit (kill --all of a stopped container answers 0), so docker restarts."""
    name = _detached(docker, runtime, "--restart", "on-failure:2", IMAGE, "sh", "-c", "echo run; exit 1")
    assert wait_for(lambda: _inspect(docker, name)["RestartCount"] == 2 and not _state(docker, name)["Running"]
                    and not _state(docker, name)["Restarting"], 60)
    assert _state(docker, name)["ExitCode"] == 1
    assert docker.ok("logs", name).split() == ["run"] * 3


def test_oom_killed_is_137(docker, runtime):
    out = docker("run", "--runtime", runtime, "--name", f"oom-{runtime}", "--memory", "16m", "--memory-swap", "16m",
                 IMAGE, "tail", "/dev/zero")
    state = _state(docker, f"oom-{runtime}")
    assert (out.returncode, state["ExitCode"], state["OOMKilled"]) == (137, 137, True), out.stderr


def test_missing_command_fails_at_run(docker, runtime):
    """runc fails at create, so docker reports it: exit 127 (126 not executable) from `docker run -d`."""
    for command, code, words in (("nosuchcmd", 127, "executable file not found"),
                                 ("/no/such", 127, "no such file or directory"),
                                 ("/etc/passwd", 126, "permission denied")):
        out = docker("run", "-d", "--runtime", runtime, IMAGE, command)
        assert out.returncode == code and words in out.stderr and command in out.stderr, (command, out.stderr)


def test_stop_with_host_pid_namespace(docker, runtime):
    """With --pid host the shim's `kill --all ID 9` comes after the main process exited: it must answer 0."""
    name = _detached(docker, runtime, "--pid", "host", *SLEEPER)
    docker.ok("stop", "-t", "30", name)
    state = _state(docker, name)
    assert (state["Status"], state["ExitCode"]) == ("exited", 143)
    cid = _inspect(docker, name)["Id"]  # the shim logs "failed to kill init's children" otherwise
    assert not [line for line in docker.daemon_log().splitlines() if "level=error" in line and cid in line]


# ---------------------------------------------------------------- limits, update, stats, pause


def test_limits(docker, runtime):
    name = _detached(docker, runtime, "--memory", "32m", "--memory-swap", "32m", "--cpus", "0.5",
                     "--pids-limit", "20", "--cpuset-cpus", "0", *SLEEPER)
    memory, cpu, pids, cpuset = (_cgroup(docker, name, c) for c in ("memory", "cpu", "pids", "cpuset"))
    assert _read(f"{memory}/memory.limit_in_bytes") == str(32 << 20)
    assert _read(f"{cpu}/cpu.cfs_quota_us") == "50000" and _read(f"{cpu}/cpu.cfs_period_us") == "100000"
    assert _read(f"{pids}/pids.max") == "20"
    assert _read(f"{cpuset}/cpuset.cpus") == "0"
    assert "Cpus_allowed_list:\t0\n" in docker.ok("exec", name, "cat", "/proc/self/status")


def test_update(docker, runtime):
    """`docker update` of limits the container was created without: runc joins every v1 hierarchy at
    create (cpuset too, as kubelet's CPU manager needs), so each can be set later."""
    name = _detached(docker, runtime, *SLEEPER)
    docker.ok("update", "--memory", "48m", "--memory-swap", "48m", "--cpus", "1", "--pids-limit", "30",
              "--cpuset-cpus", "0", "--blkio-weight", "300", name)
    memory, cpu, pids, cpuset = (_cgroup(docker, name, c) for c in ("memory", "cpu", "pids", "cpuset"))
    assert _read(f"{memory}/memory.limit_in_bytes") == str(48 << 20)
    assert _read(f"{cpu}/cpu.cfs_quota_us") == "100000"
    assert _read(f"{pids}/pids.max") == "30"
    assert _read(f"{cpuset}/cpuset.cpus") == "0"
    assert "Cpus_allowed_list:\t0\n" in docker.ok("exec", name, "cat", "/proc/self/status")


def test_memory_swappiness_and_oom_kill_disable(docker, runtime):
    """runc applies both on cgroup v1."""
    name = _detached(docker, runtime, "--memory", "32m", "--memory-swappiness", "0", "--oom-kill-disable", *SLEEPER)
    memory = _cgroup(docker, name, "memory")
    assert _read(f"{memory}/memory.swappiness") == "0"
    assert "oom_kill_disable 1" in _read(f"{memory}/memory.oom_control")


def test_ulimits(docker, runtime):
    """--ulimit core=-1 arrives as the uint64 all-ones: unlimited."""
    out = docker("run", "--rm", "--runtime", runtime, "--ulimit", "nofile=100:200", "--ulimit", "core=-1", IMAGE,
                 "sh", "-c", "echo $(ulimit -n) $(ulimit -Hn) $(ulimit -c)")
    assert (out.returncode, out.stdout) == (0, "100 200 unlimited\n"), out.stderr


def test_kernel_memory_is_ignored(docker, runtime):
    """runc ignores linux.resources.memory.kernel with a warning where it cannot apply it."""
    out = docker("run", "--rm", "--runtime", runtime, "--kernel-memory", "64m", IMAGE, "echo", "ran")
    assert (out.returncode, out.stdout) == (0, "ran\n"), out.stderr


def _bytes(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)([kMG]?B)", text.strip()).groups()
    return float(number) * {"B": 1, "kB": 1e3, "MB": 1e6, "GB": 1e9}[unit]


def test_stats_block_io_is_the_containers(docker, runtime, tmp_path):
    """Block I/O comes from the container's blkio cgroup: a host-wide figure is the host's since boot."""
    name = _detached(docker, runtime, "-v", f"{tmp_path}:/data", *SLEEPER)
    docker.ok("exec", name, "dd", "if=/dev/zero", "of=/data/f", "bs=1M", "count=4", "oflag=direct")
    block_io, pids = docker.ok("stats", "--no-stream", "--format", "{{.BlockIO}}|{{.PIDs}}", name).strip().split("|")
    read, written = block_io.split("/")
    assert 4e6 <= _bytes(written) < 64e6 and _bytes(read) < 64e6, block_io  # 4 MiB written, direct
    assert pids == "1"


def _frozen(docker, name: str) -> bool:
    """The container's cgroup is frozen: v1 freezer (runc on this host) or cgroup.freeze (v2)."""
    cid = _inspect(docker, name)["Id"]
    states = [_read(p) for p in glob.glob(f"/sys/fs/cgroup/freezer/docker/{cid}/freezer.state")]
    events = [_read(p) for p in glob.glob(f"/sys/fs/cgroup/unified/docker/{cid}/cgroup.events")]
    return "FROZEN" in states or any("frozen 1" in e for e in events)


def test_pause_unpause(docker, runtime):
    name = _detached(docker, runtime, *SLEEPER)
    docker.ok("pause", name)
    assert _state(docker, name)["Paused"] and _frozen(docker, name)
    docker.ok("unpause", name)
    assert not _state(docker, name)["Paused"] and not _frozen(docker, name)
    assert docker.ok("exec", name, "echo", "thawed") == "thawed\n"


# ---------------------------------------------------------------- networks


def test_published_port(docker, runtime):
    port = free_port()
    name = _detached(docker, runtime, "-p", f"127.0.0.1:{port}:80", IMAGE, "sh", "-c",
                     f"mkdir /www && echo hello from {runtime} > /www/index.html && exec httpd -f -p 80 -h /www")

    def fetch() -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as reply:
            return reply.read().decode()

    assert wait_for(lambda: fetch() == f"hello from {runtime}\n", 20), docker("logs", name).stderr
    assert docker.ok("port", name, "80").strip() == f"127.0.0.1:{port}"


def test_user_network(docker, runtime):
    net = f"mrnet-{runtime}"
    docker.ok("network", "create", net)
    try:
        server = _detached(docker, runtime, "--network", net, *SLEEPER)
        address = _inspect(docker, server)["NetworkSettings"]["Networks"][net]["IPAddress"]
        out = docker("run", "--rm", "--runtime", runtime, "--network", net, IMAGE, "sh", "-c",
                     f"ping -c 1 -W 5 {address} && nslookup {server} 127.0.0.11")
        assert out.returncode == 0 and address in out.stdout.split("Name:")[-1], out.stdout + out.stderr
        out = docker("exec", server, "ip", "-o", "-4", "addr", "show", "eth0")
        assert f"inet {address}/" in out.stdout
    finally:
        docker.remove_all()
        docker.ok("network", "rm", net)


def test_host_network(docker, runtime):
    """dockerd hands a bind-mounted nsfs file (E/netns/default), not /proc/PID/ns/net."""
    out = docker.ok("run", "--rm", "--runtime", runtime, "--network", "host", IMAGE, "readlink", "/proc/self/ns/net")
    assert out.strip() == os.readlink("/proc/self/ns/net")


# ---------------------------------------------------------------- volumes, devices, privileges


def test_volumes(docker, runtime, tmp_path):
    (tmp_path / "in").write_text("from the host\n")
    out = docker.ok("run", "--rm", "--runtime", runtime, "-v", f"{tmp_path}:/data", "-v", f"{tmp_path}:/ro:ro",
                    IMAGE, "sh", "-c", "cat /data/in && echo from $$ > /data/out && ! touch /ro/x 2>/dev/null")
    assert out == "from the host\n"
    assert (tmp_path / "out").read_text() == "from 1\n" and not (tmp_path / "x").exists()


def test_device(docker, runtime):
    out = docker.ok("run", "--rm", "--runtime", runtime, "--device", "/dev/zero:/dev/myzero", IMAGE,
                    "sh", "-c", "head -c 3 /dev/myzero | od -An -tx1")
    assert out.split() == ["00", "00", "00"]


def test_device_ptmx(docker, runtime):
    out = docker("run", "--rm", "--runtime", runtime, "--device", "/dev/ptmx", IMAGE, "ls", "/dev/ptmx")
    assert (out.returncode, out.stdout) == (0, "/dev/ptmx\n"), out.stderr


def test_privileged(docker, runtime):
    """Every device, every capability. This host's capability bounding set lacks some of them, and runc
    refuses to start then (`unable to apply caps`): where it fails, only that may be the reason."""
    out = docker("run", "--rm", "--runtime", runtime, "--privileged", IMAGE, "ls", "/dev/ptmx", "/dev/zero")
    if out.returncode:
        assert out.returncode == 125 and "caps" in out.stderr and "/dev/" not in out.stderr, out.stderr
    else:
        assert out.stdout == "/dev/ptmx\n/dev/zero\n"
