#!/usr/bin/env python3
"""The cost of an allowed system call under seccomp: minirun's filter beside runc's and podman + runc's, in one run.

    sudo .venv/bin/python benchmarks/bench_seccomp.py [--rootfs DIR] [--calls 3000000] [--rounds 7]

A static C helper (compiled here) calls getppid(2) --calls times in a loop,
then personality(0xffffffff) (a query, allowed by an argument rule) as many
times, then read(2)+write(2) of one byte from /dev/zero to /dev/null (what
`minirun compare`'s syscall row runs, dd bs=1), and prints the mean ns per
call of each. getppid is the issue's
measure; the kernel (5.11+) caches "always allowed" for syscalls whose
decision needs no argument, so its cost is seccomp's fixed entry cost, the
same for any filter. personality's decision reads an argument, so the whole
program runs each time: that row compares the programs (minirun's search over
syscall-number ranges here, runc's libseccomp-golang default there). It runs in containers,
rounds interleaved so machine noise hits every configuration alike:

    minirun unconfined         --security-opt seccomp=unconfined (the baseline)
    minirun default            Docker's profile, compiled by minirun (seccomp_bpf), minirun's loader
    minirun + podman profile   containers-common's seccomp.json through minirun
    runc unconfined            `runc run` on the bundle `minirun compare` runs (minirun's defaults), no seccomp
    runc default               the same bundle as compare runs it: minirun's default profile as OCI rules
                               (oci.defaults.with_minirun_defaults), compiled by runc's libseccomp-golang
    podman + runc unconfined   podman's own baseline
    podman + runc default      podman's default profile, compiled by runc's libseccomp-golang

(the runc rows only if runc is installed, the podman rows if podman is too).
Prints each median, the filter's cost over its own engine's unconfined median,
and minirun's cost as a ratio of runc's under the same profile (issue 22: the
figure behind compare's syscall row) and of podman + runc's. Target (issue
13): minirun's cost at or below runc's.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from results import Recorder  # noqa: E402

ROOTFS = os.environ.get("MINIRUN_ROOTFS", "/var/lib/minirun/rootfs/busybox")
HERE = os.path.dirname(os.path.abspath(__file__))
PODMAN_PROFILE = "/usr/share/containers/seccomp.json"

HELPER = r"""
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 3000000;
    struct timespec a, b;

    for (long i = 0; i < 10000; i++)  /* warm up */
        syscall(SYS_getppid);
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (long i = 0; i < n; i++)
        syscall(SYS_getppid);
    clock_gettime(CLOCK_MONOTONIC, &b);
    printf("%.2f ", ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / n);
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (long i = 0; i < n; i++)
        syscall(SYS_personality, 0xffffffffUL);  /* query only: changes nothing */
    clock_gettime(CLOCK_MONOTONIC, &b);
    printf("%.2f ", ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / n);
    int in = open("/dev/zero", O_RDONLY), out = open("/dev/null", O_WRONLY);
    char c;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (long i = 0; i < n / 2; i++)
        if (read(in, &c, 1) != 1 || write(out, &c, 1) != 1)
            return 1;
    clock_gettime(CLOCK_MONOTONIC, &b);
    printf("%.2f\n", ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / (n / 2 * 2));
    return 0;
}
"""


def build_helper(directory: str) -> str:
    source = os.path.join(directory, "getppid_loop.c")
    with open(source, "w") as f:
        f.write(HELPER)
    binary = os.path.join(directory, "getppid_loop")
    subprocess.run(["gcc", "-static", "-O2", "-o", binary, source], check=True)
    return binary


def minirun_cmd(rootfs: str, helper_dir: str, calls: int, *options: str) -> list[str]:
    return [sys.executable, "-m", "minirun", "run", "-v", f"{helper_dir}:/bench:ro", *options, rootfs,
            "/bench/getppid_loop", str(calls)]


def podman_cmd(rootfs: str, helper_dir: str, calls: int, *options: str) -> list[str]:
    hard = int(subprocess.run(["sh", "-c", "ulimit -Hn"], capture_output=True, text=True).stdout.strip() or 1024)
    return ["podman", "--cgroup-manager", "cgroupfs", "--events-backend", "file", "--runtime", "runc", "run", "--rm",
            "--network", "none", "--ulimit", f"nofile={hard}:{hard}", "--ulimit", "nproc=4096:4096",
            "-v", f"{helper_dir}:/bench:ro", *options, "--rootfs", rootfs, "/bench/getppid_loop", str(calls)]


class RuncBench:
    """`runc run` on the bundle `minirun compare`'s runc column runs (minirun's default security), the helper
    bound at /tmp/bench (runc does not create mount points in a read-only root; compare's /tmp is a tmpfs)."""

    def __init__(self, rootfs: str, helper_dir: str, calls: int):
        from minirun.compare.runners import RuncRunner

        self.runner = RuncRunner(rootfs)
        self.config = self.runner.config(["/tmp/bench/getppid_loop", str(calls)], binds=[(helper_dir, "/tmp/bench",
                                                                                            True)])

    def cmd(self, seccomp: bool):
        config = json.loads(json.dumps(self.config))
        if not seccomp:
            del config["linux"]["seccomp"]
        bundle = tempfile.mkdtemp(prefix="mrc-runc-bundle-")
        self.runner._bundles.append(bundle)  # removed by cleanup()
        with open(os.path.join(bundle, "config.json"), "w") as f:
            json.dump(config, f)
        return lambda: self.runner.run_argv(bundle, self.runner._id("bench"))

    def cleanup(self) -> None:
        self.runner.cleanup()


CALLS = ("getppid", "personality", "read+write")


def ns_per_call(cmd) -> tuple[float, ...]:
    """(getppid, personality, read/write) mean ns per call, from one container."""
    cmd = cmd() if callable(cmd) else cmd
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        raise SystemExit(f"bench_seccomp: {' '.join(cmd[:8])} ... failed: {out.stderr.strip()[-400:]}")
    return tuple(float(x) for x in out.stdout.split()[-3:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rootfs", default=ROOTFS)
    parser.add_argument("--calls", type=int, default=3_000_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--results", help="directory for seccomp.json (default: benchmarks/results)")
    args = parser.parse_args()
    rec = Recorder("seccomp", args.results)
    if os.geteuid() != 0:
        raise SystemExit("bench_seccomp: run as root (containers)")
    work = tempfile.mkdtemp(prefix="minirun-bench-seccomp-")
    runc = None
    try:
        helper_dir = os.path.join(work, "bin")
        os.mkdir(helper_dir)
        build_helper(helper_dir)
        configs = {
            "minirun unconfined": minirun_cmd(args.rootfs, helper_dir, args.calls, "--security-opt",
                                              "seccomp=unconfined"),
            "minirun default": minirun_cmd(args.rootfs, helper_dir, args.calls),
        }
        if os.path.exists(PODMAN_PROFILE):
            configs["minirun + podman profile"] = minirun_cmd(args.rootfs, helper_dir, args.calls, "--security-opt",
                                                              f"seccomp={PODMAN_PROFILE}")
        if shutil.which("runc"):
            runc = RuncBench(args.rootfs, helper_dir, args.calls)
            configs["runc unconfined"] = runc.cmd(seccomp=False)
            configs["runc default"] = runc.cmd(seccomp=True)
        else:
            print("runc not installed: no runc rows")
        if shutil.which("podman") and shutil.which("runc"):
            # podman writes into a --rootfs tree (/etc/hosts, /run/...): give it a copy
            podman_root = os.path.join(work, "rootfs")
            shutil.copytree(args.rootfs, podman_root, symlinks=True)
            configs["podman + runc unconfined"] = podman_cmd(podman_root, helper_dir, args.calls, "--security-opt",
                                                             "seccomp=unconfined")
            configs["podman + runc default"] = podman_cmd(podman_root, helper_dir, args.calls)
        else:
            print("podman or runc not installed: minirun rows only")
        for cmd in configs.values():  # warm caches (the seccomp cache, podman's storage) outside the figures
            ns_per_call(cmd)
        samples: dict[str, list] = {name: [] for name in configs}
        for _ in range(args.rounds):
            for name, cmd in configs.items():
                samples[name].append(ns_per_call(cmd))
    finally:
        if runc is not None:
            runc.cleanup()
        shutil.rmtree(work, ignore_errors=True)

    print(f"{args.calls} calls per run, median of {args.rounds} interleaved rounds, ns per call")
    for i, call in enumerate(CALLS):
        med = {name: statistics.median(v[i] for v in values) for name, values in samples.items()}
        low = {name: min(v[i] for v in values) for name, values in samples.items()}
        base = {"minirun": med["minirun unconfined"], "runc": med.get("runc unconfined"),
                "podman": med.get("podman + runc unconfined")}
        what = {"getppid": "getppid(2)", "personality": "personality(0xffffffff), decided on its argument",
                "read+write": "read(2)+write(2) of one byte, /dev/zero to /dev/null (compare's dd bs=1)"}[call]
        print(f"\n{what}")
        print(f"{'configuration':28} {'median':>8} {'min':>8} {'max':>8} {'cost over unconfined':>22}")
        for name, values in samples.items():
            engine = name.split()[0]
            cost = "" if "unconfined" in name or base[engine] is None else f"{med[name] - base[engine]:+.1f} ns"
            print(f"{name:28} {med[name]:8.1f} {min(v[i] for v in values):8.1f} {max(v[i] for v in values):8.1f} "
                  f"{cost:>22}")
        costs = {"minirun": med["minirun default"] - base["minirun"]}
        if base["runc"] is not None:
            costs["runc (same profile)"] = med["runc default"] - base["runc"]
        if base["podman"] is not None:
            costs["podman + runc"] = med["podman + runc default"] - base["podman"]
        rec.add(f"seccomp.{call.replace('+', '')}", f"{what}: cost over the same container unconfined",
                "minirun", costs, unit="ns", n=args.rounds)
        if base["runc"] is not None:
            ours = med["minirun default"] - base["minirun"]
            theirs = med["runc default"] - base["runc"]
            for how, fig in (("median", med), ("min", low)):  # on a busy machine the minimum is the steadier
                print(f"same profile ({how}): minirun {fig['minirun default']:.1f} ns, runc {fig['runc default']:.1f} "
                      f"ns per call (ratio {fig['minirun default'] / fig['runc default']:.2f}); unconfined: minirun "
                      f"{fig['minirun unconfined']:.1f}, runc {fig['runc unconfined']:.1f} "
                      f"(ratio {fig['minirun unconfined'] / fig['runc unconfined']:.2f})")
            print(f"minirun's default filter: {ours:+.1f} ns, runc's (same profile): {theirs:+.1f} ns per call"
                  + (f" (ratio {ours / theirs:.2f}; target <= 1.00)" if theirs > 0 else ""))
        if base["podman"] is not None:
            ours = med["minirun default"] - base["minirun"]
            theirs = med["podman + runc default"] - base["podman"]
            print(f"minirun's default filter: {ours:+.1f} ns, podman + runc's: {theirs:+.1f} ns per call"
                  + (f" (ratio {ours / theirs:.2f}; target <= 1.00)" if theirs > 0 else ""))
    rec.write()


if __name__ == "__main__":
    main()
