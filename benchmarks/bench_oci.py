#!/usr/bin/env python3
"""minirun-oci against runc and crun, alternated in one run: the same bundle, the same engines.

    sudo .venv/bin/python benchmarks/bench_oci.py [--runs 15] [--engine-runs 7] [--no-engines] [--results DIR]

1. `run` of a `runc spec` bundle (/bin/true, 64m / 0.5 CPU / 64 pids) by minirun-oci, runc and crun;
2. the verbs engines call per container, on a created container (`sleep`): `create`, then
   `state`, `start`, `ps`, `list`, `kill KILL`, `delete` each timed (issue 21: each hot verb <= crun's);
3. `podman run --rm IMAGE /bin/true` with --runtime minirun-oci, runc, crun;
4. `ctr run --rm IMAGE ID /bin/true` with --runc-binary minirun-oci, runc, crun, on a containerd this
   script starts on a private socket and root (the shim Kubernetes and Docker use);
5. `docker run --rm --network none IMAGE /bin/true` with --runtime minirun-oci, runc, crun, on a dockerd
   this script starts on private data/exec roots and socket, with --iptables=false --bridge=none
   --ip-forward=false (tests/docker/dockerd.py); the host's iptables, docker0 and forwarding sysctls are
   saved before and put back after (tests/docker/hoststate.py), unless another dockerd runs by then (what
   changed may be its own).
Images are the busybox rootfs imported locally (podman import, podman save | ctr import, docker import):
no registry. Engines' state lives in a temporary directory removed at the end. Every round rotates the
runtimes' order; the script prints medians, min-max and ratios and writes results/oci.json for
benchmarks/report.py.

crun (1.8, Debian's) refuses a hybrid cgroup host ("cgroups in hybrid mode not supported"). There,
every runtime, crun or not, runs through the same wrapper: a private mount namespace where an empty
file hides the v2 hierarchy's controllers (`unshare -m --propagation private sh -c 'mount --bind EMPTY
/sys/fs/cgroup/unified/cgroup.controllers && exec RUNTIME ...'`). Engines are given, as their runtime
binary, a small shell script per runtime doing exactly that per call. The output says so, and the
wrapper's own cost (measured alone, a few ms) is in every figure.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from typing import Callable

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from results import Recorder  # noqa: E402

ROOTFS = os.environ.get("MINIRUN_ROOTFS", "/var/lib/minirun/rootfs/busybox")
OCI = os.path.join(os.path.dirname(sys.executable), "minirun-oci")
RUNC = shutil.which("runc") or "runc"
CRUN = shutil.which("crun")
HYBRID_CONTROLLERS = "/sys/fs/cgroup/unified/cgroup.controllers"  # v2 beside v1: crun refuses to run
IMAGE = "localhost/minirun-bench:latest"
DOCKER_IMAGE = "minirun-bench"
MEMORY, CPU_QUOTA, PIDS = 64 << 20, 50_000, 64  # as bench_run.py's containers


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
    subprocess.run(["umount", "-R", f"{base}/root/overlay"], capture_output=True)


def remove_empty_parents() -> None:
    """The cgroup parents the runtimes and engines leave, as runc does: ours to remove when empty."""
    for parent in ("minirun-oci", "libpod_parent/conmon", "libpod_parent", "default", "docker"):
        for path in glob.glob(f"/sys/fs/cgroup/*/{parent}"):
            try:
                os.rmdir(path)
            except OSError:
                pass


def running(name: str) -> list[int]:
    """PIDs of the processes called ``name``."""
    pids = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/comm") as f:
                if entry.isdigit() and f.read().strip() == name:
                    pids.append(int(entry))
        except OSError:
            pass
    return pids


def timed(cmd: list[str], detached: bool = False) -> float:
    """Wall time of ``cmd``; errors go to a file (``create`` leaves a process holding its stdio)."""
    with tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
        elapsed = time.perf_counter() - t0
        if proc.returncode != 0:
            err.seek(0)
            sys.exit(f"bench_oci: {' '.join(cmd[:12])}... failed ({proc.returncode}): {err.read().strip()[-2000:]}")
    return elapsed


def bundle(base: str, name: str = "bundle", args: tuple[str, ...] = ("/bin/true",)) -> str:
    path = os.path.join(base, name)
    os.makedirs(path)
    subprocess.run(["runc", "spec", "--bundle", path], check=True)
    with open(os.path.join(path, "config.json")) as f:
        config = json.load(f)
    config["root"] = {"path": ROOTFS, "readonly": True}
    config["process"].update(terminal=False, args=list(args))
    config["linux"]["resources"] = {"memory": {"limit": MEMORY, "swap": MEMORY},
                                    "cpu": {"quota": CPU_QUOTA, "period": 100_000}, "pids": {"limit": PIDS}}
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(config, f)
    return path


def rotated(names: list[str], i: int) -> list[str]:
    """Round ``i``'s order: each runtime goes first in turn, so drift in the machine's load hits all alike."""
    k = i % len(names)
    return names[k:] + names[:k]


class Runtimes:
    """minirun-oci, runc and crun (when installed), each with its own state root; on a hybrid host every one of
    them runs through the same private-mount-namespace wrapper that lets crun start (see the docstring)."""

    def __init__(self, base: str):
        self.binaries = {"minirun-oci": OCI, "runc": RUNC, **({"crun": CRUN} if CRUN else {})}
        self.roots = {name: os.path.join(base, f"state-{name}") for name in self.binaries}
        self.crun_default_root = not os.path.exists("/run/crun")  # crun makes it even when told --root
        self.wrapper: list[str] = []
        self.empty = os.path.join(base, "no-controllers")
        if os.path.exists(HYBRID_CONTROLLERS):
            open(self.empty, "w").close()
            self.wrapper = ["unshare", "-m", "--propagation", "private", "sh", "-c",
                            f'mount --bind "$0" {HYBRID_CONTROLLERS} && exec "$@"', self.empty]
        self.scripts = self._write_scripts(os.path.join(base, "wrapped"))

    def _write_scripts(self, directory: str) -> dict[str, str]:
        """name -> an executable an engine can be given as its runtime: the wrapper, per call."""
        os.makedirs(directory)
        scripts = {}
        for name, binary in self.binaries.items():
            path = os.path.join(directory, f"wrapped-{name}")
            with open(path, "w") as f:
                if self.wrapper:
                    f.write(f"#!/bin/sh\nexec unshare -m --propagation private sh -c 'mount --bind \"$0\" "
                            f"{HYBRID_CONTROLLERS} && exec \"$@\"' {self.empty} {binary} \"$@\"\n")
                else:
                    f.write(f'#!/bin/sh\nexec {binary} "$@"\n')
            os.chmod(path, 0o755)
            scripts[name] = path
        return scripts

    def describe(self) -> str:
        if not CRUN:
            return "crun is not installed (Debian package crun): minirun-oci and runc only, no wrapper"
        if not self.wrapper:
            return "not a hybrid cgroup host: every runtime runs as it is"
        return (f"hybrid cgroup host (crun refuses it): crun and every runtime beside it run through the same wrapper, "
                f"`unshare -m --propagation private sh -c 'mount --bind EMPTY {HYBRID_CONTROLLERS} && exec RUNTIME "
                f"...'`, whose cost is in each of their figures")

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


def summarize(label: str, times: dict[str, list[float]]) -> dict[str, float]:
    """Print medians, ratios and spread; return the medians in ms."""
    med = {who: statistics.median(t) * 1000 for who, t in times.items()}
    figures = "  ".join(f"{who} {med[who]:6.1f} ms" for who in times)
    ratios = [f"minirun-oci/{peer} {med['minirun-oci'] / med[peer]:4.2f}x" for peer in ("runc", "crun")
              if peer in med and "minirun-oci" in med]
    spread = ", ".join(f"{who} {min(t) * 1000:.1f}-{max(t) * 1000:.1f}" for who, t in times.items())
    print(f"{label:<36} {figures}  {'  '.join(ratios)}  (min-max ms: {spread}; n={len(next(iter(times.values())))})",
          flush=True)
    return med


def alternate(names: list[str], argv_for: Callable[[str, int], list[str]], runs: int) -> dict[str, list[float]]:
    """``runs`` rounds of every runtime's command, the order rotating; ``argv_for(name, round)``."""
    times: dict[str, list[float]] = {n: [] for n in names}
    for i in range(runs):
        for name in rotated(names, i):
            times[name].append(timed(argv_for(name, i)))
    return times


