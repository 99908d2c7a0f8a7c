"""One container from clone to reap: the core both front ends drive.

`minirun run` (container.py: foreground, and the detached supervisor of lifecycle.py)
and minirun-oci (oci/runtime.py) turn their input into a prepared spec, a cgroup
and the arguments of the C child (syscalls.spawn); from there on they share this:

    Container.create(...)  clone the init (csrc/spawn.c), map its ids, put it in its
                           cgroup if clone3 could not, release it (sync 1), read its
                           first report: COMMAND runs (EXEC_OK), or, with an exec fifo,
                           the process waits on the fifo (CREATED: minirun-oci create)
    Container.start()      open the exec fifo and take its byte: COMMAND execs
    Container.wait()       COMMAND's wait status, the init reaped
    Container.kill(sig)    through a pidfd checked against the recorded start time
    Container.exec(argv)   a new process in the container's cgroups and namespaces
    Container.state()      created / running / stopped, by the one liveness rule
    Container.delete()     the init killed, the cgroup destroyed, the state directory gone

The exec fifo is what tells the two process models apart (as in crun's run_internal):
`minirun run` = create without a fifo + wait; `minirun-oci create` = create with one,
`start` = release it; `minirun-oci run` = all three.
"""

from __future__ import annotations

import os
import sys

import _signal as signal  # not signal: its IntEnums import enum (~3.5 ms per start, see entry.py)

from . import state
from .errors import CommandNotExecutable, CommandNotFound, SetupError, SpecError

EXEC_FIFO = "exec.fifo"  # in the state directory from create until start has released the process
CREATED, RUNNING, STOPPED = "created", "running", "stopped"


