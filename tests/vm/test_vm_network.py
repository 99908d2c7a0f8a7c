"""`minirun vm run --network bridge` and `-v`: a VM on the containers' bridge, host directories over 9p.

Traffic stays on this machine: the session's bridge (minirun0 outside tests) between the host, containers and
VMs, and 127.0.0.1 for published ports.  leak_check (conftest) also fails a test that
leaves a tap, an address or a VM state directory behind.
"""

from __future__ import annotations

import ipaddress
import json
import os
import queue
import signal
import socket
import threading
import time
import urllib.request

import pytest
from helpers import inspect, minirun, popen_minirun, wait_for
from minirun.network import BRIDGE, SUBNET

GATEWAY = str(next(ipaddress.IPv4Network(SUBNET).hosts()))


def in_subnet(ip: str) -> bool:
    return ipaddress.IPv4Address(ip) in ipaddress.IPv4Network(SUBNET)

BOOT = 120
IP_SED = "sed -n 's/.* inet \\([0-9.]*\\).*/\\1/p'"


def vm_run(env, *args, timeout=BOOT):
    return minirun("vm", "run", *args, env=env, timeout=timeout)


class Lines:
    """A `minirun vm run` in the background, its stdout lines in a queue."""

    def __init__(self, env, *args):
        self.proc = popen_minirun("vm", "run", *args, env=env)
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def wait_line(self, prefix: str, timeout: float = BOOT) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                break
            self.seen.append(line)
            if line.startswith(prefix):
                return line
        raise AssertionError(f"no line {prefix!r} from the VM; got {self.seen[-20:]}; "
                             f"stderr: {self.proc.stderr.read() if self.proc.poll() is not None else '(running)'}")

    def finish(self, timeout: float = BOOT) -> tuple[int, str]:
        rest = []
        try:
            code = self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        while (line := self.lines.get(timeout=5)) is not None:
            rest.append(line)
        self.seen += rest
        return code, self.proc.stderr.read()


@pytest.fixture
def web_container(rootfs):
    """A detached container on the bridge serving 2 MB of random bytes and their md5 over HTTP."""
    name = f"vmnet-web-{os.getpid()}"
    out = minirun("run", "-d", "--name", name, "--network", "bridge", rootfs, "/bin/sh", "-c",
                  "mkdir -p /www && head -c 2000000 /dev/urandom > /www/blob && md5sum /www/blob | cut -d' ' -f1 "
                  "> /www/sum && exec httpd -f -p 8080 -h /www")
    assert out.returncode == 0, out.stderr
    try:
        ip = inspect(name)["network"]["ip"]
        assert wait_for(lambda: urllib.request.urlopen(f"http://{ip}:8080/sum", timeout=2).read(), 10)
        yield ip
    finally:
        minirun("rm", "-f", name)


def test_vm_and_container_ping_and_transfer_over_the_bridge(rootfs, vm_env, leak_check, web_container):
    cip = web_container
    vm = Lines(vm_env, "--name", leak_check, "--network", "bridge", "--json", rootfs, "/bin/sh", "-c",
               f"echo vm-ip $(ip -o -4 addr show eth0 | {IP_SED}); "
               f"ping -c 3 -W 5 {cip} >/dev/null && echo ping-ok; "
               f"wget -q -O /tmp/blob http://{cip}:8080/blob && echo fetched $(md5sum /tmp/blob | cut -d' ' -f1) "
               f"$(wget -q -O - http://{cip}:8080/sum); "
               "echo listening; timeout 60 nc -l -p 7000 > /tmp/got; echo received $(wc -c < /tmp/got)")
    try:
        vm_ip = vm.wait_line("vm-ip").split()[1]
        assert vm.wait_line("ping-ok")
        fetched = vm.wait_line("fetched").split()
        assert len(fetched) == 3 and fetched[1] == fetched[2], fetched  # VM <- container, 2 MB intact
        vm.wait_line("listening")
        # container -> VM: ping, then 3 MB over TCP with busybox nc (retried until the VM's nc listens)
        out = minirun("run", "--network", "bridge", rootfs, "/bin/sh", "-c",
                      f"ping -c 3 -W 5 {vm_ip} >/dev/null && echo ping-ok; "
                      f"for i in $(seq 120); do head -c 3000000 /dev/zero | nc {vm_ip} 7000 && break; "
                      "sleep 0.5; done", timeout=90)
        assert out.returncode == 0 and "ping-ok" in out.stdout, out.stdout + out.stderr
        assert vm.wait_line("received").split() == ["received", "3000000"]
        code, err = vm.finish()
    finally:
        if vm.proc.poll() is None:
            vm.proc.kill()
            vm.proc.wait()
    assert code == 0, err
    result = json.loads(vm.seen[-1])
    assert result["network"]["ip"] == vm_ip and result["network"]["bridge"] == BRIDGE
    assert in_subnet(vm_ip) and vm_ip != cip


