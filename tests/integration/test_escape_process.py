"""Escape attempts by a hostile caller or container against minirun's processes and state.

Each door of issue 10 that concerns how a process becomes COMMAND, which
container a name reaches, whose state a rootless minirun trusts and what
survives a failed cleanup, beside its positive control: the same action on the
host, or with the protection's precondition removed, must succeed, so a probe
that could never succeed is caught.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

from helpers import Gate, inspect, minirun, popen_minirun, ran_to, wait_for
from minirun.state import STATE_ROOT
from minirun.settings import CGROUP_PARENT

NOBODY = 65534
STRANGER = 54321  # a uid that is neither root nor the rootless user
HARNESS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "rootless_harness.py")


@pytest.fixture
def detached(rootfs):
    """Start named detached containers; remove them whatever happens."""
    names = []

    def start(name, argv, *options):
        out = minirun("run", "-d", *(["--name", name] if name else []), *options, rootfs, *argv)
        assert out.returncode == 0, out.stderr
        names.append(out.stdout.strip())
        return names[-1]

    yield start
    for name in names:
        minirun("rm", "-f", name)


_OPEN_FD7_AND_EXEC = "import os, sys; os.dup2(os.open(sys.argv[1], os.O_RDONLY), 7); os.execvp(sys.argv[2], sys.argv[2:])"


def _with_fd7(args: list[str], path: str = "/etc/hostname") -> subprocess.CompletedProcess:
    """Run ``args`` with a host file open on fd 7 (inheritable), as a careless or hostile caller would."""
    return subprocess.run([sys.executable, "-c", _OPEN_FD7_AND_EXEC, path, *args], capture_output=True, text=True,
                          timeout=60)


# -- door 3: the caller's open files -------------------------------------------------------------------------

def test_exec_keeps_the_callers_open_files_outside(detached):
    name = detached("esc-fd", ["/bin/sleep", "100"])
    with open("/etc/hostname") as f:
        host_text = f.read()
    # control: on the host, the same fd 7 reads the file
    control = _with_fd7(["cat", "/proc/self/fd/7"])
    assert control.returncode == 0 and control.stdout == host_text
    out = _with_fd7([sys.executable, "-m", "minirun", "exec", name, "sh", "-c", 'cat /proc/self/fd/7; echo "cat=$?"'])
    assert ran_to(out, "cat=1") == [], "the caller's fd 7 was readable inside"
    # and nothing but stdio reaches COMMAND (ls's own directory fd is the 3)
    out = _with_fd7([sys.executable, "-m", "minirun", "exec", name, "ls", "/proc/self/fd"])
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["0", "1", "2", "3"]
    # control: what COMMAND is given (its stdin) does arrive
    with open("/etc/hostname") as f:
        given = subprocess.run([sys.executable, "-m", "minirun", "exec", name, "cat"], stdin=f, capture_output=True,
                               text=True, timeout=60)
    assert given.stdout == host_text


def test_run_keeps_the_callers_open_files_outside(rootfs):
    out = _with_fd7([sys.executable, "-m", "minirun", "run", rootfs, "/bin/sh", "-c",
                     "cat /proc/self/fd/7; ls /proc/self/fd; echo DONE"])
    assert ran_to(out, "DONE") == ["0", "1", "2", "3"], out.stderr


def test_a_detached_containers_shim_keeps_none_of_the_callers_files(rootfs):
    """`flock LOCK minirun run -d ...` must not hold LOCK for the container's whole life:
    the shim (and the finish step after it) get only the fds minirun hands them."""
    out = _with_fd7([sys.executable, "-m", "minirun", "run", "-d", "--name", "esc-shimfd", rootfs, "/bin/sleep", "60"])
    assert out.returncode == 0, out.stderr
    try:
        owner = inspect("esc-shimfd")["owner"]
        held = [os.readlink(f"/proc/{owner}/fd/{fd}") for fd in os.listdir(f"/proc/{owner}/fd")]
        assert "/etc/hostname" not in held, held
        assert os.readlink(f"/proc/{owner}/cwd") == "/"  # nor the caller's working directory
    finally:
        minirun("rm", "-f", "esc-shimfd")


def test_exec_is_not_dumpable_until_execve(detached):
    """Between joining the container and execve, the new process is minirun's
    interpreter holding host memory, then minirun-init searching PATH: a process of
    the container watching for either must not read its /proc/PID/exe as a host
    binary (CVE-2019-5736) nor its fds. A PATH of 25000 directories whose `true` is a
    script with a missing interpreter (each execve fails late) stretches that window
    to about half a second."""
    watcher = ('py=py""thon; mi=minirun""-init; while :; do for p in /proc/[0-9]*; do read -r a < $p/cmdline 2>/dev/null; '
               'case "$a" in *"$py"*|*"$mi"*) l=$(readlink $p/exe 2>/dev/null) || l=$(ls -l $p/exe 2>&1 >/dev/null); '
               'echo "seen ${p#/proc/} $l";; esac; done; done')
    name = detached("esc-dump", ["/bin/sh", "-c", watcher])
    setup = minirun("exec", name, "/bin/sh", "-c", 'mkdir /d && printf "#!/none\\n" >/d/true && chmod +x /d/true')
    assert setup.returncode == 0, setup.stderr
    long_path = "/d:" * 25000 + "/bin"
    for _ in range(5):
        assert minirun("exec", "-e", f"PATH={long_path}", name, "true").returncode == 0
        if "Permission denied" in minirun("logs", name).stdout:
            break
    seen = [line for line in minirun("logs", name).stdout.splitlines() if line.startswith("seen")]
    # what may show: nothing (not dumpable), the sealed copy or COMMAND, never a binary of the host
    assert not [line for line in seen if "python" in line or "libexec" in line], f"a host binary was reachable: {seen}"
    assert [line for line in seen if line.endswith("Permission denied")], \
        f"the watcher never caught the window before execve (the test proves nothing): {seen}"
    # control: the same watcher reads the exe of a sibling at the same privilege once it
    # has exec'd (dumpable again), so DENIED above is the non-dumpable flag's doing
    out = minirun("exec", name, "/bin/sh", "-c", 'sleep 5 & while [ "$(cat /proc/$!/comm)" != sleep ]; do usleep 10000;'
                  " done; readlink /proc/$!/exe; kill $!")
    assert out.stdout.strip() == "/bin/busybox", out.stderr


def test_a_command_that_is_proc_self_exe_gets_the_sealed_init(tmp_path, rootfs, detached):
    """CVE-2019-5736: a COMMAND whose interpreter is /proc/self/exe runs whatever
    binary did the execve. That is minirun-init from a sealed memfd, for `run` and for
    `exec`: never the host's interpreter, and nothing a write can reach."""
    evil = tmp_path / "evil"
    evil.write_text('#!/proc/self/exe\nimport os\nprint("HOST", os.readlink("/proc/self/exe"))\n')
    evil.chmod(0o755)
    out = minirun("run", "--rm", "-v", f"{tmp_path}:/x:ro", rootfs, "/x/evil")
    assert (out.returncode, out.stdout) == (125, ""), out
    assert "minirun-init: not a program to run" in out.stderr
    name = detached("esc-selfexe", ["/bin/sleep", "100"], "-v", f"{tmp_path}:/x:ro")
    out = minirun("exec", name, "/x/evil")
    assert (out.returncode, out.stdout) == (125, ""), out
    # the container's PID 1 is the same sealed copy: seen from the host, not a host path
    assert os.readlink(f"/proc/{inspect(name)['pid']}/exe") == "/memfd:minirun-init (deleted)"


