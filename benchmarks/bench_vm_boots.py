#!/usr/bin/env python3
"""Boot reliability and speed: N consecutive plain-QEMU boots of ``/bin/true`` per variant, hangs counted.

A boot "hangs" when the guest has not powered off within ``--hang-after`` seconds (a normal TCG boot takes
~2 s).  For every hang, the last console lines are printed (the command line gets ``loglevel=7`` with
``--verbose``, so the kernel says where it stopped).

    python3 benchmarks/bench_vm_boots.py [-n 50] [--variant NAME ...] [--alternate] [--where] [--json FILE]

Variants (``--list``) change the machine options and the kernel command line of minirun's own plan
(minirun.vm.qemu_args), so "microvm" here is exactly what ``minirun vm run`` boots by default.

``--where`` boots with ``nokaslr`` and, when a boot hangs, samples the guest's RIP over the HMP monitor; Debian
ships no real System.map, so map it with a guest's own /proc/kallsyms (booted with nokaslr).  That is how the
microvm hang was found: every hung boot sat in calibrate_delay() (see qemu_args.kernel_cmdline).  Results on
2026-12-01 (``-n 50 --alternate``): microvm-old 7/50 hangs, microvm-old+tsc-khz 0/50; then pc, microvm (the
default: PVH vmlinux) and microvm-bzimage 0/50 each, medians 1.68, 1.12 (67%) and 1.34 s (80%).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench_vm import Workdir, build_initrd, plain_argv  # noqa: E402

from minirun.vm import qemu_args  # noqa: E402
from minirun.vm.runner import VMSpec  # noqa: E402

TUNED = " ".join(qemu_args.FAST_BOOT)
OLD_MICROVM = "microvm,x-option-roms=off,isa-serial=off,rtc=on"
NO_TSC = ("tsc_early_khz",)  # what microvm hung without
PLAIN = NO_TSC + tuple(qemu_args.FAST_BOOT)

# name: (machine, -M override or None for minirun's, extra kernel args, kernel args to drop (by name before '='))
VARIANTS = {
    "pc": ("pc", None, "", ()),
    "pc+tuned": ("pc", None, TUNED, ()),
    "microvm": ("microvm", None, "", ()),  # minirun's default: tsc_early_khz + the tuned line
    "microvm-untuned": ("microvm", None, "", tuple(qemu_args.FAST_BOOT)),
    "microvm-old": ("microvm", OLD_MICROVM, "", PLAIN),  # as before the fix: hangs
    "microvm-old+tuned": ("microvm", OLD_MICROVM, "", NO_TSC),
    "microvm-old+lpj": ("microvm", OLD_MICROVM, "lpj=10400000", PLAIN),
    "microvm-old+tsc-unstable": ("microvm", OLD_MICROVM, "tsc=unstable", PLAIN),
    "microvm-old+pit+pic": ("microvm", OLD_MICROVM + ",pit=on,pic=on", "", PLAIN),
    "microvm-old+tsc-khz": ("microvm", OLD_MICROVM, "tsc_early_khz={tsc_khz}", PLAIN),
    "microvm-bzimage": ("microvm", None, "", ()),  # the compressed bzImage instead of minirun's PVH vmlinux
}


def symbolize(rip: int, system_map: str) -> str:
    best, name = 0, "?"
    with open(system_map) as f:
        for line in f:
            addr, _kind, sym = line.split()[:3]
            a = int(addr, 16)
            if best < a <= rip:
                best, name = a, sym
    return f"{name}+{rip - best:#x}"


def where(monitor: str, system_map: str | None, samples: int = 8) -> str:
    """Where the hung guest's CPU is: RIP sampled over the HMP monitor, named from System.map (nokaslr)."""
    import re
    import socket

    seen = []
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(monitor)
        s.settimeout(2)
        for _ in range(samples):
            s.sendall(b"info registers\n")
            time.sleep(0.3)
            data = b""
            try:
                while b"RIP=" not in data or not data.rstrip().endswith(b"(qemu)"):
                    data += s.recv(65536)
            except socket.timeout:
                pass
            m = re.findall(rb"RIP=([0-9a-f]+)", data)
            if m:
                rip = int(m[-1], 16)
                seen.append(symbolize(rip, system_map) if system_map else hex(rip))
    return ", ".join(dict.fromkeys(seen))


def boot_once(argv: list[str], hang_after: float, system_map: str | None = None) -> tuple[str, float, str]:
    """"ok" only when the guest init reported COMMAND's exit 0 on its control port: QEMU exits 0 after a
    kernel panic too (panic=-1 reboots, -no-reboot turns that into an exit)."""
    ctl = f"/tmp/bench-vm-ctl-{os.getpid()}"
    argv = [a.replace("null,id=ctl", f"file,id=ctl,path={ctl}") for a in argv]
    try:
        status, secs, out = _boot(argv, hang_after, system_map)
        with open(ctl, "rb") as f:
            reported = f.read()
    except FileNotFoundError:
        reported = b""
    finally:
        if os.path.exists(ctl):
            os.unlink(ctl)
    if status == "ok" and b"minirun:exit 0" not in reported:
        status = "no exit status (panic?)"
    return status, secs, out


