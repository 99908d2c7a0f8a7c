"""minirun-oci tests: real containers from real bundles, and nothing may be left behind."""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
import tempfile
import time

import pytest

from helpers import IS_ROOT, child_processes, own_mounts
from minirun.settings import OCI_CGROUP_PARENT, OCI_ROOT

# MINIRUN_TEST_OCI: another minirun-oci to run the suite against (a native front, say).
OCI = os.environ.get("MINIRUN_TEST_OCI") or os.path.join(os.path.dirname(sys.executable), "minirun-oci")
# Test bundles put their containers' cgroups below this session's own parent (tests/isolation.py).
TEST_CGROUP_PARENT = OCI_CGROUP_PARENT


def leftovers(state_root: str | None = None, basetemp: str | None = None) -> list[str]:
    """What this session's containers could leak: cgroups under its parent, state in its
    roots, mounts under them or its temporary directories, child processes."""
    found = [f"cgroup {d}" for d in glob.glob(f"/sys/fs/cgroup/*/{OCI_CGROUP_PARENT}/*") if os.path.isdir(d)]
    for root in filter(None, (OCI_ROOT, state_root)):
        if os.path.isdir(root):
            found += [f"state {root}/{name}" for name in os.listdir(root)]
    found += own_mounts(*filter(None, (state_root, basetemp)))
    return found + child_processes()


# Parents of containers' cgroups that engines create and, as runc, leave in place: the
# ones this session made go at its end (rmdir: only if empty). minirun-oci's own parent
# is this session's (tests/isolation.py removes it).
CGROUP_PARENTS = ("libpod_parent", "default")


def _cgroup_parents() -> set[str]:
    return {d for name in CGROUP_PARENTS for d in glob.glob(f"/sys/fs/cgroup/*/{name}")}


@pytest.fixture(scope="session", autouse=True)
def cgroup_parents_cleanup():
    before = _cgroup_parents()
    yield
    deadline = time.monotonic() + 5  # an engine's last conmon or shim may still be exiting
    while time.monotonic() < deadline:
        left = _cgroup_parents() - before
        for parent in left:
            for dirpath, _dirs, _files in sorted(os.walk(parent), key=lambda w: -w[0].count("/")):
                try:
                    os.rmdir(dirpath)
                except OSError:
                    pass
        if not _cgroup_parents() - before:
            break
        time.sleep(0.1)


@pytest.fixture
def state_root(tmp_path) -> str:
    return str(tmp_path / "state")


@pytest.fixture(autouse=True)
def no_leaks(state_root, tmp_path_factory):
    if not IS_ROOT:
        pytest.skip("needs root (namespaces, mounts, cgroups)")
    basetemp = str(tmp_path_factory.getbasetemp())
    before = set(leftovers(basetemp=basetemp))
    yield
    deadline = time.monotonic() + 5
    while True:
        left = [item for item in leftovers(state_root, basetemp) if item not in before]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert not left, f"left behind: {left}"


def run_to_files(cmd: list[str], timeout: float = 30, **kw) -> subprocess.CompletedProcess:
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.run(cmd, stdout=out, stderr=err, timeout=timeout, **kw)
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(cmd, proc.returncode, out.read().decode(), err.read().decode())


class Oci:
    """`minirun-oci --root STATE --log LOG --log-format json ...` as an engine runs it."""

    def __init__(self, root: str, log: str):
        self.root, self.log = root, log

    def __call__(self, *args: str, timeout: float = 30, **kw) -> subprocess.CompletedProcess:
        # Files, not pipes: a created container keeps the stdio it was given (as under an
        # engine), and a pipe would not reach EOF until the container exits.
        return run_to_files([OCI, "--root", self.root, "--log", self.log, "--log-format", "json", *args],
                            timeout=timeout, **kw)

    def state(self, container_id: str) -> dict:
        out = self("state", container_id)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    def log_errors(self) -> list[str]:
        try:
            with open(self.log) as f:
                return [json.loads(line)["msg"] for line in f if json.loads(line)["level"] == "error"]
        except FileNotFoundError:
            return []


@pytest.fixture
def oci(state_root, tmp_path) -> Oci:
    return Oci(state_root, str(tmp_path / "log.json"))


def make_bundle(path: str, rootfs: str, args: list[str], **changes) -> dict:
    """`runc spec`'s config.json, no terminal, root at ``rootfs``, ``args`` as the process."""
    os.makedirs(path, exist_ok=True)
    subprocess.run(["runc", "spec", "--bundle", path], check=True)
    with open(os.path.join(path, "config.json")) as f:
        config = json.load(f)
    config["process"]["terminal"] = False
    config["process"]["args"] = args
    config["root"] = {"path": rootfs, "readonly": True}
    config["linux"]["cgroupsPath"] = f"/{TEST_CGROUP_PARENT}/{os.path.basename(path)}-{os.urandom(4).hex()}"
    for key, value in changes.items():
        config[key] = value
    write_config(path, config)
    return config


def write_config(path: str, config: dict) -> None:
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(config, f)


@pytest.fixture
def bundle(tmp_path, rootfs):
    """A factory: bundle(args, **top-level changes) -> its directory."""
    count = [0]

    def make(args, **changes) -> str:
        count[0] += 1
        path = str(tmp_path / f"bundle{count[0]}")
        make_bundle(path, rootfs, args, **changes)
        return path

    return make
