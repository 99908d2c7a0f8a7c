"""Pure logic of `minirun compare`: markers, units, judgements, rendering, the schema checker (no root)."""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from minirun.compare import escapes, report, schema, units
from minirun.compare.units import Marker, Markers
from minirun.probes import PROBES


def test_marker_lines_survive_a_serial_console():
    line = "\x1b[0m[   1.2] junk @@mrc perf_cpu sample 10.000000 10.250000\r\r"
    m = units.parse_line(line, at=5.0)
    assert m == Marker("perf_cpu", "sample", "10.000000 10.250000", 5.0)
    assert units.parse_line("no marker here") is None
    assert units.parse_line("@@mrc lonely") is None
    text = "boot noise\r\n@@mrc kernel release 6.1.0\r\n@@mrc suite done \r\n"
    assert [(m.unit, m.key, m.value) for m in units.parse_markers(text)] == [
        ("kernel", "release", "6.1.0"), ("suite", "done", "")]


def test_durations_subtract_the_clock_overhead_and_drop_bad_samples():
    ms = Markers([Marker("clock", "sample", "100.000000 100.002000"),
                  Marker("w", "sample", "100.0 101.0"), Marker("w", "sample", "0.000000 0.000000"),
                  Marker("w", "sample", "5 4"), Marker("w", "sample", "garbage")])
    overhead = ms.durations("clock")[0]
    assert overhead == pytest.approx(0.002)
    assert ms.durations("w", overhead) == [pytest.approx(0.998)]


def test_begin_end_and_status():
    ms = Markers(units.parse_markers("@@mrc a begin\n@@mrc a end 3\n@@mrc b begin\n"))
    assert ms.ran("a") and ms.status("a") == 3
    assert not ms.ran("b") and ms.status("b") is None


def test_ping_and_ip_parsers():
    assert units.parse_rtt("round-trip min/avg/max = 0.052/0.104/0.206 ms") == {"min": 0.052, "avg": 0.104,
                                                                                "max": 0.206}
    assert units.parse_rtt("ping: sendto: Network unreachable") is None
    line = r"2: eth0    inet 10.88.0.2/24 brd 10.88.0.255 scope global eth0\       valid_lft forever"
    assert units.parse_addr(line) == ("eth0", "inet", "10.88.0.2/24")


def test_token_pattern_matches_the_token_but_not_itself():
    token = "mrc-0123abcd"
    pattern = units.pattern_for(token)
    assert re.search(pattern, f"sh -c read {token}")
    assert not re.search(pattern, f"grep -l -e {pattern} /proc/1/cmdline")


def test_every_unit_is_framed_and_the_suite_runs_under_busybox(rootfs, tmp_path):
    script = units.suite_script(["clock", "perf_syscall", "storage"])
    for name in ("clock", "perf_syscall", "storage"):
        assert f"UNIT={name}; mark begin" in script
    bins = ":".join(os.path.join(rootfs, d) for d in ("bin", "sbin"))
    env = {"PATH": bins, "MRC_RUNS": "2", "MRC_DATA": str(tmp_path), "MRC_STORE_MB": "1", "MRC_SURVIVOR": "hello"}
    out = subprocess.run([os.path.join(rootfs, "bin", "busybox"), "sh", "-c", script], env=env,
                         capture_output=True, text=True, timeout=60).stdout
    ms = Markers(units.parse_markers(out))
    assert ms.status("clock") == 0 and ms.status("perf_syscall") == 0
    assert len(ms.durations("perf_syscall")) == 2
    assert ms.first("storage", "survivor") == "written"
    assert (tmp_path / "mrc-survivor").read_text().strip() == "hello"
    assert ms.values("suite", "done") == [""]


# ---------------------------------------------------------------------------------------------- judgements


def _data(**suites) -> dict:
    """A minimal raw-data dict: suites are lists of marker lines per backend."""
    data = {"backends": {n: {"label": n, "available": True, "reason": None} for n in report.COLUMNS},
            "samples": {n: {} for n in report.COLUMNS}, "options": {"runs": 2, "store_mib": 1, "pings": 3},
            "environment": {"kernel": "6.18", "accel": {"name": "tcg", "reason": "test"}},
            "host_evidence": {"boot_id": "HOST", "macs": {"eth0": "02:00:00:00:00:01"}}, "disk": {}}
    for name, lines in suites.items():
        markers = units.parse_markers("\n".join(lines))
        data["samples"][name]["suite"] = {"markers": Markers(markers).to_list(), "host_checks": {}, "meta": {},
                                          "exit_code": 0, "error": None}
    data["backends"]["runc"] = {"label": "runc", "available": False, "reason": "runc is not installed"}
    return data


