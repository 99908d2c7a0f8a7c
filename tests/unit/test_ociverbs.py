"""csrc/ociverbs.c and csrc/json.c through cffi (minirun/ociverbs.py): what the native
minirun-oci prints is what Python's json.dumps prints, its state.json reader is strict,
its signal names are Python's."""

from __future__ import annotations

import json
import os

import _signal
import pytest

from minirun import ociverbs
from minirun.errors import StoreError


def _write_state(root, container_id: str, record: dict | bytes) -> None:
    os.makedirs(os.path.join(root, container_id), mode=0o711)
    with open(os.path.join(root, container_id, "state.json"), "wb") as f:
        f.write(record if isinstance(record, bytes) else json.dumps(record).encode())


@pytest.fixture
def root(tmp_path) -> str:
    path = tmp_path / "root"
    path.mkdir(mode=0o700)
    return str(path)


ANNOTATIONS = {"org.example/é": "caf\u00e9 \U0001f600 \"q\" \\ \n\t\x01\x7f", "empty": "", "nested": {"a": [1, 2.5]}}


@pytest.mark.parametrize("annotations", [ANNOTATIONS, {}, None])
def test_state_prints_as_json_dumps(root, annotations):
    record = {"id": "c1", "pid": 0, "bundle": "/b \u2603", "rootfs": "/r", "created": "2026-12-06T00:00:00Z",
              "owner": "root"}
    if annotations is not None:
        record["annotations"] = annotations
    _write_state(root, "c1", record)
    expected = {"ociVersion": "1.0.2", "id": "c1", "pid": 0, "status": "stopped", "bundle": "/b \u2603",
                "rootfs": "/r", "created": "2026-12-06T00:00:00Z", "owner": "root", "annotations": annotations or {}}
    assert ociverbs.state_json(root, "c1", 2) == json.dumps(expected, indent=2)
    assert ociverbs.state_json(root, "c1") == json.dumps(expected)


@pytest.mark.parametrize("text", [b'{"id": "c1", ', b"[]", b'{"id": "c1"} x', b'{"id": "\x01"}', b'{"id": "\xff"}',
                                  b'{"id": 1}', b'{"id": "c1", "pid": 01}'])
def test_a_damaged_state_is_refused(root, text):
    _write_state(root, "c1", text)
    with pytest.raises(StoreError, match="container 'c1': state.json is damaged"):
        ociverbs.state_json(root, "c1")


def test_missing_and_bad_ids(root):
    with pytest.raises(StoreError, match="^container 'ghost' does not exist$"):
        ociverbs.state_json(root, "ghost")
    for bad in ("a/b", "..", ".", "", "x" * 1025):
        with pytest.raises(StoreError, match="^invalid container id "):
            ociverbs.state_json(root, bad)
    with pytest.raises(StoreError, match="""^invalid container id "it's": """):
        ociverbs.state_json(root, "it's")


def test_list_ids_are_the_directories_with_a_state(root):
    _write_state(root, "b", {"id": "b"})
    _write_state(root, "a", {"id": "a"})
    _write_state(root, ".new-0123", {"id": "a"})  # a create's, before its rename
    os.mkdir(os.path.join(root, "empty"))
    assert ociverbs.list_ids(root) == ["a", "b"]
    assert ociverbs.list_ids(os.path.join(root, "nowhere")) == []


def test_signal_names_are_pythons():
    names = {name[3:]: getattr(_signal, name) for name in dir(_signal)
             if name.startswith("SIG") and not name.startswith("SIG_") and isinstance(getattr(_signal, name), int)}
    for name, number in names.items():
        assert ociverbs.parse_signal(name) == ociverbs.parse_signal("SIG" + name) == number, name
        assert ociverbs.parse_signal(f" sig{name.lower()} ") == number
    assert ociverbs.parse_signal("9") == 9 and ociverbs.parse_signal("NOPE") is None


def test_log_records_as_runc_writes_them():
    record = json.loads(ociverbs.log_line("error", "caf\u00e9 \"x\"", True))
    assert list(record) == ["level", "msg", "time"] and record["msg"] == "caf\u00e9 \"x\""
    line = ociverbs.log_line("warning", "two words", False)
    assert line.startswith('time="') and line.endswith(' level=warning msg="two words"')


def test_a_root_open_to_others_is_refused(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    with pytest.raises(StoreError, match=f"refusing the state directory {shared}: {shared} is a directory"):
        ociverbs.checked_root(str(shared))
    assert ociverbs.checked_root(str(tmp_path / "not-yet" / "..")) == str(tmp_path)


def test_a_root_through_a_dangling_link_is_where_it_points(tmp_path):
    """os.path.realpath's answer: the root is used where the link points, made later there."""
    os.symlink(tmp_path / "target", tmp_path / "link")
    assert ociverbs.checked_root(str(tmp_path / "link")) == str(tmp_path / "target")
    assert ociverbs.checked_root(str(tmp_path / "link" / "sub")) == str(tmp_path / "target" / "sub")