# -- signals and setns through a pidfd ----------------------------------------------------------------------------

@pytest.fixture
def planted_state(tmp_path):
    """A state directory of a 'running' container whose recorded pid is a host process of
    the test; the test holds its lock, as a live owner would."""
    made = []

    def plant(name: str, pid: int, pid_start: int | None):
        path = os.path.join(STATE_ROOT, name)
        os.makedirs(path, 0o700)
        made.append(path)
        lock = os.open(path, os.O_RDONLY | os.O_DIRECTORY)  # the store's lock: flock on the directory
        fcntl.flock(lock, fcntl.LOCK_EX)
        with open(os.path.join(path, "state.json"), "w") as f:
            json.dump({"id": name, "status": "running", "pid": pid, "pid_start": pid_start, "detached": True,
                       "generated_id": False}, f)
        return lock

    yield plant
    for path in made:
        shutil.rmtree(path, ignore_errors=True)


def _host_sleeper() -> subprocess.Popen:
    return subprocess.Popen(["sleep", "30"])


def _start_time(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[19])


def test_a_recycled_pid_is_never_signalled(planted_state):
    sleeper = _host_sleeper()
    try:
        # the recorded init died and its pid now names an unrelated host process
        lock = planted_state("esc-recycled", sleeper.pid, _start_time(sleeper.pid) - 1)
        for verb in (["kill"], ["stop", "-t", "1"], ["exec"]):
            out = minirun(*verb, "esc-recycled", *(["true"] if verb == ["exec"] else []))
            assert sleeper.poll() is None, f"`minirun {verb[0]}` signalled a recycled pid"
        assert minirun("kill", "esc-recycled").returncode == 125
        assert "is not running" in out.stderr
        os.close(lock)
        # control: with the true start time, kill reaches the process
        lock = planted_state("esc-recorded", sleeper.pid, _start_time(sleeper.pid))
        assert minirun("kill", "esc-recorded").returncode == 0
        assert sleeper.wait(10) == -9
        os.close(lock)
    finally:
        sleeper.kill()
        sleeper.wait()


