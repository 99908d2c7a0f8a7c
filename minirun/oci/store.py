"""minirun-oci's view of the state store (minirun/state.py): its layout, and the
status of a container as runc reports it.

    <root>/<id>/state.json   the OCI state plus what later verbs need (pid start time, cgroup
                             paths, hooks, the security record exec applies)
    <root>/<id>/exec.fifo    exists from `create` until `start` has released the process

The storing, the lock and the liveness rule are the store's, the same as `minirun run`'s:
unique temp names and rename, a flock on the directory held by each verb for its
change (engines run verbs of one container concurrently), the recorded init with
its start time. The layout differs in the root, runc's ids and modes (root 0700, a
container's directory 0711, files 0600: the state holds the process's environment).

Status: ``stopped`` once the init is not alive (state.alive); else ``created`` while
the fifo exists, ``paused`` while the cgroup is frozen, ``running`` otherwise.
Nothing heavy here: `state` and `start` run this module.
"""

from __future__ import annotations

from .. import jsonlite as json  # not the json package (re, enum: ~7 ms a start; see jsonlite.py)
from .. import state
from ..core import EXEC_FIFO as FIFO
from ..errors import SpecError, StoreError  # StoreError: what the C's errors raise too (minirun/ociverbs.py)
from ..settings import OCI_ROOT as DEFAULT_ROOT  # MINIRUN_OCI_ROOT, else /run/minirun-oci
OCI_VERSION = "1.0.2"

CREATED, RUNNING, STOPPED, PAUSED = "created", "running", "stopped", "paused"


def store(root: str) -> state.Store:
    return state.Store(root, oci=True)


def checked_root(root: str) -> str:
    """The state root as every verb uses it: resolved once, and refused (StoreError) unless
    only we can write it and the directories above it (state.check_trusted_dir): its
    state.json names the pids signalled and the poststop hooks `delete` runs."""
    from ..errors import HostError

    try:
        return state.check_trusted_dir(root)
    except HostError as err:
        raise StoreError(str(err)) from None


def path(root: str, container_id: str) -> str:
    try:
        return store(root).path(container_id)
    except SpecError as err:
        raise StoreError(str(err)) from None


def read(root: str, container_id: str) -> dict:
    path(root, container_id)
    try:
        return store(root).read(container_id)
    except FileNotFoundError:
        raise StoreError(f"container {container_id!r} does not exist") from None
    except ValueError:
        raise StoreError(f"container {container_id!r}: state.json is damaged") from None


write = state.write  # unique temp name, 0600, swapped in


class locked(state.DirLock):
    """Hold the container's directory lock for one change: StoreError if it does not exist."""

    def __init__(self, root: str, container_id: str):
        super().__init__(path(root, container_id))
        self.id = container_id

    def __enter__(self) -> locked:
        try:
            return super().__enter__()
        except (FileNotFoundError, NotADirectoryError):
            raise StoreError(f"container {self.id!r} does not exist") from None


alive = state.alive  # the one liveness rule: the recorded init, by pid and start time


def status(root: str, st: dict) -> str:
    from .. import ociverbs  # csrc/ocistore.c: the rules the native minirun-oci applies

    return ociverbs.status(root, st)


def oci_state(root: str, st: dict) -> dict:
    """What `state` prints: the runtime-spec's state plus runc's rootfs, created and owner,
    as the container's state.json says it (csrc/ocistore.c writes it)."""
    from .. import ociverbs

    return json.loads(ociverbs.state_json(root, st["id"]))


def list_ids(root: str) -> list[str]:
    """The containers in ``root``; not a create's directory before its rename (.new-*)."""
    from .. import ociverbs

    return ociverbs.list_ids(root)
