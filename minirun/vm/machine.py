"""One QEMU process and everything it owns, modeled on QEMU's ``QEMUMachine``.

Lifecycle (``Machine.state``):

    CONFIGURED --launch()--> RUNNING --shutdown()--> STOPPED
         \\--launch() fails (VMLaunchFailure; cleanup already done)--> STOPPED

* ``__init__`` only stores configuration; nothing exists until ``launch()``.
* ``_pre_launch``: a private temp dir (``minirun-vm-*``, holds QEMU's log and the
  per-run initrd), and three socketpairs whose QEMU ends are inherited as fds:
  QMP, console (ttyS0), control (ttyS1).  No socket ever has a path, so none can
  be left behind.
* ``_launch``: QEMU runs in its own session (the terminal's Ctrl-C reaches minirun,
  which then shuts QEMU down) with PR_SET_PDEATHSIG=SIGKILL (if minirun itself is
  SIGKILLed, the kernel kills QEMU).
* ``_post_launch``: close QEMU's ends, QMP handshake, start the readers.
* ``shutdown()``: soft (QMP ``quit``, wait) then hard (SIGKILL, wait); then
  ``_post_shutdown`` in ``finally``: close QMP and sockets, remove the temp dir.

The control channel carries ``minirun:<word> [arg]`` lines from the guest init
(see csrc/guest_init.c); each is time-stamped on arrival with the host clock.
"""

from __future__ import annotations

import contextlib
import enum
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable

from . import qemu_args
from .errors import VMError, VMLaunchFailure

CONSOLE_TAIL = 8192

# asyncio and qemu.qmp (~25 ms of imports) are imported inside the async methods, not here: the runner
# starts QEMU with spawn() first and pays for them while the guest kernel boots.


class State(enum.Enum):
    CONFIGURED = "configured"
    RUNNING = "running"
    STOPPED = "stopped"


def _pdeathsig() -> None:
    """In the child before exec: die with minirun (Linux prctl PR_SET_PDEATHSIG = 1)."""
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)


