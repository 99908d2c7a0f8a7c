"""Run one container to completion: ``run(spec) -> Result``.

The parent side of the handshake documented at the top of csrc/spawn.c:

    check the spec against the host     (nothing created yet: bad input leaves nothing)
    claim /run/minirun/<id>             (lock held until we return)
    create the cgroups, apply limits
    clone the init (clone3 puts it straight into the cgroup v2 directory)
    (the child joins its v1 cgroups by itself)
    sync 1: release the child
    sync 2: read SETUP_FAILED | EXEC_FAILED | EXEC_OK
            forward SIGINT/SIGTERM/SIGHUP/SIGQUIT/SIGUSR1/SIGUSR2 to the init meanwhile
    sync 3: read EXITED (absent if the init itself was killed), reap the init
    read the OOM counter, kill and remove the cgroups, drop the state directory
"""

from __future__ import annotations

import os
import sys
import time

import _signal as signal  # not signal: its IntEnums import enum (~3.5 ms per start, see entry.py)

from . import cgroups, cleanup, security, state, sysctl
from .errors import CommandNotExecutable, CommandNotFound, HostError, SetupError, SpecError
from .devices import dev_mounts_needed
from .mounts import DEFAULT_PLAN, nodev_root_ops, overlay_op, user_mount_ops, with_devices
from .result import Result
from .spec import ContainerSpec, Limits, check_hostname, check_id

NS_DIR = "/proc/self/ns"
_NS_FILES = {"pid": "pid", "mount": "mnt", "uts": "uts", "ipc": "ipc", "network": "net", "cgroup": "cgroup",
             "user": "user"}
_KERNEL_OPTION = {"pid": "CONFIG_PID_NS", "mount": "namespaces", "uts": "CONFIG_UTS_NS", "ipc": "CONFIG_IPC_NS",
                  "network": "CONFIG_NET_NS", "cgroup": "CONFIG_CGROUPS", "user": "CONFIG_USER_NS"}
OPTIONAL_NAMESPACES = ("cgroup",)  # used where the kernel has it, skipped where not


def new_id() -> str:
    return os.urandom(6).hex()


def available_namespaces(wanted, ns_dir: str | None = None) -> tuple[str, ...]:
    """The namespaces to create: all of ``wanted``; a missing optional one is dropped."""
    ns_dir = ns_dir or NS_DIR
    kept = []
    for ns in wanted:
        if ns not in _NS_FILES:
            raise SpecError(f"unknown namespace type {ns!r}")
        if os.path.exists(os.path.join(ns_dir, _NS_FILES[ns])):
            kept.append(ns)
        elif ns not in OPTIONAL_NAMESPACES:
            raise HostError(f"this kernel has no {ns} namespace ({_KERNEL_OPTION[ns]} is not set)")
    return tuple(kept)


def prepare(spec: ContainerSpec, joined: dict[str, str] | None = None) -> tuple[ContainerSpec, tuple[str, ...]]:
    """Check ``spec`` against the host before anything is created; fill in defaults.

    ``joined``: namespaces entered by path (minirun-oci), type -> path."""
    if os.geteuid() != 0:
        _check_rootless(spec)
    if not spec.process.args:
        raise SpecError("no command given")
    if spec.id:
        spec.id = check_id(spec.id)
    else:
        spec.id, spec.generated_id = new_id(), True
    if spec.hostname:
        check_hostname(spec.hostname)
    rootfs = os.path.abspath(spec.rootfs)
    if not os.path.exists(rootfs):
        raise SpecError(f"rootfs {spec.rootfs}: no such directory")
    if not os.path.isdir(rootfs):
        raise SpecError(f"rootfs {spec.rootfs}: not a directory")
    spec.rootfs = os.path.realpath(rootfs)
    if not spec.process.cwd.startswith("/"):
        raise SpecError(f"working directory {spec.process.cwd!r} must be an absolute path")
    spec.limits.validate()
    if spec.network not in ("none", "bridge", "host"):
        raise SpecError(f"invalid network mode {spec.network!r}: use none, bridge or host")
    if spec.publish and spec.network != "bridge":
        raise SpecError("publishing ports (-p) needs --network bridge")
    if spec.network == "host":
        spec.namespaces = tuple(ns for ns in spec.namespaces if ns != "network")
    sysctl.check(spec.sysctl, spec.hostname, spec.domainname, spec.namespaces, joined or {})
    if not spec.hostname and "uts" in spec.namespaces:
        spec.hostname = spec.id  # only ever in a UTS namespace of its own: never the host's name
    return spec, available_namespaces(spec.namespaces)


