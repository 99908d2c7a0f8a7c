"""Bridge networking, published ports and host networking.

Traffic stays on this machine: between the host and the containers' own
namespaces on the session's bridge (minirun0 outside tests: tests/isolation.py), or on
127.0.0.1, on ports free at the time (two suites on one host never share one).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
import subprocess
import sys
import urllib.request

import pytest

from helpers import free_port, inspect, minirun, own_links, wait_for
from minirun.network import BRIDGE, FORWARD_CHAIN, SUBNET

GATEWAY = str(next(ipaddress.IPv4Network(SUBNET).hosts()))

WEB = "mkdir -p /www && echo hello-from-{name} > /www/index.html && exec httpd -f -p 8080 -h /www"
# and a file large enough to fill any socket buffer on the way to a client that does not read
BIG_WEB = ("mkdir -p /www && echo hello-from-{name} > /www/index.html && "
           "dd if=/dev/zero of=/www/big bs=1M count=32 2>/dev/null && exec httpd -f -p 8080 -h /www")


def fetch(url: str, timeout: float = 5) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read()


@contextlib.contextmanager
def published_web(rootfs, name, mode, publish):
    """A web server in a container whose port 8080 is published as ``publish``, detached
    (the shim relays) or in the foreground (minirun's own process relays); yields once
    index.html answers through it."""
    command = ["run", "--name", name, "--network", "bridge", "-p", publish, rootfs, "/bin/sh", "-c",
               BIG_WEB.format(name=name)]
    url = f"http://127.0.0.1:{publish.split(':')[-2]}/index.html"
    proc = None
    try:
        if mode == "detached":
            out = minirun(command[0], "-d", *command[1:])
            assert out.returncode == 0, out.stderr
        else:
            proc = subprocess.Popen([sys.executable, "-m", "minirun", *command], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE, text=True)
        answered = wait_for(lambda: fetch(url, 2) == f"hello-from-{name}\n".encode(), 60)
        if not answered and proc and proc.poll() is not None:
            pytest.fail(f"the container exited {proc.returncode}: {proc.stderr.read()}")
        assert answered
        yield url
    finally:
        if proc:
            proc.terminate()  # forwarded to httpd, which exits
            proc.communicate(timeout=30)
        else:
            minirun("rm", "-f", name)


@pytest.mark.parametrize("mode", ["detached", "foreground"])
def test_idle_connections_do_not_lock_new_clients_out(rootfs, mode):
    """200 connections that never send a byte, then a new client: it is served. The shim's
    relay had 64 slots and reset every connection beyond them."""
    port = free_port()
    with published_web(rootfs, f"net-idle-{mode[0]}", mode, f"{port}:8080") as url:
        idle = []
        try:
            for _ in range(200):
                idle.append(socket.create_connection(("127.0.0.1", port), timeout=5))
            assert fetch(url, 10).startswith(b"hello-from-")
        finally:
            for s in idle:
                s.close()


@pytest.mark.parametrize("mode", ["detached", "foreground"])
def test_a_client_that_never_reads_does_not_block_another(rootfs, mode):
    """One client asks for 32 MiB and never reads them; another client still gets its page.
    The foreground relay wrote with a blocking sendall on its only thread, and hung there."""
    port = free_port()
    with published_web(rootfs, f"net-slow-{mode[0]}", mode, f"{port}:8080") as url:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as stuck:
            stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            stuck.sendall(b"GET /big HTTP/1.0\r\n\r\n")
            first = stuck.recv(1)  # the answer has begun: the relay is writing to us, and we stop reading
            assert first == b"H"
            for _ in range(3):
                assert fetch(url, 10).startswith(b"hello-from-")


def test_an_address_form_publishes_on_that_address_only(rootfs):
    """docker's -p HOSTIP:HOSTPORT:CTRPORT[/tcp]: bound to HOSTIP alone. 127.0.0.2 is as local
    as 127.0.0.1, so a listener on every address would answer it too."""
    port = free_port()
    with published_web(rootfs, "net-addr", "detached", f"127.0.0.1:{port}:8080/tcp") as url:
        assert fetch(url).startswith(b"hello-from-net-addr")
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.2", port)) != 0


@pytest.mark.skipif(not socket.has_ipv6 or not os.path.exists("/proc/net/if_inet6"), reason="no IPv6")
def test_an_ipv6_loopback_address_form_is_published(rootfs):
    port = free_port()
    name = "net-addr6"
    out = minirun("run", "-d", "--name", name, "--network", "bridge", "-p", f"[::1]:{port}:8080", rootfs,
                  "/bin/sh", "-c", WEB.format(name=name))
    assert out.returncode == 0, out.stderr
    try:
        assert wait_for(lambda: fetch(f"http://[::1]:{port}/index.html", 2) == b"hello-from-net-addr6\n", 30)
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0
    finally:
        minirun("rm", "-f", name)


@pytest.mark.parametrize("value", ["localhost:8080:80", "1.2.3.4.5:8080:80", "[::1:8080:80", "8080:80/udp",
                                   "127.0.0.1::80"])
def test_a_bad_publish_value_is_one_line_and_125(rootfs, value):
    out = minirun("run", "--network", "bridge", "-p", value, rootfs, "/bin/true")
    assert out.returncode == 125
    assert out.stderr.count("\n") == 1 and "-p" in out.stderr and "Traceback" not in out.stderr


def test_a_host_address_that_is_not_local_is_refused(rootfs):
    out = minirun("run", "--network", "bridge", "-p", f"192.0.2.254:{free_port()}:80", rootfs, "/bin/true")
    assert out.returncode == 125 and "cannot publish port" in out.stderr and out.stderr.count("\n") == 1


def in_private_netns(tmp_path, script: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run a shell script in a network namespace of its own, with a private address book:
    the FORWARD policy, routes and bridge it makes there reach nothing of the host's (and
    no other tenant's traffic), and vanish with it."""
    full_env = dict(os.environ, MINIRUN_NETWORK_DIR=str(tmp_path / "network"),
                    MR=f"{sys.executable} -m minirun", **(env or {}))
    return subprocess.run(["unshare", "--net", "/bin/sh", "-uc", "ip link set lo up\n" + script],
                          env=full_env, capture_output=True, text=True, timeout=180)


def test_the_bridge_works_under_a_forward_drop_policy_and_its_rules_go_with_it(rootfs, tmp_path):
    """dockerd sets `iptables -P FORWARD DROP` and br_netfilter passes bridged frames through
    FORWARD: minirun's own ACCEPT (in a chain of its own, as docker, podman and CNI have)
    keeps container-to-container traffic flowing, and goes with the bridge. The policy is set
    in a network namespace of the test's own, so no other tenant of the host sees it."""
    if subprocess.run(["unshare", "--net", "sysctl", "-n", "net.bridge.bridge-nf-call-iptables"],
                      capture_output=True, text=True).stdout.strip() != "1":
        pytest.skip("br_netfilter does not pass bridged frames through iptables here: no policy to meet")
    script = f"""
iptables -w -P FORWARD DROP
trap '$MR rm -f net-fw >/dev/null 2>&1' EXIT
$MR run -d --name net-fw --network bridge {rootfs} /bin/sh -c '{WEB.format(name="net-fw")}' >/dev/null
ip=$($MR inspect net-fw | {sys.executable} -c 'import json, sys; print(json.load(sys.stdin)["network"]["ip"])')
# the host reaches it without FORWARD: once this answers, httpd listens
until wget -q -T 2 -O /dev/null "http://$ip:8080/index.html" 2>/dev/null; do :; done
echo "positive-control: $(wget -q -T 2 -O - "http://$ip:8080/index.html")"
echo "container-to-container: $($MR run --network bridge {rootfs} timeout 10 wget -qO- "http://$ip:8080/index.html")"
echo "rules-while-running:"; iptables -w -S
$MR rm -f net-fw >/dev/null
echo "rules-after:"; iptables -w -S
ip link show {BRIDGE} >/dev/null 2>&1 && echo bridge-stays || echo bridge-gone
"""
    out = in_private_netns(tmp_path, script)
    running, _, after = out.stdout.partition("rules-after:")
    assert "positive-control: hello-from-net-fw" in out.stdout, out.stdout + out.stderr
    assert "container-to-container: hello-from-net-fw" in out.stdout, out.stdout + out.stderr
    assert f"-A {FORWARD_CHAIN} -i {BRIDGE} -o {BRIDGE} -j ACCEPT" in running
    assert f"-A FORWARD -i {BRIDGE} -j {FORWARD_CHAIN}" in running
    assert FORWARD_CHAIN not in after and "bridge-gone" in after, after
    assert "-P FORWARD DROP" in after  # the policy is not minirun's: left as it was


def test_an_overlapping_subnet_is_refused_and_a_free_one_accepted(rootfs, tmp_path):
    """A subnet that overlaps a route of the host's is refused (125, one line) before anything
    exists; the positive control runs on a free subnet in the same namespace."""
    script = f"""
ip link add mrt-veth type veth peer name mrt-peer && ip addr add 10.123.0.1/24 dev mrt-veth && ip link set mrt-veth up
MINIRUN_SUBNET=10.123.0.0/25 $MR run --network bridge {rootfs} /bin/true; echo "overlap-rc=$?"
MINIRUN_SUBNET=10.124.0.0/24 $MR run --network bridge {rootfs} ip -4 addr show eth0 | grep -o 'inet [0-9.]*'
echo "free-rc=$?"
trap '$MR rm -f net-sub >/dev/null 2>&1' EXIT
MINIRUN_SUBNET=10.124.0.0/24 $MR run -d --name net-sub --network bridge {rootfs} /bin/sleep 60 >/dev/null
MINIRUN_SUBNET=10.125.0.0/24 $MR run --network bridge {rootfs} /bin/true; echo "other-subnet-rc=$?"
"""
    out = in_private_netns(tmp_path, script)
    assert "overlap-rc=125" in out.stdout, out.stdout + out.stderr
    first, second = out.stderr.splitlines()
    assert "overlaps the host's route 10.123.0.0/24 dev mrt-veth" in first
    assert "inet 10.124.0." in out.stdout and "free-rc=0" in out.stdout, out.stdout + out.stderr
    # a bridge made with one subnet is not silently given a second
    assert "other-subnet-rc=125" in out.stdout and "exists with subnet 10.124.0.0/24" in second


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
                      f"wget -qO- http://{ip_a}:8080/index.html; ping -c1 -W2 {GATEWAY} >/dev/null && echo host-ok")
        assert out.returncode == 0, out.stderr
        lines = out.stdout.split("\n")
        own_ip = lines[0].split()[1]
        assert own_ip != ip_a and ipaddress.IPv4Address(own_ip) in ipaddress.IPv4Network(SUBNET)
        assert "hello-from-net-a" in out.stdout and "host-ok" in out.stdout
        # and the host reaches the container on the bridge
        with urllib.request.urlopen(f"http://{ip_a}:8080/index.html", timeout=5) as r:
            assert r.read() == b"hello-from-net-a\n"
    finally:
        minirun("rm", "-f", "net-a")


