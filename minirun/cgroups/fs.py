"""The only code that touches cgroupfs: every failure names the path (and the value written).

Files are opened without O_CREAT or O_TRUNC. cgroupfs makes its own files; a missing
one means a missing controller or kernel feature, and creating a regular file in its
place (possible in a test tree) would hide that.
"""

from __future__ import annotations

import errno
import os

from ..errors import CgroupError


def write(path: str, value: str | int, *, missing_ok: bool = False) -> bool:
    """Write ``value`` in one write(2); False if the file is absent and ``missing_ok``."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, str(value).encode())
        finally:
            os.close(fd)
    except OSError as err:
        if missing_ok and err.errno == errno.ENOENT:
            return False
        raise CgroupError(f"write {value} to {path}: {err.strerror}") from err
    return True


def write_each(path: str, values) -> None:
    """Write each of ``values`` in a write(2) of its own, through one open: for a file that
    takes one entry per write (devices.allow), without an open and close per entry."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    except OSError as err:
        raise CgroupError(f"write {values[0]} to {path}: {err.strerror}") from err
    try:
        for value in values:
            try:
                os.write(fd, str(value).encode())
            except OSError as err:
                raise CgroupError(f"write {value} to {path}: {err.strerror}") from err
    finally:
        os.close(fd)


def read(path: str) -> str:
    text = read_if_exists(path)
    if text is None:
        raise CgroupError(f"read {path}: {os.strerror(errno.ENOENT)}")
    return text


def read_if_exists(path: str) -> str | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as err:
        raise CgroupError(f"read {path}: {err.strerror}") from err
    try:
        chunks = []
        while True:  # cgroup.procs can be longer than one page
            chunk = os.read(fd, 65536)
            if not chunk:
                return b"".join(chunks).decode()
            chunks.append(chunk)
    except OSError as err:
        raise CgroupError(f"read {path}: {err.strerror}") from err
    finally:
        os.close(fd)


def read_key(path: str, key: str) -> int | None:
    """One field of a flat-keyed file (``memory.events``, ``cpu.stat``, ``memory.oom_control``)."""
    return parse_key(read_if_exists(path) or "", key)


def parse_key(text: str, key: str) -> int | None:
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name == key:
            return int(value)
    return None


def mkdir(path: str, *, exist_ok: bool = False) -> bool:
    """True if created, False if it existed and ``exist_ok``."""
    try:
        os.mkdir(path, 0o755)
    except OSError as err:
        if exist_ok and err.errno == errno.EEXIST:
            return False
        raise CgroupError(f"mkdir {path}: {err.strerror}") from err
    return True


def rmdir(path: str) -> bool:
    """True once the directory is gone (already gone counts)."""
    try:
        os.rmdir(path)
    except OSError as err:
        if err.errno == errno.ENOENT:
            return True
        raise CgroupError(f"rmdir {path}: {err.strerror}") from err
    return True


def open_write(path: str) -> int:
    """A write-only fd of a cgroup file, for a child to write to after clone."""
    try:
        return os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    except OSError as err:
        raise CgroupError(f"open {path}: {err.strerror}") from err


def open_dir(path: str) -> int:
    """An O_PATH directory fd: enough for clone3(CLONE_INTO_CGROUP), grants no I/O."""
    try:
        return os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as err:
        raise CgroupError(f"open {path}: {err.strerror}") from err


def open_read_dir(path: str) -> int:
    """An O_RDONLY directory fd: what bpf(BPF_PROG_ATTACH) takes (it refuses O_PATH fds)."""
    try:
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as err:
        raise CgroupError(f"open {path}: {err.strerror}") from err


def listdirs(path: str) -> list[str]:
    """Names of the child cgroups of ``path`` ([] if it does not exist)."""
    try:
        with os.scandir(path) as entries:
            return [e.name for e in entries if e.is_dir(follow_symlinks=False)]
    except FileNotFoundError:
        return []
    except OSError as err:
        raise CgroupError(f"list {path}: {err.strerror}") from err
