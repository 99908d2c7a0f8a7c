"""A detached container's log: docker's --log-opt, and reading the log back across rotations.

minirun-shim (csrc/shim.c) is the log's only writer, for a terminal and for plain
output alike: it writes ``<data dir>/log`` (state.data_dir, on disk) and, past
``max-size`` bytes, rotates it to ``log.1``, ``log.1`` to ``log.2`` ... keeping
``max-file`` files in all, as docker's json-file driver does. Docker's default is
unbounded; minirun's is max-size=10m, max-file=3, so a container's output costs
the host at most 30 MiB of disk. ``max-size=-1`` lifts the bound (docker's meaning).
"""

from __future__ import annotations

import os
import time

from .errors import SpecError

DEFAULT_MAX_SIZE = 10 << 20
DEFAULT_MAX_FILE = 3
MAX_FILES_LIMIT = 1000  # the shim refuses more: a mistyped count should not make a directory of a million files
LOG = "log"


def parse_log_opts(opts) -> tuple[int, int]:
    """``--log-opt KEY=VALUE`` items -> (max size in bytes, 0 for no bound; number of files)."""
    from .spec import parse_size

    max_size, max_file = DEFAULT_MAX_SIZE, DEFAULT_MAX_FILE
    for opt in opts:
        key, eq, value = opt.partition("=")
        if not eq:
            raise SpecError(f"invalid --log-opt {opt!r}: use KEY=VALUE (max-size=10m, max-file=3)")
        if key == "max-size":
            max_size = 0 if value.strip() == "-1" else parse_size(value, "--log-opt max-size")
        elif key == "max-file":
            try:
                max_file = int(value)
            except ValueError:
                max_file = 0
            if not 1 <= max_file <= MAX_FILES_LIMIT:
                raise SpecError(f"invalid --log-opt max-file={value!r}: a number of files, 1 to {MAX_FILES_LIMIT}")
        else:
            raise SpecError(f"unknown log opt {key!r}: minirun knows max-size and max-file")
    return max_size, max_file


def _name(index: int) -> str:
    return f"{LOG}.{index}" if index else LOG


def _open_all(directory: str) -> list:
    """The log's files, oldest first, opened together so that a rotation while we read
    moves names, not contents. A rotation between two opens is seen (an inode opened
    twice, or a name no longer naming what we opened) and the whole set is opened again."""
    for _ in range(10):
        files, inodes = [], []
        index = 0
        while True:
            try:
                f = open(os.path.join(directory, _name(index)), "rb")
            except FileNotFoundError:
                break
            files.append(f)
            inodes.append(os.fstat(f.fileno()).st_ino)
            index += 1
        if len(set(inodes)) == len(inodes) and all(
                _inode(os.path.join(directory, _name(i))) == ino for i, ino in enumerate(inodes)):
            return files[::-1]
        for f in files:
            f.close()
    return [open(os.path.join(directory, LOG), "rb")]


def _inode(path: str) -> int | None:
    try:
        return os.stat(path).st_ino
    except FileNotFoundError:
        return None


def _copy(f, out) -> int:
    total = 0
    while chunk := f.read(1 << 16):
        out.write(chunk)
        total += len(chunk)
    if total:
        out.flush()
    return total


def exists(directory: str) -> bool:
    return os.path.exists(os.path.join(directory, LOG))


def read(directory: str, out) -> None:
    """Everything the log holds, oldest rotation first."""
    files = _open_all(directory)
    try:
        for f in files:
            _copy(f, out)
    finally:
        for f in files:
            f.close()


def _next_newer(directory: str, inode: int):
    """The file written after the one whose inode is ``inode``, which a rotation renamed:
    the file one index below where it is now (the oldest kept, if it rotated out already)."""
    index = 1
    while True:
        found = _inode(os.path.join(directory, _name(index)))
        if found is None:
            break
        if found == inode:
            return open(os.path.join(directory, _name(index - 1)), "rb")
        index += 1
    return open(os.path.join(directory, _name(index - 1)), "rb")


def follow(directory: str, alive, out, poll_s: float = 0.1) -> None:
    """Copy the log to ``out`` and keep following it, across rotations, while ``alive()``."""
    files = _open_all(directory)
    while not files:  # a start in flight: the shim makes the log once COMMAND runs
        if not alive():
            return
        time.sleep(poll_s)
        files = _open_all(directory)
    for f in files[:-1]:
        _copy(f, out)
        f.close()
    current = files[-1]
    try:
        while True:
            if _copy(current, out):
                continue
            st = os.fstat(current.fileno())
            if st.st_size < current.tell():  # max-file=1: the shim emptied the file
                current.seek(0)
                continue
            ours = st.st_ino
            if _inode(os.path.join(directory, LOG)) not in (ours, None):  # rotated: ours is complete
                _copy(current, out)
                try:
                    newer = _next_newer(directory, ours)
                except FileNotFoundError:
                    continue
                current.close()
                current = newer
                continue
            if not alive():
                _copy(current, out)
                return
            time.sleep(poll_s)
    finally:
        current.close()
