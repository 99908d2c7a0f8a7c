"""An OCI bundle's config.json -> minirun's ContainerSpec, plus what only OCI has.

The spec (minirun/spec.py) is shaped like config.json, so most fields map one to
one; the rest (rlimits, hooks, devices, sysctl, the five capability sets, ...)
go in ``Extras``, which runtime.py hands to the same spawn path. Everything is
checked here, before anything is created. A field minirun cannot honour is an
error that names it (runc would honour it, so ignoring it would be a lie);
AppArmor and SELinux labels are a warning, as this host has neither, and so are
capability names this kernel does not know (runc skips them too).

Mounts are all made before pivot_root, in config order (as runc does): an engine's
bind mounts land on top of its tmpfs /dev and /dev/shm. Their destinations are
container paths, resolved inside the root by csrc/rootpath.c like every plan's.
"""

from __future__ import annotations

import os
import stat

from .. import jsonlite
from ..errors import SpecError
from ..mounts import (DEFAULT_DEVICES, DEV_LINKS, MS_BIND, MS_DIRSYNC, MS_MANDLOCK, MS_NOATIME, MS_NODEV,
                      MS_NODIRATIME, MS_NOEXEC, MS_NOSUID, MS_PRIVATE, MS_RDONLY, MS_REC, MS_RELATIME, MS_REMOUNT,
                      MS_SHARED, MS_SLAVE, MS_STRICTATIME, MS_SYNCHRONOUS, MS_UNBINDABLE, NODE_KEEP, OP_MKNOD,
                      OP_MOUNT, OP_READONLY, OP_SYMLINK, Op)
from ..spec import ContainerSpec, Limits, Process, parse_cpuset


# mount(8) option -> (set, flag): runc's table (libcontainer/specconv).
MOUNT_FLAGS = {
    "defaults": (True, 0), "ro": (True, MS_RDONLY), "rw": (False, MS_RDONLY),
    "suid": (False, MS_NOSUID), "nosuid": (True, MS_NOSUID), "dev": (False, MS_NODEV), "nodev": (True, MS_NODEV),
    "exec": (False, MS_NOEXEC), "noexec": (True, MS_NOEXEC), "sync": (True, MS_SYNCHRONOUS),
    "async": (False, MS_SYNCHRONOUS), "dirsync": (True, MS_DIRSYNC), "remount": (True, MS_REMOUNT),
    "mand": (True, MS_MANDLOCK), "nomand": (False, MS_MANDLOCK), "atime": (False, MS_NOATIME),
    "noatime": (True, MS_NOATIME), "diratime": (False, MS_NODIRATIME), "nodiratime": (True, MS_NODIRATIME),
    "relatime": (True, MS_RELATIME), "norelatime": (False, MS_RELATIME), "strictatime": (True, MS_STRICTATIME),
    "nostrictatime": (False, MS_STRICTATIME), "bind": (True, MS_BIND), "rbind": (True, MS_BIND | MS_REC),
}
PROPAGATION = {
    "private": MS_PRIVATE, "rprivate": MS_PRIVATE | MS_REC, "shared": MS_SHARED, "rshared": MS_SHARED | MS_REC,
    "slave": MS_SLAVE, "rslave": MS_SLAVE | MS_REC, "unbindable": MS_UNBINDABLE,
    "runbindable": MS_UNBINDABLE | MS_REC,
}
NAMESPACES = {"pid": "pid", "network": "net", "mount": "mnt", "ipc": "ipc", "uts": "uts", "user": "user",
              "cgroup": "cgroup"}
RLIMITS = ("CPU", "FSIZE", "DATA", "STACK", "CORE", "RSS", "NPROC", "NOFILE", "MEMLOCK", "AS", "LOCKS",
           "SIGPENDING", "MSGQUEUE", "NICE", "RTPRIO", "RTTIME")  # RLIMIT_* numbers 0..15 on Linux
HOOK_KINDS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")
RLIM_INFINITY_U64 = (1 << 64) - 1  # "unlimited" in config.json's uint64 (docker's --ulimit core=-1)


def _rlimit_value(limit: dict, key: str, name: str) -> int:
    """A uint64, as runc reads it; its all-ones is RLIM_INFINITY, which Python's prlimit spells -1."""
    import resource

    try:
        value = int(limit.get(key, 0))
    except (TypeError, ValueError):
        value = -1
    if value == RLIM_INFINITY_U64:
        return resource.RLIM_INFINITY
    if not 0 <= value < 1 << 63:
        raise SpecError(f"process.rlimits {name}: {key} {limit.get(key)!r} is not a uint64 the kernel takes")
    return value


