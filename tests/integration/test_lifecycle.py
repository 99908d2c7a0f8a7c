"""Detached containers and their verbs: run -d, ps, logs, exec, stop, kill, rm, inspect."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from helpers import Gate, inspect, minirun, popen_minirun, wait_for
from minirun import cgroups
from minirun.state import LOG_ROOT, STATE_ROOT


@pytest.fixture
def detached(rootfs):
    """Start named detached containers; remove them whatever happens."""
    names = []

    def start(name, *args):
        out = minirun("run", "-d", "--name", name, *args[:-1], rootfs, *args[-1])
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == name
        names.append(name)
        return name

    yield start
    for name in names:
        minirun("rm", "-f", name)


def test_run_detached_then_ps_logs_stop_rm(detached):
    name = detached("lc-basic", ["/bin/sh", "-c", 'echo hello; trap "echo bye; exit 3" TERM; while :; do sleep 0.1; done'])
    ps = json.loads(minirun("ps", "--json").stdout)
    assert [c["status"] for c in ps if c["id"] == name] == ["running"]
    assert wait_for(lambda: minirun("logs", name).stdout == "hello\n")
    assert minirun("stop", name).returncode == 0
    st = inspect(name)
    assert st["status"] == "exited" and st["exit_code"] == 3
    assert minirun("logs", name).stdout == "hello\nbye\n"
    assert name not in minirun("ps").stdout
    assert name in minirun("ps", "--all").stdout
    assert minirun("rm", name).returncode == 0
    assert not os.path.exists(os.path.join(STATE_ROOT, name))
    assert minirun("inspect", name).returncode == 125


def test_exec_joins_the_same_pid_namespace_and_cgroup(detached):
    name = detached("lc-exec", "--memory", "48m", ["/bin/sleep", "100"])
    # the init's /proc/1/ns is out of COMMAND's reach (it holds more capabilities): compare from the host
    init_pid_ns = os.readlink(f"/proc/{inspect(name)['pid']}/ns/pid")
    # COMMAND (PID 2) and the exec'd shell must share every cgroup, whatever the host's layout (v1, v2)
    out = minirun("exec", name, "/bin/sh", "-c", "cat /proc/1/comm /proc/2/comm; readlink /proc/self/ns/pid;"
                  " echo $$; [ \"$(cat /proc/self/cgroup)\" = \"$(cat /proc/2/cgroup)\" ] && echo same-cgroup;"
                  " hostname")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.split()
    assert lines[:2] == ["minirun-init", "sleep"]
    assert lines[2] == init_pid_ns, "exec is in another PID namespace"
    assert int(lines[3]) > 2
    assert lines[4] == "same-cgroup", f"exec is in another cgroup: {out.stdout}"
    assert lines[-1] == name
    # on the host: the exec'd shell counted against the container's own pids controller (pids.peak: v1, v2 >= 6.13)
    peak = os.path.join(cgroups.detect().controllers["pids"], "minirun", name, "pids.peak")
    if os.path.exists(peak):
        with open(peak) as f:
            assert int(f.read()) >= 3


def test_exec_exit_codes_and_env(detached):
    name = detached("lc-exec2", "-e", "FROM_RUN=1", ["/bin/sleep", "100"])
    assert minirun("exec", name, "/bin/sh", "-c", "exit 4").returncode == 4
    assert minirun("exec", name, "no-such-cmd").returncode == 127
    out = minirun("exec", "-e", "EXTRA=2", "-w", "/tmp", name, "/bin/sh", "-c", 'echo "$FROM_RUN $EXTRA $(pwd)"')
    assert out.stdout.strip() == "1 2 /tmp"


def test_stop_escalates_to_sigkill_when_sigterm_is_ignored(detached):
    name = detached("lc-stubborn", ["/bin/sh", "-c", "trap '' TERM; echo up; while :; do sleep 0.1; done"])
    assert wait_for(lambda: minirun("logs", name).stdout == "up\n")
    t0 = time.monotonic()
    assert minirun("stop", "-t", "1", name).returncode == 0
    assert time.monotonic() - t0 >= 1.0
    st = inspect(name)
    assert st["status"] == "exited" and st["exit_code"] == 137


def test_kill_sends_the_signal(detached):
    name = detached("lc-kill", ["/bin/sh", "-c", 'trap "exit 9" USR1; echo armed; while :; do sleep 0.1; done'])
    assert wait_for(lambda: minirun("logs", name).stdout == "armed\n", 30)  # the trap is set
    assert minirun("kill", "-s", "USR1", name).returncode == 0
    assert wait_for(lambda: inspect(name)["status"] == "exited")
    assert inspect(name)["exit_code"] == 9


def test_rm_refuses_a_running_container_without_force(detached):
    name = detached("lc-rm", ["/bin/sleep", "100"])
    out = minirun("rm", name)
    assert out.returncode == 125 and "is running" in out.stderr
    assert minirun("rm", "-f", name).returncode == 0
    assert not os.path.exists(os.path.join(STATE_ROOT, name))


class StartInFlight:
    """A detached start as `rm -f` or `stop` may find it: claimed, "creating", its init not
    recorded yet. It records its init (a sleep) at the verb's first wait, and lets go of the
    container (its owner records the exit) at the first wait after the init died."""

    def __init__(self, name: str):
        from minirun import state

        self.state = state
        self.claim = state.claim(name, {"args": ["/bin/sleep", "100"]}, keep=True).take()
        self.init = subprocess.Popen(["/bin/sleep", "100"])

    def step(self) -> None:
        if self.claim.state["status"] == self.state.CREATING:
            self.claim.update(status=self.state.RUNNING, pid=self.init.pid,
                              pid_start=self.state.start_time(self.init.pid))
        elif self.init.poll() is not None:
            self.claim.update(status=self.state.EXITED, exit_code=128 - self.init.returncode)
            self.claim.release()

    def close(self) -> None:
        self.init.kill()
        self.init.wait()
        self.claim.release()


@pytest.mark.parametrize("verb", ["rm", "stop"])
def test_rm_force_and_stop_reach_a_container_whose_start_is_in_flight(monkeypatch, verb):
    """A start records its init only once COMMAND runs: an `rm -f` or `stop` that comes
    before must not signal nobody and carry on (rm -f: 'did not exit after SIGKILL' after
    ten seconds, with the container left running; stop: done, and the container runs)."""
    from minirun import lifecycle

    name = f"lc-inflight-{verb}"
    start = StartInFlight(name)
    real_sleep = time.sleep
    monkeypatch.setattr(lifecycle.time, "sleep", lambda s: (start.step(), real_sleep(s)))
    try:
        if verb == "rm":
            assert lifecycle.remove(name, force=True) == name
            assert not os.path.exists(os.path.join(STATE_ROOT, name))
        else:
            assert lifecycle.stop(name) == name
        assert start.init.wait(timeout=10) == (-9 if verb == "rm" else -15)
    finally:
        start.close()
        lifecycle.cleanup.remove(name)


def test_logs_of_a_detached_container_whose_start_is_in_flight_are_empty():
    """The shim makes the log once COMMAND runs (after `run -d` returned, even): `logs` before
    that shows the nothing there is yet, not 'has no log (only detached containers have one)'."""
    start = StartInFlight("lc-inflight-logs")
    try:
        out = minirun("logs", "lc-inflight-logs")
        assert (out.returncode, out.stdout, out.stderr) == (0, "", "")
    finally:
        start.close()
        from minirun import cleanup

        cleanup.remove("lc-inflight-logs")


def test_verbs_on_many_containers_act_on_every_one_that_exists(detached):
    """As docker: a name that is not there is reported, and the others are acted on all the
    same (an rm -f that stopped at the first missing name left the rest behind)."""
    first, second = detached("lc-many1", ["/bin/sleep", "100"]), detached("lc-many2", ["/bin/sleep", "100"])
    out = minirun("kill", "-s", "KILL", "lc-missing", first)
    assert out.returncode == 125 and out.stderr == "minirun: no such container: lc-missing\n"
    assert out.stdout == f"{first}\n"
    assert wait_for(lambda: inspect(first)["status"] == "exited")
    out = minirun("rm", "-f", first, "lc-missing", second, "lc-missing2")
    assert out.returncode == 125 and out.stdout == f"{first}\n{second}\n"
    assert out.stderr.splitlines() == ["minirun: no such container: lc-missing",
                                       "minirun: no such container: lc-missing2"]
    assert not any(os.path.exists(os.path.join(STATE_ROOT, n)) for n in (first, second))


def test_a_stopped_container_keeps_its_name_until_rm(detached, rootfs):
    name = detached("lc-name", ["/bin/true"])
    assert wait_for(lambda: inspect(name)["status"] == "exited")
    out = minirun("run", "--name", name, rootfs, "/bin/true")
    assert out.returncode == 125 and "already in use" in out.stderr


def test_detached_oom_kill_is_recorded(detached):
    name = detached("lc-oom", "--memory", "16m", ["tail", "/dev/zero"])
    assert wait_for(lambda: inspect(name)["status"] == "exited", 30)
    st = inspect(name)
    assert st["oom_killed"] is True and st["exit_code"] == 137


def test_detached_bad_command_fails_at_once(rootfs):
    out = minirun("run", "-d", "--name", "lc-bad", rootfs, "no-such-cmd")
    assert out.returncode == 127 and "not found" in out.stderr
    minirun("rm", "-f", "lc-bad")


def test_detached_rm_flag_removes_on_exit(rootfs):
    out = minirun("run", "-d", "--rm", "--name", "lc-auto", rootfs, "/bin/true")
    assert out.returncode == 0
    assert wait_for(lambda: not os.path.exists(os.path.join(STATE_ROOT, "lc-auto")))


def test_gc_removes_a_data_directory_whose_state_is_gone(detached):
    """A reboot empties /run, not /var/lib: a detached container's data directory (log,
    writable layer) outlives its state, and no `rm` can name it. gc removes it, and
    leaves a live container's alone."""
    gone, live = detached("lc-reboot", ["/bin/sh", "-c", "echo written > /f"]), detached("lc-live", ["/bin/sleep", "100"])
    assert wait_for(lambda: inspect(gone)["status"] == "exited")
    assert os.path.isfile(os.path.join(LOG_ROOT, gone, "upper", "f"))
    shutil.rmtree(os.path.join(STATE_ROOT, gone))  # what a reboot does to it
    out = minirun("gc")
    assert out.returncode == 0 and f"removed {gone}\n" in out.stdout, out
    assert not os.path.exists(os.path.join(LOG_ROOT, gone)) and not os.path.exists(os.path.join(STATE_ROOT, gone))
    assert os.path.isdir(os.path.join(LOG_ROOT, live, "upper")) and inspect(live)["status"] == "running"


