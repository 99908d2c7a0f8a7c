"""Integration tests run real containers; after each one, nothing may be left behind."""

from __future__ import annotations

import glob
import json
import os
import time

import pytest

from helpers import IS_ROOT, child_processes, own_links, own_mounts
from minirun.settings import CGROUP_PARENT, NETWORK_DIR, STATE_ROOT
from minirun.state import LOG_ROOT


def leftovers() -> list[str]:
    """Everything a container of this session could leak (its cgroup parent, state root,
    bridge, address book: tests/isolation.py), never another tenant's: cgroups, state,
    mounts, links, addresses, child processes."""
    found = []
    for parent in glob.glob(f"/sys/fs/cgroup/*/{CGROUP_PARENT}") + glob.glob(f"/sys/fs/cgroup/{CGROUP_PARENT}"):
        found += [f"cgroup {d}" for d in glob.glob(os.path.join(parent, "*")) if os.path.isdir(d)]
    if os.path.isdir(STATE_ROOT):
        found += [f"state {STATE_ROOT}/{name}" for name in os.listdir(STATE_ROOT)]
    if os.path.isdir(LOG_ROOT):
        found += [f"data {LOG_ROOT}/{name}" for name in os.listdir(LOG_ROOT)]  # log, upper, work
    found += own_mounts() + own_links()
    try:
        with open(os.path.join(NETWORK_DIR, "allocations.json")) as f:
            found += [f"address {ip} of {cid}" for cid, ip in json.load(f).items()]
    except (FileNotFoundError, ValueError):
        pass
    return found + child_processes()


def wait_clean(timeout: float = 5.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        left = leftovers()
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


@pytest.fixture(autouse=True)
def no_leaks():
    if not IS_ROOT:
        pytest.skip("needs root (namespaces, mounts, cgroups)")
    before = set(wait_clean(0))
    yield
    left = [item for item in wait_clean() if item not in before]
    assert not left, f"left behind: {left}"