def _boot(argv: list[str], hang_after: float, system_map: str | None = None) -> tuple[str, float, str]:
    monitor = None
    if system_map is not None:
        monitor = f"/tmp/bench-vm-mon-{os.getpid()}.sock"
        argv = argv + ["-monitor", f"unix:{monitor},server=on,wait=off"]
    t = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        out, _ = proc.communicate(timeout=hang_after)
        return ("ok" if proc.returncode == 0 else f"rc {proc.returncode}"), time.monotonic() - t, out.decode(
            errors="replace")
    except subprocess.TimeoutExpired:
        note = ""
        if monitor:
            try:
                note = "\nguest CPU at: " + where(monitor, system_map or None)
            except OSError as err:
                note = f"\n(monitor: {err})"
        proc.kill()
        out, _ = proc.communicate()
        return "hang", time.monotonic() - t, out.decode(errors="replace") + note
    finally:
        if monitor and os.path.exists(monitor):
            os.unlink(monitor)


def variant_argv(name: str, args, work: Workdir) -> list[str]:
    machine, mopt, extra, drop = VARIANTS[name]
    spec = VMSpec(rootfs=args.rootfs, args=["/bin/true"], accel=args.accel, machine=machine, debug=args.verbose)
    initrd, plan = build_initrd(work, spec, f"initrd-{machine}.cpio")
    if "{tsc_khz}" in extra:
        from minirun.vm import probe

        extra = extra.format(tsc_khz=probe.host_tsc_khz())
    cmdline = " ".join([p for p in plan.cmdline.split() if p not in drop and p.split("=")[0] not in drop]
                       + extra.split()
                       + (["nokaslr"] if args.where else []))
    # minirun's choice (on microvm, the PVH vmlinux) unless the variant reproduces the bzImage boot
    image = plan.kernel.image if name.endswith("-bzimage") or name.startswith("microvm-old") else plan.boot_image
    argv = plain_argv(plan.qemu, plan.args, image, initrd, cmdline)
    if mopt:
        argv[argv.index("-M") + 1] = mopt
    return argv


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=50, help="consecutive boots per variant")
    parser.add_argument("--variant", action="append", help="variant name (repeatable; default: pc and microvm)")
    parser.add_argument("--rootfs", default=os.environ.get("MINIRUN_ROOTFS", "/var/lib/minirun/rootfs/busybox"))
    parser.add_argument("--accel", default="auto", choices=["auto", "kvm", "tcg"])
    parser.add_argument("--hang-after", type=float, default=20.0)
    parser.add_argument("--verbose", action="store_true", help="loglevel=7: kernel messages of hung boots")
    parser.add_argument("--where", action="store_true",
                        help="boot with nokaslr and, on a hang, name the function the guest CPU is in")
    parser.add_argument("--alternate", action="store_true", help="interleave the variants boot by boot")
    parser.add_argument("--list", action="store_true")
    parser.add_argument("--json")
    args = parser.parse_args()
    if args.list:
        for name, v in VARIANTS.items():
            print(f"{name:28s} {v}")
        return 0
    names = args.variant or ["pc", "microvm"]
    work = Workdir()
    results = {n: {"times": [], "hangs": 0, "failures": 0} for n in names}
    try:
        argvs = {n: variant_argv(n, args, work) for n in names}
        system_map = None
        if args.where:
            from minirun.vm import kernel as kernels

            k = kernels.get(flavour="cloud")
            system_map = os.path.join(k.root, "boot", f"System.map-{k.release}")
        for n in names:
            print(f"{n}: {' '.join(argvs[n])}", flush=True)
        order = [n for _ in range(args.n) for n in names] if args.alternate else \
            [n for n in names for _ in range(args.n)]
        for i, n in enumerate(order):
            status, secs, out = boot_once(argvs[n], args.hang_after, system_map)
            r = results[n]
            if status == "ok":
                r["times"].append(secs)
            else:
                r["hangs" if status == "hang" else "failures"] += 1
                tail = "\n    ".join(out.strip().splitlines()[-12:])
                print(f"  {n} boot {len(r['times']) + r['hangs'] + r['failures']}: {status} after {secs:.1f}s\n"
                      f"    {tail}", flush=True)
    finally:
        work.close()
    print(f"\n== {args.n} consecutive boots of /bin/true per variant (plain QEMU, hang = no exit in "
          f"{args.hang_after:g}s)")
    base = statistics.median(results["pc"]["times"]) if results.get("pc", {}).get("times") else None
    for n, r in results.items():
        med = statistics.median(r["times"]) if r["times"] else float("nan")
        rel = f"  {med / base:.0%} of pc" if base and n != "pc" else ""
        print(f"  {n:28s} median {med:6.3f} s  hangs {r['hangs']}/{args.n}  failures {r['failures']}{rel}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"n": args.n, "argv": argvs, "results": results}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
