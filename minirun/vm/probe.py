"""Probe the host once, choose, and report what was chosen (virtme-ng's Qemu.probe idea).

* :func:`find_qemu` finds ``qemu-system-x86_64`` (``$MINIRUN_QEMU`` overrides PATH).
* :func:`qemu_version` parses ``--version``.
* :func:`kvm_status` says whether /dev/kvm can run a *standard* guest kernel.  On a
  PVM host (module ``kvm_pvm`` loaded) /dev/kvm opens fine but only runs PVM guest
  kernels: a Debian kernel hangs silently right after decompression.  So PVM counts
  as "not usable" for ``--accel auto``.
* :func:`choose_accel` turns ``auto|kvm|tcg`` into an :class:`Accel` with the reason,
  which the caller prints on stderr and puts in the JSON.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess

from ..record import Record
from .errors import AccelUnavailable, QemuNotFound

QEMU_NAME = "qemu-system-x86_64"
ACCELS = ("auto", "kvm", "tcg")


def find_qemu(binary: str | None = None) -> str:
    """Absolute path of the QEMU binary; raises :class:`QemuNotFound` with the fix."""
    name = binary or os.environ.get("MINIRUN_QEMU") or QEMU_NAME
    path = name if os.sep in name else shutil.which(name)
    if not path or not os.path.isfile(path) or not os.access(path, os.X_OK):
        raise QemuNotFound(f"{name} not found or not executable: install Debian's qemu-system-x86 package")
    return os.path.abspath(path)


@functools.lru_cache(maxsize=8)
def qemu_version(binary: str) -> tuple[int, ...]:
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired) as err:
        raise QemuNotFound(f"cannot run {binary} --version: {err}") from err
    match = re.search(r"version (\d+)\.(\d+)(?:\.(\d+))?", out)
    if not match:
        raise QemuNotFound(f"{binary} --version printed no version: {out.strip()[:80]!r}")
    return tuple(int(g or 0) for g in match.groups())


class KvmStatus(Record, frozen=True):
    usable: bool
    reason: str


def kvm_status(dev: str = "/dev/kvm", sys_module: str = "/sys/module") -> KvmStatus:
    if not os.path.exists(dev):
        return KvmStatus(False, f"{dev} does not exist")
    try:
        fd = os.open(dev, os.O_RDWR | os.O_CLOEXEC)
    except OSError as err:
        return KvmStatus(False, f"cannot open {dev}: {err.strerror}")
    os.close(fd)
    if os.path.isdir(os.path.join(sys_module, "kvm_pvm")):
        return KvmStatus(False, f"{dev} belongs to a PVM host (module kvm_pvm), which only boots PVM guest kernels")
    return KvmStatus(True, f"{dev} is usable")


class Accel(Record, frozen=True):
    name: str  # "kvm" or "tcg"
    requested: str
    reason: str

    def describe(self) -> str:
        return f"accelerator {self.name} ({self.reason})"


def choose_accel(requested: str = "auto", status: KvmStatus | None = None) -> Accel:
    if requested not in ACCELS:
        raise AccelUnavailable(f"invalid --accel value {requested!r}: use auto, kvm or tcg")
    if requested == "tcg":
        return Accel("tcg", requested, "requested")
    status = status or kvm_status()
    if requested == "kvm":
        if not os.path.exists("/dev/kvm") or (not status.usable and "PVM" not in status.reason):
            raise AccelUnavailable(f"--accel kvm: {status.reason}")
        # An explicit request on a PVM host is honoured (a PVM guest kernel works); the boot timeout guards the rest.
        return Accel("kvm", requested, "requested" + ("" if status.usable else f"; warning: {status.reason}"))
    if status.usable:
        return Accel("kvm", requested, status.reason)
    return Accel("tcg", requested, f"KVM not used: {status.reason}; falling back to TCG")


# rdtsc; shl rdx, 32; or rax, rdx; ret
_RDTSC_CODE = b"\x0f\x31\x48\xc1\xe2\x20\x48\x09\xd0\xc3"


def _rdtsc():
    """A callable reading the host's TSC (x86-64 only): 10 bytes of machine code in an executable page."""
    import ctypes
    import mmap

    page = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    page.write(_RDTSC_CODE)
    address = ctypes.addressof(ctypes.c_char.from_buffer(page))
    fn = ctypes.CFUNCTYPE(ctypes.c_uint64)(address)
    fn._page = page  # keep the page mapped as long as the function lives
    return fn


def host_tsc_khz(window_s: float = 0.02, cache_dir: str | None = None) -> int | None:
    """The host's TSC frequency in kHz, measured against CLOCK_MONOTONIC_RAW (None off x86-64).

    Why: under TCG the guest's TSC *is* the host's (QEMU returns the host's rdtsc), and a microvm has no HPET
    or ACPI PM timer to calibrate it against, only the PIT, whose calibration fails when the host preempts
    QEMU mid-window.  The kernel then runs without a TSC and may spin forever in calibrate_delay().  Passing
    ``tsc_early_khz=`` skips that calibration.  Cached per host boot (the value is constant for a boot).
    """
    import time

    if os.uname().machine != "x86_64":  # not platform.machine(): importing platform costs ~1.3 ms a run
        return None
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            boot_id = f.read().strip()
    except OSError:
        boot_id = ""
    cache = os.path.join(cache_dir, "host-tsc-khz") if cache_dir else None
    if cache and boot_id:
        try:
            with open(cache) as f:
                cached_boot, khz = f.read().split()
            if cached_boot == boot_id:
                return int(khz)
        except (OSError, ValueError):
            pass
    try:
        rdtsc = _rdtsc()
    except (OSError, ValueError, AttributeError):
        return None
    rates = []
    for _ in range(3):
        # each end: rdtsc between two clock reads, the tightest of a few (a preemption inflates the gap)
        def stamp():
            best = None
            for _ in range(5):
                a = time.clock_gettime_ns(time.CLOCK_MONOTONIC_RAW)
                t = rdtsc()
                b = time.clock_gettime_ns(time.CLOCK_MONOTONIC_RAW)
                if best is None or b - a < best[0]:
                    best = (b - a, (a + b) // 2, t)
            return best[1:]

        ns0, t0 = stamp()
        time.sleep(window_s)
        ns1, t1 = stamp()
        rates.append((t1 - t0) * 1_000_000 // max(1, ns1 - ns0))
    khz = sorted(rates)[1]
    if cache and boot_id:
        try:
            os.makedirs(cache_dir, exist_ok=True)
            tmp = f"{cache}.{os.getpid()}"
            with open(tmp, "w") as f:
                f.write(f"{boot_id} {khz}\n")
            os.replace(tmp, cache)
        except OSError:
            pass
    return khz
