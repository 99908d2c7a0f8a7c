"""The exceptions minirun raises, and the exit codes they map to.

    MiniRunError                 exit 125: minirun itself failed
     +-- SpecError               bad input: options, sizes, paths, names
     +-- HostError               the host lacks something (root, a namespace, a cgroup controller)
     +-- SetupError              a step of the container setup failed (step, errno)
     +-- CgroupError             a cgroup file could not be written or read (path, value)
     +-- CommandError            COMMAND could not be started in the container
          +-- CommandNotFound    exit 127
          +-- CommandNotExecutable  exit 126

The CLI prints ``minirun: <message>`` on one line and exits with ``exit_code``;
``--debug`` adds the traceback.
"""

from __future__ import annotations


class MiniRunError(Exception):
    exit_code = 125


class SpecError(MiniRunError):
    """The user asked for something that cannot be: reported before anything is created."""


class HostError(MiniRunError):
    """This host cannot do what was asked (not root, a missing namespace or controller)."""


class SetupError(MiniRunError):
    """A setup step failed; carries the step text and errno from the native layer."""

    def __init__(self, step: str, errno: int, message: str | None = None):
        import os

        self.step = step
        self.errno = errno
        super().__init__(message or f"{step}: {os.strerror(errno)}")


class CgroupError(MiniRunError):
    """A cgroup file operation failed; the message names the path (and value written)."""


class CommandError(MiniRunError):
    pass


class CommandNotFound(CommandError):
    exit_code = 127


class CommandNotExecutable(CommandError):
    exit_code = 126
