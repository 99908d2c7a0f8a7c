"""The module that touches the cffi extension (minirun._native), but for ociverbs.py,
which binds csrc/ociverbs.h alone (light: `state` and `start` import it).

Each wrapper raises ``NativeError`` (an ``OSError``) whose message names the
failing step with its argument, e.g. ``pivot_root(/var/lib/x): Invalid argument``.
"""

from __future__ import annotations

import errno
import fcntl
import os
import sys

from .errors import HostError, warn
from .record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:  # collections.abc imports collections: ~1 ms at every start, for annotations only
    from collections.abc import Sequence

from ._native import ffi, lib

NAMESPACE_FLAGS = {
    "pid": lib.CLONE_NEWPID,
    "mount": lib.CLONE_NEWNS,
    "uts": lib.CLONE_NEWUTS,
    "ipc": lib.CLONE_NEWIPC,
    "network": lib.CLONE_NEWNET,
    "cgroup": lib.CLONE_NEWCGROUP,
    "user": lib.CLONE_NEWUSER,
}

REPORT_SIZE = ffi.sizeof("struct mr_report")
_STEP_END = ffi.offsetof("struct mr_report", "step") + len(ffi.new("struct mr_report *").step) - 1
# Static helpers built beside the extension (setup.py): the container's PID 1 once
# COMMAND runs and the last exec before COMMAND (csrc/init_main.c), and a detached
# container's shim (csrc/shim.c).
LIBEXEC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "libexec")
INIT_PATH = os.path.join(LIBEXEC, "minirun-init")
SHIM_PATH = os.path.join(LIBEXEC, "minirun-shim")
# The signals minirun passes on to the container's init while it runs (csrc/minirun.h).
PASSED_SIGNALS = tuple(lib.mr_passed_signals)
SHIM_EXIT_RECORD = ffi.string(lib.MR_SHIM_EXIT_RECORD).decode()  # minirun-shim's own, in the state directory
SETUP_FAILED, EXEC_OK, EXEC_FAILED, EXITED, CREATED, HOOKS = (
    lib.MR_REPORT_SETUP_FAILED, lib.MR_REPORT_EXEC_OK, lib.MR_REPORT_EXEC_FAILED, lib.MR_REPORT_EXITED,
    lib.MR_REPORT_CREATED, lib.MR_REPORT_HOOKS)


class NativeError(OSError):
    """A syscall failed: ``errno`` and ``strerror`` as usual, ``step`` names the call."""

    def __init__(self, err: int, step: str):
        super().__init__(err, os.strerror(err))
        self.step = step

    def __str__(self) -> str:
        return f"{self.step}: {self.strerror}"


def _check(ret: int, step) -> int:
    if ret < 0:
        raise NativeError(-ret, ffi.string(step).decode(errors="replace"))
    return ret


def _step():
    return ffi.new("char[]", lib.MR_STEP_MAX)


def _cstr(value: str | None, keep: list):
    if value is None:
        return ffi.NULL
    buf = ffi.new("char[]", os.fsencode(value))
    keep.append(buf)
    return buf


IN_ROOT_MKDIR, IN_ROOT_NOFOLLOW = lib.MR_IN_ROOT_MKDIR, lib.MR_IN_ROOT_NOFOLLOW


def open_in_root(root_fd: int, path: str, how: int = 0) -> int:
    """An O_PATH fd of ``path`` resolved as if ``root_fd`` were ``/`` (csrc/rootpath.c,
    the resolver every mount of the container goes through)."""
    ret = lib.mr_open_in_root(root_fd, os.fsencode(path), how, ffi.NULL, ffi.NULL)
    if ret < 0:
        raise NativeError(-ret, f"resolve {path} in the root")
    return ret


def bind_sources_as_trees(plan: Sequence, fds: list[int]) -> tuple:
    """``plan`` with each bind's source cloned now, by the caller, as a detached tree
    with the bind's flags set (csrc/rootpath.c, mr_open_bind_tree): the child in a new
    user namespace attaches it, where walking to the source could be refused to it.
    Each tree's fd goes into ``fds`` (the caller closes them once the child is cloned).
    A bind this kernel cannot clone so stays a bind by path."""
    from .mounts import MS_BIND, MS_NODEV, MS_NOEXEC, MS_NOSUID, MS_RDONLY, MS_REC, OP_MOUNT, Op

    out = []
    for op in plan:
        if op.kind == OP_MOUNT and op.flags & MS_BIND and op.source:
            tree = lib.mr_open_bind_tree(os.fsencode(op.source), 1 if op.flags & MS_REC else 0,
                                         op.flags & (MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC), _step())
            if tree >= 0:
                fds.append(tree)
                op = Op(**dict(op.to_dict(), source_fd=tree))
        out.append(op)
    return tuple(out)


