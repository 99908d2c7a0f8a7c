"""The one state store (minirun/state.py) of both front ends: one lock (flock on the
container's directory), one liveness rule (the recorded init: pid and start time, not a
zombie), minirun's claims on top. Real processes and real flocks, no containers."""

from __future__ import annotations

import os
import subprocess

import pytest

from minirun import state
from minirun.core import Container
from minirun.errors import SpecError
from minirun.oci import store as oci_store


@pytest.fixture
def sleeper():
    proc = subprocess.Popen(["sleep", "30"])
    yield proc
    proc.kill()
    proc.wait()


def _plant(root, name: str, record: dict) -> str:
    """A state directory as a dead (or foreign) owner left it: nobody holds its lock."""
    path = os.path.join(root, name)
    os.makedirs(path, 0o700)
    state.write(path, dict(record, id=name))
    return path


def test_a_reused_pid_reads_as_not_alive_in_both_stores(tmp_path, sleeper):
    """The recorded init died and its pid names another process now: stopped for minirun-oci,
    and for minirun a directory nobody holds, which gc may take."""
    start = state.start_time(sleeper.pid)
    reused = {"pid": sleeper.pid, "pid_start": start - 1}
    recorded = {"pid": sleeper.pid, "pid_start": start}
    assert not state.alive(reused) and state.alive(recorded)
    oci_root, mr_root = tmp_path / "oci", tmp_path / "minirun"
    for name, record in (("reused", reused), ("recorded", recorded)):
        _plant(oci_root, name, dict(record, bundle="/b", rootfs="/r", created="now"))
        _plant(mr_root, name, dict(record, status="running", detached=True))
    assert oci_store.status(str(oci_root), oci_store.read(str(oci_root), "reused")) == oci_store.STOPPED
    assert oci_store.status(str(oci_root), oci_store.read(str(oci_root), "recorded")) == oci_store.RUNNING
    assert not state.in_use("reused", str(mr_root))
    assert state.in_use("recorded", str(mr_root))  # unlocked, but its init lives: never collected
    # the core's view, the same for either front end's record
    assert Container("reused", str(mr_root / "reused"), reused).state() == "stopped"
    assert Container("recorded", str(mr_root / "recorded"), recorded).state() == "running"
    os.mkfifo(mr_root / "recorded" / "exec.fifo")
    assert Container("recorded", str(mr_root / "recorded"), recorded).state() == "created"


def test_a_zombie_init_is_not_alive(sleeper):
    record = {"pid": sleeper.pid, "pid_start": state.start_time(sleeper.pid)}
    sleeper.kill()
    os.waitid(os.P_PID, sleeper.pid, os.WEXITED | os.WNOWAIT)  # dead, not yet reaped: a zombie
    with open(f"/proc/{sleeper.pid}/stat") as f:
        assert f.read().rsplit(")", 1)[1].split()[0] == "Z"
    assert not state.alive(record)


def test_a_claim_holds_the_directory_lock_from_before_its_name_exists(tmp_path):
    """No one ever sees the directory of a run being set up unlocked: it is locked under
    its temporary name, then renamed into place, lock and all."""
    root = str(tmp_path / "minirun")
    with state.claim("web", {}, root=root) as claim:
        assert claim.state["status"] == state.CREATING and "pid" not in claim.state  # no init yet
        assert state.in_use("web", root)
        with pytest.raises(BlockingIOError):
            with state.Store(root).locked("web", blocking=False):
                pass
        assert os.listdir(root) == ["web"]
    assert os.listdir(root) == []


def test_two_runs_cannot_take_one_name(tmp_path):
    root = str(tmp_path / "minirun")
    with state.claim("web", {}, root=root):
        with pytest.raises(SpecError, match='name "web" is already in use'):
            with state.claim("web", {}, root=root, reclaim=state.remove_dir):
                pass
    assert os.listdir(root) == []  # the loser's temporary directory went too


def test_a_dead_owners_directory_is_reclaimed_but_not_one_whose_init_lives(tmp_path, sleeper):
    root = str(tmp_path / "minirun")
    _plant(root, "dead", {"status": "running", "pid": 0})
    with state.claim("dead", {"new": True}, root=root, reclaim=state.remove_dir) as claim:
        assert state.Store(root).read("dead")["new"] is True
        assert claim.state["owner"] == os.getpid()
    _plant(root, "alive", {"status": "running", "pid": sleeper.pid, "pid_start": state.start_time(sleeper.pid)})
    with pytest.raises(SpecError, match='name "alive" is already in use'):
        with state.claim("alive", {}, root=root, reclaim=state.remove_dir):
            pass
    assert os.path.isdir(os.path.join(root, "alive"))


def test_a_detached_containers_record_stays_until_rm(tmp_path):
    root = str(tmp_path / "minirun")
    _plant(root, "kept", {"status": "exited", "detached": True})
    with pytest.raises(SpecError, match="already in use by a stopped container"):
        with state.claim("kept", {}, root=root, reclaim=state.remove_dir):
            pass


def test_an_oci_claim_never_reclaims(tmp_path):
    """minirun-oci: any directory of the name is the engine's until its `delete`."""
    root = str(tmp_path / "oci")
    _plant(root, "c1", {"pid": 0})
    with pytest.raises(SpecError, match="container 'c1' already exists"):
        oci_store.store(root).claim("c1", {"id": "c1"}, keep=True).take()
    claim = oci_store.store(root).claim("c2", {"id": "c2", "pid": 0}, keep=True)
    os.makedirs(os.path.join(root, ".new-planted"))  # another create, before its rename
    state.write(os.path.join(root, ".new-planted"), {"id": "c3", "pid": 0})
    claim.take()
    claim.release()
    assert oci_store.list_ids(root) == ["c1", "c2"]
    assert oct(os.stat(os.path.join(root, "c2")).st_mode & 0o777) == oct(0o711)  # runc's mode
    assert oci_store.read(root, "c2") == {"id": "c2", "pid": 0}
