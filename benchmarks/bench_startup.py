#!/usr/bin/env python3
"""What an executable's start costs before minirun's own code: the native front against pip's console script.

    .venv/bin/python benchmarks/bench_startup.py [--runs 40] [--results DIR]

Three ways to run `minirun-oci --version` (it imports little, so the start is most of it):
the installed native front (csrc/front.c: python -I -S with the package's path), what pip's
console script does (python with site, `import re`, then the entry point), and the floor,
`python -I -S -c pass`. Rounds alternate the three; medians, and ratios to the front; the figures
go to results/startup.json for benchmarks/report.py as well.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from results import Recorder  # noqa: E402

BIN = os.path.dirname(sys.executable)
# pip's console-script template (pip/_internal/operations/install/wheel.py), as one -c line
CONSOLE_SCRIPT = ("import re; import sys; from minirun.oci.main import cli; "
                  "sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0]); sys.exit(cli())")
WAYS = {
    "native front": [os.path.join(BIN, "minirun-oci"), "--version"],
    "pip's console script": [sys.executable, "-c", CONSOLE_SCRIPT, "--version"],
    "python -I -S -c pass": [sys.executable, "-I", "-S", "-c", "pass"],
}


def timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--results", help="directory for startup.json (default: benchmarks/results)")
    args = parser.parse_args()
    runs = args.runs
    rec = Recorder("startup", args.results)
    times: dict[str, list[float]] = {name: [] for name in WAYS}
    for cmd in WAYS.values():
        timed(cmd)  # warm the page cache and the .pyc files
    for i in range(runs):
        order = list(WAYS)[i % len(WAYS):] + list(WAYS)[:i % len(WAYS)]
        for name in order:
            times[name].append(timed(WAYS[name]))
    front = statistics.median(times["native front"])
    print(f"start-up of `minirun-oci --version`, {runs} alternated rounds, {time.strftime('%Y-%m-%d')}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"  {name:22s} {median * 1e3:6.2f} ms  (min {min(values) * 1e3:.2f}, max {max(values) * 1e3:.2f})"
              f"  {median / front:.2f}x the front")
    rec.add("startup.front", "`minirun-oci --version`: the executable's start, before minirun's own work",
            "native front", {name: statistics.median(values) * 1e3 for name, values in times.items()}, n=runs)
    rec.write()


if __name__ == "__main__":
    main()
