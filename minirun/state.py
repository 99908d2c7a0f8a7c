"""Per-container state under /run/minirun/<id>/, and the collection of stale state.

A container's directory holds a ``lock`` file that its minirun process keeps
flock()ed for as long as it lives. That lock is the liveness test: whatever has
a directory whose lock can be taken, or a cgroup without a locked directory,
was left by a minirun that died (e.g. SIGKILLed) and is removed by ``gc()``.

The directory is created under a temporary name, locked, then renamed into
place, so a concurrent gc never sees an unlocked directory of a live run, and
two runs can never claim the same name.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import time
from contextlib import contextmanager
from typing import Iterator

from .errors import SpecError

STATE_ROOT = "/run/minirun"
_NEW_PREFIX = ".new-"
_NEW_GRACE_S = 60  # a ".new-" dir younger than this may belong to a run being set up


def _try_lock(path: str) -> int | None:
    """Lock ``path`` if nobody holds it: the fd, or None when it is held (live)."""
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


@contextmanager
def claim(container_id: str, info: dict, root: str = STATE_ROOT) -> Iterator[str]:
    """Own /run/minirun/<id> for the duration of the block; refuse a name in use."""
    os.makedirs(root, mode=0o700, exist_ok=True)
    tmp = os.path.join(root, _NEW_PREFIX + os.urandom(6).hex())
    os.mkdir(tmp, 0o700)
    lock_fd = os.open(os.path.join(tmp, "lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    fcntl.flock(lock_fd, fcntl.LOCK_EX)
    with open(os.path.join(tmp, "state.json"), "w") as f:
        json.dump(dict(info, id=container_id, pid=os.getpid()), f)
    final = os.path.join(root, container_id)
    try:
        _rename_into_place(tmp, final, container_id, root)
    except BaseException:
        _remove_dir(tmp)
        os.close(lock_fd)
        raise
    try:
        yield final
    finally:
        _remove_dir(final)
        os.close(lock_fd)


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
        remove(container_id, root)  # left by a minirun that died: take the name back
    raise SpecError(f'container name "{container_id}" is already in use')


def _remove_dir(path: str) -> None:
    """Remove a state directory (shutil only when it holds directories: slow to import)."""
    try:
        names = os.listdir(path)
    except FileNotFoundError:
        return
    for name in names:
        entry = os.path.join(path, name)
        try:
            if os.path.isdir(entry) and not os.path.islink(entry):
                import shutil

                shutil.rmtree(entry, ignore_errors=True)
            else:
                os.unlink(entry)
        except FileNotFoundError:
            pass
    try:
        os.rmdir(path)
    except FileNotFoundError:
        pass


def remove(container_id: str, root: str = STATE_ROOT) -> None:
    from . import cgroups

    cgroups.remove(container_id)
    _remove_dir(os.path.join(root, container_id))


def gc(root: str = STATE_ROOT) -> list[str]:
    """Remove what dead minirun processes left behind; return the ids cleaned."""
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
                _remove_dir(path)
            continue
        if not is_live(name, root):
            remove(name, root)
            cleaned.append(name)
    # A cgroup without a live state directory (state is created first, removed last).
    for container_id in cgroups.stale_ids():
        if container_id not in cleaned and not is_live(container_id, root):
            cgroups.remove(container_id)
            cleaned.append(container_id)
    return cleaned