# -- door 4: names are exact ----------------------------------------------------------------------------------

def test_a_name_matches_only_itself(detached):
    name = detached("webserver", ["/bin/sleep", "100"])
    for verb in (["rm", "-f"], ["stop"], ["kill"], ["inspect"], ["logs"]):
        out = minirun(*verb, "web")
        assert out.returncode == 125 and out.stderr == "minirun: no such container: web\n", (verb, out.stderr)
    assert inspect(name)["status"] == "running", "`rm -f web` reached webserver"
    # a name that looks like a generated id is still a name
    hexname = detached("deadbeef0123", ["/bin/sleep", "100"])
    assert minirun("rm", "-f", "deadbeef").returncode == 125
    assert inspect(hexname)["status"] == "running"
    # control: the whole name reaches it
    assert minirun("rm", "-f", "webserver").returncode == 0
    assert minirun("inspect", "webserver").returncode == 125


def test_generated_ids_abbreviate_when_unambiguous(detached):
    first = detached(None, ["/bin/sleep", "100"])
    second = detached(None, ["/bin/sleep", "100"])
    common = os.path.commonprefix([first, second])
    if common:  # both ids start alike: that prefix is ambiguous
        out = minirun("inspect", common)
        assert out.returncode == 125 and "several" in out.stderr
    assert inspect(first[:len(common) + 1])["id"] == first
    assert minirun("rm", "-f", second[:len(common) + 1]).returncode == 0
    assert minirun("inspect", second).returncode == 125


@pytest.mark.parametrize("bad", ["web\n", "web/x", "../x", ".hidden", "_web", "a" * 65, "web server"])
def test_invalid_names_are_refused(rootfs, bad):
    out = minirun("run", "--name", bad, rootfs, "/bin/true")
    assert out.returncode == 125 and out.stderr.startswith("minirun: invalid container name"), out.stderr
    assert len(out.stderr.splitlines()) == 1


def test_an_invalid_name_matches_nothing(detached):
    detached("esc-only", ["/bin/sleep", "100"])
    for bad in ("", "esc-only\n", "esc-only/", "."):
        out = minirun("rm", "-f", bad)
        assert out.returncode == 125 and "no such container" in out.stderr, (bad, out.stderr)
    assert inspect("esc-only")["status"] == "running"


# -- door 7: rootless state is the user's own --------------------------------------------------------------