def test_published_port_answers_on_the_hosts_loopback(rootfs):
    port = free_port()
    try:
        start_web(rootfs, "net-pub", "-p", f"{port}:8080")
        assert wait_for(lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/index.html", timeout=2).read()
                        == b"hello-from-net-pub\n")
    finally:
        minirun("rm", "-f", "net-pub")
    # the proxy went with the container's supervisor
    import socket

    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0


def test_a_detached_containers_published_ports_carry_megabytes_both_ways(rootfs, tmp_path):
    """-d -p: the shim relays (csrc/shim.c), in C, what the proxy thread did: 8 MiB up
    arrive whole, 8 MiB down too, two ports at once, and no Python process stays."""
    import socket

    name, up_port, down_port = "net-big", free_port(), free_port()
    script = ("nc -l -p 9000 | wc -c > /x/up & "
              "dd if=/dev/zero bs=64k count=128 2>/dev/null | nc -l -p 9001; wait")
    out = minirun("run", "-d", "--name", name, "--network", "bridge", "-p", f"{up_port}:9000", "-p", f"{down_port}:9001",
                  "-v", f"{tmp_path}:/x", rootfs, "/bin/sh", "-c", script)
    assert out.returncode == 0, out.stderr
    try:
        owner = inspect(name)["owner"]
        with open(f"/proc/{owner}/comm") as f:
            assert f.read().strip() == "minirun-shim"
        with open(f"/proc/{owner}/task/{owner}/children") as f:  # only the container's init
            assert f.read().split() == [str(inspect(name)["pid"])]

        def download() -> int:  # 0 until the container's nc listens: the shim's connect is refused
            with socket.create_connection(("127.0.0.1", down_port), timeout=10) as down:
                received = 0
                while chunk := down.recv(1 << 16):
                    received += len(chunk)
                return received

        sizes = []
        assert wait_for(lambda: sizes.append(download()) or sizes[-1] > 0, 20)
        assert sizes[-1] == 8 << 20
        with socket.create_connection(("127.0.0.1", up_port), timeout=10) as up:
            up.sendall(os.urandom(8 << 20))
        assert wait_for(lambda: (tmp_path / "up").read_text().strip() == str(8 << 20), 20)
    finally:
        minirun("rm", "-f", name)
    with socket.socket() as s:  # the listeners went with the shim
        assert s.connect_ex(("127.0.0.1", up_port)) != 0


