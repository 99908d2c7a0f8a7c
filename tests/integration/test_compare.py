"""`minirun compare --runs 2` end to end: real containers, runc and real VMs (TCG is fine).

One run (module fixture, ~1 minute on a 2-core TCG host) feeds every check below;
the fixture does its own leak check around it, since the autouse one only sees
each test function. Timings are never asserted except the issue's one sanity
check: a container starts faster than a VM.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import struct
import subprocess
import sys

import pytest

from helpers import IS_ROOT
from minirun.compare import report, schema

pytestmark = pytest.mark.skipif(not IS_ROOT, reason="needs root (containers, VMs)")

_conftest = importlib.util.spec_from_file_location("integration_conftest",
                                                   os.path.join(os.path.dirname(__file__), "conftest.py"))
_leaks = importlib.util.module_from_spec(_conftest)
_conftest.loader.exec_module(_leaks)


def _have_matplotlib() -> bool:
    return importlib.util.find_spec("matplotlib") is not None


@pytest.fixture(scope="module")
def compared(rootfs, tmp_path_factory):
    if not shutil.which("qemu-system-x86_64"):
        pytest.skip("qemu-system-x86_64 not installed: the comparison needs a VM (Debian package qemu-system-x86)")
    out = tmp_path_factory.mktemp("compare")
    paths = {"json": out / "c.json", "md": out / "c.md", "png": out / "c.png"}
    argv = [sys.executable, "-m", "minirun", "compare", rootfs, "--runs", "2", "--containers", "2", "--vms", "2",
            "--store-mb", "4", "--json", str(paths["json"]), "--markdown", str(paths["md"])]
    if _have_matplotlib():
        argv += ["--plot", str(paths["png"])]
    before = set(_leaks.wait_clean(0))
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=400)
    left = [item for item in _leaks.wait_clean(10) if item not in before]
    assert proc.returncode == 0, f"minirun compare failed ({proc.returncode}):\n{proc.stderr[-3000:]}"
    data = json.loads(paths["json"].read_text())
    if not data["backends"]["vm"]["available"]:
        pytest.skip(f"no VM on this host: {data['backends']['vm']['reason']}")
    return {"proc": proc, "data": data, "paths": paths, "left": left}


def _cells(data: dict, area: str) -> dict:
    return next(r["cells"] for r in data["rows"] if r["area"] == area)


def test_nothing_left_behind(compared):
    assert compared["left"] == [], f"left behind: {compared['left']}"


def test_all_rows_present_in_every_output(compared):
    data, proc = compared["data"], compared["proc"]
    assert [r["area"] for r in data["rows"]] == list(report.AREAS)
    md = compared["paths"]["md"].read_text()
    for area in report.AREAS:
        assert area in proc.stdout
        assert f"| **{area}** |" in md
    assert "compare [" in proc.stderr, "no progress lines on stderr"
    for area in report.AREAS:  # container and VM measured every row (runc and host may say n/a)
        for col in ("vm", "container"):
            c = _cells(data, area)[col]
            assert c["status"] == "measured", f"{area}/{col}: {c['text']}"


def test_isolation_probes_pass_in_both(compared):
    cells = _cells(compared["data"], "Isolation")
    for col in ("container", "vm"):
        values = cells[col]["values"]
        escaped = [p for p in values["probes"] if p["escaped"] is not False]
        assert not escaped, f"{col}: {escaped}"
        assert values["passed"] == values["total"] == len(report.PROBES)
    # the probes can see: on the host, the same units find what they look for
    host = {p["probe"]: p["escaped"] for p in cells["host"]["values"]["probes"]}
    assert host["host processes visible"] and host["host files reachable"]


def test_escape_probes_ran_in_both_and_none_reached_the_host(compared):
    """minirun/probes.py's escape probes (issue 6 item 6): container and VM, judged in the Isolation row."""
    from minirun.probes import PROBES

    data = compared["data"]
    if not data["probe_helper"]["available"]:
        pytest.skip(f"no escape-probe helper: {data['probe_helper']['note']}")
    cells = _cells(data, "Isolation")
    names = [p.name for p in PROBES]
    for col in ("container", "vm"):
        raw = data["samples"][col]["escape_probes"]
        assert raw["ran"] and [r["probe"] for r in raw["results"]] == names, f"{col}: {raw}"
        judged = cells[col]["values"]["escape_probes"]
        escaped = [p for p in judged["probes"] if p["escaped"] is not False]
        assert not escaped, f"{col}: {escaped}"
        assert judged["stopped"] == judged["total"] == len(PROBES) and judged["escaped"] == 0
        assert any(line.startswith(f"escape probes: {len(PROBES)}/{len(PROBES)} ") for line in cells[col]["text"])
    container = cells["container"]["values"]["escape_probes"]
    assert container["same_kernel_as_host"] is True and container["guest_kernel_only"] == 0
    vm = cells["vm"]["values"]["escape_probes"]
    assert vm["same_kernel_as_host"] is False
    assert all(p["verdict"] in ("blocked", "not applicable") for p in vm["probes"] if p["reaches"] == "host")
    assert vm["guest_kernel_only"] > 0, "in its own kernel, a VM's root can do kernel-level things: the probes see"
    for col in ("container", "vm"):  # the host itself stayed as it was
        checks = data["samples"][col]["suite"]["host_checks"]
        assert checks["host_boot_id_unchanged"] and checks["host_hostname_unchanged_after"]
        assert checks["host_modules_added"] == []