def _suite(boot_id: str, module_rc: int, iface: str = "eth0 aa:bb:cc:dd:ee:ff") -> list[str]:
    return [f"@@mrc kernel boot_id {boot_id}", "@@mrc host_processes visible no", f"@@mrc host_network iface {iface}",
            "@@mrc host_network begin", "@@mrc host_network end 0", "@@mrc host_files reachable no",
            "@@mrc hostname attempt allowed", "@@mrc mount attempt allowed",
            f"@@mrc kernel_module module {module_rc} x", "@@mrc kernel_module reboot 1 blocked"]


def test_a_kernel_call_that_reaches_the_hosts_kernel_is_an_escape_but_the_guests_is_not():
    data = _data(container=_suite("HOST", 0), vm=_suite("GUEST", 0))
    container = {p["probe"]: p for p in report.isolation_probes(report.View("container", data))}
    vm = {p["probe"]: p for p in report.isolation_probes(report.View("vm", data))}
    module = report.PROBES[5]
    assert container[module]["escaped"] is True
    assert vm[module]["escaped"] is False and "guest kernel only" in vm[module]["detail"]
    assert not any(p["escaped"] for name, p in vm.items())


def test_seeing_a_host_mac_means_the_interfaces_are_visible():
    data = _data(container=_suite("HOST", 1, iface="eth0 02:00:00:00:00:01"))
    probes = {p["probe"]: p for p in report.isolation_probes(report.View("container", data))}
    assert probes[report.PROBES[1]]["escaped"] is True


def test_table_has_every_row_and_says_why_a_cell_is_missing():
    data = _data(container=_suite("HOST", 1), vm=_suite("GUEST", 0), host=_suite("HOST", 0))
    rows = report.build_rows(data)
    assert [r["area"] for r in rows] == list(report.AREAS)
    runc = rows[0]["cells"]["runc"]
    assert runc["status"] == "unavailable" and "runc is not installed" in runc["text"][0]
    text = report.render_text(data, rows, width=140)
    table = [line for line in text.splitlines() if line.startswith(("|", "+"))]
    assert len({len(line) for line in table}) == 1, "columns are not aligned"
    for area in report.AREAS:
        assert area in text
    md = report.render_markdown(data, rows)
    assert len([line for line in md.splitlines() if line.startswith("| **")]) == len(report.AREAS)


