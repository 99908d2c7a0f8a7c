"""What a finished container (or VM) reports back to its caller."""

from __future__ import annotations

import os

from .record import Factory, Record


def exit_code(status: int) -> int:
    """A wait status as a shell reports it: the exit code, or 128+N after signal N.
    The one decoder of every front end's exit (run, exec, minirun-oci run and exec)."""
    return os.WEXITSTATUS(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)


class Result(Record):
    """The outcome of one run.

    ``exit_code`` follows docker's convention: COMMAND's own code, 128+N when it died
    by signal N, 137 for an OOM kill.  ``timings`` are wall-clock seconds measured by
    the host: ``setup`` (cgroups and clone until the child is ready), ``start``
    (launch to COMMAND exec'd), ``total`` (launch to exit reaped and cleaned up).
    """

    id: str
    exit_code: int
    signal: int | None = None
    oom_killed: bool = False
    timings: dict[str, float] = Factory(dict)
    stats: dict[str, int] = Factory(dict)
    leftovers: list[str] = Factory(list)  # what cleanup could not remove (left to `minirun gc`)
