"""A container's state directory, <root>/<id>, and its status as runc reports it.

    state.json   the OCI state plus what later verbs need (pid start time, cgroup
                 paths, hooks, the security record exec applies), written by rename
    exec.fifo    exists from `create` until `start` has released the process

Status: ``stopped`` once the pid is gone, a zombie, or another process reusing the
number (its start time differs); else ``created`` while the fifo exists, ``paused``
while the cgroup is frozen, ``running`` otherwise. Only os and jsonlite here: `state`
and `start` run this module and nothing heavy.
"""

from __future__ import annotations

import os

from .. import jsonlite as json  # not the json package (re, enum: ~7 ms a start; see jsonlite.py)

DEFAULT_ROOT = "/run/minirun-oci"
FIFO = "exec.fifo"
OCI_VERSION = "1.0.2"

CREATED, RUNNING, STOPPED, PAUSED = "created", "running", "stopped", "paused"


class StoreError(Exception):
    """A state directory problem; the message is for the user."""


def check_id(container_id: str) -> str:
    """runc's rule: letters, digits and ``_ + - .``, and neither ``.`` nor ``..``."""
    ok = container_id and container_id not in (".", "..") and len(container_id) <= 1024
    if not ok or any(not (c.isascii() and (c.isalnum() or c in "_+-.")) for c in container_id):
        raise StoreError(f"invalid container id {container_id!r}: use letters, digits, '_', '+', '-', '.' "
                         "(no '/', not '.' or '..')")
    return container_id


def path(root: str, container_id: str) -> str:
    return os.path.join(root, check_id(container_id))


def read(root: str, container_id: str) -> dict:
    try:
        with open(os.path.join(path(root, container_id), "state.json")) as f:
            return json.load(f)
    except FileNotFoundError:
        raise StoreError(f"container {container_id!r} does not exist") from None
    except ValueError:
        raise StoreError(f"container {container_id!r}: state.json is damaged") from None


def write(state_dir: str, st: dict) -> None:
    tmp = os.path.join(state_dir, "state.json.tmp")
    with open(tmp, "w") as f:
        json.dump(st, f)
    os.rename(tmp, os.path.join(state_dir, "state.json"))


def start_time(pid: int) -> tuple[int | None, str]:
    """(start time in clock ticks, process state letter); (None, "") once the pid is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[19]), fields[0]
    except (OSError, IndexError, ValueError):
        return None, ""


def alive(st: dict) -> bool:
    pid = st.get("pid") or 0
    if pid <= 0:
        return False
    started, letter = start_time(pid)
    return started is not None and started == st.get("pid_start") and letter not in ("Z", "X")


def status(root: str, st: dict) -> str:
    if not alive(st):
        return STOPPED
    if os.path.exists(os.path.join(root, st["id"], FIFO)):
        return CREATED
    freeze = st.get("freeze_file")
    if freeze:
        try:
            with open(freeze) as f:
                if f.read().strip() in ("1", "FROZEN", "FREEZING"):
                    return PAUSED
        except OSError:
            pass
    return RUNNING


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
