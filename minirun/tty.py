"""Interactive terminals (`-t`, `-i`, `attach`): the host side of a container's pty.

csrc/console.c makes the pty inside the container (its own devpts instance) and
sends the master over a unix socket; this module is everything on the host side:

    Console             the socketpair the C child sends the master over; a strategy
                        for container.run: ``Foreground`` relays to minirun's own
                        terminal, ``Supervised`` (`run -d -t`) to the log and to
                        `minirun attach` clients over ``<state dir>/attach``;
                        ``ConsoleSocket`` hands the master to an OCI --console-socket
    receive_master      the master fd (and the pty's path) from such a socket: also
                        what an OCI --console-socket receives
    raw_mode            the host terminal raw, restored on every way out
    relay               the host terminal to the master and back
    attach              `minirun attach`: the client, with docker's detach keys

The relays and the attach protocol themselves are C (csrc/attach.c, through
minirun.syscalls), the code minirun-shim runs for a detached container's pty.

Imported only when -t or -i is used: `minirun run` without them never loads it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import signal
import socket
import struct
import termios
import threading

from . import syscalls
from .errors import MiniRunError, SetupError, SpecError

DEFAULT_DETACH_KEYS = "ctrl-p,ctrl-q"
DETACHED_SIZE = (24, 80)  # a detached pty's size until a client attaches
ATTACH_SOCKET = "attach"


class NotATerminal(SpecError):
    """-t needs a terminal on minirun's stdin (docker's words, exit 125)."""

    def __init__(self):
        super().__init__("the input device is not a TTY")


def require_terminal(fd: int = 0) -> None:
    if not os.isatty(fd):
        raise NotATerminal()


# --- the pty master -------------------------------------------------------------------

def receive_master(sock: socket.socket) -> tuple[int, str]:
    """The master fd sent by csrc/console.c (or runc, to an OCI console socket), and
    the pty's path inside the container."""
    try:
        name, fds, _flags, _addr = socket.recv_fds(sock, 4096, 1)
    except OSError as err:
        raise SetupError("terminal: receive the pty master", err.errno or errno.EIO) from err
    if not fds:
        raise SetupError("terminal: receive the pty master", errno.EIO)
    os.set_inheritable(fds[0], False)
    return fds[0], name.decode(errors="replace")


def window_size(fd: int) -> tuple[int, int] | None:
    """(rows, columns) of the terminal ``fd``, or None if it is not one."""
    try:
        rows, cols, _, _ = struct.unpack("HHHH", fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8))
    except OSError:
        return None
    return rows, cols


def set_window_size(fd: int, size: tuple[int, int] | None) -> None:
    """TIOCSWINSZ: the kernel sends SIGWINCH to the pty's foreground job if it changed."""
    if size:
        with contextlib.suppress(OSError):
            fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", size[0], size[1], 0, 0))


