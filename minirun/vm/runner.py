"""``run(VMSpec) -> VMResult``: boot ROOTFS with COMMAND as the guest's workload.

Steps and where the time goes (``VMResult.timings``, host wall clock, seconds):

  prepare     probe QEMU and KVM, find the kernel, build or reuse the initrd
  guest_init  QEMU launched -> the guest init's first line on the control port
  start       QEMU launched -> the guest init is about to exec COMMAND
  exit        QEMU launched -> COMMAND's exit status arrived
  total       run() called -> QEMU gone and everything cleaned up

Networking (``network="bridge"``): a tap on the containers' ``minirun0`` bridge
(minirun.network), an address from the same book, configured by the guest init;
``publish`` goes through the same loopback proxy as a container's ``-p``.  Shares
(``shares``): host directories over virtio-9p, mounted by the guest init.  A
``$STATE_ROOT-vm/<id>`` directory, locked while the VM runs, lets ``minirun gc``
release the address of a VM whose minirun was killed.

Timeouts: ``boot_timeout`` bounds launch -> guest init (a kernel that hangs, as a
standard kernel does under a PVM host's /dev/kvm); ``timeout`` bounds launch ->
COMMAND's exit.  Either kills QEMU and raises :class:`VMTimeout` (exit 124).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable

from ..record import Factory, Record
from ..result import Result
from ..spec import DEFAULT_PATH, format_size, parse_size
from . import guest, initramfs, kernel as kernels, probe, qemu_args
from ..errors import SpecError
from .errors import MemoryTooSmall, VMBootError, VMError, VMInterrupted, VMTimeout
from .machine import Machine

# Guest RAM floor: the kernel's own init_size (bzImage header) + this margin + twice the initrd (the archive
# and its unpacked copy).  Measured under TCG with the busybox initramfs (2 MiB): cloud kernel, init_size 51M,
# resets silently during decompression at 72M and boots at 80M; generic, init_size 63M, fails at 80M, boots at 96M.
KERNEL_MARGIN_MIB = 32
MIN_MEMORY_MIB = 64  # absolute floor, before the kernel is known
DEFAULT_BOOT_TIMEOUT = float(os.environ.get("MINIRUN_VM_BOOT_TIMEOUT", "60"))


class VMSpec(Record):
    """What to boot.  Option names mirror the container's (``--cpus``, ``--memory``)."""

    rootfs: str | None  # ROOTFS tree for the initramfs; None with share_root
    args: list[str]
    cpus: int = 1
    memory: int = 256 << 20  # bytes of guest RAM (reserved, unlike a container's cap)
    kernel: str | None = None  # --kernel PATH; default: cached Debian kernel
    accel: str = "auto"
    timeout: float | None = None
    boot_timeout: float = DEFAULT_BOOT_TIMEOUT
    share_root: str | None = None
    share_rw: bool = False
    env: list[str] = Factory(list)
    cwd: str = "/"
    hostname: str = "minirun-vm"
    machine: str = qemu_args.MACHINES[0]  # microvm; "pc" for a standard PC (PCI, ACPI, HPET)
    modules: tuple[str, ...] = ()  # kernel modules the guest loads at boot (with their dependencies)
    network: str = "none"  # none: no NIC; bridge: virtio-net on a tap on minirun0 (like a container's)
    publish: list[tuple[str, int, int]] = Factory(list)  # (host address, host port, guest port)
    shares: list[tuple[str, str, bool]] = Factory(list)  # (host dir, guest dir, read-only)
    debug: bool = False
    qemu: str | None = None  # binary override (tests simulate "QEMU not installed" with it)
    id: str = ""


class VMResult(Result):  # a Record, like Result
    accel: str = ""
    accel_reason: str = ""
    kernel_version: str = ""
    kernel: str = ""
    qemu_version: str = ""
    qemu_peak_rss: int = 0  # bytes (VmHWM)
    machine: str = ""
    network: dict | None = None


