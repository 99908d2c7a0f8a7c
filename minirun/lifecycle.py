"""Detached containers and the verbs that manage them: ps, logs, stop, kill, rm, inspect.

A detached container (`run -d`) is run by a supervisor: a fork of the minirun
command that leaves the terminal's session and starts the container with its
output going to a pipe (or a pty, with -t). Once COMMAND runs, the supervisor execs
minirun-shim (csrc/shim.c, a static program of a few pages, as conmon is beside
runc), which reaps the init, writes the output to the container's log on disk
(in its data directory, state.data_dir, beside the root's writable layer; rotated:
minirun/logfiles.py), relays a terminal to `attach` and
published ports to the container;
when the container is gone the shim execs Python again for the cleanup
(container.finish), which records the exit status and OOM kill in state.json.
The state and the data directory outlive the command that started it; `rm` removes them.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time

from . import cleanup, state
from .errors import HostError, MiniRunError, SpecError


class NoSuchContainer(SpecError):
    pass


def resolve(name: str) -> str:
    """The container called ``name``, as docker finds it: a name (or a whole id) matches
    only itself; an id that minirun generated may be abbreviated to a prefix that no
    other generated id shares. A name is never matched by a prefix: `rm -f web`
    must not remove `webserver`."""
    from .spec import valid_id

    if not valid_id(name):
        raise NoSuchContainer(f"no such container: {name!r}")
    ids = state.list_ids()
    if name in ids:
        return name
    matches = [i for i in ids if i.startswith(name) and _generated_id(i)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise NoSuchContainer(f"no such container: {name}")
    raise SpecError(f"{name!r} is a prefix of several container ids ({', '.join(matches)}): give more of it")


def _generated_id(container_id: str) -> bool:
    try:
        return state.read(container_id).get("generated_id") is True
    except (OSError, ValueError):
        return False


def status(container_id: str) -> dict:
    """state.json, with the status corrected by the store's rule: a record nobody holds
    and whose init is gone is exited, whatever it says."""
    st = state.read(container_id)
    if st.get("status") != state.EXITED and not state.in_use(container_id):
        # its owner died; gc will record it, with the status minirun-shim left if it did
        st.update(cleanup.shim_exit_record(os.path.join(state.STATE_ROOT, container_id)) or {}, status=state.EXITED)
    return st


def run_detached(spec, auto_remove: bool = False, tty: bool = False, log_opts: tuple[int, int] | None = None) -> str:
    """Start ``spec`` under a supervisor and return once COMMAND runs (or failed to).
    ``log_opts``: (max size, 0 for none; max files) of its log (logfiles.parse_log_opts)."""
    from . import container
    from .syscalls import SHIM_PATH

    spec, _ = container.prepare(spec)
    if not os.access(SHIM_PATH, os.X_OK):
        raise HostError(f"{SHIM_PATH} is missing: reinstall minirun (its build links it)")
    state.check_trusted_dir(state.LOG_ROOT)  # before anything exists; make_data_dir checks it again
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the supervisor
        os.close(r)
        _supervise(spec, w, auto_remove, tty, log_opts)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        message = f.read1(4096) if hasattr(f, "read1") else f.read(4096)
    if message == b"ok":
        return spec.id
    os.waitpid(pid, os.WNOHANG)
    if not message:
        raise MiniRunError("the container's supervisor died before the container started")
    code, _, text = message.decode(errors="replace").partition(" ")
    err = MiniRunError(text)
    err.exit_code = int(code)
    raise err


def _supervise(spec, ready_fd: int, auto_remove: bool, tty: bool = False, log_opts=None) -> None:
    """The supervisor's whole life; never returns."""
    from . import container
    from .logfiles import DEFAULT_MAX_FILE, DEFAULT_MAX_SIZE

    code = 0
    try:
        os.setsid()
        os.chdir("/")  # hold no directory of the caller's busy for the container's life
        _keep_no_inherited_fds()  # the caller's (a flock, say) would live on in the shim
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):  # let go of the terminal and of the caller's pipes
            os.dup2(devnull, fd)
        out_r, out_w = os.pipe()  # COMMAND's stdout and stderr, to the shim, which writes the log

        def started(_id, _pid):
            os.write(ready_fd, b"ok")

        def hand_off(child, claim, data_dir, terminal, proxy):
            os.close(out_w)  # the container holds the write ends now: EOF once it is gone
            _exec_shim(child, claim, data_dir, -1 if terminal else out_r, log_opts or (DEFAULT_MAX_SIZE,
                       DEFAULT_MAX_FILE), terminal, proxy, auto_remove)

        if tty:  # the pty's master goes to the shim: it relays to the log and `minirun attach`
            from .tty import Supervised

            with Supervised() as terminal:
                container.run(spec, stdio=(devnull, devnull, devnull), detached=True, on_started=started,
                              prepared=True, terminal=terminal, handoff=hand_off)
        else:
            container.run(spec, stdio=(devnull, out_w, out_w), detached=True, on_started=started,
                          prepared=True, handoff=hand_off)
    except MiniRunError as err:
        os.write(ready_fd, f"{err.exit_code} {err}".encode())
        code = err.exit_code
    except BaseException as err:  # nothing of this may reach the caller's terminal
        os.write(ready_fd, f"125 supervisor failed: {err!r}".encode())
        code = 125
    finally:
        os._exit(code)