def test_gc_removes_a_data_directory_a_dead_start_was_making():
    """state.make_data_dir makes the directory under a temporary name, then renames it: one
    whose start died in between goes once old (a young one may be a start's at work)."""
    from minirun.state import NEW_GRACE_S, NEW_PREFIX

    os.makedirs(LOG_ROOT, mode=0o700, exist_ok=True)
    old, young = (os.path.join(LOG_ROOT, NEW_PREFIX + suffix) for suffix in ("0ld0ld0ld0ld", "y0ungy0ungy0"))
    try:
        for path in (old, young):
            os.mkdir(path, 0o700)
            with open(os.path.join(path, "state-root"), "w") as f:
                f.write(STATE_ROOT)
        long_ago = time.time() - NEW_GRACE_S - 60
        os.utime(old, (long_ago, long_ago))
        out = minirun("gc")
        assert out.returncode == 0, out
        assert not os.path.exists(old) and os.path.isdir(young)
    finally:
        for path in (old, young):
            shutil.rmtree(path, ignore_errors=True)


def test_gc_kills_nothing_in_a_cgroup_whose_state_is_not_its_own(detached, monkeypatch):
    """A cgroup under minirun's parent without a state directory here may be another state
    root's running container (MINIRUN_STATE_ROOT set alone), or one whose state was removed by
    hand: gc leaves it and its processes alone, also when a start of the name comes between
    its look for the state and the removal (the removal holds a claim of the name, as a start
    does); once nothing runs in it, it goes, as minirun-oci's stale cgroups do."""
    import contextlib

    from minirun import cgroups, cleanup, state

    name = detached("lc-stale", ["/bin/sleep", "100"])
    pid = inspect(name)["pid"]
    record = os.path.join(STATE_ROOT, name)
    for gone in (record, os.path.join(LOG_ROOT, name)):
        shutil.rmtree(gone)  # no state here: as another root's container looks from here
    listed, looked = cgroups.stale_ids, os.path.lexists
    phase = []  # "sweep" once gc lists minirun's cgroups, "started" once the start took the name
    try:
        out = minirun("gc")
        assert out.returncode == 0 and "lc-stale" in out.stderr and "not killed" in out.stderr, out
        assert os.path.exists(f"/proc/{pid}"), "gc killed a container whose state is not its own"
        with contextlib.ExitStack() as start:
            def sweep(*args, **kwargs):
                if not kwargs.get("parent"):  # minirun's parent, not minirun-oci's
                    phase.append("sweep")
                return listed(*args, **kwargs)

            def a_start_takes_the_name(path):
                found = looked(path)
                if path == record and phase == ["sweep"]:
                    start.enter_context(state.claim(name, {}))  # right after gc looked
                    phase.append("started")
                return found

            monkeypatch.setattr(cgroups, "stale_ids", sweep)
            monkeypatch.setattr(os.path, "lexists", a_start_takes_the_name)
            cleanup.gc()
            monkeypatch.undo()
            assert phase == ["sweep", "started"], "gc did not look for the state of the cgroup's name"
            assert os.path.exists(f"/proc/{pid}"), "gc removed the cgroup of the name's new owner"
    finally:
        monkeypatch.undo()
        os.kill(pid, 9)  # its init: the container's processes go with it
    assert wait_for(lambda: not os.path.exists(f"/proc/{pid}"))
    out = minirun("gc")  # nothing runs in it now: it goes
    assert out.returncode == 0 and "removed lc-stale" in out.stdout, out
    assert name not in cgroups.stale_ids()


