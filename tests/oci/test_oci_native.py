"""The verbs engines call in a loop, run natively (csrc/ociverbs.c): state, start, kill,
delete, ps, list, features without starting Python, with the words and output of the
Python minirun-oci (which calls the same C through cffi), and OCI hooks through the
one C runner (csrc/hooks.c) whatever their kind.

minirun-oci is the native front (csrc/front.c), which runs oci_verbs_main first and
Python for every other verb. The hot verbs run here from a copy of it alone in a
directory, where it finds no Python that holds minirun: had one of them fallen back
to Python, it would fail."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile

import pytest

from conftest import OCI, run_to_files, write_config
from helpers import wait_for
from minirun.oci.defaults import features

NOBODY = 65534


@pytest.fixture(scope="module")
def lonely(tmp_path_factory) -> str:
    """minirun-oci copied where it finds no Python that holds minirun (positive control below)."""
    path = str(tmp_path_factory.mktemp("lonely") / "minirun-oci")
    shutil.copy2(OCI, path)
    return path


class Native:
    """`minirun-oci --root STATE --log LOG --log-format json ...`: the lonely copy, or with
    python=True the installed one (for create, run, exec, pause)."""

    def __init__(self, lonely: str, root: str, log: str):
        self.lonely, self.root, self.log = lonely, root, log

    def __call__(self, *args: str, python: bool = False, log_format: str = "json", **kw):
        return run_to_files([OCI if python else self.lonely, "--root", self.root, "--log", self.log,
                             "--log-format", log_format, *args], **kw)

    def state(self, container_id: str) -> dict:
        out = self("state", container_id)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    def records(self) -> list[dict]:
        try:
            with open(self.log) as f:
                return [json.loads(line) for line in f]
        except FileNotFoundError:
            return []


@pytest.fixture
def native(lonely, state_root, tmp_path) -> Native:
    return Native(lonely, state_root, str(tmp_path / "native-log.json"))


def _config(path: str) -> dict:
    with open(os.path.join(path, "config.json")) as f:
        return json.load(f)


def test_the_hot_verbs_run_without_python(bundle, native, oci):
    """A created container through its life with Python out of reach; each output is the
    Python minirun-oci's, byte for byte."""
    path = bundle(["/bin/sleep", "60"])
    assert native("create", "--bundle", path, "hot", python=True).returncode == 0  # create: Python's
    st = native.state("hot")
    assert st["status"] == "created" and st["id"] == "hot" and st["bundle"] == path and st["pid"] > 0
    assert list(st) == ["ociVersion", "id", "pid", "status", "bundle", "rootfs", "created", "owner", "annotations"]
    for args in (["state", "hot"], ["list"], ["list", "--format", "json"], ["list", "-q"], ["features"]):
        assert native(*args).stdout == oci(*args).stdout, args
    # as Python's json.dumps prints them; features as minirun/oci/defaults.py defines them
    assert native("state", "hot").stdout == json.dumps(st, indent=2) + "\n"
    listed = native("list", "--format", "json").stdout
    assert listed == json.dumps(json.loads(listed)) + "\n" and json.loads(listed) == [st]
    assert native("features").stdout == json.dumps(features(), indent=2) + "\n"
    assert native("start", "hot").returncode == 0
    assert native.state("hot")["status"] == "running"
    again = native("start", "hot")
    assert again.returncode == 1 and again.stderr == "minirun-oci: cannot start container 'hot': it is running, " \
                                                     "not created\n"
    assert native.records()[-1]["level"] == "error" and "it is running, not created" in native.records()[-1]["msg"]
    assert json.loads(native("ps", "--format", "json", "hot").stdout) == [st["pid"]]
    table = native("ps", "hot").stdout.splitlines()
    assert "PID" in table[0] and len(table) == 2 and str(st["pid"]) in table[1]
    refused = native("delete", "hot")
    assert refused.returncode == 1 and "cannot delete container 'hot' that is running" in refused.stderr
    assert native("kill", "hot", "SIGKILL").returncode == 0
    assert wait_for(lambda: native.state("hot")["status"] == "stopped", 30)
    assert native.state("hot")["pid"] == 0
    gone = native("kill", "hot", "9")
    assert gone.returncode == 1 and gone.stderr == "minirun-oci: container 'hot': container not running\n"
    assert native("kill", "--all", "hot", "KILL").returncode == 0  # containerd's after every exit
    assert native("delete", "hot").returncode == 0
    missing = native("state", "hot")
    assert missing.returncode == 1 and missing.stderr == "minirun-oci: container 'hot' does not exist\n"
    assert native("delete", "--force", "hot").returncode == 0  # as runc: nothing to do