class Machine:
    """Configuration only; call :meth:`launch` (or use ``async with``) to start QEMU.

    :param binary: the QEMU binary.
    :param args: machine arguments (from :mod:`qemu_args`), without the chardevs, which Machine adds.
    :param console: called with every chunk of console bytes as it arrives (the user's stdout).
    """

    def __init__(self, binary: str, args: list[str], *, name: str = "minirun-vm",
                 console: Callable[[bytes], None] | None = None, qmp_timeout: float = 15.0,
                 pass_fds: list[int] = (), temp_parent: str | None = None):
        self.binary = binary
        self.args = list(args)
        self.name = name
        self.console_sink = console
        self.qmp_timeout = qmp_timeout
        self.pass_fds = list(pass_fds)  # extra fds QEMU inherits under the same numbers (a tap)
        self.temp_parent = temp_parent  # where the temp dir goes (default: $TMPDIR)
        self.state = State.CONFIGURED
        self.temp_dir: str | None = None
        self.proc: subprocess.Popen | None = None
        self.monitor = None  # qmp.Monitor once attached
        self.argv: list[str] = []
        self.launched_at = 0.0
        self.exited_at = 0.0
        self.events: dict[str, tuple[float, str]] = {}  # control word -> (host monotonic time, argument)
        self.event_arrived = None  # asyncio.Event, made in attach() inside the running loop
        self.console_tail = bytearray()
        self.peak_rss = 0
        self.guest_shutdown: dict | None = None  # data of QMP's SHUTDOWN event, once it came
        self._socks: list[socket.socket] = []
        self._qemu_ends: list[socket.socket] = []
        self._tasks: list[asyncio.Task] = []
        self._log = None

    def __repr__(self) -> str:
        return f"<Machine {self.name} {self.state.value} pid={self.proc.pid if self.proc else None}>"

    # -- launch ---------------------------------------------------------------------------------

    def make_temp_dir(self) -> str:
        """Created on demand (the caller puts the initrd here before launch); removed by shutdown()."""
        if self.temp_dir is None:
            self.temp_dir = tempfile.mkdtemp(prefix="minirun-vm-", dir=self.temp_parent)
        return self.temp_dir

    def _pre_launch(self) -> None:
        self.make_temp_dir()
        self._log = open(os.path.join(self.temp_dir, "qemu.log"), "w+b")
        argv = [self.binary, "-name", qemu_args.quote_optarg(self.name), *self.args]
        ends = {}
        for ident in ("mon", "con", "ctl"):
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            theirs.set_inheritable(True)
            self._socks.append(ours)
            self._qemu_ends.append(theirs)
            ends[ident] = (ours, theirs)
            qemu_args.chardev_fd(argv, ident, theirs.fileno())
        qemu_args.serial(argv, "con", 0)  # ttyS0
        qemu_args.serial(argv, "ctl", 1)  # ttyS1
        qemu_args.qmp(argv, "mon")
        self._mon_sock, self._con_sock, self._ctl_sock = (ends[i][0] for i in ("mon", "con", "ctl"))
        self.argv = argv

    def spawn(self) -> None:
        """Start QEMU (synchronous, no event loop needed); :meth:`attach` then connects QMP and the readers."""
        if self.state is not State.CONFIGURED:
            raise VMError(f"cannot launch {self.name}: it is {self.state.value}")
        try:
            self._pre_launch()
            self.launched_at = time.monotonic()
            self.proc = subprocess.Popen(
                self.argv, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
                pass_fds=[s.fileno() for s in self._qemu_ends] + self.pass_fds, start_new_session=True, preexec_fn=_pdeathsig,
            )
            self.state = State.RUNNING
        except BaseException as err:
            output = self.qemu_output()
            self.kill_and_clean()
            if isinstance(err, OSError):
                raise VMLaunchFailure(f"QEMU failed to start ({err})", self.argv, output) from err
            raise
        finally:
            for s in self._qemu_ends:  # QEMU has its copies now
                s.close()
            self._qemu_ends = []

    async def launch(self) -> None:
        """spawn() + attach(), for callers that have nothing to do in between."""
        self.spawn()
        await self.attach()

    async def attach(self) -> None:
        import asyncio

        try:
            await self._post_launch()
        except BaseException as err:
            output = self.qemu_output()
            await self.shutdown(hard=True)
            if isinstance(err, (OSError, VMError)) and not isinstance(err, VMLaunchFailure):
                raise VMLaunchFailure(f"QEMU failed to start ({err})", self.argv, output) from err
            if isinstance(err, asyncio.TimeoutError):
                raise VMLaunchFailure("QEMU did not answer on QMP", self.argv, output) from err
            raise

    async def _post_launch(self) -> None:
        import asyncio

        from .qmp import Monitor

        self.event_arrived = asyncio.Event()
        self._exit_task = asyncio.create_task(self._wait_exit(), name="qemu-exit")
        self._tasks.append(self._exit_task)
        self._tasks.append(asyncio.create_task(self._read_console(), name="console"))
        self._tasks.append(asyncio.create_task(self._read_control(), name="control"))
        self.monitor = Monitor(self.name)
        connect = asyncio.create_task(self.monitor.connect(self._mon_sock, self.qmp_timeout))
        # If QEMU dies during the handshake (bad argument, missing file), report its own words.
        done, _ = await asyncio.wait({connect, self._exit_task}, return_when=asyncio.FIRST_COMPLETED)
        if connect not in done:
            connect.cancel()
            with contextlib.suppress(BaseException):
                await connect
            raise VMLaunchFailure(f"QEMU exited with status {self.proc.returncode} at launch", self.argv,
                                  self.qemu_output())
        connect.result()
        self._tasks.append(asyncio.create_task(self._watch_shutdown(), name="shutdown-event"))

    async def _watch_shutdown(self) -> None:
        self.guest_shutdown = await self.monitor.wait_shutdown()
        self.sample_rss()  # QEMU is paused (-no-shutdown): its peak RSS is final
        self.event_arrived.set()

    # -- readers --------------------------------------------------------------------------------

    async def _wait_exit(self) -> None:
        """Wake when QEMU exits: a pidfd becomes readable (Linux 5.3+); polling otherwise."""
        import asyncio

        loop = asyncio.get_running_loop()
        try:
            pidfd = os.pidfd_open(self.proc.pid)
        except (AttributeError, OSError):
            pidfd = None
        try:
            if pidfd is not None:
                done = loop.create_future()
                loop.add_reader(pidfd, lambda: done.done() or done.set_result(None))
                try:
                    await done
                finally:
                    loop.remove_reader(pidfd)
            else:
                while self.proc.poll() is None:
                    await asyncio.sleep(0.02)
        finally:
            if pidfd is not None:
                os.close(pidfd)
        self.proc.wait()
        self.exited_at = time.monotonic()
        self.event_arrived.set()

    async def _read_console(self) -> None:
        import asyncio

        reader, _writer = await asyncio.open_unix_connection(sock=self._con_sock)
        while chunk := await reader.read(65536):
            if self.console_sink:
                self.console_sink(chunk)
            self.console_tail += chunk
            del self.console_tail[:-CONSOLE_TAIL]

    async def _read_control(self) -> None:
        import asyncio

        reader, _writer = await asyncio.open_unix_connection(sock=self._ctl_sock)
        while line := await reader.readline():
            now = time.monotonic()
            text = line.decode(errors="replace").strip()
            if not text.startswith("minirun:"):
                continue
            word, _, arg = text[len("minirun:"):].partition(" ")
            self.events.setdefault(word, (now, arg))
            self.sample_rss()
            self.event_arrived.set()

    def sample_rss(self) -> int:
        """QEMU's peak resident set so far (VmHWM), in bytes; kept as the max of every sample."""
        if self.proc and self.proc.returncode is None:
            try:
                with open(f"/proc/{self.proc.pid}/status") as f:
                    for line in f:
                        if line.startswith("VmHWM:"):
                            self.peak_rss = max(self.peak_rss, int(line.split()[1]) * 1024)
            except (OSError, ValueError):
                pass
        return self.peak_rss

    async def wait_for(self, predicate: Callable[[], bool], timeout: float | None) -> bool:
        """Wait until ``predicate()`` holds, the guest shut down or QEMU exited; False on timeout."""
        import asyncio

        deadline = None if timeout is None else time.monotonic() + timeout
        while not predicate() and not self.exited and self.guest_shutdown is None:
            self.event_arrived.clear()
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return False
            try:
                await asyncio.wait_for(self.event_arrived.wait(), remaining)
            except asyncio.TimeoutError:
                return predicate()
        return True

    @property
    def exited(self) -> bool:
        return self.proc is not None and self.proc.poll() is not None

    def qemu_output(self) -> str:
        if not self._log or self._log.closed:
            return ""
        self._log.flush()
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    def console_text(self) -> str:
        return self.console_tail.decode(errors="replace")

    # -- shutdown -------------------------------------------------------------------------------

    async def shutdown(self, hard: bool = False, timeout: float = 10.0) -> None:
        """Stop QEMU (QMP quit, then SIGKILL) and release everything; safe to call more than once."""
        import asyncio

        try:
            if self.proc and self.proc.poll() is None:
                if not hard and self.monitor:
                    self.sample_rss()
                    await self.monitor.quit(timeout)
                    await self._wait_exited(timeout)
                if self.proc.poll() is None:
                    self._hard_kill()
                    await self._wait_exited(60)
        finally:
            try:
                await self._post_shutdown()
            except asyncio.CancelledError:  # a second Ctrl-C during cleanup: finish the job synchronously
                self.kill_and_clean()
                raise

    async def _wait_exited(self, timeout: float) -> None:
        import asyncio

        task = getattr(self, "_exit_task", None)
        if task is None or task.done():
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout if self.proc.poll() is not None else 0)
            return
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(task), timeout)

    def _hard_kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()

    async def _post_shutdown(self) -> None:
        if self.proc and self.proc.poll() is None:  # cancelled mid-shutdown: never leave QEMU behind
            self._hard_kill()
            await self._wait_exited(60)
        if self.monitor:
            await self.monitor.close()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(BaseException):
                await task
        self._tasks = []
        self.kill_and_clean()

    def kill_and_clean(self) -> None:
        """Synchronous last resort and final step: QEMU killed and reaped, sockets closed, temp dir gone."""
        if self.proc and self.proc.poll() is None:
            self._hard_kill()
            self.proc.wait()
        for s in self._socks + self._qemu_ends:
            s.close()
        self._socks, self._qemu_ends = [], []
        if self._log:
            self._log.close()
        if self.temp_dir:
            shutil.rmtree(self.temp_dir, ignore_errors=True)
            self.temp_dir = None
        self.state = State.STOPPED

    async def __aenter__(self) -> Machine:
        await self.launch()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.shutdown(hard=exc[0] is not None)
