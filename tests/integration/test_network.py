"""Bridge networking, published ports and host networking.

Traffic stays on this machine: between the host and the containers' own
namespaces on the minirun0 bridge, or on 127.0.0.1.
"""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request

from helpers import inspect, minirun, wait_for

WEB = "mkdir -p /www && echo hello-from-{name} > /www/index.html && exec httpd -f -p 8080 -h /www"






def start_web(rootfs, name, *extra):
    out = minirun("run", "-d", "--name", name, "--network", "bridge", *extra, rootfs, "/bin/sh", "-c",
                  WEB.format(name=name))
    assert out.returncode == 0, out.stderr
    return inspect(name)["network"]["ip"]


def test_bridged_containers_reach_each_other_and_the_host(rootfs):
    try:
        ip_a = start_web(rootfs, "net-a")
        out = minirun("run", "--network", "bridge", rootfs, "/bin/sh", "-c",
                      f"ip -4 addr show eth0 | grep -o 'inet [0-9.]*'; "
                      f"wget -qO- http://{ip_a}:8080/index.html; ping -c1 -W2 10.88.0.1 >/dev/null && echo host-ok")
        assert out.returncode == 0, out.stderr
        lines = out.stdout.split("\n")
        own_ip = lines[0].split()[1]
        assert own_ip != ip_a and own_ip.startswith("10.88.0.")
        assert "hello-from-net-a" in out.stdout and "host-ok" in out.stdout
        # and the host reaches the container on the bridge
        with urllib.request.urlopen(f"http://{ip_a}:8080/index.html", timeout=5) as r:
            assert r.read() == b"hello-from-net-a\n"
    finally:
        minirun("rm", "-f", "net-a")


def test_published_port_answers_on_the_hosts_loopback(rootfs):
    try:
        start_web(rootfs, "net-pub", "-p", "18081:8080")
        assert wait_for(lambda: urllib.request.urlopen("http://127.0.0.1:18081/index.html", timeout=2).read()
                        == b"hello-from-net-pub\n")
    finally:
        minirun("rm", "-f", "net-pub")
    # the proxy went with the container's supervisor
    import socket

    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", 18081)) != 0


def test_a_detached_containers_published_ports_carry_megabytes_both_ways(rootfs, tmp_path):
    """-d -p: the shim relays (csrc/shim.c), in C, what the proxy thread did: 8 MiB up
    arrive whole, 8 MiB down too, two ports at once, and no Python process stays."""
    import socket

    name = "net-big"
    script = ("nc -l -p 9000 | wc -c > /x/up & "
              "dd if=/dev/zero bs=64k count=128 2>/dev/null | nc -l -p 9001; wait")
    out = minirun("run", "-d", "--name", name, "--network", "bridge", "-p", "18091:9000", "-p", "18092:9001",
                  "-v", f"{tmp_path}:/x", rootfs, "/bin/sh", "-c", script)
    assert out.returncode == 0, out.stderr
    try:
        owner = inspect(name)["owner"]
        with open(f"/proc/{owner}/comm") as f:
            assert f.read().strip() == "minirun-shim"
        with open(f"/proc/{owner}/task/{owner}/children") as f:  # only the container's init
            assert f.read().split() == [str(inspect(name)["pid"])]

        def download() -> int:  # 0 until the container's nc listens: the shim's connect is refused
            with socket.create_connection(("127.0.0.1", 18092), timeout=10) as down:
                received = 0
                while chunk := down.recv(1 << 16):
                    received += len(chunk)
                return received

        sizes = []
        assert wait_for(lambda: sizes.append(download()) or sizes[-1] > 0, 20)
        assert sizes[-1] == 8 << 20
        with socket.create_connection(("127.0.0.1", 18091), timeout=10) as up:
            up.sendall(os.urandom(8 << 20))
        assert wait_for(lambda: (tmp_path / "up").read_text().strip() == str(8 << 20), 20)
    finally:
        minirun("rm", "-f", name)
    with socket.socket() as s:  # the listeners went with the shim
        assert s.connect_ex(("127.0.0.1", 18091)) != 0


def test_a_foreground_published_port_passes_a_half_close_on(rootfs):
    """The proxy thread of a foreground run: the container's nc says EOF at once (its
    stdin is empty), yet everything the client sends after that still arrives."""
    import socket

    proc = subprocess.Popen([sys.executable, "-m", "minirun", "run", "--network", "bridge", "-p", "18095:9000",
                             rootfs, "/bin/sh", "-c", "nc -l -p 9000 </dev/null | wc -c"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        def send() -> bool:
            with socket.create_connection(("127.0.0.1", 18095), timeout=5) as up:
                up.sendall(b"x" * (1 << 20))
                up.shutdown(socket.SHUT_WR)
                return up.recv(1) == b""  # the container's EOF, passed on; refused before nc listens
        assert wait_for(send, 20)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert out.strip() == str(1 << 20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_a_busy_port_fails_the_run_early(rootfs):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        out = minirun("run", "--network", "bridge", "-p", f"{port}:80", rootfs, "/bin/true")
    assert out.returncode == 125 and f"cannot publish port {port}" in out.stderr


def test_publish_needs_bridge(rootfs):
    out = minirun("run", "-p", "18082:80", rootfs, "/bin/true")
    assert out.returncode == 125 and "--network bridge" in out.stderr


def test_twenty_concurrent_detached_containers_get_distinct_addresses(rootfs):
    names = [f"net-c{i}" for i in range(20)]
    procs = [subprocess.Popen([sys.executable, "-m", "minirun", "run", "-d", "--name", n, "--network", "bridge",
                               rootfs, "/bin/sleep", "60"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for n in names]
    try:
        for p in procs:
            _, err = p.communicate(timeout=60)
            assert p.returncode == 0, err
        addresses = [inspect(n)["network"]["ip"] for n in names]
        assert len(set(addresses)) == 20, addresses
    finally:
        out = minirun("rm", "-f", *names, timeout=120)
        assert out.returncode == 0, out.stderr
    assert not [n for n in os.listdir("/sys/class/net") if n.startswith("mr")]


def test_host_network_sees_the_hosts_interfaces_with_a_warning(rootfs):
    out = minirun("run", "--network", "host", rootfs, "/bin/sh", "-c", "ls /sys/class/net")
    assert out.returncode == 0
    assert sorted(out.stdout.split()) == sorted(os.listdir("/sys/class/net"))
    assert "warning" in out.stderr and "--network host" in out.stderr


def test_none_is_loopback_only(rootfs):
    out = minirun("run", "--network", "none", rootfs, "ls", "/sys/class/net")
    assert out.stdout.split() == ["lo"]