def wrapper_alone(rt: Runtimes, runs: int) -> float | None:
    """The wrapper around /bin/true: what it adds to every figure, in ms."""
    if not rt.wrapper:
        return None
    return statistics.median(timed(rt.wrapper + ["/bin/true"]) for _ in range(runs)) * 1000


def verb_runs(rt: Runtimes, path: str, runs: int) -> dict[str, dict[str, float]]:
    """create, state, start, ps, list, kill KILL, delete of one container per runtime and round (sleep 1000), each
    timed; between kill and delete, untimed, the wait for the stopped state."""
    names = list(rt.binaries)
    verbs = ("create", "state", "start", "ps", "list", "kill", "delete")
    times = {verb: {n: [] for n in names} for verb in verbs}
    for i in range(runs):
        for name in rotated(names, i):
            cid = f"v-{name}-{i}"
            times["create"][name].append(timed(rt.argv(name, "create", "--bundle", path, cid), detached=True))
            times["state"][name].append(timed(rt.argv(name, "state", cid)))
            times["start"][name].append(timed(rt.argv(name, "start", cid)))
            times["ps"][name].append(timed(rt.argv(name, "ps", cid)))
            times["list"][name].append(timed(rt.argv(name, "list")))
            times["kill"][name].append(timed(rt.argv(name, "kill", cid, "KILL")))
            deadline = time.monotonic() + 10
            while rt.status(name, cid) != "stopped" and time.monotonic() < deadline:
                time.sleep(0.01)
            times["delete"][name].append(timed(rt.argv(name, "delete", cid)))
    return {verb: summarize(verb, times[verb]) for verb in verbs}


