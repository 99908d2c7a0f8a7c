"""Escape attempts from a default container, each with its positive control.

The probes are data in minirun/probes.py, run by the static helper csrc/probe.c,
which these tests compile and mount read-only into the container. A probe must
fail (blocked, or not applicable on this kernel) in a default container, and
succeed with the protection turned off (`--privileged` or a specific opt-out,
or on the host), so a probe that could never succeed is caught. Where the host
itself cannot do the thing (its kernel lacks the feature, or its own sandbox
forbids it), the control is skipped with that reason.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import tempfile

import pytest

from helpers import build_probe, minirun
from minirun.probes import BLOCKED, ESCAPED, NOT_APPLICABLE, PROBE_DIR, PROBES, root_device


@pytest.fixture(scope="module")
def probe_dir(tmp_path_factory):
    return build_probe(tmp_path_factory.mktemp("probe"))


@pytest.fixture(scope="module")
def context(probe_dir, tmp_path_factory):
    """What the probes look for: a host process, a host file, a host listener, the root device."""
    marker = f"minirun-escape-marker-{os.getpid()}"
    # Started through a shell that exits at once, so it is not our child: the
    # leak check counts our children (and would wait for this one after each test).
    sleeper = int(subprocess.run(["sh", "-c", f'"$0" -c "import time; time.sleep(600)" {marker} >/dev/null 2>&1 & '
                                 'echo $!', sys.executable], capture_output=True, text=True, check=True).stdout)
    host_dir = "/var/tmp"  # on the root device (the chroot and block device probes look for it there)
    host_file = os.path.join(host_dir, marker)
    with open(host_file, "w") as f:
        f.write("host\n")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    major, minor, fstype = root_device()
    try:
        yield {"probe": f"{PROBE_DIR}/probe", "host_probe": os.path.join(probe_dir, "probe"), "marker": marker,
               "host_file": host_file, "host_file_rel": host_file.lstrip("/"), "port": listener.getsockname()[1],
               "root_major": major, "root_minor": minor, "root_fstype": fstype}
    finally:
        listener.close()
        os.unlink(host_file)
        os.kill(sleeper, signal.SIGKILL)


def in_container(rootfs, probe_dir, options, argv):
    return minirun("run", "-v", f"{probe_dir}:{PROBE_DIR}:ro", *options, rootfs, *argv, timeout=60)


@pytest.mark.parametrize("probe", PROBES, ids=[p.name for p in PROBES])
def test_blocked_in_a_default_container(rootfs, probe_dir, context, probe):
    hostname = socket.gethostname()
    out = in_container(rootfs, probe_dir, probe.options, probe.render(probe.argv, **context))
    assert out.returncode in (BLOCKED, NOT_APPLICABLE), f"{probe.escape}: {out.stdout}{out.stderr}"
    # the probe ran and said so: an exit status alone could be a shell's or a failed start's
    verdict = {BLOCKED: "blocked: ", NOT_APPLICABLE: "n/a: "}[out.returncode]
    assert out.stdout.startswith(verdict) and out.stdout.count("\n") == 1, f"no verdict: {out.stdout}{out.stderr}"
    assert "ESCAPED" not in out.stdout
    assert socket.gethostname() == hostname


@pytest.mark.parametrize("probe", PROBES, ids=[p.name for p in PROBES])
def test_positive_control_gets_through(rootfs, probe_dir, context, probe, tmp_path):
    if probe.host_check:
        check_argv = probe.render(probe.host_check, **context)
        check = subprocess.run(check_argv, capture_output=True, text=True)
        if check.returncode != 0:
            pytest.skip(f"the host itself cannot ({' '.join(check_argv[1:])}): "
                        f"{(check.stdout + check.stderr).strip() or 'exit ' + str(check.returncode)}")
    argv = probe.render(probe.argv, **context)
    if probe.control_on_host == "host":
        out = subprocess.run([context["host_probe"], *argv[1:]], capture_output=True, text=True, timeout=60)
    elif probe.control_on_host == "chroot":  # what pivot_root protects against: a plain chroot
        jail = tmp_path / "jail"
        jail.mkdir()
        shutil.copy(context["host_probe"], jail / "probe")
        out = subprocess.run(["chroot", str(jail), "/probe", *argv[1:]], capture_output=True, text=True, timeout=60)
    else:
        out = in_container(rootfs, probe_dir, probe.control, argv)
    if out.returncode == NOT_APPLICABLE:
        pytest.skip(f"not applicable on this kernel: {out.stdout.strip()}")
    assert out.returncode == ESCAPED, f"the control never gets through, so the probe proves nothing: " \
                                      f"{out.stdout}{out.stderr}"


def test_privileged_is_loud(rootfs):
    out = minirun("run", "--privileged", rootfs, "/bin/true")
    assert out.returncode == 0, out.stderr
    warning = [line for line in out.stderr.splitlines() if line.startswith("minirun: warning: ")]
    assert len(warning) == 1 and "--privileged" in warning[0] and "seccomp" in warning[0]


def test_default_container_credentials(rootfs):
    out = minirun("run", rootfs, "/bin/sh", "-c", "grep -E '^(Cap|NoNewPrivs|Seccomp:)' /proc/self/status")
    assert out.returncode == 0, out.stderr
    status = dict(line.split(":\t") for line in out.stdout.splitlines())
    for field in ("CapInh", "CapPrm", "CapEff", "CapBnd"):
        assert int(status[field], 16) == 0xA80425FB, field  # Docker's 14
    assert int(status["CapAmb"], 16) == 0
    assert status["NoNewPrivs"] == "1" and status["Seccomp"] == "2"


def test_a_non_root_user_keeps_no_capabilities(rootfs):
    out = minirun("run", "--user", "1000", rootfs, "/bin/sh", "-c", "grep -E '^Cap' /proc/self/status")
    assert out.returncode == 0, out.stderr
    status = dict(line.split(":\t") for line in out.stdout.splitlines())
    assert int(status["CapEff"], 16) == int(status["CapPrm"], 16) == int(status["CapInh"], 16) == 0
    assert int(status["CapBnd"], 16) == 0xA80425FB


def test_opt_outs_one_by_one(rootfs):
    script = "grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status; mount | grep -c -E 'kcore|keys|/proc/sys '"
    out = minirun("run", "--security-opt", "no-new-privileges=false", "--security-opt", "seccomp=unconfined",
                  "--cap-drop", "ALL", "--cap-add", "net_bind_service", rootfs, "/bin/sh", "-c", script)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.split()
    assert lines[:6] == ["CapEff:", "0000000000000400", "NoNewPrivs:", "0", "Seccomp:", "0"]
    assert int(lines[6]) >= 2  # masked and read-only paths stay


def test_seccomp_profile_file(rootfs, tmp_path):
    profile = tmp_path / "deny-mkdir.json"
    profile.write_text('{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": '
                       '[{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}')
    out = minirun("run", "--security-opt", f"seccomp={profile}", rootfs, "/bin/sh", "-c", "mkdir /tmp/x")
    assert out.returncode == 1 and "Permission denied" in out.stderr
    bad = tmp_path / "bad.json"
    bad.write_text('{"defaultAction": "SCMP_ACT_NOTIFY"}')
    out = minirun("run", "--security-opt", f"seccomp={bad}", rootfs, "/bin/true")
    assert out.returncode == 125 and "SCMP_ACT_NOTIFY" in out.stderr


def test_masked_paths_hide_and_readonly_paths_refuse(rootfs):
    script = ("for p in /proc/kcore /proc/keys /proc/timer_list /proc/sched_debug; do test -e $p && wc -c < $p; done;"
              "ls /sys/firmware | wc -l; echo 50 > /proc/sys/vm/overcommit_ratio && echo WROTE")
    out = minirun("run", rootfs, "/bin/sh", "-c", script)
    counts = out.stdout.split()
    assert "WROTE" not in counts and "Read-only file system" in out.stderr
    assert all(c == "0" for c in counts), out.stdout


def test_userns_maps_root_to_an_unprivileged_host_range(rootfs):
    # a volume the mapped root can reach: pytest's tmp_path sits under a 0700 directory of the host's root
    shared = pathlib.Path(tempfile.mkdtemp(prefix="minirun-userns-", dir="/var/tmp"))
    shared.chmod(0o1777)
    try:
        _check_userns_identity(rootfs, shared)
    finally:
        shutil.rmtree(shared)


def _check_userns_identity(rootfs, shared):
    script = "cat /proc/self/uid_map /proc/self/gid_map; id -u; touch /tmp/made-inside; grep CapEff /proc/self/status"
    out = minirun("run", "--userns-map", "0:100000:65536", "--no-overlay", "-v", f"{shared}:/tmp", rootfs,
                  "/bin/sh", "-c", script)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.split()
    assert lines[:6] == ["0", "100000", "65536"] * 2 and lines[6] == "0"
    made = os.stat(shared / "made-inside")
    assert (made.st_uid, made.st_gid) == (100000, 100000), "the container's root is host uid 100000"
    assert int(lines[-1], 16) == 0xA80425FB  # capabilities hold inside the namespace only


def test_userns_container_root_cannot_touch_host_owned_files(rootfs, tmp_path):
    out = minirun("run", "--userns-map", "0:100000:65536", "--no-overlay", "--privileged", rootfs, "/bin/sh", "-c",
                  "touch /bin/minirun-x 2>&1; cat /proc/self/uid_map")
    assert out.returncode == 0, out.stderr
    assert "Permission denied" in out.stdout and not os.path.exists(os.path.join(rootfs, "bin", "minirun-x"))


def test_userns_errors_are_clear(rootfs):
    out = minirun("run", "--userns-map", "0:100000:65536", rootfs, "/bin/true")
    assert out.returncode == 125 and "--no-overlay" in out.stderr
    out = minirun("run", "--userns-map", "0:100000", "--no-overlay", rootfs, "/bin/true")
    assert out.returncode == 125 and "CONTAINER:HOST:SIZE" in out.stderr


def test_exec_gets_the_containers_restrictions(rootfs):
    started = minirun("run", "-d", "--cap-drop", "ALL", "--cap-add", "KILL", rootfs, "/bin/sleep", "30")
    assert started.returncode == 0, started.stderr
    cid = started.stdout.strip()
    try:
        out = minirun("exec", cid, "/bin/sh", "-c", "grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status")
        assert out.returncode == 0, out.stderr
        assert out.stdout.split() == ["CapEff:", "0000000000000020", "NoNewPrivs:", "1", "Seccomp:", "2"]
    finally:
        minirun("rm", "-f", cid)
