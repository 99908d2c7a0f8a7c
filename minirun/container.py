"""`minirun run`'s front end: run one container to completion, ``run(spec) -> Result``.

What `minirun run` adds around the core (core.Container, which both front ends drive):

    check the spec against the host     (nothing created yet: bad input leaves nothing)
    claim /run/minirun/<id>             (lock held until we return); a detached run's data
                                        directory on disk (log, writable layer: state.data_dir)
    create the cgroups, apply limits; reserve the bridge address, bind published ports
    Container.create, no exec fifo      (clone, sync 1, sync 2: COMMAND runs; the network
                                         is plugged in while the init waits at sync 1;
                                         SIGINT/TERM/HUP/QUIT/USR1/USR2 go to the init from then on)
    Container.wait                      (sync 3: EXITED, the init reaped), or the detached
                                         supervisor's hand-off to minirun-shim (lifecycle.py)
    read the OOM counter, kill and remove the cgroups, drop the state directory
"""

from __future__ import annotations

import errno
import os
import time

from . import cgroups, security, state
from .core import Container, forward_signals
from .errors import HostError, SetupError, SpecError
from .devices import dev_mounts_needed
from .mounts import DEFAULT_PLAN, nodev_root_ops, overlay_op, scratch_upper_ops, user_mount_ops, with_devices
from .result import Result, exit_code
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
    """The namespaces to create: all of ``wanted``; a missing optional one is dropped.
    What the kernel has is looked up once per process (a program running many containers)."""
    ns_dir = ns_dir or NS_DIR
    key = (tuple(wanted), ns_dir)
    if key not in _AVAILABLE:
        _AVAILABLE[key] = _available(wanted, ns_dir)
    return _AVAILABLE[key]


_AVAILABLE: dict[tuple, tuple[str, ...]] = {}


