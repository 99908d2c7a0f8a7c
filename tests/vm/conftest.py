"""Fixtures for the VM lane: real QEMU boots (TCG is fine), each kept short.

Every test here is marked ``vm``; deselect the lane with ``-m "not vm"``.  The
guest kernels come from the cache (``make kernel`` / ``python3 -m minirun.vm.kernel
fetch``) and are fetched here if missing.  ``leak_check`` gives each test a private
TMPDIR and a unique VM name, and fails the test if a QEMU process with that name,
anything in that TMPDIR, a tap (a new ``mr*`` interface), the VM's address in the
bridge's book or its state directory survives the run.
"""

from __future__ import annotations

import os
import shutil
import time

import pytest

from helpers import own_links, processes_with


def pytest_configure(config):
    config.addinivalue_line("markers", "vm: boots a real QEMU virtual machine (slow-ish; TCG works)")


def pytest_collection_modifyitems(config, items):
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.fspath).startswith(here):
            item.add_marker(pytest.mark.vm)


@pytest.fixture(scope="session")
def qemu() -> str:
    path = shutil.which("qemu-system-x86_64")
    if not path:
        pytest.skip("qemu-system-x86_64 not installed (Debian package qemu-system-x86)")
    if os.geteuid() != 0:
        pytest.skip("the VM lane runs as root (kernel cache in /var/cache/minirun, 9p passthrough)")
    return path


@pytest.fixture(scope="session")
def kernels(qemu) -> dict:
    from minirun.vm import kernel

    try:
        return {flavour: kernel.get(flavour=flavour) for flavour in kernel.FLAVOURS}
    except Exception as err:  # no network and no cache: say so instead of failing every test
        pytest.skip(f"no guest kernel available: {err}")


@pytest.fixture
def vm_env(kernels, tmp_path) -> dict:
    """Environment for a `minirun vm` subprocess: a private, checked TMPDIR."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    return dict(os.environ, TMPDIR=str(tmp))


def qemu_processes(name: str) -> list[int]:
    """PIDs of QEMU processes started with ``-name NAME``."""
    return processes_with(lambda argv: b"qemu-system" in argv[0] and name.encode() in argv)


def vm_network_leftovers(name: str) -> list[str]:
    """What a VM on the bridge could leave: its tap, its address, its state directory."""
    from minirun import network, state

    found = []
    tap = network.host_ifname(network.vm_key(name))
    if os.path.exists(f"/sys/class/net/{tap}"):
        found.append(f"tap {tap}")
    if network.vm_key(name) in network.stale_ids():
        found.append(f"address of {network.vm_key(name)}")
    if os.path.exists(os.path.join(state.VM_STATE_ROOT, name)):
        found.append(f"state {state.VM_STATE_ROOT}/{name}")
    return found


def taps() -> set[str]:
    """This session's bridge and what is plugged into it (tests/isolation.py): never another tenant's."""
    return set(own_links())


@pytest.fixture
def leak_check(vm_env, request):
    """Yields a unique VM name; afterwards no QEMU with it, nothing in TMPDIR, no new tap, no address and no
    state of it may remain."""
    name = f"t-{os.getpid()}-{request.node.name[:20]}".replace("[", "-").replace("]", "")
    name = "".join(c if c.isalnum() or c in "-_." else "-" for c in name)
    taps_before = taps()
    yield name
    deadline = time.monotonic() + 5
    while (qemu_processes(name) or vm_network_leftovers(name)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert qemu_processes(name) == [], f"QEMU {name} survived"
    assert os.listdir(vm_env["TMPDIR"]) == [], "temp files left behind"
    assert vm_network_leftovers(name) == [], "left behind"
    assert taps() - taps_before == set(), "new links left behind"


@pytest.fixture
def vm_watch():
    """The leak checks' own lookups, for tests that look mid-run: qemu_processes(name), leftovers(name)."""

    class Watch:
        qemu_processes = staticmethod(qemu_processes)
        leftovers = staticmethod(vm_network_leftovers)

    return Watch
