"""linux.sysctl, hostname and domainname may only reach namespaces the container does not
share with the host: runc's rules (libcontainer/configs/validate/validator.go, sysctl
and hostname), checked in minirun/sysctl.py for both front ends.

Each escape case asks for a key whose namespace is the host's (not listed, or joined by
path to the host's own) and checks that create fails with runc's words and the host's
value is unchanged; each positive control asks for the same key in a namespace of the
container's own (new, or joined by path) and sees it take effect inside. A case that
gets through on a broken build has its host value restored by the fixture."""

from __future__ import annotations

import json
import os
import socket
import subprocess

import pytest

from conftest import OCI, run_to_files, write_config
from helpers import minirun

HOST = os.getpid()  # this test's namespaces are the host's (and minirun-oci's)

# key, its namespace (OCI type; None: it has none), runc's error when that namespace is the host's
CASES = {
    "ipc": ("kernel.msgmax", "ipc", 'sysctl "kernel.msgmax" is not allowed in the hosts ipc namespace'),
    "mqueue": ("fs.mqueue.queues_max", "ipc",
               'sysctl "fs.mqueue.queues_max" is not allowed in the hosts ipc namespace'),
    "net": ("net.ipv4.ping_group_range", "network",
            'sysctl "net.ipv4.ping_group_range" not allowed in host network namespace'),
    "host-only": ("kernel.printk_ratelimit_burst", None,
                  'sysctl "kernel.printk_ratelimit_burst" is not in a separate kernel namespace'),
    "hostname-key": ("kernel.hostname", None,
                     'sysctl "kernel.hostname" is not allowed as it conflicts with the OCI "hostname" field'),
}


def _proc_sys(key: str) -> str:
    return "/proc/sys/" + key.replace(".", "/")


def _read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def _other_value(key: str) -> str:
    """A value unlike the host's, so a write that reached the host would show."""
    current = _read(_proc_sys(key))
    if key == "net.ipv4.ping_group_range":
        return "0 1" if current.split() != ["0", "1"] else "0 2"
    if key == "kernel.hostname":
        return "minirun-escape"
    return str(int(current) + 1)


@pytest.fixture
def host_values():
    """Restores whatever host value a broken build changed (the test fails all the same)."""
    saved: dict[str, str] = {}

    def watch(key: str) -> str:
        saved[key] = _read(_proc_sys(key))
        return saved[key]

    yield watch
    for key, value in saved.items():
        if _read(_proc_sys(key)) != value:
            with open(_proc_sys(key), "w") as f:
                f.write(value)