class Extras:
    """What config.json asks for beyond ContainerSpec, ready for runtime.py."""

    def __init__(self):
        self.env: list[str] = []  # exactly process.env (no minirun defaults)
        self.caps: tuple[int, int, int] | None = None  # effective, permitted, ambient masks
        self.inheritable = 0
        self.groups: list[int] = []
        self.umask: int | None = None
        self.rlimits: list[tuple[int, int, int]] = []  # (resource, soft, hard)
        self.oom_score_adj: int | None = None
        self.join: dict[str, str] = {}  # namespace type -> path to setns into
        self.cgroups_path: str | None = None
        self.pre_plan: tuple = ()
        self.plan: tuple = ()
        self.hooks: dict[str, list[dict]] = {}
        self.annotations: dict[str, str] = {}
        self.terminal = False
        self.console_size: tuple[int, int] | None = None  # process.consoleSize (rows, columns)
        self.warnings: list[str] = []


def load(bundle: str) -> dict:
    """config.json from ``bundle`` (its errors say which of the two is wrong)."""
    if not os.path.isdir(bundle):
        raise SpecError(f"bundle {bundle}: no such directory")
    path = os.path.join(bundle, "config.json")
    try:
        with open(path) as f:
            config = jsonlite.load(f)  # not json: its import costs each create ~7 ms
    except FileNotFoundError:
        raise SpecError(f"bundle {bundle}: no config.json") from None
    except ValueError as err:
        raise SpecError(f"{path}: invalid JSON: {err}") from None
    if not isinstance(config, dict):
        raise SpecError(f"{path}: not a JSON object")
    return config


def _get(obj: dict, key: str, kind, where: str, default=None):
    value = obj.get(key, default)
    if value is not None and not isinstance(value, kind):
        raise SpecError(f"{where}{key}: expected {getattr(kind, '__name__', kind)}, got {type(value).__name__}")
    return value


def _uint(value, where: str, bits: int = 32) -> int:
    """A JSON number as Go decodes runc's uint32/uint64 fields: an integer from 0 to
    2**bits - 1, else one line (runc: "cannot unmarshal number -1 ... of type uint32")."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1 << bits:
        raise SpecError(f"{where} {value!r}: must be an integer from 0 to {(1 << bits) - 1}")
    return value


def _reject_present(obj: dict, keys, where: str, why: str = "not supported by minirun-oci") -> None:
    for key in keys:
        if obj.get(key) not in (None, {}, [], "", False):
            raise SpecError(f"{where}{key}: {why}")


def check_version(config: dict) -> None:
    version = config.get("ociVersion")
    if not isinstance(version, str) or not version:
        raise SpecError("ociVersion: missing")
    if version.split(".")[0] != "1":
        raise SpecError(f"ociVersion {version!r}: unsupported (minirun-oci implements runtime-spec 1.x)")


def to_spec(config: dict, bundle: str, container_id: str) -> tuple[ContainerSpec, Extras]:
    check_version(config)
    extras = Extras()
    bundle = os.path.realpath(bundle)
    root = _root(config, bundle)
    linux = _get(config, "linux", dict, "", {}) or {}
    process = _get(config, "process", dict, "")
    if not process:
        raise SpecError("process: missing (create needs the process to run)")
    proc = parse_process(process, extras)
    extras.annotations = _get(config, "annotations", dict, "", {}) or {}
    namespaces = _namespaces(linux, extras)
    uid_maps = [(m["containerID"], m["hostID"], m["size"]) for m in linux.get("uidMappings") or []]
    gid_maps = [(m["containerID"], m["hostID"], m["size"]) for m in linux.get("gidMappings") or []]
    if (uid_maps or gid_maps) and "user" not in namespaces:
        raise SpecError("linux.uidMappings: id mappings need a new user namespace (type user) in linux.namespaces")
    if "user" in namespaces and not (uid_maps and gid_maps):
        raise SpecError("linux.namespaces: a new user namespace needs linux.uidMappings and linux.gidMappings")
    limits = parse_resources(_get(linux, "resources", dict, "linux.", {}) or {}, extras)
    limits.devices = _device_rules(limits_devices(linux), _get(linux, "devices", list, "linux.", []) or [])
    limits.validate(LIMIT_NAMES)
    extras.cgroups_path = _cgroups_path(_get(linux, "cgroupsPath", str, "linux."), container_id)
    _reject_present(linux, ("intelRdt", "personality", "timeOffsets", "mountLabel"), "linux.")
    for label in ("apparmorProfile", "selinuxLabel"):
        if process.get(label):
            extras.warnings.append(f"process.{label} {process[label]!r} ignored: this host has no "
                                   f"{'AppArmor' if label[0] == 'a' else 'SELinux'}")
    own_cgroups = None if "cgroup" in namespaces else (extras.cgroups_path, limits)
    extras.pre_plan, propagations = _mounts(config, linux, root, bundle, own_cgroups)
    if "user" in namespaces:
        extras.pre_plan = _devices_bound(extras.pre_plan)
    extras.plan = _root_propagation(linux) + propagations
    extras.hooks = _hooks(config)
    seccomp = _get(linux, "seccomp", dict, "linux.")
    if seccomp:
        _check_seccomp(seccomp, proc.capabilities)
    spec = ContainerSpec(
        rootfs=root, process=proc, id=container_id, hostname=_get(config, "hostname", str, "") or "",
        domainname=_get(config, "domainname", str, "") or "",
        sysctl={str(k): str(v) for k, v in (_get(linux, "sysctl", dict, "linux.", {}) or {}).items()},
        namespaces=tuple(namespaces), limits=limits, mounts=[],
        readonly_root=bool(_get(config["root"], "readonly", bool, "root.", False)), overlay=False,
        network="none" if "network" in namespaces or "network" in extras.join else "host",
        seccomp=seccomp or None, uid_mappings=uid_maps, gid_mappings=gid_maps,
        masked_paths=tuple(_get(linux, "maskedPaths", list, "linux.", []) or ()),
        readonly_paths=tuple(_get(linux, "readonlyPaths", list, "linux.", []) or ()))
    return spec, extras


def _root(config: dict, bundle: str) -> str:
    root = _get(config, "root", dict, "")
    if not root or not root.get("path"):
        raise SpecError("root.path: missing")
    given = root["path"]
    path = os.path.realpath(os.path.join(bundle, given))
    if not os.path.isabs(given) and os.path.commonpath([path, bundle]) != bundle:
        raise SpecError(f"root.path {given!r}: a relative root must be inside the bundle {bundle}")
    if not os.path.isdir(path):
        raise SpecError(f"root.path {given!r}: {path} is not a directory")
    return path


def _caps(names, unknown: set[str]) -> int:
    """Capability names -> a bit mask. A name this kernel does not know (or minirun's
    table lacks) goes into ``unknown`` and is skipped: runc's rule ("ignoring unknown or
    unavailable capabilities"), so a config written for a newer kernel still runs."""
    from ..security import CAP_NUMBER, last_cap

    mask = 0
    for name in names or ():
        number = CAP_NUMBER.get(name)
        if number is None or number > last_cap():
            unknown.add(str(name))
            continue
        mask |= 1 << number
    return mask


