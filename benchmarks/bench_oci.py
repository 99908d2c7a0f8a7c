#!/usr/bin/env python3
"""minirun-oci against runc and crun, interleaved in one run: the same bundle, the same engines.

    sudo .venv/bin/python benchmarks/bench_oci.py [--runs 15] [--engine-runs 7] [--no-engines]

1. `run` of a `runc spec` bundle by minirun-oci, runc and crun (target <= 1.0x runc);
2. the verbs engines call per container, on a created container: `create`, then
   `state`, `start`, `kill KILL`, `delete` each timed (issue 21: each <= crun's);
3. `podman run --rm IMAGE /bin/true` with --runtime minirun-oci vs runc (<= 1.2x);
4. `ctr run --rm IMAGE ID /bin/true` with --runc-binary minirun-oci vs runc (<= 1.2x),
   on a containerd this script starts on a private socket and root.
Podman and containerd state live in a temporary directory removed at the end.
Prints medians, min/max and ratios; the runtimes' order rotates every round.

crun (1.8, Debian's) refuses a hybrid cgroup host ("cgroups in hybrid mode not
supported"). There, 1 and 2 run every runtime, crun or not, through the same
wrapper: a private mount namespace where an empty file hides the v2 hierarchy's
controllers (`unshare -m --propagation private sh -c 'mount --bind EMPTY
/sys/fs/cgroup/unified/cgroup.controllers && exec RUNTIME ...'`); the output says
so, and the wrapper's own cost (a few ms) is in every figure.
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
CRUN = shutil.which("crun")
HYBRID_CONTROLLERS = "/sys/fs/cgroup/unified/cgroup.controllers"  # v2 beside v1: crun refuses to run
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


def timed(cmd: list[str], detached: bool = False) -> float:
    """Wall time of ``cmd``; ``detached``: it leaves a process holding its stdio (create), so errors go to a file."""
    t0 = time.perf_counter()
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
        elapsed = time.perf_counter() - t0
        if proc.returncode != 0:
            err.seek(0)
            sys.exit(f"bench_oci: {' '.join(cmd[:10])}... failed ({proc.returncode}): {err.read().strip()}")
    return elapsed


def bundle(base: str, name: str = "bundle", args: tuple[str, ...] = ("/bin/true",)) -> str:
    path = os.path.join(base, name)
    os.makedirs(path)
    subprocess.run(["runc", "spec", "--bundle", path], check=True)
    with open(os.path.join(path, "config.json")) as f:
        config = json.load(f)
    config["root"] = {"path": ROOTFS, "readonly": True}
    config["process"].update(terminal=False, args=list(args))
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(config, f)
    return path


class Runtimes:
    """minirun-oci, runc and crun (when installed), each with its own state root; on a hybrid host every one of
    them runs through the same private-mount-namespace wrapper that lets crun start (see the docstring)."""

    def __init__(self, base: str):
        self.binaries = {"minirun-oci": OCI, "runc": RUNC, **({"crun": CRUN} if CRUN else {})}
        self.roots = {name: os.path.join(base, f"state-{name}") for name in self.binaries}
        self.crun_default_root = not os.path.exists("/run/crun")  # crun makes it even when told --root
        self.wrapper: list[str] = []
        if os.path.exists(HYBRID_CONTROLLERS):
            empty = os.path.join(base, "no-controllers")
            open(empty, "w").close()
            self.wrapper = ["unshare", "-m", "--propagation", "private", "sh", "-c",
                            f'mount --bind "$0" {HYBRID_CONTROLLERS} && exec "$@"', empty]

    def describe(self) -> str:
        if not CRUN:
            return "crun is not installed (Debian package crun): minirun-oci and runc only, no wrapper"
        if not self.wrapper:
            return "not a hybrid cgroup host: every runtime runs as it is"
        return (f"hybrid cgroup host: every runtime (crun, runc, minirun-oci) runs through `unshare -m --propagation "
                f"private sh -c 'mount --bind EMPTY {HYBRID_CONTROLLERS} && exec RUNTIME ...'`, whose cost is in "
                f"every figure")

    def argv(self, name: str, *args: str) -> list[str]:
        return self.wrapper + [self.binaries[name], "--root", self.roots[name], *args]

    def status(self, name: str, cid: str) -> str:
        proc = subprocess.run(self.argv(name, "state", cid), capture_output=True, text=True)
        return json.loads(proc.stdout)["status"] if proc.returncode == 0 else "gone"

    def cleanup(self) -> None:
        for name in self.binaries:
            if not os.path.isdir(self.roots[name]):
                continue
            listing = subprocess.run(self.argv(name, "list", "-q"), capture_output=True, text=True)
            for cid in listing.stdout.split():
                subprocess.run(self.argv(name, "delete", "-f", cid), capture_output=True)
        if self.crun_default_root:
            try:
                os.rmdir("/run/crun")  # only if empty: then it is the one our crun calls made
            except OSError:
                pass


def summarize(label: str, times: dict[str, list[float]]) -> dict:
    med = {who: statistics.median(t) for who, t in times.items()}
    figures = "  ".join(f"{who} {med[who] * 1000:6.1f} ms" for who in times)
    ratios = [f"minirun-oci/{peer} {med['minirun-oci'] / med[peer]:4.2f}x" for peer in ("runc", "crun") if peer in med]
    spread = ", ".join(f"{who} {min(t) * 1000:.1f}-{max(t) * 1000:.1f}" for who, t in times.items())
    print(f"{label:<28} {figures}  {'  '.join(ratios)}  (min-max ms: {spread}; n={len(next(iter(times.values())))})",
          flush=True)
    return {"label": label, **{f"{who}_ms": m * 1000 for who, m in med.items()}}


def bundle_runs(rt: Runtimes, path: str, runs: int) -> dict:
    """`run` of the bundle (/bin/true), the runtimes' order rotating every round."""
    names = list(rt.binaries)
    times: dict[str, list[float]] = {n: [] for n in names}
    for i in range(runs):
        for name in names[i % len(names):] + names[:i % len(names)]:
            times[name].append(timed(rt.argv(name, "run", "--bundle", path, f"b-{name}-{i}")))
    return summarize("run of a `runc spec` bundle", times)


