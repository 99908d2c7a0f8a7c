"""Shared test helpers: running the CLI as a user would, and skips that state their reason."""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
import time

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


def wait_for(predicate, timeout: float = 10.0) -> bool:
    """Poll ``predicate`` until it is true (an OSError counts as not yet) or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return True
        except OSError:
            pass
        time.sleep(0.02)
    return False


def inspect(name: str) -> dict:
    """`minirun inspect NAME` as a dict."""
    out = minirun("inspect", name)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def child_processes() -> list[str]:
    """This test process's children (a leak-check entry each), zombies included."""
    found = []
    me = str(os.getpid())
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            with open(stat) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[1] == me:  # ppid
            found.append(f"child process {stat.split('/')[2]} (state {fields[0]})")
    return found