def parse_process(process: dict, extras: Extras) -> Process:
    args = _get(process, "args", list, "process.")
    if not args or not all(isinstance(a, str) for a in args):
        raise SpecError("process.args: must be a non-empty list of strings")
    if process.get("commandLine"):
        raise SpecError("process.commandLine: Windows only")
    extras.terminal = bool(process.get("terminal"))
    size = _get(process, "consoleSize", dict, "process.", None)
    if size:
        extras.console_size = (int(size.get("height", 0)), int(size.get("width", 0)))
    cwd = _get(process, "cwd", str, "process.", "/") or "/"
    if not cwd.startswith("/"):
        raise SpecError(f"process.cwd {cwd!r}: must be an absolute path")
    user = _get(process, "user", dict, "process.", {}) or {}
    if user.get("username"):
        raise SpecError("process.user.username: Windows only (use uid and gid)")
    uid, gid = _uint(user.get("uid", 0), "process.user.uid"), _uint(user.get("gid", 0), "process.user.gid")
    gids = _get(user, "additionalGids", list, "process.user.", []) or []
    extras.groups = [_uint(g, "process.user.additionalGids[]") for g in gids]
    extras.umask = user.get("umask")
    env = _get(process, "env", list, "process.", []) or []
    extras.env = [str(e) for e in env]
    caps = _get(process, "capabilities", dict, "process.", {}) or {}
    from ..security import caps_of_mask

    unknown: set[str] = set()
    bounding = _caps(caps.get("bounding"), unknown)
    extras.caps = (_caps(caps.get("effective"), unknown), _caps(caps.get("permitted"), unknown),
                   _caps(caps.get("ambient"), unknown))
    extras.inheritable = _caps(caps.get("inheritable"), unknown)
    if unknown:
        extras.warnings.append(f"ignoring unknown or unavailable capabilities: [{' '.join(sorted(unknown))}]")
    for limit in _get(process, "rlimits", list, "process.", []) or []:
        name = str(limit.get("type", ""))
        if not name.startswith("RLIMIT_") or name[7:] not in RLIMITS:
            raise SpecError(f"process.rlimits: unknown type {name!r}")
        extras.rlimits.append((RLIMITS.index(name[7:]), _rlimit_value(limit, "soft", name),
                               _rlimit_value(limit, "hard", name)))
    if process.get("oomScoreAdj") is not None:
        extras.oom_score_adj = int(process["oomScoreAdj"])
    _reject_present(process, ("ioPriority", "scheduler", "execCPUAffinity"), "process.")
    return Process(args=list(args), env=extras.env, cwd=cwd, uid=uid, gid=gid, capabilities=caps_of_mask(bounding),
                   no_new_privileges=bool(process.get("noNewPrivileges", False)))


