"""Leaving a command-line process without the interpreter's teardown."""

from __future__ import annotations

import os
import sys


def exit_now(code: int) -> None:
    """Exit with ``code`` without the interpreter's teardown (~2.5 ms of freeing modules
    here), once what it would do matters to nobody: output flushed, no thread left, no
    atexit handler. Else (a library registered one, say) the usual sys.exit."""
    import atexit

    if not isinstance(code, int):  # as sys.exit: None is 0, anything else 1
        code = 0 if code is None else 1

    threading = sys.modules.get("threading")
    if getattr(atexit, "_ncallbacks", lambda: 1)() or (threading is not None and threading.active_count() > 1):
        sys.exit(code)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except Exception:  # noqa: BLE001 - a closed or broken stdout: let the usual exit report it
        sys.exit(code)
    os._exit(code)