def _as_nobody(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    env = dict(env if env is not None else os.environ)
    env.pop("XDG_RUNTIME_DIR", None)
    return subprocess.run([sys.executable, HARNESS, *args], capture_output=True, text=True, timeout=60, env=env)


@pytest.fixture
def tmp_state():
    """The rootless fallback /tmp/minirun-65534, made to order and removed afterwards."""
    path = f"/tmp/minirun-{NOBODY}"
    if os.path.lexists(path):
        pytest.skip(f"{path} exists already (someone else's rootless state)")
    probe = subprocess.run(["unshare", "--user", "--map-root-user", "true"], user=NOBODY, capture_output=True)
    if probe.returncode != 0:
        pytest.skip("this kernel does not allow unprivileged user namespaces")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def victim():
    """A directory and file of the rootless user, which its own gc could delete if steered there."""
    d = tempfile.mkdtemp(prefix="minirun-victim-")
    with open(os.path.join(d, "precious"), "w") as f:
        f.write("mine\n")
    for p in (d, os.path.join(d, "precious")):
        os.chown(p, NOBODY, NOBODY)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _plant(tmp_state: str, victim: str, owner: int) -> None:
    """What another user does first: the rootless state dir, with a stale `.new-` link to the victim."""
    root = os.path.join(tmp_state, "minirun")
    os.makedirs(root)
    os.symlink(victim, os.path.join(root, ".new-planted"))
    os.utime(os.path.join(root, ".new-planted"), (1, 1), follow_symlinks=False)  # looks stale to gc
    for p in (tmp_state, root):
        os.chmod(p, 0o777)
        os.chown(p, owner, owner)
    os.lchown(os.path.join(root, ".new-planted"), owner, owner)


def test_rootless_state_planted_by_another_user_is_refused(tmp_state, victim, user_rootfs):
    _plant(tmp_state, victim, STRANGER)
    for verb in (["gc"], ["ps"], ["run", "--userns", user_rootfs, "/bin/true"]):
        out = _as_nobody(*verb)
        assert out.returncode == 125, (verb, out.stderr)
        assert out.stderr.startswith(f"minirun: refusing the state directory {tmp_state}: a directory of uid "
                                     f"{STRANGER}") and len(out.stderr.splitlines()) == 1, out.stderr
    assert os.listdir(victim) == ["precious"], "gc deleted the victim's files through the planted link"
    # control: the user could delete them (the refusal, not a permission, saved them) ...
    control = subprocess.run(["rm", os.path.join(victim, "precious")], user=NOBODY, capture_output=True)
    assert control.returncode == 0 and not os.listdir(victim)


def test_rootless_state_of_the_user_with_a_planted_link_keeps_the_victim(tmp_state, victim, user_rootfs):
    """Even in a directory that is the user's own, a `.new-` link is removed, never followed."""
    _plant(tmp_state, victim, NOBODY)
    for p in (tmp_state, os.path.join(tmp_state, "minirun")):
        os.chmod(p, 0o700)
    out = _as_nobody("gc")
    assert out.returncode == 0, out.stderr
    assert os.listdir(victim) == ["precious"]
    assert not os.path.lexists(os.path.join(tmp_state, "minirun", ".new-planted")), "the stale link stayed"


def test_rootless_state_dir_is_made_private(tmp_state, user_rootfs):
    out = _as_nobody("run", "--userns", user_rootfs, "/bin/sh", "-c", "exit 3")
    assert out.returncode == 3, out.stderr
    for p in (tmp_state, os.path.join(tmp_state, "minirun")):
        st = os.lstat(p)
        assert (st.st_uid, st.st_mode & 0o777) == (NOBODY, 0o700), p
    assert os.listdir(os.path.join(tmp_state, "minirun")) == []
    # a symlink in place of the parent is refused, even one to a directory of the user's
    shutil.rmtree(tmp_state)
    target = tempfile.mkdtemp(prefix="minirun-target-")
    os.chown(target, NOBODY, NOBODY)
    try:
        os.symlink(target, tmp_state)
        out = _as_nobody("gc")
        assert out.returncode == 125 and "not a directory" in out.stderr, out.stderr
    finally:
        os.unlink(tmp_state)
        shutil.rmtree(target)


@pytest.fixture
def user_rootfs(rootfs):
    """A copy of the rootfs owned by the rootless user."""
    home = tempfile.mkdtemp(prefix="minirun-rootless-")
    os.chmod(home, 0o755)
    path = os.path.join(home, "rootfs")
    shutil.copytree(rootfs, path, symlinks=True)
    for dirpath, dirnames, filenames in os.walk(path):
        for name in [dirpath] + [os.path.join(dirpath, n) for n in dirnames + filenames]:
            os.lchown(name, NOBODY, NOBODY)
    yield path
    shutil.rmtree(home, ignore_errors=True)


# -- item 7: cleanup never loses the result ------------------------------------------------------------------

def test_a_failed_cleanup_keeps_the_exit_code_and_leaves_the_rest_to_gc(rootfs):
    """The container's pids cgroup is kept busy from outside (a mount on it, in a mount
    namespace of the test's own that minirun runs in): rmdir fails with EBUSY. While it
    is busy, gc skips it with a warning and other runs are not hindered; once the
    namespace is gone, gc removes it. The mount waits until the container is in the cgroup:
    earlier, it would hide the files the setup still has to open."""
    name = "esc-cleanup"
    cgroup = f"/sys/fs/cgroup/pids/{CGROUP_PARENT}/{name}"
    if not os.path.isdir("/sys/fs/cgroup/pids"):
        pytest.skip("no cgroup v1 pids hierarchy to keep busy")
    with tempfile.TemporaryDirectory() as cwd:
        # the container exits once the mount is made (the shell lets it through the gate), not after a
        # second that a loaded host may need in full before the mount
        gate = Gate(cwd)
        script = (f'"$0" -m minirun run --json --name {name} {" ".join(gate.volume)} {rootfs} /bin/sh -c '
                  f'"read go < /gate/go; exit 7" >result.json & until grep -qs . {cgroup}/cgroup.procs; do sleep 0.01;'
                  f" done; mount -t tmpfs busy {cgroup}; exec 3<>go; echo go >&3; wait $!; echo run=$?; exec 3>&-; "
                  f'"$0" -m minirun gc; echo gc=$?; "$0" -m minirun run --rm {rootfs} /bin/true; echo other=$?')
        out = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script, sys.executable],
                             capture_output=True, text=True, timeout=60, cwd=cwd)
        try:
            with open(os.path.join(cwd, "result.json")) as f:
                result = json.load(f)
        finally:
            gc = minirun("gc")  # the mount died with its namespace: gc can remove the rest
    assert out.stdout.split() == ["run=7", "gc=0", "other=0"], out.stderr
    assert result["exit_code"] == 7 and result["oom_killed"] is False
    assert result["leftovers"] and result["leftovers"][0].startswith("cgroup")
    lines = out.stderr.splitlines()
    assert lines[0].startswith(f"minirun: warning: container {name} left behind: cgroup"), lines
    assert lines[1].startswith(f"minirun: warning: could not remove {name}: rmdir {cgroup}"), lines
    assert len(lines) == 2, lines
    assert gc.returncode == 0 and f"removed {name}" in gc.stdout, gc.stderr
    assert not os.path.exists(cgroup)