def test_vm_runs_its_own_kernel_and_the_container_the_hosts(compared):
    cells = _cells(compared["data"], "Guest compatibility")
    assert cells["vm"]["values"]["same_kernel_instance"] is False
    assert cells["container"]["values"]["same_kernel_instance"] is True


def test_storage_survives_in_both(compared):
    cells = _cells(compared["data"], "Persistent storage")
    assert cells["container"]["values"]["survived"] is True
    assert cells["vm"]["values"]["survived"] is True


def test_container_starts_faster_than_vm(compared):
    cells = _cells(compared["data"], "Deployment")
    container, vm = cells["container"]["values"]["start_s"], cells["vm"]["values"]["start_s"]
    assert container["n"] == vm["n"] == 2
    assert container["median"] < vm["median"]


def test_json_matches_documented_schema(compared):
    errors = schema.validate(compared["data"], schema.load())
    assert errors == []
    env = compared["data"]["environment"]
    assert env["accel"]["name"] in ("kvm", "tcg") and env["versions"]["qemu"] and env["cpu_model"]


def test_png_is_a_valid_image(compared):
    if not _have_matplotlib():
        pytest.skip("matplotlib is not installed (pip install 'minirun[plot]'): --plot was not exercised")
    blob = compared["paths"]["png"].read_bytes()
    assert blob[:8] == b"\x89PNG\r\n\x1a\n"
    length, kind = struct.unpack(">I4s", blob[8:16])
    width, height = struct.unpack(">II", blob[16:24])
    assert kind == b"IHDR" and length == 13
    assert width > 100 and height > 100


def test_runc_column_runs_with_minirun_default_security_and_every_output_says_so(compared):
    """Issue 22: the runc column's settings are the container's, and both instances report the same
    Seccomp/NoNewPrivs/CapEff from inside; each column's header and the lines under the table state them."""
    data = compared["data"]
    if not data["backends"]["runc"]["available"]:
        pytest.skip(f"no runc: {data['backends']['runc']['reason']}")
    ours, theirs = data["backends"]["container"]["settings"], data["backends"]["runc"]["settings"]
    for key in ("seccomp", "capabilities", "no_new_privileges", "masked_paths", "readonly_paths"):
        assert ours[key] == theirs[key], key
    assert ours["seccomp"] == "minirun default" and ours["no_new_privileges"] is True
    assert data["backends"]["vm"]["settings"]["accelerator"] == data["environment"]["accel"]["name"]

    def seen(col):
        markers = data["samples"][col]["suite"]["markers"]
        return {m["key"]: m["value"] for m in markers if m["unit"] == "kernel" and m["key"] in ("seccomp", "nnp",
                                                                                                  "capeff")}

    assert seen("container") == seen("runc") and seen("container")["seccomp"] == "2"
    md, text = compared["paths"]["md"].read_text(), compared["proc"].stdout
    for line in report.settings_lines(data):
        assert line in md
    assert "Security settings and accelerator of each column:" in text
    assert md.count("seccomp: minirun default, 14 caps, nnp") >= 2  # the container's and runc's headers