def test_published_port_reaches_the_guest_on_the_hosts_loopback(rootfs, vm_env, leak_check):
    with socket.socket() as s:  # a free port
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    vm = Lines(vm_env, "--name", leak_check, "--network", "bridge", "-p", f"{port}:80", rootfs, "/bin/sh", "-c",
               "mkdir -p /www && echo hello-from-vm > /www/index.html && httpd -p 80 -h /www && echo serving "
               "&& exec sleep 600")
    try:
        vm.wait_line("serving")
        assert wait_for(lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/index.html", timeout=3).read()
                        == b"hello-from-vm\n", 30)
        vm.proc.send_signal(signal.SIGTERM)  # minirun stops QEMU, closes the proxy, releases tap and address
        code, err = vm.finish(60)
    finally:
        if vm.proc.poll() is None:
            vm.proc.kill()
            vm.proc.wait()
    assert code == 143, err
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0  # the proxy went with the VM


def test_guest_has_no_nic_without_bridge(rootfs, vm_env, leak_check):
    proc = vm_run(vm_env, "--name", leak_check, rootfs, "/bin/sh", "-c", "ls /sys/class/net; ip -o link show lo")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[0].split() == ["lo"]
    assert "UP" in proc.stdout  # lo is up, as in a container


def test_timeout_releases_tap_and_address(rootfs, vm_env, leak_check):
    proc = vm_run(vm_env, "--name", leak_check, "--network", "bridge", "--timeout", "4", rootfs, "/bin/sleep", "600")
    assert proc.returncode == 124, proc.stderr
    assert "Traceback" not in proc.stderr
    # leak_check: no tap, no address, no state, no QEMU


def _started_bridged_vm(vm_env, name, rootfs, watch):
    from minirun import network

    tap = network.host_ifname(network.vm_key(name))
    vm = Lines(vm_env, "--name", name, "--network", "bridge", rootfs, "/bin/sh", "-c", "echo up; exec sleep 600")
    vm.wait_line("up")
    assert os.path.exists(f"/sys/class/net/{tap}") and watch.qemu_processes(name)
    return vm, tap


def test_qemu_crash_releases_tap_and_address(rootfs, vm_env, leak_check, vm_watch):
    vm, tap = _started_bridged_vm(vm_env, leak_check, rootfs, vm_watch)
    try:
        for pid in vm_watch.qemu_processes(leak_check):
            os.kill(pid, signal.SIGKILL)
        code, err = vm.finish(60)
    finally:
        if vm.proc.poll() is None:
            vm.proc.kill()
            vm.proc.wait()
    assert code == 125 and err.strip().splitlines()[-1].startswith("minirun: "), err
    assert "Traceback" not in err


def test_killed_minirun_leaves_an_address_that_gc_releases(rootfs, vm_env, leak_check, vm_watch):
    vm, tap = _started_bridged_vm(vm_env, leak_check, rootfs, vm_watch)
    vm.proc.kill()  # SIGKILL: no cleanup of its own; QEMU dies with it (PDEATHSIG), and the tap with QEMU
    vm.proc.wait()
    assert wait_for(lambda: not vm_watch.qemu_processes(leak_check) and not os.path.exists(f"/sys/class/net/{tap}"),
                    10)
    left = vm_watch.leftovers(leak_check)
    assert any(item.startswith("address") for item in left), left  # only gc can know the owner is gone
    out = minirun("gc")
    assert out.returncode == 0, out.stderr
    assert vm_watch.leftovers(leak_check) == []