def _check_rootless(spec: ContainerSpec) -> None:
    """A non-root user gets a rootless container: its own user namespace, where it is
    root, if the kernel allows unprivileged user namespaces; no cgroups, no bridge."""
    if not spec.uid_mappings:
        raise HostError("minirun must run as root (as another user, add --userns for a rootless container)")
    # Device rules need no root: without a devices cgroup, the user's own access to a node is the limit.
    if spec.limits != Limits(devices=spec.limits.devices):
        raise HostError("cgroup limits need root: a rootless container gets none (run as root for --memory, "
                        "--cpus, --pids-limit, --cpuset-cpus)")
    if spec.network != "none":
        raise HostError("a rootless container has no network but loopback: --network none only")
    if spec.uid_mappings != [(0, os.geteuid(), 1)] or spec.gid_mappings != [(0, os.getegid(), 1)]:
        raise HostError(f"without root, the only id map the kernel allows is your own: "
                        f"--userns-map 0:{os.geteuid()}:1")


def run(spec: ContainerSpec, *, stdio=(None, None, None), detached: bool = False, on_started=None,
        prepared: bool = False, terminal=None, handoff=None) -> Result:
    """Run the container in ``spec`` until COMMAND exits; always clean up.

    ``stdio``: file descriptors for COMMAND's stdin, stdout, stderr (None: minirun's own).
    ``detached``: keep the state directory (status, exit code, log) after the exit, until `rm`.
    ``on_started(id, pid)``: called once COMMAND is running.
    ``terminal``: a minirun.tty.Console: COMMAND gets a pty of the container's own devpts,
    whose master the console relays (the caller closes it).
    ``handoff(child, claim, terminal, proxy)``: called once COMMAND runs, in place of waiting for
    it here; it execs minirun-shim (lifecycle), whose finish step is ``finish()`` below.
    Raises a MiniRunError subclass for bad input or a failed setup, with nothing left behind.
    A cleanup step that fails after COMMAND ran does not lose its result: what it left is
    named in ``Result.leftovers`` (and the state of a detached run) for `gc` to remove.
    """
    t0 = time.perf_counter()
    namespaces = available_namespaces(spec.namespaces) if prepared else prepare(spec)[1]
    # No full gc here (`minirun gc` is a verb): a dead run under this name is reclaimed by
    # the claim, and a bridge run takes back only the addresses of dead runs.
    if spec.network == "bridge":
        cleanup.release_stale_addresses()
    info = {"rootfs": spec.rootfs, "args": spec.process.args, "hostname": spec.hostname,
            "generated_id": spec.generated_id}
    with state.claim(spec.id, info, keep=detached, reclaim=cleanup.remove) as claim:
        cgroup = cgroups.create_manager(spec.id, spec.limits) if os.geteuid() == 0 else cgroups.NoCgroup()
        cgroup.create()
        net = proxy = None
        leftovers: list[str] = []
        try:
            if spec.publish:  # bound before anything starts: a busy port fails the run early
                from .portproxy import PortProxy

                proxy = PortProxy(spec.publish)
            if spec.network == "bridge":
                from . import network

                net = network.reserve(spec.id)
            result = _run_in(cgroup, spec, namespaces, stdio, t0, claim, on_started, net, proxy, terminal,
                             handoff)
        finally:
            leftovers = _release(spec.id, cgroup, net and net.address, proxy)
        result.leftovers = leftovers
        if detached:
            claim.update(**_exit_record(result))
        return result


