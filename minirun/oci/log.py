"""Where minirun-oci's messages go: stderr always, and the --log file as engines read it.

containerd passes ``--log FILE --log-format json`` and shows the last error's
``msg`` to its user; podman reads stderr. runc does both, and so do we. The
formats are the error contract's (minirun/errors.py): ``minirun-oci: ...`` and
``minirun-oci: warning: ...`` on stderr; in the file, JSON lines or logrus's text
format, ``time="..." level=error msg="..."``, written by the native minirun-oci's C
(csrc/ocilog.c) for both.
"""

from __future__ import annotations

import os
import sys

from ..errors import error_line, warning_line

PROGRAM = "minirun-oci"

_target = {"path": None, "json": False, "debug": False}


def configure(path: str | None, fmt: str, debug: bool) -> None:
    _target.update(path=path, json=fmt == "json", debug=debug)


def _write(level: str, msg: str) -> None:
    path = _target["path"]
    if not path:
        return
    from .. import ociverbs  # the native minirun-oci's writer (csrc/ocilog.c): one format

    line = ociverbs.log_line(level, msg, _target["json"])
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            os.write(fd, (line + "\n").encode(errors="surrogateescape"))
        finally:
            os.close(fd)
    except OSError:
        pass  # the message still reaches stderr


def text_value(text: str) -> str:
    """A value in logrus's text format: bare when it can be, else quoted as Go's strconv.Quote."""
    from .. import ociverbs

    return ociverbs.log_text_value(text)


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
    _say(error_line(msg, PROGRAM))


def warning(msg: str) -> None:
    _write("warning", msg)
    _say(warning_line(msg, PROGRAM))


def debug(msg: str) -> None:
    if _target["debug"]:
        _write("debug", msg)
        _say(error_line(f"debug: {msg}", PROGRAM))
