"""`minirun compare`'s runc column runs with minirun's default security settings (issue 22).

The table used to compare a filtered minirun container with an unfiltered runc one
(`runc spec`: no seccomp, 3 capabilities), so its syscall row measured a policy,
not a runtime. These tests read the config.json the runc runner actually writes and
check it against minirun's own defaults as runc reads it: only the OCI fields
(runc ignores Docker's includes/excludes and archMap, so a profile that still held
them would be a different filter under runc), compiled by minirun's libseccomp
binding into the same program as `minirun run`'s default filter.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from helpers import IS_ROOT
from minirun.compare import report, schema
from minirun.compare.runners import SECCOMP_DEFAULT, ContainerRunner, RuncRunner
from minirun.policy import DEFAULT_CAPS, DEFAULT_MASKED_PATHS, DEFAULT_READONLY_PATHS
from minirun.seccomp import build_filter
from minirun.seccomp_build import OCI_PROFILE_KEYS, OCI_RULE_KEYS, to_oci

needs_runc = pytest.mark.skipif(not shutil.which("runc"), reason="runc is not installed (Debian package runc)")


def _written_config(runner: RuncRunner, args=("/bin/true",)) -> dict:
    bundle = runner.bundle(list(args))
    try:
        with open(os.path.join(bundle, "config.json")) as f:
            return json.load(f)
    finally:
        runner.cleanup()


def _as_runc_reads_it(profile: dict) -> dict:
    """linux.seccomp reduced to the fields runc's specs.LinuxSeccomp has (Go's JSON drops the rest)."""
    out = {k: v for k, v in profile.items() if k in OCI_PROFILE_KEYS}
    out["syscalls"] = [{k: v for k, v in rule.items() if k in OCI_RULE_KEYS} for rule in profile.get("syscalls", [])]
    return out


@needs_runc
def test_runc_bundle_has_the_seccomp_profile_and_capabilities_of_minirun_default_container(rootfs):
    config = _written_config(RuncRunner(rootfs))
    process, linux = config["process"], config["linux"]
    for kind in ("bounding", "effective", "permitted", "inheritable"):  # inheritable: minirun's set for root
        assert sorted(process["capabilities"][kind]) == sorted(DEFAULT_CAPS), kind
    assert process["capabilities"]["ambient"] == []
    assert process["noNewPrivileges"] is True
    assert linux["maskedPaths"] == list(DEFAULT_MASKED_PATHS)
    assert linux["readonlyPaths"] == list(DEFAULT_READONLY_PATHS)
    profile = linux.get("seccomp")
    assert profile, "the runc bundle has no seccomp profile"
    assert _as_runc_reads_it(profile) == profile, "fields runc would ignore: its filter would differ from minirun's"
    # No capabilities passed: runc applies every rule it is given, none conditional on capabilities.
    assert build_filter(profile, ()) == build_filter("default", DEFAULT_CAPS)


@pytest.mark.parametrize("extra", [(), ("CAP_SYS_ADMIN",), ("CAP_SYS_PTRACE", "CAP_SYS_BOOT")])
def test_oci_form_of_a_docker_profile_builds_the_same_filter(extra):
    """seccomp_build.to_oci evaluates includes/excludes for the capabilities, as Docker does for runc."""
    caps = DEFAULT_CAPS + extra
    profile = to_oci("default", caps)
    assert _as_runc_reads_it(profile) == profile
    assert build_filter(profile, ()) == build_filter("default", caps)
    if extra:
        assert build_filter(profile, ()) != build_filter(to_oci("default", DEFAULT_CAPS), ())


@needs_runc
def test_peer_defaults_column_is_runc_spec_security_as_it_is(rootfs):
    runner = RuncRunner(rootfs, defaults="runc-spec")
    config = _written_config(runner)
    assert "seccomp" not in config["linux"]
    assert set(config["process"]["capabilities"]["bounding"]) == {"CAP_AUDIT_WRITE", "CAP_KILL",
                                                                  "CAP_NET_BIND_SERVICE", "CAP_NET_RAW"}
    assert runner.name == "runc_spec" and runner.settings()["seccomp"] == "none"
    assert RuncRunner(rootfs).settings()["seccomp"] == SECCOMP_DEFAULT


STATUS = ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp", "Seccomp_filters")


def _status(text: str) -> dict:
    return {k: v.strip() for k, _, v in (line.partition(":") for line in text.splitlines()) if k in STATUS}


@needs_runc
@pytest.mark.skipif(not IS_ROOT, reason="needs root (containers)")
def test_runc_and_minirun_containers_report_the_same_security(rootfs):
    """The real kernel's view: /proc/self/status inside `runc run` on the compare bundle and inside `minirun run`."""
    runner = RuncRunner(rootfs)
    try:
        proc = subprocess.run(runner.run_argv(runner.bundle(["/bin/cat", "/proc/self/status"]), runner._id("t")),
                              capture_output=True, text=True, timeout=60)
    finally:
        runner.cleanup()
    assert proc.returncode == 0, proc.stderr
    minirun = subprocess.run([sys.executable, "-m", "minirun", "run", rootfs, "/bin/cat", "/proc/self/status"],
                             capture_output=True, text=True, timeout=60)
    assert minirun.returncode == 0, minirun.stderr
    ours, theirs = _status(minirun.stdout), _status(proc.stdout)
    assert ours["Seccomp"] == "2" and ours["NoNewPrivs"] == "1"
    assert theirs == ours


