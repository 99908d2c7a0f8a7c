"""`minirun vm run` end to end: real boots under TCG (or KVM where it works)."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest
from helpers import minirun, popen_minirun

BOOT = 90  # seconds a subprocess may take before the test gives up (boots take ~2-6 s)


def vm_run(env, *args, timeout=BOOT):
    return minirun("vm", "run", *args, env=env, timeout=timeout)


@pytest.mark.parametrize("script, code", [("exit 0", 0), ("exit 3", 3), ("kill -USR1 $$", 128 + signal.SIGUSR1)])
def test_exit_status_propagates(rootfs, vm_env, leak_check, script, code):
    proc = vm_run(vm_env, "--name", leak_check, "--json", rootfs, "/bin/sh", "-c", script)
    assert proc.returncode == code, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["exit_code"] == code
    assert result["signal"] == (signal.SIGUSR1 if code > 128 else None)


def test_output_timings_and_guest_kernel(rootfs, vm_env, leak_check):
    proc = vm_run(vm_env, "--name", leak_check, "--json", rootfs, "/bin/sh", "-c",
                  "echo out line; echo err line >&2; uname -r; hostname; printf 'no newline'")
    assert proc.returncode == 0, proc.stderr
    *lines, last = proc.stdout.splitlines()
    result = json.loads(last)
    # stdout and stderr share the guest console, in order, without "\r\n" mangling
    assert lines[:2] == ["out line", "err line"]
    guest_release = lines[2]
    assert guest_release == result["kernel_version"] != os.uname().release
    assert lines[3] == "minirun-vm"
    assert lines[4] == "no newline"
    # the accelerator is reported on stderr and in the JSON
    assert f"accelerator {result['accel']}" in proc.stderr
    assert result["accel"] in ("kvm", "tcg")
    t = result["timings"]
    assert 0 < t["guest_init"] <= t["start"] <= t["exit"] <= t["total"]
    assert result["qemu_peak_rss"] > 10 << 20
    assert result["id"] == leak_check


def test_env_workdir_hostname_and_limits(rootfs, vm_env, leak_check):
    proc = vm_run(vm_env, "--name", leak_check, "--cpus", "2", "--memory", "200m", "-e", "GREETING=hi there",
                  "-w", "/bin", "--hostname", "box", rootfs, "/bin/sh", "-c",
                  'echo "$GREETING|$(pwd)|$(hostname)|$(nproc)"; grep MemTotal /proc/meminfo')
    assert proc.returncode == 0, proc.stderr
    first, meminfo = proc.stdout.splitlines()[:2]
    assert first == "hi there|/bin|box|2"
    total_kib = int(meminfo.split()[1])
    assert 100 << 10 < total_kib <= 200 << 10  # the VM reserves --memory; the kernel keeps a part


def test_command_not_found_is_127(rootfs, vm_env, leak_check):
    proc = vm_run(vm_env, "--name", leak_check, rootfs, "/no/such/command")
    assert proc.returncode == 127
    assert "no/such/command" in proc.stdout  # the guest init's message, on the guest console


def test_timeout_kills_qemu_and_cleans_up(rootfs, vm_env, leak_check):
    start = time.monotonic()
    proc = vm_run(vm_env, "--name", leak_check, "--timeout", "3", rootfs, "/bin/sleep", "600")
    assert proc.returncode == 124, proc.stderr
    assert "QEMU was killed" in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("minirun: ")
    assert "Traceback" not in proc.stderr
    assert time.monotonic() - start < 60
    # leak_check: no QEMU, no temp files


def test_boot_timeout_is_124(rootfs, vm_env, leak_check):
    # No kernel reaches its init in 0.2 s: this is the path a hung kernel (PVM host + KVM) takes.
    proc = vm_run(vm_env, "--name", leak_check, "--boot-timeout", "0.2", rootfs, "/bin/true")
    assert proc.returncode == 124, proc.stderr
    assert "did not reach its init" in proc.stderr


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_stops_the_vm(rootfs, vm_env, leak_check, signum):
    proc = popen_minirun("vm", "run", "--name", leak_check, rootfs, "/bin/sh", "-c", "echo up; sleep 600",
                         env=vm_env)
    try:
        # wait until the guest runs COMMAND, so the signal lands mid-run
        assert proc.stdout.readline() == "up\n"
        proc.send_signal(signum)
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 128 + signum, err
    assert "the VM was stopped" in err


@pytest.fixture
def host_dir():
    """A host directory outside /tmp (the guest mounts its own tmpfs on /tmp)."""
    path = tempfile.mkdtemp(prefix="minirun-vm-test-", dir="/var/tmp")
    yield pathlib.Path(path)
    shutil.rmtree(path, ignore_errors=True)


def test_share_root_readonly_by_default(vm_env, leak_check, host_dir):
    shared = host_dir
    (shared / "hello.txt").write_text("from the host\n")
    proc = vm_run(vm_env, "--name", leak_check, "--share-root", "/", "-w", str(shared), "-", "/bin/sh", "-c",
                  "cat hello.txt; uname -r; echo x > new.txt && echo WROTE || echo READONLY")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "from the host"
    assert lines[1] != os.uname().release
    assert lines[-1] == "READONLY"
    assert not (shared / "new.txt").exists()


def test_share_rw_writes_reach_the_host(vm_env, leak_check, tmp_path):
    shared = tmp_path / "rw"
    (shared / "bin").mkdir(parents=True)
    busybox = "/bin/busybox"
    if not os.path.isfile(busybox):
        pytest.skip("needs /bin/busybox (busybox-static) for a tiny shared root")
    subprocess.run(["cp", busybox, str(shared / "bin" / "busybox")], check=True)
    proc = vm_run(vm_env, "--name", leak_check, "--share-root", str(shared), "--share-rw", "-",
                  "/bin/busybox", "sh", "-c", "echo written-in-guest > /out.txt")
    assert proc.returncode == 0, proc.stderr
    assert (shared / "out.txt").read_text() == "written-in-guest\n"


# -- bad input: exit 125 and one clear line, before any VM boots --------------------------------

def _fails_cleanly(proc, words):
    assert proc.returncode == 125, (proc.stdout, proc.stderr)
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("minirun: ") and words in last, proc.stderr
    assert "Traceback" not in proc.stderr


def test_missing_kernel(rootfs, vm_env):
    _fails_cleanly(vm_run(vm_env, "--kernel", "/nonexistent/vmlinuz", rootfs, "/bin/true"),
                   "kernel /nonexistent/vmlinuz does not exist")


def test_nonexistent_rootfs(vm_env, tmp_path):
    _fails_cleanly(vm_run(vm_env, str(tmp_path / "nope"), "/bin/true"), "does not exist")


def test_memory_too_small_for_the_kernel(rootfs, vm_env):
    _fails_cleanly(vm_run(vm_env, "--memory", "48m", rootfs, "/bin/true"), "too small")
    # the size the user typed, not a rounded-down 0M
    _fails_cleanly(vm_run(vm_env, "--memory", "1k", rootfs, "/bin/true"), "--memory 1k is too small")


def test_hostname_longer_than_the_kernel_allows(rootfs, vm_env):
    proc = vm_run(vm_env, "--hostname", "h" * 300, rootfs, "/bin/true")
    _fails_cleanly(proc, "at most 64")
    assert "h" * 65 not in proc.stderr


def test_qemu_not_installed(rootfs, vm_env, tmp_path):
    env = dict(vm_env, PATH=str(tmp_path))  # an empty PATH: no qemu-system-x86_64 anywhere
    proc = subprocess.run([sys.executable, "-m", "minirun", "vm", "run", rootfs, "/bin/true"], env=env,
                          capture_output=True, text=True, timeout=60)
    _fails_cleanly(proc, "qemu-system-x86_64 not found")


def test_modules_come_from_the_guest_kernel_and_autoload_is_off(rootfs, vm_env, leak_check):
    """--module loads the booted kernel's own overlay.ko; nothing can autoload a module from anywhere else."""
    script = ("grep -o '^overlay ' /proc/modules; echo \"modprobe=[$(cat /proc/sys/kernel/modprobe)]\"; "
              "mkdir -p /o/l /o/u /o/w /o/m; "
              "mount -t overlay o -o lowerdir=/o/l,upperdir=/o/u,workdir=/o/w /o/m && echo overlay-mounted; "
              "mount -t vfat none /o/m 2>/dev/null || echo vfat-refused")
    proc = vm_run(vm_env, "--name", leak_check, "--module", "overlay", rootfs, "/bin/sh", "-c", script)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.split()
    assert lines[:3] == ["overlay", "modprobe=[]", "overlay-mounted"], proc.stdout
    # vfat is a module of this kernel too: not asked for, so not loaded, on every machine alike
    assert lines[3] == "vfat-refused"


def test_unknown_module_is_refused_before_boot(rootfs, vm_env, leak_check):
    proc = vm_run(vm_env, "--name", leak_check, "--module", "no_such_module", rootfs, "/bin/true")
    assert proc.returncode == 125
    assert proc.stderr.strip().splitlines()[-1].startswith("minirun: ") and "no_such_module" in proc.stderr
    assert "Traceback" not in proc.stderr
