"""QEMU command-line builders: small functions that append to an argv list.

Kept free of I/O so tests can compare argv, and so the benchmark can print the
exact "plain QEMU" equivalent of a minirun run.
"""

from __future__ import annotations

MACHINES = ("microvm", "pc")  # the first is the default: it boots faster (benchmarks/bench_vm_boots.py)

# microvm's boot line beyond the basics: no clocksource watchdog or timer-IRQ check (the TSC is given, see
# kernel_cmdline), no keyboard-controller probing (microvm has none), no crypto self-tests, RDRAND trusted for
# the RNG seed.  Measured with the bzImage: 93% of microvm's boot without them (bench_vm_boots.py).
FAST_BOOT = ("tsc=reliable", "no_timer_check", "i8042.noaux", "i8042.nomux", "i8042.nopnp", "i8042.dumbkbd",
             "cryptomgr.notests", "random.trust_cpu=on")


def quote_optarg(value: str) -> str:
    """QEMU option values separate with ','; a literal comma is written ','."""
    return value.replace(",", ",,")


def base(argv: list[str], machine: str = "microvm", accel: str = "tcg") -> list[str]:
    """No default devices, no display, no NIC; the guest's reboot/poweroff stops QEMU but keeps it for QMP."""
    argv += ["-nodefaults", "-no-user-config", "-display", "none"]
    if machine == "microvm":
        # No PCI or ACPI (so the guest ends with a reboot; see kernel_cmdline), legacy PIC/PIT/RTC kept for the kernel.
        # isa-serial=off: microvm would make only one UART; both are added with serial() below.
        argv += ["-M", "microvm,x-option-roms=off,isa-serial=off,rtc=on"]
    else:
        argv += ["-M", "pc"]
    argv += ["-accel", accel]
    if accel == "kvm":
        argv += ["-cpu", "host"]
    # -no-reboot turns a guest reset into a shutdown; -no-shutdown then keeps QEMU alive (paused), so we can
    # read its peak RSS and end it with QMP `quit`.
    argv += ["-no-reboot", "-no-shutdown"]
    return argv


def resources(argv: list[str], cpus: int, memory_mib: int) -> list[str]:
    argv += ["-smp", str(cpus), "-m", f"{memory_mib}M"]
    return argv


def kernel_cmdline(debug: bool = False, machine: str = "microvm", tsc_khz: int | None = None) -> str:
    """Short on purpose: console on ttyS0, quiet unless --debug, reboot at once on panic.

    ``tsc_khz`` (microvm under TCG): the TSC's frequency, so the kernel does not calibrate it.  A microvm has
    only the PIT to calibrate against (no HPET, no ACPI PM timer); when the host preempts QEMU during that
    window the calibration fails, the kernel runs without a TSC and can spin for ever in calibrate_delay()
    (measured: 1 boot in 6 to 1 in 20, depending on the host's load; see benchmarks/bench_vm_boots.py).
    """
    parts = ["console=ttyS0", "panic=-1", "edd=off"]  # edd=off: skip the BIOS disk probe (and its banner)
    parts += ["loglevel=7"] if debug else ["loglevel=0"]  # panic() still prints: it raises the level itself
    if machine == "microvm":
        parts += ["reboot=t"]  # no ACPI/keyboard controller: a triple fault is the way out
        parts += FAST_BOOT
    if tsc_khz:
        parts += [f"tsc_early_khz={tsc_khz}"]
    return " ".join(parts)


def boot(argv: list[str], kernel: str, initrd: str | None, cmdline: str) -> list[str]:
    argv += ["-kernel", kernel]
    if initrd:
        argv += ["-initrd", initrd]
    argv += ["-append", cmdline]
    return argv


def chardev_fd(argv: list[str], ident: str, fd: int) -> list[str]:
    """A chardev on an already-connected socket inherited by QEMU (no path in the filesystem to clean up)."""
    argv += ["-chardev", f"socket,id={ident},fd={fd}"]
    return argv


def serial(argv: list[str], ident: str, index: int) -> list[str]:
    """A 16550 UART on the ISA bus: index 0 is ttyS0 (0x3f8), 1 is ttyS1 (0x2f8).  Works on pc and on microvm,
    where ``-serial`` would only ever create one port."""
    argv += ["-device", f"isa-serial,chardev={ident},index={index}"]
    return argv


def qmp(argv: list[str], ident: str) -> list[str]:
    argv += ["-mon", f"chardev={ident},mode=control"]
    return argv


def share_9p(argv: list[str], path: str, tag: str = "root", readonly: bool = True, machine: str = "pc") -> list[str]:
    """Export ``path`` over virtio-9p as ``tag``; ``multidevs=remap`` keeps inode numbers unique across host mounts."""
    opts = f"local,id={tag},path={quote_optarg(path)},security_model=passthrough,multidevs=remap"
    if readonly:
        opts += ",readonly=on"
    device = "virtio-9p-device" if machine == "microvm" else "virtio-9p-pci"
    argv += ["-fsdev", opts, "-device", f"{device},fsdev={tag},mount_tag={tag}"]
    return argv


def nic_tap(argv: list[str], fd: int, mac: str, machine: str = "pc") -> list[str]:
    """A virtio-net NIC on an open tap fd (QEMU never opens /dev/net/tun or runs an ifup script itself)."""
    device = "virtio-net-device" if machine == "microvm" else "virtio-net-pci"
    argv += ["-netdev", f"tap,id=net0,fd={fd}", "-device", f"{device},netdev=net0,mac={mac}"]
    return argv