def test_control_the_same_run_cleans_up_by_itself(rootfs):
    out = minirun("run", "--json", "--name", "esc-clean", rootfs, "/bin/sh", "-c", "exit 7")
    assert out.returncode == 7 and json.loads(out.stdout)["leftovers"] == [] and out.stderr == ""


# -- logs: under a root only minirun's user controls -------------------------------------------------------

def _nobody_sh(script: str) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", "-c", script], user=NOBODY, group=NOBODY, extra_groups=[], capture_output=True,
                          text=True, timeout=30)


@pytest.mark.parametrize("owner", [NOBODY, 0], ids=["nobody's-log-root", "positive-control-root's-own"])
def test_logs_never_come_from_a_directory_another_user_controls(rootfs, owner):
    """MINIRUN_LOG_ROOT in a directory nobody owns: nobody moved the container's log
    directory aside and put one of theirs in its place, and `minirun logs` printed their
    text (and a failed cleanup would have appended through their `log`, a link). Now such a
    root is refused (one line, 125, nothing made); the same probe against root's own log
    root is denied to nobody, while the real log reads back."""
    log_root = tempfile.mkdtemp(prefix="minirun-test-logs-", dir="/tmp")
    os.chown(log_root, owner, owner)
    env = dict(os.environ, MINIRUN_LOG_ROOT=log_root)
    cid = None
    try:
        out = minirun("run", "-d", rootfs, "/bin/echo", "real-output", env=env)
        cid = out.stdout.strip() if out.returncode == 0 else None  # removed below, on a broken build too
        if owner == NOBODY:
            assert (out.returncode, out.stderr.count("\n")) == (125, 1), out.stderr
            assert f"refusing the state directory {log_root}" in out.stderr and "Traceback" not in out.stderr
            assert out.stdout == "" and os.listdir(log_root) == []
            return
        assert out.returncode == 0, out.stderr
        assert wait_for(lambda: "real-output" in minirun("logs", cid, env=env).stdout)
        forged = _nobody_sh(f"cd {log_root} && mv {cid} aside && mkdir {cid} && echo forged > {cid}/log")
        assert forged.returncode != 0  # root's own root: nobody cannot move it
        assert minirun("logs", cid, env=env).stdout == "real-output\n"
    finally:
        if cid:
            minirun("rm", "-f", cid, env=env)
        shutil.rmtree(log_root, ignore_errors=True)
