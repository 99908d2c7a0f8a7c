"""Work set aside for a thread of its own, in a process that runs containers one after
another (the API in a loop): what need not happen on the CPU the containers run on.

Their processes wake one another synchronously (sockets, pipes), so the scheduler keeps
the caller and every container on one CPU; the thread moves to another before each job.
The first container of a process starts nothing, so a single `minirun run` runs no thread.

- ``take_netns()``: the next container's network namespace, made ahead. A new one is the
  dearest part of a container's clone (~0.3-0.4 ms on this machine kind: the kernel
  registers its sysctl tables, its loopback and every protocol's per-namespace state, and
  waits for the rtnl lock while the last container's namespace is being torn down), and
  it needs nothing from the container's plan. The init joins it (setns: csrc/init.c) in
  place of the clone making one (csrc/syscalls.c's mr_netns_make). Each namespace is new
  and goes to one container: taken, it leaves the thread, and the caller closes its fd once
  the init holds it.
- ``close_later(fd)``: the last close of a removed state directory. Freeing its block on
  ext4 without a journal, mounted -o discard (this machine kind's /run), waits ~0.1 ms for
  the discard; the directory's name is gone already (state.Claim).

A forked child starts with a thread of its own, none of the parent's namespaces, and closes
its copies of the fds that wait to be closed.
"""

from __future__ import annotations

import os
import signal
import threading

from ._native import ffi, lib

READY = 1  # namespaces kept made ahead: a container takes ~4 ms here, a namespace ~0.4


class Aside:
    def __init__(self):
        self._changed = threading.Condition()
        self._ready: list[int] = []  # new network namespaces
        self._to_close: list[int] = []
        self._thread: threading.Thread | None = None
        self._busy = False
        self._no_netns = False  # mr_netns_make failed once: the clones make their own from then on

    def take_netns(self) -> int | None:
        """A new network namespace's fd, for the caller to close; None if none is made yet
        (the clone makes one). Starts the thread, at the first call."""
        with self._changed:
            fd = self._ready.pop() if self._ready else None
            if self._thread is None:
                self._start()
            self._changed.notify()
        return fd

    def close_later(self, fd: int) -> bool:
        """Leave ``fd``'s close to the thread, if it runs (else False: close it yourself)."""
        with self._changed:
            if self._thread is None:
                return False
            self._to_close.append(fd)
            self._changed.notify()
        return True

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._work, name="minirun-aside", daemon=True)
        # No signal for the thread: minirun's forwarding (core.forward_signals) must interrupt
        # the main thread's wait, and the thread inherits this mask.
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
        try:
            self._thread.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)

    def _netns_wanted(self) -> bool:
        return not self._no_netns and len(self._ready) < READY

    def settled(self, timeout: float) -> bool:
        """Wait until the thread has nothing left to do: every fd closed, the namespaces made."""
        with self._changed:
            return self._changed.wait_for(lambda: self._thread is None or not (
                self._busy or self._to_close or self._netns_wanted()), timeout)

    def _work(self) -> None:
        step = ffi.new("char[]", lib.MR_STEP_MAX)
        main = threading.main_thread().native_id
        while True:
            with self._changed:
                self._busy = False
                self._changed.notify_all()
                while not self._to_close and not self._netns_wanted():
                    self._changed.wait()
                # taken off the list before their close: a fork meanwhile leaves the child's copies
                # open (close-on-exec, of a removed directory), never closes another fd of that number
                to_close, self._to_close = self._to_close, []
                make = self._netns_wanted()
                self._busy = True
            _away_from(main)
            for fd in to_close:
                os.close(fd)
            if make:
                fd = lib.mr_netns_make(step)  # cffi lets the GIL go meanwhile
                with self._changed:
                    if fd < 0:
                        self._no_netns = True  # the clone says why, if it fails too
                    else:
                        self._ready.append(fd)


def _away_from(tid: int) -> None:
    """Run the calling thread on another CPU than the one thread ``tid`` ran on last."""
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


_aside = Aside()


def take_netns() -> int | None:
    return _aside.take_netns()


def close_later(fd: int) -> bool:
    return _aside.close_later(fd)


def _forget_in_child() -> None:
    """After fork: the thread is gone, the namespaces made ahead stay the parent's to hand out
    (two containers must never share one), and our copies of the fds to close are closed."""
    global _aside
    for fd in _aside._ready + _aside._to_close:
        try:
            os.close(fd)
        except OSError:
            pass
    _aside = Aside()


os.register_at_fork(after_in_child=_forget_in_child)
