"""Fixtures shared by every test directory."""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))  # for `import helpers`

import isolation  # noqa: E402

# Before anything imports minirun (its settings are read once, at import): this
# session's own state roots, cgroup parent, bridge and subnet (tests/isolation.py).
isolation.choose()

from helpers import DEFAULT_ROOTFS, IS_ROOT  # noqa: E402


# The lanes of minutes, marked `slow` (pyproject.toml): `make test-fast` (-m "not slow") skips them and runs
# the rest in about two minutes; `make test` runs everything. Paths are relative to tests/; FILE::TEST is one test.
SLOW_LANES = {
    "vm/test_cgroup_v2_lane.py": "a whole pytest run inside a TCG guest",
    "vm/test_vm_network.py": "TCG guests on the bridge, booted and driven over the network",
    "integration/test_compare.py": "the full compare: containers, runc and two VMs",
    "oci/test_engines.py": "podman and containerd drive minirun-oci",
    "cri/test_cri.py": "containerd's CRI plugin as kubelet drives it, minirun-oci beside runc",
    "docker/test_docker.py": "dockerd with minirun-oci beside runc, every test on both",
    "unit/test_install.py": "builds an sdist and a wheel, pip-installs each into a fresh venv (~30 s)",
    "integration/test_escape_init.py::test_command_never_sees_a_half_made_init_under_load":
        "300 starts beside a CPU hog (~35 s)",
}


def pytest_collection_modifyitems(config, items):
    here = os.path.dirname(os.path.abspath(__file__))
    for item in items:
        path = os.path.relpath(str(item.path), here)
        if path in SLOW_LANES or f"{path}::{item.name}" in SLOW_LANES:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session", autouse=True)
def own_corner_of_the_host():
    """At the session's end, remove what is left of this session's bridge, iptables rules,
    cgroup parents and state roots (the per-test leak checks name any leftover earlier)."""
    yield
    left = isolation.teardown()
    if left:
        print(f"\nremoved at the end of the session: {left}", file=sys.stderr)


@pytest.fixture(scope="session")
def rootfs() -> str:
    """The busybox rootfs (MINIRUN_ROOTFS, else the default, built if missing)."""
    path = os.environ.get("MINIRUN_ROOTFS", DEFAULT_ROOTFS)
    if not os.path.isfile(os.path.join(path, "bin", "busybox")):
        if not IS_ROOT:
            pytest.skip(f"no rootfs at {path} and not root to build it")
        from minirun.rootfs.builder import build

        build(path)
    return path
