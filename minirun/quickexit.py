"""Leaving a command-line process without the interpreter's teardown."""

from __future__ import annotations

import os
import sys


def exit_now(code: int) -> None:
    """Exit with ``code`` without the interpreter's teardown (~2.5 ms of freeing modules
    here for a run, ~15 ms once a VM run has loaded asyncio and qemu.qmp), once what it
    would do matters to nobody: output flushed, no thread left. The atexit handlers run
    (logging registers one as soon as it is imported). With a thread left, the usual
    sys.exit, which waits for it."""
    import atexit

    if not isinstance(code, int):  # as sys.exit: None is 0, anything else 1
        code = 0 if code is None else 1

    threading = sys.modules.get("threading")
    if threading is not None and threading.active_count() > 1:
        sys.exit(code)
    atexit._run_exitfuncs()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except Exception:  # noqa: BLE001 - a closed or broken stdout: let the usual exit report it
        sys.exit(code)
    os._exit(code)
