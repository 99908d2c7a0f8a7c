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
