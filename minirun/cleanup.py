"""Collecting what minirun processes leave when they die or end: state directories,
cgroups, bridge addresses. Beside the lifecycle that makes them; minirun/state.py
only stores.

A foreground container's state goes with its minirun; a detached one's stays,
"exited", until `rm`. Whatever a SIGKILLed minirun left is found by the store's
rule (state.dir_in_use: nobody holds the directory's lock, its recorded init is not
alive) and removed here, by `minirun gc` (or, for one name, by the next run that
claims it).

minirun-oci's containers (under settings.OCI_ROOT) belong to their engine, which
deletes them: gc takes only what no engine can still want (gc_oci).
"""

from __future__ import annotations

import os
import time
from stat import S_ISDIR

from . import state
from .errors import HostError, MiniRunError, SpecError
from .ids import valid_id


def remove(container_id: str, root: str | None = None) -> None:
    """A container's cgroups and data directory (log, writable layer), then its state directory
    (state last: gc finds the rest by it)."""
    from . import cgroups

    cgroups.remove(container_id)
    if root is None or root == state.STATE_ROOT:  # `minirun run`'s containers: minirun-oci's have no data dir
        state.remove_data_dir(container_id)
    state.remove_dir(container_id, root or state.STATE_ROOT)


def gc_vms(vm_root: str | None = None) -> list[str]:
    """Remove the state of VMs whose minirun died (SIGKILL); QEMU died with it (PDEATHSIG), and its tap with
    QEMU. Their addresses are gc()'s, which calls this first."""
    gone = []
    vm_root = vm_root or state.VM_STATE_ROOT
    for name in state.list_ids(vm_root):
        path = os.path.join(vm_root, name)
        try:
            with state.DirLock(path, blocking=False):  # a VM records no init: its runner's lock is all
                state.rmtree(path)
                gone.append(name)
        except (BlockingIOError, FileNotFoundError, NotADirectoryError):
            continue
    return gone


def _vm_root(root: str) -> str:
    return state.VM_STATE_ROOT if root == state.STATE_ROOT else root + "-vm"


def release_stale_addresses(root: str | None = None, failed: list[str] | None = None) -> list[str]:
    """Give back the bridge addresses of containers (and VMs) that have no live state
    directory: their minirun died. Cheap: one look at the address book, a lock test per entry."""
    root = root or state.STATE_ROOT
    failed = [] if failed is None else failed
    ipam = os.path.join(state.NETWORK_DIR, "allocations.json")
    if not (os.path.exists(ipam) and os.path.getsize(ipam) > 2):
        return []
    from . import network

    released = []
    vm_root = _vm_root(root)
    for key in network.stale_ids():
        vm = key.startswith(network.VM_PREFIX)
        owner, owner_root = (key[len(network.VM_PREFIX):], vm_root) if vm else (key, root)
        if not state.in_use(owner, owner_root):  # asked again under the book's lock: a restart may take it
            try:
                if network.detach_by_id(key, keep_if=lambda: state.in_use(owner, owner_root)):
                    released.append(key)
            except Exception as err:  # noqa: BLE001 (pyroute2's errors are not OSErrors)
                failed.append(f"{key}: {err}")
    return released


def shim_exit_record(state_dir: str) -> dict | None:
    """The exit fields for state.json from what minirun-shim recorded before its finish step
    (csrc/shim.c, MR_SHIM_EXIT_RECORD), for a detached container whose finish step never
    ran or died half-way; None if there is no such record."""
    from .syscalls import SHIM_EXIT_RECORD

    from .result import exit_code

    try:
        with open(os.open(os.path.join(state_dir, SHIM_EXIT_RECORD), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)) as f:
            text, _, failure = f.read().partition("\n")
        status = int(text)
        code = exit_code(status)
    except (OSError, ValueError):
        return None
    return dict(exit_code=code, signal=os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
                error=failure.strip() or "the cleanup after its exit did not finish")


