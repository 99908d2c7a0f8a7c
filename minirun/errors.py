"""The exceptions minirun raises, and the one error contract of its two front ends.

    MiniRunError                 minirun itself failed
     +-- SpecError               bad input: options, sizes, paths, names, a bundle's config.json
     |    +-- UsageError         a command line that does not parse
     |    +-- StoreError         minirun-oci: no such container, a bad id, an untrusted root
     +-- HostError               the host lacks something (root, a namespace, a cgroup controller)
     +-- SetupError              a step of the container setup failed (step, errno)
     +-- CgroupError             a cgroup file could not be written or read (path, value)
     +-- CommandError            COMMAND could not be started in the container
          +-- CommandNotFound
          +-- CommandNotExecutable

Error contract: what each front end does with each kind (``exit_code`` below is this table;
tests/unit/test_errors.py checks the two agree).

    kind                       raised as               minirun   minirun-oci
    -------------------------  ----------------------  --------  -----------
    usage                      UsageError              125       1
    bad input                  SpecError               125       1 (exec: 255)
    host lacks something       HostError               125       1 (exec: 255)
    setup step failed          SetupError              125       1 (exec: 255)
    cgroup file failed         CgroupError             125       1 (exec: 255)
    COMMAND not found          CommandNotFound         127       127
    COMMAND not executable     CommandNotExecutable    126       126
    other system call failed   OSError                 125       1 (exec: 255)
    a bug                      any other Exception     125       1 (exec: 255)
    interrupted                KeyboardInterrupt       130       130
    VM timed out               VMTimeout               124       -

``minirun`` has docker's codes (125 the runtime failed, 126/127 COMMAND could not be
run). ``minirun-oci`` has runc's: 1 for every error (main.go's fatal), 255 for an
``exec`` that failed after its arguments parsed (exec.go's fatalWithCode, so a caller
tells it from the process's own status). It keeps 127/126 for a COMMAND that cannot be
run, as it always did: engines go by runc's words for those (docker and podman map
"executable file not found" to 127), and a person running ``minirun-oci run`` by hand
sees the shell's codes. A foreground ``run`` or ``exec`` otherwise exits with COMMAND's
status, 128+N for signal N, in both (and so does ``minirun vm`` when a signal stops
it: VMInterrupted).

Messages, both front ends: one line on stderr, ``PROGRAM: message`` (``minirun: ...``,
``minirun-oci: ...``; ``error_line``), a warning ``PROGRAM: warning: message``
(``warning_line``; core code calls ``warn``), never a traceback unless ``--debug``.
minirun-oci also appends each to its ``--log`` file, as runc's logrus does: JSON lines
``{"level": ..., "msg": ..., "time": ...}`` or text ``time="..." level=error msg="..."``
with the value quoted and escaped as Go's strconv.Quote when it holds more than
``[A-Za-z0-9-._/@^+]`` (oci/log.py). The C helpers name themselves (``minirun-init: ``,
``minirun-shim: ``); csrc/command.c speaks for minirun-oci (``minirun-oci: ``).
"""

from __future__ import annotations

import sys

PROGRAMS = ("minirun", "minirun-oci")

# The program whose prefix and warning sink ``warn`` uses: minirun-oci's main sets its own.
_front_end = {"program": "minirun", "warn": None}


def set_front_end(program: str, warn=None) -> None:
    """Called once by an executable: its name for messages, and where warnings go (minirun-oci
    also writes them to its --log file)."""
    _front_end.update(program=program, warn=warn)


def exit_code(err: BaseException, program: str = "minirun", verb: str = "") -> int:
    """The exit status ``program`` ends with when ``verb`` raised ``err``: the table above."""
    if isinstance(err, KeyboardInterrupt):
        return 130
    if isinstance(err, (CommandNotFound, CommandNotExecutable)):
        return err.exit_code
    if program == "minirun":
        return err.exit_code if isinstance(err, MiniRunError) else 125
    if isinstance(err, UsageError):
        return 1
    return 255 if verb == "exec" else 1


def message(err: BaseException) -> str:
    """The one line that says what went wrong; a bug says so and where to look."""
    if isinstance(err, MiniRunError):
        text = str(err)
    elif isinstance(err, OSError) and err.strerror:
        text = f"{err.filename}: {err.strerror}" if err.filename else err.strerror
    else:
        text = f"internal error: {type(err).__name__}: {err} (--debug shows the traceback)"
    return " ".join(text.splitlines())


def error_line(text: str, program: str | None = None) -> str:
    return f"{program or _front_end['program']}: {text}"


def warning_line(text: str, program: str | None = None) -> str:
    return f"{program or _front_end['program']}: warning: {text}"


def warn(text: str) -> None:
    """A warning from code both front ends run: to the front end's sink, else to stderr."""
    sink = _front_end["warn"]
    if sink is not None:
        sink(text)
    else:
        sys.stderr.write(warning_line(text) + "\n")


class MiniRunError(Exception):
    exit_code = 125


class SpecError(MiniRunError):
    """The user asked for something that cannot be: reported before anything is created."""


class UsageError(SpecError):
    """A command line that does not parse (click's errors, minirun-oci's own parser)."""


class StoreError(SpecError):
    """A minirun-oci state directory problem (no such container, a bad id, damaged state,
    an untrusted root); the message is for the user."""


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