def _namespaces(linux: dict, extras: Extras) -> list[str]:
    created = []
    for ns in _get(linux, "namespaces", list, "linux.", []) or []:
        kind = ns.get("type") if isinstance(ns, dict) else None
        if kind not in NAMESPACES:
            raise SpecError(f"linux.namespaces: unknown namespace type {kind!r} "
                            f"(known: {', '.join(NAMESPACES)})")
        if kind in created or kind in extras.join:
            raise SpecError(f"linux.namespaces: {kind} listed twice")
        if ns.get("path"):
            if kind == "user":
                raise SpecError("linux.namespaces: joining a user namespace by path is not supported by "
                                "minirun-oci")
            _check_ns_path(kind, ns["path"])
            extras.join[kind] = ns["path"]
        else:
            created.append(kind)
    if "mount" not in created and "mount" not in extras.join:
        raise SpecError("linux.namespaces: minirun-oci needs a mount namespace, new or joined (type mount)")
    if "mount" in extras.join and "user" in created:
        raise SpecError("linux.namespaces: a joined mount namespace cannot be set up from a new user namespace "
                        "(it belongs to another one)")
    return created


_NS_GET_NSTYPE = 0xB703  # _IO(0xb7, 0x3), linux/nsfs.h: the CLONE_NEW* type of an nsfs fd


def _check_ns_path(kind: str, path: str) -> None:
    os.close(open_namespace(kind, path))


def open_namespaces(join: dict[str, str]) -> dict[str, int]:
    """Each namespace to join, opened once and checked (open_namespace): type -> fd. Every
    later check (sysctl's "is it the host's?") and the setns itself use that fd, never the
    path again, which whoever controls a link in it could point elsewhere meanwhile."""
    fds: dict[str, int] = {}
    try:
        for kind, path in join.items():
            fds[kind] = open_namespace(kind, path)
    except BaseException:
        for fd in fds.values():
            os.close(fd)
        raise
    return fds


def open_namespace(kind: str, path: str) -> int:
    """An fd of ``path``, which must be a namespace of that type: a /proc/PID/ns link, or an
    nsfs file bind-mounted elsewhere (CRI's ``netns/cni-...``, dockerd's ``netns/default``),
    so the kernel is asked (NS_GET_NSTYPE), not the link's text. A mount namespace is set up
    as the container's (made private, pivot_root'ed: runc does the same), so minirun-oci's
    own, the host's, is refused: that would move the host's root."""
    import fcntl

    from ..syscalls import NAMESPACE_FLAGS

    where = f"linux.namespaces: {kind} namespace path {path}"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)  # a FIFO there must not hang create
    except OSError as err:
        raise SpecError(f"{where}: {err.strerror}") from None
    try:
        try:
            nstype = fcntl.ioctl(fd, _NS_GET_NSTYPE)
        except OSError:
            nstype = None  # not an nsfs file at all
        if nstype != NAMESPACE_FLAGS[kind]:
            found = next((f"a {name} namespace" for name, flag in NAMESPACE_FLAGS.items() if flag == nstype),
                         "not a namespace file")
            raise SpecError(f"{where}: not a {kind} namespace ({found})")
        if kind == "mount":
            own, given = os.stat("/proc/self/ns/mnt"), os.fstat(fd)
            if (own.st_dev, own.st_ino) == (given.st_dev, given.st_ino):
                raise SpecError(f"{where}: is minirun-oci's own mount namespace; the container's root is "
                                "pivoted in a joined one, which would move the host's root")
    except BaseException:
        os.close(fd)
        raise
    return fd