def test_kill_all_and_delete_force(bundle, native):
    path = bundle(["/bin/sleep", "60"])
    assert native("run", "-d", "--bundle", path, "all1", python=True).returncode == 0
    assert native("exec", "--detach", "all1", "/bin/sleep", "60", python=True).returncode == 0
    pids = json.loads(native("ps", "--format", "json", "all1").stdout)
    assert len(pids) == 2
    assert native("kill", "--all", "all1", "KILL").returncode == 0  # every process of its cgroup
    assert wait_for(lambda: native.state("all1")["status"] == "stopped", 30)
    assert wait_for(lambda: not any(os.path.exists(f"/proc/{pid}") for pid in pids), 30)
    assert native("delete", "all1").returncode == 0
    assert native("run", "-d", "--bundle", path, "all2", python=True).returncode == 0  # the same cgroupsPath
    pid = native.state("all2")["pid"]
    assert native("delete", "--force", "all2").returncode == 0  # kills a running one
    assert not os.path.exists(f"/proc/{pid}/stat") or open(f"/proc/{pid}/stat").read().split(")")[1].split()[0] in "ZX"
    assert native("list", "--quiet").stdout == "\n"


def _hook(out_dir, name: str, tail: str = "", **fields) -> dict:
    return dict({"path": "/bin/sh", "args": ["sh", "-c", f"cat > {out_dir}/{name}{tail}"]}, **fields)


def test_poststart_and_poststop_get_their_state_and_a_failure_is_a_warning(tmp_path, bundle, native):
    out_dir = tmp_path / "hooks"
    out_dir.mkdir()
    path = bundle(["/bin/sleep", "60"])
    config = _config(path)
    config["hooks"] = {"poststart": [_hook(out_dir, "poststart", "; echo broke >&2; exit 3"),
                                     _hook(out_dir, "poststart2")],  # runs after the failure
                       "poststop": [_hook(out_dir, "poststop")]}
    write_config(path, config)
    assert native("create", "--bundle", path, "hooked", python=True).returncode == 0
    out = native("start", "hooked")
    assert out.returncode == 0, out.stderr
    warning = "poststart hook /bin/sh: exit status 3: broke"
    assert out.stderr == f"minirun-oci: warning: {warning}\n"
    assert {"level": "warning", "msg": warning} in [{k: r[k] for k in ("level", "msg")} for r in native.records()]
    for name in ("poststart", "poststart2"):
        state = json.loads((out_dir / name).read_text())
        assert (state["id"], state["status"], state["bundle"]) == ("hooked", "running", path)
        assert state["pid"] == native.state("hooked")["pid"]
    assert native("delete", "--force", "hooked").returncode == 0
    state = json.loads((out_dir / "poststop").read_text())
    assert (state["id"], state["status"], state["pid"]) == ("hooked", "stopped", 0)


def test_a_hook_past_its_timeout_is_killed(tmp_path, bundle, native):
    path = bundle(["/bin/true"])
    config = _config(path)
    config["hooks"] = {"poststop": [{"path": "/bin/sleep", "args": ["sleep", "30"], "timeout": 1}]}
    write_config(path, config)
    assert native("create", "--bundle", path, "slowhook", python=True).returncode == 0
    out = native("delete", "slowhook", timeout=10)
    assert out.returncode == 0
    assert out.stderr == "minirun-oci: warning: poststop hook /bin/sleep: timed out after 1 s\n"
    assert not os.path.exists(os.path.join(native.root, "slowhook"))


