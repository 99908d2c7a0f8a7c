"""Starting a process in a running container: its cgroups first, then its init's namespaces.

The one way in for `minirun exec` (lifecycle.py) and `minirun-oci exec` (oci/runtime.py).
"""

from __future__ import annotations

import os

import _signal as signal  # signal's IntEnums import enum: ~3.5 ms a start (entry.py)

from . import state, syscalls
from .cgroups import fs
from .errors import CommandNotExecutable, CommandNotFound, SetupError, SpecError

# The namespaces exec joins, in one setns() through the init's pidfd (the kernel
# orders them: user first, which grants the rights to join the others).
EXEC_NAMESPACES = {"user": "user", "cgroup": "cgroup", "ipc": "ipc", "uts": "uts", "network": "net", "pid": "pid",
                   "mount": "mnt"}


def namespaces_of(pid: int, pidfd: int) -> list[str]:
    """The init's namespaces to join: those this kernel has, minus a user namespace
    that is already ours (setns into it fails). Read through /proc/PID, so checked
    against the pidfd afterwards: the init must still be alive for the pid to be its."""
    joined = []
    for ns, name in EXEC_NAMESPACES.items():
        try:
            ino = os.stat(f"/proc/{pid}/ns/{name}").st_ino
        except FileNotFoundError:
            continue
        if ns == "user" and ino == os.stat("/proc/self/ns/user").st_ino:
            continue
        joined.append(ns)
    signal.pidfd_send_signal(pidfd, 0)  # ProcessLookupError: it died meanwhile
    return joined


def spawn_in(st: dict, container_id: str, argv: list[str], **process) -> int:
    """Start ``argv`` in the running container that ``st`` records: its cgroups first,
    then its init's namespaces, joined through a pidfd checked against the recorded
    start time (never a recycled pid). Returns the new process's pid, a child of ours.

    ``process``: syscalls.exec_into's other arguments (envp, path, cwd, uid, gid,
    security, console_fd, console_size, process_extras). Used by `minirun exec` and
    `minirun-oci exec`.
    """
    pidfd = state.open_pidfd(st)
    if pidfd is None:
        raise SpecError(f"container {container_id} is not running")
    fds: list[int] = [pidfd]
    try:
        try:
            namespaces = namespaces_of(st["pid"], pidfd)
        except ProcessLookupError:
            raise SpecError(f"container {container_id} is not running") from None
        paths = st.get("cgroups", {})
        unified = paths.get("unified")
        cgroup_fd = None
        if unified:
            cgroup_fd = fs.open_dir(unified)
            fds.append(cgroup_fd)
        tasks = [fs.open_write(os.path.join(d, "tasks")) for d in sorted(set(paths.values())) if d != unified]
        fds += tasks
        try:
            return syscalls.exec_into(pidfd=pidfd, namespaces=namespaces, cgroup_fd=cgroup_fd, tasks_fds=tasks,
                                      argv=argv, **process)
        except syscalls.ExecFailed as err:
            if err.errno == 2:
                raise CommandNotFound(f"{argv[0]}: command not found in container {container_id}") from err
            raise CommandNotExecutable(str(err)) from err
        except syscalls.NativeError as err:
            raise SetupError(err.step, err.errno) from err
    finally:
        for fd in fds:
            os.close(fd)
