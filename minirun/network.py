"""Bridge networking for containers, over netlink with pyroute2.

    host                                    container (its own network namespace)
    minirun0 (bridge, 10.88.0.1/24) --- mr<hash> ==veth== eth0 10.88.0.N/24, default via 10.88.0.1

The parent creates the veth pair with its peer already inside the container's
namespace (by the init's pid) while the init waits at sync 1; the init then
gives eth0 its address and route in C (csrc/init.c), before COMMAND starts.

Addresses come from a small allocator, a JSON file guarded by flock(), so
concurrent starts never get the same address. Nothing here enables forwarding
or NAT: containers reach each other and the host, nothing beyond. This module
is imported only for --network bridge: pyroute2 alone costs ~0.1 s to import.

The subnet is 10.88.0.0/24 unless MINIRUN_SUBNET says otherwise (a private IPv4
subnet of at least 8 addresses); one that overlaps a route of the host's (another
interface's network, a VPN's) is refused before anything is made.

Where the host's FORWARD policy is DROP (dockerd sets it, with br_netfilter making
bridged frames pass through iptables), traffic between the bridge's ports would be
dropped. The bridge therefore comes with one ACCEPT rule of minirun's own, in a chain
of its own, as docker, podman and CNI do:

    -A FORWARD -i minirun0 -j MINIRUN-FWD-minirun0
    -A MINIRUN-FWD-minirun0 -i minirun0 -o minirun0 -j ACCEPT

in from the bridge and out to the bridge only: nothing is forwarded to or from any
other interface. Both are made with the bridge and removed with it; no other rule
is ever touched. A host without the iptables command has no such policy to meet.

A VM (``minirun vm run --network bridge``) gets a tap instead of a veth, on the
same bridge, with an address from the same book under the key ``vm/<name>``
(a container name cannot hold a slash). The tap is not persistent: it lives as
long as a file descriptor to it is open, which after launch is QEMU's alone, so
a QEMU that dies for any reason takes its tap with it.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import ipaddress
import json
import os
from dataclasses import dataclass

from .errors import HostError, SpecError
from .settings import BRIDGE, DEFAULT_BRIDGE, SUBNET  # minirun0 and 10.88.0.0/24, or MINIRUN_BRIDGE/_SUBNET
from .state import NETWORK_DIR as IPAM_DIR

FORWARD_CHAIN = f"MINIRUN-FWD-{BRIDGE}"  # at most 28 characters: a bridge name has at most 15


@dataclass
class Attachment:
    container_id: str
    host_ifname: str
    address: str
    prefixlen: int
    gateway: str

    def to_dict(self) -> dict:
        return {"bridge": BRIDGE, "ip": self.address, "prefixlen": self.prefixlen, "gateway": self.gateway,
                "host_interface": self.host_ifname}


def _subnet() -> ipaddress.IPv4Network:
    try:
        net = ipaddress.IPv4Network(SUBNET)
    except ValueError as err:
        raise SpecError(f"invalid MINIRUN_SUBNET {SUBNET!r}: {err}") from None
    if not net.is_private or net.prefixlen > 29:
        raise SpecError(f"MINIRUN_SUBNET {SUBNET} must be a private IPv4 subnet of at least 8 addresses")
    return net


class _Allocations:
    """The address book, locked for the duration of the block."""

    def __init__(self, root: str = IPAM_DIR):
        self.path = os.path.join(root, "allocations.json")
        self.root = root

    def __enter__(self) -> dict:
        os.makedirs(self.root, mode=0o700, exist_ok=True)
        self.fd = os.open(os.path.join(self.root, "allocations.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        try:
            with open(self.path) as f:
                self.book = json.load(f)
        except (FileNotFoundError, ValueError):
            self.book = {}
        return self.book

    def __exit__(self, *exc) -> None:
        try:
            if exc[0] is None:
                tmp = self.path + ".tmp"
                with open(tmp, "w") as f:
                    json.dump(self.book, f)
                os.rename(tmp, self.path)
        finally:
            os.close(self.fd)


def allocate(container_id: str, root: str = IPAM_DIR) -> tuple[str, int, str]:
    """A free address for ``container_id``: (address, prefix length, gateway)."""
    net = _subnet()
    hosts = net.hosts()
    gateway = str(next(hosts))
    with _Allocations(root) as book:
        taken = set(book.values())
        for host in hosts:
            if str(host) not in taken:
                book[container_id] = str(host)
                return str(host), net.prefixlen, gateway
    raise HostError(f"no free address left in {net} (minirun gc releases the ones of dead containers)")


def host_ifname(container_id: str) -> str:
    # IFNAMSIZ is 16. On a bridge of another name the name counts too: the same container
    # name on two bridges (two test runs) gets two host links.
    key = container_id if BRIDGE == DEFAULT_BRIDGE else f"{BRIDGE}/{container_id}"
    return "mr" + hashlib.sha1(key.encode()).hexdigest()[:10]


def _routes_overlapping(ip, net: ipaddress.IPv4Network) -> list[tuple[ipaddress.IPv4Network, str]]:
    """(destination, device) of the host's routes (every table) that overlap ``net``, and of the
    bridge's that lie outside it (the bridge exists with another subnet)."""
    import socket

    routes = ip.route("dump", family=socket.AF_INET)  # every table: the local one has the host's addresses
    # The bridge is looked up after the dump: a concurrent start may make it, and give it its
    # address, between the two; looked up before, its routes would read as another device's.
    bridge = set(ip.link_lookup(ifname=BRIDGE))
    found = []
    for route in routes:
        dst, length = route.get_attr("RTA_DST"), route["dst_len"]
        if not dst or not length:
            continue  # a default route: it overlaps everything, and means nothing here
        oif = route.get_attr("RTA_OIF")
        dest = ipaddress.IPv4Network(f"{dst}/{length}", strict=False)
        if oif in bridge:  # the bridge's own: fine if it is this subnet's, else it was made with another
            if not dest.subnet_of(net):
                found.append((dest, BRIDGE))
        elif dest.overlaps(net):
            dev = _link_name(ip, oif) if oif else "?"
            if dev is not None:
                found.append((dest, dev))
    return found