def parse_resources(res: dict, extras: Extras) -> Limits:
    limits = Limits()
    memory = _get(res, "memory", dict, "linux.resources.", {}) or {}
    if memory.get("limit") not in (None, -1, 0):
        limits.memory = int(memory["limit"])
    if memory.get("swap") not in (None, 0) and (limits.memory is not None or memory["swap"] != -1):
        limits.memory_swap = int(memory["swap"])  # -1 alone: docker's "unlimited swap" with no limit at all
    if memory.get("reservation") not in (None, 0, -1):
        limits.memory_reservation = int(memory["reservation"])
    swappiness = memory.get("swappiness")
    if swappiness not in (None, -1):  # -1: docker's "not set"
        if not isinstance(swappiness, int):
            raise SpecError(f"linux.resources.memory.swappiness {swappiness!r}: must be a number")
        limits.memory_swappiness = swappiness
    limits.oom_kill_disable = bool(_get(memory, "disableOOMKiller", bool, "linux.resources.memory.", False))
    for key, field in (("kernel", "kernel_memory"), ("kernelTCP", "kernel_tcp")):
        if memory.get(key) not in (None, 0):  # applied where the kernel still has the file (cgroups/v1.py)
            setattr(limits, field, int(memory[key]))
    _reject_present(memory, ("useHierarchy", "checkBeforeUpdate"), "linux.resources.memory.")
    cpu = _get(res, "cpu", dict, "linux.resources.", {}) or {}
    if cpu.get("quota") not in (None, -1, 0):
        limits.cpu_quota = int(cpu["quota"])
    if cpu.get("period"):
        limits.cpu_period = int(cpu["period"])
    if cpu.get("cpus"):
        limits.cpuset_cpus = parse_cpuset(cpu["cpus"], os.cpu_count() or 1)
    if cpu.get("shares"):
        limits.cpu_shares = int(cpu["shares"])
    if cpu.get("mems"):
        limits.cpuset_mems = parse_cpuset(cpu["mems"], _memory_nodes(), "linux.resources.cpu.mems", "memory nodes")
    _reject_present(cpu, ("realtimeRuntime", "realtimePeriod", "burst", "idle"), "linux.resources.cpu.")
    pids = _get(res, "pids", dict, "linux.resources.", {}) or {}
    if pids.get("limit") not in (None, 0, -1):
        limits.pids = int(pids["limit"])
    _block_io(_get(res, "blockIO", dict, "linux.resources.", {}) or {}, limits)
    limits.hugepage_limits = _hugepages(_get(res, "hugepageLimits", list, "linux.resources.", []) or [])
    for key in ("network", "rdma", "unified"):
        if res.get(key):
            raise SpecError(f"linux.resources.{key}: this host has no such controller for minirun-oci")
    return limits


# How config.json names the Limits fields, for Limits.validate's messages (the values are
# checked there, once, for both front ends; parsing here checks only their shape).
LIMIT_NAMES = {"devices": "linux.resources.devices", "memory": "linux.resources.memory.limit",
               "memory_swap": "linux.resources.memory.swap", "memory_swappiness": "linux.resources.memory.swappiness",
               "blkio_weight": "linux.resources.blockIO.weight",
               "blkio_leaf_weight": "linux.resources.blockIO.leafWeight",
               "blkio_weight_device": "linux.resources.blockIO.weightDevice"}


def _memory_nodes() -> int:
    """How many NUMA nodes there are to choose from (highest online node + 1)."""
    try:
        with open("/sys/devices/system/node/online") as f:
            text = f.read().strip()
    except OSError:
        return 1
    return max(int(part.split("-")[-1]) for part in text.split(",")) + 1 if text else 1


THROTTLES = {"throttleReadBpsDevice": "rbps", "throttleWriteBpsDevice": "wbps",
             "throttleReadIOPSDevice": "riops", "throttleWriteIOPSDevice": "wiops"}


def _block_io(blkio: dict, limits: Limits) -> None:
    """linux.resources.blockIO -> Limits.blkio_*; the cgroup drivers (cgroups/v1.py
    set_blkio, v2.py set_io) write them, or fail naming the field where the kernel cannot."""
    where = "linux.resources.blockIO."

    def weight(obj: dict, key: str, at: str) -> int:
        value = obj.get(key)
        if value in (None, 0):
            return 0
        if not isinstance(value, int):
            raise SpecError(f"{at}{key} {value!r}: must be a number")
        return value

    def device(entry, at: str) -> tuple[int, int]:
        if not isinstance(entry, dict) or not all(isinstance(entry.get(k), int) and entry[k] >= 0
                                                  for k in ("major", "minor")):
            raise SpecError(f"{at}: needs major and minor device numbers")
        return entry["major"], entry["minor"]

    limits.blkio_weight = weight(blkio, "weight", where) or None
    limits.blkio_leaf_weight = weight(blkio, "leafWeight", where) or None
    devices = []
    for i, entry in enumerate(_get(blkio, "weightDevice", list, where, []) or []):
        at = f"{where}weightDevice[{i}]"
        major, minor = device(entry, at)
        dev_weight, leaf = weight(entry, "weight", at + "."), weight(entry, "leafWeight", at + ".")
        if dev_weight or leaf:
            devices.append((major, minor, dev_weight, leaf))
    limits.blkio_weight_device = tuple(devices)
    throttle = []
    for key, kind in THROTTLES.items():
        for i, entry in enumerate(_get(blkio, key, list, where, []) or []):
            at = f"{where}{key}[{i}]"
            major, minor = device(entry, at)
            rate = entry.get("rate")
            if not isinstance(rate, int) or rate < 0:
                raise SpecError(f"{at}.rate {rate!r}: must be a number of {kind[1:]} per second (0: no limit)")
            throttle.append((kind, major, minor, rate))
    limits.blkio_throttle = tuple(throttle)


