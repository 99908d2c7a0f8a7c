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
