"""What a container is, as data: no I/O here.

The shape follows the OCI runtime-spec config.json so that a bundle maps onto it
field by field:

    ContainerSpec.rootfs          <- root.path
    ContainerSpec.readonly_root   <- root.readonly
    ContainerSpec.hostname        <- hostname
    ContainerSpec.domainname      <- domainname
    ContainerSpec.sysctl          <- linux.sysctl  (namespaced keys only: minirun/sysctl.py)
    Process.args / env / cwd      <- process.args / env / cwd
    Process.uid / gid             <- process.user.uid / gid
    ContainerSpec.namespaces      <- linux.namespaces[].type
    ContainerSpec.mounts          <- mounts[]            (extra mounts, after the defaults)
    ContainerSpec.overlay         (minirun's own: copy-on-write root, no OCI field)
    ContainerSpec.network         "host" = no "network" entry in linux.namespaces; bridge and
                                  publish are set up by the runtime (OCI leaves them to hooks)
    Limits.cpu_quota / cpu_period <- linux.resources.cpu.quota / period
    Limits.cpuset_cpus            <- linux.resources.cpu.cpus
    Limits.memory                 <- linux.resources.memory.limit
    Limits.memory_swap            <- linux.resources.memory.swap  (memory + swap, docker's meaning)
    Limits.pids                   <- linux.resources.pids.limit
    Limits.devices                <- linux.resources.devices[] (allow, type, major, minor, access;
                                     minirun/devices.py: deny all but the OCI defaults)
    ContainerSpec.devices         <- linux.devices[] (path, type, major, minor, fileMode): --device
    Limits.cpu_shares             <- linux.resources.cpu.shares
    Limits.memory_reservation     <- linux.resources.memory.reservation
    Limits.memory_swappiness      <- linux.resources.memory.swappiness   (v1 only, as runc;
    Limits.oom_kill_disable       <- linux.resources.memory.disableOOMKiller  v2: a warning)
    Limits.kernel_memory / _tcp   <- linux.resources.memory.kernel / kernelTCP (v1, where the
                                     kernel has the file; else a warning, as runc)
    Process.capabilities          <- process.capabilities.{bounding,effective,permitted}; also
                                     .inheritable when uid is 0 (empty for other users); ambient empty
    Process.no_new_privileges     <- process.noNewPrivileges
    Process.terminal              <- process.terminal (the console: csrc/console.c, minirun/tty.py)
    ContainerSpec.seccomp         <- linux.seccomp  ("default": Docker's profile; None: unconfined;
                                     else a profile dict: Docker, containers-common or OCI shape,
                                     see minirun/seccomp.py)
    ContainerSpec.masked_paths    <- linux.maskedPaths
    ContainerSpec.readonly_paths  <- linux.readonlyPaths
    ContainerSpec.uid_mappings    <- linux.uidMappings[] (containerID, hostID, size); non-empty adds
    ContainerSpec.gid_mappings    <- linux.gidMappings[]  a "user" namespace

Parsers for the docker-style option values (``64m``, ``0.5``, ``0-1,3``) live here
too, so the CLI and the Python API reject the same things with the same words.
"""

from __future__ import annotations

import os
from .record import Factory, Record

from .devices import DEFAULT_RULES as DEFAULT_DEVICE_RULES, Device, DeviceRule
from .errors import SpecError
from .ids import check_id, valid_id  # noqa: F401 (the one id check; spec's users import it from here too)
from .policy import DEFAULT_CAPS, DEFAULT_MASKED_PATHS, DEFAULT_READONLY_PATHS

# Namespaces every container gets (OCI names). "cgroup" is added where the kernel has it.
DEFAULT_NAMESPACES = ("pid", "mount", "uts", "ipc", "network", "cgroup")
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CPU_PERIOD_US = 100_000

# Sizes are checked without re (as ids are, ids.py): re imports enum, ~5 ms at every start here.
# A size is what r"^\s*(\d+(?:\.\d+)?)\s*([bkmgt]?)(?:i?b)?\s*$" (ignoring case) matches.
_SIZE_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
# Docker's floor (it refuses "Minimum memory limit allowed is 6MB"): below it not even a shell starts.
MIN_MEMORY = 6 << 20
HOSTNAME_MAX = 64  # bytes: the kernel's __NEW_UTS_LEN