class Container:
    """A container's init: the child we cloned (``child``, until it is reaped), or one
    another process created, known by its ``record`` (the state.json fields pid,
    pid_start, cgroups) in ``state_dir``."""

    def __init__(self, container_id: str, state_dir: str, record: dict, child=None):
        self.id, self.state_dir, self.record, self.child = container_id, state_dir, record, child
        self.status: int | None = None  # the wait status, once reaped

    # -- create ---------------------------------------------------------------------------------------------------
    @classmethod
    def create(cls, container_id: str, state_dir: str, cgroup, *, command: str, rootfs: str, spawn_args: dict,
               exec_fifo: bool = False, fifo_owner: tuple[int, int] | None = None, id_maps=None,
               pid_namespace_fd: int | None = None, before_release=None, on_hooks=None,
               command_missing=None) -> Container:
        """Clone the init of a prepared container into ``cgroup`` (created already) and
        take it to COMMAND running, or, with ``exec_fifo``, to its exec waiting on the fifo.

        ``spawn_args``: syscalls.spawn's arguments but the cgroup's (added here).
        ``id_maps``: (uid mappings, gid mappings) written while the child waits at sync 1.
        ``pid_namespace_fd``: clone into this pid namespace (minirun-oci's joined one).
        ``before_release(pid)``: the front end's part of sync 1 (its network, rlimits).
        ``on_hooks(container)``: the child reached its createRuntime point (a HOOKS report).
        ``command_missing(command, errno)``: the error for an EXEC_FAILED at create (the OCI
        process model looks its command up then); default raise_for_failure's.
        Raises a MiniRunError for a failed setup; the init is then killed and reaped.
        A container whose init was killed during setup comes back already reaped (status set).
        """
        from . import syscalls  # the C extension; imported here so `minirun --help` stays cheap

        spawn_args = dict(spawn_args)
        fds: list[int] = []
        if exec_fifo:
            fds.append(_make_exec_fifo(state_dir, fifo_owner))
            spawn_args["oci"] = dict(spawn_args.get("oci") or {}, exec_fifo_fd=fds[-1])
        # The child joins the v1 hierarchies itself and clone3 starts it in the v2 one:
        # no cgroup.procs write on the way (see csrc/spawn.c for why that matters).
        tasks_fds = cgroup.self_placement_fds()
        fds += tasks_fds
        unified_fd = cgroup.unified_dir_fd()
        if unified_fd is not None:
            fds.append(unified_fd)
        try:
            with _pid_namespace_for(pid_namespace_fd):
                child = syscalls.spawn(cgroup_fd=unified_fd, tasks_fds=tasks_fds, **spawn_args)
        except syscalls.NativeError as err:
            raise SetupError(err.step, err.errno) from err
        finally:
            for fd in fds:
                os.close(fd)
        self = cls(container_id, state_dir, {"id": container_id, "pid": child.pid}, child)
        try:
            if before_release:
                before_release(child.pid)
            if id_maps and id_maps[0]:  # the init waits at sync 1 until its user namespace maps ids
                from .security import write_id_maps

                write_id_maps(child.pid, *id_maps)
            if unified_fd is not None and not child.used_clone3:  # a kernel without clone3
                cgroup.add_pid(child.pid)
            child.release()
            self.record["pid_start"] = state.start_time(child.pid)
            report = child.read_report()
            if report is not None and report.kind == syscalls.HOOKS and on_hooks:
                on_hooks(self)
                child.resume()
                report = child.read_report()
            if report is None:  # the init died before COMMAND started: killed, or a bug
                self.status = self._reap()
                if not exec_fifo and os.WIFSIGNALED(self.status):
                    return self  # killed (the OOM killer, say): that is its result
                raise SetupError("container init", 0, "the container's init died during setup")
            if report.kind == syscalls.EXEC_FAILED and command_missing:
                raise command_missing(command, report.err)
            raise_for_failure(report, command, rootfs)
            return self
        except BaseException:
            self.kill_and_reap()
            raise

    # -- start, wait ----------------------------------------------------------------------------------------------
    def start(self, start_waits: bool = False) -> None:
        """Release a process waiting on the exec fifo: open it, take its byte, remove it.
        ``start_waits``: startContainer hooks run before the execve; wait for them (EOF,
        or their failure's message). For a child of ours, wait for its execve too: a
        failed exec is raised here, with the child's own reason. The release is the C
        that minirun-oci's native `start` runs (csrc/ociverbs.c)."""
        from .ociverbs import release_exec_fifo

        try:
            release_exec_fifo(self.state_dir, self.id, self.record.get("pid"), self.record.get("pid_start"),
                              start_waits)
        except SetupError:
            if self.child is not None:  # the child's own reason, if it sent one
                self._check_exec(self.child.read_report())
            raise
        if self.child is not None:
            self._check_exec(self.child.read_report())  # EOF: execve succeeded (the socket is close-on-exec)

    def _check_exec(self, report) -> None:
        from . import syscalls

        if report is not None and report.kind in (syscalls.EXEC_FAILED, syscalls.SETUP_FAILED):
            self.status = self._reap()
            raise_for_failure(report, self.record.get("command") or "", self.record.get("rootfs") or "")

    def wait(self, terminal=None) -> int:
        """COMMAND's wait status, once it exits; the init reaped. ``terminal``: a console
        (tty.py) that relays until the init reports the exit."""
        from . import syscalls

        if self.status is None:
            if terminal:
                terminal.wait(self.child.report_fd)
            report = self.child.read_report()
            init_status = self._reap()
            self.status = report.status if report is not None and report.kind == syscalls.EXITED else init_status
        return self.status

    def _reap(self) -> int:
        _, status = os.waitpid(self.child.pid, 0)
        return status

    def kill_and_reap(self) -> None:
        """The init must not outlive a create or run that failed or was interrupted."""
        if self.child is not None:
            if self.status is None:
                kill_and_reap(self.child.pid)
            self.close()

    def close(self) -> None:
        """Let go of the child's report socket (it stays ours to reap)."""
        if self.child is not None:
            self.child.close()

    # -- kill, exec, state, delete --------------------------------------------------------------------------------
    def alive(self) -> bool:
        return state.alive(self.record)

    def kill(self, sig: int) -> bool:
        """``sig`` to the init, never to a process that reused its pid: False if it is gone."""
        return state.send_signal(self.record, sig)

    def exec(self, argv: list[str], **process) -> int:
        """Start ``argv`` in the running container (join.spawn_in); its pid, a child of ours."""
        from .join import spawn_in

        return spawn_in(self.record, self.id, argv, **process)

    def state(self) -> str:
        if not self.alive():
            return STOPPED
        return CREATED if os.path.exists(os.path.join(self.state_dir, EXEC_FIFO)) else RUNNING

    def delete(self, cgroup, before_removal=None, timeout: float = 5) -> None:
        """Kill the init if it lives, destroy ``cgroup`` (None: none to destroy; it kills
        what is left and waits for it to leave), wait until the init is gone (up to
        ``timeout`` seconds: it may not be ours to reap), call ``before_removal()`` (the
        poststop hooks), and remove the state directory."""
        import select

        pidfd = state.open_pidfd(self.record)  # the recorded init or nothing, never a reused pid
        try:
            if pidfd is not None:
                try:
                    signal.pidfd_send_signal(pidfd, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            if cgroup is not None:
                cgroup.destroy()
            if pidfd is not None:  # readable once the process has exited
                poller = select.poll()
                poller.register(pidfd, select.POLLIN)
                poller.poll(int(timeout * 1000))
        finally:
            if pidfd is not None:
                os.close(pidfd)
        if before_removal:
            before_removal()
        state.rmtree(self.state_dir)


def kill_and_reap(pid: int) -> None:
    """SIGKILL a child of ours and reap it (it may be gone, or reaped, already)."""
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def raise_for_failure(report, command: str, rootfs: str) -> None:
    """The child's failure report (syscalls.SETUP_FAILED, EXEC_FAILED) as the exception
    errors.py maps to each front end's exit code; any other report kind returns."""
    from . import syscalls

    if report.kind == syscalls.SETUP_FAILED or report.step.startswith("terminal: "):
        raise SetupError(report.step, report.err, None if report.err else report.step)  # 0: the step says it all
    if report.kind == syscalls.EXEC_FAILED:
        if report.err == 2:  # ENOENT
            raise CommandNotFound(f"{command}: command not found in {rootfs}")
        if report.err == 13:  # EACCES
            raise CommandNotExecutable(f"{command}: permission denied (not executable)")
        raise CommandNotExecutable(f"{report.step}: {os.strerror(report.err)}")


def _make_exec_fifo(state_dir: str, owner: tuple[int, int] | None) -> int:
    """The exec fifo, as an O_PATH fd the child opens for writing (and blocks on)."""
    fifo = os.path.join(state_dir, EXEC_FIFO)
    os.mkfifo(fifo, 0o600)
    os.chmod(fifo, 0o600)  # not left to the umask: under umask 0, runc's 0622 let any user write it
    if owner:  # the process opens it as its user, a mapped id on the host (runc chowns too)
        os.chown(fifo, *owner)
    return os.open(fifo, os.O_PATH | os.O_CLOEXEC)


class forward_signals:
    """While the container runs, signals sent to minirun go to its init (which
    passes them to COMMAND) instead of killing minirun and orphaning it.
    ``pid``: the process to forward to; or given later, to start(), once it exists."""

    def __init__(self, pid: int | None = None):
        self.pid = pid
        self.saved: dict = {}

    def _forward(self, signum, _frame):
        try:
            os.kill(self.pid, signum)
        except ProcessLookupError:
            pass

    def start(self, pid: int) -> None:
        self.pid = pid
        from .syscalls import PASSED_SIGNALS  # csrc/minirun.h: the set minirun-shim passes on too

        threading = sys.modules.get("threading")  # not imported: no other thread was started
        if not self.saved and (threading is None or threading.current_thread() is threading.main_thread()):
            for sig in PASSED_SIGNALS:
                self.saved[sig] = signal.signal(sig, self._forward)

    def __enter__(self):
        if self.pid is not None:
            self.start(self.pid)
        return self

    def __exit__(self, *exc):
        for sig, handler in self.saved.items():
            signal.signal(sig, handler)
        self.saved.clear()


class _pid_namespace_for:
    """Clone the container into the pid namespace open on ``fd`` (None: leave as is).

    setns(CLONE_NEWPID) moves only the caller's future children (pid_for_children):
    set it around the clone, then back to our own namespace, which setns allows (it
    is the caller's active one). Per thread, and this process forks nothing else meanwhile.
    """

    def __init__(self, fd: int | None):
        self.fd, self.own = fd, None

    def __enter__(self):
        if self.fd is not None:
            from . import syscalls

            self.own = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
            try:
                syscalls.setns(self.fd, syscalls.NAMESPACE_FLAGS["pid"])
            except BaseException:
                os.close(self.own)
                raise

    def __exit__(self, *exc):
        if self.own is not None:
            from . import syscalls

            try:
                syscalls.setns(self.own, syscalls.NAMESPACE_FLAGS["pid"])
            finally:
                os.close(self.own)
