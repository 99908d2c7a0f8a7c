"""Errors of the VM companion, grafted onto minirun's tree (``minirun.errors``).

    MiniRunError                     exit 125
     +-- SpecError
     |    +-- KernelNotFound         --kernel PATH does not exist / no default kernel
     |    +-- MemoryTooSmall         --memory below what the guest kernel needs
     +-- HostError
     |    +-- QemuNotFound           qemu-system-x86_64 missing or not runnable
     |    +-- AccelUnavailable       --accel kvm but /dev/kvm is unusable
     |    +-- KernelFetchError       apt-get download / dpkg -x failed
     +-- VMError                     the VM itself failed
          +-- VMLaunchFailure        QEMU exited before the guest ran (carries argv + QEMU's output)
          +-- VMBootError            the guest died before COMMAND ran (kernel panic, init error)
          +-- VMTimeout              exit 124: boot or run timeout; QEMU was killed
          +-- VMInterrupted          exit 128+N: minirun got signal N (Ctrl-C, SIGTERM); the VM was stopped

Every class keeps the message on one line, so the CLI can print ``minirun: <message>``.
"""

from __future__ import annotations

from ..errors import HostError, MiniRunError, SpecError


class KernelNotFound(SpecError):
    pass


class MemoryTooSmall(SpecError):
    pass


class QemuNotFound(HostError):
    pass


class AccelUnavailable(HostError):
    pass


class KernelFetchError(HostError):
    pass


class VMError(MiniRunError):
    pass


class VMLaunchFailure(VMError):
    """QEMU did not get the guest going: ``command`` and QEMU's ``output`` explain why."""

    def __init__(self, message: str, command: list[str] | None = None, output: str = ""):
        self.command = command or []
        self.output = output
        last = output.strip().splitlines()[-1] if output.strip() else ""
        super().__init__(f"{message}: {last}" if last else message)


class VMBootError(VMError):
    """The guest never ran COMMAND; ``console`` holds the tail of its console output."""

    def __init__(self, message: str, console: str = ""):
        self.console = console
        super().__init__(message)


class VMTimeout(VMError):
    exit_code = 124


class VMInterrupted(VMError):
    """minirun got SIGINT/SIGTERM/SIGHUP; QEMU was stopped and cleaned up.  Exit 128+N like a shell."""

    def __init__(self, signum: int):
        import signal

        self.signum = signum
        self.exit_code = 128 + signum
        super().__init__(f"interrupted by {signal.Signals(signum).name}; the VM was stopped")
