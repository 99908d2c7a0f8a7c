"""cgroup limits proved by behaviour, on whatever driver this host uses (v1, hybrid or v2).

The same file runs inside a pure cgroup v2 VM (tests/vm), which proves the v2 driver.
"""

from __future__ import annotations

import os
import subprocess

import pytest

from helpers import minirun


def test_memory_limit_oom_kills_and_reports(rootfs):
    # tail keeps the whole (newline-free) stream of zeros in memory: it grows until killed
    proc = minirun("run", "--memory", "32m", rootfs, "tail", "/dev/zero")
    assert proc.returncode == 137, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "was killed: out of memory (limit 32 MiB)" in lines[0], proc.stderr


def test_oom_flag_in_the_result(rootfs):
    from minirun import ContainerSpec, Limits, Process, run

    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        result = run(ContainerSpec(rootfs=rootfs, process=Process(["tail", "/dev/zero"]),
                                   limits=Limits(memory=16 << 20)), stdio=(None, devnull, devnull))
    finally:
        os.close(devnull)
    assert result.oom_killed and result.exit_code == 137 and result.signal == 9


def test_memory_under_the_limit_is_fine(rootfs):
    proc = minirun("run", "--memory", "64m", rootfs, "/bin/sh", "-c", "head -c 8m /dev/zero | wc -c")
    assert proc.returncode == 0 and proc.stdout.strip() == str(8 << 20)


def test_pids_limit_stops_a_fork_loop_and_the_host_stays_fine(rootfs):
    # An inner shell forks sleepers until fork fails and it gives up; the outer one
    # then lists the processes with a builtin (no fork left to spare at the limit).
    script = "sh -c 'while :; do sleep 5 & done' 2>/dev/null; echo /proc/[0-9]*"
    proc = minirun("run", "--pids-limit", "10", rootfs, "/bin/sh", "-c", script, timeout=60)
    assert proc.returncode == 0, proc.stderr
    visible = len(proc.stdout.split())
    assert 8 <= visible <= 10, f"{visible} processes under --pids-limit 10: {proc.stdout}"
    # the host can still fork
    assert subprocess.run(["true"]).returncode == 0


def test_cpus_half_a_cpu_is_throttled_to_about_half(rootfs):
    """--cpus 0.5 for 2 s of a busy loop gives about half of one CPU, read from the cgroup's own counter.

    An unthrottled loop takes ~1.0 CPU. The bounds leave room for what the wall clock adds around the loop
    on a busy host or in a TCG guest (0.60 was seen there), and still tell throttled from not."""
    from minirun import ContainerSpec, Limits, Process, run

    busy = "end=$(($(date +%s) + 2)); while [ $(date +%s) -lt $end ]; do :; done"
    result = run(ContainerSpec(rootfs=rootfs, process=Process(["/bin/sh", "-c", busy]),
                               limits=Limits.from_cpus(0.5)))
    assert result.exit_code == 0
    wall = result.timings["total"] - result.timings["start"]
    share = result.stats["cpu_usage_ns"] / 1e9 / wall
    assert 0.35 <= share <= 0.70, f"{share:.2f} of a CPU under --cpus 0.5 (wall {wall:.2f}s)"


def test_cpuset_pins_the_container(rootfs):
    if (os.cpu_count() or 1) < 2:
        pytest.skip("needs 2 CPUs to tell a cpuset apart")
    proc = minirun("run", "--cpuset-cpus", "1", rootfs, "/bin/sh", "-c", "grep Cpus_allowed_list /proc/self/status")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["Cpus_allowed_list:", "1"]
