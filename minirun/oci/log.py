"""Where minirun-oci's messages go: stderr always, and the --log file as engines read it.

containerd passes ``--log FILE --log-format json`` and shows the last error's
``msg`` to its user; podman reads stderr. runc does both, and so do we.
"""

from __future__ import annotations

import os
import sys
import time

_target = {"path": None, "json": False, "debug": False}


def configure(path: str | None, fmt: str, debug: bool) -> None:
    _target.update(path=path, json=fmt == "json", debug=debug)


def _timestamp() -> str:
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1e9):09d}Z"


def _write(level: str, msg: str) -> None:
    path = _target["path"]
    if not path:
        return
    if _target["json"]:
        from ..jsonlite import dumps

        line = dumps({"level": level, "msg": msg, "time": _timestamp()})
    else:
        line = f'time="{_timestamp()}" level={level} msg="{msg}"'
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            os.write(fd, (line + "\n").encode())
        finally:
            os.close(fd)
    except OSError:
        pass  # the message still reaches stderr


def _say(text: str) -> None:
    """One line to stderr, or nowhere: containerd's shim may give us a read-only
    /dev/null as fd 2, and a message we cannot show must not fail the verb (EBADF)."""
    try:
        sys.stderr.flush()
        os.write(2, f"{text}\n".encode(errors="replace"))
    except (OSError, ValueError):
        pass


def error(msg: str) -> None:
    _write("error", msg)
    _say(f"minirun: {msg}")


def warning(msg: str) -> None:
    _write("warning", msg)
    _say(f"minirun: WARNING: {msg}")


def debug(msg: str) -> None:
    if _target["debug"]:
        _write("debug", msg)
        _say(f"minirun: debug: {msg}")