def _memory_mib(spec: VMSpec) -> int:
    size = parse_size(spec.memory)
    mib = size >> 20
    if mib < MIN_MEMORY_MIB:
        raise MemoryTooSmall(
            f"--memory {format_size(size)} is too small for the guest kernel: a VM reserves its RAM up front and "
            f"the Debian kernel needs at least {MIN_MEMORY_MIB}m"
        )
    return mib


def _config(spec: VMSpec, modules: list[str]) -> list[tuple[str, str]]:
    env = {"PATH": DEFAULT_PATH, "HOME": "/root", "TERM": "linux", "HOSTNAME": spec.hostname}
    for item in spec.env:
        key, _, value = item.partition("=")
        env[key] = value
    pairs = [("hostname", spec.hostname), ("cwd", spec.cwd)]
    pairs += [("env", f"{k}={v}") for k, v in env.items()]
    pairs += [("arg", a) for a in spec.args]
    pairs += [("mod", m) for m in modules]
    pairs += [("vol", f"{share_tag(i)} {int(ro)} {guest_dir}") for i, (_host, guest_dir, ro) in enumerate(spec.shares)]
    if spec.share_root:
        pairs += [("root9p", "root"), ("rw", "1" if spec.share_rw else "0")]
    if spec.machine == "microvm":
        pairs += [("off", "reboot")]
    return pairs


def share_tag(index: int) -> str:
    return f"vol{index}"


def check_shares(shares: list[tuple[str, str, bool]]) -> None:
    targets = set()
    for host_dir, guest_dir, _ro in shares:
        if not os.path.isdir(host_dir):
            raise SpecError(f"-v {host_dir}:{guest_dir}: {host_dir} is not a directory (a VM shares directories)")
        if not guest_dir.startswith("/") or os.path.normpath(guest_dir) == "/":
            raise SpecError(f"-v {host_dir}:{guest_dir}: the guest directory must be absolute and not / "
                            "(--share-root shares a whole root)")
        if os.path.normpath(guest_dir) in targets:
            raise SpecError(f"-v {host_dir}:{guest_dir}: {guest_dir} is already a share's target")
        targets.add(os.path.normpath(guest_dir))


class Plan(Record):
    """Everything decided before launch: reported in the result and printable as a plain QEMU command."""

    qemu: str
    qemu_version: str  # from the QMP greeting once QEMU runs
    accel: probe.Accel
    kernel: kernels.Kernel
    base_images: list[str]  # cached cpio archives the per-run overlay is appended to
    init_image: bytes  # the guest init binary
    config: list[tuple[str, str]]  # its /.minirun/config (run() adds the network's address)
    args: list[str]  # QEMU args except the initrd path and the chardevs (Machine adds those)
    cmdline: str
    boot_image: str = ""  # what -kernel gets: the bzImage, or on microvm its vmlinux entered through PVH

    @property
    def overlay(self) -> bytes:
        return initramfs.overlay(self.init_image, self.config)


