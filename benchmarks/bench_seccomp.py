#!/usr/bin/env python3
"""The cost of an allowed system call under seccomp: minirun's filter beside podman + runc's, in one run.

    sudo .venv/bin/python benchmarks/bench_seccomp.py [--rootfs DIR] [--calls 3000000] [--rounds 7]

A static C helper (compiled here) calls getppid(2) --calls times in a loop,
then personality(0xffffffff) (a query, allowed by an argument rule) as many
times, and prints the mean ns per call of each. getppid is the issue's
measure; the kernel (5.11+) caches "always allowed" for syscalls whose
decision needs no argument, so its cost is seccomp's fixed entry cost, the
same for any filter. personality's decision reads an argument, so the whole
program runs each time: that row compares the programs (libseccomp's binary
tree here, runc's libseccomp-golang default there). It runs in containers,
rounds interleaved so machine noise hits every configuration alike:

    minirun unconfined         --security-opt seccomp=unconfined (the baseline)
    minirun default            Docker's profile, built by libseccomp (binary tree), minirun's loader
    minirun + podman profile   containers-common's seccomp.json through minirun
    podman + runc unconfined   podman's own baseline
    podman + runc default      podman's default profile, compiled by runc's libseccomp-golang

(the podman rows only if podman and runc are installed). Prints each median,
the filter's cost over its own engine's unconfined median, and minirun's cost
as a ratio of podman + runc's. Target (issue 13): minirun's cost at or below
podman + runc's.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

ROOTFS = os.environ.get("MINIRUN_ROOTFS", "/var/lib/minirun/rootfs/busybox")
HERE = os.path.dirname(os.path.abspath(__file__))
PODMAN_PROFILE = "/usr/share/containers/seccomp.json"

HELPER = r"""
#define _GNU_SOURCE
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
    printf("%.2f\n", ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / n);
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


CALLS = ("getppid", "personality")


def ns_per_call(cmd: list[str]) -> tuple[float, float]:
    """(getppid, personality) mean ns per call, from one container."""
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        raise SystemExit(f"bench_seccomp: {' '.join(cmd[:8])} ... failed: {out.stderr.strip()[-400:]}")
    getppid, personality = out.stdout.split()[-2:]
    return float(getppid), float(personality)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rootfs", default=ROOTFS)
    parser.add_argument("--calls", type=int, default=3_000_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench_seccomp: run as root (containers)")
    work = tempfile.mkdtemp(prefix="minirun-bench-seccomp-")
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
        shutil.rmtree(work, ignore_errors=True)

    print(f"{args.calls} calls per run, median of {args.rounds} interleaved rounds, ns per call")
    for i, call in enumerate(CALLS):
        med = {name: statistics.median(v[i] for v in values) for name, values in samples.items()}
        base = {"minirun": med["minirun unconfined"], "podman": med.get("podman + runc unconfined")}
        what = "getppid(2)" if call == "getppid" else "personality(0xffffffff), decided on its argument"
        print(f"\n{what}")
        print(f"{'configuration':28} {'median':>8} {'min':>8} {'max':>8} {'cost over unconfined':>22}")
        for name, values in samples.items():
            engine = name.split()[0]
            cost = "" if "unconfined" in name or base[engine] is None else f"{med[name] - base[engine]:+.1f} ns"
            print(f"{name:28} {med[name]:8.1f} {min(v[i] for v in values):8.1f} {max(v[i] for v in values):8.1f} "
                  f"{cost:>22}")
        if base["podman"] is not None:
            ours = med["minirun default"] - base["minirun"]
            theirs = med["podman + runc default"] - base["podman"]
            print(f"minirun's default filter: {ours:+.1f} ns, podman + runc's: {theirs:+.1f} ns per call"
                  + (f" (ratio {ours / theirs:.2f}; target <= 1.00)" if theirs > 0 else ""))


if __name__ == "__main__":
    main()