def test_a_foreground_published_port_passes_a_half_close_on(rootfs):
    """The proxy thread of a foreground run: the container's nc says EOF at once (its
    stdin is empty), yet everything the client sends after that still arrives."""
    import socket

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "minirun", "run", "--network", "bridge", "-p", f"{port}:9000",
                             rootfs, "/bin/sh", "-c", "nc -l -p 9000 </dev/null | wc -c"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        def send() -> bool:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as up:
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
    out = minirun("run", "-p", f"{free_port()}:80", rootfs, "/bin/true")
    assert out.returncode == 125 and "--network bridge" in out.stderr


def test_twenty_concurrent_detached_containers_get_distinct_addresses(rootfs):
    names = [f"net-c{i}" for i in range(20)]
    procs = [subprocess.Popen([sys.executable, "-m", "minirun", "run", "-d", "--name", n, "--network", "bridge",
                               rootfs, "/bin/sleep", "60"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for n in names]
    try:
        errors = [p.communicate(timeout=60)[1] for p in procs]  # every one reaped before any assert
        assert [p.returncode for p in procs] == [0] * 20, errors
        addresses = [inspect(n)["network"]["ip"] for n in names]
        assert len(set(addresses)) == 20, addresses
    finally:
        out = minirun("rm", "-f", *names, timeout=120)
        assert out.returncode == 0, out.stderr
    assert not own_links()


def test_subnet_check_sees_a_bridge_made_during_its_route_dump(monkeypatch):
    """A concurrent start may make the bridge and give it its address between the check's
    link lookup and its route dump: the bridge's routes must not read as another device's
    (the refusal 'bridge exists with subnet N, not N' seen in CI)."""
    from pyroute2 import IPRoute

    from minirun import network

    name = f"mrr-{os.getpid() % 100000}"
    net = ipaddress.IPv4Network("10.197.231.0/24")
    monkeypatch.setattr(network, "BRIDGE", name)

    class ConcurrentStart:  # IPRoute, whose route dump comes after a concurrent start's bridge
        def __init__(self, ip):
            self.ip = ip

        def __getattr__(self, attr):
            return getattr(self.ip, attr)

        def route(self, command, *args, **kwargs):
            if command == "dump" and not self.ip.link_lookup(ifname=name):
                network._ensure_bridge(self.ip, str(next(net.hosts())), net.prefixlen)
            return self.ip.route(command, *args, **kwargs)

    with IPRoute() as ip:
        try:
            assert network._routes_overlapping(ConcurrentStart(ip), net) == []
        finally:
            for index in ip.link_lookup(ifname=name):
                ip.link("del", index=index)


def test_subnet_check_ignores_a_bridge_removed_during_its_route_dump(monkeypatch):
    """The last container on the bridge may remove it (detach_by_id) between a start's route
    dump and its bridge lookup: the gone bridge's routes are gone with it, neither another
    device's nor a reason to fail ('No such device' looking up their device)."""
    from pyroute2 import IPRoute

    from minirun import network

    name = f"mrr-{os.getpid() % 100000}"
    net = ipaddress.IPv4Network("10.197.232.0/24")
    monkeypatch.setattr(network, "BRIDGE", name)

    class LastOneOut:  # IPRoute, whose bridge is removed by the last container right after the dump
        def __init__(self, ip):
            self.ip = ip

        def __getattr__(self, attr):
            return getattr(self.ip, attr)

        def route(self, command, *args, **kwargs):
            routes = self.ip.route(command, *args, **kwargs)
            if command == "dump":
                for index in self.ip.link_lookup(ifname=name):
                    self.ip.link("del", index=index)
            return routes

    with IPRoute() as ip:
        try:
            network._ensure_bridge(ip, str(next(net.hosts())), net.prefixlen)
            assert network._routes_overlapping(LastOneOut(ip), net) == []
        finally:
            for index in ip.link_lookup(ifname=name):
                ip.link("del", index=index)


def test_a_stale_address_is_not_released_once_a_restart_of_its_name_took_it(monkeypatch):
    """A start (or gc) releasing the address of a container whose minirun was killed checks that
    nobody holds the name, then releases it: a restart of that name that claims it and gets its
    address in between must keep that address (and its veth, and the bridge), not lose them."""
    from minirun import cleanup, network, state

    monkeypatch.setattr(network, "BRIDGE", f"mrr-{os.getpid() % 100000}")  # none: nothing to remove
    monkeypatch.setattr(network, "remove_forward_rules", lambda: None)  # the session's: not this test's
    name = f"stale-{os.getpid()}"
    network.allocate(name)  # its minirun died: no state directory holds it
    real_detach = network.detach_by_id
    restart = []

    def restart_in_the_window(container_id, *args, **kwargs):
        if container_id == name and not restart:  # the restart, between the check and the release
            restart.append(state.claim(name, {}).take())
            restart.append(network.allocate(name)[0])
        return real_detach(container_id, *args, **kwargs)

    monkeypatch.setattr(network, "detach_by_id", restart_in_the_window)
    try:
        cleanup.release_stale_addresses()
        with network._Allocations() as book:
            assert book.get(name) == restart[1]
    finally:
        if restart:
            restart[0].__exit__(None, None, None)
        real_detach(name)


def test_host_network_sees_the_hosts_interfaces_with_a_warning(rootfs):
    before = set(os.listdir("/sys/class/net"))
    out = minirun("run", "--network", "host", rootfs, "/bin/sh", "-c", "ls /sys/class/net")
    after = set(os.listdir("/sys/class/net"))
    assert out.returncode == 0
    # the host's links, give or take those other tenants made or removed meanwhile
    assert before & after <= set(out.stdout.split()) <= before | after
    assert "warning" in out.stderr and "--network host" in out.stderr


def test_none_is_loopback_only(rootfs):
    out = minirun("run", "--network", "none", rootfs, "ls", "/sys/class/net")
    assert out.stdout.split() == ["lo"]