def prepare(spec: VMSpec, say: Callable[[str], None] = lambda m: None) -> Plan:
    """Validate the spec against the host and build what the boot needs; no QEMU is started."""
    if not spec.args:
        raise VMError("no COMMAND given")
    if spec.machine not in qemu_args.MACHINES:
        raise VMError(f"unknown machine type {spec.machine!r}: use {' or '.join(qemu_args.MACHINES)}")
    memory_mib = _memory_mib(spec)
    if spec.share_root:
        if not os.path.isdir(spec.share_root):
            raise SpecError(f"--share-root {spec.share_root}: no such directory")
    elif not spec.rootfs or not os.path.isdir(spec.rootfs):
        raise SpecError(f"rootfs {spec.rootfs} does not exist or is not a directory")
    if spec.network not in ("none", "bridge"):
        raise SpecError(f"invalid --network value {spec.network!r} for a VM: use none or bridge")
    if spec.publish and spec.network != "bridge":
        raise SpecError("publishing ports (-p) needs --network bridge")
    check_shares(spec.shares)
    binary = probe.find_qemu(spec.qemu)
    accel = probe.choose_accel(spec.accel)
    say(f"{accel.describe()}")
    ninep = bool(spec.share_root or spec.shares)
    flavour = kernels.SHARE_ROOT_FLAVOUR if ninep else kernels.DEFAULT_FLAVOUR  # the cloud kernel has no 9p
    kernel = kernels.get(spec.kernel, flavour)
    init = guest.init_binary()
    # Modules come from the booted kernel's own package, loaded by the guest init in dependency order;
    # the init then turns module autoloading off, so the guest never reaches into a tree it did not bring.
    names = tuple(spec.modules)
    microvm = spec.machine == "microvm"
    if spec.network == "bridge":
        names = (guest.NET_MODULES_MICROVM if microvm else guest.NET_MODULES) + names
    if ninep:
        names = (guest.NINEP_MODULES_MICROVM if microvm else guest.NINEP_MODULES) + names
    modules: list[str] = []
    module_files = []
    for path in guest.module_order(kernel, names) if names else []:
        name = "lib/modules/" + os.path.basename(path).split(".ko")[0] + ".ko"
        module_files.append((name, guest.module_contents(path)))
        modules.append("/" + name)
    bases = [] if spec.share_root else [initramfs.rootfs_image(spec.rootfs)]
    if module_files:
        bases.append(initramfs.files_image(module_files))
    with open(init, "rb") as f:
        init_image = f.read()
    config = _config(spec, modules)
    overlay = initramfs.overlay(init_image, config)
    # Refuse what cannot fit instead of letting the guest reset silently while decompressing the kernel.
    initrd_mib = -(-(sum(map(os.path.getsize, bases)) + len(overlay)) // (1 << 20))
    kernel_mib = -(-kernels.image_init_size(kernel.image) // (1 << 20))
    need = kernel_mib + KERNEL_MARGIN_MIB + 2 * initrd_mib
    if memory_mib < need:
        raise MemoryTooSmall(
            f"--memory {memory_mib}M is too small for this guest: kernel {kernel.release} needs {kernel_mib}M to "
            f"start, plus {KERNEL_MARGIN_MIB}M to run and twice the {initrd_mib}M initramfs: use at least {need}M"
        )
    args = qemu_args.base([], spec.machine, accel.name)
    qemu_args.resources(args, spec.cpus, memory_mib)
    if spec.share_root:
        qemu_args.share_9p(args, os.path.abspath(spec.share_root), readonly=not spec.share_rw, machine=spec.machine)
    for i, (host_dir, _guest_dir, ro) in enumerate(spec.shares):
        qemu_args.share_9p(args, os.path.abspath(host_dir), share_tag(i), readonly=ro, machine=spec.machine)
    # Under TCG the guest's TSC is the host's (QEMU returns the host's rdtsc): its frequency is known here.
    tsc_khz = probe.host_tsc_khz(cache_dir=kernels.cache_root()) if (
        spec.machine == "microvm" and accel.name == "tcg") else None
    cmdline = qemu_args.kernel_cmdline(spec.debug, spec.machine, tsc_khz)
    # microvm: the uncompressed vmlinux, entered through PVH, skips the decompressor (kernel.pvh_image)
    boot_image = (kernels.pvh_image(kernel) if spec.machine == "microvm" else None) or kernel.image
    return Plan(binary, "", accel, kernel, bases, init_image, config, args, cmdline, boot_image)


def _stdout_sink() -> Callable[[bytes], None]:
    out = sys.stdout.buffer if hasattr(sys.stdout, "buffer") else None

    def sink(chunk: bytes) -> None:
        try:
            if out is not None:
                out.write(chunk)
                out.flush()
            else:
                sys.stdout.write(chunk.decode(errors="replace"))
                sys.stdout.flush()
        except (BrokenPipeError, ValueError):
            pass  # the reader went away; keep draining so the guest never blocks on its console

    return sink


async def _boot(spec: VMSpec, plan: Plan, machine: Machine, started: float,
                say: Callable[[str], None], net=None) -> VMResult:
    try:
        await machine.attach()
        plan.qemu_version = machine.monitor.qemu_version()
        t0 = machine.launched_at
        prepare_s = t0 - started

        if not await machine.wait_for(lambda: "init" in machine.events or "error" in machine.events,
                                      spec.boot_timeout):
            await machine.shutdown(hard=True)
            raise VMTimeout(
                f"the guest did not reach its init within {spec.boot_timeout:g}s "
                f"(accelerator {plan.accel.name}, kernel {plan.kernel.release}); QEMU was killed"
            )
        remaining = None if spec.timeout is None else spec.timeout - (time.monotonic() - t0)
        done = await machine.wait_for(
            lambda: any(w in machine.events for w in ("exit", "signal", "error")), remaining
        )
        if not done:
            await machine.shutdown(hard=True)
            raise VMTimeout(f"COMMAND still running after --timeout {spec.timeout:g}s; QEMU was killed")
        if "error" in machine.events:
            raise VMBootError(f"guest init failed: {machine.events['error'][1]}", machine.console_text())
        if not any(w in machine.events for w in ("exit", "signal")):
            console = machine.console_text()
            panic = [ln for ln in console.splitlines() if "Kernel panic" in ln or "Out of memory" in ln]
            detail = panic[-1].strip() if panic else "no exit status from the guest"
            if "init" not in machine.events:
                if "Out of memory" in console or "write error" in console:
                    raise MemoryTooSmall(f"--memory {_memory_mib(spec)}M is too small for the guest: {detail}")
                if not console.strip():
                    detail = "it reset without a word (a kernel that does not fit in --memory does that)"
                raise VMBootError(f"the guest stopped before its init ran: {detail}", console)
            raise VMBootError(f"the guest stopped while COMMAND ran: {detail}", console)

        # COMMAND is done: the init powers off; QEMU (-no-shutdown) reports SHUTDOWN over QMP and waits.
        if not await machine.wait_for(lambda: False, 15):
            say("the guest did not power off within 15s; stopping QEMU")
        if not machine.exited:
            machine.sample_rss()
            status = await machine.monitor.status()
            if spec.debug:
                say(f"QEMU status after the guest's shutdown: {status}")
        await machine.shutdown()
    finally:
        await machine.shutdown(hard=True)  # no-op after a clean shutdown; cleanup on every other path

    ev = machine.events
    timings = {"prepare": prepare_s, "guest_init": ev["init"][0] - t0}
    if "start" in ev:
        timings["start"] = ev["start"][0] - t0
    end_word = "signal" if "signal" in ev else "exit"
    timings["exit"] = ev[end_word][0] - t0
    timings["total"] = time.monotonic() - started
    if end_word == "signal":
        sig = int(ev["signal"][1])
        exit_code, signum = 128 + sig, sig
    else:
        exit_code, signum = int(ev["exit"][1]), None
    return VMResult(
        id=spec.id or f"vm-{os.getpid()}",
        exit_code=exit_code,
        signal=signum,
        timings={k: round(v, 4) for k, v in timings.items()},
        stats={"qemu_peak_rss": machine.peak_rss},
        accel=plan.accel.name,
        accel_reason=plan.accel.reason,
        kernel_version=ev["init"][1],
        kernel=plan.kernel.image,
        qemu_version=plan.qemu_version,
        qemu_peak_rss=machine.peak_rss,
        machine=spec.machine,
        network=net.to_dict() if net else None,
    )


def run(spec: VMSpec, stdout: Callable[[bytes], None] | None = None,
        say: Callable[[str], None] | None = None) -> VMResult:
    """Boot, run COMMAND, return its result.  Guest output goes to ``stdout`` (default: our stdout), live.

    ``say`` receives progress lines for stderr (the accelerator choice, always); default prints
    ``minirun: <line>`` to stderr.
    """
    started = time.monotonic()
    say = say or (lambda msg: print(f"minirun: {msg}", file=sys.stderr, flush=True))
    if spec.debug:
        import logging

        logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
        logging.getLogger("qemu.qmp").propagate = True
        logging.getLogger("qemu.qmp").setLevel(logging.INFO)
    plan = prepare(spec, say)
    from .. import state

    vm_id = spec.id or f"vm-{os.getpid()}"
    if spec.network == "bridge":
        from .. import cleanup

        cleanup.release_stale_addresses()  # those of VMs and containers whose minirun was killed
    # Held while the VM runs: the name is taken, and gc can tell this VM's address from a dead one's.
    with state.claim(vm_id, {"kind": "vm", "args": spec.args}, root=state.VM_STATE_ROOT) as claim:
        proxy = net = None
        tap_fd = -1
        try:
            if spec.publish:  # bound before anything starts: a busy port fails the run early
                from ..portproxy import PortProxy

                proxy = PortProxy(spec.publish)
            if spec.network == "bridge":
                from .. import network

                net = network.reserve(network.vm_key(vm_id))
                tap_fd = network.open_tap(net)
                plan.config += [("ip", f"{net.address}/{net.prefixlen}"), ("gw", net.gateway)]
                qemu_args.nic_tap(plan.args, tap_fd, _mac(net.address), spec.machine)
                if proxy:
                    proxy.start(net.address)  # connects to the guest per client, once one comes
            handed, tap_fd = [tap_fd] if net else [], -1
            return run_plan(spec, plan, stdout or _stdout_sink(), started, say, net, handed, temp_parent=claim.path)
        finally:
            if tap_fd >= 0:  # failed before QEMU could take it
                os.close(tap_fd)
            if proxy:
                proxy.close()
            if net:  # QEMU is gone, and with it the tap: the address goes back
                network.detach_by_id(network.vm_key(vm_id))


def _mac(address: str) -> str:
    """A locally administered MAC derived from the address (QEMU's 52:54:00 prefix), stable per address."""
    return "52:54:00:" + ":".join(f"{int(b):02x}" for b in address.split(".")[1:])


def run_plan(spec: VMSpec, plan: Plan, sink: Callable[[bytes], None], started: float,
             say: Callable[[str], None], net=None, handed_fds: list[int] = (), temp_parent: str | None = None
             ) -> VMResult:
    """Boot ``plan``.  ``handed_fds`` (the tap) are inherited by QEMU and closed here once it has them,
    so that QEMU holds the only copy and whatever ends QEMU also removes the tap.  ``temp_parent``: where
    QEMU's log and the per-run initrd go; run() puts them in the VM's state directory, which gc removes
    if minirun is killed."""
    machine = Machine(plan.qemu, [], name=spec.id or f"vm-{os.getpid()}", console=sink, pass_fds=handed_fds,
                      temp_parent=temp_parent)
    try:
        initrd = os.path.join(machine.make_temp_dir(), "initrd.cpio")
        initramfs.compose(plan.base_images, plan.overlay, initrd)
        machine.args = qemu_args.boot(list(plan.args), plan.boot_image or plan.kernel.image, initrd, plan.cmdline)
        if spec.debug:
            say("qemu command: " + " ".join(machine.args))
        # QEMU starts first; asyncio and qemu.qmp are imported while the guest kernel boots (its output waits
        # in the socket buffers), which keeps minirun's own cost off the boot's critical path.
        machine.spawn()
        import asyncio
    except BaseException:
        machine.kill_and_clean()
        raise
    finally:
        for fd in handed_fds:
            os.close(fd)
    received: list[int] = []

    async def main() -> VMResult:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        installed = []

        def on_signal(signum: int) -> None:
            received.append(signum)
            task.cancel()

        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            try:
                previous = signal.getsignal(signum)
                loop.add_signal_handler(signum, on_signal, signum)
                installed.append((signum, previous))
            except (RuntimeError, ValueError):  # not the main thread: the caller owns signals
                pass
        try:
            return await _boot(spec, plan, machine, started, say, net)
        finally:
            for signum, previous in installed:
                loop.remove_signal_handler(signum)
                signal.signal(signum, previous)  # e.g. the CLI's own SIGTERM handler

    try:
        return asyncio.run(main())
    except asyncio.CancelledError:
        if received:
            raise VMInterrupted(received[0]) from None
        raise
    finally:
        machine.kill_and_clean()  # no-op after a clean run; covers an interrupt before the loop ran
