"""A container's state directory, <root>/<id>, and its status as runc reports it.

    state.json   the OCI state plus what later verbs need (pid start time, cgroup
                 paths, hooks, the security record exec applies), written by rename
    exec.fifo    exists from `create` until `start` has released the process

minirun's own store (minirun/state.py) does the storing: the same unique temp names
and rename, the same start-time check before a signal (a pidfd), the same private
modes as runc (root 0700, files 0600: the state holds the process's environment).
Engines run verbs of one container concurrently, so each verb that changes it holds
``locked()``, a flock on the directory, for the whole change.

Status: ``stopped`` once the pid is gone, a zombie, or another process reusing the
number (its start time differs); else ``created`` while the fifo exists, ``paused``
while the cgroup is frozen, ``running`` otherwise. Nothing heavy here: `state` and
`start` run this module.
"""

from __future__ import annotations

import os

from .. import jsonlite as json  # not the json package (re, enum: ~7 ms a start; see jsonlite.py)
from .. import state as core
from ..errors import SpecError
from ..settings import OCI_ROOT as DEFAULT_ROOT  # MINIRUN_OCI_ROOT, else /run/minirun-oci
FIFO = "exec.fifo"
OCI_VERSION = "1.0.2"

CREATED, RUNNING, STOPPED, PAUSED = "created", "running", "stopped", "paused"


class StoreError(SpecError):
    """A state directory problem (no such container, a bad id); the message is for the user."""


def check_id(container_id: str) -> str:
    """runc's rule: letters, digits and ``_ + - .``, and neither ``.`` nor ``..``."""
    ok = container_id and container_id not in (".", "..") and len(container_id) <= 1024
    if not ok or any(not (c.isascii() and (c.isalnum() or c in "_+-.")) for c in container_id):
        raise StoreError(f"invalid container id {container_id!r}: use letters, digits, '_', '+', '-', '.' "
                         "(no '/', not '.' or '..')")
    return container_id


def checked_root(root: str) -> str:
    """The state root as every verb uses it: resolved once, and refused (StoreError) unless
    only we can write it and the directories above it (state.check_trusted_dir): its
    state.json names the pids signalled and the poststop hooks `delete` runs."""
    from ..errors import HostError

    try:
        return core.check_trusted_dir(root)
    except HostError as err:
        raise StoreError(str(err)) from None


def path(root: str, container_id: str) -> str:
    return os.path.join(root, check_id(container_id))


def read(root: str, container_id: str) -> dict:
    try:
        fd = os.open(os.path.join(path(root, container_id), "state.json"), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        with open(fd) as f:
            return json.load(f)
    except FileNotFoundError:
        raise StoreError(f"container {container_id!r} does not exist") from None
    except ValueError:
        raise StoreError(f"container {container_id!r}: state.json is damaged") from None


write = core.write  # unique temp name, 0600, rename


class locked(core.DirLock):
    """Hold the container's directory lock for one change: StoreError if it does not exist."""

    def __init__(self, root: str, container_id: str):
        super().__init__(path(root, container_id))
        self.id = container_id

    def __enter__(self) -> locked:
        try:
            return super().__enter__()
        except (FileNotFoundError, NotADirectoryError):
            raise StoreError(f"container {self.id!r} does not exist") from None


alive = core.alive  # the one liveness rule: the recorded init, by pid and start time


def status(root: str, st: dict) -> str:
    if not alive(st):
        return STOPPED
    if os.path.exists(os.path.join(root, st["id"], FIFO)):
        return CREATED
    if st.get("freeze_file") and _frozen(st):  # "freeze_file": what the C reader of state.json uses
        return PAUSED
    return RUNNING


def _frozen(st: dict) -> bool:
    from .. import cgroups
    from ..errors import MiniRunError

    try:
        return cgroups.existing(st["id"], relpath=st.get("cgroup"), paths=st.get("cgroups")).frozen()
    except (MiniRunError, OSError):  # its cgroup gone or unreadable: not paused
        return False


def oci_state(root: str, st: dict) -> dict:
    """What `state` prints: the runtime-spec's state plus runc's rootfs, created and owner."""
    current = status(root, st)
    return {"ociVersion": OCI_VERSION, "id": st["id"], "pid": st["pid"] if current != STOPPED else 0,
            "status": current, "bundle": st["bundle"], "rootfs": st["rootfs"], "created": st["created"],
            "owner": st.get("owner", ""), "annotations": st.get("annotations") or {}}


def list_ids(root: str) -> list[str]:
    try:
        return sorted(n for n in os.listdir(root) if os.path.isfile(os.path.join(root, n, "state.json")))
    except FileNotFoundError:
        return []
