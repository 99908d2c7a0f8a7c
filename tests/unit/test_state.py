"""State on disk without containers: the tree remover, the root check, state files, names, pidfds."""

from __future__ import annotations

import fcntl
import os
import struct
import subprocess

import pytest

from minirun import state
from minirun.errors import HostError
from minirun.spec import valid_id


@pytest.mark.parametrize("name", ["web", "webserver", "a", "A-1_b.c", "0" * 64, "deadbeef0123"])
def test_valid_names(name):
    assert valid_id(name)


@pytest.mark.parametrize("name", ["web\n", "\nweb", "", "-web", ".web", "_web", "web/x", "..", "a" * 65, "we b",
                                  "wéb", None])
def test_invalid_names(name):
    assert not valid_id(name)


def test_rmtree_removes_a_link_never_its_target(tmp_path):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious").write_text("x")
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "to-victim").symlink_to(victim)
    (tree / "file").write_text("y")
    top_link = tmp_path / ".new-link"
    top_link.symlink_to(victim)
    state.rmtree(str(top_link))
    state.rmtree(str(tree))
    assert not os.path.lexists(top_link) and not tree.exists()
    assert (victim / "precious").read_text() == "x"
    # control: the same remover does remove a directory's contents
    state.rmtree(str(victim))
    assert not victim.exists()


def test_rmtree_enters_a_mode_000_directory(tmp_path):
    work = tmp_path / "state" / "work" / "work"
    work.mkdir(parents=True)
    (work / "f").write_text("z")
    work.chmod(0)
    state.rmtree(str(tmp_path / "state"))
    assert not (tmp_path / "state").exists()


def test_rmtree_of_nothing_is_fine(tmp_path):
    state.rmtree(str(tmp_path / "missing"))
    state.rmtree(str(tmp_path / "missing" / "deeper"))


def test_write_uses_a_fresh_temporary_and_never_follows_a_link(tmp_path):
    decoy = tmp_path / "decoy"
    decoy.write_text("keep")
    (tmp_path / "state.json.tmp").symlink_to(decoy)  # where the old writer put its temporary
    state.write(str(tmp_path), {"a": 1})
    assert (tmp_path / "state.json").read_text() == '{"a": 1}'
    assert decoy.read_text() == "keep"
    assert sorted(os.listdir(tmp_path)) == ["decoy", "state.json", "state.json.tmp"]
    assert (tmp_path / "state.json").stat().st_mode & 0o777 == 0o600


def test_a_write_replaces_the_record_and_leaves_no_temporary(tmp_path):
    state.write(str(tmp_path), {"a": 1})  # nothing to swap with yet: renamed into place
    state.write(str(tmp_path), {"a": 2})
    state.write(str(tmp_path), {"a": 3})
    assert sorted(os.listdir(tmp_path)) == ["state.json"]
    assert (tmp_path / "state.json").read_text() == '{"a": 3}'
    decoy = tmp_path / "decoy"
    decoy.write_text("keep")
    (tmp_path / "state.json").unlink()
    (tmp_path / "state.json").symlink_to(decoy)  # a link planted where the record goes: replaced, not followed
    state.write(str(tmp_path), {"a": 4})
    assert (tmp_path / "state.json").read_text() == '{"a": 4}' and not (tmp_path / "state.json").is_symlink()
    assert decoy.read_text() == "keep"
    assert sorted(os.listdir(tmp_path)) == ["decoy", "state.json"]
    (tmp_path / "state.json").unlink()
    (tmp_path / "state.json").mkdir()  # a directory there: swapped out of the way, under a hidden name
    state.write(str(tmp_path), {"a": 5})
    assert (tmp_path / "state.json").read_text() == '{"a": 5}'
    assert sorted(name for name in os.listdir(tmp_path) if not name.startswith(".")) == ["decoy", "state.json"]


FIEMAP_EXTENT_DELALLOC = 0x4


def _extent_flags(path) -> list[int]:
    """The flags of each extent FS_IOC_FIEMAP reports for the file (struct fiemap, linux/fiemap.h)."""
    fs_ioc_fiemap, count = 0xC020660B, 8
    buf = bytearray(struct.pack("=QQLLLL", 0, 2**64 - 1, 0, 0, count, 0) + bytes(56 * count))
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.ioctl(fd, fs_ioc_fiemap, buf)
    finally:
        os.close(fd)
    mapped = struct.unpack_from("=L", buf, 20)[0]
    return [struct.unpack_from("=QQQQQL", buf, 32 + 56 * i)[5] for i in range(mapped)]


def test_a_replaced_record_is_not_written_out(tmp_path):
    # ext4 writes a file's data out at once when the file replaces another by rename(2)
    # (auto_da_alloc); a record lives milliseconds, and on this machine kind's ext4 (no
    # journal, -o discard) each block written and freed again costs a synchronous discard
    # at the run's end. Swapped in, it stays in the page cache (delayed allocation).
    probe = tmp_path / "probe"
    probe.write_text("x" * 9000)
    try:
        delayed = _extent_flags(probe)
    except OSError:
        delayed = []
    if not delayed or not all(f & FIEMAP_EXTENT_DELALLOC for f in delayed):
        pytest.skip(f"{tmp_path}'s filesystem does not delay allocation")
    state.write(str(tmp_path), {"env": "x" * 9000})
    state.write(str(tmp_path), {"env": "y" * 9000})
    flags = _extent_flags(tmp_path / "state.json")
    assert flags and all(f & FIEMAP_EXTENT_DELALLOC for f in flags), [hex(f) for f in flags]