def _available(wanted, ns_dir: str) -> tuple[str, ...]:
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
    if not os.path.isdir(rootfs):
        raise SpecError(f"rootfs {spec.rootfs}: {'not a directory' if os.path.exists(rootfs) else 'no such directory'}")
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
    if spec.sysctl or spec.hostname or spec.domainname:  # else nothing to check (nor to import)
        from . import sysctl

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
    ``detached``: keep the state directory (status, exit code) after the exit, until `rm`, and a
    data directory on disk (state.make_data_dir: the log, the root's writable layer) with it.
    ``on_started(id, pid)``: called once COMMAND is running.
    ``terminal``: a minirun.tty.Console: COMMAND gets a pty of the container's own devpts,
    whose master the console relays (the caller closes it).
    ``handoff(child, claim, data_dir, terminal, proxy)``: called once COMMAND runs, in place of waiting
    for it here; it execs minirun-shim (lifecycle), whose finish step is ``finish()`` below.
    Raises a MiniRunError subclass for bad input or a failed setup, with nothing left behind.
    A cleanup step that fails after COMMAND ran does not lose its result: what it left is
    named in ``Result.leftovers`` (and the state of a detached run) for `gc` to remove.
    """
    t0 = time.perf_counter()
    namespaces = available_namespaces(spec.namespaces) if prepared else prepare(spec)[1]
    # No full gc here (`minirun gc` is a verb): a dead run under this name is reclaimed by
    # the claim, and a bridge run takes back only the addresses of dead runs.
    if spec.network == "bridge":
        from .cleanup import release_stale_addresses

        release_stale_addresses()
    info = {"rootfs": spec.rootfs, "args": spec.process.args, "hostname": spec.hostname,
            "generated_id": spec.generated_id}
    with state.claim(spec.id, info, keep=detached, reclaim=_reclaim) as claim:
        data = _make_data_dir(spec.id, claim) if detached else None  # the name is ours now; `rm` removes both
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
                             handoff, data)
        finally:
            leftovers = _release(spec.id, cgroup, net and net.address, proxy)
        result.leftovers = leftovers
        if detached:
            claim.update(**_exit_record(result))
        return result


def _make_data_dir(container_id: str, claim) -> str:
    """state.make_data_dir; refused (another state root's live namesake), the claim is dropped,
    as for a name in use here: a record kept as exited (125) would be one `rm` away from
    destroying the cgroups of that name, the namesake's when the roots share the cgroup parent."""
    try:
        return state.make_data_dir(container_id)
    except SpecError:
        claim.keep = False
        raise


def _reclaim(container_id: str, root: str) -> None:
    """What a dead run left under the name, its cgroups too (cleanup is imported only then)."""
    from .cleanup import remove

    remove(container_id, root)


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


def _root_and_plans(spec: ContainerSpec, state_dir: str, data: str | None):
    """Where the container's root is on the host, and the mount plans around the pivot.
    ``data``: a detached container's data directory, on disk, where the overlay's upper and
    work outlive the run (not in the state directory: the host's /run is a tmpfs, its RAM)."""
    pre: tuple = ()
    root = spec.rootfs
    if spec.overlay:
        # Mounted on the state directory itself, in the container's mount namespace only:
        # no directory of its own to make and remove at every run (~0.1 ms on ext4).
        root = state_dir
        if data:
            upper, work = os.path.join(data, "upper"), os.path.join(data, "work")
            for d in (upper, work):
                os.mkdir(d, 0o755)
        else:
            upper, work = os.path.join(state_dir, "upper"), os.path.join(state_dir, "work")
            pre = scratch_upper_ops(upper, work)
        pre += (overlay_op(spec.rootfs, upper, work, volatile=bool(data)),)
    user_pre, user_post = user_mount_ops(spec.mounts)
    pre += user_pre
    if not dev_mounts_needed(spec.devices, spec.limits.devices):
        pre += nodev_root_ops(spec.rootfs, spec.overlay)
    plan = with_devices(DEFAULT_PLAN + user_post, spec.devices)
    if spec.sysctl:
        from .sysctl import ops

        plan += ops(spec.sysctl)
    return root, pre, plan


def _explain_overlay_failure(err: SetupError, data: str) -> None:
    """An upper on overlayfs (minirun inside a docker or podman container, whose /var/lib is
    its image's overlay) is refused with a bare EINVAL: say so, and what to do."""
    try:
        st = os.stat(data)
        device = f"{os.major(st.st_dev)}:{os.minor(st.st_dev)}"
        with open("/proc/self/mountinfo") as mounts:
            fstype = next((f[f.index("-") + 1] for f in map(str.split, mounts) if f[2] == device), "")
    except OSError:
        return  # the plain error, then

    if fstype == "overlay":
        raise SetupError(err.step, err.errno, f"{err.step}: {os.strerror(err.errno)}: a detached container's "
                         f"writable layer goes to {os.path.dirname(data)}, which is on overlayfs (minirun in "
                         "a container?), where overlayfs cannot keep another's: mount a volume there, or "
                         "set MINIRUN_LOG_ROOT to a directory on another filesystem") from err


_runs_in_this_process = 0


def _network_namespace_made_ahead(spec: ContainerSpec, namespaces) -> int | None:
    """A new network namespace for the container, made on a thread while the last one ran
    (minirun/aside.py says why): a process's second container starts the thread, the next ones
    join what it made, where the clone's would be alike: owned by the host's user namespace,
    nothing plugged in."""
    global _runs_in_this_process
    _runs_in_this_process += 1
    if _runs_in_this_process == 1 or "network" not in namespaces or "user" in namespaces \
            or spec.network != "none":
        return None
    from . import aside

    return aside.take_netns() if aside.ENABLED else None


def _run_in(cgroup, spec: ContainerSpec, namespaces, stdio, t0: float, claim, on_started, net, proxy,
            terminal, handoff, data: str | None) -> Result:
    proc = spec.process
    env = proc.full_env(spec.hostname)
    path = next((e[5:] for e in env if e.startswith("PATH=")), "")
    root, pre_plan, plan = _root_and_plans(spec, claim.path, data)
    sec = security.native_args(spec)  # caps, no_new_privs, seccomp; masked paths go last in the plan
    if "pid" in namespaces:  # minirun-init is PID 1
        sec = security.guard_init(sec)
    namespaces = security.with_userns(namespaces, spec)
    if "user" in namespaces:
        pre_plan, plan = security.userns_plans(pre_plan, plan, spec.overlay)
    console = {"console_fd": terminal.child_fd, "console_size": terminal.size} if terminal else {}
    launch = dict(rootfs=root, hostname=spec.hostname, namespaces=namespaces, pre_plan=pre_plan,
                  plan=plan + sec["path_ops"], readonly_root=spec.readonly_root, argv=proc.args, envp=env,
                  path=path, cwd=proc.cwd, uid=proc.uid, gid=proc.gid, stdio=stdio,
                  net=(net.address, net.prefixlen, net.gateway) if net else None, security=sec, **console)
    timings: dict[str, float] = {}

    def before_release(pid: int) -> None:  # the init waits at sync 1 meanwhile
        timings["clone"] = time.perf_counter() - t0
        signals.start(pid)
        if terminal:
            terminal.spawned()
        if net:  # its eth0 is plugged in
            from . import network

            network.connect(net, pid)
            claim.update(network=net.to_dict())
            if proxy:
                proxy.start(net.address)

    with forward_signals() as signals:
        netns_fd = None
        try:
            try:
                netns_fd = launch["netns_fd"] = _network_namespace_made_ahead(spec, namespaces)
                ctr = Container.create(spec.id, claim.path, cgroup, command=proc.args[0], rootfs=spec.rootfs,
                                       spawn_args=launch, id_maps=(spec.uid_mappings, spec.gid_mappings),
                                       before_release=before_release)
            except SetupError as err:
                if data and spec.overlay and err.errno == errno.EINVAL and "overlay" in err.step:
                    _explain_overlay_failure(err, data)
                raise
        finally:
            if netns_fd is not None:
                os.close(netns_fd)  # the init has joined it, or is gone
            if terminal:
                terminal.spawned()
        try:
            if ctr.status is None:  # else its init was killed during setup: that is the result
                if terminal:
                    terminal.started(claim.path)
                timings["start"] = time.perf_counter() - t0
                claim.update(status=state.RUNNING, pid=ctr.record["pid"], pid_start=ctr.record["pid_start"],
                             started=time.time(), env=env, cwd=proc.cwd, cgroups=cgroup.paths,
                             security=security.state_record(sec))
                if on_started:
                    on_started(spec.id, ctr.record["pid"])
                if handoff:  # minirun-shim waits from here on: never returns (raises if its exec fails)
                    handoff(ctr.child, claim, data, terminal, proxy)
            status = ctr.wait(terminal)
        finally:
            ctr.kill_and_reap()  # failed or interrupted before the end: the init must not outlive us
    return _result(spec.id, cgroup, status, timings, t0)


def _result(container_id: str, cgroup, status: int, timings: dict, t0: float) -> Result:
    signum = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
    oom = cgroup.oom_kill_count() > 0
    stats = {"cpu_usage_ns": cgroup.cpu_usage_ns()}
    timings["total"] = time.perf_counter() - t0
    return Result(id=container_id, exit_code=exit_code(status), signal=signum, oom_killed=oom, timings=timings,
                  stats=stats)
