"""Shared test helpers: running the CLI as a user would, and skips that state their reason."""

from __future__ import annotations

import fcntl
import glob
import json
import os
import re
import select
import shutil
import signal
import struct
import subprocess
import sys
import termios
import time

import pytest

DEFAULT_ROOTFS = "/var/lib/minirun/rootfs/busybox"
IS_ROOT = os.geteuid() == 0

needs_root = pytest.mark.skipif(not IS_ROOT, reason="needs root (namespaces, mounts, cgroups)")


def minirun(*args: str, timeout: float = 60, **kw) -> subprocess.CompletedProcess:
    """Run the real CLI as a user would, capturing its output."""
    return subprocess.run([sys.executable, "-m", "minirun", *args], capture_output=True, text=True,
                          timeout=timeout, **kw)


def popen_minirun(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "minirun", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def wait_for(predicate, timeout: float = 30.0) -> bool:
    """Poll ``predicate`` until it is true (an OSError counts as not yet) or ``timeout`` passes.
    The deadline is generous: a host loaded by other suites is slow, not wrong, and only a
    failing test waits it out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return True
        except OSError:
            pass
        time.sleep(0.02)
    return False


def ran_to(out: subprocess.CompletedProcess, marker: str, code: int = 0) -> list[str]:
    """Assert the container ran its probe: exit ``code`` and ``marker`` as the last line it
    printed; return the lines before it. A container that never starts prints nothing and is
    blocked from nothing, so a test concludes from what a probe did *not* print only after this."""
    lines = out.stdout.splitlines()
    assert (out.returncode, lines[-1:]) == (code, [marker]), \
        f"the container did not run to its marker {marker!r}: exit {out.returncode}\n{out.stdout}{out.stderr}"
    return lines[:-1]


class Gate:
    """A fifo a container waits at (``read go < /gate/go``, with ``*gate.volume`` among its
    options) until the test lets it through with ``open()``: the event a test would otherwise
    sleep for. Opened read-write, so letting through never blocks on a container that is not
    there; the fd stays open until ``close()``, so the line waits in the fifo until read."""

    def __init__(self, directory) -> None:
        self.directory = str(directory)
        os.mkfifo(os.path.join(self.directory, "go"))
        self.volume = ("-v", f"{self.directory}:/gate")
        self.fd: int | None = None

    def open(self) -> None:
        self.fd = os.open(os.path.join(self.directory, "go"), os.O_RDWR | os.O_CLOEXEC)
        os.write(self.fd, b"go\n")

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def inspect(name: str) -> dict:
    """`minirun inspect NAME` as a dict."""
    out = minirun("inspect", name)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


class Terminal:
    """minirun (or ``program``: another client, e.g. docker) running on a fresh pty
    whose master the test holds: its stdin, stdout and stderr are the slave, as a
    user's terminal would be."""

    def __init__(self, *args: str, size=(30, 100), env: dict | None = None, program: list[str] | None = None):
        self.program = program
        self.master, self.slave = os.openpty()
        self.resize(*size)
        self.termios_before = termios.tcgetattr(self.slave)
        self.buffer = b""
        self.proc = subprocess.Popen(
            [*(program or [sys.executable, "-m", "minirun"]), *args], stdin=self.slave, stdout=self.slave,
            stderr=self.slave, start_new_session=True, preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),
            env={**os.environ, **(env or {})})

    def resize(self, rows: int, cols: int) -> None:
        """The kernel sends SIGWINCH to the terminal's foreground job: minirun."""
        fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def send(self, data: bytes) -> None:
        os.write(self.master, data)

    def expect(self, pattern: bytes, timeout: float = 10) -> re.Match:
        """Read until ``pattern`` (a regex) appears; consume the output up to its end."""
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern)
        while True:
            match = regex.search(self.buffer)
            if match:
                self.buffer = self.buffer[match.end():]
                return match
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.master], [], [], left)[0]:
                raise AssertionError(f"{pattern!r} did not appear within {timeout} s; got {self.buffer[-2000:]!r}")
            try:
                self.buffer += os.read(self.master, 65536)
            except OSError:  # EIO: nothing holds the slave any more
                raise AssertionError(f"{pattern!r} never appeared; got {self.buffer[-2000:]!r}") from None

    def wait(self, timeout: float = 20) -> int:
        return self.proc.wait(timeout)

    def rest(self) -> bytes:
        """Whatever is left to read once minirun has exited."""
        while select.select([self.master], [], [], 0.2)[0]:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:
                break
            if not chunk:
                break
            self.buffer += chunk
        return self.buffer

    def termios_restored(self) -> bool:
        return termios.tcgetattr(self.slave) == self.termios_before

    def close(self) -> None:
        if self.proc.poll() is None:  # a failed test: hang up, as closing a terminal window does
            self.proc.send_signal(signal.SIGHUP)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
                if self.program is None:  # what a killed minirun left
                    minirun("gc")
        os.close(self.master)
        os.close(self.slave)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def processes_with(matches) -> list[int]:
    """PIDs of the processes whose argv (a list of bytes) ``matches`` accepts."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv and matches(argv):
            found.append(int(pid))
    return found


def child_processes() -> list[str]:
    """This test process's children (a leak-check entry each), zombies included."""
    found = []
    me = str(os.getpid())
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            with open(stat) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[1] == me:  # ppid
            found.append(f"child process {stat.split('/')[2]} (state {fields[0]})")
    return found


def own_mounts(*more_roots: str) -> list[str]:
    """Mounts under this session's state roots (or ``more_roots``): a leak-check entry each."""
    from minirun.settings import OCI_ROOT, STATE_ROOT, VM_STATE_ROOT

    roots = tuple(r.rstrip("/") + "/" for r in (STATE_ROOT, VM_STATE_ROOT, OCI_ROOT, *more_roots))
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    return [f"mount {p}" for p in points if (p + "/").startswith(roots)]


def own_links() -> list[str]:
    """This session's bridge and every link plugged into it (a container's host end)."""
    from minirun.settings import BRIDGE

    found = []
    for name in os.listdir("/sys/class/net"):
        master = os.path.join("/sys/class/net", name, "master")
        if name == BRIDGE or (os.path.islink(master) and os.path.basename(os.readlink(master)) == BRIDGE):
            found.append(f"link {name}")
    return found


_given_ports: set[int] = set()


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now, and not given before in this session (two suites
    on one host never share a fixed one)."""
    import socket

    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _given_ports:
            _given_ports.add(port)
            return port


PROBE_SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "csrc", "probe.c")


def build_probe(out_dir) -> str:
    """Compile the static escape probe (csrc/probe.c) into ``out_dir`` and return that
    directory, to be mounted into containers; skip the test where it cannot be built."""
    if not shutil.which("gcc"):
        pytest.skip("gcc is needed to build the probe helper (csrc/probe.c)")
    build = subprocess.run(["gcc", "-static", "-O2", "-o", os.path.join(out_dir, "probe"), PROBE_SOURCE],
                           capture_output=True, text=True)
    if build.returncode != 0:
        pytest.skip(f"cannot build a static probe helper: {build.stderr.strip()[-300:]}")
    return str(out_dir)
