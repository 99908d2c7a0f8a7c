"""Shared test helpers: running the CLI as a user would, and skips that state their reason."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

DEFAULT_ROOTFS = "/var/lib/minirun/rootfs/busybox"
IS_ROOT = os.geteuid() == 0

needs_root = pytest.mark.skipif(not IS_ROOT, reason="needs root (namespaces, mounts, cgroups)")


def minirun(*args: str, timeout: float = 60, **kw) -> subprocess.CompletedProcess:
    """Run the real CLI as a user would, capturing its output."""
    return subprocess.run([sys.executable, "-m", "minirun", *args], capture_output=True, text=True,
                          timeout=timeout, **kw)


def popen_minirun(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "minirun", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)