def parse_size(text: str | int, what: str = "--memory") -> int:
    """Docker's size syntax: ``64m``, ``1g``, ``512k``, ``1048576``, ``64MiB`` -> bytes (> 0)."""
    if isinstance(text, int):
        value = text
    else:
        parts = _split_size(str(text))
        if parts is None:
            raise SpecError(f"invalid {what} value {text!r}: use a number with an optional unit b, k, m, g (e.g. 64m)")
        value = int(float(parts[0]) * _SIZE_UNITS[parts[1]])
    if value <= 0:
        raise SpecError(f"invalid {what} value {text!r}: must be greater than 0")
    return value


def format_size(value: int) -> str:
    """Bytes in the size syntax a user types: 1024 -> ``1k``, 6291456 -> ``6m``, 1000 -> ``1000``."""
    for unit, scale in (("t", 1 << 40), ("g", 1 << 30), ("m", 1 << 20), ("k", 1 << 10)):
        if value >= scale and value % scale == 0:
            return f"{value // scale}{unit}"
    return str(value)


def check_hostname(name: str) -> str:
    """A UTS hostname: at most 64 bytes, printable, no spaces or slashes (checked before anything exists)."""
    size = len(name.encode())
    if size > HOSTNAME_MAX:
        raise SpecError(f"invalid hostname: {size} bytes long, the kernel allows at most {HOSTNAME_MAX}")
    if not name or not name.isprintable() or any(c in name for c in " /"):
        raise SpecError(f"invalid hostname {name!r}: use letters, digits, '-' and '.'")
    return name


