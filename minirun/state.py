"""Per-container state under /run/minirun/<id>/, and the collection of stale state.

    /run/minirun/<id>/lock         flock()ed by the container's owner (a foreground
                                   minirun, or the supervisor of a detached one) for
                                   as long as it lives: the liveness test
    /run/minirun/<id>/state.json   written atomically (temp file + rename)
    /run/minirun/<id>/log          output of a detached container
    /run/minirun/<id>/{upper,work,root}   the overlay root
    /run/minirun-vm/<name>/lock    the same liveness lock for a `minirun vm run`
                                   (kept apart: `ps`, `rm` and `exec` are for containers)

The directory is created under a temporary name, locked, then renamed into
place, so a concurrent gc never sees an unlocked directory of a live run, and
two runs can never claim the same name. A directory whose lock can be taken
belongs to nobody: a foreground container's is stale and removed by ``gc()``
(with its cgroups); a detached container's stays, as "exited", until `rm`.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import time

from .errors import SpecError

# Rootless (a non-root user with --userns): state lives in the user's runtime directory.
STATE_ROOT = "/run/minirun" if os.geteuid() == 0 else os.path.join(
    os.environ.get("XDG_RUNTIME_DIR") or f"/tmp/minirun-{os.geteuid()}", "minirun")
# Address allocations of bridge networking (minirun.network); a variable so that a
# guest sharing the host's root read-only (the VM test lane) can keep its own.
VM_STATE_ROOT = STATE_ROOT + "-vm"
NETWORK_DIR = os.environ.get("MINIRUN_NETWORK_DIR", "/var/lib/minirun/network")
_NEW_PREFIX = ".new-"
_NEW_GRACE_S = 60  # a ".new-" dir younger than this may belong to a run being set up

CREATING, RUNNING, EXITED = "creating", "running", "exited"


def _try_lock(path: str) -> int | None:
    """Lock ``path`` if nobody holds it: the fd (-1 if there is no such file), or None when held."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return -1
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def is_live(container_id: str, root: str = STATE_ROOT) -> bool:
    fd = _try_lock(os.path.join(root, container_id, "lock"))
    if fd is None:
        return True
    if fd >= 0:
        os.close(fd)
    return False


def read(container_id: str, root: str = STATE_ROOT) -> dict:
    with open(os.path.join(root, container_id, "state.json")) as f:
        return json.load(f)


def write(state_dir: str, state: dict) -> None:
    """Replace state.json atomically: readers see the old or the new file, never half."""
    tmp = os.path.join(state_dir, "state.json.tmp")
    with open(tmp, "w") as f:
        json.dump(state, f)
    os.rename(tmp, os.path.join(state_dir, "state.json"))