def finish(container_id: str, wait_status: int) -> Result:
    """The end of a detached run whose supervisor handed off to minirun-shim: run() from
    the point where the init is reaped, in the Python process the shim execs once the
    container is gone. The state lock came through both execs; ours until we exit."""
    t0 = time.perf_counter()
    st = state.read(container_id)
    cgroup = cgroups.existing(container_id) if os.geteuid() == 0 else cgroups.NoCgroup()
    result = _result(container_id, cgroup, wait_status, {}, t0)
    result.leftovers = _release(container_id, cgroup, (st.get("network") or {}).get("ip"), None)
    st.update(_exit_record(result))
    state.write(os.path.join(state.STATE_ROOT, container_id), st)
    return result


def _exit_record(result: Result) -> dict:
    return dict(status=state.EXITED, exit_code=result.exit_code, signal=result.signal,
                oom_killed=result.oom_killed, finished=time.time(), leftovers=result.leftovers)


def _release(container_id: str, cgroup, net_address: str | None, proxy) -> list[str]:
    """Undo what run() made around the container, every step even if one fails: a
    failure here must not hide COMMAND's result (or the error that got us here). What
    is left is returned, named; `minirun gc` removes it once nothing holds it."""
    steps = []
    if proxy:
        steps.append(("port proxy", proxy.close))
    if net_address:
        from . import network

        steps.append((f"network address {net_address}", lambda: network.detach_by_id(container_id)))
    steps.append(("cgroup", cgroup.destroy))
    left = []
    for what, step in steps:
        try:
            step()
        except Exception as err:  # noqa: BLE001 (pyroute2's errors are not OSErrors)
            left.append(f"{what} ({err})")
    return left


def _root_and_plans(spec: ContainerSpec, state_dir: str):
    """Where the container's root is on the host, and the mount plans around the pivot."""
    pre: tuple = ()
    root = spec.rootfs
    if spec.overlay:
        upper, work, root = (os.path.join(state_dir, d) for d in ("upper", "work", "root"))
        for d in (upper, work, root):
            os.mkdir(d, 0o755)
        pre = (overlay_op(spec.rootfs, upper, work),)
    user_pre, user_post = user_mount_ops(spec.mounts)
    pre += user_pre
    if not dev_mounts_needed(spec.devices, spec.limits.devices):
        pre += nodev_root_ops(spec.rootfs, spec.overlay)
    return root, pre, with_devices(DEFAULT_PLAN + user_post, spec.devices) + sysctl.ops(spec.sysctl)


