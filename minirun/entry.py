"""The `minirun` executable: error handling, exit codes, and the fast `run` path.

Every failure ends as one line on stderr (``minirun: ...``) with docker's exit
codes: 125 minirun failed, 126 COMMAND cannot be executed, 127 COMMAND not found,
otherwise COMMAND's own status (128+N for signal N). ``--debug`` adds tracebacks.
The table of kinds, codes and message formats is errors.py's.

A plain `minirun run ...` is parsed without click (see runopts.py) and run by
runverb.py; everything else goes through the click CLI in cli.py.
"""

from __future__ import annotations

import sys

# The signal module wraps these in IntEnums: importing enum (with functools and
# collections) costs ~3.5 ms at every start here; _signal is the same functions.
import _signal as signal

from .errors import error_line, exit_code, message


class Terminated(BaseException):
    """SIGTERM/SIGHUP outside a container's run: unwind so cleanup code runs."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _raise_terminated(signum, _frame):
    raise Terminated(signum)


def guarded(action, debug: bool) -> int:
    """Run ``action()`` and turn every way it can end into an exit code."""
    # Until a container is running (it installs its own forwarding), a SIGTERM
    # unwinds through the cleanup code instead of killing us mid-setup.
    signal.signal(signal.SIGTERM, _raise_terminated)
    signal.signal(signal.SIGHUP, _raise_terminated)
    try:
        code = action()
    except Terminated as exc:
        code = 128 + exc.signum
    except (Exception, KeyboardInterrupt) as exc:  # every way to fail: one line, --debug for the traceback
        if not isinstance(exc, KeyboardInterrupt):
            _fail(exc, debug)
        code = exit_code(exc, "minirun")
    return code if isinstance(code, int) else 0


def _fail(exc: BaseException, debug: bool) -> None:
    if debug:
        import traceback

        traceback.print_exc()
    print(error_line(message(exc), "minirun"), file=sys.stderr)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in args
    if args[:1] == ["run"]:
        from .importcache import cached

        with cached("run", __name__):  # every module a plain run imports (~30), without the import system's ~2 ms
            from . import container, ociverbs, seccomp, syscalls  # noqa: F401 - imported where used, on the way
            from .quickexit import exit_now
            from .runopts import parse_fast
            from .runverb import execute_run

        values = parse_fast(args[1:])
        if values is not None:
            exit_now(guarded(lambda: execute_run(**values), debug))
    if args[:2] == ["vm", "run"]:  # QEMU starts only once the options are parsed: without click, ~20 ms sooner
        from .runopts import VM_RUN_OPTIONS, parse_fast

        values = parse_fast(args[2:], VM_RUN_OPTIONS)
        if values is not None:
            from .quickexit import exit_now
            from .vm.runverb import execute_vm_run

            exit_now(guarded(lambda: execute_vm_run(**values), debug))
    from .front import run_site

    run_site()  # under the native front (python -I -S, csrc/front.c) it has not run: click needs its sys.path
    from .cli import run_click

    code = guarded(lambda: run_click(args), debug)
    if args[:2] == ["vm", "run"]:  # asyncio and qemu.qmp are loaded: the teardown would take ~15 ms
        from .quickexit import exit_now

        exit_now(code)
    sys.exit(code)