def setns(fd: int, nstype: int = 0) -> None:
    """os.setns before Python 3.12."""
    step = _step()
    _check(lib.mr_setns(fd, nstype, step), step)


def attach_device_filter(program: bytes, cgroup_fd: int) -> None:
    """Load the cgroup v2 devices program (cgroups/devicefilter.py) and attach it to ``cgroup_fd``."""
    step = _step()
    buf = ffi.from_buffer(program)
    _check(lib.mr_attach_device_filter(buf, len(program) // 8, cgroup_fd, step), step)


class Child(Record):
    """A freshly cloned container init, held at sync 1 until ``release()``."""

    pid: int
    report_fd: int
    go_fd: int
    used_clone3: bool

    def release(self) -> None:
        """sync 1: let the child go on with its setup (it is in its cgroups now)."""
        os.write(self.go_fd, b"g")
        self.close_go()

    def close_go(self) -> None:
        if self.go_fd >= 0:
            os.close(self.go_fd)
            self.go_fd = -1

    def close(self) -> None:
        self.close_go()
        if self.report_fd >= 0:
            os.close(self.report_fd)
            self.report_fd = -1

    def resume(self) -> None:
        """Let a child paused at a HOOKS report go on."""
        os.write(self.report_fd, b"g")

    def read_report(self) -> Report | None:
        """The child's next record, or None once it has closed its end."""
        data = os.read(self.report_fd, REPORT_SIZE)
        if not data:
            return None
        # The container's side wrote it: pad a short record and end its step before the array
        # does (step[MR_STEP_MAX - 1] = 0), as the C readers do.
        buf = bytearray(data[:REPORT_SIZE].ljust(REPORT_SIZE, b"\0"))
        buf[_STEP_END] = 0
        rep = ffi.from_buffer("struct mr_report *", buf)
        return Report(rep.kind, rep.err, rep.status, rep.pid, ffi.string(rep.step).decode(errors="replace"))


class Report(Record, frozen=True):
    kind: int
    err: int
    status: int
    pid: int
    step: str


def _in_addr(address: str) -> int:
    """An IPv4 address as the uint32 whose bytes in memory are in network order."""
    import socket

    return int.from_bytes(socket.inet_aton(address), sys.byteorder)


def _op_array(plan: Sequence, keep: list):
    ops = ffi.new("struct mr_op[]", max(1, len(plan)))
    keep.append(ops)
    for i, op in enumerate(plan):
        c_op = _c_op(op)
        ops[i] = c_op[0]  # a copy of the struct; its strings stay c_op's
        keep.append(c_op)
    return ops


_C_OP = "_c_op"  # where an Op keeps its C form, beside (not among) its fields


def _c_op(op):
    """``op`` as a ``struct mr_op`` and what keeps it and the buffers its strings point into, made once
    per Op and kept on it: an Op is frozen, so its C form never goes stale, and most of a
    plan (mounts.DEFAULT_PLAN, security's masked paths) is the same Op objects for every
    container: encoding their ~150 strings anew cost ~0.08 ms per container. The C side
    only reads them (const, copied into the request before the clone)."""
    c_op = op.__dict__.get(_C_OP)
    if c_op is None:
        keep: list = []
        c = ffi.new("struct mr_op *")
        c.kind = op.kind
        c.source = _cstr(op.source, keep)
        c.target = _cstr(op.target, keep)
        c.fstype = _cstr(op.fstype, keep)
        c.flags = op.flags
        c.data = _cstr(op.data, keep)
        c.mode, c.major, c.minor, c.uid, c.gid = op.mode, op.major, op.minor, op.uid, op.gid
        c.source_fd = op.source_fd
        keep.append(c)  # c[0], the struct itself, does not keep its memory alive
        c_op = op.__dict__[_C_OP] = (c[0], keep)
    return c_op


def _process_request(keep: list, *, cgroup_fd, tasks_fds, argv, envp, path, cwd, uid, gid, stdio):
    """The part of a spawn request that describes COMMAND: shared by spawn and exec_into."""
    req = ffi.new("struct mr_spawn_req *")
    req.helper_fd = -1
    keep.append(req)
    req.cgroup_fd = -1 if cgroup_fd is None else cgroup_fd
    fds = ffi.new("int[]", list(tasks_fds) or [0])
    keep.append(fds)
    req.tasks_fds = fds
    req.n_tasks_fds = len(tasks_fds)
    argv_c = ffi.new("char *[]", [_cstr(a, keep) for a in argv] + [ffi.NULL])
    envp_c = ffi.new("char *[]", [_cstr(e, keep) for e in envp] + [ffi.NULL])
    keep += [argv_c, envp_c]
    req.argv = argv_c
    req.envp = envp_c
    req.path = _cstr(path, keep)
    req.cwd = _cstr(cwd, keep)
    req.uid, req.gid = uid, gid
    for i, fd in enumerate(stdio):
        req.stdio[i] = -1 if fd is None else fd
    return req


def spawn(*, rootfs: str, hostname: str | None, namespaces: Sequence[str], cgroup_fd: int | None,
          tasks_fds: Sequence[int], pre_plan: Sequence, plan: Sequence, readonly_root: bool,
          argv: Sequence[str], envp: Sequence[str], path: str, cwd: str,
          uid: int = 0, gid: int = 0, stdio: Sequence[int | None] = (None, None, None),
          net: tuple[str, int, str] | None = None, security: dict | None = None,
          console_fd: int | None = None, console_size: tuple[int, int] | None = None,
          netns_fd: int | None = None, oci: dict | None = None) -> Child:
    """Clone the container's init into new namespaces; it waits for ``Child.release()``.

    ``net``: (address, prefix length, gateway) for the eth0 the parent moves in before release.
    ``security``: security.native_args(spec): COMMAND's capabilities, no_new_privs, seccomp.
    ``console_fd``: give COMMAND a pty of the container's devpts, bound onto /dev/console;
    its master is sent over this unix socket (csrc/console.c; see minirun.tty.receive_master).
    ``console_size``: the pty's initial (rows, columns).
    ``netns_fd``: a new network namespace (aside.take_netns), which the init joins in place of the
    one the clone would make ("network" in ``namespaces``).
    ``oci``: the OCI process model (minirun/oci): COMMAND is PID 1, see _set_oci.

    The cgroup namespace is not created by the clone but by the child once it is
    in its cgroups, so that it sees its own cgroup as "/".
    """
    keep: list = []
    flags = 0
    for ns in namespaces:
        if ns != "cgroup":
            flags |= NAMESPACE_FLAGS[ns]
    req = _process_request(keep, cgroup_fd=cgroup_fd, tasks_fds=tasks_fds, argv=argv, envp=envp, path=path, cwd=cwd,
                           uid=uid, gid=gid, stdio=stdio)
    req.rootfs = _cstr(rootfs, keep)
    req.hostname = _cstr(hostname, keep)
    req.clone_flags = flags
    req.unshare_cgroupns = 1 if "cgroup" in namespaces else 0
    req.pre_ops = _op_array(pre_plan, keep)
    req.n_pre_ops = len(pre_plan)
    req.ops = _op_array(plan, keep)
    req.n_ops = len(plan)
    req.readonly_root = 1 if readonly_root else 0
    join = list(oci.get("join_fds", ())) if oci else []
    if netns_fd is not None:
        req.clone_flags &= ~lib.CLONE_NEWNET
        join.insert(0, netns_fd)
    if join:
        fds = ffi.new("int[]", join)
        keep.append(fds)
        req.join_fds, req.n_join_fds = fds, len(join)
    if net:
        address, prefixlen, gateway = net
        mask = (0xFFFFFFFF << (32 - prefixlen)) & 0xFFFFFFFF
        req.net_addr = _in_addr(address)
        req.net_mask = int.from_bytes(mask.to_bytes(4, "big"), sys.byteorder)
        req.net_gateway = _in_addr(gateway)
    _set_security(req, security, keep)
    _set_console(req, console_fd, console_size, bind=True)
    if oci:
        _set_oci(req, oci, keep)

    out = ffi.new("struct mr_spawn_out *")
    step = _step()
    req.helper_fd = sealed_init()
    _check(lib.mr_spawn(req, out, step), step)
    return Child(out.pid, out.report_fd, out.go_fd, bool(out.used_clone3))


_SEALS = fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE


_sealed: tuple[int, int, int] | None = None  # (fd, dev, inode): one copy per process, for every container
_MFD_EXEC = 0x10  # Linux 6.3+: executable even where vm.memfd_noexec makes memfds noexec by default


def sealed_init() -> int:
    """A sealed memfd holding a copy of minirun-init, for the child to exec (csrc/command.c
    says why a copy: COMMAND's /proc/self/exe must never be a writable host file): the
    container's PID 1 and the exec of COMMAND both run it, there is no other way.
    Made once per process: sealed, it cannot change, and an API user's hundredth
    container need not copy it again (checked by inode, in case the fd was closed)."""
    global _sealed
    if _sealed is not None:
        try:
            st = os.fstat(_sealed[0])
            if (st.st_dev, st.st_ino) == _sealed[1:] and (
                    fcntl.fcntl(_sealed[0], fcntl.F_GETFL) & os.O_PATH  # the host file, where no memfd can run
                    or fcntl.fcntl(_sealed[0], fcntl.F_GET_SEALS) & _SEALS == _SEALS):
                return _sealed[0]
        except OSError:
            pass
    fd = _copy_sealed()
    _sealed = (fd, os.fstat(fd).st_dev, os.fstat(fd).st_ino) if fd >= 0 else None
    return fd


def _copy_sealed() -> int:
    try:
        src = os.open(INIT_PATH, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as err:
        raise HostError(f"{INIT_PATH} is missing ({err.strerror}): reinstall minirun (its build links it)") from None
    fd = -1
    try:
        try:
            fd = os.memfd_create("minirun-init", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING | _MFD_EXEC)
        except OSError as err:
            if err.errno != errno.EINVAL:  # EINVAL: a kernel before MFD_EXEC, where memfds are executable
                raise
            fd = os.memfd_create("minirun-init", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        size = os.fstat(src).st_size
        done = 0
        while done < size:
            done += os.sendfile(fd, src, done, size - done)
        # execute-only: whoever execs it cannot read it, so the program starts non-dumpable
        # (csrc/security.c, mr_execveat_nondumpable), never open to a ptrace from the container
        os.fchmod(fd, 0o111)
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, _SEALS)
        return fd
    except OSError as err:
        if fd >= 0:
            os.close(fd)
        # vm.memfd_noexec=2, say: the helper still runs, from the host's file
        warn(f"no sealed copy of minirun-init ({err.strerror}): it runs from {INIT_PATH}, without the "
             "CVE-2019-5736 protection")
        return os.open(INIT_PATH, os.O_PATH | os.O_CLOEXEC)
    finally:
        os.close(src)


def _set_security(req, security: dict | None, keep: list) -> None:
    """Fill the request's security block (csrc/security.c); None leaves credentials alone."""
    if security is None:
        return
    req.security = 1
    req.cap_mask = security["caps"]
    req.cap_inheritable = security["inheritable"]
    req.no_new_privs = 1 if security["no_new_privs"] else 0
    program = security["seccomp"]
    if program:
        buf = ffi.from_buffer(program)
        keep.append(buf)
        req.seccomp_filter = buf
        req.seccomp_len = len(program) // 8
        req.seccomp_flags = security.get("seccomp_flags", 0)


def _set_console(req, console_fd: int | None, size: tuple[int, int] | None, bind: bool) -> None:
    """Fill the request's terminal block (csrc/console.c); None leaves COMMAND's stdio alone."""
    if console_fd is None:
        return
    req.terminal = 1
    req.console_fd = console_fd
    req.console_bind = 1 if bind else 0
    if size:
        req.console_rows, req.console_cols = size


def _set_oci(req, oci: dict, keep: list) -> None:
    """The OCI process model: ``args`` exec'd as PID 1 once the exec fifo is opened by `start`.

    Keys (all optional): exec_fifo_fd, preserve_fds, detached, join_fds (spawn joins them), domainname,
    groups (None: drop all), umask, caps (effective, permitted, ambient masks;
    security["caps"] is the bounding set), create_hooks and start_hooks (OCI hook
    objects the process runs itself, csrc/hooks.c) with hook_state (their state JSON
    without the closing brace), runtime_hooks (pause with a HOOKS report before those,
    until Child.resume()).
    """
    req.oci_process = 1
    req.detached = 1 if oci.get("detached") else 0
    req.exec_fifo_fd = oci.get("exec_fifo_fd") or 0
    req.domainname = _cstr(oci.get("domainname"), keep)
    _set_process_extras(req, oci, keep)
    for kind in ("create", "start"):
        hooks = oci.get(f"{kind}_hooks") or ()
        if hooks:
            array = ffi.new("struct mr_hook[]", len(hooks))
            keep.append(array)
            for entry, hook in zip(array, hooks):
                argv = ffi.new("char *[]", [_cstr(a, keep) for a in hook.get("args") or [hook["path"]]] + [ffi.NULL])
                env = hook.get("env")
                if env is None:  # runc: the hook inherits its runner's environment, here the process's
                    envp = req.envp
                else:
                    envp = ffi.new("char *[]", [_cstr(e, keep) for e in env] + [ffi.NULL])
                keep += [argv, envp]
                entry.path, entry.argv, entry.envp = _cstr(hook["path"], keep), argv, envp
                entry.timeout = int(hook.get("timeout") or 0)
            setattr(req, f"{kind}_hooks", array)
            setattr(req, f"n_{kind}_hooks", len(hooks))
    req.hook_state = _cstr(oci.get("hook_state"), keep)
    req.runtime_hooks = 1 if oci.get("runtime_hooks") else 0


def _set_process_extras(req, oci: dict, keep: list) -> None:
    """OCI process fields that `exec` applies too: additionalGids, umask, the capability sets,
    preserve_fds (fds 3 .. 3+N-1 of the caller, COMMAND's too); and cwd_must_exist (runc's
    exec fails on a missing cwd, where create makes it)."""
    req.preserve_fds = oci.get("preserve_fds", 0)
    groups = oci.get("groups")
    if groups is not None:
        gids = ffi.new("uint32_t[]", list(groups) or [0])
        keep.append(gids)
        req.set_groups, req.groups, req.n_groups = 1, gids, len(groups)
    if oci.get("umask") is not None:
        req.has_umask, req.umask = 1, oci["umask"]
    if oci.get("caps") is not None:
        req.cap_sets = 1
        req.cap_effective, req.cap_permitted, req.cap_ambient = oci["caps"]
    req.cwd_must_exist = 1 if oci.get("cwd_must_exist") else 0


class ExecFailed(NativeError):
    """COMMAND could not be exec'd in the container (errno ENOENT, EACCES, ...)."""


def exec_into(*, pidfd: int, namespaces: Sequence[str], cgroup_fd: int | None, tasks_fds: Sequence[int],
              argv: Sequence[str], envp: Sequence[str], path: str, cwd: str, uid: int = 0, gid: int = 0,
              stdio: Sequence[int | None] = (None, None, None), security: dict | None = None,
              console_fd: int | None = None, console_size: tuple[int, int] | None = None,
              process_extras: dict | None = None) -> int:
    """Start ``argv`` inside a running container (see csrc/exec.c): join the ``namespaces`` of the
    process ``pidfd`` (its init) in one setns; return the new process's pid, a child of ours.

    ``console_fd``, ``console_size``: as for ``spawn``, without touching /dev/console.
    ``process_extras``: groups, umask, caps as in _set_oci (minirun-oci exec).
    """
    keep: list = []
    req = _process_request(keep, cgroup_fd=cgroup_fd, tasks_fds=tasks_fds, argv=argv, envp=envp, path=path, cwd=cwd,
                           uid=uid, gid=gid, stdio=stdio)
    _set_security(req, security, keep)
    flags = 0
    for ns in namespaces:
        flags |= NAMESPACE_FLAGS[ns]
    _set_console(req, console_fd, console_size, bind=False)
    if process_extras:
        _set_process_extras(req, process_extras, keep)
    exec_err = ffi.new("int *")
    step = _step()
    req.helper_fd = sealed_init()
    ret = lib.mr_exec(req, pidfd, flags, exec_err, step)
    if ret < 0:
        text = ffi.string(step).decode(errors="replace")
        raise (ExecFailed if exec_err[0] and text.startswith("exec ") else NativeError)(-ret, text)
    return ret


class Relay:
    """The published ports' TCP relay (csrc/relay.c), the same code minirun-shim runs.
    ``serve`` blocks until ``stop_fd`` is readable; cffi releases the GIL for the call."""

    MAX_CONNECTIONS = lib.MR_RELAY_MAX_CONNS

    def __init__(self):
        self._relay = lib.mr_relay_new()
        if self._relay == ffi.NULL:
            raise OSError(ffi.errno, f"cannot create the port relay: {os.strerror(ffi.errno)}")

    def add_port(self, listen_fd: int, to_addr: str, to_port: int) -> None:
        err = lib.mr_relay_add_port(self._relay, listen_fd, to_addr.encode(), to_port)
        if err < 0:
            raise OSError(-err, f"cannot relay to {to_addr}:{to_port}: {os.strerror(-err)}")

    def serve(self, stop_fd: int) -> None:
        err = lib.mr_relay_serve(self._relay, stop_fd)
        if err < 0:
            raise OSError(-err, os.strerror(-err))

    def connections(self) -> int:
        return lib.mr_relay_connections(self._relay)

    def close(self) -> None:
        """Close every relayed connection (the listening fds stay the caller's)."""
        if self._relay is not None:
            lib.mr_relay_free(self._relay)
            self._relay = None


# --- a container's terminal: csrc/attach.c, the code minirun-shim runs too --------------

class _SignalWakeup:
    """Python's signal wakeup fd, for a C poll loop that holds no GIL: a signal with a Python
    handler makes it readable, the C loop returns, the handler runs, the loop is called again.
    Only the main thread can set it; elsewhere there is none (-1) and no handler runs either."""

    def __enter__(self) -> int:
        import signal

        self.r, self.w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            self.previous = signal.set_wakeup_fd(self.w, warn_on_full_buffer=False)
        except ValueError:  # not the main thread
            self.previous = None
            return -1
        return self.r

    def __exit__(self, *exc) -> None:
        import signal

        if self.previous is not None:
            signal.set_wakeup_fd(self.previous)
        os.close(self.r)
        os.close(self.w)


def _until_done(call) -> int:
    with _SignalWakeup() as wake_fd:
        while (ret := call(wake_fd)) == 0:
            pass  # woken by a signal: its Python handler runs here, then relay on
    if ret < 0:
        raise OSError(-ret, os.strerror(-ret))
    return ret


def tty_relay(master: int, until_fd: int, in_fd: int | None, out_fd: int) -> None:
    """``in_fd`` (None: no input) to the pty ``master``, the master to ``out_fd``, until
    ``until_fd`` is readable; then what COMMAND wrote last (mr_tty_relay)."""
    relay = ffi.new("struct mr_tty_relay *")
    lib.mr_pty_init(ffi.addressof(relay, "pty"), master)
    relay.in_fd = -1 if in_fd is None else in_fd
    relay.out_fd = out_fd
    relay.out_ok = 1

    def step(wake_fd: int) -> int:
        relay.wake_fd = wake_fd
        return lib.mr_tty_relay(relay, until_fd)

    _until_done(step)


def attach_client(sock: int, detach_keys: bytes, in_fd: int, out_fd: int) -> bool:
    """`minirun attach` on the connected socket ``sock`` (mr_attach_client): True once the
    detach keys were typed, False once the container's terminal is gone."""
    client = ffi.new("struct mr_attach_client *")
    keys = ffi.new("char[]", detach_keys)
    client.sock, client.in_fd, client.out_fd = sock, in_fd, out_fd
    client.keys, client.n_keys = keys, len(detach_keys)

    def step(wake_fd: int) -> int:
        client.wake_fd = wake_fd
        return lib.mr_attach_client(client)

    return _until_done(step) == 1


def attach_send_size(sock: int, size: tuple[int, int]) -> None:
    """Tell the shim the attached terminal's (rows, columns): an MR_ATTACH_RESIZE packet."""
    err = lib.mr_attach_send_size(sock, size[0], size[1])
    if err < 0:
        raise OSError(-err, os.strerror(-err))


def detach_filter(keys: bytes, held: int, data: bytes) -> tuple[bytes, int, bool]:
    """mr_detach_filter: (what to pass on, keys held back now, whether the sequence is complete)."""
    out = ffi.new("char[]", len(data) + len(keys) + 1)
    held_p = ffi.new("int *", held)
    detached = ffi.new("int *")
    n = lib.mr_detach_filter(keys, len(keys), held_p, data, len(data), out, detached)
    return ffi.buffer(out, n)[:], held_p[0], bool(detached[0])