def _exec_shim(child, claim, data_dir: str, out_fd: int, log_opts: tuple[int, int], terminal, proxy,
               auto_remove: bool) -> None:
    """Become minirun-shim (csrc/shim.c) for the rest of the container's life; raises
    OSError if the exec fails. Published ports go along: the shim relays their
    connections with the relay the proxy thread ran (csrc/relay.c; their listening
    sockets and backlog carry over)."""
    from .syscalls import SHIM_PATH

    published = proxy.hand_over() if proxy else []
    master = terminal.master if terminal else -1
    listener = terminal.listener.fileno() if terminal else -1
    state_dir_fd = os.open(claim.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)  # for the shim's exit record
    log_dir_fd = os.open(data_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)  # it rotates there
    for fd in (child.report_fd, claim.lock_fd, log_dir_fd, out_fd, master, listener, state_dir_fd,
               *(fd for fd, _, _ in published)):
        if fd >= 0:
            os.set_inheritable(fd, True)
    options = ["-l", f"{log_opts[0]}:{log_opts[1]}", "-s", str(state_dir_fd)]
    options += ["-o", str(out_fd)] if out_fd >= 0 else []
    options += [arg for fd, ip, port in published for arg in ("-p", f"{fd}:{ip}:{port}")]
    # -I: no PYTHON* variables and no script directory on sys.path (site still adds the venv's).
    # The package goes first by the path this process imported it from, which PYTHONPATH
    # or the native front (csrc/front.c) may have given (a .pth file's path can differ: the v2 test lane's guest).
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    finish = [sys.executable, "-I", "-c",
              "import sys; sys.path.insert(0, sys.argv.pop(1)); from minirun.lifecycle import finish; "
              "finish(sys.argv[1:])", package_root, claim.id, "rm" if auto_remove else "keep"]
    os.execv(SHIM_PATH, [SHIM_PATH, str(child.report_fd), str(child.pid), str(log_dir_fd), str(master),
                         str(listener), *options, "--", *finish])


def finish(argv: list[str]) -> None:
    """minirun-shim's last step, a detached container's cleanup: ``ID rm|keep WAIT_STATUS``."""
    from . import container

    container_id, removal, wait_status = argv
    try:
        container.finish(container_id, int(wait_status))
        if removal == "rm":
            cleanup.remove(container_id)
    except BaseException as err:  # stderr is /dev/null: say it where `minirun logs` shows it
        log_path = os.path.join(state.data_dir(container_id), "log")
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC  # as the shim opens it
        with contextlib.suppress(OSError), open(os.open(log_path, flags, 0o640), "w") as log:
            log.write(f"minirun: cleanup after the exit failed ({err!r}); `minirun gc` retries it\n")
    finally:
        os._exit(0)


def _keep_no_inherited_fds() -> None:
    """Make every fd above stdio close-on-exec: the shim gets only what _exec_shim passes."""
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 2:
            with contextlib.suppress(OSError):
                os.set_inheritable(fd, False)


def list_containers(all_: bool = False) -> list[dict]:
    out = []
    for container_id in state.list_ids():
        try:
            st = status(container_id)
        except (OSError, ValueError):
            continue
        if all_ or st.get("status") != state.EXITED:
            out.append(st)
    return out


def _container(container_id: str, st: dict):
    """The core's Container for a minirun container's record (its verbs: kill, exec)."""
    from .core import Container

    return Container(container_id, os.path.join(state.STATE_ROOT, container_id), st)


def kill(name: str, sig: int = signal.SIGKILL) -> str:
    container_id = resolve(name)
    st = status(container_id)
    if st["status"] != state.RUNNING or not _container(container_id, st).kill(sig):
        raise SpecError(f"container {container_id} is not running")
    return container_id