def _run_in(cgroup, spec: ContainerSpec, namespaces, stdio, t0: float, claim, on_started, net, proxy,
            terminal, handoff) -> Result:
    from . import syscalls  # the C extension; imported here so `minirun --help` stays cheap

    proc = spec.process
    env = proc.full_env(spec.hostname)
    path = next((e[5:] for e in env if e.startswith("PATH=")), "")
    root, pre_plan, plan = _root_and_plans(spec, claim.path)
    sec = security.native_args(spec)  # caps, no_new_privs, seccomp; masked paths go last in the plan
    if "pid" in namespaces:  # minirun-init is PID 1
        sec = security.guard_init(sec)
    namespaces = security.with_userns(namespaces, spec)
    if "user" in namespaces:
        pre_plan, plan = security.userns_plans(pre_plan, plan, spec.overlay)
    stdio = tuple(fd(claim.path) if callable(fd) else fd for fd in stdio)  # e.g. a log in the state dir
    # The child joins the v1 hierarchies itself and clone3 starts it in the v2 one:
    # no cgroup.procs write on the way (see csrc/spawn.c for why that matters).
    tasks_fds = cgroup.self_placement_fds()
    unified_fd = cgroup.unified_dir_fd()
    console = {"console_fd": terminal.child_fd, "console_size": terminal.size} if terminal else {}
    try:
        child = syscalls.spawn(
            rootfs=root, hostname=spec.hostname, namespaces=namespaces, cgroup_fd=unified_fd,
            tasks_fds=tasks_fds, pre_plan=pre_plan, plan=plan + sec["path_ops"], readonly_root=spec.readonly_root,
            argv=proc.args, envp=env, path=path, cwd=proc.cwd, uid=proc.uid, gid=proc.gid, stdio=stdio,
            net=(net.address, net.prefixlen, net.gateway) if net else None, security=sec, **console)
    except syscalls.NativeError as err:
        raise SetupError(err.step, err.errno) from err
    finally:
        for fd in tasks_fds + ([unified_fd] if unified_fd is not None else []):
            os.close(fd)
        if terminal:
            terminal.spawned()
    timings = {"clone": time.perf_counter() - t0}
    status = None
    try:
        with forward_signals(child.pid):
            if net:  # the init waits at sync 1 while its eth0 is plugged in
                from . import network

                network.connect(net, child.pid)
                claim.update(network=net.to_dict())
                if proxy:
                    proxy.start(net.address)
            if spec.uid_mappings:  # the init waits at sync 1 until its user namespace maps ids
                security.write_id_maps(child.pid, spec.uid_mappings, spec.gid_mappings)
            if unified_fd is not None and not child.used_clone3:  # a kernel without clone3
                cgroup.add_pid(child.pid)
            child.release()
            first = child.read_report()
            if first is None:  # the init died before COMMAND started: killed, or a bug
                _, init_status = os.waitpid(child.pid, 0)
                if not os.WIFSIGNALED(init_status):
                    raise SetupError("container init", 0, "the container's init died during setup")
                status = init_status
                return _result(spec.id, cgroup, status, timings, t0)
            raise_for_failure(first, proc.args[0], spec.rootfs)
            if terminal:
                terminal.started(claim.path)
            timings["start"] = time.perf_counter() - t0
            claim.update(status=state.RUNNING, pid=child.pid, pid_start=state.start_time(child.pid),
                         started=time.time(), env=env, cwd=proc.cwd, cgroups=cgroup.paths,
                         security=security.state_record(sec))
            if on_started:
                on_started(spec.id, child.pid)
            if handoff:  # minirun-shim waits from here on: never returns (raises if its exec fails)
                handoff(child, claim, terminal, proxy)
            if terminal:  # relays until the init reports COMMAND's exit
                terminal.wait(child.report_fd)
            last = child.read_report()
            _, init_status = os.waitpid(child.pid, 0)
            status = last.status if last and last.kind == syscalls.EXITED else init_status
    finally:
        child.close()
        if status is None:  # failed or interrupted before the end: the init must not outlive us
            _kill_and_reap(child.pid)
    return _result(spec.id, cgroup, status, timings, t0)


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


def _result(container_id: str, cgroup, status: int, timings: dict, t0: float) -> Result:
    signum = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
    code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else 128 + signum
    oom = cgroup.oom_kill_count() > 0
    stats = {"cpu_usage_ns": cgroup.cpu_usage_ns()}
    timings["total"] = time.perf_counter() - t0
    return Result(id=container_id, exit_code=code, signal=signum, oom_killed=oom, timings=timings, stats=stats)


def _kill_and_reap(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


class forward_signals:
    """While the container runs, signals sent to minirun go to its init (which
    passes them to COMMAND) instead of killing minirun and orphaning it."""

    def __init__(self, pid: int):
        self.pid = pid
        self.saved: dict = {}

    def _forward(self, signum, _frame):
        try:
            os.kill(self.pid, signum)
        except ProcessLookupError:
            pass

    def __enter__(self):
        from .syscalls import PASSED_SIGNALS  # csrc/minirun.h: the set minirun-shim passes on too

        threading = sys.modules.get("threading")  # not imported: no other thread was started
        if threading is None or threading.current_thread() is threading.main_thread():
            for sig in PASSED_SIGNALS:
                self.saved[sig] = signal.signal(sig, self._forward)
        return self

    def __exit__(self, *exc):
        for sig, handler in self.saved.items():
            signal.signal(sig, handler)