def _hugepages(entries: list) -> tuple[tuple[str, int], ...]:
    """linux.resources.hugepageLimits -> ((page size as the kernel names it, bytes), ...),
    each size checked against /sys/kernel/mm/hugepages (hugepages-2048kB is "2MB")."""
    if not entries:
        return ()
    try:
        sizes = {_page_size_name(int(d[len("hugepages-"):-2])) for d in os.listdir("/sys/kernel/mm/hugepages")}
    except OSError:
        sizes = set()
    out = []
    for i, entry in enumerate(entries):
        at = f"linux.resources.hugepageLimits[{i}]"
        size = entry.get("pageSize") if isinstance(entry, dict) else None
        if size not in sizes:
            raise SpecError(f"{at}.pageSize {size!r}: this host's huge page sizes are "
                            f"{', '.join(sorted(sizes)) or 'none'}")
        limit = entry.get("limit")
        if not isinstance(limit, int) or limit < 0:
            raise SpecError(f"{at}.limit {limit!r}: must be a number of bytes")
        out.append((size, limit))
    return tuple(out)


def _page_size_name(kib: int) -> str:
    """2048 -> "2MB", 1048576 -> "1GB": the names of the hugetlb cgroup files (mm/hugetlb_cgroup.c)."""
    for unit, scale in (("GB", 1 << 20), ("MB", 1 << 10)):
        if kib >= scale and kib % scale == 0:
            return f"{kib // scale}{unit}"
    return f"{kib}KB"


def limits_devices(linux: dict) -> list:
    return _get(_get(linux, "resources", dict, "linux.", {}) or {}, "devices", list, "linux.resources.", []) or []


def _device_rules(rules: list, nodes: list) -> tuple:
    """The devices cgroup as runc builds it: deny all, the config's rules in order, then
    runc's default devices and one rule per linux.devices node (the last match decides)."""
    from ..devices import DEFAULT_RULES, DeviceRule

    out = [DeviceRule(False, "a")]
    for i, rule in enumerate(rules):
        where = f"linux.resources.devices[{i}]"
        if not isinstance(rule, dict) or not isinstance(rule.get("allow"), bool):
            raise SpecError(f"{where}.allow: must be true or false")
        kind = rule.get("type") or "a"
        access = rule.get("access") or "rwm"  # both checked by Limits.validate
        if not isinstance(kind, str) or not isinstance(access, str):
            raise SpecError(f"{where}: type and access must be strings")
        number = [None if rule.get(k) in (None, -1) else int(rule[k]) for k in ("major", "minor")]
        out.append(DeviceRule(rule["allow"], kind, number[0], number[1], access))
    out += DEFAULT_RULES[1:]
    for node in nodes:
        if node.get("type") in ("c", "u", "b"):
            out.append(DeviceRule(True, "b" if node["type"] == "b" else "c", int(node.get("major", 0)),
                                  int(node.get("minor", 0)), "rwm"))
    return tuple(out)


def _cgroups_path(given: str | None, container_id: str) -> str:
    if not given:
        from ..settings import OCI_CGROUP_PARENT  # minirun-oci, or MINIRUN_CGROUP_PARENT + "-oci"

        return os.path.join(OCI_CGROUP_PARENT, container_id)
    if ":" in given and not given.startswith("/"):
        raise SpecError(f"linux.cgroupsPath {given!r}: the systemd form (slice:prefix:name) needs "
                        "--systemd-cgroup, which minirun-oci does not support")
    if ".." in given.split("/"):
        raise SpecError(f"linux.cgroupsPath {given!r}: '..' is not allowed")
    if given.startswith("/"):
        path = os.path.normpath(given).lstrip("/")
    else:
        # Relative: below minirun-oci's own cgroup (runc), taken from the unified hierarchy
        # (or the first listed) since one path serves every hierarchy here.
        with open("/proc/self/cgroup") as f:
            entries = [line.rstrip("\n").split(":", 2) for line in f]
        own = next((e[2] for e in entries if e[0] == "0"), entries[0][2] if entries else "/")
        path = os.path.normpath(os.path.join(own, given)).lstrip("/")
    if not path:  # the Cgroup made for "" is minirun/<id>, and a recorded "" reads as none
        raise SpecError(f"linux.cgroupsPath {given!r}: a hierarchy's root is no container's cgroup")
    return path


def _flags(options, where: str) -> tuple[int, int, list[str]]:
    """Mount options -> (flags, propagation flags, data options)."""
    flags = propagation = 0
    data = []
    for opt in options or ():
        if opt in MOUNT_FLAGS:
            on, flag = MOUNT_FLAGS[opt]
            flags = flags | flag if on else flags & ~flag
        elif opt in PROPAGATION:
            propagation |= PROPAGATION[opt]
        elif opt in ("tmpcopyup", "idmap", "ridmap"):
            raise SpecError(f"{where}: option {opt!r} is not supported by minirun-oci")
        else:
            data.append(opt)
    return flags, propagation, data


