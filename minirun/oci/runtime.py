"""The verbs of minirun-oci: a thin front over minirun's one core (core.Container).

`create` builds a ContainerSpec from config.json (bundle.py), checks it with
container.prepare like `minirun run` does, creates the cgroup with the same drivers,
and hands it to Container.create with an exec fifo, which asks the C child for the OCI
process model: PID 1 is process.args, exec'd once `start` opens the fifo. The child is
cloned without PDEATHSIG, so it outlives `create`; the caller (conmon,
containerd-shim: subreapers) inherits it and reaps it. What is minirun-oci's own is
here: config.json, runc's words, the hooks, the pid file, and state.json's fields
(oci/store.py), which the C verbs read too.

    minirun-oci create                      C child (csrc/spawn.c, init.c)
    ------------------                      ------------------------------
    claim <root>/<id>; cgroup
    Container.create(exec_fifo=True):
      mkfifo exec.fifo; clone          ->   cgroups, namespaces, mounts, pivot_root
      rlimits, oom_score_adj; release  ->   ...
      read CREATED                     <-   report CREATED; open(exec.fifo, O_WRONLY) blocks
    state.json, hooks, pid file; exit
    minirun-oci start
    Container.start: open(exec.fifo), read  <->  write "0"; caps, setuid, seccomp; execve(args)
      unlink exec.fifo; poststart hooks
"""

from __future__ import annotations

import os
import time


from ..core import Container, forward_signals
from ..errors import MiniRunError, SpecError
from ..result import exit_code
from . import log, store

_MAX_PRESERVED_FDS = 1 << 20  # the kernel's default fs.nr_open: no fd lies above it


def parse_signal(text: str) -> int:
    """``KILL``, ``SIGKILL``, ``9`` -> 9 (engines send either)."""
    from .. import ociverbs

    sig = ociverbs.parse_signal(text)
    if sig is None:
        raise SpecError(f"unknown signal {str(text).strip().upper()!r}")
    return sig


def _rfc3339(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e9):09d}Z"


