"""Network namespaces made ahead, for the next containers a process runs.

A new network namespace is the dearest part of a container's clone (~0.3-0.4 ms on this
machine kind: the kernel registers the namespace's sysctl tables, its loopback and every
protocol's per-namespace state, and waits for the rtnl lock while the last container's
namespace is being torn down). It needs nothing from the container's plan. So a process
that runs containers one after another (the API in a loop) has a thread make the next
one's while the current one runs, and the init joins it (setns) in place of the clone
making one (csrc/syscalls.c's mr_netns_make; csrc/init.c joins it).

Each namespace is new and goes to one container: taken, it leaves the pool, and the
caller closes its fd once the init holds it. Only for what the clone would make alike:
owned by the host's user namespace (no --userns), nothing plugged in (--network none).
The first container of a process makes its own, so a single `minirun run` starts no
thread; the pool's namespaces go with the process (their fds), and a forked child starts
with an empty pool of its own.
"""

from __future__ import annotations

import os
import signal
import threading

from ._native import ffi, lib

READY = 1  # kept made ahead: a container takes ~4 ms here, a namespace ~0.4


class Pool:
    def __init__(self):
        self._changed = threading.Condition()
        self._ready: list[int] = []
        self._thread: threading.Thread | None = None
        self._failed = False  # mr_netns_make failed once: the clones make their own from then on

    def take(self) -> int | None:
        """A new network namespace's fd, for the caller to close; None if none is made yet
        (the clone makes one). Starts the thread that makes them, at the first call."""
        with self._changed:
            fd = self._ready.pop() if self._ready else None
            if self._thread is None and not self._failed:
                self._thread = threading.Thread(target=self._make, name="minirun-netns", daemon=True)
                # No signal for the thread: minirun's forwarding (core.forward_signals) must
                # interrupt the main thread's wait, and the thread inherits this mask.
                mask = signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
                try:
                    self._thread.start()
                finally:
                    signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            self._changed.notify()
        return fd

    def _make(self) -> None:
        step = ffi.new("char[]", lib.MR_STEP_MAX)
        main = threading.main_thread().native_id
        while True:
            with self._changed:
                while len(self._ready) >= READY:
                    self._changed.wait()
            _away_from(main)
            fd = lib.mr_netns_make(step)  # cffi lets the GIL go meanwhile
            with self._changed:
                if fd < 0:
                    self._failed = True  # the clone will say why, if it fails too
                    return
                self._ready.append(fd)


def _away_from(tid: int) -> None:
    """Run the calling thread on another CPU than the one thread ``tid`` ran on last: the
    containers' processes wake one another synchronously (sockets, pipes), so the scheduler
    keeps them all on that one, where this thread would take a turn from them."""
    try:
        allowed = os.sched_getaffinity(tid)
        with open(f"/proc/self/task/{tid}/stat", "rb") as f:
            cpu = int(f.read().rsplit(b")", 1)[1].split()[36])  # field 39, processor
    except (OSError, ValueError, IndexError):
        return
    others = allowed - {cpu}
    if others:
        try:
            os.sched_setaffinity(0, others)
        except OSError:
            pass  # (a cpuset changed meanwhile) where it is, then


_pool = Pool()


def take() -> int | None:
    return _pool.take()


def _forget_in_child() -> None:
    """After fork: the thread is gone, and the namespaces made ahead stay the parent's to hand
    out (two containers must never share one)."""
    global _pool
    for fd in _pool._ready:
        try:
            os.close(fd)
        except OSError:
            pass
    _pool = Pool()


os.register_at_fork(after_in_child=_forget_in_child)
