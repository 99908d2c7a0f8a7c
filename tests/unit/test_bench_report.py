"""benchmarks/report.py: the performance page's tables, ratios and met flags come from the benchmarks'
results, and docs/performance.md is exactly what the committed results render (no pasted figure)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BENCHMARKS = os.path.join(REPO, "benchmarks")


def _load(name: str, filename: str):
    spec = importlib.util.spec_from_file_location(name, os.path.join(BENCHMARKS, filename))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


report = _load("bench_report", "report.py")
Target = report.Target


def _result(rows: list[dict], bench: str = "oci") -> dict:
    return {"bench": bench, "date": "2026-12-06T12:00:00Z", "command": f"bench_{bench}.py --runs 3",
            "commit": "abc1234", "host": {"kernel": "6.1", "cpus": 2, "cgroups": "hybrid"}, "load": [0.5, 1.25],
            "notes": ["a note"], "rows": rows}


def _row(row_id: str, values: dict[str, float], subject: str = "minirun-oci", unit: str = "ms") -> dict:
    return {"id": row_id, "what": f"`{row_id}`", "unit": unit, "n": 3, "subject": subject, "values": values}


STATE = _row("oci.state", {"minirun-oci": 4.0, "runc": 5.0, "crun": 3.2})
PODMAN = _row("engine.podman", {"minirun-oci": 110.0, "runc": 100.0, "crun": 100.0})
API = _row("api.run", {"minirun.run()": 4.9}, subject="minirun.run()")


def test_ratio_is_ours_over_the_peer_and_none_without_the_peer():
    assert report.ratio(STATE, "runc") == pytest.approx(0.8)
    assert report.ratio(STATE, "crun") == pytest.approx(1.25)
    assert report.ratio(STATE, "kata") is None


def test_met_flags_bound_ratios_and_absolute_figures():
    targets = (Target("oci.state", "runc", 1.0, "t"), Target("oci.state", "crun", 1.0, "t"),
               Target("engine.podman", "crun", 1.1, "t"), Target("engine.podman", "runc", 1.0, "t"),
               Target("api.run", None, 5.0, "t"), Target("engine.docker", "runc", 1.0, "t"))
    checks = report.evaluate([_result([STATE, PODMAN, API])], targets)
    assert [c.met for c in checks] == [True, False, True, False, True, None]
    assert report.tally(checks) == "3 of 6 targets met, 2 NOT met, 1 without a figure."
    assert checks[1].measured == pytest.approx(1.25)
    assert checks[4].measured == 4.9  # no peer: the figure itself, in the row's unit
    assert checks[2].measured == pytest.approx(1.1)  # at the limit is met


def test_every_target_is_measured_in_the_committed_results():
    """A target whose row no bench writes (a typo in targets.py) would stay "not measured" for ever."""
    measured = {row["id"] for result in report.load_all() for row in result["rows"]}
    assert [t.row for t in report.TARGETS if t.row not in measured] == []


def test_a_cost_at_or_below_zero_has_no_ratio_and_meets_nothing():
    """seccomp's figures are costs over a baseline: noise can make one negative, and -3x is not "met"."""
    noisy = _row("seccomp.getppid", {"minirun": -4.0, "runc (same profile)": 16.0}, subject="minirun", unit="ns")
    assert report.ratio(noisy, "runc (same profile)") is None
    [check] = report.evaluate([_result([noisy], "seccomp")], (Target("seccomp.getppid", "runc (same profile)", 1.0,
                                                                     "t"),))
    assert check.met is None and report.verdict(check) == "no ratio (a figure ≤ 0)"
    assert report.table_lines([noisy])[2].endswith("| runc (same profile) | 16.0 ns | – | 3 |")


def test_table_has_one_line_per_peer_with_its_ratio():
    lines = report.table_lines([STATE, API])
    assert lines[2] == "| `oci.state` | minirun-oci | 4.0 ms | runc | 5.0 ms | 0.80x | 3 |"
    assert lines[3] == "|  |  |  | crun | 3.2 ms | 1.25x |  |"
    assert lines[4] == "| `api.run` | minirun.run() | 4.9 ms | – | – | – | 3 |"
    assert len(lines) == 5


def test_target_lines_carry_peer_date_load_and_verdict():
    targets = (Target("oci.state", "crun", 1.0, "issue 21"), Target("engine.ctr", "runc", 1.0, "issue 21"))
    lines = report.target_lines(report.evaluate([_result([STATE])], targets))
    assert lines[2] == ("| `oci.state` | minirun-oci | 4.0 ms | crun | 3.2 ms | 1.25x | ≤ 1.00x | **NOT met** | "
                        "2026-12-06 | 0.5 → 1.2 | issue 21 |")
    assert "| not measured |" in lines[3]


def test_a_ratio_just_over_its_limit_does_not_read_as_the_limit():
    assert report.measured_text(1.0012, 1.0) == "1.001x"
    assert report.measured_text(1.0002, 1.0) == "1.0002x"
    assert report.measured_text(0.9991, 1.0) == "1.00x"  # met: two decimals say enough
    assert report.measured_text(1.2345, 1.0) == "1.23x"


def test_render_fills_the_placeholders_and_says_what_was_not_measured():
    template = "# P\n{{targets}}\n\n{{runs}}\n\n{{table oci}}\n\n{{table vm}}\n"
    out = report.render(template, [_result([STATE])], (Target("oci.state", "crun", 1.0, "issue 21"),))
    assert "{{" not in out
    assert "| `oci.state` | minirun-oci | 4.0 ms | runc | 5.0 ms | 0.80x | 3 |" in out
    assert "_Not measured: no `vm` result; run `make bench`._" in out
    assert "- **oci**: `bench_oci.py --runs 3` at commit abc1234, 2026-12-06 12:00:00 UTC" in out
    assert "  - a note" in out


def test_docs_performance_is_what_the_committed_results_render():
    """A figure edited by hand in docs/performance.md (or a template change not rendered) fails here:
    `make bench-report` regenerates the page."""
    out = subprocess.run([sys.executable, os.path.join(BENCHMARKS, "report.py"), "--check"], capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_a_recorded_run_is_what_the_renderer_reads(tmp_path):
    results = _load("bench_results", "results.py")
    rec = results.Recorder("oci", str(tmp_path))
    rec.note("wrapper stated")
    rec.add("oci.state", "`state`", "minirun-oci", {"minirun-oci": 4.0, "crun": 5.0}, n=3)
    with pytest.raises(AssertionError):
        rec.add("oci.kill", "`kill`", "minirun-oci", {"crun": 5.0})  # a row without our own figure
    rec.write()
    [loaded] = results.load_all(str(tmp_path))
    assert loaded["bench"] == "oci" and loaded["notes"] == ["wrapper stated"] and len(loaded["load"]) == 2
    assert loaded["host"]["cpus"] == os.cpu_count() and loaded["date"].endswith("Z")
    head = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    if head.returncode == 0:  # a checkout: the figures name the code they measured
        assert loaded["commit"].rstrip("+") == head.stdout.strip()
    [check] = report.evaluate([loaded], (Target("oci.state", "crun", 1.0, "issue 21"),))
    assert check.met is True and check.measured == pytest.approx(0.8)