def wait_exited(container_id: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not state.in_use(container_id):
            return True
        time.sleep(0.02)
    return not state.in_use(container_id)


def _status_after_start(container_id: str, timeout: float = 10) -> dict:
    """status() once a start in flight is over: a start records its init only once COMMAND
    runs ("creating" till then), so a signal sent before would reach nobody, and the
    container start after a `stop` or `rm -f` that said it was done."""
    deadline = time.monotonic() + timeout
    st = status(container_id)
    while st.get("status") == state.CREATING and time.monotonic() < deadline:
        time.sleep(0.02)
        st = status(container_id)
    return st


def stop(name: str, timeout: float = 10) -> str:
    """SIGTERM (the init forwards it to COMMAND), then SIGKILL after ``timeout`` seconds."""
    container_id = resolve(name)
    st = _status_after_start(container_id)
    ctr = _container(container_id, st)
    if st["status"] != state.RUNNING or not ctr.kill(signal.SIGTERM):
        return container_id  # its init is gone already: its owner records the exit
    if not wait_exited(container_id, timeout):
        ctr.kill(signal.SIGKILL)  # PID 1 dies, and the kernel kills the namespace
        wait_exited(container_id, 10)
    return container_id


def remove(name: str, force: bool = False) -> str:
    container_id = resolve(name)
    if state.in_use(container_id):
        if not force:
            raise SpecError(f"container {container_id} is running: stop it first or use rm -f")
        _container(container_id, _status_after_start(container_id)).kill(signal.SIGKILL)
        if not wait_exited(container_id, 10):
            raise MiniRunError(f"container {container_id} did not exit after SIGKILL")
    cleanup.remove(container_id)
    return container_id


def attach(name: str, detach_keys: str | None = None) -> int:
    """`minirun attach`: connect the terminal to a `run -d -t` container's pty until the
    detach keys (0) or its exit (its exit code)."""
    from .tty import ATTACH_SOCKET, DEFAULT_DETACH_KEYS, attach as attach_terminal, parse_detach_keys

    keys = parse_detach_keys(detach_keys or DEFAULT_DETACH_KEYS)
    container_id = resolve(name)
    st = status(container_id)
    if st["status"] != state.RUNNING:
        raise SpecError(f"container {container_id} is not running")
    path = os.path.join(state.STATE_ROOT, container_id, ATTACH_SOCKET)
    if not os.path.exists(path):
        raise SpecError(f"container {container_id} has no terminal to attach to (start it with run -d -t)")
    if attach_terminal(path, keys):
        return 0
    wait_exited(container_id, 10)
    return status(container_id).get("exit_code") or 0


def log_dir(name: str) -> tuple[str, str]:
    """The container's id and the directory of its log (its data directory: logfiles reads it).
    A detached container whose start is in flight has no log yet (the shim makes it once
    COMMAND runs, after `run -d` returned even): its record says it is detached, and it has
    none to show yet."""
    from .logfiles import exists

    container_id = resolve(name)
    directory = state.checked_data_dir(container_id)
    ours = exists(directory) and state.owns_data_dir(container_id)  # not another state root's namesake's
    if not ours and not _detached(container_id):
        raise SpecError(f"container {container_id} has no log (only detached containers have one)")
    return container_id, directory


def _detached(container_id: str) -> bool:
    try:
        return state.read(container_id).get("detached") is True
    except (OSError, ValueError):
        return False


def exec_in(name: str, args: list[str], env: list[str] = (), cwd: str | None = None, uid: int = 0,
            gid: int = 0, interactive: bool = False, tty: bool = False) -> int:
    """Run ``args`` inside a running container, in all its namespaces and cgroups; return its exit code.

    The new process becomes COMMAND the way `run`'s does (csrc/become.c, mr_become_command):
    it keeps none of the caller's open files but stdio, and stays non-dumpable until execve.
    ``tty``: with a pty of the container's devpts, relayed to minirun's terminal (raw with ``interactive``).
    """
    if tty:
        from .tty import Foreground, require_terminal

        require_terminal()
        with Foreground(interactive) as terminal:
            return _exec_in(name, args, env, cwd, uid, gid, terminal)
    return _exec_in(name, args, env, cwd, uid, gid, None)


def _exec_in(name: str, args: list[str], env, cwd, uid: int, gid: int, terminal) -> int:
    from .core import forward_signals
    from .result import exit_code
    from .security import from_state_record

    container_id = resolve(name)
    st = status(container_id)
    if st["status"] != state.RUNNING:
        raise SpecError(f"container {container_id} is not running")
    merged = dict(e.partition("=")[::2] for e in st.get("env", []))
    if terminal:
        from .spec import terminal_type

        merged["TERM"] = terminal_type()
    merged.update(e.partition("=")[::2] for e in env)
    envp = [f"{k}={v}" for k, v in merged.items()]
    console = {"console_fd": terminal.child_fd, "console_size": terminal.size} if terminal else {}
    try:
        child = _container(container_id, st).exec(args, envp=envp, path=merged.get("PATH", ""),
                                                   cwd=cwd or st.get("cwd", "/"), uid=uid, gid=gid,
                                                   security=from_state_record(st.get("security"), uid),
                                                   **console)  # the security: the same restrictions as COMMAND's
    finally:
        if terminal:
            terminal.spawned()
    with forward_signals(child):
        if terminal:
            try:
                terminal.started("")
                pidfd = os.pidfd_open(child)  # readable once COMMAND exits: ends the relay
                try:
                    terminal.wait(pidfd)
                finally:
                    os.close(pidfd)
            except BaseException:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child, signal.SIGKILL)
                os.waitpid(child, 0)
                raise
        _, wstatus = os.waitpid(child, 0)
    return exit_code(wstatus)
