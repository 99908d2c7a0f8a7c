"""What compiling a seccomp profile gives (SeccompFilter) or raises (ProfileError), and the
kernel version a profile's minKernel is read against.

Shared by the compiler (seccomp_build.py) and the cached entry point the run path
imports (seccomp.py, which re-exports these names): kept apart so neither imports the other
back.
"""

from __future__ import annotations

import os

from .errors import SpecError


class ProfileError(SpecError):
    """A seccomp profile minirun cannot load; the message says which part and why."""


class SeccompFilter(tuple):
    """What the child loads: a struct sock_filter[] as bytes, and seccomp(2)'s flags.

    A plain tuple (program, flags): typing.NamedTuple would cost the run path ~2 ms of imports.
    """
    __slots__ = ()

    def __new__(cls, program: bytes, flags: int = 0):
        return tuple.__new__(cls, (program, flags))

    program = property(lambda self: self[0])
    flags = property(lambda self: self[1])


def kernel_version(release: str | None = None) -> tuple[int, int]:
    parts = (release or os.uname().release).split("-")[0].split(".")
    try:
        return int(parts[0]), int(parts[1]) if len(parts) > 1 else 0
    except ValueError:
        return (0, 0)
