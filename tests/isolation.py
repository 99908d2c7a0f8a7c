"""One test session's own corner of the host, so that two suites (or a suite beside a
real workload) never see each other's containers.

choose() picks, per pytest session, everything minirun keeps host-wide (minirun/settings.py):
the state roots, the cgroup parent, the network dir, the bridge and its subnet. It exports
them as MINIRUN_* variables, so every minirun, minirun-oci, shim and finish step the tests
start inherits them. A variable already set is kept (the VM lane passes its own). The
leak checks look only at these; teardown() removes what is left of them at the end.
"""

from __future__ import annotations

import fcntl
import glob
import ipaddress
import os
import shutil
import socket
import struct
import subprocess

# Subnets for test bridges: 10.199.N.0/24. One per session, claimed by a lock held for the
# session (two sessions never take the same one) and skipped when a host route overlaps it.
SUBNET_POOL = [ipaddress.IPv4Network(f"10.199.{n}.0/24") for n in range(64)]
SUBNET_LOCKS = "/run/minirun-test-subnets"

_chosen: dict[str, str] = {}
_subnet_lock: list[int] = []


def _host_routes() -> list[ipaddress.IPv4Network]:
    routes = []
    try:
        with open("/proc/net/route") as f:
            for line in list(f)[1:]:
                fields = line.split()
                dest, mask = (struct.pack("<I", int(x, 16)) for x in (fields[1], fields[7]))
                if mask != b"\0\0\0\0":  # the default route overlaps everything, and is no bridge
                    routes.append(ipaddress.IPv4Network(f"{socket.inet_ntoa(dest)}/{socket.inet_ntoa(mask)}"))
    except (OSError, ValueError, IndexError):
        pass
    return routes


def _free_subnet() -> str:
    os.makedirs(SUBNET_LOCKS, 0o700, exist_ok=True)
    routes = _host_routes()
    for net in SUBNET_POOL:
        if any(net.overlaps(r) for r in routes):
            continue
        fd = os.open(os.path.join(SUBNET_LOCKS, f"{net.network_address}.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
                     0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        _subnet_lock.append(fd)  # held until this process exits
        return str(net)
    raise RuntimeError(f"no free test subnet in 10.199.0.0/18 (host routes: {routes})")


def choose() -> dict[str, str]:
    """Export this session's MINIRUN_* values; return those it chose (and so owns)."""
    if os.geteuid() != 0:
        return {}
    tag = f"t{os.getpid()}"
    wanted = {
        "MINIRUN_STATE_ROOT": f"/run/minirun-{tag}",
        "MINIRUN_OCI_ROOT": f"/run/minirun-oci-{tag}",
        "MINIRUN_CGROUP_PARENT": f"minirun-{tag}",
        "MINIRUN_NETWORK_DIR": f"/run/minirun-network-{tag}",
        "MINIRUN_LOG_ROOT": f"/var/lib/minirun/containers-{tag}",
        "MINIRUN_BRIDGE": f"mrt-{os.getpid()}",  # 'mrt-': never a veth's name (mr + hex)
    }
    for key, value in wanted.items():
        if key not in os.environ:
            os.environ[key] = _chosen[key] = value
    if "MINIRUN_SUBNET" not in os.environ:
        os.environ["MINIRUN_SUBNET"] = _chosen["MINIRUN_SUBNET"] = _free_subnet()
    return dict(_chosen)


def teardown() -> list[str]:
    """Remove what this session's values name (only those it chose): the bridge and its
    iptables rules, the cgroup parents, the state, log and network directories.
    Returns what was still there (a leak the per-test checks should have caught)."""
    left = []
    bridge = _chosen.get("MINIRUN_BRIDGE")
    if bridge and os.path.exists(f"/sys/class/net/{bridge}"):
        left.append(f"link {bridge}")
        subprocess.run(["ip", "link", "del", bridge], capture_output=True)
    if bridge:
        from minirun import network  # its BRIDGE is this session's: the rules of no other bridge

        network.remove_forward_rules()
    parent = _chosen.get("MINIRUN_CGROUP_PARENT")
    for name in (parent, parent + "-oci") if parent else ():
        for path in glob.glob(f"/sys/fs/cgroup/{name}") + glob.glob(f"/sys/fs/cgroup/*/{name}"):
            for dirpath, _dirs, _files in sorted(os.walk(path), key=lambda w: -w[0].count("/")):
                if dirpath != path:
                    left.append(f"cgroup {dirpath}")
                try:
                    os.rmdir(dirpath)
                except OSError:
                    pass
    for key in ("MINIRUN_STATE_ROOT", "MINIRUN_OCI_ROOT", "MINIRUN_NETWORK_DIR", "MINIRUN_LOG_ROOT"):
        root = _chosen.get(key)
        for path in (root, root + "-vm") if root else ():
            if os.path.isdir(path):
                left += [f"state {path}/{name}" for name in os.listdir(path)
                         if not name.startswith("allocations.")]
                shutil.rmtree(path, ignore_errors=True)
    return left


ENGINE_LANE_LOCK = "/run/minirun-tests-engine-lanes.lock"


def hold_engine_lane():
    """Wait for, then hold, the host's engine-lane lock; returns its release. dockerd's
    network setup (docker0, its iptables chains, ip_forward) and the CRI lane's CNI bridge
    and containerd cgroups are host-wide names: a second copy of the suite running its
    lane at the same time would undo ours at its end. So one suite at a time runs them;
    the other waits here (a lane takes a minute or two)."""
    fd = os.open(ENGINE_LANE_LOCK, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return lambda: os.close(fd)
