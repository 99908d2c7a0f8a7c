"""What a benchmark leaves for docs/performance.md: one JSON file per bench script in the results directory.

A result is the bench's rows plus when, where and how it was measured:

    {"bench": "oci", "date": "2026-12-06T12:30:00Z", "command": "bench_oci.py --runs 5", "commit": "3a6695e",
     "host": {"kernel": ..., "cpus": 2, "cgroups": "hybrid"}, "load": [before, after],
     "notes": ["every runtime through the same wrapper ..."],
     "rows": [{"id": "oci.state", "what": "`state` of a created container", "unit": "ms", "n": 5,
               "subject": "minirun-oci", "values": {"minirun-oci": 9.8, "runc": 5.1, "crun": 3.2}}]}

Every value of a row was measured in the same run, alternated with the others; ``subject`` is ours,
the other values are its peers (lower is better for every unit). benchmarks/report.py renders the
files; the targets are benchmarks/targets.py's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def loadavg() -> float:
    """The 1-minute load average: other tenants of a shared machine show here."""
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def cgroup_mode() -> str:
    if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        return "v2"
    return "hybrid" if os.path.exists("/sys/fs/cgroup/unified/cgroup.controllers") else "v1"


def host() -> dict:
    return {"kernel": os.uname().release, "cpus": os.cpu_count(), "cgroups": cgroup_mode()}


def commit() -> str | None:
    """The checkout's commit, ``+`` when its tracked files differ from it: the code the figures belong to."""
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        head = subprocess.run(["git", "-C", repo, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
        dirty = subprocess.run(["git", "-C", repo, "diff", "--quiet", "HEAD", "--", ".", ":!benchmarks/results",
                                ":!docs/performance.md"], capture_output=True)
    except OSError:
        return None
    if head.returncode != 0:
        return None
    return head.stdout.strip() + ("+" if dirty.returncode else "")


def row(row_id: str, what: str, subject: str, values: dict[str, float], unit: str = "ms", n: int | None = None) -> dict:
    """One measured line: ``values`` holds ``subject`` (ours) and its peers, in display order."""
    assert subject in values, f"{row_id}: no value for {subject}"
    return {"id": row_id, "what": what, "unit": unit, "n": n, "subject": subject, "values": dict(values)}


class Recorder:
    """Collects one bench's rows and notes; ``write`` stamps date and load and saves the file."""

    def __init__(self, bench: str, results_dir: str | None = None):
        self.bench = bench
        self.results_dir = results_dir or RESULTS_DIR
        self.load_before = loadavg()
        self.rows: list[dict] = []
        self.notes: list[str] = []

    def add(self, *args, **kwargs) -> dict:
        r = row(*args, **kwargs)
        self.rows.append(r)
        return r

    def note(self, text: str) -> None:
        self.notes.append(text)

    def write(self) -> str:
        result = {
            "bench": self.bench,
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "command": " ".join([os.path.basename(sys.argv[0]), *sys.argv[1:]]),
            "commit": commit(),
            "host": host(),
            "load": [self.load_before, loadavg()],
            "notes": self.notes,
            "rows": self.rows,
        }
        os.makedirs(self.results_dir, exist_ok=True)
        path = os.path.join(self.results_dir, f"{self.bench}.json")
        with open(path + ".tmp", "w") as f:
            json.dump(result, f, indent=1)
            f.write("\n")
        os.replace(path + ".tmp", path)
        print(f"results: {path}", flush=True)
        return path


def load_all(results_dir: str | None = None) -> list[dict]:
    """Every result file in the directory, in file-name order."""
    results_dir = results_dir or RESULTS_DIR
    if not os.path.isdir(results_dir):
        return []
    out = []
    for name in sorted(os.listdir(results_dir)):
        if name.endswith(".json"):
            with open(os.path.join(results_dir, name)) as f:
                out.append(json.load(f))
    return out