@pytest.fixture
def private_ns():
    """A process in namespaces of its own (net, ipc, uts): its /proc/PID/ns files are a
    container's to join by path, not the host's."""
    child = subprocess.Popen(["unshare", "--net", "--ipc", "--uts", "sh", "-c", "echo ready; exec sleep 600"],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline() == "ready\n"
        yield child.pid
    finally:
        child.kill()
        child.wait()
        child.stdout.close()


def _bundle(bundle, key: str, value: str, script: str, drop: str | None = None, join: str | None = None) -> str:
    path = bundle(["/bin/sh", "-c", script])
    with open(os.path.join(path, "config.json")) as f:
        config = json.load(f)
    namespaces = [ns for ns in config["linux"]["namespaces"] if ns["type"] != drop]
    if join:
        namespaces = [dict(ns, path=join) if ns["type"] == drop else ns for ns in config["linux"]["namespaces"]]
    config["linux"]["namespaces"] = namespaces
    config["linux"]["sysctl"] = {key: value}
    write_config(path, config)
    return path


@pytest.mark.parametrize("joined", [False, True], ids=["not-listed", "joined-hosts"])
@pytest.mark.parametrize("case", list(CASES))
def test_a_sysctl_of_the_hosts_namespace_is_refused(bundle, oci, host_values, case, joined):
    key, kind, error = CASES[case]
    if joined and kind is None:
        pytest.skip("no namespace to join")
    before = host_values(key)
    value = _other_value(key)
    ns_file = {"ipc": "ipc", "network": "net"}.get(kind)
    path = _bundle(bundle, key, value, f"cat {_proc_sys(key)}", drop=kind,
                   join=f"/proc/{HOST}/ns/{ns_file}" if joined else None)
    out = oci("run", "--bundle", path, f"sysctl-{case}")
    assert out.returncode != 0
    assert out.stderr == f"minirun-oci: {error}\n"
    assert _read(_proc_sys(key)) == before
    assert not os.path.exists(os.path.join(oci.root, f"sysctl-{case}"))


@pytest.mark.parametrize("joined", [False, True], ids=["new", "joined"])
@pytest.mark.parametrize("case", ["ipc", "mqueue", "net"])
def test_positive_control_the_same_sysctl_in_the_containers_own_namespace(bundle, oci, host_values, private_ns,
                                                                          case, joined):
    key, kind, _ = CASES[case]
    before = host_values(key)
    value = _other_value(key)
    ns_file = {"ipc": "ipc", "network": "net"}[kind]
    path = _bundle(bundle, key, value, f"cat {_proc_sys(key)}", drop=kind if joined else None,
                   join=f"/proc/{private_ns}/ns/{ns_file}" if joined else None)
    out = oci("run", "--bundle", path, f"own-{case}")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == value.split()
    assert _read(_proc_sys(key)) == before


def test_kernel_domainname_is_allowed_in_a_uts_namespace(bundle, oci):
    path = _bundle(bundle, "kernel.domainname", "example.org", "cat /proc/sys/kernel/domainname")
    out = oci("run", "--bundle", path, "domain")
    assert out.returncode == 0, out.stderr
    assert out.stdout == "example.org\n"


@pytest.fixture
def host_name():
    before = socket.gethostname(), _read("/proc/sys/kernel/domainname")
    yield before
    if (socket.gethostname(), _read("/proc/sys/kernel/domainname")) != before:  # a broken build got through
        socket.sethostname(before[0])
        with open("/proc/sys/kernel/domainname", "w") as f:
            f.write(before[1])


@pytest.mark.parametrize("field", ["hostname", "domainname"])
@pytest.mark.parametrize("joined", [False, True], ids=["not-listed", "joined-hosts"])
def test_hostname_without_a_uts_namespace_of_its_own_is_refused(bundle, oci, host_name, field, joined):
    """runc: "unable to set hostname without a private UTS namespace"; it used to rewrite
    the host's name."""
    path = bundle(["/bin/hostname"])
    with open(os.path.join(path, "config.json")) as f:
        config = json.load(f)
    namespaces = [ns for ns in config["linux"]["namespaces"] if ns["type"] != "uts"]
    config["linux"]["namespaces"] = namespaces + ([{"type": "uts", "path": f"/proc/{HOST}/ns/uts"}] if joined else [])
    config.pop("hostname", None)  # `runc spec` sets one
    config[field] = "minirun-escape"
    write_config(path, config)
    out = oci("run", "--bundle", path, "uts")
    assert out.returncode != 0
    assert out.stderr == f"minirun-oci: unable to set {field} without a private UTS namespace\n"
    assert (socket.gethostname(), _read("/proc/sys/kernel/domainname")) == host_name


def test_positive_control_hostname_in_a_joined_uts_namespace(bundle, oci, host_name, private_ns):
    path = bundle(["/bin/hostname"])
    with open(os.path.join(path, "config.json")) as f:
        config = json.load(f)
    config["linux"]["namespaces"] = [ns for ns in config["linux"]["namespaces"] if ns["type"] != "uts"] + [
        {"type": "uts", "path": f"/proc/{private_ns}/ns/uts"}]
    config["hostname"] = "minirun-joined"
    write_config(path, config)
    out = oci("run", "--bundle", path, "uts-own")
    assert out.returncode == 0, out.stderr
    assert out.stdout == "minirun-joined\n"
    assert socket.gethostname() == host_name[0]


def test_minirun_run_sysctl_follows_the_same_rules(rootfs, host_values):
    """`minirun run --sysctl` (docker's option) shares the check: net.* with --network
    host is refused (exit 125), and takes effect in the container's own namespace."""
    before = host_values("net.ipv4.ping_group_range")
    value = _other_value("net.ipv4.ping_group_range")
    refused = minirun("run", "--network", "host", "--sysctl", f"net.ipv4.ping_group_range={value}", rootfs,
                      "cat", "/proc/sys/net/ipv4/ping_group_range")
    assert refused.returncode == 125
    assert refused.stderr.splitlines()[-1] == ('minirun: sysctl "net.ipv4.ping_group_range" not allowed in host '
                                               'network namespace')
    assert _read(_proc_sys("net.ipv4.ping_group_range")) == before
    own = minirun("run", "--sysctl", f"net.ipv4.ping_group_range={value}", rootfs,
                  "cat", "/proc/sys/net/ipv4/ping_group_range")
    assert own.returncode == 0, own.stderr
    assert own.stdout.split() == value.split()
    refused = minirun("run", "--sysctl", "kernel.printk_ratelimit_burst=1", rootfs, "true")
    assert refused.returncode == 125
    assert refused.stderr == 'minirun: sysctl "kernel.printk_ratelimit_burst" is not in a separate kernel namespace\n'


@pytest.fixture
def flipping_netns_link(tmp_path):
    """A link a config.json author controls, flipped back and forth as fast as can be between
    a network namespace of its own and the runtime's: a stand-in runtime namespace (a
    throwaway one, where minirun-oci runs under nsenter), so a write that gets through
    changes nothing of the host's. Yields (link, stand-in pid, private netns link text)."""
    import threading

    procs = [subprocess.Popen(["unshare", "--net", "sh", "-c", "echo ready; exec sleep 600"], stdout=subprocess.PIPE,
                              text=True) for _ in range(2)]
    stop = threading.Event()
    link = str(tmp_path / "netns")
    try:
        for p in procs:
            assert p.stdout.readline() == "ready\n"
        stand_in, private = (p.pid for p in procs)
        targets = [f"/proc/{private}/ns/net", f"/proc/{stand_in}/ns/net"]
        os.symlink(targets[0], link)

        def flip():
            i = 0
            while not stop.is_set():
                i += 1
                os.symlink(targets[i % 2], link + ".new")
                os.replace(link + ".new", link)

        flipper = threading.Thread(target=flip, daemon=True)
        flipper.start()
        yield link, stand_in, os.readlink(f"/proc/{stand_in}/ns/net")
        stop.set()
        flipper.join()
    finally:
        stop.set()
        for p in procs:
            p.kill()
            p.wait()
            p.stdout.close()


def _race(bundle, oci, link: str, stand_in: int, sysctl: dict, attempts: int):
    """Up to ``attempts`` runs joining the network namespace through ``link``: yields
    (returncode, the namespace the process found itself in)."""
    path = bundle(["/bin/sh", "-c", "readlink /proc/self/ns/net"])
    with open(os.path.join(path, "config.json")) as f:
        config = json.load(f)
    config["linux"]["namespaces"] = [dict(ns, path=link) if ns["type"] == "network" else ns
                                     for ns in config["linux"]["namespaces"]]
    config["linux"]["sysctl"] = sysctl
    write_config(path, config)
    for i in range(attempts):
        out = run_to_files(["nsenter", f"--net=/proc/{stand_in}/ns/net", OCI, "--root", oci.root, "run", "--bundle",
                            path, f"flip{i}"])
        yield out.returncode, out.stdout.strip()


def test_a_namespace_path_is_judged_and_joined_as_one_open_file(bundle, oci, flipping_netns_link):
    """The sysctl rule stat()ed the path, then the join opened it again: a link flipped in
    between passed the check as a namespace of the container's own and joined the runtime's,
    where net.* was written (before: caught within the 40 runs). Now the namespace
    is opened once, judged and joined through that fd (runc, as its source reads, stats the
    path in its validator and opens it again in nsexec: the same window)."""
    link, stand_in, runtime_ns = flipping_netns_link
    for returncode, seen in _race(bundle, oci, link, stand_in, {"net.ipv4.ip_default_ttl": "99"}, 40):
        assert not (returncode == 0 and seen == runtime_ns), "net.* written in the runtime's network namespace"


def test_positive_control_the_flipping_link_reaches_the_runtimes_namespace(bundle, oci, flipping_netns_link):
    """Without a sysctl, joining through the same link is allowed whichever it names: the
    runs land in the runtime's namespace too, so the race above is live and the probe sees it."""
    link, stand_in, runtime_ns = flipping_netns_link
    assert any(seen == runtime_ns for returncode, seen in _race(bundle, oci, link, stand_in, {}, 40))
