#!/usr/bin/env python3
"""Idle cost of a detached container on the host, beside podman + conmon + runc, one run.

    sudo .venv/bin/python benchmarks/bench_idle.py [--containers 5]

Starts K containers running `sleep 3600` with each of:
  minirun run -d                 what stays besides the workload: minirun-shim + minirun-init
  podman run -d (runc)           conmon (runc itself exits after `create`/`start`)
  podman run -d (minirun-oci)    conmon, as above: minirun-oci leaves nothing running
and prints, per container, the median RSS and PSS of those host processes (the
workload's own processes are not counted) against the target of 3 MiB of RSS.
PSS divides shared pages among their users, so it is the figure that adds up.
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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_oci import (IMAGE, OCI, PODMAN_RUN_OPTIONS, ROOTFS, RUNC, podman_with_image,  # noqa: E402
                       remove_empty_parents, remove_podman_storage)
from results import Recorder  # noqa: E402

MINIRUN = os.path.join(os.path.dirname(sys.executable), "minirun")
TARGET_MIB = 3.0


def memory_kib(pid: int) -> tuple[int, int]:
    """(RSS, PSS) of one process in KiB, from smaps_rollup."""
    fields = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("Rss", "Pss"):
                fields[key] = int(rest.split()[0])
    return fields["Rss"], fields["Pss"]


def summed(pids: list[int]) -> tuple[int, int]:
    rss = pss = 0
    for pid in pids:
        r, p = memory_kib(pid)
        rss, pss = rss + r, pss + p
    return rss, pss


def minirun_idle(k: int) -> list[tuple[int, int]]:
    names = [f"bench-idle-{os.getpid()}-{i}" for i in range(k)]
    try:
        for name in names:
            subprocess.run([MINIRUN, "run", "-d", "--name", name, ROOTFS, "/bin/sleep", "3600"], check=True,
                           capture_output=True)
        time.sleep(1.0)  # let them settle
        out = []
        for name in names:
            with open(f"/run/minirun/{name}/state.json") as f:
                st = json.load(f)
            out.append(summed([st["owner"], st["pid"]]))  # the shim and the container's init
        return out
    finally:
        subprocess.run([MINIRUN, "rm", "-f", *names], capture_output=True)


def podman_idle(podman: list[str], runtime: str, k: int) -> list[tuple[int, int]]:
    ids = []
    try:
        for _ in range(k):
            proc = subprocess.run(podman + ["--runtime", runtime, "run", "-d", *PODMAN_RUN_OPTIONS, IMAGE,
                                            "/bin/sleep", "3600"], check=True, capture_output=True, text=True)
            ids.append(proc.stdout.strip())
        time.sleep(1.0)
        out = []
        for cid in ids:
            conmon = subprocess.run(podman + ["inspect", "--format", "{{.State.ConmonPid}}", cid], check=True,
                                    capture_output=True, text=True).stdout.strip()
            out.append(summed([int(conmon)]))
        return out
    finally:
        if ids:
            subprocess.run(podman + ["rm", "-f", "-t", "0", *ids], capture_output=True)


def report(label: str, samples: list[tuple[int, int]]) -> tuple[float, float]:
    rss = statistics.median(r for r, _ in samples) / 1024
    pss = statistics.median(p for _, p in samples) / 1024
    print(f"{label:<34} RSS {rss:5.2f} MiB  PSS {pss:5.2f} MiB per container (n={len(samples)})", flush=True)
    return rss, pss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--containers", type=int, default=5)
    parser.add_argument("--results", help="directory for idle.json (default: benchmarks/results)")
    args = parser.parse_args()
    rec = Recorder("idle", args.results)
    base = tempfile.mkdtemp(prefix="minirun-bench-idle-")
    try:
        podman = podman_with_image(base)
        ours = report("minirun run -d (shim + init)", minirun_idle(args.containers))
        conmon = report("podman + runc (conmon)", podman_idle(podman, RUNC, args.containers))
        oci = report("podman + minirun-oci (conmon)", podman_idle(podman, OCI, args.containers))
        print(f"minirun / conmon RSS: {ours[0] / conmon[0]:.2f}x; target <= {TARGET_MIB} MiB RSS: "
              f"{'met' if ours[0] <= TARGET_MIB else 'NOT met'}")
    finally:
        remove_podman_storage(base)
        shutil.rmtree(base, ignore_errors=True)
        remove_empty_parents()
    peers = ("minirun shim + init", "conmon (podman + runc)", "conmon (podman + minirun-oci)")
    for i, (key, what) in enumerate((("rss", "RSS"), ("pss", "PSS"))):
        rec.add(f"idle.{key}", f"idle {what} of a detached `sleep` on the host beyond its own processes",
                peers[0], dict(zip(peers, (ours[i], conmon[i], oci[i]))), unit="MiB", n=args.containers)
    rec.write()


if __name__ == "__main__":
    main()
