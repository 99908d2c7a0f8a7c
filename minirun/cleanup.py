"""Collecting what minirun processes leave when they die or end: state directories,
cgroups, bridge addresses. Beside the lifecycle that makes them; minirun/state.py
only stores.

A foreground container's state goes with its minirun; a detached one's stays,
"exited", until `rm`. Whatever a SIGKILLed minirun left is found by the lock it
no longer holds (state.is_live) and removed here, by the next minirun command
or `minirun gc`.
"""

from __future__ import annotations

import os
import time
from stat import S_ISDIR

from . import state
from .errors import MiniRunError


def remove(container_id: str, root: str | None = None) -> None:
    """A container's cgroups and log, then its state directory (state last: gc finds the rest by it)."""
    from . import cgroups

    cgroups.remove(container_id)
    if root is None or root == state.STATE_ROOT:  # `minirun run`'s containers: minirun-oci's have no log
        state.remove_log_dir(container_id)
    state.remove_dir(container_id, root or state.STATE_ROOT)


def gc_vms(vm_root: str | None = None) -> list[str]:
    """Remove the state of VMs whose minirun died (SIGKILL); QEMU died with it (PDEATHSIG), and its tap with
    QEMU. Their addresses are gc()'s, which calls this first."""
    gone = []
    vm_root = vm_root or state.VM_STATE_ROOT
    for name in state.list_ids(vm_root):
        fd = state.try_lock(os.path.join(vm_root, name, "lock"))
        if fd is not None:
            state.rmtree(os.path.join(vm_root, name))
            gone.append(name)
            if fd >= 0:
                os.close(fd)
    return gone


def gc(root: str | None = None, failed: list[str] | None = None) -> list[str]:
    """Clean up after dead minirun processes; return the ids cleaned.

    A foreground container whose minirun died is removed; a detached one whose
    supervisor died is marked exited (its state and log stay until `rm`). What
    cannot be removed yet (a cgroup something still holds) is skipped, named in
    ``failed``, and tried again next time: a leftover never stops a run.
    """
    from . import cgroups

    failed = [] if failed is None else failed
    root = root or state.STATE_ROOT  # looked up now: the state root depends on the euid
    cleaned = []
    try:
        entries = os.listdir(root) if state.check_root(root) else []
    except FileNotFoundError:
        entries = []
    now = time.time()
    for name in entries:
        path = os.path.join(root, name)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            continue
        if name.startswith(state.NEW_PREFIX):  # a claim that never got its name (a link is removed, not followed)
            if now - st.st_mtime >= state.NEW_GRACE_S and (not S_ISDIR(st.st_mode)
                                                           or not state.is_live(name, root)):
                state.rmtree(path)
            continue
        if not S_ISDIR(st.st_mode):
            continue  # minirun makes only directories here
        fd = state.try_lock(os.path.join(path, "lock"))
        if fd is None:
            continue  # live
        try:
            try:
                record = state.read(name, root)
            except (OSError, ValueError):
                record = {}
            if not record.get("detached"):
                remove(name, root)
                cleaned.append(name)
            elif record.get("status") != state.EXITED:
                record.update(status=state.EXITED, exit_code=137, finished=now, error="its minirun supervisor died")
                state.write(path, record)
                cleaned.append(name)
                cgroups.remove(name)
        except (MiniRunError, OSError) as err:
            failed.append(f"{name}: {err}")
        finally:
            if fd >= 0:
                os.close(fd)
    vm_root = state.VM_STATE_ROOT if root == state.STATE_ROOT else root + "-vm"
    gc_vms(vm_root)
    # An address whose container (or VM) has no live state directory: its minirun died.
    ipam = os.path.join(state.NETWORK_DIR, "allocations.json")
    if os.path.exists(ipam) and os.path.getsize(ipam) > 2:
        from . import network

        for key in network.stale_ids():
            vm = key.startswith(network.VM_PREFIX)
            if not (state.is_live(key[len(network.VM_PREFIX):], vm_root) if vm else state.is_live(key, root)):
                try:
                    network.detach_by_id(key)
                    cleaned.append(key)
                except Exception as err:  # noqa: BLE001 (pyroute2's errors are not OSErrors)
                    failed.append(f"{key}: {err}")
    # A cgroup without a state directory is stale (state is created first, removed last).
    # Rootless runs have no cgroups, and must not touch root's.
    for container_id in cgroups.stale_ids() if os.geteuid() == 0 else ():
        if container_id not in cleaned and not os.path.isdir(os.path.join(root, container_id)):
            try:
                cgroups.remove(container_id)
                cleaned.append(container_id)
            except (MiniRunError, OSError) as err:
                failed.append(f"{container_id}: {err}")
    return cleaned
