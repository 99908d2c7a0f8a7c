#!/usr/bin/env python3
"""minirun-oci against runc, interleaved in one run: the same bundle, the same engines.

    sudo .venv/bin/python benchmarks/bench_oci.py [--runs 15] [--engine-runs 7]

1. `minirun-oci run` of a `runc spec` bundle vs `runc run` of the same bundle
   (target <= 1.0x);
2. `podman run --rm IMAGE /bin/true` with --runtime minirun-oci vs runc (<= 1.2x);
3. `ctr run --rm IMAGE ID /bin/true` with --runc-binary minirun-oci vs runc (<= 1.2x),
   on a containerd this script starts on a private socket and root.
Podman and containerd state live in a temporary directory removed at the end.
Prints medians, min/max and ratios.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time

ROOTFS = os.environ.get("MINIRUN_ROOTFS", "/var/lib/minirun/rootfs/busybox")
OCI = os.path.join(os.path.dirname(sys.executable), "minirun-oci")
RUNC = shutil.which("runc") or "runc"
IMAGE = "localhost/minirun-bench:latest"


_NOFILE = min(resource.getrlimit(resource.RLIMIT_NOFILE)[1], 4096)
_NPROC = min(resource.getrlimit(resource.RLIMIT_NPROC)[1], 4096)
# This host cannot raise RLIMIT_NOFILE above its hard limit nor set podman's default nproc.
PODMAN_RUN_OPTIONS = ["--network", "none", "--ulimit", f"nofile={_NOFILE}:{_NOFILE}",
                      "--ulimit", f"nproc={_NPROC}:{_NPROC}"]


def podman_with_image(base: str) -> list[str]:
    """podman's argv with its storage under ``base``, where IMAGE is the imported ROOTFS."""
    podman = ["podman", "--root", f"{base}/root", "--runroot", f"{base}/runroot", "--cgroup-manager",
              "cgroupfs", "--events-backend", "file"]
    tar = os.path.join(base, "rootfs.tar")
    with tarfile.open(tar, "w") as t:
        t.add(ROOTFS, arcname=".")
    subprocess.run(podman + ["import", tar, IMAGE], check=True, capture_output=True)
    return podman


def remove_podman_storage(base: str) -> None:
    subprocess.run(["podman", "--root", f"{base}/root", "--runroot", f"{base}/runroot", "rmi", "-af"],
                   capture_output=True)


def remove_empty_parents() -> None:
    """The cgroup parents the runtimes and podman leave, as runc does: ours to remove when empty."""
    for parent in ("minirun-oci", "libpod_parent/conmon", "libpod_parent", "default"):
        for path in glob.glob(f"/sys/fs/cgroup/*/{parent}"):
            try:
                os.rmdir(path)
            except OSError:
                pass


def timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"bench_oci: {' '.join(cmd[:6])}... failed ({proc.returncode}): {proc.stderr.strip()}")
    return elapsed


def bundle(base: str) -> str:
    path = os.path.join(base, "bundle")
    os.makedirs(path)
    subprocess.run(["runc", "spec", "--bundle", path], check=True)
    with open(os.path.join(path, "config.json")) as f:
        config = json.load(f)
    config["root"] = {"path": ROOTFS, "readonly": True}
    config["process"].update(terminal=False, args=["/bin/true"])
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(config, f)
    return path


def compare(label: str, ours: list[str], theirs: list[str], runs: int, name_at: int | None = None) -> dict:
    """Run both ``runs`` times, alternating; ``name_at``: argv index of a per-run container name."""
    times: dict[str, list[float]] = {"minirun-oci": [], "runc": []}
    for i in range(runs):
        for who, cmd in (("minirun-oci", ours), ("runc", theirs)) if i % 2 == 0 else (("runc", theirs),
                                                                                      ("minirun-oci", ours)):
            cmd = list(cmd)
            if name_at is not None:
                cmd[name_at] = f"{cmd[name_at]}-{who}-{i}"
            times[who].append(timed(cmd))
    m, r = statistics.median(times["minirun-oci"]), statistics.median(times["runc"])
    print(f"{label:<44} minirun-oci {m * 1000:7.1f} ms  runc {r * 1000:7.1f} ms  ratio {m / r:5.2f}x  "
          f"(min/max {min(times['minirun-oci']) * 1000:.1f}/{max(times['minirun-oci']) * 1000:.1f} vs "
          f"{min(times['runc']) * 1000:.1f}/{max(times['runc']) * 1000:.1f}, n={runs})", flush=True)
    return {"label": label, "minirun_oci_ms": m * 1000, "runc_ms": r * 1000, "ratio": m / r}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--engine-runs", type=int, default=7)
    args = parser.parse_args()
    base = tempfile.mkdtemp(prefix="minirun-bench-oci-")
    ctd = None
    try:
        path = bundle(base)
        state = os.path.join(base, "state")
        compare("run of a `runc spec` bundle", [OCI, "--root", state, "run", "--bundle", path, "b"],
                [RUNC, "--root", state + "-runc", "run", "--bundle", path, "b"], args.runs, name_at=-1)

        podman = podman_with_image(base)
        run = ["run", "--rm", *PODMAN_RUN_OPTIONS, IMAGE, "/bin/true"]
        compare("podman run --rm IMAGE /bin/true", podman + ["--runtime", OCI] + run,
                podman + ["--runtime", RUNC] + run, args.engine_runs)

        sock = f"{base}/containerd.sock"
        with open(f"{base}/config.toml", "w") as f:
            f.write(f'version = 2\nroot = "{base}/ctd-root"\nstate = "{base}/ctd-state"\n'
                    'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
                    f'[grpc]\n  address = "{sock}"\n[ttrpc]\n  address = "{sock}.ttrpc"\n')
        ctd = subprocess.Popen(["containerd", "-c", f"{base}/config.toml"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
        ctr = ["ctr", "-a", sock]
        while subprocess.run(ctr + ["version"], capture_output=True).returncode != 0:
            time.sleep(0.1)
        subprocess.run(podman + ["save", "--format", "oci-archive", "-o", f"{base}/oci.tar", IMAGE], check=True,
                       capture_output=True)
        subprocess.run(ctr + ["images", "import", "--base-name", IMAGE.rsplit(":", 1)[0], f"{base}/oci.tar"],
                       check=True, capture_output=True)
        compare("ctr run --rm IMAGE ID /bin/true", ctr + ["run", "--runc-binary", OCI, "--rm", IMAGE, "c", "/bin/true"],
                ctr + ["run", "--runc-binary", RUNC, "--rm", IMAGE, "c", "/bin/true"], args.engine_runs, name_at=-2)
    finally:
        if ctd:
            ctd.send_signal(signal.SIGTERM)
            ctd.wait(30)
            subprocess.run(["umount", "-R", f"{base}/ctd-root"], capture_output=True)
        remove_podman_storage(base)
        shutil.rmtree(base, ignore_errors=True)
        remove_empty_parents()


if __name__ == "__main__":
    main()