@pytest.mark.parametrize("script, words", [
    ("echo on-stdout; exit 4", "exit status 4: on-stdout"),
    ("kill -9 $$", "killed by signal 9"),
])
def test_a_failing_prestart_hook_fails_create_in_the_runners_words(script, words, bundle, oci):
    """prestart runs in Python's create, through the same C runner: the same texts as the
    others. Before, Python's subprocess runner showed only stderr and "exit status -9"."""
    path = bundle(["/bin/true"])
    config = _config(path)
    config["hooks"] = {"prestart": [{"path": "/bin/sh", "args": ["sh", "-c", script]}]}
    write_config(path, config)
    out = oci("create", "--bundle", path, "prefail")
    assert out.returncode == 1
    assert out.stderr == f"minirun-oci: prestart hook /bin/sh: {words}\n"
    assert oci("state", "prefail").returncode == 1  # nothing left


def test_text_log_and_fallback_to_python(native):
    out = native("state", "ghost", log_format="text")
    assert out.returncode == 1
    with open(native.log) as f:
        line = f.read()
    assert line.startswith('time="') and line.endswith(' level=error msg="container \'ghost\' does not exist"\n')
    version = native("--version", python=True)  # not a native verb: Python's
    assert version.returncode == 0 and "minirun-oci version" in version.stdout
    assert native("--version").returncode != 0  # positive control: the lonely copy has no Python to run
    unknown = native("kill", "ghost", "NOPE", python=True)  # the native parser defers what it refuses
    assert unknown.returncode == 1 and "unknown signal 'NOPE'" in unknown.stderr


def test_a_root_another_user_controls_is_refused(tmp_path, lonely):
    """The trusted-directory check of the root, as Python's: a state.json in nobody's
    directory names the hooks delete would run as root."""
    parent = tempfile.mkdtemp(prefix="minirun-test-root-", dir="/tmp")
    root = os.path.join(parent, "oci")
    marker = os.path.join(parent, "hook-ran")
    try:
        os.mkdir(root, 0o700)
        os.mkdir(os.path.join(root, "planted"), 0o711)
        with open(os.path.join(root, "planted", "state.json"), "w") as f:
            json.dump({"id": "planted", "pid": 0, "bundle": "/", "rootfs": "/", "created": "2026-01-01T00:00:00Z",
                       "hooks": {"poststop": [{"path": "/bin/sh", "args": ["sh", "-c", f"touch {marker}"]}]}}, f)
        os.chown(root, NOBODY, NOBODY)
        for verb in (["delete", "planted"], ["state", "planted"], ["list"], ["features"]):
            out = run_to_files([lonely, "--root", root, *verb])
            assert out.returncode == 1 and out.stderr.startswith(
                f"minirun-oci: refusing the state directory {root}: {root} is a directory of uid {NOBODY}"), out.stderr
        assert not os.path.exists(marker)
        os.chown(root, 0, 0)  # positive control: root's own directory, the hook runs
        assert run_to_files([lonely, "--root", root, "delete", "planted"]).returncode == 0
        assert os.path.exists(marker)
    finally:
        subprocess.run(["rm", "-rf", parent])


def test_the_python_front_calls_the_same_c(bundle, oci):
    """Python's runtime.start/kill/delete and store.status run csrc/ociverbs.c: a message
    only the C words this way ("container not running") from the Python minirun-oci."""
    from minirun import ociverbs
    from minirun.oci import runtime, store

    assert runtime.start.__code__.co_names.count("ociverbs") and store.status.__code__.co_names.count("ociverbs")
    path = bundle(["/bin/true"])
    assert oci("run", "-d", "--bundle", path, "same").returncode == 0
    assert wait_for(lambda: oci.state("same")["status"] == "stopped", 30)
    assert json.loads(ociverbs.state_json(oci.root, "same")) == oci.state("same")
    out = oci("kill", "same", "TERM")
    assert out.returncode == 1 and out.stderr == "minirun-oci: container 'same': container not running\n"
    assert oci("delete", "same").returncode == 0


