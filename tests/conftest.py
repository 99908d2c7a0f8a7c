"""Fixtures shared by every test directory."""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))  # for `import helpers`

from helpers import DEFAULT_ROOTFS, IS_ROOT  # noqa: E402


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