def _link_name(ip, index: int) -> str | None:
    """The name of link ``index``; None if it is gone since the route dump, its routes with it
    (the bridge, say, which the last container on it removes: detach_by_id)."""
    from pyroute2 import NetlinkError

    try:
        return ip.get_links(index)[0].get_attr("IFLA_IFNAME")
    except NetlinkError as err:
        if err.code != errno.ENODEV:
            raise
        return None


def check_subnet() -> ipaddress.IPv4Network:
    """The bridge's subnet, refused if it overlaps one of the host's routes: containers would
    shadow (or be shadowed by) that network. As docker checks a bridge's subnet."""
    from pyroute2 import IPRoute

    net = _subnet()
    with IPRoute() as ip:
        clash = _routes_overlapping(ip, net)
    for dest, dev in clash:
        if dev == BRIDGE:
            raise SpecError(f"bridge {BRIDGE} exists with subnet {dest}, not {net}: use that subnet, or remove "
                            f"the containers and VMs on it first")
        raise SpecError(f"bridge subnet {net} overlaps the host's route {dest} dev {dev}: choose another one "
                        f"with MINIRUN_SUBNET")
    return net


def _iptables(*args: str) -> bool:
    """One iptables call (-w: wait for the xtables lock other tools hold); True if it succeeded."""
    import subprocess

    return subprocess.run(["iptables", "-w", *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                          check=False).returncode == 0


_JUMP = ("FORWARD", "-i", BRIDGE, "-j", FORWARD_CHAIN)
_ACCEPT = (FORWARD_CHAIN, "-i", BRIDGE, "-o", BRIDGE, "-j", "ACCEPT")


def _has_iptables() -> bool:
    import shutil

    return shutil.which("iptables") is not None


def add_forward_rules() -> None:
    """minirun's own ACCEPT for traffic between the bridge's ports (see the module doc);
    idempotent, so every start can call it: one check when the rules are there."""
    if not _has_iptables() or _iptables("-C", *_JUMP):
        return
    _iptables("-N", FORWARD_CHAIN)  # fails if a concurrent start made it: the checks below decide
    if not _iptables("-C", *_ACCEPT) and not _iptables("-A", *_ACCEPT):
        raise HostError(f"cannot add the iptables rule {' '.join(_ACCEPT[1:])} to chain {FORWARD_CHAIN}")
    if not _iptables("-C", *_JUMP) and not _iptables("-I", *_JUMP[:1], "1", *_JUMP[1:]):
        raise HostError(f"cannot add the iptables jump from FORWARD to {FORWARD_CHAIN}")


def remove_forward_rules() -> None:
    """Undo add_forward_rules: the jump, then the chain; only what minirun made."""
    if not _has_iptables():
        return
    while _iptables("-D", *_JUMP):
        pass
    if _iptables("-F", FORWARD_CHAIN):
        _iptables("-X", FORWARD_CHAIN)


def _ensure_bridge(ip, gateway: str, prefixlen: int) -> int:
    found = ip.link_lookup(ifname=BRIDGE)
    if found:
        return found[0]
    add_forward_rules()  # with the bridge, not at every start: an iptables fork on each bridged run
    try:
        ip.link("add", ifname=BRIDGE, kind="bridge")
    except Exception as err:  # a concurrent start made it first
        if getattr(err, "code", None) != 17:
            raise
    index = ip.link_lookup(ifname=BRIDGE)[0]
    try:
        ip.addr("add", index=index, address=gateway, prefixlen=prefixlen)
    except Exception as err:
        if getattr(err, "code", None) != 17:
            raise
    ip.link("set", index=index, state="up")
    return index


def reserve(container_id: str) -> Attachment:
    """An address for the container, before it exists: the C child is told it at clone time."""
    from .settings import check_names

    problem = check_names()
    if problem:
        raise SpecError(problem)
    check_subnet()
    address, prefixlen, gateway = allocate(container_id)
    return Attachment(container_id, host_ifname(container_id), address, prefixlen, gateway)


def connect(att: Attachment, pid: int) -> None:
    """Plug the container whose init is ``pid`` into the bridge (see the module doc)."""
    from pyroute2 import IPRoute

    with IPRoute() as ip:
        bridge = _ensure_bridge(ip, att.gateway, att.prefixlen)
        ip.link("add", ifname=att.host_ifname, kind="veth", peer={"ifname": "eth0", "net_ns_pid": pid})
        index = ip.link_lookup(ifname=att.host_ifname)[0]
        ip.link("set", index=index, master=bridge, state="up")


VM_PREFIX = "vm/"
_TUNSETIFF = 0x400454CA
_IFF_TAP, _IFF_NO_PI, _IFF_VNET_HDR = 0x0002, 0x1000, 0x4000


def vm_key(vm_id: str) -> str:
    """The VM's key in the address book (and the seed of its tap's name)."""
    return VM_PREFIX + vm_id


def open_tap(att: Attachment) -> int:
    """Create the tap ``att.host_ifname`` on the bridge, up; return its fd (the tap dies with the last one).

    IFF_VNET_HDR lets virtio-net pass checksum and segmentation offloads through; QEMU probes the flag on the
    fd it inherits (``-netdev tap,fd=N``).
    """
    import struct

    from pyroute2 import IPRoute

    try:
        fd = os.open("/dev/net/tun", os.O_RDWR | os.O_CLOEXEC)
    except OSError as err:
        raise HostError(f"cannot open /dev/net/tun for the VM's tap: {err.strerror} (modprobe tun)") from None
    try:
        fcntl.ioctl(fd, _TUNSETIFF, struct.pack("16sH", att.host_ifname.encode(), _IFF_TAP | _IFF_NO_PI | _IFF_VNET_HDR))
        with IPRoute() as ip:
            bridge = _ensure_bridge(ip, att.gateway, att.prefixlen)
            index = ip.link_lookup(ifname=att.host_ifname)[0]
            ip.link("set", index=index, master=bridge, state="up")
    except BaseException as err:
        os.close(fd)
        if isinstance(err, Exception) and not isinstance(err, HostError):  # OSError, pyroute2's NetlinkError
            raise HostError(f"cannot plug the VM's tap {att.host_ifname} into {BRIDGE}: {err}") from err
        raise
    return fd


def detach_by_id(container_id: str, root: str = IPAM_DIR, keep_if=None) -> bool:
    """Release the address; remove the host end of the veth if the kernel has not (it
    does when the container's namespace dies, taking the pair with it), and the
    bridge with the last address, so nothing of minirun stays on the host.
    ``keep_if()``, asked under the book's lock, keeps it all if true: whether the owner of a
    stale address lives, checked where a restart of its name cannot take the address meanwhile
    (a start claims the name, then allocates under that lock). False if kept."""
    from pyroute2 import IPRoute

    with IPRoute() as ip, _Allocations(root) as book:
        if keep_if is not None and keep_if():
            return False
        last = set(book) <= {container_id}
        for name in [host_ifname(container_id)] + ([BRIDGE] if last else []):
            for index in ip.link_lookup(ifname=name):
                try:
                    ip.link("del", index=index)
                except Exception:  # gone meanwhile
                    pass
        if last:
            remove_forward_rules()
        book.pop(container_id, None)
    return True


def stale_ids(root: str = IPAM_DIR) -> set[str]:
    try:
        with open(os.path.join(root, "allocations.json")) as f:
            return set(json.load(f))
    except (FileNotFoundError, ValueError):
        return set()
