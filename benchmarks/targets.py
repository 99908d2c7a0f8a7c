"""The performance targets the generated docs/performance.md checks, one line each.

A target bounds a row of benchmarks/results (by its id): either the ratio of its subject to
one peer (``peer``), or the subject's own figure (``peer`` None, ``limit`` in the row's unit).
"""

from __future__ import annotations

from typing import NamedTuple


class Target(NamedTuple):
    row: str
    peer: str | None
    limit: float
    source: str


ISSUE_21 = "issue 21"
EARLIER = "earlier work"
HOT_VERBS = ("state", "start", "kill", "delete", "ps", "list")
ENGINES = ("podman", "ctr", "docker")

TARGETS: tuple[Target, ...] = (
    *(Target(f"oci.{verb}", "crun", 1.0, ISSUE_21) for verb in HOT_VERBS),
    *(Target(f"engine.{engine}", "runc", 1.0, ISSUE_21) for engine in ENGINES),
    *(Target(f"engine.{engine}", "crun", 1.1, ISSUE_21) for engine in ENGINES),
    Target("run.cli", "runc (same confinement)", 0.8, ISSUE_21),
    Target("api.run", None, 5.0, ISSUE_21),
    Target("oci.run", "runc", 1.0, EARLIER),
    Target("seccomp.getppid", "runc (same profile)", 1.0, EARLIER),
    Target("seccomp.personality", "runc (same profile)", 1.0, EARLIER),
    Target("idle.rss", None, 3.0, EARLIER),
    Target("vm.cli", "plain QEMU", 1.1, EARLIER),
)