def gc(root: str | None = None, failed: list[str] | None = None) -> list[str]:
    """Clean up after dead minirun processes; return the ids cleaned.

    A foreground container whose minirun died is removed; a detached one whose
    supervisor died is marked exited (its state and data directory stay until `rm`);
    a data directory whose state is gone (a reboot emptied /run) is removed. What
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
        if name.startswith(state.NEW_PREFIX):
            _remove_unnamed_claim(path, st, now)
            continue
        if not S_ISDIR(st.st_mode):
            continue  # minirun makes only directories here
        try:
            with state.DirLock(path, blocking=False):  # held by a live owner: skipped
                if _collect(name, root, now):
                    cleaned.append(name)
        except (BlockingIOError, FileNotFoundError):
            continue
        except (MiniRunError, OSError) as err:
            failed.append(f"{name}: {err}")
    if root == state.STATE_ROOT:  # the data directories are its containers'
        cleaned += _remove_orphaned_data(root, failed)
    vm_root = _vm_root(root)
    gc_vms(vm_root)
    cleaned += release_stale_addresses(root, failed)
    if os.geteuid() == 0:
        cleaned += gc_oci(failed=failed)
    # A cgroup without a state directory is stale (state is created first, removed last).
    # Rootless runs have no cgroups, and must not touch root's.
    for container_id in cgroups.stale_ids() if os.geteuid() == 0 else ():
        if valid_id(container_id) and not os.path.lexists(os.path.join(root, container_id)):
            _remove_orphan(container_id, root, "stale cgroup", _remove_stale_cgroup, cleaned, failed)
    return cleaned


def _remove_stale_cgroup(container_id: str) -> None:
    """A stale cgroup goes once nothing runs in it, as minirun-oci's (gc_oci): processes in
    one whose state is not here are not ours to kill. Another state root's container may
    share the cgroup parent (both given one MINIRUN_CGROUP_PARENT), or its state was removed by hand."""
    from . import cgroups

    # Not pids() then destroy(): a cgroup's own procs miss what runs in cgroups below it (a
    # container that makes its own, as systemd does), and destroy() kills what came meanwhile.
    if not cgroups.existing(container_id).remove_if_unused():
        raise HostError("its cgroups are in use (processes, or cgroups below), but it has no state here: "
                        "not killed (another state root's container, or one whose state was removed by hand)")


def _remove_orphan(name: str, root: str, what: str, remove, cleaned: list[str], failed: list[str]) -> None:
    """``remove(name)``: what a container whose state directory is gone left (its cgroups, its
    data directory), holding a claim of its name as a start takes it: never what a run of
    that name makes meanwhile (a start that finds the name claimed for this moment is
    refused as for any name in use)."""
    try:
        with state.claim(name, {"collecting": what}, root=root):
            remove(name)
        if name not in cleaned:  # its data directory, then its cgroups
            cleaned.append(name)
    except SpecError:
        pass  # a run took the name since its state was looked for: what is there is its own
    except (MiniRunError, OSError) as err:
        failed.append(f"{name}: {err}")


def _remove_orphaned_data(root: str, failed: list[str]) -> list[str]:
    """Data directories (a detached container's log and writable layer, on disk) whose state
    directory is gone: the host rebooted (/run is a tmpfs, /var/lib is not), or the state was
    removed by hand; no `rm` can name them any more (_remove_orphan)."""
    try:
        names = os.listdir(state.check_trusted_dir(state.LOG_ROOT))
    except FileNotFoundError:
        return []
    except (MiniRunError, OSError) as err:
        failed.append(f"data directories in {state.LOG_ROOT}: {err}")
        return []
    cleaned = []
    now = time.time()
    for name in names:
        if name.startswith(state.NEW_PREFIX):  # one a start was making (state.make_data_dir) when it died
            path = os.path.join(state.LOG_ROOT, name)
            try:
                _remove_unnamed_claim(path, os.lstat(path), now)
            except FileNotFoundError:
                continue
            except OSError as err:
                failed.append(f"{path}: {err}")
        elif valid_id(name) and not os.path.lexists(os.path.join(root, name)) and state.owns_data_dir(name):
            # not its container's, nor another state root's (which checks its own)
            _remove_orphan(name, root, "orphaned data directory", state.remove_data_dir, cleaned, failed)
    return cleaned


def _remove_unnamed_claim(path: str, st, now: float) -> None:
    """A claim's temporary directory (state.Claim), or a data directory's (state.make_data_dir),
    whose run died before it got its name: removed once old and unlocked (a link there is
    removed, never followed)."""
    if now - st.st_mtime >= state.NEW_GRACE_S and (not S_ISDIR(st.st_mode) or not state.dir_in_use(path)):
        state.rmtree(path)


def _collect(name: str, root: str, now: float) -> bool:
    """A state directory nobody holds (we do, now): remove a foreground container's, record a
    detached one's exit (it stays until `rm`). False if there was nothing to do."""
    from . import cgroups

    try:
        record = state.read(name, root)
    except (OSError, ValueError, MiniRunError):
        record = {}
    if state.alive(record):
        return False  # its init lives on (its owner just died: PDEATHSIG is on its way)
    if not record.get("detached"):
        remove(name, root)
        return True
    if record.get("status") == state.EXITED:
        return False
    path = os.path.join(root, name)
    record.update(shim_exit_record(path) or dict(exit_code=137, error="its minirun supervisor died"),
                  status=state.EXITED, finished=now)
    state.write(path, record)
    cgroups.remove(name)
    return True


def gc_oci(oci_root: str | None = None, failed: list[str] | None = None) -> list[str]:
    """What minirun-oci left that no engine can still want; return the ids cleaned.

    A create that died half-way (its record says "creating", or it wrote none) is
    removed, cgroup and state, once older than state.NEW_GRACE_S: a `delete` of it
    would find nothing, as after runc's failed create. A stopped container keeps its
    state until the engine's `delete`, but its cgroup goes once empty (like a detached
    minirun container's). A cgroup under minirun-oci's default parent with no state is
    removed once empty and as old. Each directory is taken under the store's lock
    (skipped while a verb holds it).
    """
    from . import cgroups
    from .oci import store

    oci_root = oci_root or store.DEFAULT_ROOT
    failed = [] if failed is None else failed
    cleaned = []
    now = time.time()
    for name in _listdir(oci_root, state.NEW_PREFIX):
        try:
            _remove_unnamed_claim(os.path.join(oci_root, name), os.lstat(os.path.join(oci_root, name)), now)
        except FileNotFoundError:
            continue
        except OSError as err:
            failed.append(f"{name}: {err}")
    for name in _listdir(oci_root):
        path = os.path.join(oci_root, name)
        try:
            store.path(oci_root, name)  # StoreError if not a container's id: not ours to judge
            with state.DirLock(path, blocking=False):
                try:
                    record = store.read(oci_root, name)
                except store.StoreError:  # none yet, or damaged
                    record = None
                age = now - os.lstat(os.path.join(path, "state.json") if record else path).st_mtime
                if record is None or record.get("creating"):
                    if age < state.NEW_GRACE_S:
                        continue  # a create may be under way
                    # the path may be another's if the create died before making it
                    if record and record.get("cgroup") and \
                            not cgroups.existing(name, relpath=record["cgroup"]).remove_if_unused():
                        failed.append(f"{name}: cgroup {record['cgroup']} of a half-created container is in use")
                        continue
                    state.rmtree(path)
                    cleaned.append(name)
                elif not store.alive(record) and record.get("cgroup"):
                    cgroup = cgroups.existing(name, relpath=record["cgroup"])
                    if any(os.path.isdir(p) for p in cgroup.dirs) and not cgroup.pids():
                        cgroup.destroy()
                        cleaned.append(name)
        except (BlockingIOError, FileNotFoundError, NotADirectoryError, store.StoreError):
            continue  # busy, gone, or not a container's directory
        except (MiniRunError, OSError) as err:
            failed.append(f"{name}: {err}")
    from .settings import OCI_CGROUP_PARENT

    for name in cgroups.stale_ids(parent=OCI_CGROUP_PARENT) - set(_listdir(oci_root)):
        try:
            cgroup = cgroups.existing(name, relpath=os.path.join(OCI_CGROUP_PARENT, name))
            dirs = [p for p in cgroup.dirs if os.path.isdir(p)]
            if all(now - os.stat(p).st_mtime >= state.NEW_GRACE_S for p in dirs) and not cgroup.pids():
                cgroup.destroy()
                cleaned.append(name)
        except (MiniRunError, OSError) as err:
            failed.append(f"{name}: {err}")
    return cleaned


def _listdir(path: str, prefix: str = "") -> list[str]:
    """The names in ``path``: those starting with ``prefix``, or all but dot files."""
    try:
        return sorted(n for n in os.listdir(path) if (n.startswith(prefix) if prefix else not n.startswith(".")))
    except (FileNotFoundError, NotADirectoryError):
        return []

