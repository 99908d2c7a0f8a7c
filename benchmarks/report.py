#!/usr/bin/env python3
"""Render docs/performance.md from the benchmarks' own results, so no figure is pasted.

    python3 benchmarks/report.py [--results DIR] [--template FILE] [--out FILE] [--check]

The prose is benchmarks/performance.md.in; in it, ``{{runs}}`` becomes the list of bench runs
(date, command, host, load, notes), ``{{table BENCH}}`` that bench's rows, one line per peer
with the ratio, and ``{{targets}}`` every target of benchmarks/targets.py with the figure it
bounds, its peer, date, load and met / NOT met. --check renders and compares with --out
instead of writing (exit 1 when they differ). The targets table is printed as well.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from typing import NamedTuple

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from results import RESULTS_DIR, load_all  # noqa: E402
from targets import TARGETS, Target  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
TEMPLATE = os.path.join(HERE, "performance.md.in")
OUT = os.path.join(os.path.dirname(HERE), "docs", "performance.md")
DECIMALS = {"ms": 1, "ns": 1, "MiB": 2, "s": 3}


def figure(value: float, unit: str) -> str:
    return f"{value:.{DECIMALS.get(unit, 2)}f} {unit}"


def ratio(row: dict, peer: str) -> float | None:
    """subject / peer; None when the peer was not measured, or when a figure is not above zero (a cost over a
    baseline, such as seccomp's, can come out zero or negative in noise: no ratio means anything then)."""
    ours, theirs = row["values"][row["subject"]], row["values"].get(peer)
    if theirs is None or ours <= 0 or theirs <= 0:
        return None
    return ours / theirs


def peers(row: dict) -> list[str]:
    return [who for who in row["values"] if who != row["subject"]]


def table_lines(rows: list[dict]) -> list[str]:
    """One markdown line per (row, peer): the row's subject and figure on its first line only."""
    lines = ["| what | ours | figure | peer | peer's figure | ours / peer | n |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for row in rows:
        ours = figure(row["values"][row["subject"]], row["unit"])
        n = "" if row.get("n") is None else str(row["n"])
        others = peers(row) or [None]
        for i, peer in enumerate(others):
            head = [row["what"], row["subject"], ours] if i == 0 else ["", "", ""]
            if peer is None:
                tail = ["–", "–", "–"]
            else:
                r = ratio(row, peer)
                tail = [peer, figure(row["values"][peer], row["unit"]), "–" if r is None else f"{r:.2f}x"]
            lines.append("| " + " | ".join([*head, *tail, n if i == 0 else ""]) + " |")
    return lines


class Check(NamedTuple):
    target: Target
    row: dict | None
    result: dict | None
    measured: float | None  # the ratio (peer set) or the subject's figure (no peer)
    met: bool | None  # None: not measured


def evaluate(results: list[dict], targets: tuple[Target, ...] = TARGETS) -> list[Check]:
    by_id = {row["id"]: (row, result) for result in results for row in result["rows"]}
    checks = []
    for target in targets:
        row, result = by_id.get(target.row, (None, None))
        measured = None
        if row is not None:
            measured = row["values"][row["subject"]] if target.peer is None else ratio(row, target.peer)
        met = None if measured is None else measured <= target.limit
        checks.append(Check(target, row, result, measured, met))
    return checks


def measured_text(value: float, limit: float) -> str:
    """A ratio with two decimals, or up to four where fewer would read as the limit it misses (1.00x NOT met)."""
    for decimals in (2, 3, 4):
        text = f"{value:.{decimals}f}"
        if float(text) != limit or value <= limit:
            break
    return f"{text}x"


def verdict(check: Check) -> str:
    if check.met is None:
        return "not measured" if check.row is None else "no ratio (a figure ≤ 0)"
    return "met" if check.met else "**NOT met**"


def target_lines(checks: list[Check]) -> list[str]:
    lines = ["| target | ours | figure | peer | peer's figure | measured | limit | met | date | load | source |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for c in checks:
        t, row = c.target, c.row
        if row is None:
            what, ours, fig, peer_fig, measured, date, load = t.row, "–", "–", "–", "–", "–", "–"
        else:
            unit = row["unit"]
            what, ours, fig = row["what"], row["subject"], figure(row["values"][row["subject"]], unit)
            peer_fig = "–" if t.peer is None or t.peer not in row["values"] else figure(row["values"][t.peer], unit)
            if c.measured is None:
                measured = "–"
            else:
                measured = measured_text(c.measured, t.limit) if t.peer else figure(c.measured, unit)
            date = c.result["date"][:10]
            load = "{:.1f} → {:.1f}".format(*c.result["load"])
        limit = f"≤ {t.limit:.2f}x" if t.peer else f"≤ {figure(t.limit, row['unit']) if row else t.limit}"
        lines.append("| " + " | ".join([what, ours, fig, t.peer or "–", peer_fig, measured, limit, verdict(c), date,
                                         load, t.source]) + " |")
    return lines


def tally(checks: list[Check]) -> str:
    met = sum(c.met is True for c in checks)
    missing = sum(c.met is None for c in checks)
    return (f"{met} of {len(checks)} targets met, {len(checks) - met - missing} NOT met"
            + (f", {missing} without a figure" if missing else "") + ".")


def run_lines(results: list[dict]) -> list[str]:
    lines = []
    for r in results:
        h = r["host"]
        at = f" at commit {r['commit']}" if r.get("commit") else ""
        lines.append(f"- **{r['bench']}**: `{r['command']}`{at}, {r['date'].replace('T', ' ').replace('Z', ' UTC')}, "
                     f"kernel {h['kernel']}, {h['cpus']} CPUs, {h['cgroups']} cgroups, "
                     "load average {:.1f} before, {:.1f} after".format(*r["load"]))
        lines += [f"  - {note}" for note in r["notes"]]
    return lines


def render(template: str, results: list[dict], targets: tuple[Target, ...] = TARGETS) -> str:
    by_bench = {r["bench"]: r for r in results}

    def table(match: re.Match) -> str:
        result = by_bench.get(match.group(1))
        if result is None:
            return f"_Not measured: no `{match.group(1)}` result; run `make bench`._"
        return "\n".join(table_lines(result["rows"]))

    out = re.sub(r"\{\{table (\w+)\}\}", table, template)
    out = out.replace("{{runs}}", "\n".join(run_lines(results)))
    checks = evaluate(results, targets)
    return out.replace("{{targets}}", "\n".join([*target_lines(checks), "", tally(checks)]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", default=RESULTS_DIR)
    parser.add_argument("--template", default=TEMPLATE)
    parser.add_argument("--out", default=OUT)
    parser.add_argument("--check", action="store_true", help="compare with --out instead of writing it")
    args = parser.parse_args()
    with open(args.template) as f:
        template = f.read()
    results = load_all(args.results)
    text = render(template, results)
    if args.check:
        with open(args.out) as f:
            same = f.read() == text
        print(f"{args.out} {'is' if same else 'is NOT'} what {args.template} and {args.results} render")
        return 0 if same else 1
    with open(args.out, "w") as f:
        f.write(text)
    checks = evaluate(results)
    print("\n".join([*target_lines(checks), "", tally(checks)]))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
