#!/usr/bin/env python3
"""Container start cost: minirun against runc and crun, side by side in one run.

    sudo .venv/bin/python benchmarks/bench_run.py [--rootfs DIR] [--runs 100] [--api-runs 100] [--results DIR]

1. CLI: `minirun run --rm --memory 64m --cpus 0.5 --pids-limit 64 ROOTFS /bin/true` by the executable a
   plain `pip install` of a wheel of this checkout gives, in a fresh venv of the same interpreter
   (csrc/front.c, as every install path gives it: tests/unit/test_install.py), and by `make venv`'s
   editable install (its front reads the .pth naming the checkout), vs `runc run` of a bundle with the
   same rootfs, namespaces and limits, alternated, the order rotating every round. runc runs two
   bundles: "runc (same confinement)" applies what `minirun run` applies by default (Docker's
   seccomp profile, capabilities, no_new_privs, masked and read-only paths:
   oci.defaults.with_minirun_defaults, as `minirun compare`'s runc column does), the target's peer;
   "runc (runc spec's bundle)" is `runc spec`'s as it comes, which loads no seccomp filter.
2. The same `minirun run`, and `runc run` and `crun run` of the same-confinement bundle, each through
   the private-mount-namespace wrapper crun needs on a hybrid cgroup host (bench_oci.py's; the same
   wrapper for all three, stated in the output), in the same rounds.
3. API: 100 sequential containers through minirun.run(), each with the five namespaces (+cgroup),
   pivot_root and three limits (the per-container median and mean); vs 100 sequential `runc run` of
   the same-confinement bundle.
Prints medians, min/max and ratios, and writes results/run.json for benchmarks/report.py.
Targets (issue 21): API <= 5 ms per container, `minirun run` from a plain pip install <= 0.8x runc
(same confinement).
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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_oci import CRUN, Runtimes, rotated  # noqa: E402
from results import Recorder  # noqa: E402


SAME = "runc (same confinement)"
BARE = "runc (runc spec's bundle)"


def runc_bundle(rootfs: str, confined: bool) -> str:
    """A bundle whose config.json comes from `runc spec`, set to our rootfs and limits; ``confined``: with
    the security of `minirun run`'s default container too (oci.defaults.with_minirun_defaults). runc
    compiles that seccomp profile with libseccomp at every start; minirun loads its cached program."""
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
    if confined:
        from minirun.oci.defaults import with_minirun_defaults

        config = with_minirun_defaults(config)
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
    return (f"{name:<44} median {statistics.median(ms):7.1f} ms   min {min(ms):6.1f}   max {max(ms):6.1f}"
            f"   (n={len(ms)})")


def pip_installed(base: str) -> str | None:
    """`minirun` as `pip install` of a wheel of this checkout gives it, in a fresh venv of make venv's
    interpreter (dependencies from pip's index and cache, as any install's); None if that fails."""
    checkout = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    wheels, venv = os.path.join(base, "wheels"), os.path.join(base, "pip-venv")
    python = os.path.realpath(getattr(sys, "_base_executable", sys.executable))
    steps = ([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", wheels, checkout],
             [python, "-m", "venv", "--without-pip", venv])
    for step in steps:
        if subprocess.run(step, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE).returncode != 0:
            return None
    wheel = next((os.path.join(wheels, n) for n in os.listdir(wheels) if n.startswith("minirun-")), None)
    install = [sys.executable, "-m", "pip", "--python", os.path.join(venv, "bin", "python"), "install", "-q", wheel or ""]
    if not wheel or subprocess.run(install, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE).returncode != 0:
        return None
    return os.path.join(venv, "bin", "minirun")


def bench_cli(rootfs: str, bundles: dict[str, str], rt: Runtimes, runs: int, minirun: str) -> dict[str, list[float]]:
    """Every contender once per round, the order rotating (see the docstring's 1 and 2)."""
    options = ["run", "--rm", "--memory", "64m", "--cpus", str(CPUS), "--pids-limit", str(PIDS), rootfs, "/bin/true"]
    editable = os.path.join(os.path.dirname(sys.executable), "minirun")
    commands = {"minirun": lambda i: [minirun, *options]}
    if minirun != editable:
        commands["minirun (make venv)"] = lambda i: [editable, *options]
    for peer, bundle in bundles.items():
        commands[peer] = lambda i, bundle=bundle: ["runc", "--root", RUNC_STATE, "run", "--bundle", bundle, f"bench-{i}"]
    bundle = bundles.get(SAME)
    if bundle:
        if rt.wrapper and CRUN:
            commands["wrapped minirun"] = lambda i: [*rt.wrapper, minirun, *options]
            commands["wrapped runc"] = lambda i: rt.argv("runc", "run", "--bundle", bundle, f"w-{i}")
            commands["wrapped crun"] = lambda i: rt.argv("crun", "run", "--bundle", bundle, f"w-{i}")
        elif CRUN:
            commands["crun"] = lambda i: [CRUN, "--root", rt.roots["crun"], "run", "--bundle", bundle, f"bench-{i}"]
    names = list(commands)
    samples: dict[str, list[float]] = {n: [] for n in names}
    for i in range(runs):
        for name in rotated(names, i):
            samples[name].append(timed(commands[name](i)))
    return samples


def bench_api(rootfs: str, runs: int) -> tuple[list[float], dict[str, list[float]]]:
    """Wall time of each minirun.run(), and the phases it reports itself (Result.timings, seconds)."""
    from minirun import ContainerSpec, Limits, Process, run

    devnull = os.open(os.devnull, os.O_RDWR)
    samples = []
    phases: dict[str, list[float]] = {}
    try:
        for _ in range(runs):
            spec = ContainerSpec(rootfs=rootfs, process=Process(["/bin/true"]),
                                 limits=Limits.from_cpus(CPUS, memory=MEMORY, pids=PIDS))
            t0 = time.perf_counter()
            result = run(spec, stdio=(devnull, devnull, devnull))
            samples.append(time.perf_counter() - t0)
            assert result.exit_code == 0
            for phase, seconds in (getattr(result, "timings", None) or {}).items():
                phases.setdefault(phase, []).append(seconds)
    finally:
        os.close(devnull)
    return samples, phases


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rootfs", default=ROOTFS)
    # 100: with 30 rounds, two identical minirun installs measured 20.4 and 17.8 ms in one run on this
    # noisy host (a round takes ~0.2 s, so 100 cost ~20 s more)
    parser.add_argument("--runs", type=int, default=100, help="CLI runs of each contender (alternated)")
    parser.add_argument("--api-runs", type=int, default=100)
    parser.add_argument("--results", help="directory for run.json (default: benchmarks/results)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("benchmarks need root")

    rec = Recorder("run", args.results)
    have_runc = shutil.which("runc") is not None
    bundles = {peer: runc_bundle(args.rootfs, peer == SAME) for peer in (SAME, BARE)} if have_runc else {}
    bundle = bundles.get(SAME)
    base = tempfile.mkdtemp(prefix="minirun-bench-run-")
    rt = Runtimes(base)
    try:
        print(f"host: {os.uname().release}, {os.cpu_count()} CPUs; rootfs {args.rootfs}")
        setup = (f"pid mount uts ipc net cgroup namespaces, pivot_root, --memory 64m --cpus {CPUS} "
                 f"--pids-limit {PIDS}")
        print(f"each container: {setup}")
        rec.note(f"each container: {setup}; `/bin/true`")
        minirun = pip_installed(base)
        if minirun:
            rec.note("`minirun`: the executable (csrc/front.c) of a plain `pip install` of a wheel of this checkout "
                     "in a fresh venv; `minirun (make venv)`: the editable install's, whose front reads the .pth "
                     "that names the checkout")
        else:
            minirun = os.path.join(os.path.dirname(sys.executable), "minirun")
            rec.note("`minirun`: make venv's executable (csrc/front.c): a pip install of a wheel failed here")
        print(f"minirun: {minirun}")
        # The interpreter matters: Debian's (profile-guided, libpython linked in) started `minirun run`
        # ~2 ms sooner than an --enable-shared build (pyenv's) on the same host.
        rec.note(f"Python: {os.path.realpath(sys.executable)} {sys.version.split()[0]}")
        if rt.wrapper and CRUN:
            rec.note(f"`wrapped ...`: {rt.describe()}")
            print(f"wrapped: {rt.describe()}")

        print(f"\n== CLI, /bin/true end to end ({args.runs} alternated rounds)", flush=True)
        cli = bench_cli(args.rootfs, bundles, rt, args.runs, minirun)
        for name, samples in cli.items():
            print(summary(name, samples))
        if have_runc:
            for name in (n for n in ("minirun", "minirun (make venv)") if n in cli):
                for peer in (SAME, BARE):
                    print(f"ratio {name}/{peer}: {statistics.median(cli[name]) / statistics.median(cli[peer]):.2f}x")
            what = "`minirun run --rm ROOTFS /bin/true`, 64m / 0.5 CPU / 64 pids, end to end"
            rec.note(f"`{SAME}`: `runc spec`'s bundle with what `minirun run` applies by default (Docker's seccomp "
                     "profile, capabilities, no_new_privs, masked and read-only paths: "
                     f"oci.defaults.with_minirun_defaults), the target's peer; `{BARE}`: `runc spec`'s as it comes "
                     "(runc's capabilities and masked paths, no seccomp filter)")
            rec.add("run.cli", what, "minirun", {k: median_ms(cli[k]) for k in ("minirun", "minirun (make venv)", SAME,
                                                                                BARE) if k in cli}, n=args.runs)
            wrapped = [w for w in ("wrapped minirun", "wrapped runc", "wrapped crun") if w in cli]
            if wrapped:
                rec.add("run.cli.wrapped", f"{what}, every one through crun's wrapper", "wrapped minirun",
                        {w: median_ms(cli[w]) for w in wrapped}, n=args.runs)
            elif "crun" in cli:
                rec.add("run.cli.crun", what, "minirun",
                        {k: median_ms(cli[k]) for k in ("minirun", SAME, "crun")}, n=args.runs)
        else:
            print("runc: not installed (apt-get install runc) - no comparison")

        print(f"\n== Python API, {args.api_runs} sequential containers", flush=True)
        api, phases = bench_api(args.rootfs, args.api_runs)
        print(summary("minirun.run()", api))
        if phases:
            split = ", ".join(f"{phase} {median_ms(t):.1f} ms" for phase, t in phases.items())
            print(f"minirun.run()'s own timings (medians, from its start): {split}")
            rec.note(f"`minirun.run()`'s own Result.timings, medians from its start: {split}")
        mean = sum(api) / len(api) * 1000
        print(f"total {sum(api):.2f} s, {mean:.1f} ms per container (mean), {median_ms(api):.1f} ms median"
              f"   (target <= 5 ms, issue 21)")
        values = {"minirun.run()": median_ms(api)}
        if have_runc:
            t0 = time.perf_counter()
            for i in range(args.api_runs):
                timed(["runc", "--root", RUNC_STATE, "run", "--bundle", bundle, f"seq-{os.getpid()}-{i}"])
            total = time.perf_counter() - t0
            print(f"{args.api_runs} sequential runc run ({SAME}): total {total:.2f} s, "
                  f"{total / args.api_runs * 1000:.1f} ms per container")
            print(f"ratio minirun API/runc: {sum(api) / total:.2f}x")
            values["runc run (CLI, sequential, mean)"] = total / args.api_runs * 1000
        rec.add("api.run", f"{args.api_runs} sequential containers through `minirun.run()`, per container (median; "
                f"mean {mean:.1f} ms), same setup", "minirun.run()", values, n=args.api_runs)
    finally:
        rt.cleanup()
        for path in bundles.values():
            shutil.rmtree(path, ignore_errors=True)
        shutil.rmtree(RUNC_STATE, ignore_errors=True)
        shutil.rmtree(base, ignore_errors=True)
    rec.write()


if __name__ == "__main__":
    main()
