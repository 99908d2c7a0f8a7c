#!/usr/bin/env python3
"""VM boot benchmark: minirun's overhead over plain QEMU, then the search for a faster boot.

Part 1 (the promise: minirun adds at most 10%): boot-to-exit of ``/bin/true`` via
  * ``minirun vm run ROOTFS /bin/true`` as a user runs it (a fresh Python process), and
  * the equivalent plain ``qemu-system-x86_64`` command line (same kernel, same initrd
    bytes, same machine flags; serial to stdout, no QMP, no -no-shutdown),
alternating the two in the same run; medians of N and their ratio.

Part 2: plain-QEMU variants, each changing one thing from the ``-M pc`` baseline
(machine type, firmware, kernel flavour, kernel command line, initrd compression),
plus the best combination, against plain ``-M pc``.  Target: half the baseline.

    python3 benchmarks/bench_vm.py [-n 7] [--rootfs DIR] [--only overhead|explore] [--json FILE]

Timing is wall clock on the host; the machine is noisy, so read medians, not single runs.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_oci import rotated  # noqa: E402
from results import Recorder  # noqa: E402

from minirun.vm import initramfs, kernel as kernels, qemu_args  # noqa: E402
from minirun.vm.runner import VMSpec, prepare  # noqa: E402

QBOOT = "/usr/share/qemu/qboot.rom"
FAST_CMDLINE = ("console=ttyS0 panic=-1 edd=off loglevel=0 tsc=reliable no_timer_check i8042.noaux i8042.nomux "
                "i8042.nopnp i8042.dumbkbd cryptomgr.notests random.trust_cpu=on")


def extract_vmlinux(image: str, work: "Workdir") -> str | None:
    """The uncompressed ELF inside a bzImage (LZ4 in Debian's cloud kernel), for a PVH direct boot: QEMU jumps
    to its 32-bit PVH entry, skipping the real-mode setup and the decompressor.  None if lz4 is missing."""
    with open(image, "rb") as f:
        data = f.read()
    off = data.find(b"\x02\x21\x4c\x18")  # LZ4 legacy frame magic
    if off < 0 or not shutil.which("lz4"):
        return None
    out = subprocess.run(["lz4", "-dc"], input=data[off:], capture_output=True).stdout  # trailing junk: rc 1
    if not out.startswith(b"\x7fELF"):
        return None
    return work.file("vmlinux", out)


def median_time(fn, n: int) -> tuple[float, list[float]]:
    times = []
    for _ in range(n):
        t = time.monotonic()
        fn()
        times.append(time.monotonic() - t)
    return statistics.median(times), times


def run_checked(argv: list[str], timeout: float = 120) -> None:
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                          timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[0]} exited {proc.returncode}: {proc.stderr.decode()[-500:]}")


class Workdir:
    def __init__(self):
        self.path = tempfile.mkdtemp(prefix="minirun-bench-")

    def file(self, name: str, data: bytes) -> str:
        path = os.path.join(self.path, name)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def close(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def plain_argv(qemu: str, args: list[str], kernel: str, initrd: str, cmdline: str) -> list[str]:
    """What a user would type: minirun's machine flags minus -no-shutdown (nothing would end QEMU), console on
    stdout, the control port to null, no QMP."""
    args = [a for a in args if a != "-no-shutdown"]
    argv = [qemu, *args]
    qemu_args.boot(argv, kernel, initrd, cmdline)
    argv += ["-chardev", "stdio,id=con", "-chardev", "null,id=ctl"]
    qemu_args.serial(argv, "con", 0)
    qemu_args.serial(argv, "ctl", 1)
    return argv


def build_initrd(work: Workdir, spec: VMSpec, name: str, compress: str | None = None) -> tuple[str, object]:
    plan = prepare(spec)
    data = b"".join(open(base, "rb").read() for base in plan.base_images) + plan.overlay
    if compress == "gzip":
        data = gzip.compress(data, 6)
    elif compress == "lz4":
        data = subprocess.run(["lz4", "-l", "-9", "-c"], input=data, capture_output=True, check=True).stdout
    return work.file(name, data), plan


def overhead(args, work: Workdir) -> dict:
    spec = VMSpec(rootfs=args.rootfs, args=["/bin/true"], accel=args.accel)
    initrd, plan = build_initrd(work, spec, "initrd-pc.cpio")
    plain = plain_argv(plan.qemu, plan.args, plan.boot_image, initrd, plan.cmdline)
    cli = [sys.executable, "-m", "minirun", "vm", "run", "--accel", args.accel, args.rootfs, "/bin/true"]
    run_checked(cli)  # warm the caches (initramfs image, guest init) and the page cache
    run_checked(plain)
    # the same through the Python API in this process: minirun's own work without interpreter start-up
    from minirun.vm import run as vm_run

    def api():
        assert vm_run(spec, stdout=lambda b: None, say=lambda m: None).exit_code == 0

    runs = {"cli": lambda: run_checked(cli), "plain": lambda: run_checked(plain), "api": api}
    times: dict[str, list[float]] = {name: [] for name in runs}
    for i in range(args.n):  # alternate, so drift in the machine's load (boots vary 1.3-2 s here) hits all alike,
        for name in rotated(list(runs), i):  # and each goes first in turn, as in bench_run and bench_oci
            times[name].append(median_time(runs[name], 1)[0])
    t_cli, t_plain, t_api = times["cli"], times["plain"], times["api"]
    m_cli, m_plain, m_api = statistics.median(t_cli), statistics.median(t_plain), statistics.median(t_api)
    vm_path = "import minirun.entry, minirun.runopts, minirun.vm.runverb, minirun.vm.runner"  # before QEMU starts
    py = median_time(lambda: run_checked([sys.executable, "-c", vm_path]), 5)[0]
    print(f"\n== minirun vs plain QEMU: /bin/true, -M {spec.machine}, {plan.accel.name}, kernel {plan.kernel.release}, n={args.n}")
    print(f"  plain qemu   median {m_plain:6.3f} s   runs {' '.join(f'{t:.2f}' for t in t_plain)}")
    print(f"  minirun CLI  median {m_cli:6.3f} s   runs {' '.join(f'{t:.2f}' for t in t_cli)}")
    print(f"  minirun API  median {m_api:6.3f} s   runs {' '.join(f'{t:.2f}' for t in t_api)}")
    print(f"  overhead     CLI {100 * (m_cli / m_plain - 1):+.1f}%, API {100 * (m_api / m_plain - 1):+.1f}%"
          f"  (target <= +10%); Python start-up + the VM run path's imports alone: {py:.3f} s")
    print(f"  plain command: {' '.join(plain)}")
    return {"plain_s": m_plain, "minirun_s": m_cli, "api_s": m_api, "ratio": m_cli / m_plain,
            "api_ratio": m_api / m_plain, "python_startup_s": py, "plain": t_plain, "minirun": t_cli, "api": t_api,
            "accel": plan.accel.name, "kernel": plan.kernel.release, "machine": spec.machine}


def explore(args, work: Workdir) -> dict:
    accel = "kvm" if args.accel == "kvm" else "tcg"
    base_spec = dict(rootfs=args.rootfs, args=["/bin/true"], accel=args.accel)
    variants: dict[str, list[str]] = {}
    plans = {}
    for flavour in ("cloud", "generic"):
        k = kernels.get(flavour=flavour)
        for machine in ("pc", "microvm"):
            spec = VMSpec(**base_spec, kernel=k.image, machine=machine)
            initrd, plan = build_initrd(work, spec, f"initrd-{flavour}-{machine}.cpio")
            plans[(flavour, machine)] = (initrd, plan)
    gz, _ = build_initrd(work, VMSpec(**base_spec, kernel=kernels.get(flavour="cloud").image), "initrd.gz", "gzip")

    def argv(flavour="cloud", machine="pc", initrd=None, cmdline=None, bios=None, image=None):
        path, plan = plans[(flavour, machine)]
        a = plain_argv(plan.qemu, plan.args, image or plan.kernel.image, initrd or path, cmdline or plan.cmdline)
        if bios:
            a[1:1] = ["-bios", bios]
        return a

    micro_cmd = FAST_CMDLINE + " reboot=t"
    variants["pc (baseline: -M pc, SeaBIOS, cloud kernel)"] = argv()
    variants["pc + generic kernel"] = argv(flavour="generic")
    variants["pc + gzip initramfs"] = argv(initrd=gz)
    variants["pc + qboot firmware"] = argv(bios=QBOOT)
    variants["pc + tuned cmdline"] = argv(cmdline=FAST_CMDLINE)
    variants["microvm (qboot)"] = argv(machine="microvm")
    variants["microvm + tuned cmdline"] = argv(machine="microvm", cmdline=micro_cmd)
    variants["microvm + generic kernel"] = argv(flavour="generic", machine="microvm")
    vmlinux = extract_vmlinux(kernels.get(flavour="cloud").image, work)
    if vmlinux:
        variants["pc + PVH vmlinux (uncompressed)"] = argv(image=vmlinux)
        variants["microvm + tuned cmdline + PVH vmlinux"] = argv(machine="microvm", cmdline=micro_cmd, image=vmlinux)
    results = {}
    print(f"\n== faster boots: plain QEMU, {accel}, /bin/true, median of {args.n}")
    for name, a in variants.items():
        runs, fails = [], 0
        for _ in range(args.n + 1):  # the first run warms the page cache and is dropped
            t = time.monotonic()
            try:
                run_checked(a, timeout=30)
                runs.append(time.monotonic() - t)
            except (RuntimeError, subprocess.TimeoutExpired):
                fails += 1
        runs = runs[1:] if len(runs) > 1 else runs
        if not runs:
            print(f"  {name:48s} FAILED every run")
            continue
        m = statistics.median(runs)
        results[name] = {"median_s": m, "runs": runs, "failures": fails, "argv": a}
        note = f"   ({fails} of {args.n + 1} runs hung or failed)" if fails else ""
        print(f"  {name:48s} {m:6.3f} s{note}")
    base = results.get("pc (baseline: -M pc, SeaBIOS, cloud kernel)")
    if base and results:
        reliable = {k: v for k, v in results.items() if not v["failures"]} or results
        best_name = min(reliable, key=lambda k: reliable[k]["median_s"])
        best = reliable[best_name]
        print(f"\n  best: {best_name}: {best['median_s']:.3f} s = {best['median_s'] / base['median_s']:.0%} of plain -M pc "
              f"({base['median_s']:.3f} s; target 50%)")
        print(f"  best reliable command: {' '.join(best['argv'])}")
    # the best machine through minirun itself, to show the option works end to end
    cli = [sys.executable, "-m", "minirun", "vm", "run", "--machine", "microvm", "--accel", args.accel, args.rootfs,
           "/bin/true"]
    try:
        run_checked(cli)
        m, _ = median_time(lambda: run_checked(cli), args.n)
        print(f"  minirun vm run --machine microvm: {m:.3f} s")
        results["minirun --machine microvm"] = {"median_s": m}
    except (RuntimeError, subprocess.TimeoutExpired) as err:
        print(f"  minirun --machine microvm FAILED: {err}")
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=7, help="runs per measurement (median)")
    parser.add_argument("--rootfs", default=os.environ.get("MINIRUN_ROOTFS", "/var/lib/minirun/rootfs/busybox"))
    parser.add_argument("--accel", default="auto", choices=["auto", "kvm", "tcg"])
    parser.add_argument("--only", choices=["overhead", "explore"])
    parser.add_argument("--json", help="also write the numbers to this file")
    parser.add_argument("--results", help="directory for vm.json, what report.py renders (default: benchmarks/results)")
    args = parser.parse_args()
    rec = Recorder("vm", args.results)
    if not os.path.isdir(args.rootfs):
        print(f"bench_vm: no rootfs at {args.rootfs} (make rootfs, or --rootfs DIR)", file=sys.stderr)
        return 2
    work = Workdir()
    out = {}
    try:
        if args.only in (None, "overhead"):
            out["overhead"] = overhead(args, work)
        if args.only in (None, "explore"):
            out["explore"] = explore(args, work)
    finally:
        work.close()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
    if "overhead" in out:
        o = out["overhead"]
        setup = f"-M {o['machine']}, {o['accel']}, kernel {o['kernel']}"
        rec.add("vm.cli", f"`minirun vm run ROOTFS /bin/true`, {setup}", "minirun vm run",
                {"minirun vm run": o["minirun_s"], "plain QEMU": o["plain_s"]}, unit="s", n=args.n)
        rec.add("vm.api", f"`minirun.vm.run()` of `/bin/true`, {setup}", "minirun.vm.run()",
                {"minirun.vm.run()": o["api_s"], "plain QEMU": o["plain_s"]}, unit="s", n=args.n)
        rec.note("plain QEMU: the same kernel and initramfs on the plain `qemu-system-x86_64` command line")
        rec.write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