@contextlib.contextmanager
def on_resize(callback):
    """Call ``callback()`` on every SIGWINCH while inside (poll is retried after it, PEP 475).
    Only the main thread can take signals: elsewhere the size is only copied once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGWINCH, lambda _sig, _frame: callback())
    try:
        yield
    finally:
        signal.signal(signal.SIGWINCH, previous)


@contextlib.contextmanager
def raw_mode(fd: int):
    """The terminal ``fd`` raw (cfmakeraw: no echo, no line editing, no signal keys, so
    Ctrl-C reaches the container's line discipline as a byte) and restored on exit."""
    saved = termios.tcgetattr(fd)
    raw = termios.tcgetattr(fd)
    raw[0] &= ~(termios.IGNBRK | termios.BRKINT | termios.PARMRK | termios.ISTRIP | termios.INLCR | termios.IGNCR
                | termios.ICRNL | termios.IXON)
    raw[1] &= ~termios.OPOST
    raw[2] = (raw[2] & ~(termios.CSIZE | termios.PARENB)) | termios.CS8
    raw[3] &= ~(termios.ECHO | termios.ECHONL | termios.ICANON | termios.ISIG | termios.IEXTEN)
    raw[6][termios.VMIN], raw[6][termios.VTIME] = 1, 0
    termios.tcsetattr(fd, termios.TCSANOW, raw)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def relay(master: int, until_fd: int, *, stdin_fd: int | None = 0, stdout_fd: int = 1) -> None:
    """``stdin_fd`` to the master, the master to ``stdout_fd``, until ``until_fd`` is
    readable (the init's report socket, or a pidfd); then what COMMAND wrote last.
    Keystrokes the pty cannot take yet wait in a buffer, so a COMMAND that is not
    reading never blocks its own output. Signal handlers (a resize, the signals passed
    on to the container) run meanwhile."""
    syscalls.tty_relay(master, until_fd, stdin_fd, stdout_fd)


# --- strategies for container.run ---------------------------------------------------

class Console:
    """The socketpair csrc/console.c sends the master over; what container.run calls:

        child_fd, size      handed to the C child (syscalls.spawn console_fd, console_size)
        spawned()           the child has its copy: close ours
        started(state_dir)  COMMAND runs: receive the master
        wait(until_fd)      relay until the init reports the exit
        close()             (context manager) everything closed on every path
    """

    def __init__(self, size: tuple[int, int] | None):
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock = parent
        self.child_fd = child.detach()
        self.size = size
        self.master = -1
        self.name = ""

    def spawned(self) -> None:
        if self.child_fd >= 0:
            os.close(self.child_fd)
            self.child_fd = -1

    def started(self, state_dir: str) -> None:
        self.spawned()
        self.master, self.name = receive_master(self.sock)

    def wait(self, until_fd: int) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.spawned()
        self.sock.close()
        if self.master >= 0:
            os.close(self.master)
            self.master = -1

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class ConsoleSocket(Console):
    """OCI ``terminal: true`` with ``--console-socket PATH``: the C child sends the master
    straight to the socket's listener, as runc does; minirun relays nothing. Same
    protocol as ``Console`` for container.run."""

    def __init__(self, path: str, size: tuple[int, int] | None = None):  # no socketpair: the engine's socket
        self.child_fd = connect_console_socket(path)
        self.size = size

    def started(self, state_dir: str) -> None:
        self.spawned()

    def wait(self, until_fd: int) -> None:
        pass

    def close(self) -> None:
        self.spawned()


def connect_console_socket(path: str) -> int:
    """A connected fd for an OCI --console-socket, to pass as syscalls.spawn/exec_into(console_fd=...)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError as err:
        sock.close()
        raise SpecError(f"cannot connect to the console socket {path}: {err.strerror}") from err
    return sock.detach()


class Foreground(Console):
    """`run -t` / `exec -t`: the master relayed to minirun's own stdin and stdout, the
    host terminal raw (with -i) and its window size followed."""

    def __init__(self, interactive: bool, host_fd: int = 0):
        super().__init__(window_size(host_fd))
        self.interactive = interactive
        self.host_fd = host_fd

    def wait(self, until_fd: int) -> None:
        resize = lambda: set_window_size(self.master, window_size(self.host_fd))  # noqa: E731
        resize()  # it may have changed between the spawn and now
        with contextlib.ExitStack() as stack:
            if self.interactive and os.isatty(self.host_fd):
                stack.enter_context(raw_mode(self.host_fd))
            stack.enter_context(on_resize(resize))
            relay(self.master, until_fd, stdin_fd=self.host_fd if self.interactive else None)


class Supervised(Console):
    """`run -d -t`: the supervisor receives the master and opens ``<state dir>/attach``
    (SOCK_SEQPACKET), then hands both to minirun-shim, which relays (csrc/shim.c): the
    output goes to the log and to every client, the clients' packets to the pty
    (csrc/attach.c; the protocol is in csrc/minirun.h)."""

    def __init__(self):
        super().__init__(DETACHED_SIZE)
        self.listener: socket.socket | None = None

    def started(self, state_dir: str) -> None:
        super().started(state_dir)
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        path = os.path.join(state_dir, ATTACH_SOCKET)
        self.listener.bind(path)
        os.chmod(path, 0o600)
        self.listener.listen(8)

    def close(self) -> None:
        if self.listener:
            self.listener.close()
        super().close()


# --- attach ----------------------------------------------------------------------------

_CTRL_KEYS = {"@": 0, "[": 27, "\\": 28, "]": 29, "^": 30, "_": 31}


def parse_detach_keys(text: str) -> bytes:
    """docker's --detach-keys: comma-separated keys, each one character or ctrl-X
    (X a letter or one of @ [ \\ ] ^ _): "ctrl-p,ctrl-q" -> b"\\x10\\x11"."""
    keys = bytearray()
    for part in text.split(","):
        low = part.lower()
        if len(part) == 1 and part.isascii():
            keys.append(ord(part))
        elif low.startswith("ctrl-") and len(low) == 6 and "a" <= low[5] <= "z":
            keys.append(ord(low[5]) - ord("a") + 1)
        elif low.startswith("ctrl-") and len(low) == 6 and low[5] in _CTRL_KEYS:
            keys.append(_CTRL_KEYS[low[5]])
        else:
            raise SpecError(f"invalid detach keys {text!r}: use keys such as ctrl-p,ctrl-q or ctrl-a,d")
    return bytes(keys)


class DetachFilter:
    """Finds the detach sequence in the typed input, across reads, as docker does: the
    keys of a partial match are held back, and passed on if the sequence breaks
    (csrc/attach.c, mr_detach_filter, which `attach` runs)."""

    def __init__(self, keys: bytes):
        self.keys = keys
        self.held = 0

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """(what to pass on, whether the whole sequence was typed)."""
        out, self.held, detached = syscalls.detach_filter(self.keys, self.held, data)
        return out, detached


def attach(path: str, detach_keys: bytes, stdin_fd: int = 0, stdout_fd: int = 1) -> bool:
    """Connect to a supervised container's terminal; True if detached by the keys,
    False once the container's terminal is gone (it exited)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        sock.connect(path)
    except OSError as err:
        sock.close()
        raise MiniRunError(f"cannot attach: the container's terminal is not available ({err.strerror})") from err

    def resize() -> None:
        size = window_size(stdin_fd)
        if size:
            with contextlib.suppress(OSError):
                syscalls.attach_send_size(sock.fileno(), size)

    with sock, contextlib.ExitStack() as stack:
        if os.isatty(stdin_fd):
            stack.enter_context(raw_mode(stdin_fd))
        stack.enter_context(on_resize(resize))
        resize()
        return syscalls.attach_client(sock.fileno(), detach_keys, stdin_fd, stdout_fd)