def test_a_fresh_write_creates_state_json_in_place_and_never_replaces_or_follows(tmp_path):
    state.write(str(tmp_path), {"a": 1}, fresh=True)  # a claim's own directory: no temporary, no rename
    assert sorted(os.listdir(tmp_path)) == ["state.json"]
    assert (tmp_path / "state.json").read_text() == '{"a": 1}'
    assert (tmp_path / "state.json").stat().st_mode & 0o777 == 0o600
    with pytest.raises(FileExistsError):
        state.write(str(tmp_path), {"a": 2}, fresh=True)
    assert (tmp_path / "state.json").read_text() == '{"a": 1}'
    (tmp_path / "state.json").unlink()
    decoy = tmp_path / "decoy"
    decoy.write_text("keep")
    (tmp_path / "state.json").symlink_to(decoy)
    with pytest.raises(FileExistsError):
        state.write(str(tmp_path), {"a": 3}, fresh=True)
    assert decoy.read_text() == "keep"


def test_root_check(tmp_path, monkeypatch):
    parent = tmp_path / "minirun-1000"
    monkeypatch.setattr(state, "TMP_PARENT", str(parent))
    root = str(parent / "minirun")
    assert state.check_root(root) is False  # missing: nothing to list
    assert state.check_root(root, create=True) is True
    assert (parent.stat().st_mode & 0o777, os.stat(root).st_mode & 0o777) == (0o700, 0o700)
    parent.chmod(0o755)  # readable by others: not the private directory minirun made
    with pytest.raises(HostError, match="refusing the state directory .*mode 755"):
        state.check_root(root)
    parent.chmod(0o700)
    os.rmdir(root)
    os.symlink(str(tmp_path), root)  # a link in place of the root
    with pytest.raises(HostError, match="not a directory"):
        state.check_root(root)


def test_root_check_creates_alongside_a_concurrent_start(tmp_path, monkeypatch):
    """Twenty starts at once on a fresh root: one makes the directory between another's
    lstat and mkdir, which must take the directory it finds (and check it), not fail
    ("supervisor failed: FileExistsError", seen in CI)."""
    root = str(tmp_path / "minirun")
    real_lstat = os.lstat

    def racing_lstat(path):
        try:
            return real_lstat(path)
        except FileNotFoundError:
            os.mkdir(path, 0o700)  # the concurrent start, inside the window
            raise

    monkeypatch.setattr(state.os, "lstat", racing_lstat)
    assert state.check_root(root, create=True) is True
    assert os.path.isdir(root)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to make a directory of another user")
def test_root_check_refuses_another_users_directory(tmp_path, monkeypatch):
    parent = tmp_path / "minirun-1000"
    monkeypatch.setattr(state, "TMP_PARENT", str(parent))
    parent.mkdir(0o700)
    os.chown(parent, 54321, 54321)
    with pytest.raises(HostError, match="of uid 54321"):
        state.check_root(str(parent / "minirun"))


def test_open_pidfd_checks_the_start_time():
    proc = subprocess.Popen(["sleep", "30"])
    try:
        start = state.start_time(proc.pid)
        assert state.open_pidfd({"pid": proc.pid, "pid_start": start - 1}) is None
        assert state.open_pidfd({"pid": proc.pid}) is None
        fd = state.open_pidfd({"pid": proc.pid, "pid_start": start})
        assert fd is not None
        os.close(fd)
    finally:
        proc.kill()
        proc.wait()
    assert state.open_pidfd({"pid": proc.pid, "pid_start": start}) is None  # gone (and reaped)


def test_a_data_directory_whose_owner_is_empty_names_no_root(tmp_path, monkeypatch):
    """A start killed between making a data directory's state-root and writing it left it
    empty: that names no state root (as a missing one), so gc, rm and a start of the name in
    any root take the directory, and no start reads "" as a root and looks for the name in
    its working directory instead."""
    data = tmp_path / "data"
    (data / "web").mkdir(parents=True, mode=0o700)
    (data / "web" / state.DATA_OWNER).write_text("")
    (tmp_path / "web").mkdir()  # in the caller's working directory: not a container's state
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(state, "LOG_ROOT", str(data))
    assert state.data_dir_owner(str(data / "web")) is None and state.owns_data_dir("web")
    path = state.make_data_dir("web")
    assert state.data_dir_owner(path) == state.STATE_ROOT


def test_a_data_directory_is_never_seen_without_its_owner(tmp_path, monkeypatch):
    """Another state root's gc or rm takes a data directory that names no owner for nobody's:
    make_data_dir's directory appears under its name only with state-root written in it."""
    data = tmp_path / "data"
    monkeypatch.setattr(state, "LOG_ROOT", str(data))
    path = str(data / "web")
    seen = []
    real_write = os.write

    def write_and_look(fd, payload):  # the owner's write: what does another root see now?
        seen.append(state.data_dir_owner(path) if os.path.lexists(path) else "absent")
        return real_write(fd, payload)

    monkeypatch.setattr(state.os, "write", write_and_look)
    assert state.make_data_dir("web") == path
    monkeypatch.undo()
    assert seen == ["absent"], seen
    assert state.data_dir_owner(path) == state.STATE_ROOT
    assert os.listdir(data) == ["web"]  # nothing of the making left beside it