def test_gc_kills_nothing_in_a_nested_cgroup_whose_state_is_not_its_own(detached):
    """The processes of a stale cgroup may all be in cgroups below it (a container that makes
    its own, as systemd does): its cgroup.procs is empty, yet something runs in it."""
    name = detached("lc-nested", ["/bin/sleep", "100"])
    pid = inspect(name)["pid"]
    cgroup = cgroups.existing(name)
    pids, dirs = cgroup.pids(), cgroup._owned()
    for d in dirs:
        os.mkdir(os.path.join(d, "nested"))
        for knob in ("cpuset.cpus", "cpuset.mems"):  # v1's cpuset: a new cgroup has none to run on
            if os.path.exists(os.path.join(d, "nested", knob)):  # v2: only where the parent enables cpuset
                with open(os.path.join(d, knob)) as src, open(os.path.join(d, "nested", knob), "w") as dst:
                    dst.write(src.read())
        for p in pids:
            with open(os.path.join(d, "nested", "cgroup.procs"), "w") as f:
                f.write(str(p))
    for gone in (os.path.join(STATE_ROOT, name), os.path.join(LOG_ROOT, name)):
        shutil.rmtree(gone)  # no state here: as another root's container looks from here
    try:
        out = minirun("gc")
        assert out.returncode == 0 and name in out.stderr, out
        assert os.path.exists(f"/proc/{pid}"), "gc killed what runs below a cgroup whose state is not its own"
    finally:
        with contextlib.suppress(ProcessLookupError):  # gone if gc killed it
            os.kill(pid, 9)
        assert wait_for(lambda: not os.path.exists(f"/proc/{pid}"))
        for nested in (os.path.join(d, "nested") for d in dirs):  # empty once the kill reaches it
            assert wait_for(lambda: not os.path.isdir(nested) or os.rmdir(nested) or True)
    out = minirun("gc")
    assert out.returncode == 0 and f"removed {name}" in out.stdout, out