def _mounts(config: dict, linux: dict, root: str, bundle: str, own_cgroups=None) -> tuple[tuple, tuple]:
    """config.json's mounts -> (ops before pivot_root, propagation ops after it).

    A mount's propagation is set once the rootfs has been bound onto itself (the
    recursive bind pivot_root needs would leave an unbindable mount out)."""
    ops: list[Op] = []
    propagations: list[Op] = []
    mounted: list[str] = []  # destinations mounted so far: what lies below them is not the rootfs
    dev_bound = False
    for i, m in enumerate(_get(config, "mounts", list, "", []) or []):
        where = f"mounts[{i}]"
        dest = m.get("destination")
        if not isinstance(dest, str) or not dest:
            raise SpecError(f"{where}.destination: missing")
        dest = os.path.normpath(os.path.join("/", dest))
        if ".." in dest.split("/"):
            raise SpecError(f"{where}.destination {dest!r}: '..' is not allowed")
        target = dest  # a container path: rootpath.c resolves it inside the root
        kind = m.get("type") or ""
        flags, propagation, data = _flags(m.get("options"), f"{where} ({dest})")
        if flags & MS_BIND or kind == "bind":
            ops += _bind(m, dest, flags, bundle, where)
            dev_bound = dev_bound or dest == "/dev"
        elif kind == "cgroup":
            ops += _cgroup_mount(target, flags, own_cgroups)
        elif kind:
            source = m.get("source") or kind
            ops.append(Op(OP_MOUNT, target, source=source, fstype=kind, flags=flags & ~MS_REMOUNT,
                          data=",".join(data) or None))
        else:
            raise SpecError(f"{where} ({dest}): no type and not a bind mount")
        if propagation:
            propagations.append(Op(OP_MOUNT, target, flags=propagation))
        mounted.append(dest)
    if dev_bound:  # runc's needsSetupDev: a bound /dev (the host's, say) is used as it is
        return tuple(ops), tuple(propagations)
    if "/dev" in mounted:  # runc's default devices and links, on the container's fresh /dev
        ops += _devices(linux)
    elif linux.get("devices"):
        raise SpecError("linux.devices: needs a /dev mount (tmpfs) in mounts")
    return tuple(ops), tuple(propagations)



def _bind(m: dict, dest: str, flags: int, bundle: str, where: str) -> list[Op]:
    """One bind op: rootpath.c makes the mount point (an empty file for a file) inside the
    root and applies ro/nosuid/nodev/noexec to the bound tree, keeping the source's flags."""
    source = m.get("source")
    if not source:
        raise SpecError(f"{where} ({dest}): a bind mount needs a source")
    source = os.path.join(bundle, source)
    if not os.path.exists(source):
        raise SpecError(f"{where} ({dest}): source {source} does not exist")
    return [Op(OP_MOUNT, dest, source=source, flags=(flags | MS_BIND) & ~MS_REMOUNT)]


def _cgroup_mount(target: str, flags: int, own_cgroups) -> list[Op]:
    """/sys/fs/cgroup as runc makes it: cgroup2 on a unified host; on a legacy or hybrid
    one, a tmpfs holding each v1 hierarchy and the unified one. In a cgroup namespace
    each is mounted afresh (the namespace shows the container's cgroup as its root);
    without one (podman on v1), the container's own cgroup directories are bound
    there instead (runc's getCgroupMounts), so the host's tree stays out of sight.
    Either way that needs the container to be in every hierarchy: minirun.cgroups
    joins them all, and a hierarchy it has no directory in is left out, never bound
    from the host's root. Read-only as the mount's options say (engines pass ro)."""
    from .. import cgroups

    layout = cgroups.detect()
    secure = MS_NOSUID | MS_NODEV | MS_NOEXEC
    if own_cgroups is not None:
        relpath, limits = own_cgroups
        ours = cgroups.container_paths(relpath, limits, layout)

    def hierarchy(mountpoint: str, fstype: str, data: str | None) -> list[Op]:
        dest = os.path.join(target, os.path.basename(mountpoint))
        if own_cgroups is None:
            return [Op(OP_MOUNT, dest, source="cgroup", fstype=fstype, flags=flags | secure, data=data)]
        source = next((p for p in ours.values() if p.startswith(mountpoint + "/")), None)
        return _bind_cgroup(dest, source, flags | secure) if source else []

    if layout.mode == "unified":
        if own_cgroups is None:
            return [Op(OP_MOUNT, target, source="cgroup2", fstype="cgroup2", flags=flags)]
        return _bind_cgroup(target, ours["unified"], flags | secure)
    ops = [Op(OP_MOUNT, target, source="tmpfs", fstype="tmpfs", flags=secure, data="mode=755")]
    by_mount: dict[str, list[str]] = {}
    for controller, mountpoint in layout.v1.items():
        by_mount.setdefault(mountpoint, []).append(controller)
    for mountpoint, controllers in sorted(by_mount.items()):
        ops += hierarchy(mountpoint, "cgroup", ",".join(sorted(controllers)))
    if layout.unified:
        ops += hierarchy(layout.unified, "cgroup2", None)
    if flags & MS_RDONLY:  # the tmpfs and every hierarchy in it
        ops.append(Op(OP_READONLY, target))
    return ops


