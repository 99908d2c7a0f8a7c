"""Where minirun-oci's messages go: stderr always, and the --log file as engines read it.

containerd passes ``--log FILE --log-format json`` and shows the last error's
``msg`` to its user; podman reads stderr. runc does both, and so do we. The
formats are the error contract's (minirun/errors.py): ``minirun-oci: ...`` and
``minirun-oci: warning: ...`` on stderr; in the file, JSON lines or logrus's text
format, ``time="..." level=error msg="..."``.
"""

from __future__ import annotations

import os
import sys
import time

from ..errors import error_line, warning_line

PROGRAM = "minirun-oci"

# logrus's TextFormatter leaves a value bare when it holds only these (needsQuoting)
_BARE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._/@^+")
_GO_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v",
               "\\": "\\\\", '"': '\\"'}

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
        line = f"time={text_value(_timestamp())} level={level} msg={text_value(msg)}"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            os.write(fd, (line + "\n").encode())
        finally:
            os.close(fd)
    except OSError:
        pass  # the message still reaches stderr


def go_quote(text: str) -> str:
    """Go's strconv.Quote, which logrus uses: a line reader never sees a raw quote or newline."""
    out = ['"']
    for c in text:
        code = ord(c)
        if c in _GO_ESCAPES:
            out.append(_GO_ESCAPES[c])
        elif 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8 (surrogateescape)
            out.append(f"\\x{code - 0xDC00:02x}")
        elif c.isprintable():
            out.append(c)
        elif code < 0x80:
            out.append(f"\\x{code:02x}")
        else:
            out.append(f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


def text_value(text: str) -> str:
    """A value in logrus's text format: bare when it can be, else quoted as Go quotes."""
    return text if all(c in _BARE for c in text) else go_quote(text)  # "" stays bare, as in logrus


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
