"""What the native front (csrc/front.c) execs, read from /proc while the Python it started waits.

`minirun-oci update --resources FILE ID` stays in Python and reads FILE before it looks
for ID: FILE is a FIFO, so the Python process blocks opening it until this side opens
the other end, and our open returns only once it is there.
"""

from __future__ import annotations

import os
import subprocess
import threading

ELF_MAGIC = b"\x7fELF"


def is_native(executable: str) -> bool:
    with open(executable, "rb") as f:
        return f.read(4) == ELF_MAGIC and os.access(executable, os.X_OK)


def exec_line(executable: str, scratch: str, env: dict | None = None) -> tuple[list[str], subprocess.CompletedProcess]:
    """The command line of the process ``executable`` became, and how that process ended."""
    fifo = os.path.join(scratch, "resources.fifo")
    os.mkfifo(fifo)
    proc = subprocess.Popen([executable, "--root", os.path.join(scratch, "root"), "update", "--resources", fifo,
                             "nosuch"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)

    def release_if_it_exits():  # a process that never opens the FIFO must not leave our open waiting
        proc.wait()
        try:
            os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))
        except OSError:
            pass

    threading.Thread(target=release_if_it_exits, daemon=True).start()
    writer = os.open(fifo, os.O_WRONLY)
    try:
        with open(f"/proc/{proc.pid}/cmdline", "rb") as f:
            cmdline = [arg.decode() for arg in f.read().split(b"\0")[:-1]]
        if proc.poll() is None:  # still reading the FIFO: give it what --resources wants
            os.write(writer, b"{}")
        else:
            cmdline = []
    finally:
        os.close(writer)
    out, err = proc.communicate(timeout=60)
    return cmdline, subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