def test_a_paused_container_reads_paused_and_delete_force_thaws_and_kills_it(bundle, native):
    path = bundle(["/bin/sleep", "60"])
    assert native("run", "-d", "--bundle", path, "frozen", python=True).returncode == 0
    pid = native.state("frozen")["pid"]
    assert native("pause", "frozen", python=True).returncode == 0
    assert native.state("frozen")["status"] == "paused"
    refused = native("delete", "frozen")
    assert refused.returncode == 1 and "that is paused: stop it first or use --force" in refused.stderr
    assert native("delete", "--force", "frozen").returncode == 0
    assert wait_for(lambda: not os.path.exists(f"/proc/{pid}"), 30)  # thawed, so the SIGKILL took


def _ps_ef_lines(pids: list[int], env: dict) -> str:
    """`ps -ef` run here, cut to its header and the lines of ``pids``."""
    lines = subprocess.run(["ps", "-ef"], env=env, capture_output=True, text=True, check=True).stdout.splitlines()
    return "".join(f"{line}\n" for line in lines[:1] + [line for line in lines[1:] if int(line.split()[1]) in pids])


def test_ps_prints_ps_ef_lines_without_running_ps(tmp_path, bundle, native, monkeypatch):
    """The default table is read from /proc (csrc/ocips.c), as `ps -ef` prints it: compared
    with ps -ef's own lines for the same pids, in a bytes and a UTF-8 locale and a narrow
    COLUMNS. The command holds a tab and a non-ASCII letter (escaped per locale); its users
    are nobody, root and one with no passwd entry (its number). A `ps` first on PATH that
    fails and leaves a mark is never run for it, only when ps arguments are given."""
    from minirun import ociverbs

    path = bundle(["/bin/sh", "-c", "sleep 100 & sleep 200 & wait # a\ttab, \u00e9t\u00e9 " + "x" * 80])
    config = _config(path)
    config["process"]["user"] = {"uid": NOBODY, "gid": NOBODY}
    write_config(path, config)
    assert native("run", "-d", "--bundle", path, "pstab", python=True).returncode == 0
    try:
        assert native("exec", "--detach", "pstab", "/bin/sleep", "300", python=True).returncode == 0
        assert native("exec", "--detach", "--user", "4242", "pstab", "/bin/sleep", "400", python=True).returncode == 0

        def pids() -> list[int]:
            return json.loads(native("ps", "--format", "json", "pstab").stdout)

        assert wait_for(lambda: len(pids()) == 5, 30)  # sh, its two sleeps, the exec'd two
        fake = tmp_path / "bin"
        fake.mkdir()
        mark = tmp_path / "ps-ran"
        (fake / "ps").write_text(f"#!/bin/sh\n: > {mark}\nexit 3\n")  # PATH holds no touch
        (fake / "ps").chmod(0o755)
        for extra in ({"LC_ALL": "C"}, {"LC_ALL": "C.UTF-8"}, {"LC_ALL": "C.UTF-8", "COLUMNS": "70"}):
            env = dict(os.environ, **extra)
            before = _ps_ef_lines(pids(), env)
            table = native("ps", "pstab", env=dict(env, PATH=str(fake)))
            after = _ps_ef_lines(pids(), env)
            assert table.returncode == 0, table.stderr
            assert table.stdout in (before, after), extra  # one of them: a clock may pass midnight between
            assert len(table.stdout.splitlines()) == 6
        assert not mark.exists()
        for name, value in extra.items():  # the Python front's table: the same C, the same environment
            monkeypatch.setenv(name, value)
        assert ociverbs.ps_text(native.root, "pstab", None, []) == _ps_ef_lines(pids(), dict(os.environ))
        with_args = native("ps", "pstab", "--", "-o", "pid", env=dict(os.environ, PATH=str(fake)))
        assert with_args.returncode == 1 and mark.exists()  # ps(1) it is, with arguments
    finally:  # five processes, which a failure above would leave running
        assert native("delete", "--force", "pstab").returncode == 0