def test_share_written_in_guest_is_read_on_host_after_the_vm(rootfs, vm_env, leak_check, tmp_path, vm_watch):
    data = tmp_path / "data"
    data.mkdir()
    (data / "from-host").write_text("host says hi\n")
    proc = vm_run(vm_env, "--name", leak_check, "-v", f"{data}:/mnt/data", rootfs, "/bin/sh", "-c",
                  "cat /mnt/data/from-host && echo guest wrote this > /mnt/data/from-guest && mkdir /mnt/data/d")
    assert proc.returncode == 0, proc.stderr
    assert "host says hi" in proc.stdout
    assert not vm_watch.qemu_processes(leak_check)
    assert (data / "from-guest").read_text() == "guest wrote this\n"
    assert (data / "d").is_dir()


def test_read_only_share_refuses_writes_in_the_guest(rootfs, vm_env, leak_check, tmp_path):
    ro, rw = tmp_path / "ro", tmp_path / "rw"
    ro.mkdir()
    rw.mkdir()
    (ro / "keep").write_text("original\n")
    proc = vm_run(vm_env, "--name", leak_check, "-v", f"{ro}:/ro:ro", "-v", f"{rw}:/rw", rootfs, "/bin/sh", "-c",
                  "echo x > /rw/ok && echo rw-write-ok; "  # the positive control: the same write, writable share
                  "echo x 2>/dev/null > /ro/new && echo ro-write-succeeded; "
                  "echo x 2>/dev/null >> /ro/keep && echo ro-append-succeeded; "
                  "rm -f /ro/keep 2>/dev/null && echo ro-rm-succeeded; "  # -f: never a prompt on the console
                  "grep -q ' /ro 9p ro,' /proc/mounts && echo mounted-ro; cat /ro/keep; "
                  # the guest's root can undo its own read-only mount; QEMU (readonly=on) still refuses
                  "mount -o remount,rw /ro && echo remounted-rw; echo x 2>/dev/null > /ro/new && echo qemu-let-it; true")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "rw-write-ok" in proc.stdout and (rw / "ok").exists()
    assert "succeeded" not in proc.stdout, proc.stdout
    assert "mounted-ro" in proc.stdout and "original" in proc.stdout
    assert "remounted-rw" in proc.stdout and "qemu-let-it" not in proc.stdout, proc.stdout
    assert sorted(os.listdir(ro)) == ["keep"] and (ro / "keep").read_text() == "original\n"


@pytest.mark.parametrize("args, message", [
    (["-v", "/no/such/dir:/data"], "/no/such/dir is not a directory"),
    (["-v", "/tmp"], "invalid -v value"),
    (["-v", "/tmp:/"], "must be absolute and not /"),
    (["-p", "8080:80"], "needs --network bridge"),
    (["--network", "host"], "use none or bridge"),
])
def test_bad_network_and_share_options_are_refused(rootfs, vm_env, leak_check, args, message):
    proc = vm_run(vm_env, "--name", leak_check, *args, rootfs, "/bin/true")
    assert proc.returncode == 125
    assert proc.stderr.strip().splitlines()[-1].startswith("minirun: ") and message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("machine", ["pc", "microvm"])
def test_bridge_and_share_on_each_machine_type(rootfs, vm_env, leak_check, tmp_path, machine):
    """virtio over PCI (pc) and over MMIO (microvm): the same NIC and share either way."""
    data = tmp_path / "data"
    data.mkdir()
    proc = vm_run(vm_env, "--name", leak_check, "--machine", machine, "--network", "bridge", "-v", f"{data}:/data",
                  "--json", rootfs, "/bin/sh", "-c",
                  f"ping -c 2 -W 5 {GATEWAY} >/dev/null && echo gw-ok; echo hi > /data/f")
    assert proc.returncode == 0, proc.stderr
    assert "gw-ok" in proc.stdout
    assert (data / "f").read_text() == "hi\n"
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["machine"] == machine and in_subnet(result["network"]["ip"])
