"""Work set aside for a thread of its own (csrc/aside.c), in a process that runs containers
one after another (the API in a loop): what need not happen on the CPU the containers run on.

Their processes wake one another synchronously (sockets, pipes), so the scheduler keeps
the caller and every container on one CPU; the thread moves to another before each job.
It is C, so it never waits for the interpreter's lock, nor makes the caller wait for it.
The first container of a process starts nothing (container.py), so a single `minirun run`
runs no thread; the second starts it, and the third is the first to join a namespace made
ahead. ``ENABLED = False`` before the second keeps the process single-threaded (a process
that means to unshare its own user namespace, or join another mount namespace, needs that).

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

A forked child has no thread until it asks, none of the parent's namespaces, and closes
its copies of the fds that wait to be closed (a fork waits until the thread is idle).
"""

from __future__ import annotations

from ._native import lib

ENABLED = True


def take_netns() -> int | None:
    """A new network namespace's fd, for the caller to close; None if none is made yet (the
    clone makes one). The first call starts the thread."""
    fd = lib.mr_aside_take_netns()
    return None if fd < 0 else fd


def close_later(fd: int) -> bool:
    """Leave ``fd``'s close to the thread, if it runs (else False: close it yourself)."""
    return bool(lib.mr_aside_close(fd))


def settled(timeout: float) -> bool:
    """Wait until the thread has nothing left to do: every fd closed, the namespace made."""
    return bool(lib.mr_aside_settled(int(timeout * 1000)))