def test_exec_joins_the_user_namespace_too(detached):
    name = detached("lc-userns", "--userns-map", "0:100000:65536", "--no-overlay", ["/bin/sleep", "100"])
    out = minirun("exec", name, "/bin/sh", "-c", "id -u; cat /proc/self/uid_map")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["0", "0", "100000", "65536"]


def _follow_past_a_gate(name: str, gate: Gate, first: str, timeout: float) -> subprocess.CompletedProcess:
    """`logs -f NAME` while the container waits at ``gate`` after printing ``first``: once
    `logs -f` has streamed that line, the container is let through, so what comes after is
    followed live (no sleep hoping `logs -f` attaches in time)."""
    proc = popen_minirun("logs", "-f", name)
    try:
        seen = proc.stdout.readline()
        assert seen == first + "\n", seen or proc.stderr.read()  # nothing: `logs -f` ended, say why
        gate.open()
        rest, err = proc.communicate(timeout=timeout)
    finally:
        gate.close()
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return subprocess.CompletedProcess(proc.args, proc.returncode, seen + rest, err)


def test_logs_follow_streams_until_the_container_exits(detached, tmp_path):
    gate = Gate(tmp_path)
    name = detached("lc-follow", *gate.volume,
                    ["/bin/sh", "-c", "echo line1; read go < /gate/go; echo line2; echo line3"])
    out = _follow_past_a_gate(name, gate, "line1", 30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["line1", "line2", "line3"]


def _log_files(name: str) -> dict[str, int]:
    directory = os.path.join(LOG_ROOT, name)  # the container's data directory: its upper and work are there too
    return {f: os.path.getsize(os.path.join(directory, f)) for f in os.listdir(directory) if f.startswith("log")}


@pytest.mark.parametrize("tty", [False, True], ids=["pipe", "tty"])
def test_a_log_is_rotated_on_disk_within_its_bound_and_read_back_in_order(detached, tty):
    """--log-opt max-size/max-file as docker's json-file driver: a container that writes far
    more than max-size * max-file leaves at most max-file files of at most max-size bytes,
    on disk (not the tmpfs /run), and `logs` returns the tail, in order. The shim writes the
    log in both cases: with -t from the pty, without from a pipe."""
    name = f"lc-rot-{'t' if tty else 'p'}"
    detached(name, *(["-t"] if tty else []), "--log-opt", "max-size=4k", "--log-opt", "max-file=3",
             ["/bin/sh", "-c", "i=0; while [ $i -lt 3000 ]; do echo line-$i; i=$((i+1)); done"])
    assert wait_for(lambda: inspect(name)["status"] == "exited", 30)
    files = _log_files(name)
    assert sorted(files) == ["log", "log.1", "log.2"] and max(files.values()) <= 4096, files
    assert not os.path.exists(os.path.join(STATE_ROOT, name, "log"))
    out = minirun("logs", name).stdout.replace("\r\n", "\n")  # a pty's ONLCR
    lines = out.split("\n")[1:-1]  # the first may be cut by a rotation
    assert lines[-1] == "line-2999" and len(out) <= 3 * 4096
    numbers = [int(line.split("-")[1]) for line in lines]
    assert numbers == list(range(numbers[0], 3000)) and numbers[0] > 1800
    assert minirun("rm", name).returncode == 0
    assert not os.path.exists(os.path.join(LOG_ROOT, name))


def test_a_log_has_a_default_bound(detached):
    """Docker's default is unbounded: minirun's is max-size=10m, max-file=3. 48 MiB of output
    leave at most 30 MiB on disk."""
    name = detached("lc-bound", ["/bin/sh", "-c", "dd if=/dev/zero bs=1M count=48 2>/dev/null | tr '\\0' x"])
    assert wait_for(lambda: inspect(name)["status"] == "exited", 60)
    files = _log_files(name)
    assert len(files) == 3 and max(files.values()) <= 10 << 20, files


def test_logs_follow_reads_across_rotations(detached, tmp_path):
    gate = Gate(tmp_path)
    name = detached("lc-follow-rot", "--log-opt", "max-size=1k", "--log-opt", "max-file=100", *gate.volume,
                    ["/bin/sh", "-c", "echo start; read go < /gate/go; "
                                      "i=0; while [ $i -lt 600 ]; do echo line-$i; i=$((i+1)); done"])
    out = _follow_past_a_gate(name, gate, "start", 60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["start"] + [f"line-{i}" for i in range(600)]
    assert len(_log_files(name)) > 5  # it did rotate, several times


@pytest.mark.parametrize("opt", ["max-size=ten", "max-file=0", "max-file=x", "colour=red", "max-size"])
def test_a_bad_log_opt_is_one_line_and_125(rootfs, opt):
    out = minirun("run", "-d", "--name", "lc-badopt", "--log-opt", opt, rootfs, "/bin/true")
    assert out.returncode == 125 and out.stderr.count("\n") == 1 and "log" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/smaps_rollup") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("Rss:"))


def _comm(pid: int) -> str:
    with open(f"/proc/{pid}/comm") as f:
        return f.read().strip()


def test_idle_detached_container_holds_two_small_static_programs(detached):
    """What stays on the host beside an idle workload: minirun-shim and the container's
    minirun-init, static programs of a few pages each (conmon beside runc: ~2 MiB),
    not two copies of the Python interpreter (14.8 MiB before)."""
    name = detached("lc-idle", ["/bin/sleep", "100"])
    st = inspect(name)
    shim, init = st["owner"], st["pid"]
    assert (_comm(shim), _comm(init)) == ("minirun-shim", "minirun-init")
    assert os.readlink(f"/proc/{init}/exe") == "/memfd:minirun-init (deleted)"  # a sealed copy
    assert os.readlink(f"/proc/{shim}/exe").endswith("/libexec/minirun-shim")
    assert _rss_kib(shim) + _rss_kib(init) <= 3 * 1024
    # the exec'd init is not dumpable again: the container cannot open it through /proc/1 (CVE-2019-5736)
    out = minirun("exec", name, "/bin/sh", "-c", "readlink /proc/1/exe || echo refused; cat /proc/1/exe >/dev/null"
                  " 2>&1 || echo refused")
    assert out.stdout.split() == ["refused", "refused"], out.stdout
    # and it still does an init's work: signals reach COMMAND, its exit is recorded by the finish step
    assert minirun("kill", "-s", "TERM", name).returncode == 0
    assert wait_for(lambda: inspect(name)["status"] == "exited")
    assert inspect(name)["exit_code"] == 143


def test_a_sigkilled_shim_takes_its_container_along(detached):
    name = detached("lc-shimkill", ["/bin/sleep", "100"])
    st = inspect(name)
    os.kill(st["owner"], 9)
    assert wait_for(lambda: not os.path.exists(f"/proc/{st['pid']}"))  # PDEATHSIG: the init dies with its shim
    assert wait_for(lambda: inspect(name)["status"] == "exited")  # gc (run by inspect) records it
    assert minirun("rm", name).returncode == 0  # and the leak check finds no cgroup left


def test_sigterm_to_the_supervisor_is_forwarded_not_fatal(detached):
    """Before the shim, the Python supervisor forwarded SIGTERM/INT/HUP/QUIT/USR1/USR2 to the
    container (container.forward_signals) and then recorded the exit and cleaned up. The
    exec'd minirun-shim has no handler: the default action kills it, PDEATHSIG SIGKILLs the
    container, and no finish step records the exit or removes the cgroups."""
    name = detached("lc-shimterm", ["/bin/sh", "-c", 'trap "exit 3" TERM; echo armed; while :; do sleep 0.1; done'])
    st = inspect(name)
    assert wait_for(lambda: minirun("logs", name).stdout == "armed\n", 30)  # the trap is set
    os.kill(st["owner"], 15)
    assert wait_for(lambda: inspect(name)["status"] == "exited")
    assert inspect(name)["exit_code"] == 3  # the container's own exit, not gc's 137 "supervisor died"


def test_a_finish_step_that_cannot_start_still_records_the_exit(detached, rootfs, tmp_path):
    """minirun-shim execs the interpreter that started the container for the finish step. If
    that exec fails (the interpreter was removed or upgraded away meanwhile), the shim's own
    exit record keeps COMMAND's status: gc records it, not 137 "supervisor died"."""
    venv = tmp_path / "venv"  # this venv under another name, whose interpreter the test then removes
    (venv / "bin").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text(open(os.path.join(sys.prefix, "pyvenv.cfg")).read())
    (venv / "lib").symlink_to(os.path.join(sys.prefix, "lib"))
    (venv / "bin" / "python").symlink_to(os.path.realpath(sys.executable))
    name = "lc-nofinish"
    out = subprocess.run([str(venv / "bin" / "python"), "-m", "minirun", "run", "-d", "--name", name, rootfs,
                          "/bin/sh", "-c", 'trap "exit 3" TERM; echo armed; while :; do sleep 0.1; done'],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    try:
        assert wait_for(lambda: minirun("logs", name).stdout == "armed\n", 30)  # the trap is set
        (venv / "bin" / "python").unlink()
        assert minirun("kill", "-s", "TERM", name).returncode == 0
        assert wait_for(lambda: inspect(name)["status"] == "exited")
        st = inspect(name)
        assert st["exit_code"] == 3, st
        assert "exec of the finish step: No such file or directory" in st["error"]
    finally:
        minirun("rm", "-f", name)