def _write_pid_file(path: str, pid: int) -> None:
    """runc's createPidFile: a new file beside the target, then a rename over it, so a
    reader never sees half a pid. The temp file is created (O_EXCL, O_NOFOLLOW) under a
    name nobody can plant a link at in advance; rename replaces a link at ``path``
    itself, never what it points to."""
    path = os.path.abspath(path)
    tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.{os.urandom(6).hex()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    try:
        with open(fd, "w") as f:
            f.write(str(pid))
        os.rename(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _check_console(terminal: bool, console_socket: str | None) -> None:
    """runc's rules: a terminal's master goes to the caller over --console-socket."""
    if terminal and not console_socket:
        raise SpecError("process.terminal is true: a terminal needs --console-socket (its master is sent there)")
    if console_socket and not terminal:
        raise SpecError("--console-socket needs process.terminal true")


def _connect_console(console_socket: str | None, fds: list[int]) -> int | None:
    """The engine's console socket, connected; the child sends the pty master over it (csrc/console.c)."""
    if not console_socket:
        return None
    from ..tty import connect_console_socket

    fds.append(connect_console_socket(console_socket))
    return fds[-1]


def create(root: str, container_id: str, bundle: str, *, pid_file: str | None = None,
           console_socket: str | None = None, preserve_fds: int = 0, foreground: bool = False) -> Container:
    """The container of config.json in ``bundle``, its process waiting on the exec fifo.
    ``foreground``: for `run`, which waits for the process: it stays our child, and the
    returned Container keeps its report socket."""
    from .. import cgroups, container, security, syscalls, sysctl
    from ..spec import DEFAULT_PATH
    from ..state import rmtree
    from . import bundle as oci_bundle

    state_dir = store.path(root, container_id)
    if os.path.lexists(state_dir):
        raise SpecError(f"container {container_id!r} already exists")
    config = oci_bundle.load(bundle)
    spec, extras = oci_bundle.to_spec(config, bundle, container_id)
    _check_console(extras.terminal, console_socket)
    _check_preserve_fds(preserve_fds)
    for warning in extras.warnings:
        log.warning(warning)
    hostname = spec.hostname
    # Opened once: the sysctl rules judge, and the child joins, the very same namespaces.
    join = oci_bundle.open_namespaces(extras.join)
    fds: list[int] = list(join.values())
    try:
        spec, namespaces = container.prepare(spec, joined={kind: f"/proc/self/fd/{fd}" for kind, fd in join.items()})
        spec.hostname = hostname  # OCI: no hostname means keep the one the UTS namespace starts with
        namespaces = security.with_userns(namespaces, spec)

        os.makedirs(root, 0o700, exist_ok=True)  # runc's modes: root 0700, a container's directory 0711
        # Recorded before the cgroup exists: a create killed half-way leaves what delete
        # (and `minirun gc`) needs to remove it. pid 0 reads as stopped.
        claim = store.store(root).claim(container_id, {
            "id": container_id, "pid": 0, "creating": True, "cgroup": extras.cgroups_path,
            "bundle": os.path.realpath(bundle), "rootfs": spec.rootfs, "created": _rfc3339(time.time())}, keep=True)
        claim.take()
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
    ctr = cgroup = None
    try:
        cgroup = cgroups.create_manager(spec.id, spec.limits, relpath=extras.cgroups_path)
        cgroup.create()
        for note in cgroup.notes:
            log.warning(note)
        join_fds, pid_ns_fd = [], None
        for kind, fd in join.items():
            if kind == "pid":  # only children enter a pid namespace: see core._pid_namespace_for
                pid_ns_fd = fd
            else:  # the child joins them itself (a mount namespace before the rootfs is set up in it)
                join_fds.append(fd)
        sec = security.native_args(spec)
        sec["inheritable"] = extras.inheritable
        env = extras.env
        path = next((e[5:] for e in env if e.startswith("PATH=")), None) or DEFAULT_PATH
        proc = spec.process
        runtime_hooks = [kind for kind in ("prestart", "createRuntime") if extras.hooks.get(kind)]
        oci = {"detached": not foreground, "preserve_fds": preserve_fds,
               "join_fds": join_fds, "domainname": spec.domainname or None, "groups": extras.groups,
               "umask": extras.umask, "caps": extras.caps, "runtime_hooks": bool(runtime_hooks)}
        if extras.hooks.get("createContainer") or extras.hooks.get("startContainer"):
            import json

            # The state the process hands its hooks (csrc/hooks.c adds status and pid).
            state = {"ociVersion": store.OCI_VERSION, "id": container_id, "bundle": os.path.realpath(bundle),
                     "annotations": extras.annotations}
            oci.update(create_hooks=extras.hooks.get("createContainer"), start_hooks=extras.hooks.get("startContainer"),
                       hook_state=json.dumps(state, separators=(",", ":"))[:-1])
        pre_plan = extras.pre_plan
        if spec.uid_mappings:  # runc: bind sources are reached as the runtime, not as the namespace's root
            pre_plan = syscalls.bind_sources_as_trees(pre_plan, fds)
        launch = dict(rootfs=spec.rootfs, hostname=spec.hostname or None, namespaces=namespaces, pre_plan=pre_plan,
                      plan=sysctl.ops(spec.sysctl) + extras.plan + sec["path_ops"],
                      readonly_root=spec.readonly_root, argv=proc.args, envp=env, path=path, cwd=proc.cwd,
                      uid=proc.uid, gid=proc.gid, security=sec, oci=oci,
                      console_fd=_connect_console(console_socket, fds), console_size=extras.console_size)
        st = {}

        def record(ctr):  # what later verbs need, and the C tools (state, start, kill, delete) read
            st.update({"id": container_id, "pid": ctr.record["pid"], "pid_start": ctr.record["pid_start"],
                       "bundle": os.path.realpath(bundle), "rootfs": spec.rootfs,
                       "created": st.get("created") or _rfc3339(time.time()),
                       "owner": "root" if os.geteuid() == 0 else str(os.geteuid()),
                       "annotations": extras.annotations, "cgroup": extras.cgroups_path, "cgroups": cgroup.paths,
                       "freeze_file": cgroup.freeze_file,
                       "hooks": {k: v for k, v in extras.hooks.items() if k in ("poststart", "poststop")},
                       "start_waits": bool(extras.hooks.get("startContainer")),
                       "command": proc.args[0],
                       "exec": {"env": env, "cwd": proc.cwd, "security": security.state_record(sec),
                                "capabilities": (config.get("process") or {}).get("capabilities"),
                                "oom_score_adj": extras.oom_score_adj}})
            return st

        def on_hooks(ctr):
            # runc's order: the mounts are made; createContainer and pivot_root wait for these
            from . import hooks  # imported only then: subprocess costs ~2 ms

            _write_locked(root, container_id, record(ctr))
            for kind in runtime_hooks:
                hooks.run(kind, extras.hooks[kind], dict(store.oci_state(root, st), status="creating"), fatal=True)

        fifo_owner = None
        if spec.uid_mappings:  # the process opens the fifo as its user, a mapped id on the host
            fifo_owner = (_host_id(spec.uid_mappings, proc.uid), _host_id(spec.gid_mappings, proc.gid))
        claim.release()  # before the clone: the process keeps our fds until its execve at `start`
        ctr = Container.create(container_id, state_dir, cgroup, command=proc.args[0], rootfs=spec.rootfs,
                               spawn_args=launch, exec_fifo=True, fifo_owner=fifo_owner,
                               id_maps=(spec.uid_mappings, spec.gid_mappings), pid_namespace_fd=pid_ns_fd,
                               before_release=lambda pid: _set_process_limits(pid, extras),
                               on_hooks=on_hooks if runtime_hooks else None, command_missing=_command_missing)
        ctr.record = record(ctr)
        _write_locked(root, container_id, st)
        if pid_file:
            _write_pid_file(pid_file, ctr.record["pid"])
        return ctr
    except BaseException:
        if ctr is not None:
            ctr.kill_and_reap()
        if cgroup is not None:
            try:
                cgroup.destroy()
            except MiniRunError as err:
                log.warning(str(err))
        rmtree(state_dir)
        raise
    finally:
        claim.release()
        for fd in fds:
            os.close(fd)
        if ctr is not None and not foreground:
            ctr.close()


def _write_locked(root: str, container_id: str, st: dict) -> None:
    """The state, written under the directory's lock: taken only now, after the clone,
    since the child (which keeps our fds until its execve) would otherwise hold it."""
    with store.locked(root, container_id):
        store.write(store.path(root, container_id), st)


def _host_id(mappings, inside: int) -> int:
    for first, host, size in mappings:
        if first <= inside < first + size:
            return host + inside - first
    raise SpecError(f"process.user: id {inside} is not mapped by linux.uidMappings/gidMappings")


def _command_missing(command: str, err: int) -> MiniRunError:
    """runc's words at create (Go's exec.LookPath): docker maps the ones naming the command
    with "executable file not found" or "no such file or directory" to exit 127, and
    "permission denied" to 126."""
    from ..errors import CommandNotExecutable, CommandNotFound

    if err == 13:  # EACCES
        return CommandNotExecutable(f'exec: "{command}": permission denied')
    if "/" in command:
        reason = os.strerror(err)
        return CommandNotFound(f'exec: "{command}": stat {command}: {reason[0].lower()}{reason[1:]}')
    return CommandNotFound(f'exec: "{command}": executable file not found in $PATH')


def _set_process_limits(pid: int, extras) -> None:
    """rlimits and oom_score_adj of ``pid``: create's child while it waits at sync 1, or
    minirun-oci itself right before exec's clone."""
    if extras.rlimits:
        import resource

        from .bundle import RLIMITS

        for res, soft, hard in extras.rlimits:
            try:
                resource.prlimit(pid, res, (soft, hard))
            except (OSError, ValueError) as err:
                raise SpecError(f"process.rlimits RLIMIT_{RLIMITS[res]} {soft}:{hard}: "
                                f"{getattr(err, 'strerror', None) or err} (this host's hard limit may be lower)"
                                ) from None
    if extras.oom_score_adj is not None:
        try:
            with open(f"/proc/{pid}/oom_score_adj", "w") as f:
                f.write(str(extras.oom_score_adj))
        except OSError as err:
            raise SpecError(f"process.oomScoreAdj {extras.oom_score_adj}: {err.strerror}") from None


def _own_limits(extras) -> tuple:
    """minirun-oci's own values of the limits ``extras`` sets, to put back after an exec."""
    rlimits, oom_score_adj = [], None
    if extras.rlimits:
        import resource

        rlimits = [(res, resource.getrlimit(res)) for res, _, _ in extras.rlimits]
    if extras.oom_score_adj is not None:
        with open("/proc/self/oom_score_adj") as f:
            oom_score_adj = f.read().strip()
    return rlimits, oom_score_adj


def _restore_own_limits(own: tuple) -> None:
    """Best effort: a hard limit lowered for the exec stays lower without CAP_SYS_RESOURCE
    (harmless: minirun-oci only waits for the process from then on)."""
    rlimits, oom_score_adj = own
    if rlimits:
        import resource

        for res, values in rlimits:
            try:
                resource.setrlimit(res, values)
            except (OSError, ValueError):
                pass
    if oom_score_adj is not None:
        try:
            with open("/proc/self/oom_score_adj", "w") as f:
                f.write(oom_score_adj)
        except OSError:
            pass


def start(root: str, container_id: str) -> None:
    """Release the created process, then run the poststart hooks (csrc/ociverbs.c, as the
    native minirun-oci does)."""
    from .. import ociverbs

    ociverbs.start(root, container_id)


def _poststart(root: str, st: dict) -> None:
    hooks = st.get("hooks", {}).get("poststart")
    if hooks:
        from . import hooks as oci_hooks

        oci_hooks.run("poststart", hooks, store.oci_state(root, st), fatal=False)


def kill(root: str, container_id: str, sig: int, all_: bool = False) -> None:
    from .. import ociverbs  # csrc/ociverbs.c, as the native minirun-oci does

    ociverbs.kill(root, container_id, sig, all_)


def _cgroup(st: dict):
    from .. import cgroups

    relpath = st.get("cgroup")
    if not relpath or relpath in (".", "/"):
        raise SpecError(f"container {st['id']!r}: no cgroup recorded")
    return cgroups.existing(st["id"], relpath=relpath, paths=st.get("cgroups"))


def delete(root: str, container_id: str, force: bool = False) -> None:
    from .. import ociverbs  # csrc/ociverbs.c, as the native minirun-oci does

    ociverbs.delete(root, container_id, force)


def _freeze(st: dict, frozen: bool) -> None:
    _cgroup(st).freeze(frozen)


def pause(root: str, container_id: str) -> None:
    with store.locked(root, container_id):
        st = store.read(root, container_id)
        if store.status(root, st) != store.RUNNING:
            raise SpecError(f"container {container_id!r} is not running")
        _freeze(st, True)


def resume(root: str, container_id: str) -> None:
    with store.locked(root, container_id):
        st = store.read(root, container_id)
        if store.status(root, st) != store.PAUSED:
            raise SpecError(f"container {container_id!r} is not paused")
        _freeze(st, False)


def update(root: str, container_id: str, resources: dict) -> None:
    from . import bundle as oci_bundle

    st = store.read(root, container_id)
    extras = oci_bundle.Extras()
    limits = oci_bundle.parse_resources(resources, extras)
    limits.validate(oci_bundle.LIMIT_NAMES)
    for warning in extras.warnings:
        log.warning(warning)
    cgroup = _cgroup(st)
    cgroup.update(limits)
    for note in cgroup.notes:
        log.warning(note)


def pids(root: str, container_id: str) -> list[int]:
    from .. import ociverbs

    return ociverbs.pids(root, container_id)


def run(root: str, container_id: str, bundle: str, *, pid_file=None, console_socket=None, preserve_fds=0,
        detach=False) -> int:
    """create + start; in the foreground, wait and return the exit status, then delete."""
    ctr = create(root, container_id, bundle, pid_file=pid_file, console_socket=console_socket,
                 preserve_fds=preserve_fds, foreground=not detach)
    if detach:
        start(root, container_id)
        return 0
    try:
        with forward_signals(ctr.record["pid"]):
            ctr.start(ctr.record.get("start_waits", False))
            _poststart(root, ctr.record)
            return exit_code(ctr.wait())
    finally:
        ctr.kill_and_reap()
        delete(root, container_id, force=True)


def _check_preserve_fds(count: int) -> None:
    if not 0 <= count <= _MAX_PRESERVED_FDS:
        raise SpecError(f"--preserve-fds: must be 0 to {_MAX_PRESERVED_FDS}, not {count}")


def exec_process(root: str, container_id: str, process: dict, *, detach=False, pid_file=None,
                 preserve_fds=0, console_socket: str | None = None) -> int:
    """Start ``process`` (an OCI process object) in the running container."""
    from ..security import from_state_record
    from ..spec import DEFAULT_PATH
    from . import bundle as oci_bundle

    st = store.read(root, container_id)
    current = store.status(root, st)
    if current not in (store.RUNNING, store.CREATED):
        raise SpecError(f"cannot exec in container {container_id!r}: it is {current}")
    _check_console(bool(process.get("terminal")), console_socket)
    _check_preserve_fds(preserve_fds)
    if "capabilities" not in process and st["exec"].get("capabilities") is not None:
        process = dict(process, capabilities=st["exec"]["capabilities"])  # runc: the container's own sets
    extras = oci_bundle.Extras()
    proc = oci_bundle.parse_process(process, extras)
    for warning in extras.warnings:
        log.warning(warning)
    sec = from_state_record(st["exec"]["security"], proc.uid)
    own_caps = process.get("capabilities") is not None
    if own_caps:
        from ..security import cap_mask

        sec["caps"] = cap_mask(proc.capabilities)
        sec["inheritable"] = extras.inheritable
    if "noNewPrivileges" in process:
        sec["no_new_privs"] = proc.no_new_privileges
    env = extras.env or st["exec"]["env"]
    path = next((e[5:] for e in env if e.startswith("PATH=")), None) or DEFAULT_PATH
    fds: list[int] = []
    # runc gives every exec'd process the container's oomScoreAdj, whatever the process's says
    extras.oom_score_adj = st["exec"].get("oom_score_adj")
    # rlimits and oom_score_adj must be in place before the process's execve (runc: prlimit and
    # nsexec while its child waits), or a process it forks at once misses them: set on
    # minirun-oci itself around the clone, so the new process inherits them.
    own = _own_limits(extras)
    try:
        try:
            _set_process_limits(os.getpid(), extras)
        except SpecError as err:
            log.warning(str(err))
        ctr = Container(container_id, store.path(root, container_id), st)
        child = ctr.exec(proc.args, envp=env, path=path, cwd=proc.cwd, uid=proc.uid, gid=proc.gid,
                         security=sec, console_fd=_connect_console(console_socket, fds),
                         console_size=extras.console_size,
                         process_extras={"groups": extras.groups, "umask": extras.umask,
                                         "caps": extras.caps if own_caps else None,
                                         "cwd_must_exist": True, "preserve_fds": preserve_fds})
    finally:
        for fd in fds:
            os.close(fd)
        _restore_own_limits(own)
    if pid_file:
        _write_pid_file(pid_file, child)
    if detach:
        return 0
    with forward_signals(child):
        _, status = os.waitpid(child, 0)
    return exit_code(status)