def test_schema_checker_finds_what_is_wrong():
    s = {"type": "object", "required": ["a"], "additionalProperties": False,
         "properties": {"a": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/n"}}},
         "$defs": {"n": {"type": "integer", "minimum": 0}}}
    assert schema.validate({"a": [1, 2]}, s) == []
    errors = schema.validate({"a": [1, -1, "x"], "b": 1}, s)
    assert any("$.a[1]" in e for e in errors) and any("$.a[2]" in e for e in errors)
    assert any("unexpected 'b'" in e for e in errors)
    assert schema.validate({}, s) == ["$: missing 'a'"]


def test_documented_schema_is_well_formed():
    doc = schema.load()
    assert doc["properties"]["schema"]["const"] == "minirun-compare/2"
    areas = doc["$defs"]["row"]["properties"]["area"]["enum"]
    assert areas == list(report.AREAS)


# ---------------------------------------------------------------------------------------------- escape probes


def _escape_results(codes: dict[str, int]) -> list[dict]:
    return [{"probe": p.name, "argv": [escapes.HELPER, *p.argv[1:]], "options": list(p.options),
             "exit_code": codes.get(p.name, 1), "output": "x", "where": "suite"} for p in PROBES]


def test_escape_probes_reaching_a_guest_kernel_are_contained_but_host_reaching_ones_are_not():
    kernel_level = {"module-load": 0, "raw-socket": 0, "kcore": 2}
    vm = escapes.judge(_escape_results(kernel_level), same_kernel=False)
    assert (vm["stopped"], vm["blocked"], vm["not_applicable"], vm["guest_kernel_only"]) == (19, 16, 1, 2)
    assert escapes.summary_line(vm, vm=True) == \
        "escape probes: 19/19 contained (16 blocked, 1 n/a, 2 reached the guest kernel only)"
    # the same results from the host's own kernel (a container) are escapes
    container = escapes.judge(_escape_results(kernel_level), same_kernel=True)
    assert container["escaped"] == 2 and "ESCAPED: module-load, raw-socket" in escapes.summary_line(container, False)
    # a host-reaching probe that got through is an escape whatever kernel it ran on; unknown boot_id: no excuse
    vm = escapes.judge(_escape_results({"host-network": 0}), same_kernel=False)
    assert vm["escaped"] == 1 and [p["probe"] for p in vm["probes"] if p["escaped"]] == ["host-network"]
    assert escapes.judge(_escape_results({"reboot": 0}), same_kernel=None)["escaped"] == 1
    missing = escapes.judge(_escape_results({})[:-1], same_kernel=True)
    assert missing["no_result"] == 1 and missing["stopped"] == 18


def test_escape_probes_travel_to_the_unit_and_back(rootfs, tmp_path):
    """MRC_ESCAPES -> the escape_probes unit under busybox sh -> markers -> raw results, argv intact."""
    fake = tmp_path / "probe"  # a stand-in helper: echoes its argv, exits 1 (blocked) or 2 for one subcommand
    fake.write_text('#!/bin/sh\necho "args: $*"; echo second line; [ "$1" = userns ] && exit 2; exit 1\n')
    fake.chmod(0o755)
    probes = escapes.rendered(escapes.context("mrc-token", "/var/tmp/mrc-x/marker", 4242, probe=str(fake)))
    script = units.suite_script(["escape_probes"])
    bins = ":".join(os.path.join(rootfs, d) for d in ("bin", "sbin"))
    env = {"PATH": bins, "MRC_PROBE": str(fake), "MRC_ESCAPES": escapes.env_value(probes)}
    out = subprocess.run([os.path.join(rootfs, "bin", "busybox"), "sh", "-c", script], env=env,
                         capture_output=True, text=True, timeout=60).stdout
    results = escapes.from_markers(Markers(units.parse_markers(out)), probes)
    assert [r["probe"] for r in results] == [p.name for p in PROBES]
    by = {r["probe"]: r for r in results}
    assert by["host-network"]["output"] == "args: connect 127.0.0.1 4242 second line"
    assert by["new-user-namespace"]["exit_code"] == 2 and by["kcore"]["exit_code"] == 1
    with pytest.raises(ValueError):
        escapes.env_value([{"probe": "p", "argv": ["helper", "a path with spaces"]}])


def test_isolation_cell_carries_the_escape_probe_line_and_results():
    data = _data(container=_suite("HOST", 1), vm=_suite("GUEST", 0))
    data["samples"]["container"]["escape_probes"] = {"ran": True, "where": "w",
                                                     "results": _escape_results({"kcore": 2, "sysrq-trigger": 2})}
    data["samples"]["vm"]["escape_probes"] = {"ran": True, "where": "w", "results": _escape_results({"reboot": 0})}
    cells = report.build_rows(data)[0]["cells"]
    assert "escape probes: 19/19 stopped (17 blocked, 2 n/a)" in cells["container"]["text"]
    assert "escape probes: 19/19 contained (18 blocked, 1 reached the guest kernel only)" in cells["vm"]["text"]
    assert cells["vm"]["values"]["escape_probes"]["guest_kernel_only"] == 1
    doc = schema.load()
    for col in ("container", "vm"):
        assert schema.validate(cells[col], doc["$defs"]["cell"], doc) == []
        assert schema.validate(cells[col]["values"]["escape_probes"], doc["$defs"]["escape_judgement"], doc) == []
    raw = dict(data["samples"]["vm"]["escape_probes"], results=[{"probe": "reboot", "argv": ["p", "reboot"]}])
    assert "missing 'exit_code'" in " ".join(schema.validate(raw, doc["$defs"]["escape_probes"], doc))