def parse_cpus(text: str | float, host_cpus: int) -> float:
    """``--cpus 0.5``: a positive number of CPUs, at most the host's."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise SpecError(f"invalid --cpus value {text!r}: use a number such as 0.5 or 2") from None
    if not value > 0:
        raise SpecError(f"invalid --cpus value {text!r}: must be greater than 0")
    if value > host_cpus:
        raise SpecError(f"invalid --cpus value {text!r}: this host has only {host_cpus} CPUs")
    return value


def parse_pids_limit(value: int) -> int:
    if value <= 0:
        raise SpecError(f"invalid --pids-limit value {value}: must be at least 1")
    return value


def parse_cpuset(text: str, host_cpus: int, what: str = "--cpuset-cpus", unit: str = "CPUs") -> str:
    """``0-1,3`` -> validated against the CPUs (or memory nodes) this host has."""
    cpus: set[int] = set()
    for part in str(text).split(","):
        bounds = part.strip().split("-")
        try:
            if len(bounds) == 1:
                lo = hi = int(bounds[0])
            elif len(bounds) == 2:
                lo, hi = int(bounds[0]), int(bounds[1])
            else:
                raise ValueError
        except ValueError:
            raise SpecError(f"invalid {what} value {text!r}: use a list such as 0 or 0-1,3") from None
        if lo < 0 or hi < lo:
            raise SpecError(f"invalid {what} value {text!r}: bad range {part!r}")
        cpus.update(range(lo, hi + 1))
    if max(cpus) >= host_cpus:
        raise SpecError(f"invalid {what} value {text!r}: this host has {unit} 0-{host_cpus - 1}")
    return ",".join(str(c) for c in sorted(cpus))


def parse_user(text: str) -> tuple[int, int]:
    """``--user UID[:GID]`` (numeric, as the busybox rootfs has no NSS to resolve names)."""
    uid, _, gid = str(text).partition(":")
    try:
        uid_n = int(uid)
        gid_n = int(gid) if gid else uid_n
    except ValueError:
        raise SpecError(f"invalid --user value {text!r}: use numeric UID[:GID]") from None
    if uid_n < 0 or gid_n < 0:
        raise SpecError(f"invalid --user value {text!r}: ids cannot be negative")
    return uid_n, gid_n


def parse_env(items: list[str] | tuple[str, ...]) -> list[str]:
    env = []
    for item in items:
        if "=" not in item or item.startswith("="):
            raise SpecError(f"invalid -e value {item!r}: use KEY=VALUE")
        env.append(item)
    return env


def _container_path(path: str, what: str) -> str:
    if not path.startswith("/") or path == "/" or ".." in path.split("/"):
        raise SpecError(f"invalid {what} container path {path!r}: use an absolute path other than /, without '..'")
    return os.path.normpath(path)


def parse_volume(text: str) -> Mount:
    """``-v HOSTDIR:CTRDIR[:ro|:rw]`` -> a bind Mount; the host path must exist."""
    parts = str(text).split(":")
    if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] not in ("ro", "rw")):
        raise SpecError(f"invalid -v value {text!r}: use HOSTDIR:CTRDIR[:ro]")
    host, ctr = parts[0], parts[1]
    if not host.startswith("/"):
        raise SpecError(f"invalid -v value {text!r}: the host path must be absolute")
    if not os.path.exists(host):
        raise SpecError(f"invalid -v value {text!r}: {host} does not exist")
    options = ["rbind", parts[2] if len(parts) == 3 else "rw"]
    return Mount(destination=_container_path(ctr, "-v"), type="bind", source=os.path.realpath(host), options=options)


def parse_tmpfs(text: str) -> Mount:
    """``--tmpfs PATH[:size=64m,mode=1777]`` -> a tmpfs Mount (docker's defaults: noexec, nosuid, nodev)."""
    path, _, opts = str(text).partition(":")
    options = ["nosuid", "nodev", "noexec"]
    for opt in filter(None, opts.split(",")):
        key, _, value = opt.partition("=")
        if key == "size":
            options.append(f"size={parse_size(value, '--tmpfs size')}")
        elif key == "mode" and value.isdigit():
            options.append(f"mode={value}")
        elif key in ("exec", "noexec", "ro", "rw", "suid", "nosuid", "dev", "nodev") and not value:
            options.append(key)
        else:
            raise SpecError(f"invalid --tmpfs option {opt!r}: use size=SIZE, mode=OCTAL, ro, exec")
    return Mount(destination=_container_path(path, "--tmpfs"), type="tmpfs", source="tmpfs", options=options)


NETWORK_MODES = ("none", "bridge", "host")


def parse_network(text: str) -> str:
    if text not in NETWORK_MODES:
        raise SpecError(f"invalid --network value {text!r}: use none, bridge or host")
    return text


def parse_publish(text: str) -> tuple[str, int, int]:
    """docker's ``-p [HOSTIP:]HOSTPORT:CTRPORT[/tcp]`` -> (host address, host port, container port).

    Without HOSTIP the port is published on the host's 127.0.0.1 only (docker's default is
    every address; minirun publishes nothing beyond this machine unless asked). HOSTIP is an
    IPv4 address or a bracketed IPv6 one (``[::1]:8080:80``), bound alone."""
    ports, _, proto = str(text).partition("/")
    if proto not in ("", "tcp"):
        raise SpecError(f"invalid -p value {text!r}: only tcp can be published")
    address = "127.0.0.1"
    if ports.startswith("["):  # [IPV6]:HOSTPORT:CTRPORT
        address, bracket, ports = ports[1:].partition("]")
        if not bracket or not ports.startswith(":"):
            raise SpecError(f"invalid -p value {text!r}: use [IPV6]:HOSTPORT:CTRPORT")
        ports = ports[1:]
    elif ports.count(":") == 2:
        address, _, ports = ports.partition(":")
    host, _, ctr = ports.partition(":")
    try:
        pair = int(host), int(ctr)
    except ValueError:
        raise SpecError(f"invalid -p value {text!r}: use [HOSTIP:]HOSTPORT:CTRPORT[/tcp]") from None
    if not all(0 < p < 65536 for p in pair):
        raise SpecError(f"invalid -p value {text!r}: ports are 1-65535")
    import ipaddress  # only for -p: its import is not free

    try:
        address = str(ipaddress.ip_address(address))
    except ValueError:
        raise SpecError(f"invalid -p value {text!r}: {address!r} is not an IP address") from None
    return address, pair[0], pair[1]


def _split_size(text: str) -> tuple[str, str] | None:
    """``" 1.5 GiB"`` -> ``("1.5", "g")``: the number and the unit letter, or None."""
    text = text.strip()
    end = _digits_end(text, 0)
    if end == 0:
        return None
    if text[end:end + 1] == ".":
        end = _digits_end(text, end + 1)
        if text[end - 1] == ".":
            return None
    rest = text[end:].lstrip().lower()
    unit = rest[:1] if rest[:1] and rest[:1] in "bkmgt" else ""
    return (text[:end], unit) if rest[len(unit):] in ("", "b", "ib") else None


def _digits_end(text: str, i: int) -> int:
    while i < len(text) and text[i].isdecimal():
        i += 1
    return i


class Limits(Record):
    """Resource limits; ``None`` means unlimited."""

    cpu_quota: int | None = None  # microseconds per period
    cpu_period: int = CPU_PERIOD_US
    cpuset_cpus: str | None = None
    memory: int | None = None  # bytes
    memory_swap: int | None = None  # memory + swap in bytes; None = same as memory (no swap); -1 = unlimited swap
    pids: int | None = None
    devices: tuple[DeviceRule, ...] = DEFAULT_DEVICE_RULES  # the devices cgroup, in order
    cpu_shares: int | None = None  # relative CPU weight (v1 cpu.shares; v2 cpu.weight): OCI cpu.shares
    memory_reservation: int | None = None  # soft limit in bytes: OCI memory.reservation
    cpuset_mems: str | None = None  # memory nodes, "0-1,3": OCI cpu.mems
    # OCI linux.resources.blockIO (v1 blkio, v2 io): weights 10-1000; per device
    # (major, minor, weight, leaf weight) with 0 for "not set"; throttles as
    # (kind, major, minor, rate), kind one of rbps wbps riops wiops (v2 io.max keys).
    blkio_weight: int | None = None
    blkio_leaf_weight: int | None = None
    blkio_weight_device: tuple[tuple[int, int, int, int], ...] = ()
    blkio_throttle: tuple[tuple[str, int, int, int], ...] = ()
    hugepage_limits: tuple[tuple[str, int], ...] = ()  # (page size as the kernel names it: "2MB", bytes)
    memory_swappiness: int | None = None  # 0-100 (v1 memory.swappiness)
    oom_kill_disable: bool = False  # v1 memory.oom_control: processes wait at the limit instead
    kernel_memory: int | None = None  # bytes (v1 memory.kmem.limit_in_bytes; deprecated by the kernel)
    kernel_tcp: int | None = None  # bytes (v1 memory.kmem.tcp.limit_in_bytes)

    @classmethod
    def from_cpus(cls, cpus: float | None, **kw) -> Limits:
        quota = None if cpus is None else max(1000, round(cpus * CPU_PERIOD_US))
        return cls(cpu_quota=quota, **kw)

    @property
    def cpus(self) -> float | None:
        return None if self.cpu_quota is None else self.cpu_quota / self.cpu_period

    def validate(self, names: dict[str, str] | None = None) -> None:
        """The one check of limit values, for every front end and the cgroup drivers alike
        (they write what passed, without checks of their own). ``names``: how the front
        end spells each field, for the messages (LIMIT_NAMES: minirun's options)."""
        name = {**LIMIT_NAMES, **(names or {})}
        self._validate_devices(name["devices"])
        if self.memory is not None and self.memory < MIN_MEMORY:
            raise SpecError(f"{name['memory']} {format_size(self.memory)} is below the minimum of "
                            f"{format_size(MIN_MEMORY)}: nothing can run in less")
        if self.memory_swap is not None and self.memory_swap != -1:
            if self.memory is None:
                raise SpecError(f"{name['memory_swap']} needs {name['memory']}")
            if self.memory_swap < self.memory:
                raise SpecError(f"{name['memory_swap']} must be at least {name['memory']} (it counts memory plus swap)")
        if self.memory_swappiness is not None and not 0 <= self.memory_swappiness <= 100:
            raise SpecError(f"{name['memory_swappiness']} {self.memory_swappiness}: must be between 0 and 100")
        weights = [("blkio_weight", "", self.blkio_weight), ("blkio_leaf_weight", "", self.blkio_leaf_weight)]
        for major, minor, weight, leaf in self.blkio_weight_device:  # 0: not set
            weights += [("blkio_weight_device", f" {major}:{minor} weight", weight or None),
                        ("blkio_weight_device", f" {major}:{minor} leafWeight", leaf or None)]
        for field, at, weight in weights:
            if weight is not None and not 10 <= weight <= 1000:
                raise SpecError(f"{name[field]}{at} {weight}: must be between 10 and 1000")

    def _validate_devices(self, name: str) -> None:
        # A type "a" rule sets the whole list (v1 takes it so, whatever its access; the
        # v2 program has no other meaning for it): only rwm says that without ambiguity.
        if not self.devices or self.devices[0].type != "a":
            raise SpecError(f"{name}: must start with a rule for all devices (allow or deny 'a *:* rwm')")
        for rule in self.devices:
            if rule.type not in ("a", "b", "c") or not rule.access or not _ACCESS.issuperset(rule.access):
                raise SpecError(f"{name}: invalid rule {rule.v1_line()!r}: type a, b or c; access made of r, w, m")
            if rule.type == "a" and rule.access != "rwm":
                raise SpecError(f"{name}: invalid rule {rule.v1_line()!r}: a rule for all devices is for rwm")


_ACCESS = frozenset("rwm")  # a device rule's access is made of these (one set, not two per rule per check)


# How minirun's options name the Limits fields, for Limits.validate's messages; minirun-oci
# passes its config.json paths instead (oci/bundle.py).
LIMIT_NAMES = {"devices": "device rules", "memory": "--memory", "memory_swap": "--memory-swap",
               "memory_swappiness": "memory swappiness", "blkio_weight": "blkio weight",
               "blkio_leaf_weight": "blkio leaf weight", "blkio_weight_device": "blkio weight device"}


def terminal_type() -> str:
    """TERM inside a container with a terminal: the host's, else docker's xterm."""
    return os.environ.get("TERM") or "xterm"


class Process(Record):
    args: list[str]
    env: list[str] = Factory(list)
    cwd: str = "/"
    uid: int = 0
    gid: int = 0
    capabilities: tuple[str, ...] = DEFAULT_CAPS  # CAP_* names (security.tweak_caps)
    no_new_privileges: bool = True
    terminal: bool = False  # a pty of the container's devpts as stdio (minirun.tty)

    def full_env(self, hostname: str) -> list[str]:
        """The environment COMMAND sees: defaults first, then the user's, later wins."""
        merged = {"PATH": DEFAULT_PATH, "HOSTNAME": hostname, "HOME": "/root" if self.uid == 0 else "/"}
        if self.terminal:
            merged["TERM"] = terminal_type()
        for item in self.env:
            key, _, value = item.partition("=")
            merged[key] = value
        return [f"{k}={v}" for k, v in merged.items()]


class Mount(Record):
    """One OCI mount entry: ``destination`` inside the container."""

    destination: str
    type: str = "bind"
    source: str = ""
    options: list[str] = Factory(list)


class ContainerSpec(Record):
    rootfs: str
    process: Process
    id: str = ""
    generated_id: bool = False  # minirun made the id up: only such ids may be abbreviated (docker's rule)
    hostname: str = ""
    domainname: str = ""
    sysctl: dict[str, str] = Factory(dict)  # kernel parameters of the container's own namespaces
    namespaces: tuple[str, ...] = DEFAULT_NAMESPACES
    limits: Limits = Factory(Limits)
    mounts: list[Mount] = Factory(list)
    readonly_root: bool = False
    overlay: bool = True  # see the root through overlayfs so the base rootfs is never written
    network: str = "none"  # none: loopback only; bridge: veth on minirun0; host: the host's namespace
    publish: list[tuple[str, int, int]] = Factory(list)  # (host address, host port, container port)
    # security (minirun/security.py)
    seccomp: dict | str | None = "default"
    masked_paths: tuple[str, ...] = DEFAULT_MASKED_PATHS
    readonly_paths: tuple[str, ...] = DEFAULT_READONLY_PATHS
    devices: list[Device] = Factory(list)  # nodes made in the container (--device); Limits.devices allows them
    uid_mappings: list[tuple[int, int, int]] = Factory(list)
    gid_mappings: list[tuple[int, int, int]] = Factory(list)