def test_every_column_states_its_settings_in_text_markdown_and_json(rootfs):
    """Headers carry seccomp, caps, nnp (and the VM's accelerator); a line under the table says it in full."""
    data = {"backends": {}, "samples": {}, "options": {"runs": 1, "store_mib": 1, "pings": 1},
            "environment": {"kernel": "6.18", "accel": {"name": "tcg", "reason": "no usable /dev/kvm"}},
            "host_evidence": {}, "disk": {}}
    runners = {"container": ContainerRunner(rootfs), "runc": RuncRunner(rootfs),
               "runc_spec": RuncRunner(rootfs, defaults="runc-spec")}
    for name, runner in runners.items():
        data["backends"][name] = {"label": runner.label, "available": runner.unavailable() is None,
                                  "reason": runner.unavailable(), "settings": runner.settings()}
    from minirun.compare.runners import _all_caps, settings

    data["backends"]["vm"] = {"label": "minirun VM", "available": False, "reason": "test",
                              "settings": settings(seccomp="none", caps=_all_caps(), nnp=False, accel="tcg")}
    data["backends"]["host"] = {"label": "Host", "available": False, "reason": "test",
                                "settings": settings(seccomp="none", caps=_all_caps(), nnp=False)}
    data["samples"] = {n: {} for n in data["backends"]}
    rows = report.build_rows(data)
    assert report.columns(data) == ("vm", "container", "runc", "runc_spec", "host")
    titles = report.column_titles(data)
    assert titles["container"][1] == "seccomp: minirun default, 14 caps, nnp"
    if shutil.which("runc"):
        assert titles["runc"][1] == titles["container"][1]
        assert titles["runc_spec"][1] == "no seccomp, 4 caps, nnp"
    assert titles["vm"][1].startswith("TCG; no seccomp")
    lines = report.settings_lines(data)
    assert len(lines) == 5 and any("accelerator TCG (no usable /dev/kvm)" in line for line in lines)
    text, md = report.render_text(data, rows, width=200), report.render_markdown(data, rows)
    for line in lines:
        assert line in md
    assert "Security settings and accelerator of each column:" in text
    assert "<br>seccomp: minirun default, 14 caps, nnp |" in md
    doc = schema.load()
    assert schema.validate(data["backends"], doc["properties"]["backends"], doc) == []
    assert schema.validate(rows, doc["properties"]["rows"], doc) == []


def test_performance_row_uses_the_alternated_rounds_over_the_suites_own_samples():
    """measure._performance: one instance per sample, columns alternated; the suite's samples are the fallback."""
    from minirun.compare import units
    from minirun.compare.units import Markers

    def markers(*lines):
        return Markers(units.parse_markers("\n".join(lines))).to_list()

    clock = "@@mrc clock sample 1.000000 1.000000"
    sample = "@@mrc perf_syscall sample 1.0 {}".format
    data = {"backends": {n: {"label": n, "available": True, "reason": None} for n in ("host", "runc")},
            "samples": {"host": {"suite": {"markers": markers(clock, sample(1.1))},
                                 "perf": {"rounds": 1, "markers": markers(clock, sample(1.05))}},
                        "runc": {"suite": {"markers": markers(clock, sample(1.5))},
                                 "perf": {"rounds": 1, "markers": markers(clock, sample(1.1))}}},
            "options": {"runs": 1}}
    host, runc = report.View("host", data), report.View("runc", data)
    assert report.perf_cell(runc, host)["values"]["perf_syscall_ratio"] == pytest.approx(2.0)
    del data["samples"]["runc"]["perf"], data["samples"]["host"]["perf"]
    host, runc = report.View("host", data), report.View("runc", data)
    assert report.perf_cell(runc, host)["values"]["perf_syscall_ratio"] == pytest.approx(5.0)