class Claim:
    """Ownership of /run/minirun/<id> while the container lives: see the module doc."""

    def __init__(self, container_id: str, info: dict, keep: bool = False, root: str = STATE_ROOT):
        self.id, self.keep, self.root = container_id, keep, root
        self.path = os.path.join(root, container_id)
        self.state = dict(info, id=container_id, status=CREATING, owner=os.getpid(), detached=keep,
                          created=time.time())
        self._lock_fd = -1

    def __enter__(self) -> Claim:
        os.makedirs(self.root, mode=0o700, exist_ok=True)
        tmp = os.path.join(self.root, _NEW_PREFIX + os.urandom(6).hex())
        os.mkdir(tmp, 0o700)
        self._lock_fd = os.open(os.path.join(tmp, "lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        try:
            write(tmp, self.state)
            _rename_into_place(tmp, self.path, self.id, self.root)
        except BaseException:
            _rmtree(tmp)
            os.close(self._lock_fd)
            raise
        return self

    def update(self, **fields) -> None:
        self.state.update(fields)
        write(self.path, self.state)

    def __exit__(self, *exc) -> None:
        if not self.keep:
            _rmtree(self.path)
        elif self.state["status"] != EXITED:  # the run failed before the container started
            self.update(status=EXITED, exit_code=125, finished=time.time())
        os.close(self._lock_fd)


def claim(container_id: str, info: dict, keep: bool = False, root: str = STATE_ROOT) -> Claim:
    return Claim(container_id, info, keep, root)


def _rename_into_place(tmp: str, final: str, container_id: str, root: str) -> None:
    for _ in range(2):
        try:
            os.rename(tmp, final)
            return
        except OSError as err:
            if err.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
        if is_live(container_id, root):
            break
        try:
            if read(container_id, root).get("detached"):
                raise SpecError(f'container name "{container_id}" is already in use by a stopped container: '
                                f"remove it first (minirun rm {container_id})")
        except (OSError, ValueError):
            pass
        remove(container_id, root)  # left by a minirun that died: take the name back
    raise SpecError(f'container name "{container_id}" is already in use')


def _rmtree(path: str) -> None:
    """Remove a directory tree (a state directory, an overlay's upper and work), without shutil,
    which costs more to import than a container takes to start. Directories are
    made writable first: overlayfs leaves a mode-000 work/work, which only root
    could enter otherwise (a rootless container's state is its user's)."""
    try:
        os.chmod(path, 0o700)
        entries = list(os.scandir(path))
    except FileNotFoundError:
        return
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            _rmtree(entry.path)
        else:
            try:
                os.unlink(entry.path)
            except FileNotFoundError:
                pass
    try:
        os.rmdir(path)
    except FileNotFoundError:
        pass


def remove(container_id: str, root: str = STATE_ROOT) -> None:
    from . import cgroups

    cgroups.remove(container_id)
    _rmtree(os.path.join(root, container_id))


def start_time(pid: int) -> int | None:
    """A process's start time in clock ticks: with the pid, it names the process
    uniquely (a pid alone may be reused by the time we signal it)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def list_ids(root: str = STATE_ROOT) -> list[str]:
    try:
        return sorted(n for n in os.listdir(root) if not n.startswith("."))
    except FileNotFoundError:
        return []


def gc_vms(vm_root: str = VM_STATE_ROOT) -> list[str]:
    """Remove the state of VMs whose minirun died (SIGKILL); QEMU died with it (PDEATHSIG), and its tap with
    QEMU. Their addresses are gc()'s, which calls this first."""
    gone = []
    for name in list_ids(vm_root):
        fd = _try_lock(os.path.join(vm_root, name, "lock"))
        if fd is not None:
            _rmtree(os.path.join(vm_root, name))
            gone.append(name)
            if fd >= 0:
                os.close(fd)
    return gone


def gc(root: str = STATE_ROOT) -> list[str]:
    """Clean up after dead minirun processes; return the ids cleaned.

    A foreground container whose minirun died is removed; a detached one whose
    supervisor died is marked exited (its state and log stay until `rm`).
    """
    from . import cgroups

    cleaned = []
    try:
        entries = os.listdir(root)
    except FileNotFoundError:
        entries = []
    now = time.time()
    for name in entries:
        path = os.path.join(root, name)
        if name.startswith(_NEW_PREFIX):
            try:
                young = now - os.stat(path).st_mtime < _NEW_GRACE_S
            except FileNotFoundError:
                continue
            if not young and not is_live(name, root):
                _rmtree(path)
            continue
        fd = _try_lock(os.path.join(path, "lock"))
        if fd is None:
            continue  # live
        try:
            try:
                state = read(name, root)
            except (OSError, ValueError):
                state = {}
            if not state.get("detached"):
                remove(name, root)
                cleaned.append(name)
            elif state.get("status") != EXITED:
                cgroups.remove(name)
                state.update(status=EXITED, exit_code=137, finished=now, error="its minirun supervisor died")
                write(path, state)
                cleaned.append(name)
        finally:
            if fd >= 0:
                os.close(fd)
    vm_root = VM_STATE_ROOT if root == STATE_ROOT else root + "-vm"
    gc_vms(vm_root)
    # An address whose container (or VM) has no live state directory: its minirun died.
    ipam = os.path.join(NETWORK_DIR, "allocations.json")
    if os.path.exists(ipam) and os.path.getsize(ipam) > 2:
        from . import network

        for key in network.stale_ids():
            vm = key.startswith(network.VM_PREFIX)
            if not (is_live(key[len(network.VM_PREFIX):], vm_root) if vm else is_live(key, root)):
                network.detach_by_id(key)
                cleaned.append(key)
    # A cgroup without a state directory is stale (state is created first, removed last).
    # Rootless runs have no cgroups, and must not touch root's.
    for container_id in cgroups.stale_ids() if os.geteuid() == 0 else ():
        if container_id not in cleaned and not os.path.isdir(os.path.join(root, container_id)):
            cgroups.remove(container_id)
            cleaned.append(container_id)
    return cleaned