VERB_WHAT = {
    "create": "`create` of a `sleep` container",
    "state": "`state` of a created container",
    "start": "`start`",
    "ps": "`ps` of the running container",
    "list": "`list` (one container in the root)",
    "kill": "`kill KILL`",
    "delete": "`delete` of the stopped container",
}


class Engines:
    """podman, containerd and dockerd, each on private storage under ``base``, driving the wrapped runtimes; ``stop``
    removes all they made and puts the host's network state back."""

    def __init__(self, base: str, rt: Runtimes):
        self.base, self.rt = base, rt
        self.made_run_dirs = [d for d in ("/run/containerd", "/run/docker") if not os.path.exists(d)]
        self.podman: list[str] | None = None
        self.ctd = None  # containerd.Containerd, once started
        self.docker = self.host = None

    def run_all(self, rec: Recorder, runs: int) -> None:
        names, scripts = list(self.rt.binaries), self.rt.scripts
        missing = [tool for tool in ("podman", "containerd", "ctr") if not shutil.which(tool)]
        if missing:  # podman also builds the OCI archive containerd imports
            print(f"engines: {', '.join(missing)} not installed (make deps): no engine rows", flush=True)
            rec.note(f"no engine rows: {', '.join(missing)} not installed")
            return
        self.podman = podman = podman_with_image(self.base)
        med = summarize("podman run --rm IMAGE /bin/true", alternate(
            names, lambda name, i: podman + ["--runtime", scripts[name], "run", "--rm", *PODMAN_RUN_OPTIONS, IMAGE,
                                             "/bin/true"], runs))
        rec.add("engine.podman", "`podman run --rm IMAGE /bin/true` (podman 4.3, conmon)", "minirun-oci", med, n=runs)

        sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "oci"))
        from containerd import Containerd

        self.ctd = ctd = Containerd(self.base)
        subprocess.run(podman + ["save", "--format", "oci-archive", "-o", f"{self.base}/oci.tar", IMAGE], check=True,
                       capture_output=True)
        subprocess.run(ctd.command + ["images", "import", "--base-name", IMAGE.rsplit(":", 1)[0], f"{self.base}/oci.tar"],
                       check=True, capture_output=True)
        med = summarize("ctr run --rm IMAGE ID /bin/true", alternate(
            names, lambda name, i: ctd.command + ["run", "--runc-binary", scripts[name], "--rm", IMAGE, f"c-{name}-{i}",
                                              "/bin/true"], runs))
        rec.add("engine.ctr", "`ctr run --rm IMAGE ID /bin/true` (containerd 1.6, containerd-shim-runc-v2)",
                "minirun-oci", med, n=runs)
        self.ctd = None
        ctd.stop()

        if not shutil.which("dockerd"):
            print("docker: dockerd is not installed (docker.io): no docker row", flush=True)
            rec.note("no docker row: dockerd is not installed")
            return
        docker = self.start_docker()
        tar = subprocess.Popen(["tar", "-C", ROOTFS, "-c", "."], stdout=subprocess.PIPE)
        subprocess.run(docker.argv("import", "-", DOCKER_IMAGE), stdin=tar.stdout, check=True, capture_output=True)
        tar.stdout.close()
        tar.wait()
        med = summarize("docker run --rm IMAGE /bin/true", alternate(
            names, lambda name, i: docker.argv("run", "--rm", "--network", "none", "--runtime", f"bench-{name}",
                                               DOCKER_IMAGE, "/bin/true"), runs))
        rec.add("engine.docker", "`docker run --rm --network none IMAGE /bin/true` (Docker 20.10)", "minirun-oci", med,
                n=runs)

    def start_docker(self):
        """dockerd (tests/docker/dockerd.py) with each wrapped runtime added as bench-NAME and no network setup of
        its own; the host's network state is saved first all the same (tests/docker/hoststate.py)."""
        sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "docker"))
        from dockerd import Docker
        from hoststate import HostState

        self.host = HostState()
        os.makedirs(os.path.join(self.base, "docker"))
        self.docker = Docker(os.path.join(self.base, "docker"),
                             runtimes={f"bench-{name}": path for name, path in self.rt.scripts.items()},
                             extra_args=("--iptables=false", "--bridge=none", "--ip-forward=false"))
        return self.docker

    def stop(self) -> list[str]:
        """Everything the engines made goes; returns what could not be restored."""
        problems: list[str] = []
        if self.ctd:
            self.ctd.stop()
        if self.host is not None:
            markers = self.docker.stop() if self.docker is not None else []
            others = running("dockerd")
            if others:  # docker rules added meanwhile may be that daemon's: not ours to remove
                print(f"bench_oci: another dockerd runs (pids {others}): host network state not restored by us",
                      file=sys.stderr)
            else:
                problems = self.host.restore(markers)
            problems += [f"mount {point}" for point in self.docker.mounts()] if self.docker is not None else []
        if self.podman:
            remove_podman_storage(self.base)
        sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "docker"))
        from hoststate import remove_empty_dirs

        for d in self.made_run_dirs:
            remove_empty_dirs(d)
        return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--engine-runs", type=int, default=7)
    parser.add_argument("--no-engines", action="store_true", help="only 1 and 2 (the runtimes alone)")
    parser.add_argument("--results", help="directory for oci.json (default: benchmarks/results)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench_oci: run as root")
    base = tempfile.mkdtemp(prefix="minirun-bench-oci-")
    rec = Recorder("oci", args.results)
    rt = Runtimes(base)
    engines = Engines(base, rt)
    names = list(rt.binaries)
    problems: list[str] = []
    try:
        print(f"runtimes: {', '.join(names)}; {rt.describe()}", flush=True)
        rec.note(f"runtimes: {', '.join(names)}; {rt.describe()}")
        if rt.wrapper and not args.no_engines:
            rec.note("engines (podman, ctr, docker) are given, as each runtime's binary, a shell script running it "
                     "through that wrapper per call")
        wrapper_ms = wrapper_alone(rt, args.runs)
        if wrapper_ms is not None:
            print(f"the wrapper alone (around /bin/true): {wrapper_ms:.1f} ms", flush=True)
            rec.add("oci.wrapper", "the wrapper alone, around `/bin/true` (in every figure below)", "wrapper",
                    {"wrapper": wrapper_ms}, n=args.runs)

        path = bundle(base)
        med = summarize("run of a `runc spec` bundle", alternate(
            names, lambda name, i: rt.argv(name, "run", "--bundle", path, f"b-{name}-{i}"), args.runs))
        rec.add("oci.run", "`run` of a `runc spec` bundle, `/bin/true`, 64m / 0.5 CPU / 64 pids", "minirun-oci", med,
                n=args.runs)
        for verb, med in verb_runs(rt, bundle(base, "bundle-sleep", ("/bin/sleep", "1000")), args.runs).items():
            rec.add(f"oci.{verb}", VERB_WHAT[verb], "minirun-oci", med, n=args.runs)
        if not args.no_engines:
            engines.run_all(rec, args.engine_runs)
    finally:
        rt.cleanup()
        problems = engines.stop()
        remove_empty_parents()
        if problems:
            print(f"bench_oci: host not fully restored, {base} kept: {problems}", file=sys.stderr)
        else:
            shutil.rmtree(base, ignore_errors=True)
    rec.write()
    if problems:
        sys.exit(1)


if __name__ == "__main__":
    main()
