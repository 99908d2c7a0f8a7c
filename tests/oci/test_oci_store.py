"""minirun-oci's state store under attack and under load: the pid file and the state as
another user sees them (runc's rules), verbs that engines run concurrently on one
container, a create killed half-way, and what `minirun gc` collects after minirun-oci."""

from __future__ import annotations

import glob
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile

import pytest

from conftest import OCI, run_to_files
from helpers import minirun, wait_for
from minirun.settings import OCI_ROOT

NOBODY = 65534


def as_nobody(*cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(list(cmd), user=NOBODY, group=NOBODY, extra_groups=[], capture_output=True, text=True,
                          timeout=30)


@pytest.fixture
def public_dir():
    """A directory every user may write to (no sticky bit: fs.protected_symlinks does not
    apply), outside the tests' private temporary tree."""
    path = tempfile.mkdtemp(prefix="minirun-test-public-", dir="/tmp")
    os.chmod(path, 0o777)
    yield path
    shutil.rmtree(path)


def cgroup_dirs(bundle_path: str) -> list[str]:
    with open(os.path.join(bundle_path, "config.json")) as f:
        relpath = json.load(f)["linux"]["cgroupsPath"].lstrip("/")
    return [d for d in glob.glob(f"/sys/fs/cgroup/*/{relpath}") + glob.glob(f"/sys/fs/cgroup/{relpath}")
            if os.path.isdir(d)]


def test_pid_file_replaces_a_link_planted_by_another_user_and_never_follows_it(tmp_path, bundle, oci, public_dir):
    """runc's createPidFile: a new file (O_EXCL) renamed over the target. Before, root wrote
    through nobody's link at the fixed temp name `.pid.tmp` into a root-only file."""
    secret = tmp_path / "root-only"
    secret.write_text("precious\n")
    secret.chmod(0o600)
    pid_file = os.path.join(public_dir, "pid")
    for name in ("pid", ".pid.tmp"):
        planted = as_nobody("ln", "-s", str(secret), os.path.join(public_dir, name))
        assert planted.returncode == 0, planted.stderr  # positive control: nobody can plant them
    out = oci("create", "--bundle", bundle(["/bin/sleep", "60"]), "--pid-file", pid_file, "pidf")
    try:
        assert out.returncode == 0, out.stderr
        assert secret.read_text() == "precious\n", "root wrote the pid file through a planted link"
        # positive control: the pid file itself was written, as a file of its own
        assert not os.path.islink(pid_file) and int(open(pid_file).read()) == oci.state("pidf")["pid"]
        assert sorted(os.listdir(public_dir)) == [".pid.tmp", "pid"]  # no temp file left
    finally:
        oci("delete", "--force", "pidf")


def test_state_is_root_only_as_runc_makes_it(tmp_path, bundle, rootfs):
    """runc: root 0700, state.json 0600. Before (0711/0644), nobody read the process's env."""
    parent = tempfile.mkdtemp(prefix="minirun-test-root-", dir="/run")
    os.chmod(parent, 0o755)
    root = os.path.join(parent, "oci")
    try:
        config_env = ["PATH=/bin", "DB_PASSWORD=s3cret-in-env"]
        path = bundle(["/bin/sleep", "60"])
        with open(os.path.join(path, "config.json")) as f:
            config = json.load(f)
        config["process"]["env"] = config_env
        with open(os.path.join(path, "config.json"), "w") as f:
            json.dump(config, f)
        out = run_to_files([OCI, "--root", root, "create", "--bundle", path, "secret"])
        assert out.returncode == 0, out.stderr
        state_json = os.path.join(root, "secret", "state.json")
        assert stat.S_IMODE(os.stat(root).st_mode) == 0o700
        assert stat.S_IMODE(os.stat(state_json).st_mode) == 0o600
        assert "s3cret-in-env" in open(state_json).read()  # it is there to be stolen
        for attempt in (["cat", state_json], ["ls", root]):
            out = as_nobody(*attempt)
            assert out.returncode != 0 and "s3cret" not in out.stdout, attempt
        # positive control: nobody reads a file of the same place with the old modes
        control = os.path.join(parent, "control")
        with open(control, "w") as f:
            f.write("readable\n")
        os.chmod(control, 0o644)
        assert as_nobody("cat", control).stdout == "readable\n"
    finally:
        subprocess.run([OCI, "--root", root, "delete", "--force", "secret"], capture_output=True)
        shutil.rmtree(parent)


def test_start_kill_delete_run_concurrently_on_one_container(bundle, oci):
    """Engines call start, kill, state and delete at once (a shim's stop beside a kubelet's
    remove). Each round: exactly one start releases the process, each verb either does its
    job or answers one clear line, and at the end the container is gone whole (no cgroup,
    no state, no process) or whole (its state readable)."""
    path = bundle(["/bin/sleep", "60"])
    verbs = [["start"], ["start"], ["kill", "KILL"], ["kill", "TERM"], ["state"], ["delete", "--force"],
             ["delete", "--force"], ["delete"]]
    for round_ in range(8):
        cid = f"conc{round_}"
        assert oci("create", "--bundle", path, cid).returncode == 0
        procs = [subprocess.Popen([OCI, "--root", oci.root, *verb, cid], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for verb in verbs]
        results = [(verb, *p.communicate(timeout=60), p.returncode) for verb, p in zip(verbs, procs)]
        for verb, _out, err, rc in results:
            assert "internal error" not in err and "Traceback" not in err, (verb, err)
            assert rc == 0 or len(err.strip().splitlines()) == 1, (verb, err)
        started = [r for r in results if r[0] == ["start"] and r[3] == 0]
        assert len(started) <= 1, results  # two starts never both release the process
        oci("delete", "--force", cid)
        assert not os.path.exists(os.path.join(oci.root, cid))
        assert not cgroup_dirs(path), "the cgroup outlived delete"


def test_of_two_concurrent_starts_one_releases_the_process_and_the_other_says_why_not(bundle, oci):
    """Under the store's lock the second start finds the container running. Before, both
    raced for the fifo, and the loser claimed the running process "exited before it was
    started"."""
    path = bundle(["/bin/sleep", "60"])
    for round_ in range(10):
        cid = f"twice{round_}"
        assert oci("create", "--bundle", path, cid).returncode == 0
        try:
            procs = [subprocess.Popen([OCI, "--root", oci.root, "start", cid], stdout=subprocess.DEVNULL,
                                      stderr=subprocess.PIPE, text=True) for _ in range(2)]
            results = sorted((p.wait(timeout=60), p.stderr.read()) for p in procs)
            for p in procs:
                p.stderr.close()
            assert results[0][0] == 0 and results[1][0] != 0, results
            assert "it is running, not created" in results[1][1], results
            assert oci.state(cid)["status"] == "running"
        finally:
            oci("delete", "--force", cid)


def test_kill_never_signals_a_process_that_took_the_pid(bundle, oci):
    """The recorded pid now names another process (its start time differs): kill reaches
    nothing. The pidfd is checked against the start time after it is opened."""
    from minirun.state import start_time

    assert oci("create", "--bundle", bundle(["/bin/sleep", "60"]), "reuse").returncode == 0
    state_json = os.path.join(oci.root, "reuse", "state.json")
    with open(state_json) as f:
        st = json.load(f)
    bystander = subprocess.Popen(["sleep", "60"])
    while start_time(bystander.pid) == st["pid_start"]:  # the same clock tick: not told apart (as in runc)
        bystander.kill()
        bystander.wait()
        bystander = subprocess.Popen(["sleep", "60"])
    try:
        real = st["pid"]
        st["pid"] = bystander.pid  # as if the container died and its pid went to the bystander
        with open(state_json, "w") as f:
            json.dump(st, f)
        out = oci("kill", "reuse", "KILL")
        assert out.returncode != 0 and "not running" in out.stderr
        assert bystander.poll() is None, "kill signalled a process that only had the container's pid"
        st["pid"] = real
        with open(state_json, "w") as f:
            json.dump(st, f)
        assert oci("kill", "reuse", "KILL").returncode == 0  # positive control: the real one is reached
        assert wait_for(lambda: oci.state("reuse")["status"] == "stopped")
    finally:
        bystander.kill()
        bystander.wait()
        oci("delete", "--force", "reuse")


@pytest.fixture
def stuck_console(tmp_path):
    """A console socket whose backlog is full: `create` blocks connecting to it, after
    it has made the container's cgroup and before it starts the process."""
    path = str(tmp_path / "console.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(0)
    filler = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    filler.connect(path)
    yield path
    filler.close()
    server.close()


def _create_killed_half_way(oci_argv: list[str], path: str, cid: str, console: str) -> None:
    with open(os.path.join(path, "config.json")) as f:
        config = json.load(f)
    config["process"]["terminal"] = True
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(config, f)
    create = subprocess.Popen([*oci_argv, "create", "--bundle", path, "--console-socket", console, cid],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert wait_for(lambda: cgroup_dirs(path) or create.poll() is not None), "create never made its cgroup"
    assert create.poll() is None, "create did not wait at the console socket"
    create.kill()  # as an engine's timeout does
    create.wait()
    assert cgroup_dirs(path)  # left behind: the fixtures' leak check would name it


def test_delete_of_a_create_killed_half_way_removes_its_cgroup(bundle, oci, stuck_console):
    path = bundle(["/bin/sleep", "60"])
    _create_killed_half_way([OCI, "--root", oci.root], path, "half", stuck_console)
    out = oci("delete", "half")
    assert out.returncode == 0, out.stderr
    assert not cgroup_dirs(path), "delete left the cgroup of a half-created container"
    assert not os.path.exists(os.path.join(oci.root, "half"))


def test_a_half_made_record_never_kills_or_removes_a_cgroup_in_use(oci):
    """create records the cgroup path before it makes the cgroup, so a create killed in
    between leaves a record naming a path it never made: with `cgroupsPath: /system.slice`,
    that is the host's. delete, `kill --all` and gc must then kill nothing and leave a
    cgroup that holds processes. Before, delete SIGKILLed everything in it."""
    from minirun.oci import store

    relpath = f"/mr-foreign-{os.getpid()}"
    dirs = [d + relpath for d in glob.glob("/sys/fs/cgroup/*")  # a new v1 cpuset takes no task until set up
            if os.path.isfile(d + "/cgroup.procs") and not d.endswith("/cpuset")]
    victim = subprocess.Popen(["sleep", "60"])
    try:
        for d in dirs:
            os.mkdir(d)
            with open(d + "/cgroup.procs", "w") as f:
                f.write(str(victim.pid))
        os.makedirs(oci.root, 0o700, exist_ok=True)
        os.mkdir(store.path(oci.root, "halfmade"), 0o711)
        store.write(store.path(oci.root, "halfmade"), {"id": "halfmade", "pid": 0, "creating": True,
                                                       "cgroup": relpath.lstrip("/"), "bundle": "/", "rootfs": "/",
                                                       "created": "2026-12-06T00:00:00Z"})
        assert oci("kill", "--all", "halfmade", "KILL").returncode == 0
        out = oci("delete", "halfmade")
        assert out.returncode == 0, out.stderr
        assert "in use: left alone" in out.stderr
        assert victim.poll() is None, "a half-made record's delete killed another's process"
        assert all(os.path.isdir(d) for d in dirs)
    finally:
        victim.kill()
        victim.wait()
        for d in dirs:
            if os.path.isdir(d):
                wait_for(lambda: not open(d + "/cgroup.procs").read().strip())
                os.rmdir(d)


def test_delete_of_a_container_whose_process_died_before_start_removes_its_cgroup(bundle, oci):
    path = bundle(["/bin/sleep", "60"])
    assert oci("create", "--bundle", path, "died").returncode == 0
    assert cgroup_dirs(path)
    assert oci("kill", "died", "KILL").returncode == 0
    assert wait_for(lambda: oci.state("died")["status"] == "stopped")
    out = oci("delete", "died")
    assert out.returncode == 0, out.stderr
    assert not cgroup_dirs(path) and not os.path.exists(os.path.join(oci.root, "died"))


def _age(path: str) -> None:
    """Make a state directory look older than gc's grace for a create under way."""
    for p in [path] + [os.path.join(path, n) for n in os.listdir(path)]:
        os.utime(p, (1, 1), follow_symlinks=False)


def test_minirun_gc_collects_what_minirun_oci_left(bundle, oci, stuck_console):
    """Under minirun-oci's default root: a create killed half-way goes whole once older
    than the grace; a stopped container keeps its state (for the engine's delete) but
    not its empty cgroup; a running one and a fresh half-way one are left alone."""
    half, stopped, running = (bundle(["/bin/sleep", "60"]) for _ in range(3))
    try:
        _create_killed_half_way([OCI], half, "gc-half", stuck_console)
        for path, cid in ((stopped, "gc-stopped"), (running, "gc-running")):
            out = run_to_files([OCI, "run", "--detach", "--bundle", path, cid])
            assert out.returncode == 0, out.stderr
        assert run_to_files([OCI, "kill", "gc-stopped", "KILL"]).returncode == 0
        assert wait_for(lambda: json.loads(run_to_files([OCI, "state", "gc-stopped"]).stdout)["status"] == "stopped")

        out = minirun("gc")
        assert out.returncode == 0 and "removed gc-stopped" in out.stdout.splitlines(), out.stderr
        assert not cgroup_dirs(stopped) and os.path.exists(os.path.join(OCI_ROOT, "gc-stopped", "state.json"))
        assert cgroup_dirs(half), "gc took a half-created container younger than the grace"
        _age(os.path.join(OCI_ROOT, "gc-half"))
        out = minirun("gc")
        assert out.returncode == 0 and out.stdout.splitlines() == ["removed gc-half"], (out.stdout, out.stderr)
        assert not cgroup_dirs(half) and not os.path.exists(os.path.join(OCI_ROOT, "gc-half"))
        assert cgroup_dirs(running) and json.loads(run_to_files([OCI, "state", "gc-running"]).stdout)[
            "status"] == "running"
        assert run_to_files([OCI, "delete", "gc-stopped"]).returncode == 0  # the engine's delete still works
    finally:
        for cid in ("gc-half", "gc-stopped", "gc-running"):
            run_to_files([OCI, "delete", "--force", cid])


def _plant_state(root: str, marker: str, owner: int) -> None:
    """A stopped container `planted` whose state.json, made by ``owner``, has a poststop
    hook that creates ``marker``: what `delete` runs as root."""
    state_dir = os.path.join(root, "planted")
    os.mkdir(state_dir, 0o711)
    with open(os.path.join(state_dir, "state.json"), "w") as f:
        json.dump({"id": "planted", "pid": 0, "bundle": "/", "rootfs": "/", "created": "2026-01-01T00:00:00Z",
                   "hooks": {"poststop": [{"path": "/bin/sh", "args": ["sh", "-c", f"id -u > {marker}"]}]}}, f)
    for path in (state_dir, os.path.join(state_dir, "state.json")):
        os.chown(path, owner, owner)


@pytest.mark.parametrize("owner", [NOBODY, 0], ids=["nobody's-root", "positive-control-root's-own"])
def test_a_root_directory_another_user_controls_is_refused(tmp_path, owner):
    """`--root` a directory another user owns (or may write): its state.json is theirs to
    write, and `delete` runs the poststop hooks it names, as root. Refused, as minirun's own
    state root is (state.check_root); before, nobody's hook ran as root. Positive control:
    the same state in a root of root's own does run the hook, so the probe can succeed."""
    parent = tempfile.mkdtemp(prefix="minirun-test-root-", dir="/tmp")
    root = os.path.join(parent, "oci")
    marker = os.path.join(parent, "hook-ran")
    try:
        os.mkdir(root, 0o700)
        os.chown(root, owner, owner)
        _plant_state(root, marker, owner)
        out = run_to_files([OCI, "--root", root, "delete", "planted"])
        if owner == 0:
            assert out.returncode == 0, out.stderr
            assert open(marker).read() == "0\n"  # the hook ran, as root
        else:
            assert not os.path.exists(marker), "nobody's poststop hook ran as root"
            assert out.returncode == 1 and out.stderr.count("\n") == 1, out.stderr
            assert f"refusing the state directory {root}" in out.stderr
            assert "Traceback" not in out.stderr
            # listing and reading are refused too: the state there is not to be trusted
            for verb in (["list"], ["state", "planted"]):
                assert run_to_files([OCI, "--root", root, *verb]).returncode == 1, verb
    finally:
        shutil.rmtree(parent)


def test_a_root_under_a_link_another_user_owns_is_used_where_it_resolved(tmp_path):
    """A --root reached through a link in a world-writable directory: the link's owner could
    point it elsewhere between two steps of one verb. minirun-oci resolves it once and
    checks and uses the directory it found."""
    from minirun.oci import store

    parent = tempfile.mkdtemp(prefix="minirun-test-root-", dir="/run")
    try:
        real = os.path.join(parent, "real")
        os.mkdir(real, 0o700)
        link = os.path.join(parent, "link")
        os.symlink(real, link)
        assert store.checked_root(link) == real
    finally:
        shutil.rmtree(parent)


def test_the_exec_fifo_is_root_only_whatever_the_callers_umask(bundle, rootfs):
    """mkfifo(0622) is cut by the umask: 0600 under the usual 022, but an engine running
    minirun-oci with umask 0 left the fifo writable by nobody (under a root others may
    traverse: containerd makes its runtime roots 0711), who could hold it open so `start`
    never saw its EOF, or write a "hook failure" of their own. The mode is now set, not
    left to the umask (the process opens the fifo before it takes its user; under a user
    namespace it is chowned to the process's mapped ids). Positive control: root reaches it
    (ENXIO: no reader yet, so the path resolved and the open was permitted)."""
    import errno

    parent = tempfile.mkdtemp(prefix="minirun-test-root-", dir="/run")
    root = os.path.join(parent, "oci")
    os.mkdir(root, 0o711)
    os.chmod(parent, 0o755)
    fifo = os.path.join(root, "fifo", "exec.fifo")
    probe = ("import os, sys\ntry:\n    os.open(sys.argv[1], os.O_WRONLY | os.O_NONBLOCK)\n"
             "except OSError as e:\n    print(e.errno)\n")
    try:
        out = run_to_files([OCI, "--root", root, "create", "--bundle", bundle(["/bin/true"]), "fifo"], umask=0)
        assert out.returncode == 0, out.stderr
        mine = subprocess.run(["/usr/bin/python3", "-c", probe, fifo], capture_output=True, text=True, timeout=30)
        assert mine.stdout.strip() == str(errno.ENXIO)  # positive control
        theirs = subprocess.run(["/usr/bin/python3", "-c", probe, fifo], user=NOBODY, group=NOBODY, extra_groups=[],
                                capture_output=True, text=True, timeout=30)
        assert theirs.stdout.strip() == str(errno.EACCES), "nobody may open the exec fifo for writing"
        out = run_to_files([OCI, "--root", root, "start", "fifo"])
        assert out.returncode == 0, out.stderr
    finally:
        subprocess.run([OCI, "--root", root, "delete", "--force", "fifo"], capture_output=True)
        shutil.rmtree(parent)