def _devices_bound(plan: tuple) -> tuple:
    """In a user namespace mknod is refused: each device node becomes an empty file with
    the host's node bound onto it (runc does the same)."""
    out = []
    for op in plan:
        if op.kind == OP_MKNOD and (stat.S_ISCHR(op.mode) or stat.S_ISBLK(op.mode)):
            host = op.target
            if not os.path.exists(host):
                raise SpecError(f"linux.devices {host}: in a user namespace a device is bound from the host's, "
                                "which does not exist")
            out.append(Op(OP_MKNOD, op.target, mode=stat.S_IFREG | 0o666, flags=op.flags))
            out.append(Op(OP_MOUNT, op.target, source=host, flags=MS_BIND))
        else:
            out.append(op)
    return tuple(out)


def _bind_cgroup(dest: str, source: str, flags: int) -> list[Op]:
    return [Op(OP_MOUNT, dest, source=source, flags=MS_BIND | MS_REC | (flags & ~MS_REMOUNT))]


def _devices(linux: dict) -> list[Op]:
    """runc's createDevices, setupPtmx and setupDevSymlinks: the default devices and
    linux.devices (anywhere in the root, owned by their uid and gid), each made only
    where nothing is yet (a mount of the config may be there); the /dev links likewise,
    but /dev/ptmx always becomes the link to the container's devpts."""
    kinds = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}
    wanted = {f"/dev/{name}": (stat.S_IFCHR | 0o666, major, minor, 0, 0) for name, major, minor in DEFAULT_DEVICES}
    for i, dev in enumerate(_get(linux, "devices", list, "linux.", []) or []):
        where = f"linux.devices[{i}]"
        path = dev.get("path", "")
        if not isinstance(path, str) or not path.startswith("/") or ".." in path.split("/") or \
                os.path.normpath(path) == "/":
            raise SpecError(f"{where}.path {path!r}: must be an absolute path")
        if dev.get("type") not in kinds:
            raise SpecError(f"{where}.type {dev.get('type')!r}: use c, b, u or p")
        mode = kinds[dev["type"]] | (int(dev.get("fileMode", 0o666)) & 0o7777)
        wanted[os.path.normpath(path)] = (mode, int(dev.get("major", 0)), int(dev.get("minor", 0)),
                                          int(dev.get("uid") or 0), int(dev.get("gid") or 0))
    ops = [Op(OP_MKNOD, path, mode=mode, major=major, minor=minor, uid=uid, gid=gid, flags=NODE_KEEP)
           for path, (mode, major, minor, uid, gid) in wanted.items()]
    ops += [Op(OP_SYMLINK, link, source=to, flags=0 if link == "/dev/ptmx" else NODE_KEEP) for to, link in DEV_LINKS]
    return ops


def _root_propagation(linux: dict) -> tuple:
    mode = linux.get("rootfsPropagation")
    if not mode:
        return ()
    if mode not in PROPAGATION:
        raise SpecError(f"linux.rootfsPropagation {mode!r}: use one of {', '.join(PROPAGATION)}")
    return (Op(OP_MOUNT, "/", flags=PROPAGATION[mode] | MS_REC),)


def _hooks(config: dict) -> dict[str, list[dict]]:
    hooks = _get(config, "hooks", dict, "", {}) or {}
    out = {}
    for kind, entries in hooks.items():
        if kind not in HOOK_KINDS:
            raise SpecError(f"hooks.{kind}: unknown hook kind (known: {', '.join(HOOK_KINDS)})")
        if not entries:
            continue
        if not isinstance(entries, list):
            raise SpecError(f"hooks.{kind}: expected a list of hooks")
        for j, hook in enumerate(entries):
            where = f"hooks.{kind}[{j}]"
            if not isinstance(hook, dict) or not str(hook.get("path", "")).startswith("/"):
                raise SpecError(f"{where}.path: must be an absolute path")
            for key in ("args", "env"):
                if not all(isinstance(a, str) for a in _get(hook, key, list, where + ".", []) or []):
                    raise SpecError(f"{where}.{key}: must be a list of strings")
            timeout = hook.get("timeout")
            if timeout is not None and (not isinstance(timeout, int) or isinstance(timeout, bool) or timeout <= 0):
                raise SpecError(f"{where}.timeout {timeout!r}: must be a number of seconds above 0")
        out[kind] = entries
    return out


def _check_seccomp(profile: dict, caps) -> None:
    """Build now (into the cache the run then reads) so that a profile minirun cannot
    express fails before anything exists."""
    from ..seccomp import filter_for

    try:
        filter_for(profile, caps)
    except Exception as err:  # ProfileError and friends: one message naming the field
        raise SpecError(f"linux.seccomp: {err}") from None