def verb_runs(rt: Runtimes, path: str, runs: int) -> list[dict]:
    """create, state, start, kill KILL, delete of one container per runtime and round (sleep 1000), each timed;
    between kill and delete, untimed, the wait for the stopped state."""
    names = list(rt.binaries)
    verbs = ("create", "state", "start", "kill", "delete")
    times = {verb: {n: [] for n in names} for verb in verbs}
    for i in range(runs):
        for name in names[i % len(names):] + names[:i % len(names)]:
            cid = f"v-{name}-{i}"
            times["create"][name].append(timed(rt.argv(name, "create", "--bundle", path, cid), detached=True))
            times["state"][name].append(timed(rt.argv(name, "state", cid)))
            times["start"][name].append(timed(rt.argv(name, "start", cid)))
            times["kill"][name].append(timed(rt.argv(name, "kill", cid, "KILL")))
            deadline = time.monotonic() + 10
            while rt.status(name, cid) != "stopped" and time.monotonic() < deadline:
                time.sleep(0.01)
            times["delete"][name].append(timed(rt.argv(name, "delete", cid)))
    return [summarize(f"{verb} (a created container)" if verb == "create" else f"{verb}", times[verb])
            for verb in verbs]


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
    parser.add_argument("--no-engines", action="store_true", help="only 1 and 2 (the runtimes alone)")
    args = parser.parse_args()
    base = tempfile.mkdtemp(prefix="minirun-bench-oci-")
    ctd = None
    rt = Runtimes(base)
    try:
        print(f"runtimes: {', '.join(rt.binaries)}; {rt.describe()}", flush=True)
        bundle_runs(rt, bundle(base), args.runs)
        verb_runs(rt, bundle(base, "bundle-sleep", ("/bin/sleep", "1000")), args.runs)
        if args.no_engines:
            return

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
        rt.cleanup()
        if ctd:
            ctd.send_signal(signal.SIGTERM)
            ctd.wait(30)
            subprocess.run(["umount", "-R", f"{base}/ctd-root"], capture_output=True)
        remove_podman_storage(base)
        shutil.rmtree(base, ignore_errors=True)
        remove_empty_parents()


if __name__ == "__main__":
    main()
