#!/usr/bin/env python3
"""Container start cost: minirun against runc, side by side in one run.

    sudo .venv/bin/python benchmarks/bench_run.py [--rootfs DIR] [--runs 30] [--api-runs 100]

1. CLI: `minirun run --rm ROOTFS /bin/true` vs `runc run` on the same rootfs with
   the same namespaces and limits, interleaved so machine noise hits both alike.
2. API: 100 sequential containers through minirun.run(), each with the five
   namespaces (+cgroup), pivot_root and three limits; vs 100 sequential runc runs.
Prints medians, min/max and ratios. Targets (issue 13): API <= 6 ms per container,
CLI <= 1.0x runc.
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
import time

ROOTFS = os.environ.get("MINIRUN_ROOTFS", "/var/lib/minirun/rootfs/busybox")
MEMORY = 64 << 20
CPUS = 0.5
PIDS = 64
RUNC_STATE = "/run/minirun-bench-runc"


def runc_bundle(rootfs: str) -> str:
    """A bundle whose config.json comes from `runc spec`, set to our rootfs and limits."""
    bundle = tempfile.mkdtemp(prefix="minirun-bench-runc-")
    subprocess.run(["runc", "spec", "--bundle", bundle], check=True)
    path = os.path.join(bundle, "config.json")
    with open(path) as f:
        config = json.load(f)
    config["root"] = {"path": os.path.abspath(rootfs), "readonly": False}
    config["process"]["args"] = ["/bin/true"]
    config["process"]["terminal"] = False
    linux = config["linux"]
    linux["resources"] = {
        "memory": {"limit": MEMORY, "swap": MEMORY},
        "cpu": {"quota": int(CPUS * 100_000), "period": 100_000},
        "pids": {"limit": PIDS},
    }
    names = {ns["type"] for ns in linux["namespaces"]}
    for ns in ("pid", "network", "ipc", "uts", "mount", "cgroup"):
        if ns not in names:
            linux["namespaces"].append({"type": ns})
    with open(path, "w") as f:
        json.dump(config, f)
    return bundle


def timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"benchmark command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr.decode()}")
    return elapsed


def summary(name: str, samples: list[float]) -> str:
    ms = [s * 1000 for s in samples]
    return (f"{name:<34} median {statistics.median(ms):7.1f} ms   min {min(ms):6.1f}   max {max(ms):6.1f}"
            f"   (n={len(ms)})")


def bench_cli(rootfs: str, bundle: str | None, runs: int) -> dict:
    minirun_cmd = [sys.executable, "-m", "minirun", "run", "--rm", "--memory", "64m", "--cpus", str(CPUS),
                   "--pids-limit", str(PIDS), rootfs, "/bin/true"]
    entry = shutil.which("minirun", path=os.path.dirname(sys.executable))
    if entry:
        minirun_cmd = [entry] + minirun_cmd[3:]
    samples: dict[str, list[float]] = {"minirun": [], "runc": []}
    for i in range(runs):
        samples["minirun"].append(timed(minirun_cmd))
        if bundle:
            samples["runc"].append(timed(["runc", "--root", RUNC_STATE, "run", "--bundle", bundle,
                                          f"bench-{os.getpid()}-{i}"]))
    return samples


def bench_api(rootfs: str, runs: int) -> list[float]:
    from minirun import ContainerSpec, Limits, Process, run

    devnull = os.open(os.devnull, os.O_RDWR)
    samples = []
    try:
        for _ in range(runs):
            spec = ContainerSpec(rootfs=rootfs, process=Process(["/bin/true"]),
                                 limits=Limits.from_cpus(CPUS, memory=MEMORY, pids=PIDS))
            t0 = time.perf_counter()
            result = run(spec, stdio=(devnull, devnull, devnull))
            samples.append(time.perf_counter() - t0)
            assert result.exit_code == 0
    finally:
        os.close(devnull)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rootfs", default=ROOTFS)
    parser.add_argument("--runs", type=int, default=30, help="CLI runs of each tool (interleaved)")
    parser.add_argument("--api-runs", type=int, default=100)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("benchmarks need root")

    have_runc = shutil.which("runc") is not None
    bundle = runc_bundle(args.rootfs) if have_runc else None
    try:
        print(f"host: {os.uname().release}, {os.cpu_count()} CPUs; rootfs {args.rootfs}")
        print(f"each container: pid mount uts ipc net cgroup namespaces, pivot_root, "
              f"--memory 64m --cpus {CPUS} --pids-limit {PIDS}\n")

        print(f"== CLI, /bin/true end to end ({args.runs} interleaved runs each)", flush=True)
        cli = bench_cli(args.rootfs, bundle, args.runs)
        print(summary("minirun run --rm", cli["minirun"]))
        if have_runc:
            print(summary("runc run", cli["runc"]))
            ratio = statistics.median(cli["minirun"]) / statistics.median(cli["runc"])
            print(f"ratio minirun/runc: {ratio:.2f}x   (target <= 1.0x, issue 13)")
        else:
            print("runc: not installed (apt-get install runc) - no comparison")

        print(f"\n== Python API, {args.api_runs} sequential containers", flush=True)
        api = bench_api(args.rootfs, args.api_runs)
        print(summary("minirun.run()", api))
        print(f"total {sum(api):.2f} s, {sum(api) / len(api) * 1000:.1f} ms per container   (target <= 6 ms, issue 13)")
        if have_runc:
            t0 = time.perf_counter()
            for i in range(args.api_runs):
                timed(["runc", "--root", RUNC_STATE, "run", "--bundle", bundle, f"seq-{os.getpid()}-{i}"])
            total = time.perf_counter() - t0
            print(f"{args.api_runs} sequential runc run: total {total:.2f} s, "
                  f"{total / args.api_runs * 1000:.1f} ms per container")
            print(f"ratio minirun API/runc: {sum(api) / total:.2f}x")
    finally:
        if bundle:
            shutil.rmtree(bundle, ignore_errors=True)
        shutil.rmtree(RUNC_STATE, ignore_errors=True)


if __name__ == "__main__":
    main()
